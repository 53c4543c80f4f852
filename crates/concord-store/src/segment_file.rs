//! Segment files: each generation of entity segments in a file of its own.
//!
//! A checkpoint's entities go to `segments/<generation>.seg` in the store's
//! directory (see [`crate::layout::segment_file_name`]), written front to
//! back and synced before the index in sled publishes the generation. The
//! file is a header — the magic bytes `CSEG`, a format byte, the generation
//! (`u64`, little endian) — then the generation's segments
//! ([`crate::segment`]) in key order, each framed by its length and its
//! CRC32 (both `u32`, little endian).
//!
//! A published file was synced whole before it was published, so any
//! mismatch in it — a header that is not this file's, a frame running past
//! the end, a checksum — is a corrupt record naming the file and the offset,
//! never a torn write to cut off. Files of generations the index does not
//! publish are removed when the store opens (see [`crate::state`]).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use concord_core::CoreError;

use crate::layout::{parse_segment_file_name, segment_file_name};
use crate::record::{corrupt_at, file_location, io_error};
use crate::wal::{create_dir, finish_file, sync_dir};

/// The bytes every segment file starts with.
const MAGIC: &[u8; 4] = b"CSEG";
/// The format byte after the magic.
const FORMAT: u8 = 1;
/// The header: magic, format byte, generation.
pub(crate) const HEADER_LEN: usize = 4 + 1 + 8;
/// A frame's header: length and CRC32 of its segment.
const FRAME_HEADER_LEN: usize = 8;
/// What a corrupt segment file is reported as.
const WHAT: &str = "entity segment";
/// The writer's buffer: segments are ~7 KiB, so a write call carries many.
const WRITE_BUFFER: usize = 1 << 20;
/// A file being written is synced every this many bytes, not only at its
/// end: a compaction writes the whole state (~170 MiB for a million
/// entities), and syncing that at once queues the disk behind it, so the
/// log's group commits (an `fdatasync` each, on the engine's thread) would
/// wait for all of it. Synced as it goes, each waits for at most this much.
const SYNC_EVERY: u64 = 8 << 20;

/// The directory of segment files.
#[derive(Debug)]
pub(crate) struct SegmentFiles {
    dir: PathBuf,
}

/// One generation's file, read whole: its segments are ranges of `bytes`.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    /// The generation it holds.
    pub(crate) generation: u64,
    /// Where it is.
    pub(crate) path: PathBuf,
    bytes: Vec<u8>,
    frames: Vec<Frame>,
}

impl SegmentFile {
    /// The segments, in file order: their number, offset and bytes.
    pub(crate) fn segments(&self) -> impl Iterator<Item = (usize, u64, &[u8])> + '_ {
        self.frames.iter().enumerate().map(|(n, (offset, range))| {
            (
                n,
                *offset,
                self.bytes.get(range.clone()).unwrap_or_default(),
            )
        })
    }

    /// Where segment `n` (at `offset`) of this file is, for errors.
    pub(crate) fn location(&self, n: usize, offset: u64) -> String {
        format!("{}, segment {n}", file_location(&self.path, offset))
    }
}

impl SegmentFiles {
    /// The segment files in `dir`, created if missing.
    pub(crate) fn open(dir: &Path) -> Result<Self, CoreError> {
        create_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The file of `generation`.
    fn path(&self, generation: u64) -> PathBuf {
        self.dir.join(segment_file_name(generation))
    }

    /// The generations that have a file, in order. Other names are left
    /// alone.
    pub(crate) fn generations(&self) -> Result<Vec<u64>, CoreError> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| io_error("listing", &self.dir, &e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("listing", &self.dir, &e))?;
            if let Some(generation) = entry.file_name().to_str().and_then(parse_segment_file_name) {
                out.push(generation);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Starts the file of `generation`, replacing any file of that
    /// generation (left by a checkpoint that crashed before publishing it).
    pub(crate) fn create(&self, generation: u64) -> Result<SegmentWriter, CoreError> {
        let path = self.path(generation);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io_error("creating", &path, &e))?;
        let mut file = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(MAGIC);
        header[4] = FORMAT;
        header[5..].copy_from_slice(&generation.to_le_bytes());
        file.write_all(&header)
            .map_err(|e| io_error("writing", &path, &e))?;
        Ok(SegmentWriter {
            file,
            path,
            unsynced: HEADER_LEN as u64,
        })
    }

    /// Reads the file of `generation` and checks its framing.
    pub(crate) fn read(&self, generation: u64) -> Result<SegmentFile, CoreError> {
        let path = self.path(generation);
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => corrupt_at(
                    WHAT,
                    file_location(&path, 0),
                    format!("the index publishes generation {generation}, whose file is missing"),
                ),
                _ => io_error("reading", &path, &e),
            })?;
        let frames = frames(&bytes, generation).map_err(|(offset, reason)| {
            corrupt_at(WHAT, file_location(&path, offset as u64), reason)
        })?;
        Ok(SegmentFile {
            generation,
            path,
            bytes,
            frames,
        })
    }

    /// Removes the file of `generation` (no error if it is gone already).
    /// Not synced: see [`SegmentFiles::sync`].
    pub(crate) fn remove(&self, generation: u64) -> Result<(), CoreError> {
        let path = self.path(generation);
        shrink(&path)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("removing", &path, &e)),
        }
    }

    /// Syncs the directory: the files created and removed so far stay so
    /// across a crash.
    pub(crate) fn sync(&self) -> Result<(), CoreError> {
        sync_dir(&self.dir)
    }

    /// The bytes the files take.
    pub(crate) fn size(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Shrinks the file at `path` to nothing a step at a time before it is
/// removed: a compaction removes the whole previous state (hundreds of
/// MiB), and freeing that many blocks at once holds the file system's
/// journal long enough that the log's next commit waits on it. Freed in
/// steps, each commit waits for one step at most. A missing file is left
/// to the removal.
fn shrink(path: &Path) -> Result<(), CoreError> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("opening", path, &e)),
    };
    let mut len = file
        .metadata()
        .map_err(|e| io_error("reading the size of", path, &e))?
        .len();
    while len > 0 {
        len = len.saturating_sub(FREE_STEP);
        file.set_len(len)
            .map_err(|e| io_error("truncating", path, &e))?;
    }
    Ok(())
}

/// How much [`shrink`] frees at a time.
const FREE_STEP: u64 = 16 << 20;

/// One segment of a file: its frame's offset in the file, and the range of
/// the segment's bytes.
type Frame = (u64, Range<usize>);

/// The frames of a segment file of `generation`. An error gives the offset
/// of what is wrong, and what.
fn frames(bytes: &[u8], generation: u64) -> Result<Vec<Frame>, (usize, String)> {
    let header = bytes.get(..HEADER_LEN).ok_or_else(|| {
        (
            0,
            format!("the file is {} bytes, shorter than its header", bytes.len()),
        )
    })?;
    if &header[..4] != MAGIC {
        return Err((
            0,
            "the file does not start with the segment file magic".to_owned(),
        ));
    }
    if header[4] != FORMAT {
        return Err((
            4,
            format!("format {} (this build reads {FORMAT})", header[4]),
        ));
    }
    let mut named = [0u8; 8];
    named.copy_from_slice(&header[5..]);
    let named = u64::from_le_bytes(named);
    if named != generation {
        return Err((
            5,
            format!("the header says generation {named}, the name {generation}"),
        ));
    }
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        let frame = bytes.get(at..at + FRAME_HEADER_LEN).ok_or_else(|| {
            (
                at,
                "a frame header runs past the end of the file".to_owned(),
            )
        })?;
        let mut len = [0u8; 4];
        len.copy_from_slice(&frame[..4]);
        let len = u32::from_le_bytes(len) as usize;
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&frame[4..]);
        let crc = u32::from_le_bytes(crc);
        let start = at + FRAME_HEADER_LEN;
        let range = start..start.saturating_add(len);
        let segment = bytes.get(range.clone()).ok_or_else(|| {
            (
                at,
                format!("a frame of {len} bytes runs past the end of the file"),
            )
        })?;
        if crc32fast::hash(segment) != crc {
            return Err((at, "a segment's checksum does not match".to_owned()));
        }
        out.push((at as u64, range.clone()));
        at = range.end;
    }
    Ok(out)
}

/// Writes one generation's file: segments in order, then [`finish`](Self::finish).
pub(crate) struct SegmentWriter {
    file: BufWriter<File>,
    path: PathBuf,
    /// Bytes written since the last sync.
    unsynced: u64,
}

impl SegmentWriter {
    /// Appends a segment, framed.
    pub(crate) fn push(&mut self, segment: &[u8]) -> Result<(), CoreError> {
        let len = u32::try_from(segment.len()).map_err(|_| CoreError::TooLarge {
            what: "entity segment",
            len: segment.len(),
            max: u32::MAX as usize,
        })?;
        let mut frame = [0u8; FRAME_HEADER_LEN];
        frame[..4].copy_from_slice(&len.to_le_bytes());
        frame[4..].copy_from_slice(&crc32fast::hash(segment).to_le_bytes());
        self.file
            .write_all(&frame)
            .and_then(|()| self.file.write_all(segment))
            .map_err(|e| io_error("writing", &self.path, &e))?;
        self.unsynced += (FRAME_HEADER_LEN + segment.len()) as u64;
        if self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            self.file
                .flush()
                .and_then(|()| self.file.get_ref().sync_data())
                .map_err(|e| io_error("syncing", &self.path, &e))?;
        }
        Ok(())
    }

    /// Writes out what is buffered and syncs the file's data. The directory
    /// entry is synced by [`SegmentFiles::sync`].
    pub(crate) fn finish(self) -> Result<(), CoreError> {
        finish_file(self.file, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(generation: u64, segments: &[&[u8]]) -> (tempfile::TempDir, SegmentFiles) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let files = SegmentFiles::open(&dir.path().join("segments")).expect("opens");
        let mut w = files.create(generation).expect("creates");
        for s in segments {
            w.push(s).expect("writes");
        }
        w.finish().expect("syncs");
        (dir, files)
    }

    #[test]
    fn segments_read_back_in_order() {
        let (_dir, files) = written(7, &[b"first", b"", b"third segment"]);
        assert_eq!(files.generations().unwrap(), vec![7]);
        let file = files.read(7).unwrap();
        let read: Vec<&[u8]> = file.segments().map(|(_, _, s)| s).collect();
        assert_eq!(read, vec![&b"first"[..], b"", b"third segment"]);
        let offsets: Vec<u64> = file.segments().map(|(_, o, _)| o).collect();
        assert_eq!(offsets, vec![13, 26, 34]);
    }

    #[test]
    fn every_damage_is_a_corrupt_record_naming_the_file() {
        let (_dir, files) = written(3, &[b"alpha", b"beta"]);
        let path = files.path(3);
        let good = std::fs::read(&path).unwrap();
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("header cut", good[..7].to_vec()),
            ("frame header cut", good[..HEADER_LEN + 3].to_vec()),
            ("frame cut", good[..good.len() - 1].to_vec()),
        ];
        let mut magic = good.clone();
        magic[0] = b'X';
        cases.push(("magic", magic));
        let mut format = good.clone();
        format[4] = 9;
        cases.push(("format", format));
        let mut other = good.clone();
        other[5] = 4;
        cases.push(("another generation's header", other));
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        cases.push(("a flipped bit", flipped));
        let mut long = good.clone();
        long[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(("a length past the end", long));
        for (case, bytes) in cases {
            std::fs::write(&path, &bytes).unwrap();
            match files.read(3) {
                Err(CoreError::CorruptRecord { location, .. }) => {
                    assert!(
                        location.contains("00000000000000000003.seg"),
                        "{case}: {location}"
                    );
                }
                other => panic!("{case}: expected a corrupt record, got {other:?}"),
            }
        }
        match files.read(4) {
            Err(CoreError::CorruptRecord { location, .. }) => {
                assert!(location.contains("00000000000000000004.seg"), "{location}");
            }
            other => panic!("a missing file: expected a corrupt record, got {other:?}"),
        }
    }

    #[test]
    fn create_replaces_a_leftover_and_remove_is_idempotent() {
        let (_dir, files) = written(2, &[b"old and longer"]);
        let mut w = files.create(2).unwrap();
        w.push(b"new").unwrap();
        w.finish().unwrap();
        let file = files.read(2).unwrap();
        let read: Vec<&[u8]> = file.segments().map(|(_, _, s)| s).collect();
        assert_eq!(read, vec![&b"new"[..]]);
        files.remove(2).unwrap();
        files.remove(2).unwrap();
        assert!(files.generations().unwrap().is_empty());
    }

    /// A file past the sync interval and the removal step (a compaction's)
    /// reads back whole, and is removed whole.
    #[test]
    fn a_large_file_is_synced_as_it_goes_and_removed_in_steps() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let files = SegmentFiles::open(&dir.path().join("segments")).expect("opens");
        let segment: Vec<u8> = (0..7 * 1024u32).map(|n| (n % 251) as u8).collect();
        let count = (SYNC_EVERY.max(FREE_STEP) * 2) as usize / segment.len() + 3;
        let mut w = files.create(9).expect("creates");
        for _ in 0..count {
            w.push(&segment).expect("writes");
        }
        w.finish().expect("syncs");
        let file = files.read(9).expect("reads");
        assert_eq!(file.segments().count(), count);
        assert!(file.segments().all(|(_, _, s)| s == &segment[..]));
        assert!(files.size() > 2 * FREE_STEP);
        files.remove(9).expect("removes");
        assert!(files.generations().expect("lists").is_empty());
        assert_eq!(files.size(), 0);
    }
}
