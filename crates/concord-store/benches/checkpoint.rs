//! The cost of `Storage::checkpoint` alone, on entities with random keys.
//!
//! Makes `--checkpoints` deltas of `--entities` entities each (an `lww-hlc`
//! state of a 100-byte value), their keys drawn at random from `--keys`
//! distinct keys, and applies them to a `SledStore`, flushing each as the
//! trait requires. Prints the time of each checkpoint, the entities stored
//! per second over all of them, the time to load the last checkpoint back,
//! and the size of the sled directory.
//!
//! ```text
//! cargo bench -p concord-store --bench checkpoint -- --entities 50000 --checkpoints 20 --keys 1000000
//! ```

use std::time::Instant;

use concord_clock::{HlcTime, WallTime};
use concord_core::{
    CheckpointDelta, Collection, Entity, EntityKey, Op, Policy, Storage, TaggedWrite,
};
use concord_crdt::{RegionId, VersionVector};
use concord_store::SledStore;

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

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let per = arg("--entities", 50_000);
    let checkpoints = arg("--checkpoints", 20);
    let keys = arg("--keys", 1_000_000).max(1) as u64;
    let collection = Collection::new("bench").expect("name");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut seq = 0u64;
    let deltas: Vec<CheckpointDelta> = (0..checkpoints)
        .map(|n| CheckpointDelta {
            cursors: vec![(RegionId::new(1), seq)],
            entities: (0..per)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    seq += 1;
                    let key = (x % keys).to_be_bytes();
                    let k = EntityKey::new(collection.clone(), key);
                    let e = entity(&collection, &key, seq);
                    (k, e)
                })
                .collect(),
            meta: concord_core::EngineMeta {
                next_item_id: n as u64,
                ..Default::default()
            },
            ..CheckpointDelta::default()
        })
        .collect();

    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = SledStore::open(dir.path()).expect("open sled");
    let start = Instant::now();
    let mut times = Vec::new();
    for delta in deltas {
        let t = Instant::now();
        store.checkpoint(delta).expect("checkpoint");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let secs = start.elapsed().as_secs_f64();
    let all = per * checkpoints;
    let shown: Vec<String> = times.iter().map(|t| format!("{t:.0}")).collect();
    println!("checkpoint ms: {}", shown.join(" "));
    println!(
        "{checkpoints} checkpoints of {per} entities ({keys} keys) in {secs:.2} s: {:.0} entities/s, slowest {:.0} ms",
        all as f64 / secs,
        times.iter().copied().fold(0.0, f64::max)
    );
    let t = Instant::now();
    let loaded = store.load_checkpoint().expect("load");
    println!(
        "load: {} entities in {:.2} s",
        loaded.entities.len(),
        t.elapsed().as_secs_f64()
    );
    let blobs = dir.path().join("blobs");
    println!(
        "sled directory: {:.1} MiB ({:.1} MiB of blobs)",
        dir_size(dir.path()) as f64 / 1_048_576.0,
        dir_size(&blobs) as f64 / 1_048_576.0
    );
}
