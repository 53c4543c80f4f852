//! Arbitrary records in every tree of a sled store and arbitrary bytes in
//! its log files, then the store opened and read, and an engine opened on
//! it.
//!
//! The store exposes its record decoders only through [`SledStore`], so the
//! target writes raw key/value pairs into the trees of a fresh sled database
//! and raw bytes into log files, and opens it the way a node does. Every
//! outcome may be an error (a `CorruptRecord` naming its tree and key, or
//! its file and offset, mostly); none may be a panic.
//!
//! Input: records until the input ends, each a selector byte, a key and a
//! value (each a `u16`-length-prefixed byte string). A selector of
//! [`SEGMENT_FILE`] or more appends the value to a segment file in
//! `segments/`, named for the generation the key gives
//! ([`segment_file_name`]); one of [`WAL_FILE`] or more (below
//! [`SEGMENT_FILE`]) appends it to a log file in `wal/`, named for the
//! origin and first seq the key gives ([`wal_file_name`]). A smaller
//! one, modulo [`TREES`]'s length, picks a tree; the last four put the
//! value under the `meta` tree's fixed keys whatever the key says, so that
//! the fuzzer need not guess them. A `log` tree is the log as stores kept
//! it before it moved to files: opening moves it (and drops the log files
//! the input wrote, as those of a move that did not finish); so is a
//! `segments` tree, the entity segments as stores kept them before segment
//! files.

use std::path::Path;

use concord_core::{CheckpointDelta, Engine, Storage, WriteBatch};
use concord_crdt::RegionId;
use concord_store::SledStore;

use crate::fixture::{self, Reader};

/// The trees a record may go to, by selector: `(tree, fixed key)`.
pub const TREES: &[(&str, Option<&[u8]>)] = &[
    ("log", None),
    ("segments", None),
    ("entities", None),
    ("queue", None),
    ("losers", None),
    ("loser_chunks", None),
    ("meta", None),
    ("meta", Some(b"cursors")),
    ("meta", Some(b"engine")),
    ("meta", Some(b"segments")),
    ("meta", Some(b"losers")),
];

/// The selector of `(tree, key)` in [`TREES`]: a fixed `meta` key's own
/// selector when there is one.
pub fn selector(tree: &str, key: &[u8]) -> u8 {
    let fixed = TREES
        .iter()
        .position(|(t, k)| *t == tree && *k == Some(key));
    let any = TREES.iter().position(|(t, k)| *t == tree && k.is_none());
    let i = fixed.or(any).expect("a tree of the store");
    u8::try_from(i).expect("few trees")
}

/// The smallest selector that writes to a log file rather than a tree.
pub const WAL_FILE: u8 = 0x80;

/// The smallest selector that writes to a segment file rather than a log
/// file.
pub const SEGMENT_FILE: u8 = 0xc0;

/// The name of a segment file (as the store names them): the generation,
/// in decimal.
pub fn segment_file_name(generation: u64) -> String {
    format!("{generation:020}.seg")
}

/// The key `write_raw` reads as the segment file of `generation`: its
/// first eight bytes, big endian (missing bytes are zero).
pub fn segment_file_key(generation: u64) -> Vec<u8> {
    generation.to_be_bytes().to_vec()
}

/// The segment file a key names (see [`segment_file_key`]).
fn segment_file_of(key: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    for (b, k) in bytes.iter_mut().zip(key) {
        *b = *k;
    }
    segment_file_name(u64::from_be_bytes(bytes))
}

/// The name of a log file (as the store names them): the origin, then the
/// seq of its first write, in decimal.
pub fn wal_file_name(origin: u16, first: u64) -> String {
    format!("{origin:05}-{first:020}.wal")
}

/// The log file a key names: its first two bytes are the origin, the next
/// eight the first seq (big endian; missing bytes are zero).
fn wal_file_of(key: &[u8]) -> String {
    let mut bytes = [0u8; 10];
    for (b, k) in bytes.iter_mut().zip(key) {
        *b = *k;
    }
    let (origin, first) = bytes.split_at(2);
    wal_file_name(
        u16::from_be_bytes([origin[0], origin[1]]),
        u64::from_be_bytes(first.try_into().expect("eight bytes")),
    )
}

/// The key `wal_file_of` reads as `origin`'s file from seq `first`.
pub fn wal_key(origin: u16, first: u64) -> Vec<u8> {
    [&origin.to_be_bytes()[..], &first.to_be_bytes()[..]].concat()
}

/// Writes the records `data` describes into a new sled database at `dir`,
/// log files in `dir/wal` and segment files in `dir/segments`.
fn write_raw(dir: &Path, data: &[u8]) {
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .open()
        .expect("a new sled database opens");
    let mut input = Reader::new(data);
    while let (Some(sel), Some(key), Some(value)) = (input.u8(), input.block(), input.block()) {
        if sel >= WAL_FILE {
            let (sub, name) = if sel >= SEGMENT_FILE {
                ("segments", segment_file_of(key))
            } else {
                ("wal", wal_file_of(key))
            };
            let sub = dir.join(sub);
            std::fs::create_dir_all(&sub).expect("the files' directory");
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(sub.join(name))
                .expect("a file opens");
            std::io::Write::write_all(&mut file, value).expect("a file takes bytes");
            continue;
        }
        let (tree, fixed) = TREES[usize::from(sel) % TREES.len()];
        let tree = db.open_tree(tree).expect("a sled tree opens");
        tree.insert(fixed.unwrap_or(key), value)
            .expect("a sled insert");
    }
    db.flush().expect("a sled flush");
}

/// Reads everything a store holds, then writes on top of it: every call
/// may fail, none may panic.
fn exercise(store: &mut SledStore) {
    let _ = store.load_checkpoint();
    let bounds = store.log_bounds().unwrap_or_default();
    for (origin, b) in &bounds {
        let _ = store.read_log(*origin, 0, 16);
        let _ = store.read_log(*origin, b.first, 16);
        let _ = store.read_log(*origin, b.last, 1);
        let _ = store.read_log(*origin, b.last.saturating_add(1), 1);
    }
    // Append after whatever the log of one origin ends with.
    let origin = bounds.first().map_or(fixture::HERE, |(o, _)| *o);
    let next = bounds
        .iter()
        .find(|(o, _)| *o == origin)
        .map_or(Some(1), |(_, b)| b.last.checked_add(1));
    if let Some(next) = next
        && let Some(last) = next.checked_add(1)
    {
        let batch = concord_core::storage_conformance::sample_batch(origin, next..=last);
        let _ = store.append(vec![batch]);
        let _ = store.sync();
    }
    let _ = store.append(vec![WriteBatch {
        origin: RegionId::new(9),
        writes: Vec::new(),
    }]);
    if let Some((o, b)) = bounds.first() {
        let _ = store.trim_log(*o, b.first);
    }
    let delta = CheckpointDelta {
        cursors: bounds.iter().map(|(o, b)| (*o, b.last)).collect(),
        ..CheckpointDelta::default()
    };
    let _ = store.checkpoint(delta.clone());
    let _ = store.load_checkpoint();
    let _ = store.size_on_disk();
}

/// Opens an engine on the store (as a node starts) and uses it a little.
fn open_engine(store: SledStore) {
    let clock = fixture::clock();
    let Ok(mut engine) = Engine::open(fixture::config(fixture::HERE), store, clock) else {
        return;
    };
    let _ = engine.write(concord_core::ClientWrite {
        collection: fixture::collection("lww-hlc"),
        key: b"k".to_vec(),
        op: concord_core::ClientOp::Put(b"v".to_vec()),
        context: None,
    });
    let _ = engine.checkpoint();
    let _ = engine.tick();
    let _ = engine.poll();
}

/// The target: see the module docs.
pub fn run(data: &[u8]) {
    let dir = fixture::tempdir();
    write_raw(dir.path(), data);
    let Ok(mut store) = SledStore::open(dir.path()) else {
        return;
    };
    exercise(&mut store);
    drop(store);
    // Whatever the writes above left: reopen, read again, start an engine.
    let Ok(store) = SledStore::open(dir.path()) else {
        return;
    };
    let _ = store.load_checkpoint();
    let _ = store.log_bounds();
    open_engine(store);
}
