//! Data survives closing and reopening the store's directory.

use concord_core::storage_conformance::{sample_batch, sample_delta};
use concord_core::{CheckpointDelta, CoreError, Entity, EntityKey, LogBounds, Storage};
use concord_crdt::RegionId;
use concord_store::SledStore;
use std::sync::Arc;

const A: RegionId = RegionId::new(1);
const B: RegionId = RegionId::new(3);

#[test]
fn logs_and_checkpoints_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SledStore::open(dir.path()).unwrap();
    // Many appends, one flush.
    for (b, a) in (1..=50).zip((1..=200).step_by(4)) {
        store
            .append(vec![sample_batch(A, a..=a + 3), sample_batch(B, b..=b)])
            .unwrap();
    }
    store.sync().unwrap();
    store.trim_log(A, 100).unwrap();
    store.checkpoint(sample_delta()).unwrap();
    store.sync().unwrap();
    let checkpoint = store.load_checkpoint().unwrap();
    assert!(store.size_on_disk() > 0);
    drop(store);

    let mut store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.path(), dir.path());
    assert_eq!(store.load_checkpoint().unwrap(), checkpoint);
    // A trim deletes only whole log files: A's trimmed records share the
    // file of those it kept, so after a reopen they are back.
    assert_eq!(
        store.log_bounds().unwrap(),
        vec![
            (
                A,
                LogBounds {
                    first: 1,
                    last: 200
                }
            ),
            (B, LogBounds { first: 1, last: 50 }),
        ]
    );
    assert_eq!(
        store.read_log(A, 101, 1000).unwrap(),
        sample_batch(A, 101..=200).writes
    );
    store.trim_log(A, 100).unwrap();
    assert!(matches!(
        store.read_log(A, 100, 1),
        Err(CoreError::LogGap { first: 101, .. })
    ));
    // The reopened store continues each log where it ended.
    assert!(store.append(vec![sample_batch(B, 50..=51)]).is_err());
    store.append(vec![sample_batch(B, 51..=51)]).unwrap();
    store.sync().unwrap();
}

#[test]
fn a_store_open_elsewhere_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let _store = SledStore::open(dir.path()).unwrap();
    match SledStore::open(dir.path()) {
        Err(CoreError::Backend(_)) => {}
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[test]
fn a_large_checkpoint_is_applied_whole_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SledStore::open(dir.path()).unwrap();
    let template = sample_delta();
    let states: Vec<Arc<Entity>> = template.entities.iter().map(|(_, e)| e.clone()).collect();
    let collection = template.entities[0].0.collection.clone();
    let delta = CheckpointDelta {
        entities: (0..20_000u32)
            .map(|i| {
                let key = EntityKey::new(collection.clone(), format!("user-{i:06}"));
                (key, states[i as usize % states.len()].clone())
            })
            .collect(),
        ..template
    };
    store.checkpoint(delta.clone()).unwrap();
    drop(store);

    let store = SledStore::open(dir.path()).unwrap();
    let loaded = store.load_checkpoint().unwrap();
    let stored: Vec<(EntityKey, Entity)> = delta
        .entities
        .iter()
        .map(|(k, e)| (k.clone(), Entity::clone(e)))
        .collect();
    assert_eq!(loaded.entities, stored);
    assert_eq!(loaded.losers, delta.losers);
}
