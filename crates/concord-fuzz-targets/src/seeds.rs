//! The seed corpora: valid inputs of every target, built from real engine
//! runs, for the fuzzer to mutate.
//!
//! `cargo test -p concord-fuzz-targets --test seeds` runs every seed through
//! its target; with `CONCORD_FUZZ_WRITE_SEEDS=1` it also writes them to
//! `fuzz/corpus/<target>/seed-<name>` (the decode target's golden-vector
//! seeds were written by hand and stay as they are).

use std::path::Path;

use concord_core::{ClientOp, ClientWrite, Engine, MemoryStorage, Outgoing, PeerMessage, Storage};
use concord_node::{convert, pb};
use concord_store::SledStore;
use prost::Message;

use crate::fixture::{self, Writer};
use crate::{peer_frames, store_ops, store_records};

/// One seed: its target, its name, its bytes.
#[derive(Clone, Debug)]
pub struct Seed {
    /// The target it feeds.
    pub target: &'static str,
    /// Its file name, without the `seed-` prefix.
    pub name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

fn seed(target: &'static str, name: impl Into<String>, bytes: Vec<u8>) -> Seed {
    Seed {
        target,
        name: name.into(),
        bytes,
    }
}

fn put(engine: &mut Engine<impl Storage>, collection: &str, key: u8, op: ClientOp) {
    engine
        .write(ClientWrite {
            collection: fixture::collection(collection),
            key: vec![key],
            op,
            context: None,
        })
        .expect("a seed write is accepted");
}

/// Writes of every policy on keys 0 and 1, the same keys at every region,
/// so that two regions' writes conflict.
fn write_all(engine: &mut Engine<impl Storage>, tag: u8) {
    for key in 0..2 {
        put(engine, "lww-wall", key, ClientOp::Put(vec![tag, key]));
        put(engine, "lww-hlc", key, ClientOp::Put(vec![tag, key, 1]));
        put(engine, "mv", key, ClientOp::Put(vec![tag]));
        put(engine, "counter", key, ClientOp::Add(i64::from(tag) - 3));
        put(engine, "queue", key, ClientOp::Put(vec![tag, 9]));
    }
    put(engine, "lww-hlc", 1, ClientOp::Delete);
}

/// Two regions write the same keys concurrently, then region 2 streams its
/// writes to `here` (region 1). Returns every message region 2 sent, in order.
fn exchange(here: &mut Engine<impl Storage>) -> Vec<PeerMessage> {
    let clock = fixture::clock();
    let mut there = Engine::open(
        fixture::config(fixture::PEERS[0]),
        MemoryStorage::new(),
        clock.clone(),
    )
    .expect("a new engine opens");
    write_all(here, 1);
    here.commit().expect("a commit");
    clock.advance(std::time::Duration::from_millis(3));
    write_all(&mut there, 2);
    there.commit().expect("a commit");

    let mut sent: Vec<PeerMessage> = Vec::new();
    let deliver = |here: &mut Engine<_>, out: Vec<Outgoing>, sent: &mut Vec<PeerMessage>| {
        for o in out {
            if o.to == fixture::HERE {
                sent.push(o.message.clone());
                // An error here is part of what the seed shows.
                let _ = here.receive(fixture::PEERS[0], o.message);
            }
        }
    };
    let hello = there.connect(fixture::HERE).expect("a peer connects");
    deliver(here, hello, &mut sent);
    for o in here.connect(fixture::PEERS[0]).expect("a peer connects") {
        let _ = there.receive(fixture::HERE, o.message);
    }
    let batches = there.poll().expect("a poll");
    deliver(here, batches, &mut sent);
    clock.advance(std::time::Duration::from_secs(1));
    let ticked = there.tick().expect("a tick");
    deliver(here, ticked, &mut sent);
    sent.push(there.snapshot_message().expect("a snapshot"));
    sent.push(PeerMessage::Rewind {
        origin: fixture::HERE,
        from: 1,
    });
    sent.push(PeerMessage::SnapshotRequest);
    here.commit().expect("a commit");
    sent
}

/// The frames that carry `m` (a snapshot in two pieces).
fn frames(m: &PeerMessage) -> Vec<pb::PeerFrame> {
    if let Some(f) = convert::frame_to_pb(m, "r2") {
        return vec![f];
    }
    let bytes = concord_crdt::codec::encode(m).expect("a snapshot encodes");
    let (a, b) = bytes.split_at(bytes.len() / 2);
    [(a, false), (b, true)]
        .into_iter()
        .map(|(data, last)| pb::PeerFrame {
            frame: Some(pb::peer_frame::Frame::Snapshot(pb::SnapshotChunk {
                data: data.to_vec(),
                last,
            })),
        })
        .collect()
}

fn peer_seeds(sent: &[PeerMessage]) -> Vec<Seed> {
    use peer_frames::tag;
    let mut all = Writer::default();
    let mut out = Vec::new();
    for (i, m) in sent.iter().enumerate() {
        let mut one = Writer::default();
        for f in frames(m) {
            let bytes = f.encode_to_vec();
            all.u8(tag::FRAME_FROM_2).block(&bytes);
            one.u8(tag::FRAME_FROM_2).block(&bytes);
        }
        if i % 3 == 0 {
            all.u8(tag::COMMIT).u8(tag::TICK).u8(20).u8(tag::POLL);
        }
        let kind = match m {
            PeerMessage::Hello { .. } => "hello",
            PeerMessage::Batch(_) => "batch",
            PeerMessage::Ack { .. } => "ack",
            PeerMessage::Rewind { .. } => "rewind",
            PeerMessage::Snapshot { .. } => "snapshot",
            PeerMessage::SnapshotRequest => "snapshot-request",
            PeerMessage::Heartbeat { .. } => "heartbeat",
        };
        out.push(seed("peer_frames", format!("{i:02}-{kind}"), one.bytes));
    }
    all.u8(tag::REOPEN)
        .u8(tag::WRITE)
        .u8(0)
        .u8(1)
        .u8(7)
        .u8(tag::LINK)
        .u8(2)
        .u8(tag::COMMIT);
    out.push(seed("peer_frames", "all-in-order", all.bytes));
    out
}

fn decode_seeds(here: &Engine<MemoryStorage>, sent: &[PeerMessage]) -> Vec<Seed> {
    use crate::decode_records::selector;
    let mut out = Vec::new();
    let mut add = |ty: &str, name: &str, bytes: Vec<u8>| {
        let mut input = vec![selector(ty).expect("a record type")];
        input.extend(bytes);
        out.push(seed("decode_records", name, input));
    };
    let enc = |v: &dyn erased::Encode| v.encode();
    let checkpoint = here
        .storage()
        .load_checkpoint()
        .expect("a checkpoint loads");
    let log = here
        .storage()
        .read_log(fixture::PEERS[0], 1, 3)
        .expect("the log reads");
    add(
        "log batch",
        "log-batch",
        enc(&concord_core::WriteBatch {
            origin: fixture::PEERS[0],
            writes: log,
        }),
    );
    for (i, (_, entity)) in here.entities().take(6).enumerate() {
        add("entity", &format!("entity-{i}"), enc(entity));
    }
    if let Some(item) = here.conflicts().next() {
        add("conflict item", "conflict-item", enc(item));
    }
    if let Some(loser) = here.losers().next() {
        add("loser record", "loser-record", enc(loser));
    }
    add("checkpoint cursors", "cursors", enc(&here.cursors()));
    add("engine metadata", "engine-meta", enc(&checkpoint.meta));
    if let Some(snapshot) = sent
        .iter()
        .find(|m| matches!(m, PeerMessage::Snapshot { .. }))
    {
        add("peer message", "snapshot", enc(snapshot));
    }
    out
}

/// Encoding any record as the store does, behind one object-safe trait.
mod erased {
    /// A record the codec encodes.
    pub(super) trait Encode {
        /// Its stored bytes.
        fn encode(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> Vec<u8> {
            concord_crdt::codec::encode(self).expect("a seed record encodes")
        }
    }
}

/// The entries of a segment (see `concord-store`'s `segment.rs`): a format
/// byte, a `u32` count, then `u32`-length-prefixed keys and records.
fn unpack_segment(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes.get(5..).unwrap_or_default();
    let block = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let b = rest.get(4..4 + len)?.to_vec();
        *rest = &rest[4 + len..];
        Some(b)
    };
    while let (Some(k), Some(v)) = (block(&mut rest), block(&mut rest)) {
        out.push((k, v));
    }
    out
}

/// The log files of the store at `path` as `store_records` input: each
/// file's bytes in blocks appended to it.
fn wal_records(path: &Path, out: &mut Writer) {
    let Ok(entries) = std::fs::read_dir(path.join("wal")) else {
        return;
    };
    let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    for file in files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some((origin, first)) = name
            .strip_suffix(".wal")
            .and_then(|stem| stem.split_once('-'))
            .and_then(|(o, f)| Some((o.parse::<u16>().ok()?, f.parse::<u64>().ok()?)))
        else {
            continue;
        };
        let bytes = std::fs::read(&file).expect("a log file reads");
        for block in bytes.chunks(60_000) {
            out.u8(store_records::WAL_FILE)
                .block(&store_records::wal_key(origin, first))
                .block(block);
        }
    }
}

/// The segment files of the store at `path`: each file's generation and
/// its bytes.
fn segment_files(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(path.join("segments")) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|file| {
            let generation = file
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|g| g.parse::<u64>().ok())?;
            Some((
                generation,
                std::fs::read(&file).expect("a segment file reads"),
            ))
        })
        .collect()
}

/// The segments of a segment file (past its 13-byte header, each framed by
/// its length and CRC32, `u32` little endian each).
fn file_segments(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 13;
    while let Some(len) = bytes.get(at..at + 4) {
        let len = u32::from_le_bytes(len.try_into().expect("four bytes")) as usize;
        let Some(segment) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        out.push(segment.to_vec());
        at += 8 + len;
    }
    out
}

/// The store's segment files as `store_records` input: as files (the
/// current layout), as the `segments` tree of stores before segment files
/// (key: generation and chunk, big endian), or as one record per entity in
/// the `entities` tree of stores before segments.
fn segment_records(path: &Path, files: &mut Writer, tree: &mut Writer, entities: &mut Writer) {
    for (generation, bytes) in segment_files(path) {
        for block in bytes.chunks(60_000) {
            files
                .u8(store_records::SEGMENT_FILE)
                .block(&store_records::segment_file_key(generation))
                .block(block);
        }
        for (chunk, segment) in file_segments(&bytes).into_iter().enumerate() {
            let key = [
                &generation.to_be_bytes()[..],
                &(chunk as u32).to_be_bytes()[..],
            ]
            .concat();
            tree.u8(store_records::selector("segments", &key))
                .block(&key)
                .block(&segment);
            for (k, v) in unpack_segment(&segment) {
                entities
                    .u8(store_records::selector("entities", &k))
                    .block(&k)
                    .block(&v);
            }
        }
    }
}

/// The log of the store, as records of the `log` tree stores kept before
/// the log moved to files (key: origin and first seq, big endian).
fn legacy_log_records(store: &SledStore, out: &mut Writer) {
    let sel = store_records::selector("log", b"");
    for (origin, bounds) in store.log_bounds().expect("the log's bounds") {
        let writes = store
            .read_log(origin, bounds.first, usize::MAX)
            .expect("the log reads");
        for chunk in writes.chunks(4) {
            let Some(first) = chunk.first() else {
                continue;
            };
            let batch = concord_core::WriteBatch {
                origin,
                writes: chunk.to_vec(),
            };
            out.u8(sel)
                .block(&store_records::wal_key(origin.get(), first.seq))
                .block(&concord_crdt::codec::encode(&batch).expect("a batch encodes"));
        }
    }
}

fn store_seeds() -> Vec<Seed> {
    let dir = fixture::tempdir();
    let path = dir.path().join("store");
    {
        let store = SledStore::open(&path).expect("a new store opens");
        let mut here = Engine::open(fixture::config(fixture::HERE), store, fixture::clock())
            .expect("a new engine opens");
        exchange(&mut here);
        here.checkpoint().expect("a checkpoint");
        // Some writes past the checkpoint, in the log only.
        write_all(&mut here, 5);
        here.commit().expect("a commit");
    }
    let mut current = Writer::default();
    let mut legacy = Writer::default();
    let mut sled_segments = Writer::default();
    let mut log_only = Writer::default();
    {
        let store = SledStore::open(&path).expect("the store opens again");
        legacy_log_records(&store, &mut legacy);
    }
    wal_records(&path, &mut current);
    wal_records(&path, &mut sled_segments);
    wal_records(&path, &mut log_only);
    segment_records(&path, &mut current, &mut sled_segments, &mut legacy);
    let db = sled::open(&path).expect("the store's database opens");
    for name in db.tree_names() {
        let Ok(tree_name) = std::str::from_utf8(&name) else {
            continue;
        };
        if !store_records::TREES.iter().any(|(t, _)| *t == tree_name) {
            continue;
        }
        let tree = db.open_tree(&name).expect("a tree opens");
        for entry in &tree {
            let (key, value) = entry.expect("a record reads");
            let sel = store_records::selector(tree_name, &key);
            current.u8(sel).block(&key).block(&value);
            sled_segments.u8(sel).block(&key).block(&value);
            if !(tree_name == "meta" && &key[..] == b"segments") {
                legacy.u8(sel).block(&key).block(&value);
            }
        }
    }
    vec![
        seed("store_records", "current-layout", current.bytes),
        seed("store_records", "legacy-entities", legacy.bytes),
        seed("store_records", "sled-segments", sled_segments.bytes),
        seed("store_records", "log-only", log_only.bytes),
    ]
}

fn store_ops_seeds() -> Vec<Seed> {
    use store_ops::tag;
    let mut seeds = Vec::new();
    // Every policy, a commit, more writes, a reopen that loses them.
    let mut w = Writer::default();
    for c in 0..5 {
        w.u8(tag::PUT).u8(c).u8(0).u8(10 + c);
        w.u8(tag::ADD).u8(c).u8(1).u8(5);
    }
    w.u8(tag::COMMIT);
    for c in 0..5 {
        w.u8(tag::PUT).u8(c).u8(0).u8(20 + c);
    }
    w.u8(tag::REOPEN);
    seeds.push(seed("store_ops", "commit-then-lose", w.bytes));
    // Checkpoints, ticks, deletes and reads with context, reopen after each.
    let mut w = Writer::default();
    for round in 0..3u8 {
        w.u8(tag::PUT).u8(2).u8(1).u8(round);
        w.u8(tag::PUT).u8(2).u8(1).u8(round + 100);
        w.u8(tag::PUT_READ).u8(2).u8(1).u8(round + 50);
        w.u8(tag::DELETE).u8(0).u8(round);
        w.u8(tag::ADD).u8(3).u8(round).u8(0xfe);
        w.u8(tag::TICK).u8(30);
        w.u8(tag::CHECKPOINT);
        w.u8(tag::REOPEN);
    }
    seeds.push(seed("store_ops", "checkpoint-reopen", w.bytes));
    // Queue conflicts (blind writes on one key), resolved.
    let mut w = Writer::default();
    for v in 1..5 {
        w.u8(tag::PUT).u8(4).u8(0).u8(v);
    }
    w.u8(tag::COMMIT)
        .u8(tag::RESOLVE)
        .u8(7)
        .u8(tag::RESOLVE)
        .u8(0);
    w.u8(tag::CHECKPOINT).u8(tag::REOPEN).u8(tag::RESOLVE).u8(1);
    seeds.push(seed("store_ops", "queue-resolve", w.bytes));
    // Many writes: the tick's checkpoint (every 32 applied) kicks in.
    let mut w = Writer::default();
    for i in 0..40u8 {
        w.u8(tag::PUT).u8(i % 5).u8(i % 4).u8(i);
        if i % 10 == 9 {
            w.u8(tag::TICK).u8(1);
        }
    }
    w.u8(tag::REOPEN);
    seeds.push(seed("store_ops", "tick-checkpoints", w.bytes));
    seeds
}

fn crdt_seeds() -> Vec<Seed> {
    crate::crdt_laws::TYPES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut bytes = vec![u8::try_from(i).expect("few types")];
            // A fixed, varied filler for `arbitrary` to read states from.
            let mut x: u32 = 0x9e37_79b9 ^ (i as u32);
            for _ in 0..96 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                bytes.push(x.to_le_bytes()[0]);
            }
            seed("crdt_laws", name.replace([' ', '(', ')'], "-"), bytes)
        })
        .collect()
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut here = Engine::open(
        fixture::config(fixture::HERE),
        MemoryStorage::new(),
        fixture::clock(),
    )
    .expect("a new engine opens");
    let sent = exchange(&mut here);
    here.checkpoint().expect("a checkpoint");
    let mut out = decode_seeds(&here, &sent);
    out.extend(peer_seeds(&sent));
    out.extend(store_seeds());
    out.extend(store_ops_seeds());
    out.extend(crdt_seeds());
    out
}

/// Writes `seeds` under `corpus_root/<target>/seed-<name>`.
pub fn write(corpus_root: &Path, seeds: &[Seed]) -> std::io::Result<()> {
    for s in seeds {
        let dir = corpus_root.join(s.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{}", s.name)), &s.bytes)?;
    }
    Ok(())
}
