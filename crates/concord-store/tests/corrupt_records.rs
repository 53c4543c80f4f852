//! Bytes a disk can hold never make the store panic: a record that does not
//! decode, or does not match its key, is `CoreError::CorruptRecord` naming
//! its tree and key.

mod support;

use std::path::Path;

use concord_core::storage_conformance::{sample_batch, sample_delta};
use concord_core::{CoreError, Storage};
use concord_crdt::{RegionId, codec};
use concord_store::SledStore;
use support::{open_raw, segment_files, write_segment_file};
use tempfile::TempDir;

const A: RegionId = RegionId::new(1);
const B: RegionId = RegionId::new(2);

/// A store with a checkpoint and two origins' logs (A in three records).
fn populated() -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = SledStore::open(dir.path()).expect("a new store opens");
    store
        .append(vec![
            sample_batch(A, 1..=3),
            sample_batch(A, 4..=6),
            sample_batch(B, 1..=2),
        ])
        .expect("valid appends");
    store
        .append(vec![sample_batch(A, 7..=9)])
        .expect("a valid append");
    store.checkpoint(sample_delta()).expect("a checkpoint");
    store.sync().expect("a sync");
    dir
}

/// Changes the closed store at `path` through sled directly.
fn tamper(path: &Path, tree: &str, change: impl FnOnce(&sled::Tree)) {
    let db = open_raw(&db_of(path, tree));
    change(&db.open_tree(tree).expect("the tree opens"));
    db.flush().expect("sled flushes");
}

/// The sled database that holds `tree`: the state's, the directory itself
/// (the log is in files: see `log_files.rs`).
fn db_of(path: &Path, _tree: &str) -> std::path::PathBuf {
    path.to_path_buf()
}

/// The keys of `tree`, in order.
fn keys(path: &Path, tree: &str) -> Vec<Vec<u8>> {
    let db = open_raw(&db_of(path, tree));
    let tree = db.open_tree(tree).expect("the tree opens");
    tree.iter()
        .map(|e| e.expect("sled reads its keys").0.to_vec())
        .collect()
}

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, CoreError>, tree: &str, case: &str) {
    match result {
        Err(CoreError::CorruptRecord { location, .. }) => assert!(
            location.contains(&format!("{tree:?}")),
            "{case}: the error's location {location:?} does not name tree {tree:?}"
        ),
        other => panic!("{case}: expected CorruptRecord in tree {tree:?}, got {other:?}"),
    }
}

/// Bytes that are not a record of the expected type: empty, an unknown
/// format version, a truncated or overlong body, a record of another type,
/// and pseudo-random noise.
fn garbage(real: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut cases = vec![
        ("empty".to_owned(), Vec::new()),
        ("unknown version".to_owned(), [&[9u8][..], real].concat()),
        ("version byte only".to_owned(), vec![codec::FORMAT_VERSION]),
        (
            "truncated".to_owned(),
            real[..real.len().saturating_sub(3).max(1)].to_vec(),
        ),
        ("trailing bytes".to_owned(), [real, &[0, 1]].concat()),
        (
            "huge length prefix".to_owned(),
            [&[codec::FORMAT_VERSION][..], &[0xff; 12]].concat(),
        ),
        (
            "another type".to_owned(),
            codec::encode(&"not this record").expect("a string encodes"),
        ),
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..16 {
        let len = 1 + (n * 7) % 64;
        let noise = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            })
            .map(|b| if n % 2 == 0 { b } else { b & 0x7f })
            .collect::<Vec<u8>>();
        let mut noise = noise;
        noise[0] = codec::FORMAT_VERSION;
        cases.push((format!("noise {n}"), noise));
    }
    cases
}

/// Each checkpoint tree, each record, each kind of garbage: loading the
/// checkpoint says which record is corrupt.
#[test]
fn garbage_in_any_checkpoint_tree_is_a_corrupt_record() {
    let dir = populated();
    // Segment files: see `a_corrupt_entry_of_a_segment_is_a_corrupt_record`
    // and the framing tests in `src/segment_file.rs`.
    for tree in ["queue", "loser_chunks", "meta"] {
        let all = keys(dir.path(), tree);
        assert!(!all.is_empty(), "the sample checkpoint fills tree {tree}");
        for key in all {
            let db = open_raw(dir.path());
            let real = db.open_tree(tree).unwrap().get(&key).unwrap().unwrap();
            drop(db);
            for (case, bytes) in garbage(&real) {
                tamper(dir.path(), tree, |t| {
                    t.insert(&key, bytes).unwrap();
                });
                let store = SledStore::open(dir.path()).unwrap();
                assert_corrupt(
                    store.load_checkpoint(),
                    tree,
                    &format!("{tree} {key:x?} {case}"),
                );
                drop(store);
            }
            tamper(dir.path(), tree, |t| {
                t.insert(&key, real).unwrap();
            });
        }
    }
    // Restored, it loads again.
    let store = SledStore::open(dir.path()).unwrap();
    let loaded = store.load_checkpoint().unwrap();
    assert_eq!(loaded.entities.len(), sample_delta().entities.len());
}

/// Keys that no record of their tree can have, and records under the key of
/// another, are corrupt too.
#[test]
fn misplaced_records_are_corrupt_records() {
    let dir = populated();
    type Change = fn(&sled::Tree);
    let cases: [(&str, &str, Change); 5] = [
        ("queue", "a key that is not 8 bytes", |t| {
            let (_, v) = t.first().unwrap().unwrap();
            t.insert(b"abc", v).unwrap();
        }),
        ("queue", "an item under another item's id", |t| {
            let (_, v) = t.first().unwrap().unwrap();
            t.insert(1000u64.to_be_bytes(), v).unwrap();
        }),
        ("loser_chunks", "a key that is not 16 bytes", |t| {
            let (_, v) = t.first().unwrap().unwrap();
            t.insert(77u64.to_be_bytes(), v).unwrap();
        }),
        ("loser_chunks", "a chunk under another chunk's ids", |t| {
            let (_, v) = t.first().unwrap().unwrap();
            t.insert(loser_chunk_key(0, 0), v).unwrap();
        }),
        (
            "loser_chunks",
            "a key whose first id is past its last",
            |t| {
                let (_, v) = t.first().unwrap().unwrap();
                t.insert(loser_chunk_key(79, 77), v).unwrap();
            },
        ),
    ];
    for (tree, case, change) in cases {
        let before = keys(dir.path(), tree);
        tamper(dir.path(), tree, change);
        let store = SledStore::open(dir.path()).unwrap();
        assert_corrupt(store.load_checkpoint(), tree, case);
        drop(store);
        // Put the tree back as it was.
        tamper(dir.path(), tree, |t| {
            for entry in t.iter() {
                let (k, _) = entry.unwrap();
                if !before.iter().any(|b| b[..] == k[..]) {
                    t.remove(k).unwrap();
                }
            }
        });
    }
    SledStore::open(dir.path())
        .unwrap()
        .load_checkpoint()
        .unwrap();
}

/// A spoiled segment file: what was done, its segments, and how the
/// error's location ends (when it names an entry).
type Spoiled = (String, Vec<Vec<u8>>, Option<&'static str>);

/// A loser chunk key: first and last id, big endian.
fn loser_chunk_key(first: u64, last: u64) -> Vec<u8> {
    [&first.to_be_bytes()[..], &last.to_be_bytes()[..]].concat()
}

/// The (entity key, record) entries of a segment (its framing: a format
/// byte, a `u32` count, then per entry a `u32` length and the key, a `u32`
/// length and the record; all big endian).
fn unpack(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let count = u32::from_be_bytes(bytes[1..5].try_into().expect("a segment header"));
    let mut rest = &bytes[5..];
    let mut block = || {
        let len = u32::from_be_bytes(rest[..4].try_into().expect("a length")) as usize;
        let out = rest[4..4 + len].to_vec();
        rest = &rest[4 + len..];
        out
    };
    (0..count).map(|_| (block(), block())).collect()
}

/// A segment of `entries`, framed as [`unpack`] reads it.
fn pack(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![1];
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (key, record) in entries {
        for block in [key, record] {
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(block);
        }
    }
    out
}

/// The file of the sample checkpoint's generation (1).
const SAMPLE_FILE: &str = "00000000000000000001.seg";

/// A corrupt record whose location names the sample checkpoint's segment
/// file.
fn assert_corrupt_file<T: std::fmt::Debug>(result: Result<T, CoreError>, case: &str) {
    match result {
        Err(CoreError::CorruptRecord { location, .. }) => assert!(
            location.contains(SAMPLE_FILE),
            "{case}: the error's location {location:?} does not name {SAMPLE_FILE}"
        ),
        other => panic!("{case}: expected CorruptRecord in {SAMPLE_FILE}, got {other:?}"),
    }
}

/// A well-framed segment whose content is wrong — an entity record that
/// does not decode, an entity key that names no collection, entries out of
/// order, a segment repeated — is a CorruptRecord naming the segment file
/// and the entry. (Damage to the file's own framing: the tests in
/// `src/segment_file.rs`.)
#[test]
fn a_corrupt_entry_of_a_segment_is_a_corrupt_record() {
    let dir = populated();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1, "the sample checkpoint is one generation");
    let (generation, segments) = files[0].clone();
    assert_eq!(generation, 1);
    assert_eq!(segments.len(), 1, "the sample checkpoint is one segment");
    let real = segments[0].clone();
    let entries = unpack(&real);
    assert_eq!(entries.len(), sample_delta().entities.len());
    assert_eq!(pack(&entries), real, "the test reads the framing");

    let mut cases: Vec<Spoiled> = Vec::new();
    for (case, bytes) in garbage(&entries[3].1) {
        let mut spoiled = entries.clone();
        spoiled[3].1 = bytes;
        cases.push((
            format!("record of entry 3: {case}"),
            vec![pack(&spoiled)],
            Some(", entry 3"),
        ));
    }
    let mut bad_key = entries.clone();
    bad_key[0].0 = b"\0no collection".to_vec();
    cases.push((
        "an entity key without a collection".into(),
        vec![pack(&bad_key)],
        Some(", entry 0"),
    ));
    let mut swapped = entries.clone();
    swapped.swap(1, 2);
    cases.push(("entries out of order".into(), vec![pack(&swapped)], None));
    cases.push((
        "a segment repeated in its generation".into(),
        vec![real.clone(), real.clone()],
        None,
    ));
    for (case, spoiled, entry) in cases {
        write_segment_file(dir.path(), 1, &spoiled);
        let store = SledStore::open(dir.path()).unwrap();
        let result = store.load_checkpoint();
        if let (Some(entry), Err(CoreError::CorruptRecord { location, what, .. })) =
            (entry, &result)
        {
            assert!(location.ends_with(entry), "{case}: {location}");
            assert_eq!(*what, "entity", "{case}");
        }
        assert_corrupt_file(result, &case);
        drop(store);
    }
    // A published generation whose file is gone.
    std::fs::remove_file(dir.path().join("segments").join(SAMPLE_FILE)).unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert_corrupt_file(store.load_checkpoint(), "a missing file");
    drop(store);
    write_segment_file(dir.path(), 1, &[real]);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(
        store.load_checkpoint().unwrap().entities.len(),
        sample_delta().entities.len()
    );
}

/// A well-framed loser chunk that disagrees with its key, its records or
/// its neighbours, or chunks the index does not count, are a CorruptRecord.
#[test]
fn a_loser_chunk_that_disagrees_is_a_corrupt_record() {
    let dir = populated();
    let all = keys(dir.path(), "loser_chunks");
    let real_key = loser_chunk_key(1, 3);
    assert_eq!(
        all,
        vec![real_key.clone()],
        "the sample losers are one chunk"
    );
    let db = open_raw(dir.path());
    let real = db
        .open_tree("loser_chunks")
        .unwrap()
        .get(&real_key)
        .unwrap()
        .unwrap();
    drop(db);
    // Chunks are framed as segments, keyed by record id.
    let entries = unpack(&real);
    let id = |n: u64| n.to_be_bytes().to_vec();
    assert_eq!(
        entries.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
        vec![id(1), id(2), id(3)]
    );
    let r = |n: usize| entries[n].1.clone();
    type Chunk = (Vec<u8>, Vec<u8>);
    let cases: Vec<(&str, &str, Vec<Chunk>)> = vec![
        (
            "a record under another id",
            "loser_chunks",
            vec![(loser_chunk_key(1, 1), pack(&[(id(1), r(1))]))],
        ),
        (
            "a record that does not decode",
            "loser_chunks",
            vec![(
                loser_chunk_key(1, 3),
                pack(&[
                    (id(1), r(0)),
                    (id(2), vec![codec::FORMAT_VERSION, 0xff]),
                    (id(3), r(2)),
                ]),
            )],
        ),
        (
            "a key whose ids are not the chunk's",
            "loser_chunks",
            vec![(loser_chunk_key(1, 3), pack(&[(id(1), r(0)), (id(2), r(1))]))],
        ),
        (
            "an id that is not 8 bytes",
            "loser_chunks",
            vec![(loser_chunk_key(1, 3), pack(&[(vec![1], r(0))]))],
        ),
        (
            "a chunk overlapping the previous one",
            "loser_chunks",
            vec![
                (loser_chunk_key(1, 2), pack(&[(id(1), r(0)), (id(2), r(1))])),
                (loser_chunk_key(2, 3), pack(&[(id(2), r(1)), (id(3), r(2))])),
            ],
        ),
        (
            "chunks the index does not count",
            "meta",
            vec![
                (loser_chunk_key(1, 1), pack(&[(id(1), r(0))])),
                (loser_chunk_key(2, 2), pack(&[(id(2), r(1))])),
                (loser_chunk_key(3, 3), pack(&[(id(3), r(2))])),
            ],
        ),
        (
            "an empty chunk",
            "loser_chunks",
            vec![(loser_chunk_key(1, 3), pack(&[]))],
        ),
    ];
    for (case, tree, chunks) in cases {
        tamper(dir.path(), "loser_chunks", |t| {
            t.remove(&real_key).unwrap();
            for (key, chunk) in &chunks {
                t.insert(key, chunk.clone()).unwrap();
            }
        });
        let store = SledStore::open(dir.path()).unwrap();
        assert_corrupt(store.load_checkpoint(), tree, case);
        drop(store);
        tamper(dir.path(), "loser_chunks", |t| {
            for (key, _) in &chunks {
                t.remove(key).unwrap();
            }
            t.insert(&real_key, real.clone()).unwrap();
        });
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(
        store.load_checkpoint().unwrap().losers,
        sample_delta().losers
    );
}

/// Segments and loser chunks the indexes do not publish — written by a
/// checkpoint that crashed before publishing them, or replaced or purged
/// by one that crashed before removing them — are removed when the store
/// opens, and the checkpoint loads as the indexes say.
#[test]
fn unpublished_segments_and_chunks_are_removed_at_open() {
    let dir = populated();
    let expected = SledStore::open(dir.path())
        .unwrap()
        .load_checkpoint()
        .unwrap();
    let segments_before = segment_files(dir.path());
    let chunks_before = keys(dir.path(), "loser_chunks");
    // The sample checkpoint is generation 1, and loser records 1 to 3.
    assert_eq!(
        segments_before.iter().map(|(g, _)| *g).collect::<Vec<_>>(),
        vec![1]
    );
    let real = segments_before[0].1.clone();
    // A generation not published yet, one replaced by a compaction, and
    // garbage in an unpublished generation.
    write_segment_file(dir.path(), 2, &[real[0].clone(), real[0].clone()]);
    write_segment_file(dir.path(), 0, &real);
    std::fs::write(
        dir.path().join("segments").join("00000000000000001000.seg"),
        b"garbage",
    )
    .unwrap();
    // Not a segment file's name: left alone.
    std::fs::write(dir.path().join("segments").join("notes.txt"), b"mine").unwrap();
    tamper(dir.path(), "loser_chunks", |t| {
        let (_, v) = t.first().unwrap().unwrap();
        t.insert(loser_chunk_key(4, 9), v).unwrap();
        t.insert(loser_chunk_key(77, 79), b"garbage".to_vec())
            .unwrap();
    });
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.load_checkpoint().unwrap(), expected);
    drop(store);
    assert_eq!(segment_files(dir.path()), segments_before);
    assert!(dir.path().join("segments").join("notes.txt").exists());
    assert_eq!(keys(dir.path(), "loser_chunks"), chunks_before);
}
