//! Property tests for `WallTime`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use concord_clock::WallTime;
use proptest::prelude::*;

fn chrono_min_micros() -> i64 {
    DateTime::<Utc>::MIN_UTC.timestamp_micros()
}

fn chrono_max_micros() -> i64 {
    DateTime::<Utc>::MAX_UTC.timestamp_micros()
}

proptest! {
    /// (d) In-range microseconds survive a `DateTime` round trip.
    #[test]
    fn datetime_round_trip(micros in chrono_min_micros()..=chrono_max_micros()) {
        let t = WallTime::from_micros(micros);
        let dt = t.to_datetime().expect("in chrono's range");
        prop_assert_eq!(WallTime::from_datetime(dt), t);
    }

    /// `Display` output for years 0000..=9999 parses back as RFC 3339 to the
    /// same instant.
    #[test]
    fn display_parses_back(micros in -62_167_219_200_000_000_i64..253_402_300_799_999_999) {
        let t = WallTime::from_micros(micros);
        let shown = t.to_string();
        prop_assert!(shown.ends_with('Z'));
        let parsed = DateTime::parse_from_rfc3339(&shown).expect("valid RFC 3339");
        prop_assert_eq!(WallTime::from_datetime(parsed.with_timezone(&Utc)), t);
    }

    /// No method panics on any `i64`, `as_millis` floors, and saturating
    /// arithmetic stays consistent with `micros_since`.
    #[test]
    fn never_panics_and_arithmetic_is_consistent(
        micros in prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX)],
        other in any::<i64>(),
        step in any::<u32>(),
    ) {
        let t = WallTime::from_micros(micros);
        let _ = t.to_string();
        let _ = t.to_datetime();
        // as_millis is the floor of micros / 1000.
        let ms = i128::from(t.as_millis());
        prop_assert!(ms * 1_000 <= i128::from(micros) && i128::from(micros) < (ms + 1) * 1_000);
        let d = Duration::from_micros(u64::from(step));
        let up = t.saturating_add(d);
        let down = t.saturating_sub(d);
        prop_assert!(up >= t && down <= t);
        if up.as_micros() != i64::MAX {
            prop_assert_eq!(up.micros_since(t), i64::from(step));
        }
        if down.as_micros() != i64::MIN {
            prop_assert_eq!(t.micros_since(down), i64::from(step));
        }
        let o = WallTime::from_micros(other);
        let expected = i64::try_from(i128::from(micros) - i128::from(other))
            .unwrap_or(if micros > other { i64::MAX } else { i64::MIN });
        prop_assert_eq!(t.micros_since(o), expected);
    }
}
