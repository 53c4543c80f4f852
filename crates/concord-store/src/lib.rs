//! Concord's durable storage: [`SledStore`], the engine's
//! [`concord_core::Storage`] on [sled](https://docs.rs/sled/0.34.7).
//!
//! # Layout
//!
//! Two sled databases hold the store: the log in `log/` inside the
//! directory, so that a group commit flushes only the log and never waits on
//! a checkpoint being written; and the checkpointed state in the directory
//! itself. Together they hold five trees. Every value but a segment is a record
//! of `concord_crdt::codec` (a format-version byte, then bincode 2), and
//! every key sorts the way the store reads it:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `log` (its own database, in `log/`) | origin (`u16` big endian), first seq (`u64` big endian) | a `WriteBatch` (a large one is split into records of at most ~48 KiB: sled writes bigger values to blob files of their own) |
//! | `segments` | generation (`u64` big endian), chunk (`u32` big endian) | a segment: entity states of one checkpoint |
//! | `queue` | item id (`u64` big endian) | a `ConflictItem` |
//! | `losers` | record id (`u64` big endian) | a `LoserRecord` |
//! | `meta` | `cursors` / `engine` / `segments` | the checkpoint's cursors / its `EngineMeta` / the segments' index |
//!
//! A segment packs about 7 KiB of entities: a format byte, the entry count
//! (`u32` big endian), then per entry the length (`u32` big endian) and
//! bytes of its entity key — the collection name, a zero byte, the key's
//! bytes — and the length and bytes of its `Entity` record (a codec record).
//! A collection name never holds a zero byte, so entity keys sort exactly as
//! `EntityKey` does: by collection, then by key; a segment's entries are in
//! that order, and so are the chunks of a generation.
//!
//! # Segments
//!
//! sled spends microseconds on every key it writes, so a checkpoint does not
//! store each entity it changed under a key of its own: it packs them into
//! the segments of one new generation. The state is every generation read
//! oldest first, a later entry of an entity overriding an earlier one. When
//! the segments hold more than twice the entities of the last compaction
//! (entities are never removed, so at least that many are live), or 256
//! generations, the checkpoint compacts instead: it merges the segments with
//! its own entities into one new generation and removes all older ones. The
//! segments thus hold at most about twice the live entities, and compaction
//! costs, amortized, at most about as much as the checkpoints themselves.
//! The index in `meta` (next generation, entries stored, entities at the last
//! compaction, generations held) changes in the same transaction as the
//! segments. A store that kept one record per entity (an `entities` tree)
//! is converted to a segment of generation 0 when it opens.
//!
//! # Durability
//!
//! Appends go to sled's in-memory pages and its write-ahead log;
//! [`concord_core::Storage::sync`] flushes them (one flush covers every
//! append since the last: group commit), and the node acknowledges clients
//! after it. A checkpoint — its new segments, the segments a compaction
//! replaces, queue, loser and metadata changes — is applied in one
//! transaction and flushed before it returns. Whatever a crash leaves, sled
//! recovers each append and each checkpoint whole or not at all.
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
mod losers;
mod record;
mod segment;
mod state;
mod store;

pub use store::SledStore;
