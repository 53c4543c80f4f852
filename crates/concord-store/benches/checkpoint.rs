//! The cost of `Storage::checkpoint` alone, on entities with random keys.
//!
//! Makes `--checkpoints` deltas of `--entities` entities each (an `lww-hlc`
//! state of a 100-byte value), their keys drawn at random from `--keys`
//! distinct keys, with `--losers` new loser records each (the version a
//! write overwrote: a 100-byte value) and the loser log purged down to
//! `--loser-capacity` records as the engine's bounded log does, and applies
//! them to a `SledStore`, waiting for each as the trait requires. Prints the
//! time of each checkpoint, the entities stored per second over all of them,
//! the CPU time the process spent and the bytes it wrote (sled's background
//! threads included), the time to load the last checkpoint back, and the
//! size of the sled directory. On a busy machine the CPU time of the
//! checkpoint writer thread alone is steadier: `perf record -e cpu-clock`,
//! then `perf report --sort comm` (the thread is `concord-checkpoint`).
//!
//! ```text
//! cargo bench -p concord-store --bench checkpoint -- --entities 50000 --losers 25000 --checkpoints 20 --keys 1000000
//! ```

use std::sync::Arc;
use std::time::Instant;

use concord_clock::{HlcTime, WallTime};
use concord_core::{
    CheckpointDelta, Collection, Entity, EntityKey, LoserRecord, Op, Policy, Storage, TaggedWrite,
    Version, WriteRef,
};
use concord_crdt::{RegionId, VersionVector};
use concord_store::SledStore;

mod support;
use support::dir_size;

const NOON_MS: i64 = 1_795_435_200_000;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The state of an entity after one 100-byte `lww-hlc` write.
fn entity(collection: &Collection, key: &[u8], seq: u64) -> Entity {
    let origin = RegionId::new(1);
    let ms = NOON_MS + i64::try_from(seq).expect("seq fits");
    let wall = WallTime::from_micros(ms * 1000);
    let write = TaggedWrite {
        id: TaggedWrite::make_id(origin, seq, wall),
        origin,
        seq,
        hlc: HlcTime::from_parts(ms, 0).expect("hlc"),
        wall,
        collection: collection.clone(),
        key: key.to_vec(),
        context: VersionVector::new(),
        epoch: 0,
        policy: Policy::LwwHlc,
        dot: None,
        op: Op::Set(vec![b'v'; 100]),
    };
    let mut e = Entity::new();
    e.apply(&write).expect("applies");
    e
}

/// Loser record `id`: a 100-byte version of `key` that lost to write `seq`.
fn loser(collection: &Collection, key: &[u8], id: u64, seq: u64) -> LoserRecord {
    let origin = RegionId::new(1);
    let ms = NOON_MS + i64::try_from(seq).expect("seq fits");
    let wall = WallTime::from_micros(ms * 1000);
    LoserRecord {
        id,
        entity: EntityKey::new(collection.clone(), key),
        loser: Version {
            value: Some(vec![b'l'; 100]),
            write: WriteRef {
                origin,
                seq: seq.saturating_sub(1),
            },
            hlc: HlcTime::from_parts(ms - 1, 0).expect("hlc"),
            wall,
        },
        winner: WriteRef { origin, seq },
        at: wall,
    }
}

/// The CPU time this process has used (user and system), in seconds.
fn cpu_seconds() -> f64 {
    // utime and stime are fields 14 and 15 of /proc/self/stat, in clock
    // ticks (100 per second on Linux); the name before them is in parentheses.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

/// The bytes this process has written with `write` calls and the like
/// (`wchar` of /proc/self/io: what sled hands the kernel).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let per = arg("--entities", 50_000);
    let checkpoints = arg("--checkpoints", 20);
    let keys = arg("--keys", 1_000_000).max(1) as u64;
    let losers_per = arg("--losers", 25_000) as u64;
    let capacity = arg("--loser-capacity", 100_000) as u64;
    let collection = Collection::new("bench").expect("name");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut seq = 0u64;
    let mut next_loser = 0u64;
    let deltas: Vec<CheckpointDelta> = (0..checkpoints)
        .map(|n| {
            let entities: Vec<(EntityKey, Arc<Entity>)> = (0..per)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    seq += 1;
                    let key = (x % keys).to_be_bytes();
                    let k = EntityKey::new(collection.clone(), key);
                    let e = entity(&collection, &key, seq);
                    (k, Arc::new(e))
                })
                .collect();
            let losers: Vec<LoserRecord> = (0..losers_per)
                .map(|i| {
                    let id = next_loser + i;
                    let key = (id.wrapping_mul(0x9E37_79B9) % keys).to_be_bytes();
                    loser(&collection, &key, id, seq)
                })
                .collect();
            next_loser += losers_per;
            // The engine keeps the newest `capacity` records: the older
            // ones are purged at the next checkpoint.
            let losers_purged_through = next_loser.checked_sub(capacity + 1);
            CheckpointDelta {
                cursors: vec![(RegionId::new(1), seq)],
                entities,
                losers,
                losers_purged_through,
                meta: concord_core::EngineMeta {
                    next_item_id: n as u64,
                    next_loser_id: next_loser,
                    ..Default::default()
                },
                ..CheckpointDelta::default()
            }
        })
        .collect();

    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = SledStore::open(dir.path()).expect("open sled");
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let written_start = written_bytes();
    let mut times = Vec::new();
    for delta in deltas {
        let t = Instant::now();
        store.checkpoint(delta).expect("checkpoint");
        store.finish_checkpoint().expect("checkpoint written");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let written = written_bytes() - written_start;
    let all = per * checkpoints;
    let shown: Vec<String> = times.iter().map(|t| format!("{t:.0}")).collect();
    println!("checkpoint ms: {}", shown.join(" "));
    println!(
        "{checkpoints} checkpoints of {per} entities ({keys} keys) in {secs:.2} s: {:.0} entities/s, slowest {:.0} ms",
        all as f64 / secs,
        times.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "cpu: {cpu:.2} s ({:.1} ms per checkpoint); written: {:.1} MiB per checkpoint",
        cpu * 1000.0 / checkpoints.max(1) as f64,
        written as f64 / 1_048_576.0 / checkpoints.max(1) as f64
    );
    let t = Instant::now();
    let loaded = store.load_checkpoint().expect("load");
    println!(
        "load: {} entities, {} loser records in {:.2} s",
        loaded.entities.len(),
        loaded.losers.len(),
        t.elapsed().as_secs_f64()
    );
    let blobs = dir.path().join("blobs");
    println!(
        "sled directory: {:.1} MiB ({:.1} MiB of blobs)",
        dir_size(dir.path()) as f64 / 1_048_576.0,
        dir_size(&blobs) as f64 / 1_048_576.0
    );
}
