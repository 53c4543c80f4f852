//! The ownership scenarios over a range of seeds: a takeover of a
//! partitioned owner with writes on both sides, a planned handoff under
//! load, and a takeover whose reported data at risk is exactly what was lost.

use concord_sim::ownership::{partition_takeover, planned_handoff, takeover_at_risk};

const SEEDS: u64 = 12;

#[test]
fn partition_take_over_write_on_both_sides_heal() {
    let (mut fenced, mut resolved, mut refused) = (0, 0, 0);
    for seed in 0..SEEDS {
        let report = partition_takeover(seed).unwrap_or_else(|v| panic!("FAILED {v}"));
        fenced += report.fenced;
        resolved += report.resolved;
        refused += report.refused;
        assert!(report.failover.is_some());
    }
    // The scenario really fenced and queued writes, and the application
    // really resolved some.
    assert!(fenced > SEEDS, "{fenced} fenced");
    assert!(resolved > 0, "{resolved} resolved");
    assert!(
        refused > 0,
        "no write was ever refused for an unreachable owner"
    );
}

#[test]
fn planned_handoff_under_load_loses_nothing() {
    let (mut accepted, mut forwarded) = (0, 0);
    for seed in 0..SEEDS {
        let report = planned_handoff(seed).unwrap_or_else(|v| panic!("FAILED {v}"));
        accepted += report.accepted;
        forwarded += report.forwarded;
        assert_eq!(report.fenced, 0);
    }
    assert!(accepted > SEEDS * 100, "{accepted} accepted");
    assert!(forwarded > 0);
}

#[test]
fn reported_data_at_risk_is_exactly_what_was_lost() {
    let mut lost = 0;
    for seed in 0..SEEDS {
        let report = takeover_at_risk(seed).unwrap_or_else(|v| panic!("FAILED {v}"));
        let event = report.failover.expect("a takeover");
        assert_eq!(event.at_risk_writes, report.really_lost);
        assert_eq!(report.fenced, report.really_lost);
        lost += report.really_lost;
    }
    assert!(lost > SEEDS, "the stalls really lost writes: {lost}");
}
