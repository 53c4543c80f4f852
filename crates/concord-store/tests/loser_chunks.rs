//! Loser records in chunks: appended and purged over many checkpoints they
//! load back exactly (a chunk straddling the purge point keeps only its
//! records above it), purging removes whole chunks, a record re-written or
//! written below the stored ones still lands exactly, and a store of the
//! older one-record-per-key layout is converted when it opens.

mod support;

use std::collections::BTreeMap;

use concord_core::storage_conformance::sample_delta;
use concord_core::{CheckpointDelta, EngineMeta, LoserRecord, Storage};
use concord_crdt::{RegionId, codec};
use concord_store::SledStore;
use support::open_raw;

/// Loser record `id`, its content depending on `variant`.
fn loser(id: u64, variant: u64) -> LoserRecord {
    let mut record = sample_delta().losers[0].clone();
    record.id = id;
    record.winner.seq = variant;
    record.entity.key = format!("entity-{id}-{variant}").into_bytes();
    record
}

/// A delta of loser records only.
fn delta(losers: Vec<LoserRecord>, purged_through: Option<u64>) -> CheckpointDelta {
    CheckpointDelta {
        cursors: vec![(RegionId::new(1), losers.len() as u64)],
        losers,
        losers_purged_through: purged_through,
        meta: EngineMeta::default(),
        ..CheckpointDelta::default()
    }
}

/// The records the store must hold after the deltas, as the storage
/// contract says: upserted by id, then purged at or below the purge point.
#[derive(Default)]
struct Model(BTreeMap<u64, LoserRecord>);

impl Model {
    fn apply(&mut self, delta: &CheckpointDelta) {
        for l in &delta.losers {
            self.0.insert(l.id, l.clone());
        }
        if let Some(through) = delta.losers_purged_through {
            self.0.retain(|id, _| *id > through);
        }
    }

    fn records(&self) -> Vec<LoserRecord> {
        self.0.values().cloned().collect()
    }
}

/// The (first, last) ids of the loser chunks of the closed store at `path`.
fn chunk_ranges(path: &std::path::Path) -> Vec<(u64, u64)> {
    let db = open_raw(path);
    let tree = db.open_tree("loser_chunks").expect("the chunks tree");
    tree.iter()
        .map(|e| {
            let (key, _) = e.expect("sled reads");
            let first = u64::from_be_bytes(key[..8].try_into().expect("16-byte keys"));
            let last = u64::from_be_bytes(key[8..].try_into().expect("16-byte keys"));
            (first, last)
        })
        .collect()
}

#[test]
fn appended_and_purged_records_load_back_exactly() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = SledStore::open(dir.path()).expect("a new store opens");
    let mut model = Model::default();
    let mut next = 0u64;
    // The engine's pattern: ids grow, and a bounded log purges the oldest.
    for n in 0..30u64 {
        let count = 50 + (n * 37) % 400;
        let losers: Vec<LoserRecord> = (next..next + count).map(|id| loser(id, n)).collect();
        next += count;
        let purged = (n % 3 != 0).then(|| next.saturating_sub(1000 + n * 7));
        let d = delta(losers, purged);
        store.checkpoint(d.clone()).expect("a checkpoint");
        model.apply(&d);
        assert_eq!(
            store.load_checkpoint().unwrap().losers,
            model.records(),
            "after {n}"
        );
    }
    let expected = model.records();
    drop(store);

    let ranges = chunk_ranges(dir.path());
    // Whole chunks are purged: at most one straddles the purge point.
    let first_live = expected.first().map(|l| l.id).unwrap_or(0);
    assert!(
        ranges.iter().filter(|(_, last)| *last < first_live).count() == 0,
        "a chunk wholly purged is left: {ranges:?}"
    );
    assert!(
        ranges
            .iter()
            .filter(|(first, _)| *first < first_live)
            .count()
            <= 1,
        "{ranges:?}"
    );
    // Many records per chunk, not one per key.
    assert!(
        ranges.len() * 10 < expected.len(),
        "{} chunks for {} records",
        ranges.len(),
        expected.len()
    );
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.load_checkpoint().unwrap().losers, expected);
}

#[test]
fn records_written_out_of_order_still_land_exactly() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = SledStore::open(dir.path()).expect("a new store opens");
    let mut model = Model::default();
    let deltas = [
        delta((0..200).map(|id| loser(id, 0)).collect(), None),
        // Purged through 50: the first chunk straddles it.
        delta((200..300).map(|id| loser(id, 1)).collect(), Some(50)),
        // A stored record written again, and one below the purge point.
        delta(vec![loser(120, 2), loser(10, 2), loser(305, 2)], None),
        // Unsorted, with one id twice (the later counts), partly purged.
        delta(
            vec![loser(400, 3), loser(30, 3), loser(350, 3), loser(400, 4)],
            Some(20),
        ),
        // Back to appending; the purge goes past everything.
        delta((500..600).map(|id| loser(id, 5)).collect(), Some(1000)),
        delta((1001..1010).map(|id| loser(id, 6)).collect(), None),
    ];
    for (n, d) in deltas.iter().enumerate() {
        store.checkpoint(d.clone()).expect("a checkpoint");
        model.apply(d);
        assert_eq!(
            store.load_checkpoint().unwrap().losers,
            model.records(),
            "after delta {n}"
        );
    }
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.load_checkpoint().unwrap().losers, model.records());
}

#[test]
fn a_store_of_one_record_per_key_is_converted_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let old: Vec<LoserRecord> = (5..900).map(|id| loser(id, 1)).collect();
    {
        // The older layout: one record per id, under its id (big endian).
        let db = open_raw(dir.path());
        let legacy = db.open_tree("losers").unwrap();
        for record in &old {
            legacy
                .insert(record.id.to_be_bytes(), codec::encode(record).unwrap())
                .unwrap();
        }
        db.flush().unwrap();
    }
    let mut store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.load_checkpoint().unwrap().losers, old);
    // Checkpoints go on from there.
    let mut model = Model::default();
    model.apply(&delta(old, None));
    let d = delta((900..950).map(|id| loser(id, 2)).collect(), Some(100));
    store.checkpoint(d.clone()).unwrap();
    model.apply(&d);
    assert_eq!(store.load_checkpoint().unwrap().losers, model.records());
    drop(store);
    let db = open_raw(dir.path());
    assert!(
        !db.tree_names().iter().any(|n| &n[..] == b"losers"),
        "the old tree is dropped"
    );
    drop(db);
    assert!(chunk_ranges(dir.path()).len() < 100);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.load_checkpoint().unwrap().losers, model.records());
}

#[test]
fn a_legacy_record_under_a_malformed_key_fails_the_open_as_a_corrupt_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_raw(dir.path());
        let legacy = db.open_tree("losers").unwrap();
        legacy
            .insert(b"short", codec::encode(&loser(1, 1)).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(dir.path()) {
        Err(concord_core::CoreError::CorruptRecord { location, .. }) => {
            assert!(location.contains("\"losers\""), "{location}");
        }
        other => panic!("expected a corrupt record, got {other:?}"),
    }
}
