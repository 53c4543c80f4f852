//! The log in files: torn ends cut off at open, corrupt records reported
//! where they lie, rotation and trimming by whole files, the cache of the
//! last writes agreeing with the files, and stores whose log is still in
//! sled moved into files.
//!
//! The tests read and spoil the files through their documented framing
//! (see the crate docs): a 20-byte header — CRC32 of the rest of the header
//! and of the record, the record's length, its first seq, its count, all
//! little endian — then the record.

use std::fs;
use std::path::{Path, PathBuf};

use concord_core::storage_conformance::sample_batch;
use concord_core::{CoreError, LogBounds, Op, Storage, TaggedWrite, WriteBatch};
use concord_crdt::{RegionId, codec};
use concord_store::{SledStore, StoreOptions};
use support::open_raw;

mod support;

const A: RegionId = RegionId::new(1);
const B: RegionId = RegionId::new(2);
const HEADER: usize = 20;

/// The log files of the store at `path`, in name order.
fn wal_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(path.join("wal"))
        .expect("the store has a wal directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files
}

/// The log files of `origin`.
fn files_of(path: &Path, origin: RegionId) -> Vec<PathBuf> {
    let prefix = format!("{:05}-", origin.get());
    wal_files(path)
        .into_iter()
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect()
}

/// The (offset, length) of every frame of a file's bytes.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        let len = u32::from_le_bytes(
            bytes[at + 4..at + 8]
                .try_into()
                .expect("the test's own setup"),
        ) as usize;
        out.push((at, HEADER + len));
        at += HEADER + len;
    }
    assert_eq!(at, bytes.len(), "the file is whole frames");
    out
}

/// A frame holding `record`, said to be `count` writes from seq `first`.
fn frame(first: u64, count: u32, record: &[u8]) -> Vec<u8> {
    let len = record.len() as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&first.to_le_bytes());
    h.update(&count.to_le_bytes());
    h.update(record);
    let mut out = h.finalize().to_le_bytes().to_vec();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(record);
    out
}

fn options(file_bytes: u64) -> StoreOptions {
    StoreOptions {
        log_file_bytes: file_bytes,
        ..StoreOptions::default()
    }
}

fn bounds(list: &[(RegionId, u64, u64)]) -> Vec<(RegionId, LogBounds)> {
    list.iter()
        .map(|&(o, first, last)| (o, LogBounds { first, last }))
        .collect()
}

fn writes(origin: RegionId, seqs: std::ops::RangeInclusive<u64>) -> Vec<TaggedWrite> {
    sample_batch(origin, seqs).writes
}

/// A store with A's log in three records (1-3, 4-6, 7-9) and B's in one,
/// each append synced; all in one file per origin.
fn three_records() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = SledStore::open(dir.path()).expect("a new store opens");
    store
        .append(vec![sample_batch(A, 1..=3), sample_batch(B, 1..=2)])
        .expect("the test's own setup");
    store.sync().expect("the test's own setup");
    store
        .append(vec![sample_batch(A, 4..=6)])
        .expect("the test's own setup");
    store.sync().expect("the test's own setup");
    store
        .append(vec![sample_batch(A, 7..=9)])
        .expect("the test's own setup");
    store.sync().expect("the test's own setup");
    dir
}

fn assert_corrupt_in<T: std::fmt::Debug>(result: Result<T, CoreError>, file: &Path, case: &str) {
    let name = file
        .file_name()
        .expect("the test's own setup")
        .to_str()
        .expect("the test's own setup");
    match result {
        Err(CoreError::CorruptRecord { location, .. }) => assert!(
            location.contains(name) && location.contains("offset"),
            "{case}: the error's location {location:?} does not name file {name} and an offset"
        ),
        other => panic!("{case}: expected CorruptRecord in {name}, got {other:?}"),
    }
}

#[test]
fn a_torn_tail_is_cut_off_at_open_and_appends_go_on() {
    let dir = three_records();
    let file = files_of(dir.path(), A).pop().unwrap();
    let whole = fs::read(&file).unwrap();
    let f = frames(&whole);
    assert_eq!(f.len(), 3);
    let (last_at, last_len) = f[2];
    let mut tails: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [
        1,
        HEADER - 1,
        HEADER,
        HEADER + 1,
        last_len / 2,
        last_len - 1,
    ] {
        tails.push((
            format!("cut {cut} bytes into the last frame"),
            whole[..last_at + cut].to_vec(),
        ));
    }
    let mut flipped = whole.clone();
    flipped[last_at + last_len - 2] ^= 0x01;
    tails.push(("the last frame fails its checksum".into(), flipped));
    tails.push((
        "zeros after the last frame".into(),
        [&whole[..last_at], &[0u8; 4096][..]].concat(),
    ));
    let mut zero_record = whole[..last_at + HEADER].to_vec();
    zero_record.resize(last_at + last_len, 0);
    tails.push(("a header, then zeros".into(), zero_record));
    for (case, bytes) in tails {
        fs::write(&file, &bytes).unwrap();
        let mut store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            store.log_bounds().unwrap(),
            bounds(&[(A, 1, 6), (B, 1, 2)]),
            "{case}"
        );
        assert_eq!(
            store.read_log(A, 1, 100).unwrap(),
            writes(A, 1..=6),
            "{case}"
        );
        assert_eq!(
            fs::metadata(&file).unwrap().len(),
            last_at as u64,
            "{case}: the torn end is cut off"
        );
        // The log goes on from the last good record.
        store.append(vec![sample_batch(A, 7..=8)]).unwrap();
        store.sync().unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.read_log(A, 1, 100).unwrap(),
            writes(A, 1..=8),
            "{case}"
        );
        drop(store);
        fs::write(&file, &whole).unwrap();
    }
}

#[test]
fn a_file_of_nothing_but_a_torn_record_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SledStore::open_with(dir.path(), options(1)).unwrap();
    store.append(vec![sample_batch(A, 1..=3)]).unwrap();
    store.append(vec![sample_batch(A, 4..=6)]).unwrap();
    store.sync().unwrap();
    drop(store);
    let files = files_of(dir.path(), A);
    assert_eq!(files.len(), 2, "one record per file");
    let bytes = fs::read(&files[1]).unwrap();
    fs::write(&files[1], &bytes[..bytes.len() / 2]).unwrap();
    let mut store = SledStore::open_with(dir.path(), options(1)).unwrap();
    assert_eq!(store.log_bounds().unwrap(), bounds(&[(A, 1, 3)]));
    assert_eq!(files_of(dir.path(), A), files[..1]);
    store.append(vec![sample_batch(A, 4..=5)]).unwrap();
    store.sync().unwrap();
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.read_log(A, 1, 100).unwrap(), writes(A, 1..=5));
}

#[test]
fn bytes_after_the_last_record_that_are_no_torn_frame_fail_the_open() {
    let dir = three_records();
    let file = files_of(dir.path(), A).pop().unwrap();
    let whole = fs::read(&file).unwrap();
    // A header of no possible record (no length, no writes), then data.
    let mut nonsense = whole.clone();
    nonsense.extend_from_slice(&[0u8; HEADER]);
    nonsense.extend_from_slice(b"more bytes that are not zeros");
    fs::write(&file, &nonsense).unwrap();
    assert_corrupt_in(SledStore::open(dir.path()), &file, "nonsense after the end");
    // A last record that passes its checksum but does not decode.
    let f = frames(&whole);
    let (last_at, _) = f[2];
    let garbage = [&whole[..last_at], &frame(7, 3, b"\x01not a batch")[..]].concat();
    fs::write(&file, &garbage).unwrap();
    assert_corrupt_in(
        SledStore::open(dir.path()),
        &file,
        "an undecodable last record",
    );
    // Put back, it opens.
    fs::write(&file, &whole).unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.read_log(A, 1, 100).unwrap(), writes(A, 1..=9));
}

#[test]
fn a_corrupt_record_in_the_middle_is_reported_when_read() {
    let dir = three_records();
    let file = files_of(dir.path(), A).pop().unwrap();
    let whole = fs::read(&file).unwrap();
    let f = frames(&whole);
    let (mid_at, mid_len) = f[1];
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut flipped = whole.clone();
    flipped[mid_at + mid_len / 2] ^= 0x40;
    cases.push(("a flipped bit", flipped));
    let mut flipped_header = whole.clone();
    flipped_header[mid_at + 9] ^= 0x01;
    cases.push(("a flipped bit in the header's seq", flipped_header));
    let replace =
        |record: Vec<u8>| [&whole[..mid_at], &record[..], &whole[mid_at + mid_len..]].concat();
    cases.push((
        "a record that does not decode",
        replace(frame(4, 3, b"\x01garbage")),
    ));
    cases.push((
        "another origin's batch",
        replace(frame(
            4,
            3,
            &codec::encode(&sample_batch(B, 4..=6)).unwrap(),
        )),
    ));
    cases.push((
        "fewer writes than the frame says",
        replace(frame(
            4,
            3,
            &codec::encode(&sample_batch(A, 4..=5)).unwrap(),
        )),
    ));
    for (case, bytes) in cases {
        fs::write(&file, &bytes).unwrap();
        let mut store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            store.log_bounds().unwrap(),
            bounds(&[(A, 1, 9), (B, 1, 2)]),
            "{case}"
        );
        assert_corrupt_in(store.read_log(A, 1, 100), &file, case);
        assert_corrupt_in(store.read_log(A, 5, 1), &file, case);
        // Reads that start past it, stop before it, or are of another
        // origin never touch it.
        assert_eq!(
            store.read_log(A, 7, 100).unwrap(),
            writes(A, 7..=9),
            "{case}"
        );
        assert_eq!(store.read_log(A, 1, 3).unwrap(), writes(A, 1..=3), "{case}");
        assert_eq!(
            store.read_log(B, 1, 100).unwrap(),
            writes(B, 1..=2),
            "{case}"
        );
        // It can be trimmed away, and the log goes on.
        store.trim_log(A, 6).unwrap();
        assert_eq!(
            store.read_log(A, 7, 100).unwrap(),
            writes(A, 7..=9),
            "{case}"
        );
        store.append(vec![sample_batch(A, 10..=10)]).unwrap();
        store.sync().unwrap();
        drop(store);
        fs::write(&file, &whole).unwrap();
    }
}

#[test]
fn a_corrupt_record_of_an_earlier_file_is_reported_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SledStore::open_with(dir.path(), options(1)).unwrap();
    for first in (1..=10).step_by(3) {
        store
            .append(vec![sample_batch(A, first..=first + 2)])
            .unwrap();
    }
    store.sync().unwrap();
    drop(store);
    let files = files_of(dir.path(), A);
    assert_eq!(files.len(), 4, "one record per file");
    let second = files[1].clone();
    let whole = fs::read(&second).unwrap();
    let mut spoiled = whole.clone();
    spoiled[HEADER + 3] ^= 0xff;
    fs::write(&second, &spoiled).unwrap();
    // An earlier file's records are not checked at open, only when read.
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.log_bounds().unwrap(), bounds(&[(A, 1, 12)]));
    assert_corrupt_in(store.read_log(A, 1, 100), &second, "a flipped byte");
    assert_eq!(store.read_log(A, 7, 100).unwrap(), writes(A, 7..=12));
    drop(store);
    // A header whose length runs past its file: its seqs read as corrupt.
    let mut long = whole.clone();
    long[4..8].copy_from_slice(&1000u32.to_le_bytes());
    fs::write(&second, &long).unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert_corrupt_in(store.read_log(A, 4, 1), &second, "a length past the end");
    assert_eq!(store.read_log(A, 1, 3).unwrap(), writes(A, 1..=3));
    assert_eq!(store.read_log(A, 7, 100).unwrap(), writes(A, 7..=12));
    drop(store);
    // A file that is missing: the seqs it held read as corrupt.
    fs::remove_file(&second).unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.read_log(A, 5, 1),
        Err(CoreError::CorruptRecord { .. })
    ));
    assert_eq!(store.read_log(A, 7, 100).unwrap(), writes(A, 7..=12));
}

#[test]
fn files_rotate_and_trims_delete_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SledStore::open_with(dir.path(), options(2000)).unwrap();
    for first in (1..=300).step_by(5) {
        store
            .append(vec![sample_batch(A, first..=first + 4)])
            .unwrap();
        if first % 50 == 1 {
            store.sync().unwrap();
        }
    }
    store.append(vec![sample_batch(B, 1..=2)]).unwrap();
    store.sync().unwrap();
    let before = files_of(dir.path(), A);
    assert!(before.len() >= 5, "{} files", before.len());
    for f in &before[..before.len() - 1] {
        // Each full file ends within one append past the size.
        assert!(fs::metadata(f).unwrap().len() >= 2000);
    }
    // Trim through seq 150: the files whose writes are all at or below it
    // go; the one that straddles it stays, and so do its records past 150.
    store.trim_log(A, 150).unwrap();
    let after = files_of(dir.path(), A);
    assert!(after.len() < before.len());
    assert_eq!(after, before[before.len() - after.len()..]);
    let b = store.log_bounds().unwrap();
    assert_eq!(b[0].0, A);
    assert_eq!(b[0].1.last, 300);
    assert!(
        b[0].1.first > 146 && b[0].1.first <= 151,
        "trimmed whole records: {b:?}"
    );
    let first = b[0].1.first;
    assert_eq!(
        store.read_log(A, first, 1000).unwrap(),
        writes(A, first..=300)
    );
    assert!(matches!(
        store.read_log(A, first - 1, 1),
        Err(CoreError::LogGap { .. })
    ));
    drop(store);
    // Reopened, the kept files' records may come back: never fewer.
    let mut store = SledStore::open_with(dir.path(), options(2000)).unwrap();
    let b = store.log_bounds().unwrap();
    assert!(b[0].1.first <= first && b[0].1.last == 300);
    let back = b[0].1.first;
    assert_eq!(
        store.read_log(A, back, 1000).unwrap(),
        writes(A, back..=300)
    );
    // Trimming through the last record of the file being appended to keeps
    // that file (appends go on into it)...
    let last_file = files_of(dir.path(), A).pop().unwrap();
    store.trim_log(A, 299).unwrap();
    assert_eq!(store.log_bounds().unwrap()[0].1.last, 300);
    assert!(last_file.exists());
    // ... trimming everything empties the log and removes its files, and a
    // log may then start anywhere.
    store.trim_log(A, 300).unwrap();
    assert_eq!(store.log_bounds().unwrap(), bounds(&[(B, 1, 2)]));
    assert!(files_of(dir.path(), A).is_empty());
    store.append(vec![sample_batch(A, 1000..=1001)]).unwrap();
    store.sync().unwrap();
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(
        store.log_bounds().unwrap(),
        bounds(&[(A, 1000, 1001), (B, 1, 2)])
    );
    assert_eq!(store.read_log(A, 1000, 10).unwrap(), writes(A, 1000..=1001));
}

/// Every read of every origin, from every seq, with several limits.
fn all_reads(
    store: &SledStore,
    origins: &[RegionId],
    last: u64,
) -> Vec<Result<Vec<TaggedWrite>, String>> {
    let mut out = Vec::new();
    for &o in origins {
        for from in 0..=last + 1 {
            for limit in [0, 1, 7, 100, usize::MAX] {
                out.push(store.read_log(o, from, limit).map_err(|e| e.to_string()));
            }
        }
    }
    out
}

#[test]
fn reads_from_the_cache_and_from_the_files_agree() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let opts = [
        StoreOptions::default(),
        StoreOptions {
            cache_writes: 0,
            ..options(3000)
        },
        StoreOptions {
            cache_writes: 40,
            cache_bytes: 64 << 10,
            ..options(3000)
        },
    ];
    let mut stores: Vec<SledStore> = dirs
        .iter()
        .zip(opts.iter())
        .map(|(d, o)| SledStore::open_with(d.path(), o.clone()).unwrap())
        .collect();
    let mut big = sample_batch(B, 1..=400);
    for w in &mut big.writes {
        w.op = Op::Set(vec![3; 300]);
    }
    let mut calls = vec![vec![big]];
    for first in (1..=150).step_by(3) {
        calls.push(vec![sample_batch(A, first..=first + 2)]);
    }
    calls.push(vec![sample_batch(B, 401..=402), sample_batch(A, 151..=160)]);
    for (n, call) in calls.into_iter().enumerate() {
        for s in &mut stores {
            s.append(call.clone()).unwrap();
            if n % 7 == 0 {
                s.sync().unwrap();
            }
        }
    }
    for s in &mut stores {
        s.trim_log(A, 20).unwrap();
    }
    let expected = all_reads(&stores[0], &[A, B], 402);
    assert!(
        expected
            .iter()
            .any(|r| r.as_ref().is_ok_and(|w| w.len() > 100))
    );
    for s in &stores[1..] {
        assert!(all_reads(s, &[A, B], 402) == expected, "{:?}", s.path());
    }
    // And once reopened, from the files alone (A's trimmed records may be
    // back: compare from past them).
    let past_trim = |s: &SledStore| {
        let mut out = all_reads(s, &[B], 402);
        for from in 21..=161 {
            for limit in [1, 7, 100, usize::MAX] {
                out.push(s.read_log(A, from, limit).map_err(|e| e.to_string()));
            }
        }
        out
    };
    let expected = past_trim(&stores[0]);
    for (s, d) in stores.into_iter().zip(&dirs) {
        drop(s);
        let back = SledStore::open(d.path()).unwrap();
        assert!(past_trim(&back) == expected, "{:?}", d.path());
    }
}

#[test]
fn a_large_batch_is_split_into_records_and_reads_back_whole() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let origin = RegionId::new(2);
    let mut batch = sample_batch(origin, 1..=3000);
    for w in &mut batch.writes {
        w.op = Op::Set(vec![7u8; 100]);
    }
    {
        let mut store = SledStore::open(dir.path()).expect("a new store");
        store.append(vec![batch.clone()]).expect("append");
        store.sync().expect("sync");
        assert_eq!(store.read_log(origin, 1, 5000).unwrap(), batch.writes);
        store.trim_log(origin, 1500).expect("trim");
        let rest = store.read_log(origin, 1501, 5000).expect("read the rest");
        assert_eq!(rest, batch.writes[1500..]);
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    let middle = store
        .read_log(origin, 1234, 10)
        .expect("read from the middle");
    assert_eq!(middle, batch.writes[1233..1243]);
    let file = files_of(dir.path(), origin).pop().unwrap();
    let f = frames(&fs::read(file).unwrap());
    assert!(f.len() >= 6, "{} records", f.len());
    assert!(f.iter().all(|(_, len)| *len < 64 * 1024), "{f:?}");
}

#[test]
fn synced_writes_survive_a_reopen_across_files_and_origins() {
    let dir = tempfile::tempdir().unwrap();
    let origins = [A, B, RegionId::new(0), RegionId::new(u16::MAX)];
    let mut ends = [0u64; 4];
    {
        let mut store = SledStore::open_with(dir.path(), options(4096)).unwrap();
        for round in 0..200u64 {
            let mut call = Vec::new();
            for (i, o) in origins.iter().enumerate() {
                let n = 1 + (round * 7 + i as u64) % 5;
                call.push(sample_batch(*o, ends[i] + 1..=ends[i] + n));
                ends[i] += n;
            }
            store.append(call).unwrap();
            if round % 3 == 0 {
                store.sync().unwrap();
            }
        }
        store.sync().unwrap();
    }
    for _ in 0..2 {
        let store = SledStore::open(dir.path()).unwrap();
        let mut expected: Vec<(RegionId, LogBounds)> = origins
            .iter()
            .zip(ends)
            .map(|(o, last)| (*o, LogBounds { first: 1, last }))
            .collect();
        expected.sort_by_key(|(o, _)| *o);
        assert_eq!(store.log_bounds().unwrap(), expected);
        for (o, last) in origins.iter().zip(ends) {
            assert_eq!(
                store.read_log(*o, 1, usize::MAX).unwrap(),
                writes(*o, 1..=last)
            );
        }
    }
    assert!(files_of(dir.path(), A).len() > 3);
}

#[test]
fn a_failed_append_leaves_the_log_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SledStore::open_with(dir.path(), options(1)).unwrap();
    store.append(vec![sample_batch(A, 1..=3)]).unwrap();
    store.sync().unwrap();
    // The file the next append of A needs cannot be created: a directory
    // holds its name.
    let blocker = dir
        .path()
        .join("wal")
        .join(format!("{:05}-{:020}.wal", 1, 4));
    fs::create_dir(&blocker).unwrap();
    let refused = store.append(vec![sample_batch(B, 1..=2), sample_batch(A, 4..=6)]);
    assert!(matches!(refused, Err(CoreError::Backend(_))), "{refused:?}");
    assert_eq!(store.log_bounds().unwrap(), bounds(&[(A, 1, 3)]));
    assert_eq!(store.read_log(B, 1, 10).unwrap(), Vec::new());
    fs::remove_dir(&blocker).unwrap();
    store
        .append(vec![sample_batch(B, 1..=2), sample_batch(A, 4..=6)])
        .unwrap();
    store.sync().unwrap();
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.log_bounds().unwrap(), bounds(&[(A, 1, 6), (B, 1, 2)]));
    assert_eq!(store.read_log(A, 1, 10).unwrap(), writes(A, 1..=6));
}

#[test]
fn names_that_are_not_log_files_are_left_alone() {
    let dir = three_records();
    let wal = dir.path().join("wal");
    fs::write(wal.join("notes.txt"), b"kept").unwrap();
    fs::write(wal.join("00001-1.wal"), b"not the name of a log file").unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.read_log(A, 1, 100).unwrap(), writes(A, 1..=9));
    assert!(wal.join("notes.txt").exists());
}

/// Pseudo-random bytes.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn spoiled_log_files_give_errors_never_panics() {
    let dir = three_records();
    let file = files_of(dir.path(), A).pop().unwrap();
    let whole = fs::read(&file).unwrap();
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    for round in 0..300 {
        let mut bytes = whole.clone();
        match round % 4 {
            0 => {
                for _ in 0..1 + noise.next() % 4 {
                    let at = (noise.next() as usize) % bytes.len();
                    bytes[at] ^= 1 << (noise.next() % 8);
                }
            }
            1 => bytes.truncate((noise.next() as usize) % bytes.len()),
            2 => {
                let at = (noise.next() as usize) % bytes.len();
                let n = (noise.next() % 64) as usize;
                let junk: Vec<u8> = (0..n).map(|_| noise.next() as u8).collect();
                bytes.splice(at..at, junk);
            }
            _ => {
                let at = (noise.next() as usize) % (bytes.len() - 4);
                bytes[at..at + 4].copy_from_slice(&(noise.next() as u32).to_le_bytes());
            }
        }
        fs::write(&file, &bytes).unwrap();
        if let Ok(mut store) = SledStore::open(dir.path()) {
            let b = store.log_bounds().unwrap();
            for from in 0..=10 {
                let _ = store.read_log(A, from, 100);
            }
            if let Some((_, a)) = b.iter().find(|(o, _)| *o == A) {
                let next = a.last + 1;
                store.append(vec![sample_batch(A, next..=next)]).unwrap();
                store.sync().unwrap();
                let _ = store.read_log(A, a.first, 100);
                store.trim_log(A, a.first).unwrap();
            }
            drop(store);
            let _ = SledStore::open(dir.path()).map(|s| s.read_log(A, 0, 100).map(|w| w.len()));
        }
        for f in files_of(dir.path(), A) {
            fs::remove_file(f).unwrap();
        }
        fs::write(&file, &whole).unwrap();
    }
}

/// Writes `records` into the sled log tree at `db`, the way stores kept
/// them: key origin (`u16` big endian), first seq (`u64` big endian).
fn sled_log(db: &sled::Db, records: &[WriteBatch]) {
    let tree = db.open_tree("log").expect("the test's own setup");
    for b in records {
        let mut key = b.origin.get().to_be_bytes().to_vec();
        key.extend_from_slice(&b.first_seq().to_be_bytes());
        tree.insert(key, codec::encode(b).expect("the test's own setup"))
            .expect("the test's own setup");
    }
    db.flush().expect("the test's own setup");
}

/// A log as an earlier store holds it: A in three records, B in one.
fn legacy_records() -> Vec<WriteBatch> {
    vec![
        sample_batch(A, 5..=7),
        sample_batch(A, 8..=8),
        sample_batch(A, 9..=12),
        sample_batch(B, 1..=4),
    ]
}

fn assert_moved(path: &Path) {
    let mut store = SledStore::open(path).expect("the store opens");
    assert_eq!(
        store.log_bounds().expect("the test's own setup"),
        bounds(&[(A, 5, 12), (B, 1, 4)])
    );
    assert_eq!(
        store.read_log(A, 5, 100).expect("the test's own setup"),
        writes(A, 5..=12)
    );
    assert_eq!(
        store.read_log(A, 9, 2).expect("the test's own setup"),
        writes(A, 9..=10)
    );
    assert_eq!(
        store.read_log(B, 1, 100).expect("the test's own setup"),
        writes(B, 1..=4)
    );
    assert!(!path.join("log").exists(), "the sled log is gone");
    assert!(!path.join("log.migrated").exists());
    assert!(!wal_files(path).is_empty());
    store
        .append(vec![sample_batch(A, 13..=14)])
        .expect("the test's own setup");
    store.sync().expect("the test's own setup");
    drop(store);
    let store = SledStore::open(path).expect("the test's own setup");
    assert_eq!(
        store.read_log(A, 5, 100).expect("the test's own setup"),
        writes(A, 5..=14)
    );
}

#[test]
fn a_log_in_its_own_sled_database_moves_into_files() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStore::open(dir.path()).unwrap());
    fs::remove_dir_all(dir.path().join("wal")).unwrap();
    sled_log(&open_raw(&dir.path().join("log")), &legacy_records());
    assert_moved(dir.path());
}

#[test]
fn a_log_in_the_state_database_moves_into_files() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_raw(dir.path());
        sled_log(&db, &legacy_records());
    }
    assert_moved(dir.path());
    let db = open_raw(dir.path());
    assert!(
        !db.tree_names().iter().any(|n| n.as_ref() == b"log"),
        "the old log tree is gone"
    );
}

#[test]
fn an_interrupted_move_is_done_again_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStore::open(dir.path()).unwrap());
    sled_log(&open_raw(&dir.path().join("log")), &legacy_records());
    // Files an earlier move left: a part of the log, and a torn record.
    let wal = dir.path().join("wal");
    let partial = codec::encode(&sample_batch(A, 5..=7)).unwrap();
    fs::write(
        wal.join(format!("{:05}-{:020}.wal", 1, 5)),
        [&frame(5, 3, &partial)[..], &[1, 2, 3]].concat(),
    )
    .unwrap();
    fs::write(wal.join(format!("{:05}-{:020}.wal", 7, 1)), b"junk").unwrap();
    assert_moved(dir.path());
    assert_eq!(
        files_of(dir.path(), RegionId::new(7)),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn a_finished_move_that_left_the_old_database_behind_is_not_redone() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStore::open(dir.path()).unwrap());
    sled_log(&open_raw(&dir.path().join("log")), &legacy_records());
    assert_moved(dir.path());
    // As if removing the renamed database had failed.
    sled_log(
        &open_raw(&dir.path().join("log.migrated")),
        &[sample_batch(A, 1..=100)],
    );
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.read_log(A, 5, 100).unwrap(), writes(A, 5..=14));
    assert!(!dir.path().join("log.migrated").exists());
}

#[test]
fn a_moved_log_keeps_its_corrupt_records_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_raw(&dir.path().join("log"));
        sled_log(&db, &legacy_records());
        let tree = db.open_tree("log").unwrap();
        let mut key = A.get().to_be_bytes().to_vec();
        key.extend_from_slice(&8u64.to_be_bytes());
        tree.insert(key, &b"\x01garbage"[..]).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.read_log(A, 5, 100),
        Err(CoreError::CorruptRecord { .. })
    ));
    assert_eq!(store.read_log(A, 5, 3).unwrap(), writes(A, 5..=7));
    assert_eq!(store.read_log(A, 9, 100).unwrap(), writes(A, 9..=12));
    drop(store);

    // The end of a log must be readable to continue it.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_raw(&dir.path().join("log"));
        sled_log(&db, &legacy_records());
        let tree = db.open_tree("log").unwrap();
        let mut key = A.get().to_be_bytes().to_vec();
        key.extend_from_slice(&9u64.to_be_bytes());
        tree.insert(key, &b"\x01garbage"[..]).unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(CoreError::CorruptRecord { .. })
    ));
    assert!(dir.path().join("log").exists(), "nothing was moved");
}
