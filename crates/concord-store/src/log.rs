//! The log as earlier stores kept it — in sled, one record per appended
//! batch — and its move into the log files of [`crate::wal`].
//!
//! Two layouts came before the files: the `log` tree in a sled database of
//! its own (`log/` in the store's directory), and before that the same
//! tree in the state's database. Opening a store moves either into
//! `wal/`:
//!
//! 1. a tree in the state's database is first moved into `log/` (copied,
//!    flushed, then dropped from the state's database and that flushed);
//! 2. whatever `wal/` holds is discarded (files of an earlier move that
//!    did not finish), and every record of `log/` is written to the files
//!    and synced, and so is the directory;
//! 3. `log/` is renamed `log.migrated` and the store's directory synced:
//!    that rename is the moment the move is done;
//! 4. `log.migrated` is removed (again at the next open if that fails).
//!
//! A crash before step 3 leaves `log/` whole, and the next open does the
//! move again from the start; after it, the files are the log. No write is
//! lost or doubled either way.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::iter::Peekable;
use std::path::Path;

use concord_core::{CoreError, WriteBatch};
use concord_crdt::{RegionId, codec};
use sled::{IVec, Tree};

use crate::frame::push_frame;
use crate::layout::{LEGACY_LOG_DIR, LOG, MIGRATED_LOG_DIR, parse_log_key, wal_file_name};
use crate::record::{backend, corrupt, decode, io_error};
use crate::store::open_db;
use crate::wal::{create_dir, finish_file, sync_dir};

const WHAT: &str = "log record";

/// Moves the sled log of the store at `path` (state database `db`), if it
/// has one, into log files in `wal_dir`, each up to about `file_bytes`.
pub(crate) fn migrate(
    path: &Path,
    db: &sled::Db,
    wal_dir: &Path,
    file_bytes: u64,
) -> Result<(), CoreError> {
    let legacy_dir = path.join(LEGACY_LOG_DIR);
    let migrated = path.join(MIGRATED_LOG_DIR);
    let in_state_db = db.tree_names().iter().any(|n| n.as_ref() == LOG.as_bytes());
    // sled's own file: a `log/` without it holds no database (it could be
    // what a late write of the database left after the rename).
    let has_db = legacy_dir.join("db").is_file();
    if in_state_db || has_db {
        let log_db = open_db(&legacy_dir)?;
        move_legacy_log(db, &log_db)?;
        let tree = log_db.open_tree(LOG).map_err(backend)?;
        write_files(&tree, wal_dir, file_bytes)?;
        drop(tree);
        log_db.flush().map_err(backend)?;
        drop(log_db);
    }
    if legacy_dir.exists() {
        if migrated.exists() {
            std::fs::remove_dir_all(&migrated).map_err(|e| io_error("removing", &migrated, &e))?;
        }
        std::fs::rename(&legacy_dir, &migrated)
            .map_err(|e| io_error("renaming", &legacy_dir, &e))?;
        sync_dir(path)?;
    }
    if migrated.exists() {
        // Done already: what is left is only disk space, so a failure
        // waits for the next open.
        let _ = std::fs::remove_dir_all(&migrated);
    }
    Ok(())
}

/// A store written before the log had a database of its own keeps its log
/// tree in the state's database: move its records over (the copy is
/// flushed before the old tree is dropped, and the drop is flushed before
/// the move goes on, so a crash in between leaves both copies, and the move
/// simply happens again).
fn move_legacy_log(db: &sled::Db, log_db: &sled::Db) -> Result<(), CoreError> {
    if !db.tree_names().iter().any(|n| n.as_ref() == LOG.as_bytes()) {
        return Ok(());
    }
    let old = db.open_tree(LOG).map_err(backend)?;
    let new = log_db.open_tree(LOG).map_err(backend)?;
    for entry in &old {
        let (k, v) = entry.map_err(backend)?;
        new.insert(k, v).map_err(backend)?;
    }
    log_db.flush().map_err(backend)?;
    drop(old);
    db.drop_tree(LOG).map_err(backend)?;
    db.flush().map_err(backend)?;
    Ok(())
}

/// Decodes the record at `key`, checking that it is what its key says: a
/// non-empty, well-formed batch of that origin starting at that seq.
fn decode_record(key: &[u8], value: &[u8]) -> Result<WriteBatch, CoreError> {
    let (origin, first) = parse_log_key(key)
        .ok_or_else(|| corrupt(WHAT, LOG, key, "the key is not 10 bytes".to_owned()))?;
    let batch: WriteBatch = decode(WHAT, LOG, key, value)?;
    if batch.writes.is_empty()
        || !batch.is_well_formed()
        || batch.origin != origin
        || batch.first_seq() != first
    {
        return Err(corrupt(
            WHAT,
            LOG,
            key,
            format!(
                "the record holds {} writes of {} from seq {}, not consecutive writes of {origin} from seq {first}",
                batch.writes.len(),
                batch.origin,
                batch.first_seq()
            ),
        ));
    }
    Ok(batch)
}

/// The origin and first seq of the record at `key`.
fn key_of(key: &[u8]) -> Result<(RegionId, u64), CoreError> {
    parse_log_key(key).ok_or_else(|| {
        corrupt(
            WHAT,
            LOG,
            key,
            "a key of the log tree is not a log key".to_owned(),
        )
    })
}

/// How many writes the record at `key` holds: up to the next record's
/// first seq when the origin has one, else what the record decodes to (the
/// end of each origin's log must be readable, as it always had to be).
/// The records in between are copied without being decoded: one that does
/// not decode fails the reads that reach it, as it did in sled.
fn count_of(key: &[u8], value: &[u8], next: Option<&(IVec, IVec)>) -> Result<u32, CoreError> {
    let (origin, first) = key_of(key)?;
    let count = match next.map(|(k, _)| key_of(k)).transpose()? {
        Some((o, next_first)) if o == origin => next_first.saturating_sub(first),
        _ => decode_record(key, value)?.writes.len() as u64,
    };
    u32::try_from(count).ok().filter(|c| *c > 0).ok_or_else(|| {
        corrupt(
            WHAT,
            LOG,
            key,
            format!("the record would hold {count} writes"),
        )
    })
}

/// The log file being written by the move.
struct Writing {
    origin: RegionId,
    path: std::path::PathBuf,
    file: BufWriter<File>,
    len: u64,
}

impl Writing {
    /// Writes out and syncs the file: it is complete.
    fn finish(self) -> Result<(), CoreError> {
        finish_file(self.file, &self.path)
    }
}

/// Writes every record of `tree` into log files in `wal_dir`, which is
/// emptied first; syncs them and the directory.
fn write_files(tree: &Tree, wal_dir: &Path, file_bytes: u64) -> Result<(), CoreError> {
    if wal_dir.exists() {
        std::fs::remove_dir_all(wal_dir).map_err(|e| io_error("removing", wal_dir, &e))?;
    }
    create_dir(wal_dir)?;
    let mut entries: Peekable<_> = tree.iter().peekable();
    let mut writing: Option<Writing> = None;
    let mut frame = Vec::new();
    while let Some(entry) = entries.next() {
        let (key, value) = entry.map_err(backend)?;
        let next = match entries.peek() {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => return Err(backend(e.clone())),
            None => None,
        };
        let count = count_of(&key, &value, next)?;
        let (origin, first) = key_of(&key)?;
        if value.len() > codec::MAX_RECORD_BYTES {
            return Err(corrupt(
                WHAT,
                LOG,
                &key,
                format!("the record is {} bytes", value.len()),
            ));
        }
        let full = writing
            .as_ref()
            .is_none_or(|w| w.origin != origin || w.len >= file_bytes);
        if full {
            if let Some(w) = writing.take() {
                w.finish()?;
            }
            let path = wal_dir.join(wal_file_name(origin, first));
            let file = File::create_new(&path).map_err(|e| io_error("creating", &path, &e))?;
            writing = Some(Writing {
                origin,
                path,
                file: BufWriter::with_capacity(1 << 20, file),
                len: 0,
            });
        }
        if let Some(w) = writing.as_mut() {
            frame.clear();
            push_frame(&mut frame, first, count, &value);
            w.file
                .write_all(&frame)
                .map_err(|e| io_error("writing", &w.path, &e))?;
            w.len += frame.len() as u64;
        }
    }
    if let Some(w) = writing.take() {
        w.finish()?;
    }
    sync_dir(wal_dir)
}
