//! Refusing remote wall-clock timestamps that lie too far in the future.

use std::time::Duration;

use crate::wall_time::WallTime;

/// Outcome of [`SkewGuard::check`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use concord_clock::{SkewGuard, SkewVerdict, WallTime};
///
/// let guard = SkewGuard::new(Duration::from_micros(10));
/// let verdict = guard.check(WallTime::from_micros(0), WallTime::from_micros(11));
/// assert_eq!(
///     verdict,
///     SkewVerdict::BeyondMaxSkew {
///         ahead_by: Duration::from_micros(11),
///         max_skew: Duration::from_micros(10),
///     }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkewVerdict {
    /// The remote timestamp is not further ahead than the allowed skew.
    Acceptable,
    /// The remote timestamp is further in the future than allowed.
    BeyondMaxSkew {
        /// How far the remote timestamp is ahead of local time (whole
        /// microseconds; capped at `i64::MAX` µs).
        ahead_by: Duration,
        /// The configured maximum skew.
        max_skew: Duration,
    },
}

impl SkewVerdict {
    /// `true` for [`SkewVerdict::Acceptable`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use concord_clock::{SkewGuard, WallTime};
    ///
    /// let guard = SkewGuard::new(Duration::from_secs(1));
    /// assert!(guard.check(WallTime::from_micros(0), WallTime::from_micros(5)).is_acceptable());
    /// ```
    pub const fn is_acceptable(self) -> bool {
        matches!(self, Self::Acceptable)
    }
}

/// Guards against remote wall-clock timestamps from the future.
///
/// Only the future direction is refused: a remote timestamp in the past is
/// ordinary replication delay. A remote timestamp exactly `max_skew` ahead is
/// acceptable; one microsecond more is not.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use concord_clock::{SkewGuard, SkewVerdict, WallTime};
///
/// let guard = SkewGuard::new(Duration::from_millis(500));
/// let local = WallTime::from_micros(1_795_463_387_000_000);
/// let edge = local.saturating_add(Duration::from_millis(500));
/// assert_eq!(guard.check(local, edge), SkewVerdict::Acceptable);
/// let past = local.saturating_sub(Duration::from_secs(3_600));
/// assert_eq!(guard.check(local, past), SkewVerdict::Acceptable);
/// assert!(!guard.check(local, edge.saturating_add(Duration::from_micros(1))).is_acceptable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SkewGuard {
    max_skew: Duration,
}

impl SkewGuard {
    /// Creates a guard allowing remote timestamps up to `max_skew` ahead of
    /// local time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use concord_clock::SkewGuard;
    ///
    /// let guard = SkewGuard::new(Duration::from_secs(2));
    /// assert_eq!(guard.max_skew(), Duration::from_secs(2));
    /// ```
    pub const fn new(max_skew: Duration) -> Self {
        Self { max_skew }
    }

    /// The configured maximum skew.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use concord_clock::SkewGuard;
    ///
    /// assert_eq!(SkewGuard::new(Duration::ZERO).max_skew(), Duration::ZERO);
    /// ```
    pub const fn max_skew(&self) -> Duration {
        self.max_skew
    }

    /// Judges a remote timestamp against local time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use concord_clock::{SkewGuard, SkewVerdict, WallTime};
    ///
    /// let guard = SkewGuard::new(Duration::from_micros(100));
    /// let local = WallTime::from_micros(1_000);
    /// assert_eq!(guard.check(local, WallTime::from_micros(1_100)), SkewVerdict::Acceptable);
    /// assert_eq!(
    ///     guard.check(local, WallTime::from_micros(1_101)),
    ///     SkewVerdict::BeyondMaxSkew {
    ///         ahead_by: Duration::from_micros(101),
    ///         max_skew: Duration::from_micros(100),
    ///     }
    /// );
    /// ```
    pub fn check(&self, local_now: WallTime, remote: WallTime) -> SkewVerdict {
        let Ok(ahead_micros) = u64::try_from(remote.micros_since(local_now)) else {
            // Remote is in the past.
            return SkewVerdict::Acceptable;
        };
        let ahead_by = Duration::from_micros(ahead_micros);
        if ahead_by <= self.max_skew {
            SkewVerdict::Acceptable
        } else {
            SkewVerdict::BeyondMaxSkew {
                ahead_by,
                max_skew: self.max_skew,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: WallTime = WallTime::from_micros(1_795_463_387_000_000);

    #[test]
    fn exactly_max_skew_ahead_is_acceptable() {
        let g = SkewGuard::new(Duration::from_millis(250));
        let remote = LOCAL.saturating_add(Duration::from_millis(250));
        assert_eq!(g.check(LOCAL, remote), SkewVerdict::Acceptable);
    }

    #[test]
    fn one_micro_beyond_max_skew_is_refused() {
        let g = SkewGuard::new(Duration::from_millis(250));
        let remote = LOCAL.saturating_add(Duration::from_micros(250_001));
        assert_eq!(
            g.check(LOCAL, remote),
            SkewVerdict::BeyondMaxSkew {
                ahead_by: Duration::from_micros(250_001),
                max_skew: Duration::from_millis(250),
            }
        );
    }

    #[test]
    fn past_remote_is_always_acceptable() {
        let g = SkewGuard::new(Duration::ZERO);
        assert_eq!(
            g.check(LOCAL, LOCAL.saturating_sub(Duration::from_secs(86_400))),
            SkewVerdict::Acceptable
        );
        assert_eq!(
            g.check(
                WallTime::from_micros(i64::MAX),
                WallTime::from_micros(i64::MIN)
            ),
            SkewVerdict::Acceptable
        );
    }

    #[test]
    fn zero_max_skew_allows_equal_refuses_any_future() {
        let g = SkewGuard::new(Duration::ZERO);
        assert!(g.check(LOCAL, LOCAL).is_acceptable());
        assert!(
            !g.check(LOCAL, LOCAL.saturating_add(Duration::from_micros(1)))
                .is_acceptable()
        );
    }

    #[test]
    fn sub_microsecond_max_skew_compares_exactly() {
        let g = SkewGuard::new(Duration::from_nanos(1_500));
        assert!(
            g.check(LOCAL, LOCAL.saturating_add(Duration::from_micros(1)))
                .is_acceptable()
        );
        assert!(
            !g.check(LOCAL, LOCAL.saturating_add(Duration::from_micros(2)))
                .is_acceptable()
        );
    }

    #[test]
    fn extreme_distance_saturates_ahead_by() {
        let g = SkewGuard::new(Duration::from_secs(1));
        assert_eq!(
            g.check(
                WallTime::from_micros(i64::MIN),
                WallTime::from_micros(i64::MAX)
            ),
            SkewVerdict::BeyondMaxSkew {
                ahead_by: Duration::from_micros(i64::MAX as u64),
                max_skew: Duration::from_secs(1),
            }
        );
    }

    #[test]
    fn max_skew_accessor_returns_configured_value() {
        assert_eq!(
            SkewGuard::new(Duration::from_millis(7)).max_skew(),
            Duration::from_millis(7)
        );
    }
}
