//! The log alone: replicated batches appended with group commit, each
//! commit followed by reading back what it made durable, as the engine's
//! `poll` does to send it to peers. Three logs:
//!
//! - `files`: the store's log ([`SledStore`]), with its cache of the last
//!   writes;
//! - `files-nocache`: the same with the cache off, so that every read
//!   reads and decodes the files;
//! - `sled`: a sled tree as the store kept its log before: one value per
//!   record (records of at most ~48 KiB), a flush per commit, reads that
//!   decode the values.
//!
//! Batches of `--batch` writes of `--value`-byte values to random keys; a
//! commit every `--group` batches. Prints writes/s and where the time went.
//!
//! ```text
//! cargo bench -p concord-store --bench log_append -- [--writes 1000000] \
//!     [--batch 1000] [--group 4] [--value 100] [--only files|files-nocache|sled]
//! ```

use std::time::{Duration, Instant};

use concord_core::storage_conformance::sample_write;
use concord_core::{Op, Storage, TaggedWrite, WriteBatch};
use concord_crdt::{RegionId, codec};
use concord_store::{SledStore, StoreOptions};

mod support;
use support::dir_size;

const ORIGIN: RegionId = RegionId::new(2);
/// The old store's record size limit.
const SLED_RECORD_BYTES: usize = 48 * 1024;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn batches(writes: usize, per: usize, value: usize) -> Vec<WriteBatch> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let all: Vec<TaggedWrite> = (1..=writes as u64)
        .map(|seq| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut w = sample_write(ORIGIN, seq);
            w.key = x.to_be_bytes().to_vec();
            w.op = Op::Set(vec![b'v'; value]);
            w
        })
        .collect();
    all.chunks(per)
        .map(|c| WriteBatch {
            origin: ORIGIN,
            writes: c.to_vec(),
        })
        .collect()
}

/// A log under test.
trait Log {
    fn append(&mut self, batch: WriteBatch);
    fn sync(&mut self);
    fn read(&self, from: u64, limit: usize) -> usize;
    fn bytes(&self) -> u64;
}

impl Log for SledStore {
    fn append(&mut self, batch: WriteBatch) {
        Storage::append(self, vec![batch]).expect("append");
    }
    fn sync(&mut self) {
        Storage::sync(self).expect("sync");
    }
    fn read(&self, from: u64, limit: usize) -> usize {
        self.read_log(ORIGIN, from, limit).expect("read").len()
    }
    fn bytes(&self) -> u64 {
        dir_size(&self.path().join("wal"))
    }
}

/// The log as the store kept it in sled.
struct SledLog {
    db: sled::Db,
    tree: sled::Tree,
}

fn key(first: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(&ORIGIN.get().to_be_bytes());
    k[2..].copy_from_slice(&first.to_be_bytes());
    k
}

impl Log for SledLog {
    fn append(&mut self, batch: WriteBatch) {
        let size: usize = batch
            .writes
            .iter()
            .map(|w| w.key.len() + 100 + 96)
            .sum::<usize>();
        let parts = size.div_ceil(SLED_RECORD_BYTES).max(1);
        let per = batch.writes.len().div_ceil(parts).max(1);
        let mut write = sled::Batch::default();
        for chunk in batch.writes.chunks(per) {
            let part = WriteBatch {
                origin: ORIGIN,
                writes: chunk.to_vec(),
            };
            write.insert(
                &key(part.first_seq())[..],
                codec::encode(&part).expect("encode"),
            );
        }
        self.tree.apply_batch(write).expect("insert");
    }
    fn sync(&mut self) {
        self.db.flush().expect("flush");
    }
    fn read(&self, from: u64, limit: usize) -> usize {
        let start = self
            .tree
            .range(key(0)..=key(from))
            .next_back()
            .map(|e| e.expect("read").0)
            .expect("a record holds from");
        let mut n = 0;
        for entry in self.tree.range(start..) {
            let (_, v) = entry.expect("read");
            let b: WriteBatch = codec::decode(&v).expect("decode");
            n += b
                .writes
                .iter()
                .filter(|w| w.seq >= from)
                .take(limit - n)
                .count();
            if n >= limit {
                break;
            }
        }
        n
    }
    fn bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn run(name: &str, log: &mut dyn Log, batches: &[WriteBatch], group: usize) {
    let (mut append, mut sync, mut read) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let writes: usize = batches.iter().map(|b| b.writes.len()).sum();
    let mut sent = 0u64;
    let start = Instant::now();
    for (i, b) in batches.iter().enumerate() {
        let t = Instant::now();
        log.append(b.clone());
        append += t.elapsed();
        if (i + 1) % group == 0 || i + 1 == batches.len() {
            let t = Instant::now();
            log.sync();
            sync += t.elapsed();
            // What the commit made durable, read back in peer batches.
            let t = Instant::now();
            let durable = b.last_seq();
            while sent < durable {
                let want = usize::try_from(durable - sent)
                    .unwrap_or(usize::MAX)
                    .min(1000);
                let got = log.read(sent + 1, want);
                assert_eq!(got, want, "{name}: a read came back short");
                sent += got as u64;
            }
            read += t.elapsed();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<14} {writes} writes in {secs:.2} s: {:>8.0} writes/s (append {:.2} s, sync {:.2} s, read back {:.2} s); {:.1} MiB on disk",
        writes as f64 / secs,
        append.as_secs_f64(),
        sync.as_secs_f64(),
        read.as_secs_f64(),
        log.bytes() as f64 / 1_048_576.0
    );
}

fn main() {
    let writes = arg("--writes", 1_000_000);
    let per = arg("--batch", 1000).max(1);
    let group = arg("--group", 4).max(1);
    let value = arg("--value", 100);
    let only = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .unwrap_or_default();
    let all = batches(writes, per, value);
    let wanted = |name: &str| only.is_empty() || only == name;
    if wanted("files") {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = SledStore::open(dir.path()).expect("open");
        run("files", &mut store, &all, group);
    }
    if wanted("files-nocache") {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = StoreOptions {
            cache_writes: 0,
            ..StoreOptions::default()
        };
        let mut store = SledStore::open_with(dir.path(), options).expect("open");
        run("files-nocache", &mut store, &all, group);
    }
    if wanted("sled") {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = sled::open(dir.path()).expect("open sled");
        let tree = db.open_tree("log").expect("tree");
        run("sled", &mut SledLog { db, tree }, &all, group);
    }
}
