//! Client operations, commits, checkpoints and reopens, on an engine over a
//! sled store and one over memory, compared with each other and with a
//! model after every step.
//!
//! Both engines get the same steps and share one clock, so they must agree
//! exactly: cursors, every read, every entity, the conflict queue and the
//! loser log. The model knows what each `lww-wall`, `lww-hlc` and `counter`
//! key must read. "Reopen" drops both engines and their stores (the memory
//! store loses what was not synced, as in a crash) and opens them again:
//! everything committed must be back, and nothing else. Whenever the local
//! writes are all durable (after a commit, a checkpoint, or a tick that
//! checkpointed) the model and the entities are remembered as what a reopen
//! must restore.
//!
//! Input: steps until the input ends (at most [`MAX_STEPS`]), each a tag
//! byte (modulo 9) and its arguments, one byte each: 0 put (collection, key,
//! value); 1 put with the context of a read (same); 2 delete (collection,
//! key); 3 add (collection, key, delta as `i8`); 4 commit; 5 checkpoint; 6
//! reopen; 7 advance the clock by the byte times 10 ms, then tick; 8 resolve
//! the open conflict the byte picks (value: the byte; 0 deletes).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use concord_clock::ManualClock;
use concord_core::{
    ClientOp, ClientWrite, ConflictItem, CoreError, Engine, Entity, EntityKey, LoserRecord,
    MemoryStorage, Policy, ReadValue, Storage,
};
use concord_store::SledStore;

use crate::fixture::{self, Reader};

/// The most steps an input runs (longer inputs are cut).
pub const MAX_STEPS: usize = 512;
/// The most reopens an input runs (later ones are commits): each opens a
/// sled database.
pub const MAX_REOPENS: usize = 16;
/// Keys per collection.
const KEYS: u8 = 4;

/// The tags of the input's steps.
pub mod tag {
    /// A blind put.
    pub const PUT: u8 = 0;
    /// A put with the context of a read.
    pub const PUT_READ: u8 = 1;
    /// A delete.
    pub const DELETE: u8 = 2;
    /// A counter add.
    pub const ADD: u8 = 3;
    /// A commit.
    pub const COMMIT: u8 = 4;
    /// A checkpoint.
    pub const CHECKPOINT: u8 = 5;
    /// Drop both engines and stores, open them again.
    pub const REOPEN: u8 = 6;
    /// Advance the clock, then tick.
    pub const TICK: u8 = 7;
    /// Resolve an open conflict.
    pub const RESOLVE: u8 = 8;
    /// How many tags there are.
    pub const COUNT: u8 = 9;
}

/// What one `lww-*` or `counter` key must read.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expected {
    Value(Option<Vec<u8>>),
    Counter(i128),
}

/// Everything the two engines must agree on.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    cursors: Vec<(concord_crdt::RegionId, u64)>,
    durable: Vec<(concord_crdt::RegionId, u64)>,
    reads: Vec<Result<ReadValue, String>>,
    entities: Vec<(EntityKey, Entity)>,
    conflicts: Vec<ConflictItem>,
    losers: Vec<LoserRecord>,
}

/// Every entity, in key order (the engine keeps them in a hash map).
fn entities<S: Storage>(engine: &Engine<S>) -> Vec<(EntityKey, Entity)> {
    let mut all: Vec<(EntityKey, Entity)> =
        engine.entities().map(|(k, e)| (k, e.clone())).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn observe<S: Storage>(engine: &Engine<S>) -> Observed {
    let mut reads = Vec::new();
    for (name, _) in fixture::COLLECTIONS {
        for k in 0..KEYS {
            reads.push(
                engine
                    .read(&fixture::collection(name), &[k])
                    .map_err(|e| e.to_string()),
            );
        }
    }
    Observed {
        cursors: engine.cursors(),
        durable: engine.durable_cursors(),
        reads,
        entities: entities(engine),
        conflicts: engine.conflicts().cloned().collect(),
        losers: engine.losers().cloned().collect(),
    }
}

/// The two engines, the model, and what a reopen must restore.
struct Harness {
    sled: Option<Engine<SledStore>>,
    path: PathBuf,
    memory: Engine<MemoryStorage>,
    storage: MemoryStorage,
    clock: Arc<ManualClock>,
    model: BTreeMap<(usize, u8), Expected>,
    committed_model: BTreeMap<(usize, u8), Expected>,
    committed_entities: Vec<(EntityKey, Entity)>,
    reopens: usize,
}

fn open_sled(path: &PathBuf, clock: &Arc<ManualClock>) -> Engine<SledStore> {
    let store = SledStore::open(path).expect("a sled store reopens");
    Engine::open(fixture::config(fixture::HERE), store, clock.clone())
        .expect("an engine reopens on the sled store it wrote")
}

fn open_memory(storage: &MemoryStorage, clock: &Arc<ManualClock>) -> Engine<MemoryStorage> {
    Engine::open(
        fixture::config(fixture::HERE),
        storage.clone(),
        clock.clone(),
    )
    .expect("an engine reopens on the memory store it wrote")
}

/// Both engines' results of one call must agree in kind; the sled one is
/// returned.
fn agree<T: Debug>(
    what: &str,
    sled: Result<T, CoreError>,
    memory: Result<T, CoreError>,
) -> Option<T> {
    match (sled, memory) {
        (Ok(s), Ok(_)) => Some(s),
        (Err(s), Err(m)) => {
            assert_eq!(
                s.to_string(),
                m.to_string(),
                "{what}: the engines fail differently"
            );
            None
        }
        (s, m) => panic!("{what}: sled gave {s:?}, memory {m:?}"),
    }
}

impl Harness {
    fn new(path: PathBuf) -> Self {
        let clock = fixture::clock();
        let storage = MemoryStorage::new();
        let memory = open_memory(&storage, &clock);
        let sled = Some(open_sled(&path, &clock));
        Self {
            sled,
            path,
            memory,
            storage,
            clock,
            model: BTreeMap::new(),
            committed_model: BTreeMap::new(),
            committed_entities: Vec::new(),
            reopens: 0,
        }
    }

    fn sled(&mut self) -> &mut Engine<SledStore> {
        self.sled
            .as_mut()
            .expect("the sled engine is open between steps")
    }

    fn write(&mut self, c: u8, k: u8, op: ClientOp, read_context: bool) {
        let (name, policy) = fixture::COLLECTIONS[usize::from(c) % fixture::COLLECTIONS.len()];
        let collection = fixture::collection(name);
        let key = k % KEYS;
        let context = if read_context {
            match self.sled().read(&collection, &[key]) {
                Ok(ReadValue::Siblings { context, .. }) => Some(context),
                _ => None,
            }
        } else {
            None
        };
        let req = ClientWrite {
            collection,
            key: vec![key],
            op: op.clone(),
            context,
        };
        let s = self.sled().write(req.clone());
        let m = self.memory.write(req);
        if agree("write", s, m).is_none() {
            return;
        }
        let slot = (usize::from(c) % fixture::COLLECTIONS.len(), key);
        match (policy, op) {
            (Policy::LwwWall | Policy::LwwHlc, ClientOp::Put(v)) => {
                self.model.insert(slot, Expected::Value(Some(v)));
            }
            (Policy::LwwWall | Policy::LwwHlc, ClientOp::Delete) => {
                self.model.insert(slot, Expected::Value(None));
            }
            (Policy::Counter, ClientOp::Add(d)) => {
                let e = self.model.entry(slot).or_insert(Expected::Counter(0));
                if let Expected::Counter(n) = e {
                    *n += i128::from(d);
                }
            }
            _ => {}
        }
    }

    fn reopen(&mut self) {
        self.sled = None;
        self.sled = Some(open_sled(&self.path, &self.clock));
        self.storage.crash();
        self.memory = open_memory(&self.storage, &self.clock);
        self.model = self.committed_model.clone();
        let entities = entities(self.sled());
        assert_eq!(
            entities, self.committed_entities,
            "after a reopen the entities are not those of the last commit"
        );
    }

    fn step(&mut self, input: &mut Reader<'_>) -> Option<&'static str> {
        let t = input.u8()? % tag::COUNT;
        Some(match t {
            tag::PUT | tag::PUT_READ => {
                let read = t == tag::PUT_READ;
                let (c, k, v) = (input.u8()?, input.u8()?, input.u8()?);
                self.write(c, k, ClientOp::Put(vec![v]), read);
                "put"
            }
            tag::DELETE => {
                let (c, k) = (input.u8()?, input.u8()?);
                self.write(c, k, ClientOp::Delete, true);
                "delete"
            }
            tag::ADD => {
                let (c, k, d) = (input.u8()?, input.u8()?, input.u8()?);
                self.write(c, k, ClientOp::Add(i64::from(d as i8)), false);
                "add"
            }
            tag::COMMIT => {
                let s = self.sled().commit().map(|r| r.local_durable);
                let m = self.memory.commit().map(|r| r.local_durable);
                agree("commit", s, m);
                "commit"
            }
            tag::CHECKPOINT => {
                let s = self.sled().checkpoint().map(|r| r.local_durable);
                let m = self.memory.checkpoint().map(|r| r.local_durable);
                agree("checkpoint", s, m);
                "checkpoint"
            }
            tag::REOPEN if self.reopens < MAX_REOPENS => {
                self.reopens += 1;
                self.reopen();
                "reopen"
            }
            tag::REOPEN => "reopen (skipped)",
            tag::TICK => {
                let by = u64::from(input.u8()?) * 10;
                self.clock.advance(Duration::from_millis(by));
                let s = self.sled().tick().map(|o| o.len());
                let m = self.memory.tick().map(|o| o.len());
                agree("tick", s, m);
                "tick"
            }
            _ => {
                let b = input.u8()?;
                let open: Vec<u64> = self
                    .sled()
                    .conflicts()
                    .filter(|i| i.status.is_open())
                    .map(|i| i.id)
                    .collect();
                if let Some(id) = open.get(usize::from(b) % open.len().max(1)) {
                    let value = (b != 0).then(|| vec![b]);
                    let s = self.sled().resolve(*id, value.clone()).map(|a| a.write);
                    let m = self.memory.resolve(*id, value).map(|a| a.write);
                    agree("resolve", s, m);
                }
                "resolve"
            }
        })
    }

    /// The engines agree with each other and with the model; a point where
    /// every local write is durable is remembered for the next reopen.
    fn check(&mut self, step: &str) {
        let sled = observe(self.sled());
        let memory = observe(&self.memory);
        assert_eq!(
            sled, memory,
            "after {step}: the sled and memory engines differ"
        );
        for ((c, k), expected) in &self.model {
            let read = &sled.reads[c * usize::from(KEYS) + usize::from(*k)];
            let ok = match (expected, read) {
                (Expected::Value(None), Ok(ReadValue::Missing)) => true,
                (Expected::Value(Some(v)), Ok(ReadValue::Value(version))) => {
                    version.value.as_ref() == Some(v)
                }
                (Expected::Counter(n), Ok(ReadValue::Counter(got))) => n == got,
                (Expected::Counter(0), Ok(ReadValue::Missing)) => true,
                _ => false,
            };
            assert!(
                ok,
                "after {step}: {} key {k} reads {read:?}, the model says {expected:?}",
                fixture::COLLECTIONS[*c].0
            );
        }
        let here = fixture::HERE;
        let durable = sled
            .durable
            .iter()
            .find(|(o, _)| *o == here)
            .map(|(_, s)| *s);
        let applied = sled
            .cursors
            .iter()
            .find(|(o, _)| *o == here)
            .map(|(_, s)| *s);
        if durable == applied {
            self.committed_model = self.model.clone();
            self.committed_entities = sled.entities;
        }
    }
}

/// The target: see the module docs.
pub fn run(data: &[u8]) {
    let dir = fixture::tempdir();
    let mut harness = Harness::new(dir.path().join("store"));
    let mut input = Reader::new(data);
    for _ in 0..MAX_STEPS {
        let Some(step) = harness.step(&mut input) else {
            break;
        };
        harness.check(step);
    }
}
