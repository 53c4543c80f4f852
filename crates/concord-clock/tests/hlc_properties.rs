//! Property tests for `Hlc` and `HlcTime`.

use std::sync::Arc;
use std::time::Duration;

use concord_clock::{ClockError, Hlc, HlcTime, ManualClock, WallTime};
use proptest::prelude::*;

/// A physical time around which most generated values cluster, so that
/// clock readings and remote timestamps frequently collide or interleave.
const BASE_MS: i64 = 1_795_463_387_000;

/// Physical times (ms) within hlc-gen's supported range.
fn physical_ms() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => (BASE_MS - 20)..(BASE_MS + 20),
        1 => HlcTime::MIN_PHYSICAL_MS..=HlcTime::MAX_PHYSICAL_MS,
        1 => Just(HlcTime::MIN_PHYSICAL_MS),
        1 => Just(HlcTime::MAX_PHYSICAL_MS),
    ]
}

/// Clock readings (µs) whose millisecond part lies within hlc-gen's range.
fn clock_micros() -> impl Strategy<Value = i64> {
    (physical_ms(), 0..1_000_i64).prop_map(|(ms, us)| ms * 1_000 + us)
}

fn logical() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..4_u64,
        1 => (HlcTime::MAX_LOGICAL - 3)..=HlcTime::MAX_LOGICAL,
        1 => 0..=HlcTime::MAX_LOGICAL,
    ]
}

fn hlc_time() -> impl Strategy<Value = HlcTime> {
    (physical_ms(), logical())
        .prop_map(|(ms, lc)| HlcTime::from_parts(ms, lc).expect("strategy stays within range"))
}

#[derive(Debug, Clone)]
enum Op {
    SetClock(i64),
    Now,
    Update(HlcTime),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        clock_micros().prop_map(Op::SetClock),
        Just(Op::Now),
        hlc_time().prop_map(Op::Update),
    ]
}

fn max_drift() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        (1..50_u64).prop_map(Duration::from_millis),
        Just(Duration::MAX),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) Every successful `now()`/`update()` result is strictly greater than
    /// every earlier successful result, whatever the clock does.
    #[test]
    fn timestamps_strictly_increase(
        start in clock_micros(),
        drift in max_drift(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let clock = Arc::new(ManualClock::new(WallTime::from_micros(start)));
        let hlc = Hlc::new(clock.clone(), drift);
        let mut previous: Option<HlcTime> = None;
        for op in ops {
            let before = hlc.last();
            let result = match op {
                Op::SetClock(us) => {
                    clock.set(WallTime::from_micros(us));
                    continue;
                }
                Op::Now => hlc.now(),
                Op::Update(remote) => hlc.update(remote),
            };
            match result {
                Ok(ts) => {
                    if let Some(p) = previous {
                        prop_assert!(ts > p, "{ts} not > previous {p}");
                    }
                    prop_assert_eq!(hlc.last(), ts);
                    previous = Some(ts);
                }
                Err(err) => {
                    prop_assert!(
                        matches!(
                            err,
                            ClockError::LogicalExhausted { .. } | ClockError::DriftExceeded { .. }
                        ),
                        "unexpected error {err:?}"
                    );
                    prop_assert_eq!(hlc.last(), before);
                }
            }
        }
    }

    /// (b) A successful `update(remote)` returns a timestamp greater than
    /// `remote` and than the previous state.
    #[test]
    fn update_result_exceeds_remote(
        start in clock_micros(),
        warmup in prop::collection::vec(op(), 0..20),
        later in clock_micros(),
        remote in hlc_time(),
    ) {
        let clock = Arc::new(ManualClock::new(WallTime::from_micros(start)));
        let hlc = Hlc::new(clock.clone(), Duration::ZERO);
        for op in warmup {
            // Warm-up results are irrelevant here; they only shape the state.
            let _ = match op {
                Op::SetClock(us) => {
                    clock.set(WallTime::from_micros(us));
                    continue;
                }
                Op::Now => hlc.now(),
                Op::Update(r) => hlc.update(r),
            };
        }
        clock.set(WallTime::from_micros(later));
        let before = hlc.last();
        if let Ok(merged) = hlc.update(remote) {
            prop_assert!(merged > remote, "{merged} not > remote {remote}");
            prop_assert!(merged > before, "{merged} not > previous {before}");
            prop_assert!(merged.physical_millis() >= WallTime::from_micros(later).as_millis());
        }
    }

    /// (c) `DriftExceeded` is returned exactly when the remote is more than
    /// `max_drift` ahead of the physical clock, and leaves `last()` unchanged.
    #[test]
    fn drift_exceeded_leaves_state_unchanged(
        local_ms in (HlcTime::MIN_PHYSICAL_MS + 1_000)..(HlcTime::MAX_PHYSICAL_MS - 1_000),
        drift_ms in 1..500_u64,
        offset_ms in -1_000..1_000_i64,
        remote_lc in logical(),
        warm_up_now in any::<bool>(),
    ) {
        let clock = Arc::new(ManualClock::new(WallTime::from_micros(local_ms * 1_000)));
        let hlc = Hlc::new(clock, Duration::from_millis(drift_ms));
        if warm_up_now {
            hlc.now().expect("clock is in range");
        }
        let before = hlc.last();
        let remote_ms = local_ms + offset_ms;
        let remote = HlcTime::from_parts(remote_ms, remote_lc).expect("in range");
        let too_far = offset_ms > i64::try_from(drift_ms).expect("small");
        match hlc.update(remote) {
            Err(ClockError::DriftExceeded { local_ms: l, remote_ms: r, max_drift_ms: d }) => {
                prop_assert!(too_far);
                prop_assert_eq!((l, r, d), (local_ms, remote_ms, drift_ms));
                prop_assert_eq!(hlc.last(), before);
            }
            other => {
                prop_assert!(!too_far, "expected DriftExceeded, got {other:?}");
            }
        }
    }

    /// `from_parts` and the accessors round-trip, and the raw order equals
    /// the (physical, logical) lexicographic order.
    #[test]
    fn from_parts_round_trip_and_order(a in hlc_time(), b in hlc_time()) {
        let back = HlcTime::from_parts(a.physical_millis(), a.logical()).expect("in range");
        prop_assert_eq!(back, a);
        prop_assert_eq!(HlcTime::from_u64(a.as_u64()), a);
        prop_assert_eq!(
            a.cmp(&b),
            (a.physical_millis(), a.logical()).cmp(&(b.physical_millis(), b.logical()))
        );
    }

    /// Any raw `u64` is accepted and its accessors and `Display` never panic.
    #[test]
    fn any_u64_is_a_valid_layout(raw in any::<u64>()) {
        let t = HlcTime::from_u64(raw);
        prop_assert_eq!(t.as_u64(), raw);
        prop_assert!(t.logical() <= HlcTime::MAX_LOGICAL);
        prop_assert!(t.physical_millis() >= HlcTime::MIN_PHYSICAL_MS);
        let shown = t.to_string();
        let suffix = format!("Z+{}", t.logical());
        prop_assert!(shown.ends_with(&suffix), "{shown}");
    }
}
