//! `Engine::warm` reads entities into the cache ahead of writes to them: it
//! must change nothing, whatever the writes name.

use std::sync::Arc;

use concord_clock::{ManualClock, WallTime};
use concord_core::{
    ClientOp, ClientWrite, Collection, CollectionConfig, Engine, EngineConfig, Entity, EntityKey,
    MemoryStorage, Policy, ReadValue,
};
use concord_crdt::RegionId;

fn put(collection: &Collection, key: &str, value: &str) -> ClientWrite {
    ClientWrite {
        collection: collection.clone(),
        key: key.as_bytes().to_vec(),
        op: ClientOp::Put(value.as_bytes().to_vec()),
        context: None,
    }
}

fn entities(engine: &Engine<MemoryStorage>) -> Vec<(EntityKey, Entity)> {
    let mut all: Vec<_> = engine.entities().map(|(k, e)| (k, e.clone())).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn warming_changes_nothing() {
    let region = RegionId::new(1);
    let users = Collection::new("users").expect("name");
    let config = EngineConfig::new(
        region,
        vec![region],
        vec![(users.clone(), CollectionConfig::new(Policy::LwwWall))],
    );
    let clock = Arc::new(ManualClock::new(WallTime::from_micros(
        1_795_435_200_000_000,
    )));
    let mut engine = Engine::open(config, MemoryStorage::new(), clock).expect("engine");
    for n in 0..600 {
        engine
            .write(put(&users, &format!("u{n}"), "first"))
            .expect("write");
    }
    engine.commit().expect("commit");
    let before = entities(&engine);

    let unknown = Collection::new("nowhere").expect("name");
    let ahead: Vec<ClientWrite> = (0..Engine::<MemoryStorage>::WARM_AHEAD)
        .map(|n| put(&users, &format!("u{}", n * 3), "second"))
        .chain([put(&users, "absent", "x"), put(&unknown, "u1", "x")])
        .collect();
    engine.warm(&ahead);

    assert_eq!(entities(&engine), before, "every entity as it was");
    assert_eq!(
        engine.read(&users, b"absent").expect("read"),
        ReadValue::Missing,
        "warming a missing key does not create it"
    );
    // Writes after warming apply as always.
    engine.write(put(&users, "u3", "second")).expect("write");
    match engine.read(&users, b"u3").expect("read") {
        ReadValue::Value(v) => assert_eq!(v.value.as_deref(), Some(&b"second"[..])),
        other => panic!("expected the written value, got {other:?}"),
    }
}
