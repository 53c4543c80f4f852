//! Physical wall-clock time with microsecond resolution.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A point in physical time: microseconds since the Unix epoch
/// (1970-01-01T00:00:00Z), UTC.
///
/// Every `i64` is a valid `WallTime`; no method panics. Serialises as the
/// bare `i64` of microseconds.
///
/// # Examples
///
/// ```
/// use concord_clock::WallTime;
///
/// let t = WallTime::from_micros(1_795_463_387_123_456);
/// assert_eq!(t.to_string(), "2026-11-23T19:49:47.123456Z");
/// assert!(t > WallTime::from_micros(0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WallTime(i64);

/// Whole microseconds of a [`Duration`] as `i128` (always fits: a `Duration`
/// holds at most about 1.8e25 µs).
fn duration_micros(d: Duration) -> i128 {
    i128::try_from(d.as_micros()).unwrap_or(i128::MAX)
}

/// Clamps an `i128` microsecond count into the `i64` range.
fn clamp_to_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl WallTime {
    /// Creates a `WallTime` from microseconds since the Unix epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::WallTime;
    ///
    /// assert_eq!(WallTime::from_micros(-5).as_micros(), -5);
    /// ```
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Returns the microseconds since the Unix epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::WallTime;
    ///
    /// assert_eq!(WallTime::from_micros(1_500).as_micros(), 1_500);
    /// ```
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Converts a chrono date-time, truncating (towards the past) to whole
    /// microseconds.
    ///
    /// Every `DateTime<Utc>` chrono can represent fits, so this never fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use concord_clock::WallTime;
    ///
    /// let dt = Utc.timestamp_opt(1, 999_999_999).single().expect("valid");
    /// assert_eq!(WallTime::from_datetime(dt).as_micros(), 1_999_999);
    /// ```
    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        Self(dt.timestamp_micros())
    }

    /// Converts to a chrono date-time, or `None` if the value lies outside
    /// chrono's representable range (roughly ±262,000 years).
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::WallTime;
    ///
    /// let dt = WallTime::from_micros(0).to_datetime().expect("in range");
    /// assert_eq!(dt.to_rfc3339(), "1970-01-01T00:00:00+00:00");
    /// assert!(WallTime::from_micros(i64::MAX).to_datetime().is_none());
    /// ```
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.0)
    }

    /// Returns whole milliseconds since the Unix epoch, rounded towards
    /// negative infinity (so `-1` µs is `-1` ms).
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::WallTime;
    ///
    /// assert_eq!(WallTime::from_micros(1_999).as_millis(), 1);
    /// assert_eq!(WallTime::from_micros(-1).as_millis(), -1);
    /// ```
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000)
    }

    /// Adds a duration (whole microseconds of it), saturating at the maximum
    /// representable `WallTime`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use concord_clock::WallTime;
    ///
    /// let t = WallTime::from_micros(10).saturating_add(Duration::from_millis(1));
    /// assert_eq!(t.as_micros(), 1_010);
    /// assert_eq!(
    ///     WallTime::from_micros(i64::MAX).saturating_add(Duration::MAX),
    ///     WallTime::from_micros(i64::MAX)
    /// );
    /// ```
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(clamp_to_i64(
            i128::from(self.0).saturating_add(duration_micros(d)),
        ))
    }

    /// Subtracts a duration (whole microseconds of it), saturating at the
    /// minimum representable `WallTime`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use concord_clock::WallTime;
    ///
    /// let t = WallTime::from_micros(10).saturating_sub(Duration::from_micros(25));
    /// assert_eq!(t.as_micros(), -15);
    /// assert_eq!(
    ///     WallTime::from_micros(i64::MIN).saturating_sub(Duration::MAX),
    ///     WallTime::from_micros(i64::MIN)
    /// );
    /// ```
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(clamp_to_i64(
            i128::from(self.0).saturating_sub(duration_micros(d)),
        ))
    }

    /// Signed microseconds from `earlier` to `self` (negative if `earlier`
    /// is actually later), saturating at the `i64` bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::WallTime;
    ///
    /// let a = WallTime::from_micros(100);
    /// let b = WallTime::from_micros(250);
    /// assert_eq!(b.micros_since(a), 150);
    /// assert_eq!(a.micros_since(b), -150);
    /// ```
    pub const fn micros_since(self, earlier: WallTime) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<DateTime<Utc>> for WallTime {
    fn from(dt: DateTime<Utc>) -> Self {
        Self::from_datetime(dt)
    }
}

impl fmt::Display for WallTime {
    /// RFC 3339 with six fractional digits and a `Z` suffix, e.g.
    /// `2026-11-23T19:49:47.123456Z`; values outside chrono's range are
    /// written as the raw microsecond count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(dt) => f.write_str(&dt.to_rfc3339_opts(SecondsFormat::Micros, true)),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde::de::IntoDeserializer;
    use serde::de::value::Error as ValueError;

    use super::*;

    #[test]
    fn display_is_rfc3339_micros_with_z() {
        let t = WallTime::from_micros(1_795_463_387_123_456);
        assert_eq!(t.to_string(), "2026-11-23T19:49:47.123456Z");
        assert_eq!(
            WallTime::from_micros(0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            WallTime::from_micros(-1).to_string(),
            "1969-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn display_falls_back_to_raw_micros_out_of_range() {
        assert_eq!(
            WallTime::from_micros(i64::MAX).to_string(),
            i64::MAX.to_string()
        );
        assert_eq!(
            WallTime::from_micros(i64::MIN).to_string(),
            i64::MIN.to_string()
        );
    }

    #[test]
    fn from_datetime_truncates_to_micros() {
        let dt = Utc.timestamp_opt(10, 123_456_789).single().unwrap();
        assert_eq!(WallTime::from_datetime(dt).as_micros(), 10_123_456);
        let before_epoch = Utc.timestamp_opt(-1, 999_999_999).single().unwrap();
        assert_eq!(WallTime::from_datetime(before_epoch).as_micros(), -1);
        assert_eq!(WallTime::from(dt), WallTime::from_datetime(dt));
    }

    #[test]
    fn from_datetime_handles_chrono_extremes() {
        let max = WallTime::from_datetime(DateTime::<Utc>::MAX_UTC);
        let min = WallTime::from_datetime(DateTime::<Utc>::MIN_UTC);
        assert!(max > min);
        // MAX_UTC has nanosecond precision; the conversion drops the last
        // three digits, so the round trip lands within one microsecond.
        let back = max.to_datetime().unwrap();
        assert!(back <= DateTime::<Utc>::MAX_UTC);
        assert!(DateTime::<Utc>::MAX_UTC - back < chrono::TimeDelta::microseconds(1));
        assert_eq!(min.to_datetime(), Some(DateTime::<Utc>::MIN_UTC));
    }

    #[test]
    fn to_datetime_round_trips() {
        let t = WallTime::from_micros(1_795_463_387_123_456);
        let dt = t.to_datetime().unwrap();
        assert_eq!(WallTime::from_datetime(dt), t);
    }

    #[test]
    fn to_datetime_none_out_of_range() {
        assert!(WallTime::from_micros(i64::MAX).to_datetime().is_none());
        assert!(WallTime::from_micros(i64::MIN).to_datetime().is_none());
    }

    #[test]
    fn as_millis_floors() {
        assert_eq!(WallTime::from_micros(0).as_millis(), 0);
        assert_eq!(WallTime::from_micros(999).as_millis(), 0);
        assert_eq!(WallTime::from_micros(1_000).as_millis(), 1);
        assert_eq!(WallTime::from_micros(-1).as_millis(), -1);
        assert_eq!(WallTime::from_micros(-1_000).as_millis(), -1);
        assert_eq!(WallTime::from_micros(-1_001).as_millis(), -2);
        assert_eq!(
            WallTime::from_micros(i64::MIN).as_millis(),
            i64::MIN.div_euclid(1_000)
        );
    }

    #[test]
    fn saturating_add_and_sub() {
        let t = WallTime::from_micros(1_000);
        assert_eq!(
            t.saturating_add(Duration::from_micros(5)).as_micros(),
            1_005
        );
        assert_eq!(t.saturating_sub(Duration::from_micros(5)).as_micros(), 995);
        // Sub-microsecond parts are ignored.
        assert_eq!(
            t.saturating_add(Duration::from_nanos(999)).as_micros(),
            1_000
        );
        assert_eq!(
            WallTime::from_micros(i64::MAX - 1).saturating_add(Duration::from_micros(5)),
            WallTime::from_micros(i64::MAX)
        );
        assert_eq!(
            WallTime::from_micros(i64::MIN + 1).saturating_sub(Duration::from_micros(5)),
            WallTime::from_micros(i64::MIN)
        );
        assert_eq!(
            WallTime::from_micros(0).saturating_add(Duration::MAX),
            WallTime::from_micros(i64::MAX)
        );
        assert_eq!(
            WallTime::from_micros(0).saturating_sub(Duration::MAX),
            WallTime::from_micros(i64::MIN)
        );
        assert_eq!(
            WallTime::from_micros(i64::MIN).saturating_add(Duration::MAX),
            WallTime::from_micros(i64::MAX)
        );
    }

    #[test]
    fn micros_since_is_signed_and_saturating() {
        let a = WallTime::from_micros(10);
        let b = WallTime::from_micros(25);
        assert_eq!(b.micros_since(a), 15);
        assert_eq!(a.micros_since(b), -15);
        assert_eq!(
            WallTime::from_micros(i64::MAX).micros_since(WallTime::from_micros(i64::MIN)),
            i64::MAX
        );
        assert_eq!(
            WallTime::from_micros(i64::MIN).micros_since(WallTime::from_micros(i64::MAX)),
            i64::MIN
        );
    }

    #[test]
    fn ordering_follows_micros() {
        assert!(WallTime::from_micros(-1) < WallTime::from_micros(0));
        assert!(WallTime::from_micros(i64::MAX) > WallTime::from_micros(i64::MIN));
    }

    #[test]
    fn serde_is_transparent_i64() {
        let de = 1_234_i64.into_deserializer();
        let t: Result<WallTime, ValueError> = WallTime::deserialize(de);
        assert_eq!(t.unwrap(), WallTime::from_micros(1_234));
    }
}
