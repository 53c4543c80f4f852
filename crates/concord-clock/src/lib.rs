//! Physical and logical time for Concord.
//!
//! - [`WallTime`]: microseconds since the Unix epoch, UTC.
//! - [`Clock`]: an injectable source of [`WallTime`], with the real
//!   [`SystemClock`] and the test/simulator [`ManualClock`].
//! - [`HlcTime`] and [`Hlc`]: hybrid logical clock timestamps (built on
//!   `hlc-gen`) whose order respects causality across regions.
//! - [`SkewGuard`]: refuses remote wall-clock timestamps too far in the
//!   future.
//! - [`ClockError`]: the crate's only error type.
//!
//! The crate is pure: no I/O, no async runtime. All physical time flows
//! through a [`Clock`], so a simulator can drive it deterministically.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use concord_clock::{Clock, Hlc, ManualClock, SkewGuard, SkewVerdict, WallTime};
//!
//! let clock = Arc::new(ManualClock::new(WallTime::from_micros(1_795_463_387_123_456)));
//! let hlc = Hlc::new(clock.clone(), Duration::from_millis(500));
//! let sent = hlc.now()?;
//! assert_eq!(sent.to_string(), "2026-11-23T19:49:47.123Z+0");
//!
//! let guard = SkewGuard::new(Duration::from_secs(1));
//! let remote = clock.now().saturating_add(Duration::from_secs(2));
//! assert!(matches!(guard.check(clock.now(), remote), SkewVerdict::BeyondMaxSkew { .. }));
//! # Ok::<(), concord_clock::ClockError>(())
//! ```

mod clock;
mod error;
mod hlc;
mod skew;
mod wall_time;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::ClockError;
pub use hlc::{Hlc, HlcTime};
pub use skew::{SkewGuard, SkewVerdict};
pub use wall_time::WallTime;
