//! Property tests for `SkewGuard`.

use std::time::Duration;

use concord_clock::{SkewGuard, SkewVerdict, WallTime};
use proptest::prelude::*;

proptest! {
    /// (e) Exactly `max_skew` ahead is acceptable, one microsecond more is
    /// refused with the right numbers, and anything in the past is fine.
    #[test]
    fn boundary(
        local in -4_000_000_000_000_000_i64..4_000_000_000_000_000,
        max_skew_micros in 0..1_000_000_000_000_u64,
        behind_micros in 0..1_000_000_000_000_u64,
    ) {
        let guard = SkewGuard::new(Duration::from_micros(max_skew_micros));
        let local = WallTime::from_micros(local);
        let edge = local.saturating_add(Duration::from_micros(max_skew_micros));
        let beyond = edge.saturating_add(Duration::from_micros(1));
        let past = local.saturating_sub(Duration::from_micros(behind_micros));

        prop_assert_eq!(guard.check(local, edge), SkewVerdict::Acceptable);
        prop_assert_eq!(
            guard.check(local, beyond),
            SkewVerdict::BeyondMaxSkew {
                ahead_by: Duration::from_micros(max_skew_micros + 1),
                max_skew: Duration::from_micros(max_skew_micros),
            }
        );
        prop_assert_eq!(guard.check(local, past), SkewVerdict::Acceptable);
    }

    /// The verdict only depends on how far ahead the remote is.
    #[test]
    fn verdict_matches_definition(local in any::<i64>(), remote in any::<i64>(), max_skew_micros in any::<u32>()) {
        let guard = SkewGuard::new(Duration::from_micros(u64::from(max_skew_micros)));
        let ahead = i128::from(remote) - i128::from(local);
        let acceptable = ahead <= i128::from(max_skew_micros);
        let verdict = guard.check(WallTime::from_micros(local), WallTime::from_micros(remote));
        prop_assert_eq!(verdict.is_acceptable(), acceptable);
    }
}
