//! Protobuf peer frames from the wire, fed into an engine as a node does.
//!
//! Bytes are decoded as a `pb::PeerFrame` (prost), checked and converted by
//! `concord_node::convert::frame`, and handed to [`Engine::receive`] of an
//! engine on [`MemoryStorage`] whose peers are the senders. Snapshot pieces
//! are reassembled and decoded as the node's peer stream does. Between
//! frames the input also commits, ticks, polls, reconnects, writes locally
//! and reopens the engine on its storage.
//!
//! What must hold: nothing panics; no frame makes the engine fail its store
//! (a `Backend` or `LogGap` error, on which a node stops); no cursor, applied
//! or durable, ever decreases; durable cursors never pass applied ones; and
//! an engine reopened after a commit holds the same cursors and entities.
//!
//! Input: steps until the input ends, each a tag byte (modulo 9) and its
//! arguments: 0 and 1 a frame (a `u16`-length-prefixed byte string) from
//! peer 2 or 3; 2 a frame from a peer the next byte picks; 3 commit; 4
//! tick after advancing the clock by the next byte times 50 ms; 5 poll; 6
//! connect or disconnect the peer the next byte picks; 7 reopen; 8 a local
//! write (collection, key, value: one byte each).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use concord_clock::ManualClock;
use concord_core::{
    ClientOp, ClientWrite, CoreError, Engine, Entity, EntityKey, MemoryStorage, PeerMessage,
};
use concord_crdt::RegionId;
use concord_node::{convert, pb};
use prost::Message;

use crate::fixture::{self, Reader};

/// The largest snapshot reassembled (the node's limit is larger; inputs
/// are small).
const MAX_SNAPSHOT_BYTES: usize = 1 << 20;

/// The tags of the input's steps.
pub mod tag {
    /// A frame from peer 2.
    pub const FRAME_FROM_2: u8 = 0;
    /// A frame from peer 3.
    pub const FRAME_FROM_3: u8 = 1;
    /// A frame from the peer the next byte picks (maybe not a peer).
    pub const FRAME_FROM: u8 = 2;
    /// Commit.
    pub const COMMIT: u8 = 3;
    /// Advance the clock, then tick.
    pub const TICK: u8 = 4;
    /// Poll.
    pub const POLL: u8 = 5;
    /// Connect or disconnect a peer.
    pub const LINK: u8 = 6;
    /// Reopen the engine on its storage.
    pub const REOPEN: u8 = 7;
    /// A local write.
    pub const WRITE: u8 = 8;
    /// How many tags there are.
    pub const COUNT: u8 = 9;
}

/// The engine under test and what the checks remember.
struct Harness {
    engine: Engine<MemoryStorage>,
    storage: MemoryStorage,
    clock: Arc<ManualClock>,
    /// Per sender, the snapshot pieces so far.
    snapshots: BTreeMap<RegionId, Vec<u8>>,
    applied: BTreeMap<RegionId, u64>,
    durable: BTreeMap<RegionId, u64>,
}

fn open(storage: &MemoryStorage, clock: &Arc<ManualClock>) -> Engine<MemoryStorage> {
    Engine::open(
        fixture::config(fixture::HERE),
        storage.clone(),
        clock.clone(),
    )
    .expect("an engine reopens on the storage it wrote")
}

/// Fails on an error a peer must never cause: one that stops the node.
fn check_result<T>(what: &str, result: Result<T, CoreError>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e @ (CoreError::Backend(_) | CoreError::LogGap { .. })) => {
            panic!("{what}: the engine failed its store (a node would stop): {e}")
        }
        Err(_) => None,
    }
}

impl Harness {
    fn new() -> Self {
        let storage = MemoryStorage::new();
        let clock = fixture::clock();
        let engine = open(&storage, &clock);
        let mut h = Self {
            engine,
            storage,
            clock,
            snapshots: BTreeMap::new(),
            applied: BTreeMap::new(),
            durable: BTreeMap::new(),
        };
        for peer in fixture::PEERS {
            let _ = h.engine.connect(peer);
        }
        h
    }

    /// Cursors never decrease, and durable ones never pass applied ones.
    fn check_cursors(&mut self, step: &str) {
        let applied: BTreeMap<RegionId, u64> = self.engine.cursors().into_iter().collect();
        let durable: BTreeMap<RegionId, u64> = self.engine.durable_cursors().into_iter().collect();
        for (origin, before) in &self.applied {
            let now = applied.get(origin).copied().unwrap_or(0);
            assert!(
                now >= *before,
                "{step}: applied cursor of {origin} went from {before} to {now}"
            );
        }
        for (origin, before) in &self.durable {
            let now = durable.get(origin).copied().unwrap_or(0);
            assert!(
                now >= *before,
                "{step}: durable cursor of {origin} went from {before} to {now}"
            );
        }
        for (origin, d) in &durable {
            let a = applied.get(origin).copied().unwrap_or(0);
            assert!(
                *d <= a,
                "{step}: durable cursor of {origin} ({d}) is past the applied one ({a})"
            );
        }
        self.applied = applied;
        self.durable = durable;
    }

    fn frame(&mut self, from: RegionId, bytes: &[u8]) {
        let Ok(frame) = pb::PeerFrame::decode(bytes) else {
            return;
        };
        let message = if let Some(pb::peer_frame::Frame::Snapshot(piece)) = &frame.frame {
            let buf = self.snapshots.entry(from).or_default();
            if buf.len() + piece.data.len() > MAX_SNAPSHOT_BYTES {
                buf.clear();
                return;
            }
            buf.extend_from_slice(&piece.data);
            if !piece.last {
                return;
            }
            let bytes = std::mem::take(buf);
            match concord_crdt::codec::decode::<PeerMessage>(&bytes) {
                Ok(m @ PeerMessage::Snapshot { .. }) => m,
                _ => return,
            }
        } else {
            match convert::frame(frame) {
                Ok((m, _name)) => m,
                Err(_) => return,
            }
        };
        let what = match &message {
            PeerMessage::Hello { .. } => "hello",
            PeerMessage::Batch(_) => "batch",
            PeerMessage::Ack { .. } => "ack",
            PeerMessage::Rewind { .. } => "rewind",
            PeerMessage::Snapshot { .. } => "snapshot",
            PeerMessage::SnapshotRequest => "snapshot request",
            PeerMessage::Heartbeat { .. } => "heartbeat",
        };
        check_result(what, self.engine.receive(from, message));
        self.check_cursors("receive");
    }

    fn entities(&self) -> Vec<(EntityKey, Entity)> {
        let mut all: Vec<(EntityKey, Entity)> = self
            .engine
            .entities()
            .map(|(k, e)| (k, e.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn reopen(&mut self) {
        if check_result("commit before reopen", self.engine.commit()).is_none() {
            return;
        }
        self.check_cursors("commit");
        let cursors = self.engine.cursors();
        let entities = self.entities();
        self.engine = open(&self.storage, &self.clock);
        assert_eq!(
            self.engine.cursors(),
            cursors,
            "the reopened engine holds other cursors"
        );
        assert_eq!(
            self.entities(),
            entities,
            "the reopened engine holds other entities"
        );
        self.check_cursors("reopen");
        for peer in fixture::PEERS {
            let _ = self.engine.connect(peer);
        }
    }

    fn step(&mut self, input: &mut Reader<'_>) -> Option<()> {
        match input.u8()? % tag::COUNT {
            tag::FRAME_FROM_2 => self.frame(fixture::PEERS[0], input.block()?),
            tag::FRAME_FROM_3 => self.frame(fixture::PEERS[1], input.block()?),
            tag::FRAME_FROM => {
                let from = RegionId::new(u16::from(input.u8()? % 5));
                self.frame(from, input.block()?);
            }
            tag::COMMIT => {
                check_result("commit", self.engine.commit());
                self.check_cursors("commit");
            }
            tag::TICK => {
                let by = u64::from(input.u8()?) * 50;
                self.clock.advance(Duration::from_millis(by));
                check_result("tick", self.engine.tick());
                self.check_cursors("tick");
            }
            tag::POLL => {
                check_result("poll", self.engine.poll());
            }
            tag::LINK => {
                let b = input.u8()?;
                let peer = fixture::PEERS[usize::from(b & 1)];
                if b & 2 == 0 {
                    let _ = self.engine.connect(peer);
                } else {
                    let _ = self.engine.disconnect(peer);
                }
            }
            tag::REOPEN => self.reopen(),
            _ => {
                let (c, k, v) = (input.u8()?, input.u8()?, input.u8()?);
                let (name, policy) =
                    fixture::COLLECTIONS[usize::from(c) % fixture::COLLECTIONS.len()];
                let op = match policy {
                    concord_core::Policy::Counter => ClientOp::Add(i64::from(v as i8)),
                    _ if v == 0 => ClientOp::Delete,
                    _ => ClientOp::Put(vec![v]),
                };
                let _ = self.engine.write(ClientWrite {
                    collection: fixture::collection(name),
                    key: vec![k % 4],
                    op,
                    context: None,
                });
                self.check_cursors("write");
            }
        }
        Some(())
    }
}

/// The target: see the module docs.
pub fn run(data: &[u8]) {
    let mut harness = Harness::new();
    let mut input = Reader::new(data);
    while harness.step(&mut input).is_some() {}
    harness.reopen();
}
