//! Concord's durable storage: [`SledStore`], the engine's
//! [`concord_core::Storage`]: the log in append-only files of its own,
//! entity states in segment files, the rest of the checkpointed state on
//! [sled](https://docs.rs/sled/0.34.7).
//!
//! # Layout
//!
//! The log is in `wal/` inside the store's directory, one series of files
//! per origin, so that a group commit syncs only the log and never waits on
//! a checkpoint being written. A file is named for its origin and the seq
//! of its first write (`00002-00000000000000000001.wal`) and holds framed
//! records, one per appended `WriteBatch` (a large one is split into
//! records of about 48 KiB, since a read decodes whole records):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | CRC32 of bytes 4..20 and of the record (`u32` little endian) |
//! | 4..8 | the record's length |
//! | 8..16 | the seq of its first write (`u64` little endian) |
//! | 16..20 | how many writes it holds (`u32` little endian) |
//! | 20.. | the record: the `WriteBatch` |
//!
//! A file takes appends until it holds 64 MiB ([`StoreOptions`]), then the
//! next one starts. The store keeps an index of every record in memory
//! (built at open from the frame headers) and the last appended writes
//! decoded, so that reading back what was just appended — what the engine
//! sends its peers after a commit — neither reads nor decodes a file.
//!
//! Entity states are in `segments/`, one file per checkpoint generation
//! (`00000000000000000007.seg`): a header (`CSEG`, a format byte, the
//! generation as `u64` little endian), then the generation's segments, each
//! framed by its length and CRC32 (`u32` little endian each). The rest of
//! the checkpointed state is a sled database in the directory itself, with
//! three trees. Every value of the store but a segment or a loser chunk is
//! a record of `concord_crdt::codec` (a format-version byte, then bincode
//! 2), and every key sorts the way the store reads it:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `queue` | item id (`u64` big endian) | a `ConflictItem` |
//! | `loser_chunks` | first and last record id (`u64` big endian each) | a loser chunk: the `LoserRecord`s of those ids |
//! | `meta` | `cursors` / `engine` / `segments` / `losers` | the checkpoint's cursors / its `EngineMeta` / the segments' index / the loser chunks' index |
//!
//! A segment packs about 7 KiB of entities: a format byte, the entry count
//! (`u32` big endian), then per entry the length (`u32` big endian) and
//! bytes of its entity key — the collection name, a zero byte, the key's
//! bytes — and the length and bytes of its `Entity` record (a codec record).
//! A collection name never holds a zero byte, so entity keys sort exactly as
//! `EntityKey` does: by collection, then by key; a segment's entries are in
//! that order, and so are the segments of a generation's file. A loser chunk packs
//! about 7 KiB of loser records the same way, each entry keyed by its
//! record id (`u64` big endian).
//!
//! # Segments
//!
//! A checkpoint does not store each entity it changed under a key of its
//! own (sled spends microseconds on every key it writes): it packs them
//! into the segments of one new generation, written to one file front to
//! back. The state is every generation read
//! oldest first, a later entry of an entity overriding an earlier one. When
//! the segments hold more than twice the entities of the last compaction
//! (entities are never removed, so at least that many are live), or 256
//! generations, the checkpoint compacts instead: it merges the segments with
//! its own entities into one new generation and removes all older ones. The
//! segments thus hold at most about twice the live entities, and compaction
//! costs, amortized, at most about as much as the checkpoints themselves.
//! The index in `meta` (next generation, entries stored, entities at the last
//! compaction, generations held) publishes the segments: those of the
//! generations it holds are the checkpoint's, other files are leftovers. A
//! store that kept its segments in sled (a `segments` tree keyed by
//! generation and chunk) has them moved into files when it opens, and one
//! that kept one record per entity (an `entities` tree) gets them as the
//! file of generation 0.
//!
//! Loser records are chunked the same way, each checkpoint's new ones into
//! new chunks. A purge removes the chunks wholly at or below its purge
//! point; the index in `meta` (purge point, end of the ids written, chunks)
//! publishes the chunks, and loading skips the purged records of the one
//! chunk that may straddle the purge point. A store that kept one record
//! per key (a `losers` tree) has them moved into chunks when it opens.
//!
//! # Durability
//!
//! Appends are encoded into a buffer per log file;
//! [`concord_core::Storage::sync`] writes the buffers and `fdatasync`s every
//! file written since the last sync (one sync covers every append since the
//! last: group commit), and the node acknowledges clients after it. A new
//! log file's directory entry is synced before the file is written, and a
//! full file is synced before the next one starts, so a crash can tear only
//! the last record of an origin's last file: opening the store cuts such a
//! torn end off, silently, since it holds only writes no sync covered. A
//! record that fails its checksum elsewhere is reported when read, as a
//! [`concord_core::CoreError::CorruptRecord`] naming the file and offset.
//!
//! A checkpoint writes its new segment file (synced, and its directory
//! entry) and loser chunks first, then one sled transaction with the
//! indexes that publish them, the queue changes, cursors and engine
//! metadata; it flushes that, then removes what the new indexes no longer
//! publish, and is flushed before it is done. sled recovers a prefix of its
//! log and a transaction whole or not at all, so a crash leaves the
//! previous checkpoint or the new one whole; files and chunks the indexes
//! do not publish are removed when the store opens.
//!
//! A store whose log is still in sled (in `log/`, or in the state's
//! database, as earlier versions kept it) has it moved into files when it
//! opens; a crash during the move leaves the sled log whole, and the move
//! starts over.
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

mod background;
mod cache;
mod checkpoint_writer;
mod frame;
mod layout;
mod log;
mod losers;
mod options;
mod record;
mod segment;
mod segment_file;
mod state;
mod store;
mod wal;

pub use options::StoreOptions;
pub use store::SledStore;
