//! Arbitrary records in every tree of a sled store, then the store opened
//! and read, and an engine opened on it.
//!
//! The store exposes its record decoders only through [`SledStore`], so the
//! target writes raw key/value pairs into the trees of a fresh sled database
//! and opens it the way a node does. Every outcome may be an error (a
//! `CorruptRecord` naming its tree and key, mostly); none may be a panic.
//!
//! Input: records until the input ends, each a tree selector byte, a key
//! and a value (each a `u16`-length-prefixed byte string). The selector,
//! modulo [`TREES`]'s length, picks the tree; the last three put the value
//! under the `meta` tree's fixed keys whatever the key says, so that the
//! fuzzer need not guess them.

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
    ("meta", None),
    ("meta", Some(b"cursors")),
    ("meta", Some(b"engine")),
    ("meta", Some(b"segments")),
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

/// Writes the records `data` describes into a new sled database at `dir`.
fn write_raw(dir: &Path, data: &[u8]) {
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .open()
        .expect("a new sled database opens");
    let mut input = Reader::new(data);
    while let (Some(sel), Some(key), Some(value)) = (input.u8(), input.block(), input.block()) {
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
