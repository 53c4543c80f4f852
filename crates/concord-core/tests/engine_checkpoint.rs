//! A checkpoint delta shares entity states with the engine (copy on write):
//! a store that writes it later, in the background, still writes the states
//! as they were when the checkpoint was taken.

use std::sync::{Arc, Mutex};

use concord_clock::{ManualClock, WallTime};
use concord_core::{
    Checkpoint, CheckpointDelta, ClientOp, ClientWrite, Collection, CollectionConfig, CoreError,
    Engine, EngineConfig, Entity, LogBounds, MemoryStorage, Policy, Storage, TaggedWrite,
    WriteBatch,
};
use concord_crdt::RegionId;

/// A store that keeps every checkpoint delta it is given, as a store that
/// writes checkpoints in the background holds one until it is written.
struct Holding {
    inner: MemoryStorage,
    held: Held,
}

impl Storage for Holding {
    fn append(&mut self, batches: Vec<WriteBatch>) -> Result<(), CoreError> {
        self.inner.append(batches)
    }
    fn sync(&mut self) -> Result<(), CoreError> {
        self.inner.sync()
    }
    fn read_log(
        &self,
        origin: RegionId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<TaggedWrite>, CoreError> {
        self.inner.read_log(origin, from, limit)
    }
    fn log_bounds(&self) -> Result<Vec<(RegionId, LogBounds)>, CoreError> {
        self.inner.log_bounds()
    }
    fn trim_log(&mut self, origin: RegionId, through: u64) -> Result<(), CoreError> {
        self.inner.trim_log(origin, through)
    }
    fn checkpoint(&mut self, delta: CheckpointDelta) -> Result<(), CoreError> {
        // The clone shares the entity states, as a background writer would.
        self.held.lock().expect("not poisoned").push(delta.clone());
        self.inner.checkpoint(delta)
    }
    fn load_checkpoint(&self) -> Result<Checkpoint, CoreError> {
        self.inner.load_checkpoint()
    }
}

fn add(delta: i64) -> ClientWrite {
    ClientWrite {
        collection: Collection::new("stock").expect("name"),
        key: b"sku".to_vec(),
        op: ClientOp::Add(delta),
        context: None,
    }
}

fn value(e: &Entity) -> i128 {
    e.counter_value().expect("a counter")
}

/// The deltas a [`Holding`] store was given.
type Held = Arc<Mutex<Vec<CheckpointDelta>>>;

/// An engine of `region` alone, with a counter collection `stock`, on a
/// [`Holding`] store, its configuration changed by `tweak`.
fn holding_engine(
    region: RegionId,
    tweak: impl FnOnce(&mut EngineConfig),
) -> (Engine<Holding>, Held) {
    let mut config = EngineConfig::new(
        region,
        vec![region],
        vec![(
            Collection::new("stock").expect("name"),
            CollectionConfig::new(Policy::Counter),
        )],
    );
    tweak(&mut config);
    let held: Held = Arc::new(Mutex::new(Vec::new()));
    let store = Holding {
        inner: MemoryStorage::new(),
        held: Arc::clone(&held),
    };
    let clock = Arc::new(ManualClock::new(WallTime::from_micros(
        1_795_435_200_000_000,
    )));
    (Engine::open(config, store, clock).expect("engine"), held)
}

#[test]
fn writes_after_a_checkpoint_do_not_change_the_states_it_holds() {
    let region = RegionId::new(1);
    let (mut engine, held) = holding_engine(region, |_| {});
    for _ in 0..3 {
        engine.write(add(1)).expect("write");
    }
    engine.checkpoint().expect("checkpoint");
    // The engine goes on writing the same entity while the delta is held.
    for _ in 0..100 {
        engine.write(add(1)).expect("write");
    }
    engine.commit().expect("commit");
    engine.checkpoint().expect("checkpoint");

    let held = held.lock().expect("not poisoned");
    assert_eq!(held.len(), 2);
    let first: Vec<i128> = held[0].entities.iter().map(|(_, e)| value(e)).collect();
    let second: Vec<i128> = held[1].entities.iter().map(|(_, e)| value(e)).collect();
    assert_eq!(
        first,
        vec![3],
        "the first checkpoint's state as of its cursor"
    );
    assert_eq!(second, vec![103]);
    assert_eq!(held[0].cursors, vec![(region, 3)]);
}

fn add_to(key: &str, delta: i64) -> ClientWrite {
    ClientWrite {
        key: key.as_bytes().to_vec(),
        ..add(delta)
    }
}

/// A checkpoint begun by a tick takes its entities at once, as they are
/// then: writes right after it (to entities it holds, and a new one) do not
/// change the states it holds, and are in the next checkpoint.
#[test]
fn a_checkpoint_holds_the_states_as_of_its_start() {
    let region = RegionId::new(1);
    let (mut engine, held) = holding_engine(region, |c| c.checkpoint_every = 10);
    let keys = 10_000;
    for n in 0..keys {
        engine.write(add_to(&format!("k{n}"), 1)).expect("write");
    }
    engine.commit().expect("commit");
    engine.tick().expect("tick");
    {
        let held = held.lock().expect("not poisoned");
        assert_eq!(held.len(), 1, "handed to storage by the tick");
    }
    for key in ["k0", "k5000", "k9999"] {
        engine.write(add_to(key, 100)).expect("write");
    }
    engine.write(add_to("new", 100)).expect("write");
    engine.commit().expect("commit");
    {
        let held = held.lock().expect("not poisoned");
        assert_eq!(held[0].cursors, vec![(region, keys)]);
        assert_eq!(held[0].entities.len(), keys as usize);
        assert!(
            held[0].entities.iter().all(|(_, e)| value(e) == 1),
            "every state as of the checkpoint's start"
        );
    }
    engine.checkpoint().expect("checkpoint");
    let held = held.lock().expect("not poisoned");
    assert_eq!(held.len(), 2);
    let mut second: Vec<(String, i128)> = held[1]
        .entities
        .iter()
        .map(|(k, e)| (String::from_utf8(k.key.clone()).expect("utf-8"), value(e)))
        .collect();
    second.sort();
    assert_eq!(
        second,
        vec![
            ("k0".to_owned(), 101),
            ("k5000".to_owned(), 101),
            ("k9999".to_owned(), 101),
            ("new".to_owned(), 100)
        ]
    );
    assert_eq!(held[1].cursors, vec![(region, keys + 4)]);
}
