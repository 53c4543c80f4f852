//! A small synchronous network of engines for the engine tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use concord_clock::{ManualClock, WallTime};
use concord_core::{
    ClientOp, ClientWrite, Collection, CollectionConfig, Engine, EngineConfig, MemoryStorage,
    Outgoing, PeerMessage, Policy, ReadValue, Replication,
};
use concord_crdt::RegionId;

pub const NOON: i64 = 1_795_435_200_000_000;

pub fn col(name: &str) -> Collection {
    Collection::new(name).expect("valid name")
}

pub fn r(id: u16) -> RegionId {
    RegionId::new(id)
}

/// One collection per policy, plus a residency-limited one.
pub fn collections() -> Vec<(Collection, CollectionConfig)> {
    vec![
        (col("wall"), CollectionConfig::new(Policy::LwwWall)),
        (col("hlc"), CollectionConfig::new(Policy::LwwHlc)),
        (col("mv"), CollectionConfig::new(Policy::Mv)),
        (col("counter"), CollectionConfig::new(Policy::Counter)),
        (col("queue"), CollectionConfig::new(Policy::Queue)),
        (
            col("eu_only"),
            CollectionConfig::new(Policy::LwwHlc)
                .with_replication(Replication::Regions(vec![r(0), r(1)])),
        ),
        (
            col("local"),
            CollectionConfig::new(Policy::LwwHlc).with_replication(Replication::LocalOnly),
        ),
    ]
}

pub struct Node {
    pub engine: Engine<MemoryStorage>,
    pub storage: MemoryStorage,
    pub clock: Arc<ManualClock>,
    pub config: EngineConfig,
}

pub struct Net {
    pub nodes: Vec<Node>,
    /// Messages in flight: (from, to, message).
    pub wire: VecDeque<(RegionId, RegionId, PeerMessage)>,
    /// Links that are cut: messages between them are dropped.
    pub cut: Vec<(RegionId, RegionId)>,
}

impl Net {
    pub fn new(n: u16) -> Self {
        Self::with(n, |_| {})
    }

    pub fn with(n: u16, tweak: impl Fn(&mut EngineConfig)) -> Self {
        let regions: Vec<RegionId> = (0..n).map(r).collect();
        let nodes = regions
            .iter()
            .map(|region| {
                let clock = Arc::new(ManualClock::new(WallTime::from_micros(NOON)));
                let peers = regions.iter().copied().filter(|p| p != region).collect();
                let mut config = EngineConfig::new(*region, peers, collections());
                config.max_batch_writes = 3;
                tweak(&mut config);
                let storage = MemoryStorage::new();
                let engine = Engine::open(config.clone(), storage.clone(), clock.clone())
                    .expect("open engine");
                Node {
                    engine,
                    storage,
                    clock,
                    config,
                }
            })
            .collect();
        let mut net = Self {
            nodes,
            wire: VecDeque::new(),
            cut: Vec::new(),
        };
        net.connect_all();
        net
    }

    pub fn connect_all(&mut self) {
        let n = self.nodes.len();
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let out = self.nodes[i].engine.connect(r(j as u16)).expect("connect");
                    self.send(r(i as u16), out);
                }
            }
        }
    }

    fn send(&mut self, from: RegionId, out: Vec<Outgoing>) {
        for o in out {
            self.wire.push_back((from, o.to, o.message));
        }
    }

    pub fn node(&mut self, i: usize) -> &mut Engine<MemoryStorage> {
        &mut self.nodes[i].engine
    }

    pub fn write(
        &mut self,
        i: usize,
        collection: &str,
        key: &str,
        op: ClientOp,
    ) -> concord_core::Accepted {
        self.nodes[i]
            .engine
            .write(ClientWrite {
                collection: col(collection),
                key: key.as_bytes().to_vec(),
                op,
                context: None,
            })
            .expect("write accepted")
    }

    pub fn read(&self, i: usize, collection: &str, key: &str) -> ReadValue {
        self.nodes[i]
            .engine
            .read(&col(collection), key.as_bytes())
            .expect("read")
    }

    pub fn advance(&mut self, by: Duration) {
        for n in &self.nodes {
            n.clock.advance(by);
        }
    }

    /// Commits, polls and delivers until nothing moves (bounded).
    pub fn settle(&mut self) {
        for _ in 0..500 {
            let n = self.nodes.len();
            for i in 0..n {
                let report = self.nodes[i].engine.commit().expect("commit");
                self.send(r(i as u16), report.outgoing);
                let out = self.nodes[i].engine.poll().expect("poll");
                self.send(r(i as u16), out);
                let out = self.nodes[i].engine.tick().expect("tick");
                self.send(r(i as u16), out);
            }
            if self.wire.is_empty() {
                return;
            }
            while let Some((from, to, msg)) = self.wire.pop_front() {
                if self.cut.contains(&(from, to)) || self.cut.contains(&(to, from)) {
                    continue;
                }
                let out = self.nodes[usize::from(to.get())]
                    .engine
                    .receive(from, msg)
                    .expect("receive");
                self.send(to, out);
            }
        }
        panic!("network did not settle");
    }

    /// Drops node `i`'s memory and storage that was not synced, then reopens it.
    pub fn crash_and_restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.storage.crash();
        node.engine = Engine::open(
            node.config.clone(),
            node.storage.clone(),
            node.clock.clone(),
        )
        .expect("reopen");
        self.connect_all();
    }

    /// Node `i` loses its disk: it restarts on empty storage.
    pub fn wipe_and_restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.storage = MemoryStorage::new();
        node.engine = Engine::open(
            node.config.clone(),
            node.storage.clone(),
            node.clock.clone(),
        )
        .expect("reopen");
        for (j, other) in self.nodes.iter_mut().enumerate() {
            if j != i {
                other.engine.disconnect(r(i as u16)).expect("disconnect");
            }
        }
        self.wire.clear();
        self.connect_all();
    }

    /// Every node's entities, sorted, for comparison.
    pub fn states(&self) -> Vec<Vec<(concord_core::EntityKey, concord_core::Entity)>> {
        self.nodes
            .iter()
            .map(|n| {
                let mut v: Vec<_> = n
                    .engine
                    .entities()
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            })
            .collect()
    }
}
