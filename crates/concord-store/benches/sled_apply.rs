//! Replicated writes applied by one node into its store (`SledStore`: the
//! log in files, checkpoints in sled), with group commit.
//!
//! A source engine (in memory) makes `--writes` writes of 100-byte values to
//! random keys (drawn from `--keys` distinct keys, by default as many as
//! writes, so that checkpoints coalesce little) and cuts them into batches of
//! 1,000, as a peer sends them. The
//! measured node receives each batch, applies it, appends it to its log
//! and commits (one sync) every `--group` batches: one fsync covers many
//! writes, and the node acknowledges after it. Prints writes/s and the size
//! of the store's directory per million writes, then the same for an engine on
//! in-memory storage in the same run, for the ratio. For each storage it also
//! prints the time spent in `Storage::checkpoint` (the engine checkpoints
//! every `--checkpoint-every` applied writes) and the entities it stored per
//! second.
//!
//! ```text
//! cargo bench -p concord-store --bench sled_apply -- --writes 1000000 --group 4 \
//!     [--keys 1000000] [--checkpoint-every 50000] [--only sled|memory]
//! ```

use std::sync::Arc;
use std::time::Instant;

use concord_clock::{ManualClock, WallTime};
use std::time::Duration;

use concord_core::{
    Checkpoint, CheckpointDelta, ClientOp, ClientWrite, Collection, CollectionConfig, CoreError,
    Engine, EngineConfig, LogBounds, MemoryStorage, PeerMessage, Policy, Storage, TaggedWrite,
    WriteBatch,
};
use concord_crdt::RegionId;
use concord_store::SledStore;

mod support;
use support::dir_size;

const NOON: i64 = 1_795_435_200_000_000;
const BATCH: usize = 1000;

/// A storage that times its checkpoints.
struct Timed<S> {
    inner: S,
    checkpoints: usize,
    entities: usize,
    spent: Duration,
}

impl<S: Storage> Storage for Timed<S> {
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
        let start = Instant::now();
        let entities = delta.entities.len();
        let result = self.inner.checkpoint(delta);
        self.spent += start.elapsed();
        self.checkpoints += 1;
        self.entities += entities;
        result
    }
    fn load_checkpoint(&self) -> Result<Checkpoint, CoreError> {
        self.inner.load_checkpoint()
    }
    fn size_on_disk(&self) -> u64 {
        self.inner.size_on_disk()
    }
}

fn config(region: u16) -> EngineConfig {
    let mut cfg = EngineConfig::new(
        RegionId::new(region),
        vec![RegionId::new(1 - region)],
        vec![(
            Collection::new("bench").expect("name"),
            CollectionConfig::new(Policy::LwwHlc),
        )],
    );
    cfg.max_batch_writes = BATCH;
    cfg.max_in_flight = u32::MAX;
    cfg.checkpoint_every = arg("--checkpoint-every", 50_000) as u64;
    cfg
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(WallTime::from_micros(NOON)))
}

fn source_batches(writes: usize, keys: usize) -> Vec<PeerMessage> {
    let mut source = Engine::open(config(0), MemoryStorage::new(), clock()).expect("open");
    let collection = Collection::new("bench").expect("name");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::new();
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
    for i in 0..writes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        source
            .write(ClientWrite {
                collection: collection.clone(),
                key: (x % (keys as u64)).to_be_bytes().to_vec(),
                op: ClientOp::Put(vec![b'v'; 100]),
                context: None,
            })
            .expect("write");
        if (i + 1) % 100_000 == 0 || i + 1 == writes {
            source.commit().expect("commit");
            out.extend(source.poll().expect("poll").into_iter().map(|o| o.message));
            // Free the flow-control window: acknowledge everything sent.
            source
                .receive(
                    RegionId::new(1),
                    PeerMessage::Ack {
                        applied: Vec::new(),
                        durable: Vec::new(),
                        batches: u32::MAX,
                    },
                )
                .expect("ack");
            out.extend(source.poll().expect("poll").into_iter().map(|o| o.message));
        }
    }
    out
}

fn run<S: Storage>(name: &str, storage: S, msgs: Vec<PeerMessage>, group: usize) -> f64 {
    let storage = Timed {
        inner: storage,
        checkpoints: 0,
        entities: 0,
        spent: Duration::ZERO,
    };
    let mut node = Engine::open(config(1), storage, clock()).expect("open");
    let writes: usize = msgs
        .iter()
        .map(|m| match m {
            PeerMessage::Batch(b) => b.writes.len(),
            _ => 0,
        })
        .sum();
    let start = Instant::now();
    for (i, m) in msgs.into_iter().enumerate() {
        node.receive(RegionId::new(0), m).expect("receive");
        if (i + 1) % group == 0 {
            node.commit().expect("commit");
            // As a node's engine loop does: timers, checkpoints, trims.
            node.tick().expect("tick");
        }
    }
    node.commit().expect("commit");
    node.tick().expect("tick");
    let secs = start.elapsed().as_secs_f64();
    let rate = writes as f64 / secs;
    println!("{name:<8} {writes} writes in {secs:.2} s: {rate:.0} writes/s");
    let timed = node.storage();
    let spent = timed.spent.as_secs_f64();
    println!(
        "{name:<8} {} checkpoints of {} entities in {spent:.2} s ({:.0}% of the run): {:.0} entities/s",
        timed.checkpoints,
        timed.entities,
        100.0 * spent / secs,
        timed.entities as f64 / spent.max(1e-9)
    );
    rate
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let writes = arg("--writes", 500_000);
    let group = arg("--group", 4).max(1);
    let keys = arg("--keys", writes).max(1);
    let only = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .unwrap_or_default();
    let msgs = source_batches(writes, keys);
    let mut sled_rate = None;
    if only != "memory" {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SledStore::open(dir.path()).expect("open sled");
        sled_rate = Some(run("sled", store, msgs.clone(), group));
        let size = dir_size(dir.path());
        let per_million = size as f64 * 1_000_000.0 / writes as f64;
        println!(
            "sled directory: {:.1} MiB for {writes} writes: {:.1} MiB per million writes",
            size as f64 / 1_048_576.0,
            per_million / 1_048_576.0
        );
    }
    if only != "sled" {
        let mem_rate = run("memory", MemoryStorage::new(), msgs, group);
        if let Some(sled_rate) = sled_rate {
            println!("sled / memory: {:.2}", sled_rate / mem_rate);
        }
    }
}
