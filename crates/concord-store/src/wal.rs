//! The write-ahead log: per origin, append-only files of framed records,
//! an index of the records in memory, and a cache of the last writes.
//!
//! # Files
//!
//! `wal/` inside the store's directory holds every origin's log files,
//! named `OOOOO-SSSSSSSSSSSSSSSSSSSS.wal`: the origin, then the seq of the
//! file's first write (see [`crate::layout::wal_file_name`]). Other names
//! are ignored. An origin appends to its last file only; once that holds
//! [`crate::StoreOptions::log_file_bytes`], the next append syncs it and
//! starts a new one. Each appended batch is one record (a large one a few,
//! of about [`MAX_RECORD_BYTES`] each: a read decodes whole records), framed
//! as [`crate::frame`] describes.
//!
//! # Durability
//!
//! An append only encodes its records into a buffer per file; `sync`
//! writes the buffers and `fdatasync`s every file written since the last
//! sync, once for all of them (group commit). A new file is created and its
//! directory synced before anything is written to it, and a file is synced
//! before the next one is created, so a crash can leave a torn record only
//! at the end of an origin's last file. An append whose buffer has grown
//! past [`FLUSH_BYTES`] first writes out what earlier appends buffered
//! (without syncing), so a process that dies without syncing may leave,
//! per origin, a prefix of its unsynced appends, whole.
//!
//! # Opening
//!
//! Opening reads each origin's last file whole and checks every record's
//! checksum; the other files are indexed from their frame headers alone (a
//! record's checksum is checked whenever it is read). In the last file, the
//! records past the last good one — a torn or half-written append — are cut
//! off (the file is truncated: nothing reports it, since a crash leaves
//! exactly this). A record that fails its checksum with good records after
//! it stays in the index as corrupt: reading it is
//! [`CoreError::CorruptRecord`] naming the file and offset. When the bytes
//! after the last good record are neither a torn frame nor zeros, the store
//! cannot tell where the log ends, and opening fails; it fails too when the
//! last record does not decode. A file whose headers do not chain (wrong
//! seqs, a length past its end, a gap before the next file) is indexed up
//! to there; the rest of its seqs read as corrupt.
//!
//! # Trimming
//!
//! A trim drops the records at or below the seq from the index (a record
//! that straddles it stays) and deletes the files that hold no record
//! left, never the file being appended to — unless it empties the log: then
//! every file of the origin goes, since the next append may start anywhere.
//! Records still in a file that was kept come back after a reopen.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use concord_core::{CoreError, LogBounds, TaggedWrite, WriteBatch};
use concord_crdt::RegionId;
use concord_crdt::codec;
#[cfg(test)]
use serde::Serialize;

use crate::StoreOptions;
use crate::cache::TailCache;
use crate::frame::{HEADER_LEN, Header, push_frame};
use crate::layout::{parse_wal_file_name, wal_file_name};
#[cfg(test)]
use crate::record::encode;
use crate::record::{
    corrupt_at, decode_at, encoding_failed, file_location, io_error, within_limit,
};

/// What a log record is called in errors.
const WHAT: &str = "log record";

/// A log record's size limit, in bytes (estimated before encoding): a
/// larger batch is stored as several records.
pub(crate) const MAX_RECORD_BYTES: usize = 48 * 1024;

/// An append whose file has more than this buffered first writes the
/// buffer out (unsynced), which bounds the memory appends hold.
pub(crate) const FLUSH_BYTES: usize = 1 << 20;

/// The records of one batch, or of a part of one, as serde encodes them:
/// the same fields as a `WriteBatch`, so the same bytes, without copying
/// the writes of a part. What [`encode_part`] is checked against.
#[cfg(test)]
#[derive(Serialize)]
struct BatchPart<'a> {
    origin: RegionId,
    writes: &'a [TaggedWrite],
}

/// One record's place in the log.
#[derive(Clone, Debug)]
struct Span {
    /// The seq of its first write.
    first: u64,
    /// The seq of its last write.
    last: u64,
    /// The file it is in (by that file's first seq).
    file: u64,
    /// Where its frame starts in the file.
    offset: u64,
    /// What reading it finds.
    state: SpanState,
}

#[derive(Clone, Debug)]
enum SpanState {
    /// A frame of this length (header included).
    Frame(u64),
    /// Seqs the store cannot read back, and why.
    Corrupt(Box<str>),
}

/// The file an origin appends to.
#[derive(Debug)]
struct Active {
    /// Its first seq (its name).
    first: u64,
    file: File,
    /// The bytes in the file.
    written: u64,
    /// Frames appended and not yet written.
    pending: Vec<u8>,
    /// Written since the last sync.
    dirty: bool,
}

impl Active {
    fn len(&self) -> u64 {
        self.written + self.pending.len() as u64
    }
}

/// One origin's log.
#[derive(Debug, Default)]
struct OriginLog {
    /// Its records, oldest first, with consecutive seqs.
    spans: VecDeque<Span>,
    /// Its files by first seq, with their lengths (the active one's as of
    /// when it became active: see [`Active::written`]).
    files: BTreeMap<u64, u64>,
    /// The file appends go to.
    active: Option<Active>,
}

impl OriginLog {
    fn last(&self) -> Option<u64> {
        self.spans.back().map(|s| s.last)
    }
}

/// A record encoded for appending.
struct Encoded {
    origin: RegionId,
    first: u64,
    last: u64,
    count: u32,
    bytes: Vec<u8>,
}

/// The per-origin log files of one store (see the module docs).
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    file_bytes: u64,
    origins: BTreeMap<RegionId, OriginLog>,
    cache: TailCache,
    /// Set once the files are in a state the store cannot vouch for (a
    /// sync failed, or a failed write could not be undone): every later
    /// append and sync fails with it, until the store is opened again.
    failed: Option<String>,
}

impl Wal {
    /// Opens (creating if needed) the log files in `dir`.
    pub(crate) fn open(dir: &Path, options: &StoreOptions) -> Result<Self, CoreError> {
        create_dir(dir)?;
        let mut by_origin: BTreeMap<RegionId, BTreeMap<u64, PathBuf>> = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| io_error("listing", dir, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("listing", dir, &e))?;
            let Some((origin, first)) = entry.file_name().to_str().and_then(parse_wal_file_name)
            else {
                continue;
            };
            let kind = entry
                .file_type()
                .map_err(|e| io_error("reading the type of", &entry.path(), &e))?;
            if kind.is_file() {
                by_origin
                    .entry(origin)
                    .or_default()
                    .insert(first, entry.path());
            }
        }
        let mut origins = BTreeMap::new();
        for (origin, files) in by_origin {
            let log = open_origin(dir, files)?;
            if !log.files.is_empty() {
                origins.insert(origin, log);
            }
        }
        let wal = Self {
            dir: dir.to_path_buf(),
            file_bytes: options.log_file_bytes.max(1),
            origins,
            cache: TailCache::new(options.cache_writes, options.cache_bytes),
            failed: None,
        };
        // Where each log ends must be readable: its last record decodes.
        for (origin, log) in &wal.origins {
            if let Some(span) = log.spans.back() {
                wal.load(*origin, log, span)?;
            }
        }
        Ok(wal)
    }

    fn path_of(&self, origin: RegionId, first: u64) -> PathBuf {
        file_path(&self.dir, origin, first)
    }

    fn check_usable(&self) -> Result<(), CoreError> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(CoreError::Backend(format!(
                "the log cannot be written since an earlier failure ({why}); reopen the store"
            ))),
        }
    }

    /// Appends every batch or none: validates them all against the ends of
    /// the logs and encodes them, makes room in the files, then buffers
    /// the records (see the module docs).
    pub(crate) fn append(&mut self, batches: Vec<WriteBatch>) -> Result<(), CoreError> {
        let mut ends: BTreeMap<RegionId, u64> = BTreeMap::new();
        for b in batches.iter().filter(|b| !b.writes.is_empty()) {
            if !b.is_well_formed() {
                return Err(CoreError::Backend(format!(
                    "batch of {} is not consecutive writes of that origin",
                    b.origin
                )));
            }
            let last = ends
                .get(&b.origin)
                .copied()
                .or_else(|| self.origins.get(&b.origin).and_then(OriginLog::last));
            let first = b.first_seq();
            if let Some(last) = last
                && last.checked_add(1) != Some(first)
            {
                return Err(CoreError::LogGap {
                    origin: b.origin,
                    seq: first,
                    first: last.saturating_add(1),
                    last,
                });
            }
            ends.insert(b.origin, b.last_seq());
        }
        if ends.is_empty() {
            return Ok(());
        }
        self.check_usable()?;
        let mut records = Vec::new();
        let mut sizes = Vec::with_capacity(batches.len());
        for b in &batches {
            sizes.push(encode_batch(b, &mut records)?);
        }
        // Room for each origin's records: nothing of this call is
        // buffered yet, so a failure here leaves the logs as they were.
        let mut starts: Vec<(RegionId, u64)> = Vec::new();
        for r in &records {
            if !starts.iter().any(|(o, _)| *o == r.origin) {
                starts.push((r.origin, r.first));
            }
        }
        for (origin, first) in starts {
            self.make_room(origin, first)?;
        }
        for r in records {
            let log = self.origins.entry(r.origin).or_default();
            let Some(active) = log.active.as_mut() else {
                return Err(CoreError::Backend(format!(
                    "no log file to append {}'s writes to",
                    r.origin
                )));
            };
            let offset = active.len();
            push_frame(&mut active.pending, r.first, r.count, &r.bytes);
            log.spans.push_back(Span {
                first: r.first,
                last: r.last,
                file: active.first,
                offset,
                state: SpanState::Frame(active.len() - offset),
            });
        }
        for (b, bytes) in batches.into_iter().zip(sizes) {
            self.cache.push(b.origin, b.writes, bytes);
        }
        Ok(())
    }

    /// Readies `origin`'s file for an append starting at seq `first`:
    /// writes out a large buffer, and starts a new file when there is none,
    /// when the file is full, or when an empty file was named for another
    /// seq.
    fn make_room(&mut self, origin: RegionId, first: u64) -> Result<(), CoreError> {
        enum Step {
            Keep,
            Flush,
            Seal,
            Replace(u64),
            Start,
        }
        let log = self.origins.entry(origin).or_default();
        let step = match &log.active {
            None => Step::Start,
            Some(a) if a.len() == 0 && a.first != first => Step::Replace(a.first),
            Some(a) if a.len() >= self.file_bytes => Step::Seal,
            Some(a) if a.pending.len() > FLUSH_BYTES => Step::Flush,
            Some(_) => Step::Keep,
        };
        let written = match (step, log.active.as_mut()) {
            (Step::Keep, _) => return Ok(()),
            (Step::Flush, Some(a)) => {
                let path = file_path(&self.dir, origin, a.first);
                write_out(a, &path).map(|()| false)
            }
            (Step::Seal, Some(a)) => {
                let path = file_path(&self.dir, origin, a.first);
                seal(a, &path).map(|()| true)
            }
            (Step::Replace(empty), _) => {
                // Named for an append that never came: not needed.
                log.active = None;
                log.files.remove(&empty);
                let path = file_path(&self.dir, origin, empty);
                std::fs::remove_file(&path).map_err(|e| io_error("removing", &path, &e))?;
                Ok(true)
            }
            _ => Ok(true),
        };
        match written {
            Ok(true) => self.start_file(origin, first),
            Ok(false) => Ok(()),
            Err(e) => Err(self.fail_on_broken(e)),
        }
    }

    /// Records a failure that left a file in an unknown state.
    fn fail_on_broken(&mut self, e: Failure) -> CoreError {
        if e.broken {
            self.failed = Some(e.error.to_string());
        }
        e.error
    }

    /// Creates `origin`'s file for seqs from `first` on and makes it the
    /// one appends go to; its directory entry is synced first.
    fn start_file(&mut self, origin: RegionId, first: u64) -> Result<(), CoreError> {
        let path = self.path_of(origin, first);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error("creating", &path, &e))?;
        sync_dir(&self.dir)?;
        let log = self.origins.entry(origin).or_default();
        if let Some(old) = log.active.take() {
            log.files.insert(old.first, old.written);
        }
        log.files.insert(first, 0);
        log.active = Some(Active {
            first,
            file,
            written: 0,
            pending: Vec::new(),
            dirty: false,
        });
        Ok(())
    }

    /// Writes every buffer out and syncs every file written since the last
    /// sync.
    pub(crate) fn sync(&mut self) -> Result<(), CoreError> {
        self.check_usable()?;
        let mut failure = None;
        for (origin, log) in &mut self.origins {
            let Some(active) = log.active.as_mut() else {
                continue;
            };
            if active.pending.is_empty() && !active.dirty {
                continue;
            }
            let path = file_path(&self.dir, *origin, active.first);
            if let Err(e) = write_out(active, &path) {
                failure = Some(e);
                break;
            }
            if active.dirty {
                if let Err(e) = active.file.sync_data() {
                    failure = Some(Failure {
                        error: io_error("syncing", &path, &e),
                        broken: true,
                    });
                    break;
                }
                active.dirty = false;
            }
        }
        match failure {
            None => Ok(()),
            Some(e) => Err(self.fail_on_broken(e)),
        }
    }

    /// Up to `limit` writes of `origin` from seq `from` on: from the cache
    /// where it holds them, else from the files.
    pub(crate) fn read(
        &self,
        origin: RegionId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<TaggedWrite>, CoreError> {
        let Some(log) = self.origins.get(&origin) else {
            return Ok(Vec::new());
        };
        let (Some(first), Some(end)) = (log.spans.front().map(|s| s.first), log.last()) else {
            return Ok(Vec::new());
        };
        if from < first {
            return Err(CoreError::LogGap {
                origin,
                seq: from,
                first,
                last: end,
            });
        }
        if limit == 0 || from > end {
            return Ok(Vec::new());
        }
        let wanted = usize::try_from(end - from)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(limit);
        let mut out = Vec::with_capacity(wanted.min(1 << 16));
        let cached = self.cache.range(origin);
        let mut seq = from;
        while out.len() < wanted && seq <= end {
            let got = match cached {
                Some((c_first, c_last)) if (c_first..=c_last).contains(&seq) => {
                    self.cache.read(origin, seq, wanted - out.len(), &mut out)
                }
                _ => {
                    let stop = match cached {
                        Some((c_first, _)) if c_first > seq => c_first - 1,
                        _ => end,
                    };
                    self.read_files(origin, log, seq, stop, wanted - out.len(), &mut out)?
                }
            };
            if got == 0 {
                break;
            }
            seq = seq.saturating_add(got as u64);
        }
        Ok(out)
    }

    /// Appends to `out` up to `limit` writes of `origin` with seqs from
    /// `from` through `stop`, read from the files; returns how many.
    fn read_files(
        &self,
        origin: RegionId,
        log: &OriginLog,
        from: u64,
        stop: u64,
        limit: usize,
        out: &mut Vec<TaggedWrite>,
    ) -> Result<usize, CoreError> {
        let start = log.spans.partition_point(|s| s.last < from);
        let mut got = 0;
        let mut reader = Reader::default();
        for span in log.spans.range(start..) {
            if got >= limit || span.first > stop {
                break;
            }
            let batch = self.load_with(origin, log, span, &mut reader)?;
            for w in batch.writes {
                if w.seq >= from && w.seq <= stop && got < limit {
                    out.push(w);
                    got += 1;
                }
            }
        }
        Ok(got)
    }

    /// Reads and checks the record at `span`.
    fn load(
        &self,
        origin: RegionId,
        log: &OriginLog,
        span: &Span,
    ) -> Result<WriteBatch, CoreError> {
        self.load_with(origin, log, span, &mut Reader::default())
    }

    fn load_with(
        &self,
        origin: RegionId,
        log: &OriginLog,
        span: &Span,
        reader: &mut Reader,
    ) -> Result<WriteBatch, CoreError> {
        let path = self.path_of(origin, span.file);
        let at = || file_location(&path, span.offset);
        let frame_len = match &span.state {
            SpanState::Corrupt(why) => return Err(corrupt_at(WHAT, at(), why.to_string())),
            SpanState::Frame(len) => *len,
        };
        let buffered = log
            .active
            .as_ref()
            .filter(|a| a.first == span.file && span.offset >= a.written);
        let frame: Vec<u8>;
        let bytes: &[u8] = match buffered {
            Some(a) => usize::try_from(span.offset - a.written)
                .ok()
                .zip(usize::try_from(frame_len).ok())
                .and_then(|(o, n)| a.pending.get(o..o.checked_add(n)?))
                .ok_or_else(|| {
                    corrupt_at(WHAT, at(), "the record is not where the index says".into())
                })?,
            None => {
                frame = reader.read(&path, span.file, span.offset, frame_len)?;
                &frame
            }
        };
        let (head, record) = bytes.split_at(HEADER_LEN.min(bytes.len()));
        let header = Header::parse(head)
            .ok_or_else(|| corrupt_at(WHAT, at(), "the frame is shorter than its header".into()))?;
        if !header.matches(record) {
            return Err(corrupt_at(
                WHAT,
                at(),
                "the record does not match its checksum".into(),
            ));
        }
        if header.first != span.first || header.last() != Some(span.last) {
            return Err(corrupt_at(
                WHAT,
                at(),
                format!(
                    "the frame says seqs {} (and {} writes), the index seqs {} to {}",
                    header.first, header.count, span.first, span.last
                ),
            ));
        }
        let batch: WriteBatch = decode_at(WHAT, record, at)?;
        if batch.writes.is_empty()
            || !batch.is_well_formed()
            || batch.origin != origin
            || batch.first_seq() != span.first
            || batch.last_seq() != span.last
        {
            return Err(corrupt_at(
                WHAT,
                at(),
                format!(
                    "the record holds {} writes of {} from seq {}, not the writes of {origin} from seq {} to {}",
                    batch.writes.len(),
                    batch.origin,
                    batch.first_seq(),
                    span.first,
                    span.last
                ),
            ));
        }
        Ok(batch)
    }

    /// The first and last seq of each origin's log.
    pub(crate) fn bounds(&self) -> Vec<(RegionId, LogBounds)> {
        self.origins
            .iter()
            .filter_map(|(origin, log)| {
                Some((
                    *origin,
                    LogBounds {
                        first: log.spans.front()?.first,
                        last: log.spans.back()?.last,
                    },
                ))
            })
            .collect()
    }

    /// The last seq of each origin's log.
    pub(crate) fn ends(&self) -> BTreeMap<RegionId, u64> {
        self.origins
            .iter()
            .filter_map(|(o, l)| Some((*o, l.last()?)))
            .collect()
    }

    /// Drops `origin`'s records whose writes are all at or below `through`,
    /// and deletes the files left without a record (see the module docs).
    pub(crate) fn trim(&mut self, origin: RegionId, through: u64) -> Result<(), CoreError> {
        let Some(log) = self.origins.get_mut(&origin) else {
            return Ok(());
        };
        while log.spans.front().is_some_and(|s| s.last <= through) {
            log.spans.pop_front();
        }
        let keep_from = match log.spans.front() {
            Some(s) => {
                self.cache.trim_below(origin, s.first);
                s.file
            }
            None => {
                // Empty: every file goes, the one being appended to too.
                self.cache.clear(origin);
                log.active = None;
                u64::MAX
            }
        };
        let doomed: Vec<u64> = log.files.range(..keep_from).map(|(f, _)| *f).collect();
        if doomed.is_empty() {
            return Ok(());
        }
        for first in doomed {
            let path = file_path(&self.dir, origin, first);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("removing", &path, &e)),
            }
            log.files.remove(&first);
        }
        if log.files.is_empty() {
            self.origins.remove(&origin);
        }
        sync_dir(&self.dir)
    }

    /// The bytes of every log file, buffered ones included.
    pub(crate) fn size(&self) -> u64 {
        self.origins
            .values()
            .map(|log| {
                let active = log.active.as_ref();
                log.files
                    .iter()
                    .map(|(first, len)| match active {
                        Some(a) if a.first == *first => a.len(),
                        _ => *len,
                    })
                    .sum::<u64>()
            })
            .sum()
    }
}

impl Drop for Wal {
    /// Writes out and syncs what was appended, as a sync would: nothing to
    /// report to, and every acknowledged write was synced already.
    fn drop(&mut self) {
        if self.failed.is_none() {
            let _ = self.sync();
        }
    }
}

/// A failed write, and whether it left a file in an unknown state.
struct Failure {
    error: CoreError,
    broken: bool,
}

/// The path of `origin`'s log file whose first seq is `first`, in `dir`.
fn file_path(dir: &Path, origin: RegionId, first: u64) -> PathBuf {
    dir.join(wal_file_name(origin, first))
}

/// Writes `active`'s buffer to its file. A failed write is undone (the
/// file cut back to its length before): the buffer stays, to be written
/// again. A write that cannot be undone leaves the file broken.
fn write_out(active: &mut Active, path: &Path) -> Result<(), Failure> {
    if active.pending.is_empty() {
        return Ok(());
    }
    if let Err(e) = active.file.write_all(&active.pending) {
        let error = io_error("writing", path, &e);
        let broken = active.file.set_len(active.written).is_err();
        return Err(Failure { error, broken });
    }
    active.written += active.pending.len() as u64;
    active.pending.clear();
    active.dirty = true;
    Ok(())
}

/// Writes out and syncs a full file before the next one is created.
fn seal(active: &mut Active, path: &Path) -> Result<(), Failure> {
    write_out(active, path)?;
    if active.dirty {
        active.file.sync_data().map_err(|e| Failure {
            error: io_error("syncing", path, &e),
            broken: true,
        })?;
        active.dirty = false;
    }
    Ok(())
}

/// Encodes batch `b` as one record, or as a few when large; returns about
/// how much memory its writes take decoded.
fn encode_batch(b: &WriteBatch, out: &mut Vec<Encoded>) -> Result<usize, CoreError> {
    let size = estimated_size(&b.writes);
    let parts = size.div_ceil(MAX_RECORD_BYTES).max(1);
    let per = b.writes.len().div_ceil(parts).max(1);
    for chunk in b.writes.chunks(per) {
        let Some(first) = chunk.first() else {
            continue;
        };
        let count = u32::try_from(chunk.len())
            .map_err(|_| CoreError::Backend("too many writes in one log record".into()))?;
        let bytes = encode_part(b.origin, chunk)?;
        let last = chunk.last().map_or(first.seq, |w| w.seq);
        out.push(Encoded {
            origin: b.origin,
            first: first.seq,
            last,
            count,
            bytes,
        });
    }
    Ok(size + b.writes.len() * std::mem::size_of::<TaggedWrite>())
}

/// The record of `writes` of `origin`: the bytes `record::encode` writes for the
/// batch of those writes (a test checks them against serde's), with each
/// write's body written by hand ([`TaggedWrite::encode_body_into`]).
fn encode_part(origin: RegionId, writes: &[TaggedWrite]) -> Result<Vec<u8>, CoreError> {
    let mut bytes = Vec::with_capacity(estimated_size(writes) + 16);
    bytes.push(codec::FORMAT_VERSION);
    codec::put_u64(&mut bytes, u64::from(origin.get()));
    codec::put_u64(&mut bytes, writes.len() as u64);
    for w in writes {
        w.encode_body_into(&mut bytes)
            .map_err(encoding_failed(WHAT))?;
    }
    within_limit(WHAT, bytes)
}

/// About how many bytes `writes` take encoded: their keys and values, and a
/// fixed allowance for the rest of each write.
pub(crate) fn estimated_size(writes: &[TaggedWrite]) -> usize {
    writes
        .iter()
        .map(|w| {
            let value = match &w.op {
                concord_core::Op::Set(v) => v.len(),
                concord_core::Op::Resolve { value, resolves } => {
                    value.as_ref().map_or(0, Vec::len) + 16 * resolves.len()
                }
                _ => 0,
            };
            w.key.len() + value + w.collection.as_str().len() + 96 + 12 * w.context.iter().len()
        })
        .sum()
}

/// Reads frames, keeping the last file it opened.
#[derive(Default)]
struct Reader {
    open: Option<(u64, File)>,
}

impl Reader {
    /// The `len` bytes at `offset` of the file at `path` (named for seq
    /// `first`). A file shorter than that is a corrupt record.
    fn read(
        &mut self,
        path: &Path,
        first: u64,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, CoreError> {
        if !matches!(&self.open, Some((f, _)) if *f == first) {
            let file = File::open(path).map_err(|e| io_error("opening", path, &e))?;
            self.open = Some((first, file));
        }
        let Some((_, file)) = self.open.as_mut() else {
            return Err(io_error(
                "opening",
                path,
                &std::io::Error::other("no file handle"),
            ));
        };
        let len = usize::try_from(len)
            .map_err(|_| corrupt_at(WHAT, file_location(path, offset), "too long".into()))?;
        let mut buf = vec![0; len];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|e| match e.kind() {
                ErrorKind::UnexpectedEof => corrupt_at(
                    WHAT,
                    file_location(path, offset),
                    "the file ends inside the record".into(),
                ),
                _ => io_error("reading", path, &e),
            })?;
        Ok(buf)
    }
}

/// Creates directory `dir` if missing, syncing its parent so it stays.
pub(crate) fn create_dir(dir: &Path) -> Result<(), CoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, &e))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// Writes out what `file` buffered and syncs its data: the file at `path`
/// is complete.
pub(crate) fn finish_file(file: std::io::BufWriter<File>, path: &Path) -> Result<(), CoreError> {
    let file = file
        .into_inner()
        .map_err(|e| io_error("writing", path, e.error()))?;
    file.sync_data().map_err(|e| io_error("syncing", path, &e))
}

/// Syncs directory `dir`: the files created, renamed or removed in it stay
/// so across a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing the directory", dir, &e))
}

/// One frame found by reading a file from its start.
#[derive(Debug)]
enum Found {
    /// A frame whose checksum matches.
    Good {
        offset: u64,
        len: u64,
        first: u64,
        last: u64,
    },
    /// A frame of a plausible length whose checksum does not match.
    Bad { offset: u64 },
}

/// Why reading a file's frames stopped before its end.
#[derive(Debug)]
enum Stop {
    /// The end of the file, exactly after a frame.
    End,
    /// A frame cut short by the end of the file: a torn write.
    Torn,
    /// A header no frame has (zero or huge length, no writes), at this
    /// offset.
    Nonsense(u64),
}

/// Reads every frame of the file (of length `len`) whole, checking each
/// checksum.
fn read_frames(file: &File, path: &Path, len: u64) -> Result<(Vec<Found>, Stop), CoreError> {
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut found = Vec::new();
    let mut offset = 0u64;
    let mut head = [0u8; HEADER_LEN];
    let mut record = Vec::new();
    let read = |r: &mut BufReader<&File>, buf: &mut [u8]| {
        r.read_exact(buf).map_err(|e| io_error("reading", path, &e))
    };
    loop {
        let left = len - offset;
        if left == 0 {
            return Ok((found, Stop::End));
        }
        if left < HEADER_LEN as u64 {
            return Ok((found, Stop::Torn));
        }
        read(&mut r, &mut head)?;
        let Some(header) = Header::parse(&head) else {
            return Ok((found, Stop::Torn));
        };
        let Some(last) = header.last() else {
            return Ok((found, Stop::Nonsense(offset)));
        };
        if header.frame_len() > left {
            return Ok((found, Stop::Torn));
        }
        record.resize(header.len as usize, 0);
        read(&mut r, &mut record)?;
        found.push(if header.matches(&record) {
            Found::Good {
                offset,
                len: header.frame_len(),
                first: header.first,
                last,
            }
        } else {
            Found::Bad { offset }
        });
        offset += header.frame_len();
    }
}

/// True when the file holds only zero bytes from `offset` on.
fn zeros_from(file: &File, path: &Path, offset: u64) -> Result<bool, CoreError> {
    let mut r = BufReader::new(file);
    r.seek(SeekFrom::Start(offset))
        .map_err(|e| io_error("reading", path, &e))?;
    let mut buf = [0u8; 1 << 16];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| io_error("reading", path, &e))?;
        if n == 0 {
            return Ok(true);
        }
        if buf.get(..n).is_some_and(|b| b.iter().any(|&x| x != 0)) {
            return Ok(false);
        }
    }
}

/// Opens one origin's files (`files`: by first seq): indexes them, cuts a
/// torn tail off the last one, removes a last file left empty, and opens
/// the last one for appending.
fn open_origin(dir: &Path, mut files: BTreeMap<u64, PathBuf>) -> Result<OriginLog, CoreError> {
    // The last file, read whole: the index of its records, and its length
    // once a torn tail is cut off. One left empty is removed, and the one
    // before it is the last.
    let (last_first, last_spans, last_len, last_file) = loop {
        let Some((&first, path)) = files.iter().next_back() else {
            return Ok(OriginLog::default());
        };
        let path = path.clone();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error("opening", &path, &e))?;
        let (spans, keep) = scan_last(&file, &path, first)?;
        if keep == 0 {
            drop(file);
            std::fs::remove_file(&path).map_err(|e| io_error("removing", &path, &e))?;
            sync_dir(dir)?;
            files.remove(&first);
            continue;
        }
        break (first, spans, keep, file);
    };
    let mut log = OriginLog::default();
    let names: Vec<u64> = files.keys().copied().collect();
    for (i, (&first, path)) in files.iter().enumerate() {
        if first == last_first {
            break;
        }
        let next = names.get(i + 1).copied().unwrap_or(last_first);
        let len = walk_sealed(path, first, next, &mut log.spans)?;
        log.files.insert(first, len);
    }
    log.spans.extend(last_spans);
    log.files.insert(last_first, last_len);
    log.active = Some(Active {
        first: last_first,
        file: last_file,
        written: last_len,
        pending: Vec::new(),
        dirty: false,
    });
    Ok(log)
}

/// Indexes the last file of an origin (named for seq `first`), reading it
/// whole, and cuts off what follows its last good record. Returns its
/// records and its length.
fn scan_last(file: &File, path: &Path, file_first: u64) -> Result<(Vec<Span>, u64), CoreError> {
    let len = file
        .metadata()
        .map_err(|e| io_error("reading the length of", path, &e))?
        .len();
    let (found, stop) = read_frames(file, path, len)?;
    let mut spans = Vec::new();
    let mut expected = file_first;
    let mut keep = 0u64;
    // Frames since the last good one that hold no seq of the log.
    let mut bad_since: Option<u64> = None;
    for f in found {
        match f {
            Found::Good {
                offset,
                len,
                first,
                last,
            } if first >= expected => {
                if first > expected {
                    let why = if bad_since.is_some() {
                        "the record does not match its checksum"
                    } else {
                        "records are missing here"
                    };
                    spans.push(Span {
                        first: expected,
                        last: first - 1,
                        file: file_first,
                        offset: bad_since.unwrap_or(offset),
                        state: SpanState::Corrupt(why.into()),
                    });
                }
                spans.push(Span {
                    first,
                    last,
                    file: file_first,
                    offset,
                    state: SpanState::Frame(len),
                });
                expected = last.saturating_add(1);
                keep = offset + len;
                bad_since = None;
            }
            Found::Good { offset, .. } | Found::Bad { offset } => {
                bad_since.get_or_insert(offset);
            }
        }
    }
    if let Stop::Nonsense(at) = stop
        && !zeros_from(file, path, at)?
    {
        // Neither a torn frame nor zeros: whatever this is, the log
        // cannot be said to end before it.
        return Err(corrupt_at(
            WHAT,
            file_location(path, at),
            "a frame header no record has, followed by more data: the store cannot tell where the log ends".into(),
        ));
    }
    if keep < len {
        file.set_len(keep)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("cutting the torn end off", path, &e))?;
    }
    Ok((spans, keep))
}

/// Indexes a file that is not its origin's last (named for seq `first`;
/// the next file starts at `next`) from its frame headers. Records from
/// where the headers stop chaining up to `next` are indexed as corrupt.
/// Returns the file's length.
fn walk_sealed(
    path: &Path,
    first: u64,
    next: u64,
    spans: &mut VecDeque<Span>,
) -> Result<u64, CoreError> {
    let file = File::open(path).map_err(|e| io_error("opening", path, &e))?;
    let len = file
        .metadata()
        .map_err(|e| io_error("reading the length of", path, &e))?
        .len();
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut expected = first;
    let mut offset = 0u64;
    let mut head = [0u8; HEADER_LEN];
    let why = loop {
        let left = len - offset;
        if left == 0 {
            break "the file ends before the next file's first seq";
        }
        if left < HEADER_LEN as u64 {
            break "the file ends inside a frame header";
        }
        r.read_exact(&mut head)
            .map_err(|e| io_error("reading", path, &e))?;
        let Some(header) = Header::parse(&head) else {
            break "the file ends inside a frame header";
        };
        let Some(last) = header.last() else {
            break "a frame header no record has";
        };
        if header.frame_len() > left {
            break "a frame longer than the rest of the file";
        }
        if header.first != expected || last >= next {
            break "a frame whose seqs do not follow the record before it";
        }
        spans.push_back(Span {
            first: expected,
            last,
            file: first,
            offset,
            state: SpanState::Frame(header.frame_len()),
        });
        expected = last + 1;
        offset += header.frame_len();
        if expected == next && offset == len {
            return Ok(len);
        }
        r.seek_relative(i64::from(header.len))
            .map_err(|e| io_error("reading", path, &e))?;
    };
    if expected < next {
        spans.push_back(Span {
            first: expected,
            last: next - 1,
            file: first,
            offset,
            state: SpanState::Corrupt(why.into()),
        });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::storage_conformance::sample_batch;

    #[test]
    fn a_part_encodes_as_the_batch_of_its_writes() {
        let batch = sample_batch(RegionId::new(3), 1..=20);
        let part = BatchPart {
            origin: batch.origin,
            writes: &batch.writes,
        };
        assert_eq!(
            encode(WHAT, &part).expect("encodes"),
            encode(WHAT, &batch).expect("encodes")
        );
        let tail = WriteBatch {
            origin: batch.origin,
            writes: batch.writes[5..9].to_vec(),
        };
        let part = BatchPart {
            origin: batch.origin,
            writes: &batch.writes[5..9],
        };
        assert_eq!(
            encode(WHAT, &part).expect("encodes"),
            encode(WHAT, &tail).expect("encodes")
        );
    }

    #[test]
    fn a_part_written_by_hand_is_what_serde_writes() {
        let batch = sample_batch(RegionId::new(300), 1..=40);
        for writes in [&batch.writes[..], &batch.writes[7..8], &batch.writes[..0]] {
            let part = BatchPart {
                origin: batch.origin,
                writes,
            };
            assert_eq!(
                encode_part(batch.origin, writes).expect("encodes"),
                encode(WHAT, &part).expect("encodes")
            );
        }
    }

    #[test]
    fn a_large_batch_is_split_into_records_of_consecutive_writes() {
        let mut batch = sample_batch(RegionId::new(1), 1..=2000);
        for w in &mut batch.writes {
            w.op = concord_core::Op::Set(vec![0; 200]);
        }
        let mut records = Vec::new();
        let bytes = encode_batch(&batch, &mut records).expect("encodes");
        assert!(records.len() > 5, "{} records", records.len());
        assert_eq!(
            bytes,
            estimated_size(&batch.writes) + 2000 * std::mem::size_of::<TaggedWrite>()
        );
        let mut next = 1;
        for r in &records {
            assert_eq!(r.first, next);
            assert_eq!(r.last, r.first + u64::from(r.count) - 1);
            assert!(r.bytes.len() < 64 * 1024);
            next = r.last + 1;
        }
        assert_eq!(next, 2001);
    }
}
