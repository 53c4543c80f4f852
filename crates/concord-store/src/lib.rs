//! Concord's durable storage: [`SledStore`], the engine's
//! [`concord_core::Storage`] on one [sled](https://docs.rs/sled/0.34.7) database.
//!
//! # Layout
//!
//! One sled database holds five trees. Every value is a record of
//! `concord_crdt::codec` (a format-version byte, then bincode 2), and every
//! key sorts the way the store reads it:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `log` | origin (`u16` big endian), first seq (`u64` big endian) | a `WriteBatch` |
//! | `entities` | collection name, a zero byte, the entity key's bytes | an `Entity` |
//! | `queue` | item id (`u64` big endian) | a `ConflictItem` |
//! | `losers` | record id (`u64` big endian) | a `LoserRecord` |
//! | `meta` | `cursors` / `engine` | the checkpoint's cursors / its `EngineMeta` |
//!
//! A collection name never holds a zero byte, so entity keys sort exactly as
//! `EntityKey` does: by collection, then by key.
//!
//! # Durability
//!
//! Appends go to sled's in-memory pages and its write-ahead log;
//! [`concord_core::Storage::sync`] flushes them (one flush covers every
//! append since the last: group commit), and the node acknowledges clients
//! after it. A checkpoint is applied in one transaction and flushed before it
//! returns. Whatever a crash leaves, sled recovers each append and each
//! checkpoint whole or not at all.
//!
//! ```
//! use concord_core::Storage;
//! use concord_store::SledStore;
//!
//! let dir = tempfile::tempdir().expect("a temporary directory");
//! let mut store = SledStore::open(dir.path())?;
//! store.sync()?;
//! assert!(store.load_checkpoint()?.entities.is_empty());
//! # Ok::<(), concord_core::CoreError>(())
//! ```

mod layout;
mod log;
mod record;
mod segment;
mod state;
mod store;

pub use store::SledStore;
