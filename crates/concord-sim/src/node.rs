//! One simulated node: an engine over in-memory storage, with its own
//! skewed clock, that can crash and restart.

use std::sync::Arc;

use concord_clock::{ManualClock, WallTime};
use concord_core::{CoreError, Engine, EngineConfig, MemoryStorage};
use concord_crdt::RegionId;

/// A node: the engine (its memory) and the storage and clock that outlive it.
pub(crate) struct SimNode {
    pub(crate) region: RegionId,
    pub(crate) config: EngineConfig,
    pub(crate) storage: MemoryStorage,
    pub(crate) clock: Arc<ManualClock>,
    /// This node's clock minus simulated time, in microseconds.
    pub(crate) skew_micros: i64,
    /// The running engine; `None` while the node is down.
    pub(crate) engine: Option<Engine<MemoryStorage>>,
    /// While down: the simulated time it restarts at.
    pub(crate) down_until: i64,
}

impl SimNode {
    /// A fresh node at simulated time `now`.
    pub(crate) fn new(config: EngineConfig, skew_micros: i64, now: i64) -> Result<Self, CoreError> {
        let clock = Arc::new(ManualClock::new(WallTime::from_micros(now + skew_micros)));
        let storage = MemoryStorage::new();
        let engine = Engine::open(config.clone(), storage.clone(), clock.clone())?;
        Ok(Self {
            region: config.region,
            config,
            storage,
            clock,
            skew_micros,
            engine: Some(engine),
            down_until: 0,
        })
    }

    /// Sets the node's clock for simulated time `now`.
    pub(crate) fn set_time(&self, now: i64) {
        self.clock
            .set(WallTime::from_micros(now + self.skew_micros));
    }

    /// True while the engine runs.
    pub(crate) fn is_up(&self) -> bool {
        self.engine.is_some()
    }

    /// A crash: the engine's memory is gone, and so is every append not synced.
    pub(crate) fn crash(&mut self, until: i64) {
        self.engine = None;
        self.storage.crash();
        self.down_until = until;
    }

    /// Restarts the engine from what the storage kept.
    pub(crate) fn restart(&mut self) -> Result<&mut Engine<MemoryStorage>, CoreError> {
        let engine = Engine::open(
            self.config.clone(),
            self.storage.clone(),
            self.clock.clone(),
        )?;
        Ok(self.engine.insert(engine))
    }
}
