//! Sources of physical time: the real system clock and a manually driven one.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::wall_time::WallTime;

/// A source of physical wall-clock time.
///
/// Injected wherever physical time is needed (for example into
/// [`Hlc`](crate::Hlc)) so that tests and the deterministic simulator can
/// control time. Implementations need not be monotonic: the clock may jump
/// backwards.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use concord_clock::{Clock, ManualClock, SystemClock, WallTime};
///
/// let clocks: Vec<Arc<dyn Clock>> = vec![
///     Arc::new(SystemClock),
///     Arc::new(ManualClock::new(WallTime::from_micros(7))),
/// ];
/// assert_eq!(clocks[1].now(), WallTime::from_micros(7));
/// ```
pub trait Clock: Send + Sync + Debug {
    /// The current physical time.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::{Clock, SystemClock, WallTime};
    ///
    /// // Later than 2024-01-01T00:00:00Z on any sane machine.
    /// assert!(SystemClock.now() > WallTime::from_micros(1_704_067_200_000_000));
    /// ```
    fn now(&self) -> WallTime;
}

/// The operating system's real-time clock ([`SystemTime::now`]).
///
/// # Examples
///
/// ```
/// use concord_clock::{Clock, SystemClock};
///
/// let a = SystemClock.now();
/// let b = SystemClock.now();
/// // Usually b >= a, but the system clock may be stepped backwards.
/// assert!(b.micros_since(a) > -60_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> WallTime {
        system_micros(SystemTime::now())
    }
}

/// `t` in microseconds since the Unix epoch, rounded down (as
/// [`chrono::DateTime::timestamp_micros`] counts), saturating far outside
/// ±292,000 years. Read from [`SystemTime`] directly: through
/// [`chrono::Utc::now`] every read also built a calendar date, and the node
/// reads the clock twice per write.
fn system_micros(t: SystemTime) -> WallTime {
    let saturate = |us: u128| i64::try_from(us).unwrap_or(i64::MAX);
    WallTime::from_micros(match t.duration_since(UNIX_EPOCH) {
        Ok(after) => saturate(after.as_micros()),
        Err(before) => {
            let before = before.duration();
            let partial = u128::from(before.subsec_nanos() % 1_000 != 0);
            -saturate(before.as_micros() + partial)
        }
    })
}

/// A clock that only moves when told to; for tests and the deterministic
/// simulator.
///
/// Shareable between threads (`&self` methods, atomic interior).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use concord_clock::{Clock, ManualClock, WallTime};
///
/// let clock = ManualClock::new(WallTime::from_micros(1_000));
/// clock.advance(Duration::from_micros(500));
/// assert_eq!(clock.now(), WallTime::from_micros(1_500));
/// clock.set(WallTime::from_micros(10)); // time may go backwards
/// assert_eq!(clock.now(), WallTime::from_micros(10));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    /// Creates a clock reading `start`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::{Clock, ManualClock, WallTime};
    ///
    /// let clock = ManualClock::new(WallTime::from_micros(42));
    /// assert_eq!(clock.now().as_micros(), 42);
    /// ```
    pub const fn new(start: WallTime) -> Self {
        Self {
            micros: AtomicI64::new(start.as_micros()),
        }
    }

    /// Sets the clock to `time`, forwards or backwards.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_clock::{Clock, ManualClock, WallTime};
    ///
    /// let clock = ManualClock::new(WallTime::from_micros(42));
    /// clock.set(WallTime::from_micros(7));
    /// assert_eq!(clock.now().as_micros(), 7);
    /// ```
    pub fn set(&self, time: WallTime) {
        self.micros.store(time.as_micros(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`, saturating at the largest
    /// representable [`WallTime`]. Atomic with respect to concurrent calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use concord_clock::{Clock, ManualClock, WallTime};
    ///
    /// let clock = ManualClock::new(WallTime::from_micros(0));
    /// clock.advance(Duration::from_millis(2));
    /// assert_eq!(clock.now().as_micros(), 2_000);
    /// clock.advance(Duration::MAX);
    /// assert_eq!(clock.now().as_micros(), i64::MAX);
    /// ```
    pub fn advance(&self, by: Duration) {
        let mut current = self.micros.load(Ordering::SeqCst);
        loop {
            let next = WallTime::from_micros(current)
                .saturating_add(by)
                .as_micros();
            match self.micros.compare_exchange_weak(
                current,
                next,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> WallTime {
        WallTime::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn manual_clock_reads_what_was_set() {
        let c = ManualClock::new(WallTime::from_micros(5));
        assert_eq!(c.now(), WallTime::from_micros(5));
        c.set(WallTime::from_micros(-3));
        assert_eq!(c.now(), WallTime::from_micros(-3));
    }

    #[test]
    fn manual_clock_advance_adds_and_saturates() {
        let c = ManualClock::new(WallTime::from_micros(5));
        c.advance(Duration::from_micros(10));
        assert_eq!(c.now(), WallTime::from_micros(15));
        c.advance(Duration::ZERO);
        assert_eq!(c.now(), WallTime::from_micros(15));
        c.set(WallTime::from_micros(i64::MAX - 2));
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now(), WallTime::from_micros(i64::MAX));
    }

    #[test]
    fn manual_clock_concurrent_advance_loses_no_updates() {
        let c = Arc::new(ManualClock::new(WallTime::from_micros(0)));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        c.advance(Duration::from_micros(1));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(c.now(), WallTime::from_micros(4_000));
    }

    #[test]
    fn system_times_count_microseconds_as_chrono_does() {
        let epoch = UNIX_EPOCH;
        let times = [
            epoch,
            epoch + Duration::from_nanos(999),
            epoch + Duration::from_nanos(1_000),
            epoch + Duration::new(1_795_463_387, 123_456_789),
            epoch - Duration::from_nanos(1),
            epoch - Duration::from_nanos(1_000),
            epoch - Duration::from_nanos(1_001),
            epoch - Duration::new(86_400 * 365, 500_000_001),
        ];
        for t in times {
            let chrono_micros = chrono::DateTime::<chrono::Utc>::from(t).timestamp_micros();
            assert_eq!(system_micros(t).as_micros(), chrono_micros, "{t:?}");
        }
    }

    #[test]
    fn system_clock_is_close_to_chrono_now() {
        let reference = WallTime::from_datetime(chrono::Utc::now());
        let now = SystemClock.now();
        assert!(now.micros_since(reference).abs() < 1_000_000);
    }

    #[test]
    fn clocks_are_usable_as_trait_objects() {
        let c: Arc<dyn Clock> = Arc::new(ManualClock::new(WallTime::from_micros(9)));
        assert_eq!(c.now(), WallTime::from_micros(9));
        let s: Arc<dyn Clock> = Arc::new(SystemClock);
        assert!(s.now() > WallTime::from_micros(0));
    }
}
