//! A large batch is stored as a few records, each small enough to stay out
//! of sled's blob files, and reads back whole.

mod support;

use concord_core::storage_conformance::sample_batch;
use concord_core::{Op, Storage};
use concord_crdt::RegionId;
use concord_store::SledStore;

#[test]
fn a_large_batch_is_split_into_records_and_reads_back_whole() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let origin = RegionId::new(2);
    let mut batch = sample_batch(origin, 1..=3000);
    for w in &mut batch.writes {
        w.op = Op::Set(vec![7u8; 100]);
    }
    {
        let mut store = SledStore::open(dir.path()).expect("a new store");
        store.append(vec![batch.clone()]).expect("append");
        store.sync().expect("sync");
        let back = store.read_log(origin, 1, 5000).expect("read");
        assert_eq!(back, batch.writes);
        let middle = store
            .read_log(origin, 1234, 10)
            .expect("read from the middle");
        assert_eq!(middle, batch.writes[1233..1243]);
        store.trim_log(origin, 1500).expect("trim");
        let rest = store.read_log(origin, 1501, 5000).expect("read the rest");
        assert_eq!(rest, batch.writes[1500..]);
    }
    // The log has a sled database of its own, in `log/`.
    let db = support::open_raw(&dir.path().join("log"));
    let log = db.open_tree("log").expect("the log tree");
    let records: Vec<usize> = log.iter().map(|e| e.expect("a record").1.len()).collect();
    // 1500 writes of ~150 bytes left, in records under 64 KiB each.
    assert!(records.len() >= 3, "{} records", records.len());
    assert!(records.iter().all(|n| *n < 64 * 1024), "{records:?}");
}

#[test]
fn a_log_kept_in_the_state_database_moves_to_its_own() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let origin = RegionId::new(1);
    let batch = sample_batch(origin, 1..=20);
    {
        let mut store = SledStore::open(dir.path()).expect("a new store");
        store.append(vec![batch.clone()]).expect("append");
        store.sync().expect("sync");
    }
    // Put the log where a store of the earlier layout kept it.
    let records: Vec<(sled::IVec, sled::IVec)> = {
        let db = support::open_raw(&dir.path().join("log"));
        let log = db.open_tree("log").expect("the log tree");
        log.iter().map(|e| e.expect("a record")).collect()
    };
    std::fs::remove_dir_all(dir.path().join("log")).expect("remove the log database");
    {
        let db = support::open_raw(dir.path());
        let log = db
            .open_tree("log")
            .expect("a log tree in the state database");
        for (k, v) in &records {
            log.insert(k, v).expect("insert");
        }
        db.flush().expect("flush");
    }
    let store = SledStore::open(dir.path()).expect("the store opens");
    assert_eq!(store.read_log(origin, 1, 100).expect("read"), batch.writes);
    drop(store);
    let db = support::open_raw(dir.path());
    assert!(
        !db.tree_names().iter().any(|n| n.as_ref() == b"log"),
        "the old log tree is gone"
    );
}
