//! [`SledStore`]: the engine's storage: the log in files of its own, the
//! checkpointed state in segment files and sled.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use concord_core::{
    Checkpoint, CheckpointDelta, CoreError, LogBounds, Storage, TaggedWrite, WriteBatch,
};
use concord_crdt::RegionId;

use crate::StoreOptions;
use crate::checkpoint_writer::CheckpointWriter;
use crate::layout::WAL_DIR;
use crate::record::backend;
use crate::state::State;
use crate::wal::Wal;

/// A node's durable storage: per-origin logs in append-only files, and
/// checkpoints in segment files and a sled database (see the [crate] docs
/// for the layout).
///
/// Appends are atomic per call and durable after [`Storage::sync`], which
/// writes and syncs everything appended since the last sync in one go.
/// Checkpoints are atomic and written in the background: every later call
/// that depends on one waits for it (see [`Storage::checkpoint`]). Any
/// record that does not decode, or does not match where it lies, is
/// reported as [`CoreError::CorruptRecord`] naming its file and offset (the
/// log, segment files) or its tree and key (the rest of the state): no
/// stored bytes make the store panic.
///
/// ```
/// use concord_core::Storage;
/// use concord_core::storage_conformance::sample_batch;
/// use concord_crdt::RegionId;
/// use concord_store::SledStore;
///
/// let dir = tempfile::tempdir().expect("a temporary directory");
/// let origin = RegionId::new(1);
/// let mut store = SledStore::open(dir.path())?;
/// store.append(vec![sample_batch(origin, 1..=3)])?;
/// store.sync()?; // durable: clients may be acknowledged
/// drop(store);
///
/// let store = SledStore::open(dir.path())?;
/// assert_eq!(store.read_log(origin, 2, 10)?.len(), 2);
/// # Ok::<(), concord_core::CoreError>(())
/// ```
pub struct SledStore {
    /// The checkpointed state's database (the directory itself).
    db: sled::Db,
    /// The log, in files of its own (`wal/` inside the directory): a group
    /// commit syncs only them, never a checkpoint being written.
    log: Wal,
    state: Arc<State>,
    path: PathBuf,
    /// The checkpoint writer (started with the first checkpoint), and the
    /// checkpoint it is writing, if any.
    writing: Mutex<Option<CheckpointWriter>>,
}

impl SledStore {
    /// Opens the store in directory `path`, creating it if needed, with
    /// the default [`StoreOptions`].
    ///
    /// Fails when sled cannot open the directory (another process holds it,
    /// an I/O error), or when an origin's log cannot be said to end
    /// somewhere: its last record does not decode, or what follows it is
    /// neither a torn append nor zeros. A store whose log is still in sled
    /// (an earlier version's) has it moved into files first.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens the store in directory `path` as [`SledStore::open`] does,
    /// with the log tuned by `options`.
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Self, CoreError> {
        let path = path.as_ref().to_path_buf();
        let db = open_db(&path)?;
        let wal_dir = path.join(WAL_DIR);
        crate::log::migrate(&path, &db, &wal_dir, options.log_file_bytes)?;
        let log = Wal::open(&wal_dir, &options)?;
        let state = Arc::new(State::open(&db, &path)?);
        Ok(Self {
            db,
            log,
            state,
            path,
            writing: Mutex::new(None),
        })
    }

    /// Waits for the checkpoint being written in the background, if any,
    /// and returns its outcome.
    fn join_checkpoint(&self) -> Result<(), CoreError> {
        let mut writing = match self.writing.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        writing.as_mut().map_or(Ok(()), CheckpointWriter::wait)
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How long [`open_db`] waits for the database's file lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the sled database, waiting briefly for its file lock: a store of the
/// same directory dropped a moment ago (a restart within one process) may
/// still be finishing its last flush on sled's background thread. A lock held
/// for longer is an error, as before.
pub(crate) fn open_db(path: &Path) -> Result<sled::Db, CoreError> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new().path(path).open() {
            Ok(db) => return Ok(db),
            // sled reports a held lock as an I/O error of its own wording.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(backend(e)),
        }
    }
}

impl Drop for SledStore {
    /// Waits for the checkpoint being written, then flushes before closing,
    /// so no write-out is left running on sled's
    /// background threads holding the directory's lock after the store is
    /// gone. (The log writes out and syncs what it buffered when it drops.)
    fn drop(&mut self) {
        // Nothing to report to: every acknowledged write was synced already,
        // and a checkpoint that fails leaves the previous one whole. Waiting
        // for the one being written keeps its files and sled writes from
        // going on after the store is gone (and racing a reopen).
        let _ = self.join_checkpoint();
        let _ = self.db.flush();
    }
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("log_ends", &self.log.ends())
            .finish_non_exhaustive()
    }
}

impl Storage for SledStore {
    fn append(&mut self, batches: Vec<WriteBatch>) -> Result<(), CoreError> {
        self.log.append(batches)
    }

    fn sync(&mut self) -> Result<(), CoreError> {
        self.log.sync()
    }

    fn read_log(
        &self,
        origin: RegionId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<TaggedWrite>, CoreError> {
        self.log.read(origin, from, limit)
    }

    fn log_bounds(&self) -> Result<Vec<(RegionId, LogBounds)>, CoreError> {
        Ok(self.log.bounds())
    }

    fn trim_log(&mut self, origin: RegionId, through: u64) -> Result<(), CoreError> {
        self.join_checkpoint()?;
        self.log.trim(origin, through)
    }

    /// Hands the checkpoint to the store's writer thread (see
    /// `CheckpointWriter`), which encodes and writes it while the engine
    /// goes on (see the trait's contract): the engine's thread only hands
    /// the delta over.
    fn checkpoint(&mut self, delta: CheckpointDelta) -> Result<(), CoreError> {
        self.join_checkpoint()?;
        let writing = match self.writing.get_mut() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        let writer = match writing {
            Some(writer) => writer,
            None => writing.insert(CheckpointWriter::start(
                Arc::clone(&self.state),
                self.db.clone(),
            )?),
        };
        writer.hand_over(delta)
    }

    fn checkpoint_in_flight(&mut self) -> Result<bool, CoreError> {
        let writing = match self.writing.get_mut() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        writing
            .as_mut()
            .map_or(Ok(false), CheckpointWriter::in_flight)
    }

    fn finish_checkpoint(&mut self) -> Result<(), CoreError> {
        self.join_checkpoint()
    }

    fn load_checkpoint(&self) -> Result<Checkpoint, CoreError> {
        self.join_checkpoint()?;
        self.state.load()
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.state.files_size() + self.log.size()
    }
}
