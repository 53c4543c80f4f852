//! What a store can be tuned with.

/// Tuning of a [`crate::SledStore`]'s log; [`StoreOptions::default`] is
/// what [`crate::SledStore::open`] uses.
///
/// ```
/// use concord_store::{SledStore, StoreOptions};
///
/// let dir = tempfile::tempdir().expect("a temporary directory");
/// let options = StoreOptions {
///     log_file_bytes: 1 << 20,
///     ..StoreOptions::default()
/// };
/// let store = SledStore::open_with(dir.path(), options)?;
/// # Ok::<(), concord_core::CoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// An origin's log file takes appends until it holds this many bytes;
    /// the next append starts a new file. Trimming deletes whole files, so
    /// this is also how much trimmed log a file may keep on disk.
    pub log_file_bytes: u64,
    /// At most this many of the last appended writes are kept decoded in
    /// memory, over all origins, so that reading them back (to send them
    /// to peers) neither reads nor decodes a file. 0 keeps none.
    pub cache_writes: usize,
    /// ... and at most about this many bytes of memory (counted as each
    /// write's own size plus its key, value and an allowance for the rest).
    pub cache_bytes: usize,
}

impl StoreOptions {
    /// The default size of a log file: 64 MiB.
    pub const DEFAULT_LOG_FILE_BYTES: u64 = 64 << 20;
    /// The default bound of the cache in writes: 262,144.
    pub const DEFAULT_CACHE_WRITES: usize = 1 << 18;
    /// The default bound of the cache in bytes: 64 MiB.
    pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            log_file_bytes: Self::DEFAULT_LOG_FILE_BYTES,
            cache_writes: Self::DEFAULT_CACHE_WRITES,
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
        }
    }
}
