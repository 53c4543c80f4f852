//! Hybrid logical clock timestamps and the clock that issues them.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use hlc_gen::error::HlcError;
use hlc_gen::source::ManualClock as GenManualClock;
use hlc_gen::{HlcGenerator, HlcTimestamp};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::ClockError;
use crate::wall_time::WallTime;

/// Number of low bits holding the logical counter in the `hlc-gen` layout.
const LOGICAL_BITS: u32 = 22;

/// A hybrid logical clock timestamp.
///
/// This is the raw 64-bit layout of `hlc-gen`: the upper 42 bits are
/// milliseconds since 2024-01-01T00:00:00Z, the lower 22 bits a logical
/// counter. Comparing two `HlcTime`s (or their [`as_u64`](Self::as_u64)
/// values) therefore compares physical time first and the logical counter
/// second, which is the causal order the HLC algorithm maintains.
///
/// Serialises as the bare `u64`. `Default` is [`HlcTime::MIN`].
///
/// # Examples
///
/// ```
/// use concord_clock::HlcTime;
///
/// let a = HlcTime::from_parts(1_795_463_387_123, 5)?;
/// let b = HlcTime::from_parts(1_795_463_387_123, 6)?;
/// let c = HlcTime::from_parts(1_795_463_387_124, 0)?;
/// assert!(a < b && b < c);
/// assert_eq!(a.to_string(), "2026-11-23T19:49:47.123Z+5");
/// # Ok::<(), concord_clock::ClockError>(())
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct HlcTime(u64);

impl HlcTime {
    /// The smallest timestamp: 2024-01-01T00:00:00.000Z with logical
    /// counter 0 (raw value 0).
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::HlcTime;
    ///
    /// assert_eq!(HlcTime::MIN.as_u64(), 0);
    /// assert_eq!(HlcTime::MIN.physical_millis(), HlcTime::MIN_PHYSICAL_MS);
    /// assert_eq!(HlcTime::MIN, HlcTime::default());
    /// ```
    pub const MIN: Self = Self(0);

    /// The largest raw value (`u64::MAX`), useful as an upper sentinel.
    ///
    /// Its physical part lies beyond [`MAX_PHYSICAL_MS`](Self::MAX_PHYSICAL_MS),
    /// so [`Hlc::update`] rejects it.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::HlcTime;
    ///
    /// assert!(HlcTime::MAX > HlcTime::from_parts(HlcTime::MAX_PHYSICAL_MS, HlcTime::MAX_LOGICAL)?);
    /// # Ok::<(), concord_clock::ClockError>(())
    /// ```
    pub const MAX: Self = Self(u64::MAX);

    /// Earliest physical time an HLC timestamp can carry, in milliseconds
    /// since the Unix epoch: 2024-01-01T00:00:00.000Z (`hlc-gen`'s epoch).
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::HlcTime;
    ///
    /// assert!(HlcTime::from_parts(HlcTime::MIN_PHYSICAL_MS, 0).is_ok());
    /// assert!(HlcTime::from_parts(HlcTime::MIN_PHYSICAL_MS - 1, 0).is_err());
    /// ```
    pub const MIN_PHYSICAL_MS: i64 = 1_704_067_200_000;

    /// Latest physical time `hlc-gen` accepts, in milliseconds since the Unix
    /// epoch: `2^42 - 1` (2109-05-15T07:35:11.103Z).
    ///
    /// `hlc-gen` bounds the *Unix* millisecond value by `2^42 - 1`, which is
    /// tighter than what the 42-bit field could hold; raw values beyond it
    /// can exist (see [`from_u64`](Self::from_u64)) but are never produced by
    /// an [`Hlc`] and are rejected by [`Hlc::update`].
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::HlcTime;
    ///
    /// assert!(HlcTime::from_parts(HlcTime::MAX_PHYSICAL_MS, 0).is_ok());
    /// assert!(HlcTime::from_parts(HlcTime::MAX_PHYSICAL_MS + 1, 0).is_err());
    /// ```
    pub const MAX_PHYSICAL_MS: i64 = (1 << 42) - 1;

    /// Largest logical counter value: `2^22 - 1`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::HlcTime;
    ///
    /// assert_eq!(HlcTime::MAX_LOGICAL, 4_194_303);
    /// assert!(HlcTime::from_parts(HlcTime::MIN_PHYSICAL_MS, HlcTime::MAX_LOGICAL + 1).is_err());
    /// ```
    pub const MAX_LOGICAL: u64 = (1 << LOGICAL_BITS) - 1;

    /// Builds a timestamp from a physical time (milliseconds since the Unix
    /// epoch) and a logical counter.
    ///
    /// # Errors
    ///
    /// [`ClockError::PhysicalOutOfRange`] if `physical_ms` is outside
    /// [`MIN_PHYSICAL_MS`](Self::MIN_PHYSICAL_MS)..=[`MAX_PHYSICAL_MS`](Self::MAX_PHYSICAL_MS);
    /// otherwise [`ClockError::LogicalOutOfRange`] if `logical` exceeds
    /// [`MAX_LOGICAL`](Self::MAX_LOGICAL).
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::{ClockError, HlcTime};
    ///
    /// let t = HlcTime::from_parts(1_795_463_387_123, 5)?;
    /// assert_eq!((t.physical_millis(), t.logical()), (1_795_463_387_123, 5));
    /// assert_eq!(
    ///     HlcTime::from_parts(0, 0),
    ///     Err(ClockError::PhysicalOutOfRange { unix_ms: 0 })
    /// );
    /// # Ok::<(), ClockError>(())
    /// ```
    pub fn from_parts(physical_ms: i64, logical: u64) -> Result<Self, ClockError> {
        HlcTimestamp::from_parts(physical_ms, logical)
            .map(|ts| Self(ts.as_u64()))
            .map_err(|err| match err {
                HlcError::LogicalClockExceedsMax(logical, _) => {
                    ClockError::LogicalOutOfRange { logical }
                }
                HlcError::PhysicalTimeExceedsMax(unix_ms, _)
                | HlcError::TimestampBelowMin(unix_ms, _) => {
                    ClockError::PhysicalOutOfRange { unix_ms }
                }
                // `from_parts` performs no drift checks; report the input.
                HlcError::OutOfRangeTimestamp | HlcError::DriftTooLarge(..) => {
                    ClockError::PhysicalOutOfRange {
                        unix_ms: physical_ms,
                    }
                }
            })
    }

    /// Reinterprets a raw `u64` (as produced by [`as_u64`](Self::as_u64)).
    ///
    /// Every `u64` is a valid bit layout, so this cannot fail; physical parts
    /// beyond [`MAX_PHYSICAL_MS`](Self::MAX_PHYSICAL_MS) are representable
    /// but [`Hlc::update`] rejects them.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::HlcTime;
    ///
    /// let t = HlcTime::from_parts(1_795_463_387_123, 5)?;
    /// assert_eq!(HlcTime::from_u64(t.as_u64()), t);
    /// assert_eq!(HlcTime::from_u64(3).logical(), 3);
    /// # Ok::<(), concord_clock::ClockError>(())
    /// ```
    pub const fn from_u64(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw 64-bit value; its numeric order is the timestamp order.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::HlcTime;
    ///
    /// let t = HlcTime::from_parts(HlcTime::MIN_PHYSICAL_MS + 1, 2)?;
    /// assert_eq!(t.as_u64(), (1 << 22) | 2);
    /// # Ok::<(), concord_clock::ClockError>(())
    /// ```
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The physical part, in milliseconds since the Unix epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::HlcTime;
    ///
    /// assert_eq!(HlcTime::from_parts(1_795_463_387_123, 9)?.physical_millis(), 1_795_463_387_123);
    /// # Ok::<(), concord_clock::ClockError>(())
    /// ```
    pub const fn physical_millis(self) -> i64 {
        // The shifted value has at most 42 bits, so the cast is lossless and
        // the sum cannot overflow.
        Self::MIN_PHYSICAL_MS + (self.0 >> LOGICAL_BITS) as i64
    }

    /// The logical counter part.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::HlcTime;
    ///
    /// assert_eq!(HlcTime::from_parts(1_795_463_387_123, 9)?.logical(), 9);
    /// # Ok::<(), concord_clock::ClockError>(())
    /// ```
    pub const fn logical(self) -> u64 {
        self.0 & Self::MAX_LOGICAL
    }
}

impl fmt::Display for HlcTime {
    /// Physical time in RFC 3339 with milliseconds and `Z`, then `+` and the
    /// logical counter, e.g. `2026-11-23T19:49:47.123Z+5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let physical_ms = self.physical_millis();
        match DateTime::from_timestamp_millis(physical_ms) {
            Some(dt) => write!(
                f,
                "{}+{}",
                dt.to_rfc3339_opts(SecondsFormat::Millis, true),
                self.logical()
            ),
            // Unreachable for the 42-bit range, kept so Display never panics.
            None => write!(f, "{physical_ms}ms+{}", self.logical()),
        }
    }
}

/// A thread-safe hybrid logical clock (HLC) on top of `hlc-gen`, whose
/// physical time comes from an injected [`Clock`].
///
/// Every timestamp an `Hlc` returns is strictly greater than every timestamp
/// it returned or received before, even with concurrent callers and a
/// physical clock that jumps backwards. Physical time is used at millisecond
/// granularity.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use concord_clock::{Hlc, HlcTime, ManualClock, WallTime};
///
/// let clock = Arc::new(ManualClock::new(WallTime::from_micros(1_795_463_387_123_000)));
/// let hlc = Hlc::new(clock.clone(), Duration::from_millis(500));
///
/// let a = hlc.now()?;
/// let b = hlc.now()?; // same millisecond: logical counter moves on
/// assert!(b > a);
///
/// let remote = HlcTime::from_parts(1_795_463_387_300, 0)?; // 177 ms ahead
/// let c = hlc.update(remote)?;
/// assert!(c > remote && c > b);
///
/// clock.set(WallTime::from_micros(1_795_463_000_000_000)); // clock steps back
/// assert!(hlc.now()? > c);
/// # Ok::<(), concord_clock::ClockError>(())
/// ```
pub struct Hlc {
    clock: Arc<dyn Clock>,
    max_drift: Duration,
    /// Generator whose physical time is set from `clock` before every call.
    /// Drift checking is done here, not in `hlc-gen` (its drift is 0).
    generator: HlcGenerator<GenManualClock>,
    /// Serialises "set the generator's clock, then tick" so each call uses
    /// its own reading of the physical clock.
    tick: Mutex<()>,
}

impl Hlc {
    /// Creates a clock reading physical time from `clock` and refusing remote
    /// timestamps more than `max_drift` ahead of it.
    ///
    /// A zero `max_drift` disables the drift check. The check works in whole
    /// milliseconds; a non-zero `max_drift` is rounded *up* to the next
    /// millisecond (so it never becomes zero). Until the first event,
    /// [`last`](Self::last) is [`HlcTime::MIN`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use concord_clock::{Hlc, HlcTime, SystemClock};
    ///
    /// let hlc = Hlc::new(Arc::new(SystemClock), Duration::from_secs(1));
    /// assert_eq!(hlc.last(), HlcTime::MIN);
    /// assert!(hlc.now()? > HlcTime::MIN);
    /// # Ok::<(), concord_clock::ClockError>(())
    /// ```
    pub fn new(clock: Arc<dyn Clock>, max_drift: Duration) -> Self {
        Self {
            clock,
            max_drift,
            generator: HlcGenerator::manual(0),
            tick: Mutex::new(()),
        }
    }

    /// Timestamp for a local or send event.
    ///
    /// The result is strictly greater than every timestamp this `Hlc`
    /// produced or received before, and its physical part is at least the
    /// current physical time.
    ///
    /// # Errors
    ///
    /// - [`ClockError::PhysicalOutOfRange`] if the physical clock reads
    ///   before 2024-01-01 or after [`HlcTime::MAX_PHYSICAL_MS`].
    /// - [`ClockError::LogicalExhausted`] if the logical counter is at
    ///   [`HlcTime::MAX_LOGICAL`] and the physical clock has not yet moved
    ///   past the current physical part.
    ///
    /// On error the state is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use concord_clock::{ClockError, Hlc, ManualClock, WallTime};
    ///
    /// let clock = Arc::new(ManualClock::new(WallTime::from_micros(1_795_463_387_123_999)));
    /// let hlc = Hlc::new(clock.clone(), Duration::ZERO);
    /// let t = hlc.now()?;
    /// assert_eq!((t.physical_millis(), t.logical()), (1_795_463_387_123, 0));
    ///
    /// clock.set(WallTime::from_micros(0)); // 1970: not representable
    /// assert_eq!(hlc.now(), Err(ClockError::PhysicalOutOfRange { unix_ms: 0 }));
    /// # Ok::<(), ClockError>(())
    /// ```
    pub fn now(&self) -> Result<HlcTime, ClockError> {
        self.tick_at(self.local_physical_ms()?)
    }

    /// [`Hlc::now`] for a physical reading the caller has just taken from
    /// this clock's own [`Clock`] (one read of the clock for an event that
    /// needs both its wall time and its HLC time).
    ///
    /// The guarantees are those of [`Hlc::now`]: the result is strictly
    /// greater than everything before, whatever `wall` says.
    ///
    /// # Errors
    ///
    /// As [`Hlc::now`], with `wall` as the physical clock's reading.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use concord_clock::{Clock, Hlc, ManualClock, WallTime};
    ///
    /// let clock = Arc::new(ManualClock::new(WallTime::from_micros(1_795_463_387_123_999)));
    /// let hlc = Hlc::new(clock.clone(), Duration::ZERO);
    /// let wall = clock.now();
    /// let t = hlc.now_at(wall)?;
    /// assert_eq!((t.physical_millis(), t.logical()), (1_795_463_387_123, 0));
    /// assert!(hlc.now_at(wall)? > t);
    /// # Ok::<(), concord_clock::ClockError>(())
    /// ```
    pub fn now_at(&self, wall: WallTime) -> Result<HlcTime, ClockError> {
        self.tick_at(physical_ms(wall)?)
    }

    /// The local event at physical time `local_ms` (range-checked).
    fn tick_at(&self, local_ms: i64) -> Result<HlcTime, ClockError> {
        let _tick = self.lock_tick();
        self.generator.set_current_timestamp(local_ms);
        match self.generator.next_timestamp() {
            Some(ts) => Ok(HlcTime(ts.as_u64())),
            // The local time was range-checked above, so the only way
            // `hlc-gen` fails here is logical counter overflow at the current
            // physical part (which is stable while we hold the lock).
            None => Err(ClockError::LogicalExhausted {
                physical_ms: self.generator.timestamp().timestamp(),
            }),
        }
    }

    /// Merges a timestamp received from another node (receive event).
    ///
    /// The result is strictly greater than `remote` and than every timestamp
    /// this `Hlc` produced or received before.
    ///
    /// # Errors
    ///
    /// - [`ClockError::PhysicalOutOfRange`] if the local physical clock is
    ///   out of range (`unix_ms` is the local time), or if `remote`'s
    ///   physical part is beyond [`HlcTime::MAX_PHYSICAL_MS`] (`unix_ms` is
    ///   the remote time).
    /// - [`ClockError::DriftExceeded`] if `max_drift` is non-zero and
    ///   `remote`'s physical part is more than `max_drift` ahead of the local
    ///   physical clock. Exactly `max_drift` ahead is accepted.
    /// - [`ClockError::LogicalExhausted`] if the merged logical counter
    ///   would exceed [`HlcTime::MAX_LOGICAL`].
    ///
    /// On error the state is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use concord_clock::{ClockError, Hlc, HlcTime, ManualClock, WallTime};
    ///
    /// let clock = Arc::new(ManualClock::new(WallTime::from_micros(1_795_463_387_000_000)));
    /// let hlc = Hlc::new(clock, Duration::from_millis(100));
    ///
    /// let near = HlcTime::from_parts(1_795_463_387_100, 7)?;
    /// assert_eq!(hlc.update(near)?, HlcTime::from_parts(1_795_463_387_100, 8)?);
    ///
    /// let before = hlc.last();
    /// let far = HlcTime::from_parts(1_795_463_387_101, 0)?;
    /// assert_eq!(
    ///     hlc.update(far),
    ///     Err(ClockError::DriftExceeded {
    ///         local_ms: 1_795_463_387_000,
    ///         remote_ms: 1_795_463_387_101,
    ///         max_drift_ms: 100,
    ///     })
    /// );
    /// assert_eq!(hlc.last(), before);
    /// # Ok::<(), ClockError>(())
    /// ```
    pub fn update(&self, remote: HlcTime) -> Result<HlcTime, ClockError> {
        let local_ms = self.local_physical_ms()?;
        let remote_ms = remote.physical_millis();
        let max_drift_ms = self.max_drift_ms();

        if !self.max_drift.is_zero() {
            // Both values lie within ~[1.7e12, 6.2e12]: no overflow.
            let ahead_ms = remote_ms - local_ms;
            if u64::try_from(ahead_ms).is_ok_and(|ahead| ahead > max_drift_ms) {
                return Err(ClockError::DriftExceeded {
                    local_ms,
                    remote_ms,
                    max_drift_ms,
                });
            }
        }

        let incoming = HlcTimestamp::try_from(remote.as_u64())
            .map_err(|_| ClockError::PhysicalOutOfRange { unix_ms: remote_ms })?;

        let _tick = self.lock_tick();
        self.generator.set_current_timestamp(local_ms);
        match self.generator.update(&incoming) {
            Ok(ts) => Ok(HlcTime(ts.as_u64())),
            Err(HlcError::LogicalClockExceedsMax(..)) => Err(ClockError::LogicalExhausted {
                // The overflowing counter belongs to the larger physical part
                // (the local-clock-ahead branch never overflows).
                physical_ms: remote_ms.max(self.generator.timestamp().timestamp()),
            }),
            Err(HlcError::PhysicalTimeExceedsMax(unix_ms, _))
            | Err(HlcError::TimestampBelowMin(unix_ms, _)) => {
                Err(ClockError::PhysicalOutOfRange { unix_ms })
            }
            // The generator runs with drift checking disabled, so these are
            // not produced; map them to the equivalent typed error anyway.
            Err(HlcError::DriftTooLarge(..)) | Err(HlcError::OutOfRangeTimestamp) => {
                Err(ClockError::DriftExceeded {
                    local_ms,
                    remote_ms,
                    max_drift_ms,
                })
            }
        }
    }

    /// The most recent timestamp this clock issued (from [`now`](Self::now)
    /// or [`update`](Self::update)), or [`HlcTime::MIN`] before the first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use concord_clock::{Hlc, ManualClock, WallTime};
    ///
    /// let clock = Arc::new(ManualClock::new(WallTime::from_micros(1_795_463_387_000_000)));
    /// let hlc = Hlc::new(clock, Duration::ZERO);
    /// let t = hlc.now()?;
    /// assert_eq!(hlc.last(), t);
    /// # Ok::<(), concord_clock::ClockError>(())
    /// ```
    pub fn last(&self) -> HlcTime {
        HlcTime(self.generator.timestamp().as_u64())
    }

    /// The maximum drift given to [`new`](Self::new) (zero: no check).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use concord_clock::{Hlc, SystemClock};
    ///
    /// let hlc = Hlc::new(Arc::new(SystemClock), Duration::from_millis(250));
    /// assert_eq!(hlc.max_drift(), Duration::from_millis(250));
    /// ```
    pub fn max_drift(&self) -> Duration {
        self.max_drift
    }

    /// `max_drift` in whole milliseconds, rounded up, saturating.
    fn max_drift_ms(&self) -> u64 {
        let d = self.max_drift;
        let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// Reads the physical clock in milliseconds, checking it fits the HLC.
    fn local_physical_ms(&self) -> Result<i64, ClockError> {
        physical_ms(self.clock.now())
    }

    fn lock_tick(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`; the HLC state itself is atomic, so a
        // poisoned lock carries no broken invariant.
        self.tick.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `wall` in milliseconds, checked to fit an HLC's physical part.
fn physical_ms(wall: WallTime) -> Result<i64, ClockError> {
    let unix_ms = wall.as_millis();
    if (HlcTime::MIN_PHYSICAL_MS..=HlcTime::MAX_PHYSICAL_MS).contains(&unix_ms) {
        Ok(unix_ms)
    } else {
        Err(ClockError::PhysicalOutOfRange { unix_ms })
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hlc")
            .field("clock", &self.clock)
            .field("max_drift", &self.max_drift)
            .field("last", &self.last())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde::de::IntoDeserializer;
    use serde::de::value::Error as ValueError;

    use super::*;
    use crate::clock::ManualClock;
    use crate::wall_time::WallTime;

    const T0_MS: i64 = 1_795_463_387_123;

    fn manual_hlc(ms: i64, max_drift: Duration) -> (Arc<ManualClock>, Hlc) {
        let clock = Arc::new(ManualClock::new(WallTime::from_micros(ms * 1_000)));
        let hlc = Hlc::new(clock.clone(), max_drift);
        (clock, hlc)
    }

    fn set_ms(clock: &ManualClock, ms: i64) {
        clock.set(WallTime::from_micros(ms * 1_000));
    }

    fn t(ms: i64, lc: u64) -> HlcTime {
        HlcTime::from_parts(ms, lc).unwrap()
    }

    #[test]
    fn constants_match_hlc_gen() {
        assert_eq!(
            HlcTimestamp::from_parts(HlcTime::MIN_PHYSICAL_MS, 0)
                .unwrap()
                .as_u64(),
            0
        );
        assert!(HlcTimestamp::from_parts(HlcTime::MIN_PHYSICAL_MS - 1, 0).is_err());
        assert!(HlcTimestamp::from_parts(HlcTime::MAX_PHYSICAL_MS, HlcTime::MAX_LOGICAL).is_ok());
        assert!(HlcTimestamp::from_parts(HlcTime::MAX_PHYSICAL_MS + 1, 0).is_err());
        assert!(
            HlcTimestamp::from_parts(HlcTime::MIN_PHYSICAL_MS, HlcTime::MAX_LOGICAL + 1).is_err()
        );
        assert_eq!(
            HlcTime::from_parts(HlcTime::MAX_PHYSICAL_MS, 0)
                .unwrap()
                .to_string(),
            "2109-05-15T07:35:11.103Z+0"
        );
    }

    #[test]
    fn from_parts_round_trips_and_matches_hlc_gen_layout() {
        let ours = t(T0_MS, 5);
        let theirs = HlcTimestamp::from_parts(T0_MS, 5).unwrap();
        assert_eq!(ours.as_u64(), theirs.as_u64());
        assert_eq!(ours.physical_millis(), T0_MS);
        assert_eq!(ours.logical(), 5);
        let edge = t(HlcTime::MAX_PHYSICAL_MS, HlcTime::MAX_LOGICAL);
        assert_eq!(edge.physical_millis(), HlcTime::MAX_PHYSICAL_MS);
        assert_eq!(edge.logical(), HlcTime::MAX_LOGICAL);
    }

    #[test]
    fn from_parts_rejects_out_of_range() {
        assert_eq!(
            HlcTime::from_parts(HlcTime::MIN_PHYSICAL_MS - 1, 0),
            Err(ClockError::PhysicalOutOfRange {
                unix_ms: HlcTime::MIN_PHYSICAL_MS - 1
            })
        );
        assert_eq!(
            HlcTime::from_parts(HlcTime::MAX_PHYSICAL_MS + 1, 0),
            Err(ClockError::PhysicalOutOfRange {
                unix_ms: HlcTime::MAX_PHYSICAL_MS + 1
            })
        );
        assert_eq!(
            HlcTime::from_parts(i64::MIN, 0),
            Err(ClockError::PhysicalOutOfRange { unix_ms: i64::MIN })
        );
        assert_eq!(
            HlcTime::from_parts(T0_MS, HlcTime::MAX_LOGICAL + 1),
            Err(ClockError::LogicalOutOfRange {
                logical: HlcTime::MAX_LOGICAL + 1
            })
        );
        assert_eq!(
            HlcTime::from_parts(T0_MS, u64::MAX),
            Err(ClockError::LogicalOutOfRange { logical: u64::MAX })
        );
    }

    #[test]
    fn from_u64_accepts_every_value_without_panicking() {
        for raw in [0, 1, 1 << 22, u64::MAX, u64::MAX - 1, 0xdead_beef_u64 << 20] {
            let h = HlcTime::from_u64(raw);
            assert_eq!(h.as_u64(), raw);
            assert!(h.physical_millis() >= HlcTime::MIN_PHYSICAL_MS);
            assert!(h.logical() <= HlcTime::MAX_LOGICAL);
            assert!(!h.to_string().is_empty());
        }
        assert_eq!(
            HlcTime::MAX.physical_millis(),
            HlcTime::MIN_PHYSICAL_MS + (1 << 42) - 1
        );
    }

    #[test]
    fn ordering_is_physical_then_logical() {
        assert!(t(T0_MS, HlcTime::MAX_LOGICAL) < t(T0_MS + 1, 0));
        assert!(t(T0_MS, 1) < t(T0_MS, 2));
        assert!(HlcTime::MIN < t(HlcTime::MIN_PHYSICAL_MS, 1));
        assert_eq!(HlcTime::default(), HlcTime::MIN);
    }

    #[test]
    fn display_format() {
        assert_eq!(t(T0_MS, 5).to_string(), "2026-11-23T19:49:47.123Z+5");
        assert_eq!(HlcTime::MIN.to_string(), "2024-01-01T00:00:00.000Z+0");
    }

    #[test]
    fn serde_is_transparent_u64() {
        let raw = t(T0_MS, 3).as_u64();
        let de = raw.into_deserializer();
        let h: Result<HlcTime, ValueError> = HlcTime::deserialize(de);
        assert_eq!(h.unwrap(), t(T0_MS, 3));
    }

    #[test]
    fn hlc_is_send_sync_and_debug() {
        fn assert_traits<T: Send + Sync + fmt::Debug>() {}
        assert_traits::<Hlc>();
        let (_, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        assert!(format!("{hlc:?}").contains("max_drift"));
    }

    #[test]
    fn last_starts_at_min() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        assert_eq!(hlc.last(), HlcTime::MIN);
    }

    #[test]
    fn now_uses_physical_clock_then_logical_counter() {
        let (clock, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        assert_eq!(hlc.now().unwrap(), t(T0_MS, 0));
        assert_eq!(hlc.now().unwrap(), t(T0_MS, 1));
        assert_eq!(hlc.last(), t(T0_MS, 1));
        set_ms(&clock, T0_MS + 10);
        assert_eq!(hlc.now().unwrap(), t(T0_MS + 10, 0));
    }

    #[test]
    fn now_is_strictly_increasing_when_clock_goes_backwards() {
        let (clock, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        let a = hlc.now().unwrap();
        set_ms(&clock, T0_MS - 5_000);
        let b = hlc.now().unwrap();
        let c = hlc.now().unwrap();
        assert!(a < b && b < c);
        assert_eq!(b, t(T0_MS, 1));
    }

    #[test]
    fn now_physical_part_is_floor_of_clock_millis() {
        let clock = Arc::new(ManualClock::new(WallTime::from_micros(T0_MS * 1_000 + 999)));
        let hlc = Hlc::new(clock, Duration::ZERO);
        assert_eq!(hlc.now().unwrap().physical_millis(), T0_MS);
    }

    #[test]
    fn now_at_takes_its_physical_part_from_the_reading_and_still_increases() {
        let (_clock, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        let later = WallTime::from_micros((T0_MS + 5) * 1_000 + 999);
        let t = hlc.now_at(later).unwrap();
        assert_eq!((t.physical_millis(), t.logical()), (T0_MS + 5, 0));
        // A reading behind the last event: the logical part moves on.
        let earlier = WallTime::from_micros(T0_MS * 1_000);
        let u = hlc.now_at(earlier).unwrap();
        assert_eq!((u.physical_millis(), u.logical()), (T0_MS + 5, 1));
        assert_eq!(
            hlc.now_at(WallTime::from_micros(0)),
            Err(ClockError::PhysicalOutOfRange { unix_ms: 0 })
        );
        assert_eq!(hlc.last(), u, "an error leaves the state as it was");
    }

    #[test]
    fn now_rejects_clock_out_of_range_without_moving_state() {
        let (clock, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        let first = hlc.now().unwrap();
        set_ms(&clock, HlcTime::MIN_PHYSICAL_MS - 1);
        assert_eq!(
            hlc.now(),
            Err(ClockError::PhysicalOutOfRange {
                unix_ms: HlcTime::MIN_PHYSICAL_MS - 1
            })
        );
        set_ms(&clock, HlcTime::MAX_PHYSICAL_MS + 1);
        assert_eq!(
            hlc.now(),
            Err(ClockError::PhysicalOutOfRange {
                unix_ms: HlcTime::MAX_PHYSICAL_MS + 1
            })
        );
        clock.set(WallTime::from_micros(i64::MIN));
        assert!(matches!(
            hlc.now(),
            Err(ClockError::PhysicalOutOfRange { .. })
        ));
        clock.set(WallTime::from_micros(i64::MAX));
        assert!(matches!(
            hlc.update(first),
            Err(ClockError::PhysicalOutOfRange { .. })
        ));
        assert_eq!(hlc.last(), first);
    }

    #[test]
    fn now_reports_logical_exhaustion_and_recovers_when_clock_moves() {
        let (clock, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        let top = hlc.update(t(T0_MS, HlcTime::MAX_LOGICAL - 1)).unwrap();
        assert_eq!(top, t(T0_MS, HlcTime::MAX_LOGICAL));
        assert_eq!(
            hlc.now(),
            Err(ClockError::LogicalExhausted { physical_ms: T0_MS })
        );
        assert_eq!(hlc.last(), top);
        set_ms(&clock, T0_MS + 1);
        assert_eq!(hlc.now().unwrap(), t(T0_MS + 1, 0));
    }

    #[test]
    fn update_with_remote_ahead_takes_remote_physical() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::from_millis(100));
        let remote = t(T0_MS + 100, 7);
        assert_eq!(hlc.update(remote).unwrap(), t(T0_MS + 100, 8));
    }

    #[test]
    fn update_with_remote_behind_advances_local() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::from_millis(100));
        let local = hlc.now().unwrap();
        let remote = t(T0_MS - 1_000, 50);
        let merged = hlc.update(remote).unwrap();
        assert!(merged > local && merged > remote);
        assert_eq!(merged, t(T0_MS, 1));
    }

    #[test]
    fn update_with_equal_physical_takes_max_logical_plus_one() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        hlc.now().unwrap(); // (T0, 0)
        assert_eq!(hlc.update(t(T0_MS, 9)).unwrap(), t(T0_MS, 10));
        assert_eq!(hlc.update(t(T0_MS, 3)).unwrap(), t(T0_MS, 11));
    }

    #[test]
    fn update_with_clock_ahead_of_everything_uses_clock() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        assert_eq!(hlc.update(t(T0_MS - 1, 3)).unwrap(), t(T0_MS, 0));
    }

    #[test]
    fn drift_boundary_exact_is_accepted_one_more_ms_is_refused() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::from_millis(100));
        assert!(hlc.update(t(T0_MS + 100, 0)).is_ok());
        let before = hlc.last();
        assert_eq!(
            hlc.update(t(T0_MS + 101, 0)),
            Err(ClockError::DriftExceeded {
                local_ms: T0_MS,
                remote_ms: T0_MS + 101,
                max_drift_ms: 100,
            })
        );
        assert_eq!(hlc.last(), before);
    }

    #[test]
    fn drift_is_checked_against_physical_clock_not_state() {
        // The HLC state (T0 + 1000) is ahead of the remote (T0 + 500), yet
        // the remote is refused: it is 500 ms ahead of the physical clock.
        let (clock, hlc) = manual_hlc(T0_MS + 1_000, Duration::from_millis(100));
        hlc.now().unwrap(); // state at T0 + 1000
        set_ms(&clock, T0_MS);
        assert!(matches!(
            hlc.update(t(T0_MS + 500, 0)),
            Err(ClockError::DriftExceeded { .. })
        ));
    }

    #[test]
    fn zero_max_drift_disables_the_check() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        let far = t(T0_MS + 86_400_000, 0);
        assert_eq!(hlc.update(far).unwrap(), t(T0_MS + 86_400_000, 1));
    }

    #[test]
    fn sub_millisecond_max_drift_rounds_up() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::from_micros(500));
        assert_eq!(hlc.max_drift(), Duration::from_micros(500));
        assert!(hlc.update(t(T0_MS + 1, 0)).is_ok());
        assert_eq!(
            hlc.update(t(T0_MS + 2, 0)),
            Err(ClockError::DriftExceeded {
                local_ms: T0_MS,
                remote_ms: T0_MS + 2,
                max_drift_ms: 1,
            })
        );
    }

    #[test]
    fn huge_max_drift_saturates() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::MAX);
        assert!(hlc.update(t(HlcTime::MAX_PHYSICAL_MS, 0)).is_ok());
    }

    #[test]
    fn update_rejects_remote_beyond_supported_range() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        let before = hlc.now().unwrap();
        assert_eq!(
            hlc.update(HlcTime::MAX),
            Err(ClockError::PhysicalOutOfRange {
                unix_ms: HlcTime::MAX.physical_millis()
            })
        );
        assert_eq!(hlc.last(), before);
    }

    #[test]
    fn update_reports_logical_exhaustion_from_remote() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        let before = hlc.now().unwrap();
        let remote = t(T0_MS + 5, HlcTime::MAX_LOGICAL);
        assert_eq!(
            hlc.update(remote),
            Err(ClockError::LogicalExhausted {
                physical_ms: T0_MS + 5
            })
        );
        assert_eq!(hlc.last(), before);
    }

    #[test]
    fn update_reports_logical_exhaustion_from_local_state() {
        let (_, hlc) = manual_hlc(T0_MS, Duration::ZERO);
        hlc.update(t(T0_MS + 5, HlcTime::MAX_LOGICAL - 1)).unwrap();
        let before = hlc.last();
        assert_eq!(
            hlc.update(t(T0_MS, 0)),
            Err(ClockError::LogicalExhausted {
                physical_ms: T0_MS + 5
            })
        );
        assert_eq!(hlc.last(), before);
    }
}
