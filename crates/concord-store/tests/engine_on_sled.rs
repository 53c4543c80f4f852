//! The engine on a sled store: a corrupt log record found while streaming
//! to a peer is counted, and the peer gets a snapshot instead.

mod support;

use std::sync::Arc;

use concord_clock::{ManualClock, WallTime};
use concord_core::{
    ClientOp, ClientWrite, Collection, CollectionConfig, Engine, EngineConfig, MemoryStorage,
    Outgoing, Policy, ReadValue, Storage,
};
use concord_crdt::RegionId;
use concord_store::SledStore;
use support::open_raw;

fn config(region: u16) -> EngineConfig {
    let mut cfg = EngineConfig::new(
        RegionId::new(region),
        vec![RegionId::new(1 - region)],
        vec![(
            Collection::new("stock").expect("name"),
            CollectionConfig::new(Policy::Counter),
        )],
    );
    cfg.max_batch_writes = 3;
    cfg
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(WallTime::from_micros(
        1_795_435_200_000_000,
    )))
}

/// Delivers messages both ways until none are left.
fn pump<A: Storage, B: Storage>(a: &mut Engine<A>, b: &mut Engine<B>, mut out: Vec<Outgoing>) {
    let (ra, rb) = (a.region(), b.region());
    for _ in 0..100 {
        let mut next = Vec::new();
        for o in out {
            if o.to == rb {
                next.extend(b.receive(ra, o.message).expect("b receives"));
            } else {
                next.extend(a.receive(rb, o.message).expect("a receives"));
            }
        }
        next.extend(a.commit().expect("commit").outgoing);
        next.extend(a.poll().expect("a polls"));
        next.extend(b.commit().expect("commit").outgoing);
        next.extend(b.poll().expect("b polls"));
        if next.is_empty() {
            return;
        }
        out = next;
    }
    panic!("did not settle");
}

#[test]
fn a_corrupt_log_record_is_counted_and_the_peer_gets_a_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = SledStore::open(dir.path()).expect("open");
        let mut a = Engine::open(config(0), store, clock()).expect("engine");
        for _ in 0..3 {
            for _ in 0..3 {
                a.write(ClientWrite {
                    collection: Collection::new("stock").expect("name"),
                    key: b"sku".to_vec(),
                    op: ClientOp::Add(1),
                    context: None,
                })
                .expect("write");
            }
            a.commit().expect("commit: one log record per commit");
        }
        a.checkpoint().expect("checkpoint covers all nine writes");
    }
    // Spoil the middle log record (seqs 4..=6) behind the store's back.
    {
        let db = open_raw(&dir.path().join("log"));
        let log = db.open_tree("log").expect("log tree");
        let keys: Vec<_> = log.iter().map(|e| e.expect("key").0).collect();
        assert_eq!(keys.len(), 3);
        log.insert(&keys[1], &b"\x01garbage"[..]).expect("insert");
        db.flush().expect("flush");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    let mut a = Engine::open(config(0), store, clock()).expect("replay starts past the checkpoint");
    let mut b = Engine::open(config(1), MemoryStorage::new(), clock()).expect("engine");
    let mut hellos = a.connect(RegionId::new(1)).expect("connect");
    hellos.extend(b.connect(RegionId::new(0)).expect("connect"));
    pump(&mut a, &mut b, hellos);
    assert_eq!(a.stats().corrupt_records, 1);
    assert_eq!(a.stats().snapshots_sent, 1);
    assert_eq!(
        b.read(&Collection::new("stock").expect("name"), b"sku")
            .expect("read"),
        ReadValue::Counter(9),
        "every write reached the peer despite the unreadable record"
    );
}
