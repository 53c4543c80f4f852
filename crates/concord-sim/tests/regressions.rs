//! Seeds that once failed, replayed with the configuration they failed in.
//! Every seed that exposed a bug that was then fixed is kept here.

use concord_sim::{Sim, SimConfig};

/// `(seed, nodes, steps, what it exposed)`.
const FIXED: &[(u64, u16, u32, &str)] = &[
    (
        28,
        3,
        400,
        "a node that resolved a held future write's item could not reopen (replay's HLC update hit DriftExceeded)",
    ),
    (1057, 3, 400, "same: reopen after resolving a future write"),
    (2049, 3, 400, "same: reopen after resolving a future write"),
    (3027, 3, 400, "same: reopen after resolving a future write"),
    (
        5622,
        3,
        400,
        "a future-timestamp item checkpointed open stayed open after a crash once its write was applied",
    ),
    (1840, 2, 1500, "same: future item left open after crash"),
    (2139, 2, 1500, "same: future item left open after crash"),
    (5547, 2, 1500, "same: future item left open after crash"),
    (389, 5, 800, "same: future item left open after crash"),
    (1570, 5, 800, "same: future item left open after crash"),
    (
        7,
        3,
        400,
        "after a restart the HLC absorbed only the node's own newest write: a write made after reading a remote value stamped ahead lost to it (lww-hlc)",
    ),
    (
        1024,
        3,
        400,
        "same: HLC not advanced past applied stamps on restart",
    ),
    (
        2025,
        3,
        400,
        "same: HLC not advanced past applied stamps on restart",
    ),
    (
        38,
        3,
        400,
        "one stamp beyond the drift bound (a resolution of a future write) made replay skip the HLC update for all stamps",
    ),
];

#[test]
fn seeds_that_once_failed_pass() {
    let mut failures = Vec::new();
    for (seed, nodes, steps, what) in FIXED {
        let config = SimConfig::new(*seed).with_nodes(*nodes).with_steps(*steps);
        if let Err(v) = Sim::new(config).and_then(Sim::run) {
            failures.push(format!(
                "FAILED seed={seed} nodes={nodes} steps={steps} (once: {what}): {v}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
