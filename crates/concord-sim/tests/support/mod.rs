//! A hand-driven pair of engines for the directed tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use concord_clock::{ManualClock, WallTime};
use concord_core::{
    ClientOp, ClientWrite, Collection, CollectionConfig, Engine, EngineConfig, MemoryStorage,
    Outgoing, Policy,
};
use concord_crdt::{RegionId, VersionVector};

const NOON: i64 = 1_795_435_200_000_000;

/// One engine with the storage and clock that outlive it.
pub struct Node {
    pub engine: Engine<MemoryStorage>,
    pub storage: MemoryStorage,
    pub clock: Arc<ManualClock>,
    pub config: EngineConfig,
}

impl Node {
    pub fn new(region: u16, peers: &[u16], skew: Duration) -> Self {
        let collections = vec![
            (
                Collection::new("hlc").expect("the test harness step succeeds"),
                CollectionConfig::new(Policy::LwwHlc),
            ),
            (
                Collection::new("queue").expect("the test harness step succeeds"),
                CollectionConfig::new(Policy::Queue),
            ),
            (
                Collection::new("mv").expect("the test harness step succeeds"),
                CollectionConfig::new(Policy::Mv),
            ),
        ];
        let config = EngineConfig::new(
            RegionId::new(region),
            peers.iter().map(|p| RegionId::new(*p)).collect(),
            collections,
        );
        let clock = Arc::new(ManualClock::new(
            WallTime::from_micros(NOON).saturating_add(skew),
        ));
        let storage = MemoryStorage::new();
        let engine = Engine::open(config.clone(), storage.clone(), clock.clone())
            .expect("the test harness step succeeds");
        Self {
            engine,
            storage,
            clock,
            config,
        }
    }

    pub fn put(&mut self, collection: &str, key: &str, value: &str) -> concord_core::WriteRef {
        self.put_with(collection, key, value, None)
    }

    /// A put with the context of an earlier read.
    pub fn put_with(
        &mut self,
        collection: &str,
        key: &str,
        value: &str,
        context: Option<VersionVector>,
    ) -> concord_core::WriteRef {
        self.engine
            .write(ClientWrite {
                collection: Collection::new(collection).expect("the test harness step succeeds"),
                key: key.as_bytes().to_vec(),
                op: ClientOp::Put(value.as_bytes().to_vec()),
                context,
            })
            .expect("the test harness step succeeds")
            .write
    }

    /// Crash (unsynced appends lost) and reopen from storage.
    pub fn crash_and_reopen(&mut self) -> Result<(), concord_core::CoreError> {
        self.storage.crash();
        self.engine = Engine::open(
            self.config.clone(),
            self.storage.clone(),
            self.clock.clone(),
        )?;
        Ok(())
    }
}

/// Delivers `out` (from `from`) to `to`, returning the replies.
pub fn deliver(from: &Node, to: &mut Node, out: Vec<Outgoing>) -> Vec<Outgoing> {
    let mut replies = Vec::new();
    for o in out {
        assert_eq!(o.to, to.engine.region());
        replies.extend(
            to.engine
                .receive(from.engine.region(), o.message)
                .expect("the test harness step succeeds"),
        );
    }
    replies
}

/// Connects `a` and `b` (hellos both ways).
pub fn connect(a: &mut Node, b: &mut Node) {
    let to_b = a
        .engine
        .connect(b.engine.region())
        .expect("the test harness step succeeds");
    let to_a = b
        .engine
        .connect(a.engine.region())
        .expect("the test harness step succeeds");
    deliver(a, b, to_b);
    deliver(b, a, to_a);
}

/// Commits both, and exchanges batches and acks until neither sends the
/// other more (what they would send to third nodes is dropped).
pub fn pump(a: &mut Node, b: &mut Node) {
    for _ in 0..100 {
        let mut moved = false;
        for flip in [false, true] {
            let (x, y) = if flip {
                (&mut *b, &mut *a)
            } else {
                (&mut *a, &mut *b)
            };
            x.engine.commit().expect("the test harness step succeeds");
            let to = y.engine.region();
            let out: Vec<Outgoing> = x
                .engine
                .poll()
                .expect("the test harness step succeeds")
                .into_iter()
                .filter(|o| o.to == to)
                .collect();
            moved |= !out.is_empty();
            let replies = deliver(x, y, out);
            deliver(y, x, replies);
        }
        if !moved {
            return;
        }
    }
    panic!("the pair did not settle");
}
