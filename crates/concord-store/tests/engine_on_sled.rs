//! The engine on a sled store: a corrupt log record found while streaming
//! to a peer is counted, and the peer gets a snapshot instead.

use std::sync::Arc;

use concord_clock::{ManualClock, WallTime};
use concord_core::{
    ClientOp, ClientWrite, Collection, CollectionConfig, Engine, EngineConfig, MemoryStorage,
    Outgoing, Policy, ReadValue, Storage,
};
use concord_crdt::RegionId;
use concord_store::SledStore;

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
    // Spoil the middle log record (seqs 4..=6) behind the store's back: a
    // byte of its record, so that it fails its checksum. (A frame is a
    // 20-byte header, whose bytes 4..8 are the record's length, then the
    // record.)
    {
        let files: Vec<_> = std::fs::read_dir(dir.path().join("wal"))
            .expect("the log's files")
            .map(|e| e.expect("a file").path())
            .collect();
        assert_eq!(files.len(), 1, "one origin, one file");
        let mut bytes = std::fs::read(&files[0]).expect("read");
        let len = |at: usize| {
            20 + u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize
        };
        let second = len(0);
        assert_eq!(
            second + len(second) + len(second + len(second)),
            bytes.len()
        );
        bytes[second + 24] ^= 0xff;
        std::fs::write(&files[0], bytes).expect("write");
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
