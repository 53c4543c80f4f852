//! The checkpointed state: entity segments in files of their own, and the
//! conflict queue, loser log, cursors and engine metadata, each in its own
//! sled tree.
//!
//! Entity states are stored in segments (see [`crate::segment`]): a
//! checkpoint packs the entities it changed into segments of one new
//! generation, written to that generation's file (see
//! [`crate::segment_file`]), so that its cost follows the bytes it writes.
//! Loading reads the generations oldest first; a later entry of an entity
//! overrides an earlier one. When the segments hold more than twice the
//! entities of the last compaction (see [`needs_compaction`]), a checkpoint
//! instead writes one new generation of every live entity and removes all
//! older files.
//!
//! Loser records are stored in chunks in sled (see [`crate::losers`]).
//!
//! The indexes of the segments and of the loser chunks (in `meta`) say
//! which of them the checkpoint holds: they publish them. A checkpoint
//! writes its new segment file (synced, with its directory entry) and its
//! new loser chunks (plain inserts) first; then one small sled transaction
//! writes the indexes that publish them, with the queue changes, cursors
//! and engine metadata; then, once that is flushed, it removes what the new
//! indexes no longer publish (the files a compaction replaced, the chunks a
//! purge passed). sled recovers a prefix of its log, a transaction whole or
//! not at all, so a crash leaves the previous checkpoint whole (and perhaps
//! a file or chunks it does not publish) or the new one (and perhaps some
//! it no longer publishes); either way what is not published is removed
//! when the store opens. See [`State::commit`].
//!
//! Separate trees (rather than one tree with key prefixes) keep each kind
//! of record in its own key space: a tree's name says what a corrupt record
//! was, and a kind can be dropped or rebuilt alone. A transaction cannot
//! scan, so the loser chunks to purge and the files to replace are listed
//! before it; the store has one writer (`&mut self`), so none can appear in
//! between.

use std::collections::BTreeMap;
use std::convert::Infallible;

use concord_core::{
    Checkpoint, CheckpointDelta, ConflictItem, CoreError, EngineMeta, Entity, EntityKey,
};
use concord_crdt::RegionId;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Batch, Db, IVec, Tree};

use crate::layout::{
    LEGACY_ENTITIES, LEGACY_LOSERS, LOSER_CHUNKS, META, META_CURSORS, META_ENGINE, META_LOSERS,
    META_SEGMENTS, QUEUE, SEGMENT_DIR, SEGMENTS, id_key, parse_entity_key, parse_id_key,
    parse_segment_key, write_entity_key,
};
use crate::losers::{self, LoserIndex};
use crate::record::{backend, corrupt, corrupt_at, decode, encode};
use crate::segment::encode_entity_into;
use crate::segment::{MergeNewest, Packer, Run, SegmentIndex, merge_newest, pack, unpack};
use crate::segment_file::{SegmentFile, SegmentFiles};

const ENTITY: &str = "entity";
const SEGMENT: &str = "entity segment";
const SEGMENT_INDEX: &str = "segment index";
const ITEM: &str = "conflict item";
const CURSORS: &str = "checkpoint cursors";
const ENGINE: &str = "engine metadata";

/// About how many bytes one segment holds: the unit a compaction moves and
/// loading checks (framing, CRC32). Chosen when segments were sled values
/// (large enough to spread sled's cost per key over ~40 entities, small
/// enough to stay below sled's blob threshold); in files, its size only
/// sets how often a frame header and checksum come.
const SEGMENT_BYTES: usize = 7 * 1024;
/// Below this many entities the segments are not compacted: rewriting a
/// small state often would gain nothing.
const COMPACT_MIN_ENTRIES: u64 = 1024;
/// A compaction also happens once the segments hold this many generations,
/// so that many small checkpoints do not leave many small segments.
const COMPACT_MAX_GENERATIONS: u64 = 256;

/// Where one entity's entry lies in the buffer a checkpoint encodes its
/// entities into ([`State::prepare`]).
struct Span {
    /// Its key starts here.
    key_start: usize,
    /// Its record starts here (and its key ends).
    record_start: usize,
    /// Its record ends here.
    end: usize,
    /// Its position in the delta.
    position: usize,
    /// Its key's order word (see [`order_word`]).
    order: u64,
}

/// How many leading bytes `first` shares with every one of `keys`.
fn shared_prefix<'a>(first: &[u8], keys: impl Iterator<Item = &'a [u8]>) -> usize {
    let mut shared = first.len();
    for key in keys {
        shared = first
            .iter()
            .zip(key)
            .take(shared)
            .take_while(|(a, b)| a == b)
            .count();
        if shared == 0 {
            break;
        }
    }
    shared
}

/// The first eight bytes of `rest`, big endian, zero-padded: keys that
/// share everything before `rest` order as their words do, or tie.
fn order_word(rest: Option<&[u8]>) -> u64 {
    let mut word = [0u8; 8];
    for (w, b) in word.iter_mut().zip(rest.unwrap_or_default()) {
        *w = *b;
    }
    u64::from_be_bytes(word)
}

/// Whether a checkpoint that adds `adding` entries (and one generation when
/// it adds any) to the segments `index` describes compacts them instead.
///
/// The rule keeps the entries stored at most twice the live entities (plus
/// one checkpoint's): entities are never removed, so the live count is at
/// least `index.base`, the count of the last compaction. And it keeps the
/// cost of compactions, amortized, within twice the entries written: a
/// compaction happens only after more entries than the last compaction
/// rewrote have been written since.
pub(crate) fn needs_compaction(index: &SegmentIndex, adding: u64) -> bool {
    let generations = index.generations + u64::from(adding > 0);
    let stored = index.stored.saturating_add(adding);
    stored > 2 * index.base.max(COMPACT_MIN_ENTRIES) || generations > COMPACT_MAX_GENERATIONS
}

/// The trees and files a checkpoint writes.
pub(crate) struct State {
    /// The state's database (to flush a checkpoint before removing the
    /// segment files it replaced).
    db: Db,
    /// Entity segments, a file per generation.
    files: SegmentFiles,
    queue: Tree,
    /// Loser records, in chunks (see [`crate::losers`]).
    losers: Tree,
    meta: Tree,
}

/// A checkpoint encoded and ready to write: what [`State::prepare`] makes
/// on the engine's thread, and [`State::commit`] writes (on a worker).
pub(crate) struct Prepared {
    /// The changed entities, encoded, sorted by key, one per key, packed
    /// into segments (each with its number of entries).
    entities: Vec<(Vec<u8>, usize)>,
    queue: Batch,
    /// New loser records (already without the purged ones), by id.
    losers: losers::Fresh,
    /// Loser records up to this id are purged.
    losers_purged_through: Option<u64>,
    cursors: Vec<u8>,
    engine: Vec<u8>,
}

/// The buffers [`State::prepare`] encodes a checkpoint's entities into,
/// kept from one checkpoint to the next by the writer thread: a fresh
/// buffer of tens of megabytes each time was a fresh mapping from the
/// allocator, every page of it faulted in anew.
#[derive(Default)]
pub(crate) struct PrepareScratch {
    /// Every entity's key and record.
    bytes: Vec<u8>,
    /// Where each lies in `bytes`.
    spans: Vec<Span>,
}

/// The segment writes of one checkpoint.
struct SegmentWrite {
    /// The generations a compaction replaces, no longer published once the
    /// index is written: their files are removed after it is flushed.
    dead: Vec<u64>,
    /// The index after the checkpoint.
    index: SegmentIndex,
}

/// Writes `values` into `tree`, one insert each. Not atomic together, and
/// need not be: they are written before the index that publishes them. A
/// plain insert also spares what a sled batch costs: a batch (or a
/// transaction) holds a lock over every sled database of the process, and
/// seals sled's write buffer, part empty, before and after it.
fn insert_each<K: AsRef<[u8]>>(tree: &Tree, values: Vec<(K, Vec<u8>)>) -> Result<(), CoreError> {
    for (key, value) in values {
        tree.insert(key.as_ref(), value).map_err(backend)?;
    }
    Ok(())
}

/// Removes `keys` from `tree`, one removal each (after the index that no
/// longer publishes them: see [`insert_each`]).
fn remove_each(tree: &Tree, keys: Vec<IVec>) -> Result<(), CoreError> {
    for key in keys {
        tree.remove(key).map_err(backend)?;
    }
    Ok(())
}

/// The first generation `index` publishes: a checkpoint adds one generation
/// past every other, and a compaction replaces all with one, so the
/// published ones are the last `generations` before the next.
fn first_generation(index: &SegmentIndex) -> u64 {
    index.next_generation.saturating_sub(index.generations)
}

impl State {
    /// Opens (or creates) the trees in `db` and the segment files in `dir`
    /// (the store's directory), converting the layouts of earlier stores:
    /// segments in sled into files, one record per entity into a segment
    /// file, one record per loser record into chunks.
    pub(crate) fn open(db: &Db, dir: &std::path::Path) -> Result<Self, CoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let state = Self {
            db: db.clone(),
            files: SegmentFiles::open(&dir.join(SEGMENT_DIR))?,
            queue: tree(QUEUE)?,
            losers: tree(LOSER_CHUNKS)?,
            meta: tree(META)?,
        };
        let names = db.tree_names();
        let has = |tree: &str| names.iter().any(|name| &name[..] == tree.as_bytes());
        if has(SEGMENTS) {
            state.convert_sled_segments(db)?;
        }
        if has(LEGACY_ENTITIES) {
            state.convert_legacy(db)?;
        }
        if has(LEGACY_LOSERS) {
            state.convert_legacy_losers(db)?;
        }
        state.remove_unpublished()?;
        Ok(state)
    }

    /// Removes the segment files and loser chunks the indexes do not
    /// publish: those a checkpoint wrote before a crash kept it from
    /// publishing them, and those it replaced or purged but had not removed
    /// yet. Not flushed: they are removed again at the next open if a crash
    /// comes first, and any later checkpoint is flushed after this. An
    /// index that does not decode removes nothing: loading reports it.
    fn remove_unpublished(&self) -> Result<(), CoreError> {
        if let Ok(index) = self.index() {
            self.remove_unpublished_segments(&index)?;
        }
        if let Ok(index) = self.loser_index() {
            let chunks = losers::unpublished(&self.losers, &index)?;
            remove_each(&self.losers, chunks)?;
        }
        Ok(())
    }

    /// Removes the segment files of the generations `index` does not
    /// publish.
    fn remove_unpublished_segments(&self, index: &SegmentIndex) -> Result<(), CoreError> {
        let published = first_generation(index)..index.next_generation;
        let mut removed = false;
        for generation in self.files.generations()? {
            if !published.contains(&generation) {
                self.files.remove(generation)?;
                removed = true;
            }
        }
        if removed {
            self.files.sync()?;
        }
        Ok(())
    }

    /// Moves the segments of a store that kept them in sled (the
    /// `segments` tree) into files, as bytes: each published generation's
    /// segments, in order, into its file, synced; then the tree is dropped.
    /// The index is unchanged: it publishes the same generations. A crash
    /// before the drop redoes the move at the next open (a file is rewritten
    /// whole); the segments the index does not publish are dropped with the
    /// tree.
    fn convert_sled_segments(&self, db: &Db) -> Result<(), CoreError> {
        let tree = db.open_tree(SEGMENTS).map_err(backend)?;
        if !tree.is_empty() {
            let index = self.index()?;
            let published = first_generation(&index)..index.next_generation;
            let mut writer: Option<(u64, crate::segment_file::SegmentWriter)> = None;
            for entry in &tree {
                let (key, segment) = entry.map_err(backend)?;
                let (generation, _) = parse_segment_key(&key).ok_or_else(|| {
                    corrupt(SEGMENT, SEGMENTS, &key, "the key is not 12 bytes".into())
                })?;
                if !published.contains(&generation) {
                    continue;
                }
                if writer.as_ref().map(|(g, _)| *g) != Some(generation) {
                    if let Some((_, done)) = writer.take() {
                        done.finish()?;
                    }
                    writer = Some((generation, self.files.create(generation)?));
                }
                if let Some((_, w)) = writer.as_mut() {
                    w.push(&segment)?;
                }
            }
            if let Some((_, done)) = writer.take() {
                done.finish()?;
            }
            self.files.sync()?;
        }
        drop(tree);
        db.drop_tree(SEGMENTS).map_err(backend)?;
        db.flush().map_err(backend)?;
        Ok(())
    }

    /// Moves the records of the legacy `losers` tree (one per key), as
    /// bytes, into chunks, in one transaction with the chunks' index; then
    /// drops the emptied tree. A crash at any point leaves either the old
    /// layout or the new one.
    fn convert_legacy_losers(&self, db: &Db) -> Result<(), CoreError> {
        let legacy = db.open_tree(LEGACY_LOSERS).map_err(backend)?;
        let mut records: Vec<(IVec, IVec)> = Vec::new();
        for entry in &legacy {
            records.push(entry.map_err(backend)?);
        }
        if !records.is_empty() {
            let (chunks, index) = losers::convert_legacy(&records, self.loser_index()?)?;
            let mut write = Batch::default();
            for (key, chunk) in chunks {
                write.insert(&key[..], chunk);
            }
            let mut removal = Batch::default();
            for (key, _) in &records {
                removal.remove(key);
            }
            let mut meta = Batch::default();
            meta.insert(META_LOSERS, encode(losers::INDEX, &index)?);
            (&self.losers, &legacy, &self.meta)
                .transaction(|(c, l, m)| {
                    c.apply_batch(&write)?;
                    l.apply_batch(&removal)?;
                    m.apply_batch(&meta)?;
                    Ok::<(), ConflictableTransactionError<Infallible>>(())
                })
                .map_err(transaction_error)?;
            db.flush().map_err(backend)?;
        }
        db.drop_tree(LEGACY_LOSERS).map_err(backend)?;
        Ok(())
    }

    /// The loser chunks' index (that of an empty store when none was written).
    fn loser_index(&self) -> Result<LoserIndex, CoreError> {
        let bytes = self.meta.get(META_LOSERS).map_err(backend)?;
        losers::decode_index(bytes.as_deref())
    }

    /// Moves the records of the legacy `entities` tree, as bytes, into
    /// generation 0 (older than every other), in one transaction with the
    /// index; then drops the emptied tree. A crash at any point leaves
    /// either the old layout or the new one.
    fn convert_legacy(&self, db: &Db) -> Result<(), CoreError> {
        let legacy = db.open_tree(LEGACY_ENTITIES).map_err(backend)?;
        let mut records: Vec<(IVec, IVec)> = Vec::new();
        for entry in &legacy {
            records.push(entry.map_err(backend)?);
        }
        if !records.is_empty() {
            let mut index = self.index()?;
            if index != SegmentIndex::empty() {
                return Err(CoreError::Backend(format!(
                    "the store holds entities both in segments and one per key (tree {LEGACY_ENTITIES:?})"
                )));
            }
            let chunks = pack(records.iter().map(|(k, v)| (&k[..], &v[..])), SEGMENT_BYTES)?;
            // Generation 0's file, written before the index publishes it.
            let mut file = self.files.create(0)?;
            for chunk in &chunks {
                file.push(chunk)?;
            }
            file.finish()?;
            self.files.sync()?;
            let mut removal = Batch::default();
            for (key, _) in &records {
                removal.remove(key);
            }
            index.stored += records.len() as u64;
            index.generations += 1;
            let mut meta = Batch::default();
            meta.insert(META_SEGMENTS, encode(SEGMENT_INDEX, &index)?);
            (&legacy, &self.meta)
                .transaction(|(l, m)| {
                    l.apply_batch(&removal)?;
                    m.apply_batch(&meta)?;
                    Ok::<(), ConflictableTransactionError<Infallible>>(())
                })
                .map_err(transaction_error)?;
            db.flush().map_err(backend)?;
        }
        db.drop_tree(LEGACY_ENTITIES).map_err(backend)?;
        Ok(())
    }

    /// The segments' index (that of an empty store when none was written).
    fn index(&self) -> Result<SegmentIndex, CoreError> {
        match self.meta.get(META_SEGMENTS).map_err(backend)? {
            Some(bytes) => decode(SEGMENT_INDEX, META, META_SEGMENTS, &bytes),
            None => Ok(SegmentIndex::empty()),
        }
    }

    /// The file of every generation `index` publishes, oldest first; the
    /// others (removed at open, see [`State::remove_unpublished`]) are
    /// skipped. A published generation without its file is a corrupt record.
    fn read_segments(&self, index: &SegmentIndex) -> Result<Vec<SegmentFile>, CoreError> {
        (first_generation(index)..index.next_generation)
            .map(|generation| self.files.read(generation))
            .collect()
    }

    /// Writes the segments of a checkpoint that adds the entities packed in
    /// `fresh` (as [`State::prepare`] packs them): a new generation of them,
    /// or a compaction, which merges them with every published segment into
    /// one new generation (written as it is packed, so that it is never in
    /// memory whole). The new generation is not published until the index
    /// returned is written.
    fn write_segments(&self, fresh: Vec<(Vec<u8>, usize)>) -> Result<SegmentWrite, CoreError> {
        let mut index = self.index()?;
        let generation = index.next_generation;
        let adding: u64 = fresh.iter().map(|(_, n)| *n as u64).sum();
        let mut dead = Vec::new();
        let mut written = 0usize;
        let mut file = None;
        let mut write = |segment: Vec<u8>| -> Result<(), CoreError> {
            let writer = match &mut file {
                Some(writer) => writer,
                None => file.insert(self.files.create(generation)?),
            };
            writer.push(&segment)?;
            written += 1;
            Ok(())
        };
        if needs_compaction(&index, adding) {
            let old = self.read_segments(&index)?;
            let mut runs = generations(&old, |record, _, _| record)?;
            let mut run = Vec::with_capacity(usize::try_from(adding).unwrap_or(0));
            for (segment, _) in &fresh {
                // Packed by `prepare`: a framing error would be a bug.
                run.extend(unpack(segment).map_err(CoreError::Backend)?);
            }
            runs.push(run);
            let mut packer = Packer::new(SEGMENT_BYTES);
            let mut live = 0u64;
            for (key, record) in MergeNewest::new(runs) {
                packer.push(key, record)?;
                live += 1;
                for (segment, _) in packer.take_finished() {
                    write(segment)?;
                }
            }
            for (segment, _) in packer.finish() {
                write(segment)?;
            }
            dead.extend(old.iter().map(|file| file.generation));
            index.stored = live;
            index.base = live;
            index.generations = 1;
        } else {
            for (segment, _) in fresh {
                write(segment)?;
            }
            index.stored += adding;
            index.generations += u64::from(adding > 0);
        }
        if let Some(file) = file {
            // Durable, with its directory entry, before the index publishes it.
            file.finish()?;
            self.files.sync()?;
        }
        if written > 0 {
            index.next_generation = generation
                .checked_add(1)
                .ok_or_else(|| CoreError::Backend("segment generations ran out".to_owned()))?;
        }
        Ok(SegmentWrite { dead, index })
    }

    /// Encodes `delta`: the part of a checkpoint that needs the engine's
    /// state but not the store's trees.
    pub(crate) fn prepare(
        mut delta: CheckpointDelta,
        scratch: &mut PrepareScratch,
    ) -> Result<Prepared, CoreError> {
        // Each entity's key and record, encoded in the delta's order into
        // one buffer: the engine lists entities as they turn dirty, so the
        // delta's order follows the order their states were allocated in,
        // and reading them in it misses the cache far less than reading
        // them in key order (in `perf`, the encoder's share of a `concord
        // bench` run fell from 11% to 6.5%). Then the entries are sorted by key and then by position:
        // the last upsert of an entity is the last of its run, and wins.
        let PrepareScratch { bytes, spans } = scratch;
        bytes.clear();
        spans.clear();
        bytes.reserve(delta.entities.len() * 160);
        spans.reserve(delta.entities.len());
        // Each entry is dropped as soon as it is encoded, while its lines
        // are in the cache: dropped all together after, each reference
        // count and key was a cache miss again (and a state the engine has
        // replaced since is freed here, not on the engine's thread).
        let entities = std::mem::take(&mut delta.entities);
        for (n, (key, state)) in entities.into_iter().enumerate() {
            let key_start = bytes.len();
            write_entity_key(&key, bytes);
            let record_start = bytes.len();
            encode_entity_into(ENTITY, &state, bytes)?;
            spans.push(Span {
                key_start,
                record_start,
                end: bytes.len(),
                position: n,
                order: 0,
            });
        }
        let key_of = |span: &Span| {
            bytes
                .get(span.key_start..span.record_start)
                .unwrap_or_default()
        };
        // Sorting compares keys mostly by a number: the eight bytes that
        // follow the prefix every key of the delta shares (a collection's
        // name, a key scheme's fixed start), big endian, zero-padded; the
        // bytes themselves only break ties. Comparing bytes in the buffer
        // was most of the sort (a cache miss per comparison).
        let shared = spans.first().map_or(0, |first| {
            shared_prefix(key_of(first), spans.iter().map(&key_of))
        });
        for span in spans.iter_mut() {
            span.order = order_word(bytes.get(span.key_start + shared..span.record_start));
        }
        spans.sort_unstable_by(|a, b| {
            a.order
                .cmp(&b.order)
                .then_with(|| key_of(a).cmp(key_of(b)))
                .then(a.position.cmp(&b.position))
        });
        // In key order the entries are scattered over the buffer (tens of
        // megabytes), a cache miss or more each: each group is read once
        // ahead in a loop of independent loads, whose misses overlap, and
        // then copied from the cache.
        let mut packer = Packer::new(SEGMENT_BYTES);
        for (g, group) in spans.chunks(TOUCH_GROUP).enumerate() {
            touch(bytes, group);
            let next = spans.get((g + 1) * TOUCH_GROUP);
            let mut runs = group.iter().peekable();
            while let Some(span) = runs.next() {
                // A run of one key may go on in the next group.
                let last_of_run = runs
                    .peek()
                    .copied()
                    .or(next)
                    .is_none_or(|n| key_of(n) != key_of(span));
                if !last_of_run {
                    continue;
                }
                let record = bytes.get(span.record_start..span.end).unwrap_or_default();
                packer.push(key_of(span), record)?;
            }
        }
        let entities = packer.finish();

        // A batch keeps the last operation on each key: removals win over
        // upserts of the same delta.
        let mut queue = Batch::default();
        for item in &delta.queue {
            queue.insert(&id_key(item.id)[..], encode(ITEM, item)?);
        }
        for id in &delta.queue_removed {
            queue.remove(&id_key(*id)[..]);
        }

        let through = delta.losers_purged_through;
        let losers = losers::prepare(&delta.losers, through)?;

        let cursors: BTreeMap<RegionId, u64> = delta.cursors.iter().copied().collect();
        let cursors: Vec<(RegionId, u64)> = cursors.into_iter().collect();
        Ok(Prepared {
            entities,
            queue,
            losers,
            losers_purged_through: through,
            cursors: encode(CURSORS, &cursors)?,
            engine: encode(ENGINE, &delta.meta)?,
        })
    }

    /// Writes a prepared checkpoint atomically. The transaction that
    /// publishes it is flushed before the segment files it replaces are
    /// removed; the removals of loser chunks after it are not flushed (the
    /// caller flushes).
    ///
    /// The new segments and loser chunks are written first, with plain
    /// inserts: the indexes do not publish them yet. One small transaction
    /// then writes the indexes that publish them, with the queue, cursors
    /// and engine metadata (and, rarely, loser chunks rewritten in place).
    /// The segments and chunks the new indexes no longer publish are
    /// removed last. sled recovers a prefix of its log, a transaction whole
    /// or not at all: a crash before the transaction is recovered leaves the
    /// previous checkpoint (and unpublished segments and chunks, removed at
    /// open); after it, the new one.
    pub(crate) fn commit(&self, prepared: Prepared) -> Result<(), CoreError> {
        let Prepared {
            entities,
            queue,
            losers,
            losers_purged_through,
            cursors,
            engine,
        } = prepared;
        // Leftovers of an attempt that failed part way.
        self.remove_unpublished()?;
        let segments = self.write_segments(entities)?;
        let losers = losers::write(
            &self.losers,
            self.loser_index()?,
            losers,
            losers_purged_through,
        )?;
        let mut meta = Batch::default();
        meta.insert(META_CURSORS, cursors);
        meta.insert(META_ENGINE, engine);
        meta.insert(META_SEGMENTS, encode(SEGMENT_INDEX, &segments.index)?);
        meta.insert(META_LOSERS, encode(losers::INDEX, &losers.index)?);

        insert_each(&self.losers, losers.new)?;
        (&self.queue, &self.losers, &self.meta)
            .transaction(|(q, l, m)| {
                q.apply_batch(&queue)?;
                l.apply_batch(&losers.with_index)?;
                m.apply_batch(&meta)?;
                Ok::<(), ConflictableTransactionError<Infallible>>(())
            })
            .map_err(transaction_error)?;
        // The files a compaction replaced are still published by the index
        // on disk until the transaction is: flush it before removing them.
        self.db.flush().map_err(backend)?;
        for generation in segments.dead {
            self.files.remove(generation)?;
        }
        remove_each(&self.losers, losers.dead)
    }

    /// The bytes the segment files take.
    pub(crate) fn files_size(&self) -> u64 {
        self.files.size()
    }

    /// Reads the whole checkpoint (empty when none was taken).
    pub(crate) fn load(&self) -> Result<Checkpoint, CoreError> {
        let cursors = match self.meta.get(META_CURSORS).map_err(backend)? {
            Some(bytes) => decode(CURSORS, META, META_CURSORS, &bytes)?,
            None => Vec::new(),
        };
        let meta: EngineMeta = match self.meta.get(META_ENGINE).map_err(backend)? {
            Some(bytes) => decode(ENGINE, META, META_ENGINE, &bytes)?,
            None => EngineMeta::default(),
        };
        let entities = self.load_entities()?;
        let queue = load_by_id(&self.queue, QUEUE, ITEM, |i: &ConflictItem| i.id)?;
        let losers = losers::load(&self.losers, &self.loser_index()?)?;
        Ok(Checkpoint {
            cursors,
            entities,
            queue,
            losers,
            meta,
        })
    }

    /// Every live entity, in key order: the last entry of each key over the
    /// segments, oldest first. Only the entries that win are decoded.
    fn load_entities(&self) -> Result<Vec<(EntityKey, Entity)>, CoreError> {
        let index = self.index()?;
        let segments = self.read_segments(&index)?;
        let runs = generations(&segments, |record, segment, n| (record, segment, n))?;
        let stored: u64 = runs.iter().map(|r| r.len() as u64).sum();
        if stored != index.stored {
            return Err(corrupt(
                SEGMENT_INDEX,
                META,
                META_SEGMENTS,
                format!(
                    "the index counts {} entries, the segments hold {stored}",
                    index.stored
                ),
            ));
        }
        let live = merge_newest(runs);
        let mut out = Vec::with_capacity(live.len());
        for (entity, (record, segment, n)) in live {
            let at = || format!("{}, entry {n}", segment.describe());
            let entity_key =
                parse_entity_key(entity).map_err(|reason| corrupt_at(ENTITY, at(), reason))?;
            let state =
                concord_crdt::codec::decode(record).map_err(|source| CoreError::CorruptRecord {
                    what: ENTITY,
                    location: at(),
                    source,
                })?;
            out.push((entity_key, state));
        }
        Ok(out)
    }
}

/// The entries of `files` (as [`State::read_segments`] lists them), one run
/// per generation, oldest first, each in strictly increasing key order:
/// each entry's key, and what `entry` makes of its record and the place of
/// its segment (file, segment number, offset) and of it in the segment.
fn generations<'a, T>(
    files: &'a [SegmentFile],
    entry: impl Fn(&'a [u8], Place<'a>, usize) -> T,
) -> Result<Vec<Run<'a, T>>, CoreError> {
    let mut runs: Vec<Run<'a, T>> = Vec::with_capacity(files.len());
    for file in files {
        let mut run: Run<'a, T> = Vec::new();
        for (n, offset, segment) in file.segments() {
            let place = Place { file, n, offset };
            let entries =
                unpack(segment).map_err(|reason| corrupt_at(SEGMENT, place.describe(), reason))?;
            if let (Some((last, _)), Some((first, _))) = (run.last(), entries.first())
                && *last >= *first
            {
                return Err(corrupt_at(
                    SEGMENT,
                    place.describe(),
                    "its first key is not past the last key of the generation's previous segment"
                        .to_owned(),
                ));
            }
            run.extend(
                entries
                    .into_iter()
                    .enumerate()
                    .map(|(i, (entity, record))| (entity, entry(record, place, i))),
            );
        }
        runs.push(run);
    }
    Ok(runs)
}

/// Where a segment is: for errors.
#[derive(Clone, Copy)]
struct Place<'a> {
    file: &'a SegmentFile,
    n: usize,
    offset: u64,
}

impl Place<'_> {
    fn describe(&self) -> String {
        self.file.location(self.n, self.offset)
    }
}

/// A failed transaction, as the engine sees it.
fn transaction_error(e: TransactionError<Infallible>) -> CoreError {
    match e {
        TransactionError::Storage(e) => backend(e),
        TransactionError::Abort(never) => match never {},
    }
}

/// Every record of a tree keyed by id, checking each key against its record.
fn load_by_id<T: serde::de::DeserializeOwned>(
    tree: &Tree,
    name: &str,
    what: &'static str,
    id_of: impl Fn(&T) -> u64,
) -> Result<Vec<T>, CoreError> {
    let mut out = Vec::new();
    for entry in tree {
        let (key, value) = entry.map_err(backend)?;
        let id = parse_id_key(&key)
            .ok_or_else(|| corrupt(what, name, &key, "the key is not 8 bytes".to_owned()))?;
        let record: T = decode(what, name, &key, &value)?;
        if id_of(&record) != id {
            return Err(corrupt(
                what,
                name,
                &key,
                format!("the key says id {id}, the record {}", id_of(&record)),
            ));
        }
        out.push(record);
    }
    Ok(out)
}

/// How many entries [`State::prepare`] reads ahead of copying them.
const TOUCH_GROUP: usize = 64;

/// Reads every cache line of the entries of `spans` in `bytes`, each load
/// independent of the others, so that their misses overlap; the result is
/// of no use but to be read.
fn touch(bytes: &[u8], spans: &[Span]) {
    let mut sum = 0u8;
    for span in spans {
        let mut at = span.key_start;
        while at < span.end {
            sum ^= bytes.get(at).copied().unwrap_or(0);
            at += 64;
        }
        sum ^= bytes.get(span.end.wrapping_sub(1)).copied().unwrap_or(0);
    }
    std::hint::black_box(sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys with a shared start, zero bytes, prefixes of one another and
    /// lengths around the word's eight bytes sort by (order word after the
    /// shared prefix, bytes) exactly as they sort by bytes.
    #[test]
    fn the_order_word_sorts_as_the_bytes_do() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for round in 0..200 {
            let shared: Vec<u8> = b"coll\0user-"[..(round % 11)].to_vec();
            let keys: Vec<Vec<u8>> = (0..300)
                .map(|_| {
                    let mut key = shared.clone();
                    for _ in 0..next(14) {
                        // Few distinct bytes, zeros among them: many ties.
                        key.push([0u8, 1, b'a', 0xff][next(4) as usize]);
                    }
                    key
                })
                .collect();
            let common = shared_prefix(&keys[0], keys.iter().map(|k| &k[..]));
            assert!(common >= shared.len());
            let mut by_word: Vec<&Vec<u8>> = keys.iter().collect();
            by_word.sort_by(|a, b| {
                order_word(a.get(common..))
                    .cmp(&order_word(b.get(common..)))
                    .then_with(|| a.cmp(b))
            });
            let mut by_bytes: Vec<&Vec<u8>> = keys.iter().collect();
            by_bytes.sort();
            assert_eq!(by_word, by_bytes, "round {round}");
        }
    }

    #[test]
    fn the_shared_prefix_stops_at_the_first_difference_and_the_shortest_key() {
        let keys: [&[u8]; 3] = [b"abcde", b"abcxy", b"abcd"];
        assert_eq!(shared_prefix(keys[0], keys.into_iter()), 3);
        let keys: [&[u8]; 2] = [b"abc", b"ab"];
        assert_eq!(shared_prefix(keys[0], keys.into_iter()), 2);
        let keys: [&[u8]; 2] = [b"x", b"y"];
        assert_eq!(shared_prefix(keys[0], keys.into_iter()), 0);
    }
}
