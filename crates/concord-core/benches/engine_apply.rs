//! The engine applying replicated writes with in-memory storage.
//!
//! One iteration is one write: a region's engine receives batches of 1,000
//! tagged writes (100-byte values to random keys, as a peer sends them),
//! applies them, appends them to its log and commits once per batch.
//! Writes are made once by a source engine in setup; the timed part is the
//! receiving engine only.
//!
//! ```text
//! cargo bench -p concord-core --bench engine_apply
//! ```

use std::sync::Arc;
use std::time::Duration;

use concord_clock::{ManualClock, WallTime};
use concord_core::{
    ClientOp, ClientWrite, Collection, CollectionConfig, Engine, EngineConfig, MemoryStorage,
    PeerMessage, Policy,
};
use concord_crdt::RegionId;
use criterion::{BatchSize, Criterion, Throughput};

const NOON: i64 = 1_795_435_200_000_000;
const BATCH: usize = 1000;
const KEYS: u64 = 100_000;

fn engine(region: u16, policy: Policy) -> Engine<MemoryStorage> {
    let clock = Arc::new(ManualClock::new(WallTime::from_micros(NOON)));
    let mut cfg = EngineConfig::new(
        RegionId::new(region),
        vec![RegionId::new(1 - region)],
        vec![(
            Collection::new("bench").expect("name"),
            CollectionConfig::new(policy),
        )],
    );
    cfg.max_batch_writes = BATCH;
    cfg.max_in_flight = u32::MAX;
    cfg.checkpoint_every = u64::MAX;
    Engine::open(cfg, MemoryStorage::new(), clock).expect("open")
}

/// `n` batches of writes made by region 0, as it would send them.
fn batches(policy: Policy, n: usize) -> Vec<PeerMessage> {
    let mut source = engine(0, policy);
    let collection = Collection::new("bench").expect("name");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..n * BATCH {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let op = match policy {
            Policy::Counter => ClientOp::Add(1),
            _ => ClientOp::Put(vec![b'v'; 100]),
        };
        source
            .write(ClientWrite {
                collection: collection.clone(),
                key: (x % KEYS).to_be_bytes().to_vec(),
                op,
                context: None,
            })
            .expect("write");
    }
    source.commit().expect("commit");
    source.connect(RegionId::new(1)).expect("connect");
    source
        .receive(
            RegionId::new(1),
            PeerMessage::Hello {
                region: RegionId::new(1),
                durable: Vec::new(),
            },
        )
        .expect("hello");
    let mut out = Vec::new();
    loop {
        let sent = source.poll().expect("poll");
        if sent.is_empty() {
            break;
        }
        out.extend(sent.into_iter().map(|o| o.message));
    }
    out
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_apply_memory");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for policy in [Policy::LwwHlc, Policy::Counter, Policy::Mv] {
        let msgs = batches(policy, 20);
        g.throughput(Throughput::Elements((msgs.len() * BATCH) as u64));
        g.bench_function(policy.name(), |b| {
            b.iter_batched(
                || (engine(1, policy), msgs.clone()),
                |(mut target, msgs)| {
                    for m in msgs {
                        target.receive(RegionId::new(0), m).expect("receive");
                        target.commit().expect("commit");
                    }
                    target
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    apply(&mut c);
    c.final_summary();
}
