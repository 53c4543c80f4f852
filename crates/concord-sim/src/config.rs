//! What one simulation run does: the seed, the cluster size, the length of
//! the fault phase, and how often each fault strikes.

/// How often each fault strikes during the fault phase.
///
/// Per-message rates apply to every message put on the wire; per-step rates
/// are tried once per simulated step.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRates {
    /// Per message: a second copy is delivered (with its own delay).
    pub duplicate: f64,
    /// Per message: the connection breaks instead (gRPC streams do not drop
    /// single messages): both ends disconnect, everything queued on the link
    /// is lost, and the link reconnects later.
    pub drop: f64,
    /// Per message: the delay is a long spike instead of a short one, which
    /// reorders it behind later messages.
    pub delay_spike: f64,
    /// Per step: a partition starts (when none is active), cutting a random
    /// group of nodes off from the rest until it heals.
    pub partition: f64,
    /// Per step: a random up node crashes (unsynced appends and all memory
    /// lost) and restarts later from its storage.
    pub crash: f64,
    /// Per run: one node's clock runs far in the future (beyond the max
    /// skew), so its writes are held elsewhere until the others' clocks pass.
    pub future_node: f64,
}

impl Default for FaultRates {
    fn default() -> Self {
        Self {
            duplicate: 0.03,
            drop: 0.01,
            delay_spike: 0.08,
            partition: 0.01,
            crash: 0.008,
            future_node: 0.15,
        }
    }
}

impl FaultRates {
    /// No faults at all: a perfect network, synchronised clocks aside from
    /// ordinary skew, no crashes.
    pub fn none() -> Self {
        Self {
            duplicate: 0.0,
            drop: 0.0,
            delay_spike: 0.0,
            partition: 0.0,
            crash: 0.0,
            future_node: 0.0,
        }
    }
}

/// The configuration of one run; everything random derives from `seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The one seed the whole run derives from.
    pub seed: u64,
    /// How many nodes (regions), at least 2.
    pub nodes: u16,
    /// Steps of the fault phase (client writes and faults); the heal phase
    /// that follows runs until the cluster is quiescent.
    pub steps: u32,
    /// How often each fault strikes.
    pub faults: FaultRates,
    /// Clients also remember contexts read while the node held writes to
    /// the entity that were not yet durable, and write with them later,
    /// elsewhere. On by default: the engine leaves such writes' dots out of
    /// the contexts it hands out, so a crash that loses them cannot make a
    /// remembered context cover a later write that reuses the dot.
    pub dirty_contexts: bool,
}

impl SimConfig {
    /// Three nodes, 400 steps, the default fault rates.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: 3,
            steps: 400,
            faults: FaultRates::default(),
            dirty_contexts: true,
        }
    }

    /// The same, with `nodes` nodes.
    pub fn with_nodes(mut self, nodes: u16) -> Self {
        self.nodes = nodes;
        self
    }

    /// The same, with `steps` fault-phase steps.
    pub fn with_steps(mut self, steps: u32) -> Self {
        self.steps = steps;
        self
    }

    /// The same, with clients remembering contexts of not-yet-durable reads.
    pub fn with_dirty_contexts(mut self, dirty: bool) -> Self {
        self.dirty_contexts = dirty;
        self
    }

    /// The same, with other fault rates.
    pub fn with_faults(mut self, faults: FaultRates) -> Self {
        self.faults = faults;
        self
    }
}
