//! CI's sweep: 200 seeds of the default run (3 nodes, 400 fault-phase
//! steps, default fault rates) must keep every invariant. A failure names
//! its seed; replay it with `cargo run --release -p concord-sim -- --seeds 1 --from <seed>`.

use concord_sim::{FaultRates, Sim, SimConfig};

const SEEDS: u64 = 200;

#[test]
fn two_hundred_seeds_keep_every_invariant() {
    let mut failures = Vec::new();
    let (mut writes, mut crashes, mut partitions, mut held, mut lost) = (0, 0, 0, 0, 0);
    for seed in 0..SEEDS {
        match Sim::new(SimConfig::new(seed)).and_then(Sim::run) {
            Ok(report) => {
                writes += report.writes;
                crashes += report.crashes;
                partitions += report.partitions;
                held += report.stats.future_held;
                lost += report.lost_unacked;
            }
            Err(violation) => failures.push(format!("FAILED seed={seed}: {violation}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The sweep really exercised the faults it claims to.
    assert!(writes > SEEDS * 300, "{writes} writes");
    assert!(crashes > SEEDS, "{crashes} crashes");
    assert!(partitions > SEEDS / 2, "{partitions} partitions");
    assert!(held > 0, "no write was ever held for its future timestamp");
    assert!(lost > 0, "no crash ever lost an unacknowledged write");
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 41] {
        let a = Sim::new(SimConfig::new(seed)).and_then(Sim::run).unwrap();
        let b = Sim::new(SimConfig::new(seed)).and_then(Sim::run).unwrap();
        assert_eq!(a, b, "seed {seed}");
    }
    let a = Sim::new(SimConfig::new(1)).and_then(Sim::run).unwrap();
    let b = Sim::new(SimConfig::new(2)).and_then(Sim::run).unwrap();
    assert_ne!(a, b, "different seeds, different runs");
}

#[test]
fn without_faults_nothing_is_lost_or_broken() {
    for seed in 0..20 {
        let config = SimConfig::new(seed).with_faults(FaultRates::none());
        let report = Sim::new(config).and_then(Sim::run).unwrap();
        assert_eq!(
            report.crashes + report.partitions + report.connection_breaks,
            0
        );
        assert_eq!(report.lost_unacked, 0);
        assert_eq!(
            report.acked, report.writes,
            "seed {seed}: every write acknowledged"
        );
    }
}

#[test]
fn larger_clusters_and_longer_runs_keep_every_invariant() {
    for (nodes, steps, seeds) in [(2, 1200, 0..10), (5, 600, 0..10)] {
        for seed in seeds {
            let config = SimConfig::new(seed).with_nodes(nodes).with_steps(steps);
            if let Err(v) = Sim::new(config).and_then(Sim::run) {
                panic!("FAILED seed={seed} nodes={nodes} steps={steps}: {v}");
            }
        }
    }
}
