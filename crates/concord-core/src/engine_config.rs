//! The engine's configuration.

use std::time::Duration;

use concord_crdt::RegionId;

use crate::{Collection, CollectionConfig, LagThresholds};

/// Everything an [`crate::Engine`] needs to know besides its storage and clock.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This node's region.
    pub region: RegionId,
    /// The other regions' nodes this node exchanges writes with.
    pub peers: Vec<RegionId>,
    /// The collections and their configuration (changeable at runtime).
    pub collections: Vec<(Collection, CollectionConfig)>,
    /// A remote wall timestamp further ahead of this node's clock is held.
    pub max_skew: Duration,
    /// Most writes in one batch message.
    pub max_batch_writes: usize,
    /// Most unacknowledged batches in flight to one peer (flow control).
    pub max_in_flight: u32,
    /// Most out-of-order writes held per origin while a gap is filled.
    pub max_held_per_origin: usize,
    /// Most records the loser log keeps in memory (oldest evicted first).
    pub loser_log_capacity: usize,
    /// Checkpoint after this many applied writes (see [`crate::Engine::tick`]).
    pub checkpoint_every: u64,
    /// Send a heartbeat to a peer after this long without sending it anything.
    pub heartbeat_every: Duration,
    /// Lag thresholds for channel status.
    pub lag: LagThresholds,
    /// Largest key accepted, bytes.
    pub max_key_bytes: usize,
    /// Largest value accepted, bytes.
    pub max_value_bytes: usize,
}

impl EngineConfig {
    /// A configuration with defaults for everything but the region, peers and collections.
    pub fn new(
        region: RegionId,
        peers: Vec<RegionId>,
        collections: Vec<(Collection, CollectionConfig)>,
    ) -> Self {
        Self {
            region,
            peers,
            collections,
            max_skew: Duration::from_secs(5),
            max_batch_writes: 1000,
            max_in_flight: 8,
            max_held_per_origin: 100_000,
            loser_log_capacity: 100_000,
            checkpoint_every: 50_000,
            heartbeat_every: Duration::from_millis(500),
            lag: LagThresholds::default(),
            max_key_bytes: 4 * 1024,
            max_value_bytes: 1024 * 1024,
        }
    }
}
