//! Loser records in chunks: a checkpoint packs its new loser records, in id
//! order, into a few large values, as it packs entity states into segments
//! (sled spends microseconds on every key it writes, whatever its size).
//!
//! A chunk is framed as a segment ([`crate::segment`]): its entry keys are
//! record ids (`u64` big endian), its records `LoserRecord`s (codec
//! records), in strictly increasing id order. Its key in the
//! [`LOSER_CHUNKS`] tree is its first and last id, so chunks sort by id and
//! purging reads no chunk.
//!
//! The chunks' index (in `meta`) publishes chunks: a chunk is part of the
//! checkpoint when it starts below the index's `end` and ends above its
//! purge point. A checkpoint writes its new chunks (all from `end` on)
//! before the index, so a crash in between leaves them unpublished; and
//! once the index moves the purge point, the chunks wholly at or below it
//! are no longer published and are removed after it. Unpublished chunks are
//! removed when the store opens; loading skips them, and skips the records
//! at or below the purge point of the one chunk that may straddle it.
//!
//! The engine's record ids grow, so a checkpoint's new records are all from
//! `end` on, and it only appends chunks. A checkpoint that breaks that rule
//! (a record at or below an id written or purged before) is still applied
//! exactly, by rewriting every chunk in the index's transaction: slow, but
//! never done by the engine.

use concord_core::{CoreError, LoserRecord};
use serde::{Deserialize, Serialize};
use sled::{Batch, IVec, Tree};

use crate::layout::{
    LEGACY_LOSERS, LOSER_CHUNKS, META, META_LOSERS, id_key, loser_chunk_key, parse_id_key,
    parse_loser_chunk_key,
};
use crate::record::{backend, corrupt, corrupt_at, decode, location};
use crate::segment::{Packer, RawEntry, encode_into, merge_newest, pack_counted, unpack};

const LOSER: &str = "loser record";
const CHUNK: &str = "loser chunk";
/// What the index is called in errors.
pub(crate) const INDEX: &str = "loser chunk index";

/// About how many bytes one chunk holds: as many as a segment, for the same
/// reasons (sled's cost per key spread over ~35 records; no sled blobs).
const CHUNK_BYTES: usize = 7 * 1024;

/// What the store knows about its loser chunks, kept in the `meta` tree and
/// written in one transaction with the rest of a checkpoint's metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoserIndex {
    /// Records with an id at or below this are purged: a chunk that
    /// straddles it still holds some, which loading skips.
    pub(crate) purged_through: Option<u64>,
    /// One past the last id of every chunk ever published (0: none): a
    /// chunk that starts here or later was written by a checkpoint that
    /// did not finish.
    pub(crate) end: u64,
    /// The chunks published.
    pub(crate) chunks: u64,
}

impl LoserIndex {
    /// Whether the chunk of records `first` to `last` is part of the
    /// checkpoint.
    fn publishes(&self, first: u64, last: u64) -> bool {
        first < self.end && self.purged_through.is_none_or(|p| last > p)
    }
}

/// A checkpoint's new loser records, encoded straight into chunks: in
/// strictly increasing id order, each chunk under its key.
pub(crate) type Fresh = Chunks;

/// Chunks to insert: key and value.
pub(crate) type Chunks = Vec<([u8; 16], Vec<u8>)>;

/// The chunk writes of one checkpoint.
pub(crate) struct LoserWrite {
    /// New chunks, none published yet: written before the index.
    pub(crate) new: Chunks,
    /// Changes to published chunks, written in one transaction with the
    /// index (only when records are not simply appended).
    pub(crate) with_index: Batch,
    /// Chunks the new index no longer publishes: removed after it.
    pub(crate) dead: Vec<IVec>,
    /// The index after the checkpoint.
    pub(crate) index: LoserIndex,
}

/// Encodes a delta's new loser records into chunks: those above
/// `purged_through`, in id order; of two records with one id, the later one.
pub(crate) fn prepare(
    losers: &[LoserRecord],
    purged_through: Option<u64>,
) -> Result<Fresh, CoreError> {
    let mut fresh: Vec<&LoserRecord> = losers
        .iter()
        .filter(|l| purged_through.is_none_or(|t| l.id > t))
        .collect();
    // The engine gives them in id order already; a stable sort keeps the
    // order of equal ids, and the dedup keeps the last of each run.
    if !fresh.is_sorted_by(|a, b| a.id < b.id) {
        fresh.sort_by_key(|l| l.id);
        fresh.dedup_by(|later, earlier| {
            let same = later.id == earlier.id;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
    }
    let mut packer = Packer::new(CHUNK_BYTES);
    for loser in &fresh {
        packer.push_with(&id_key(loser.id), |out| encode_into(LOSER, *loser, out))?;
    }
    let mut rest = &fresh[..];
    let mut chunks = Vec::new();
    for (chunk, count) in packer.finish() {
        let (these, after) = rest.split_at(count.min(rest.len()));
        rest = after;
        if let (Some(first), Some(last)) = (these.first(), these.last()) {
            chunks.push((loser_chunk_key(first.id, last.id), chunk));
        }
    }
    Ok(chunks)
}

/// The chunk writes of a checkpoint that adds `fresh` (as [`prepare`] made
/// it) and purges the records at or below `purged_through`, to the chunks
/// of `tree` that `index` publishes.
pub(crate) fn write(
    tree: &Tree,
    index: LoserIndex,
    fresh: Fresh,
    purged_through: Option<u64>,
) -> Result<LoserWrite, CoreError> {
    let appends = fresh.first().is_none_or(|(key, _)| {
        parse_loser_chunk_key(key).is_some_and(|(first, _)| {
            first >= index.end && index.purged_through.is_none_or(|p| first > p)
        })
    });
    if appends {
        append(tree, index, fresh, purged_through)
    } else {
        rewrite(tree, index, fresh, purged_through)
    }
}

/// The usual write: `fresh` (all past every chunk written) goes into new
/// chunks, and the chunks wholly at or below the new purge point die.
fn append(
    tree: &Tree,
    mut index: LoserIndex,
    fresh: Fresh,
    purged_through: Option<u64>,
) -> Result<LoserWrite, CoreError> {
    let before = index;
    index.purged_through = index.purged_through.max(purged_through);
    let mut dead = Vec::new();
    if let Some(through) = index.purged_through {
        for entry in tree {
            let (key, _) = entry.map_err(backend)?;
            let (first, last) = chunk_range(&key)?;
            if last > through {
                break;
            }
            if before.publishes(first, last) {
                index.chunks = index.chunks.saturating_sub(1);
            }
            dead.push(key);
        }
    }
    let new = fresh;
    if let Some((key, _)) = new.last() {
        index.end = end_after(key)?.max(index.end);
    }
    index.chunks += new.len() as u64;
    Ok(LoserWrite {
        new,
        with_index: Batch::default(),
        dead,
        index,
    })
}

/// The write of records not all past the stored ones: every published
/// chunk is read and rewritten with the records that stay (moved as
/// bytes), `fresh` replacing stored records of the same id, in the index's
/// transaction. No record at or below a purge point is left behind, so none
/// needs to be skipped any more.
fn rewrite(
    tree: &Tree,
    index: LoserIndex,
    fresh: Fresh,
    purged_through: Option<u64>,
) -> Result<LoserWrite, CoreError> {
    let mut with_index = Batch::default();
    let mut old: Vec<(IVec, IVec)> = Vec::new();
    for entry in tree {
        let (key, value) = entry.map_err(backend)?;
        with_index.remove(key.clone());
        let (first, last) = chunk_range(&key)?;
        if index.publishes(first, last) {
            old.push((key, value));
        }
    }
    let mut stored: Vec<(&[u8], &[u8])> = Vec::new();
    for (key, value) in &old {
        for (id, (id_bytes, record)) in chunk_entries(key, value)? {
            if index.purged_through.is_none_or(|p| id > p) {
                stored.push((id_bytes, record));
            }
        }
    }
    // Chunks do not overlap, so `stored` is in id order, as is `fresh`.
    let mut fresh_run: Vec<(&[u8], &[u8])> = Vec::new();
    for (_, chunk) in &fresh {
        // Packed by `prepare`: a framing error would be a bug.
        fresh_run.extend(unpack(chunk).map_err(CoreError::Backend)?);
    }
    let mut entries: Vec<([u8; 8], &[u8])> = Vec::new();
    for (id, record) in merge_newest(vec![stored, fresh_run]) {
        if let Some(id) = parse_id_key(id)
            && purged_through.is_none_or(|t| id > t)
        {
            entries.push((id_key(id), record));
        }
    }
    let chunks = pack_chunks(&entries)?;
    let mut end = index.end;
    if let Some((key, _)) = chunks.last() {
        end = end_after(key)?.max(end);
    }
    let count = chunks.len() as u64;
    for (key, chunk) in chunks {
        with_index.insert(&key[..], chunk);
    }
    Ok(LoserWrite {
        new: Vec::new(),
        with_index,
        dead: Vec::new(),
        index: LoserIndex {
            purged_through: None,
            end,
            chunks: count,
        },
    })
}

/// The keys of the chunks of `tree` that `index` does not publish: those a
/// checkpoint wrote before a crash kept it from publishing them, and those
/// a purge left for removal. Keys that name no chunk are left for loading
/// to report.
pub(crate) fn unpublished(tree: &Tree, index: &LoserIndex) -> Result<Vec<IVec>, CoreError> {
    let mut keys = Vec::new();
    if let Some(through) = index.purged_through {
        for entry in tree {
            let (key, _) = entry.map_err(backend)?;
            match chunk_range(&key) {
                Ok((_, last)) if last <= through => keys.push(key),
                Ok(_) => break,
                Err(_) => {}
            }
        }
    }
    for entry in tree.range(loser_chunk_key(index.end, 0)..) {
        let (key, _) = entry.map_err(backend)?;
        if chunk_range(&key).is_ok() && !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// One past the last id of the chunk under `key`.
fn end_after(key: &[u8]) -> Result<u64, CoreError> {
    let (_, last) = chunk_range(key)?;
    last.checked_add(1)
        .ok_or_else(|| CoreError::Backend("loser record ids ran out".to_owned()))
}

/// Packs `entries` (in strictly increasing id order) into chunks.
fn pack_chunks(entries: &[([u8; 8], &[u8])]) -> Result<Chunks, CoreError> {
    let packed = pack_counted(entries.iter().map(|(id, r)| (&id[..], *r)), CHUNK_BYTES)?;
    let mut rest = entries;
    let mut chunks = Vec::with_capacity(packed.len());
    for (chunk, count) in packed {
        let (these, after) = rest.split_at(count.min(rest.len()));
        rest = after;
        let (Some((first, _)), Some((last, _))) = (these.first(), these.last()) else {
            continue;
        };
        let key = loser_chunk_key(u64::from_be_bytes(*first), u64::from_be_bytes(*last));
        chunks.push((key, chunk));
    }
    Ok(chunks)
}

/// The first and last id a chunk's key names, or a corrupt record.
fn chunk_range(key: &[u8]) -> Result<(u64, u64), CoreError> {
    match parse_loser_chunk_key(key) {
        Some((first, last)) if first <= last => Ok((first, last)),
        Some((first, last)) => Err(corrupt(
            CHUNK,
            LOSER_CHUNKS,
            key,
            format!("the key's first id {first} is past its last {last}"),
        )),
        None => Err(corrupt(
            CHUNK,
            LOSER_CHUNKS,
            key,
            "the key is not 16 bytes".to_owned(),
        )),
    }
}

/// A chunk's entries, each with its id, checked against the chunk's key:
/// the framing, ids of 8 bytes, the first and last ids those of the key.
fn chunk_entries<'a>(key: &[u8], value: &'a [u8]) -> Result<Vec<(u64, RawEntry<'a>)>, CoreError> {
    let (first, last) = chunk_range(key)?;
    let bad = |reason: String| corrupt(CHUNK, LOSER_CHUNKS, key, reason);
    let entries = unpack(value).map_err(bad)?;
    let mut out = Vec::with_capacity(entries.len());
    for (n, (id, record)) in entries.into_iter().enumerate() {
        let id_value =
            parse_id_key(id).ok_or_else(|| bad(format!("entry {n}: the id is not 8 bytes")))?;
        out.push((id_value, (id, record)));
    }
    match (out.first(), out.last()) {
        (Some((f, _)), Some((l, _))) if *f == first && *l == last => Ok(out),
        (Some((f, _)), Some((l, _))) => Err(bad(format!(
            "the key says ids {first} to {last}, the chunk holds {f} to {l}"
        ))),
        _ => Err(bad("an empty chunk".to_owned())),
    }
}

/// Every record not purged, in id order, each checked against its chunk;
/// chunks the index does not publish are skipped. Only the records loading
/// returns are decoded.
pub(crate) fn load(tree: &Tree, index: &LoserIndex) -> Result<Vec<LoserRecord>, CoreError> {
    let mut out = Vec::new();
    let mut previous: Option<u64> = None;
    let mut chunks = 0u64;
    for entry in tree {
        let (key, value) = entry.map_err(backend)?;
        let (first, last) = chunk_range(&key)?;
        if !index.publishes(first, last) {
            continue;
        }
        if let Some(before) = previous
            && first <= before
        {
            return Err(corrupt(
                CHUNK,
                LOSER_CHUNKS,
                &key,
                format!("its first id {first} is not past the previous chunk's last {before}"),
            ));
        }
        for (n, (id, (_, record))) in chunk_entries(&key, &value)?.into_iter().enumerate() {
            if index.purged_through.is_some_and(|p| id <= p) {
                continue;
            }
            let at = || format!("{}, entry {n}", location(LOSER_CHUNKS, &key));
            let loser: LoserRecord =
                concord_crdt::codec::decode(record).map_err(|source| CoreError::CorruptRecord {
                    what: LOSER,
                    location: at(),
                    source,
                })?;
            if loser.id != id {
                return Err(corrupt_at(
                    LOSER,
                    at(),
                    format!("the chunk says id {id}, the record {}", loser.id),
                ));
            }
            out.push(loser);
        }
        previous = Some(last);
        chunks += 1;
    }
    if chunks != index.chunks {
        return Err(corrupt(
            INDEX,
            META,
            META_LOSERS,
            format!(
                "the index counts {} chunks, the tree holds {chunks}",
                index.chunks
            ),
        ));
    }
    Ok(out)
}

/// The chunks that hold the records of a store that kept one per key (the
/// [`LEGACY_LOSERS`] tree, listed in `records`), moved as bytes, and the
/// index that publishes them, for a store with no chunks yet. Their ids
/// are checked when they load.
pub(crate) fn convert_legacy(
    records: &[(IVec, IVec)],
    index: LoserIndex,
) -> Result<(Chunks, LoserIndex), CoreError> {
    if index != LoserIndex::default() {
        return Err(CoreError::Backend(format!(
            "the store holds loser records both in chunks and one per key (tree {LEGACY_LOSERS:?})"
        )));
    }
    let mut entries: Vec<([u8; 8], &[u8])> = Vec::with_capacity(records.len());
    for (key, record) in records {
        let id = parse_id_key(key).ok_or_else(|| {
            corrupt(
                LOSER,
                LEGACY_LOSERS,
                key,
                "the key is not 8 bytes".to_owned(),
            )
        })?;
        entries.push((id_key(id), &record[..]));
    }
    let chunks = pack_chunks(&entries)?;
    let end = match chunks.last() {
        Some((key, _)) => end_after(key)?,
        None => 0,
    };
    let index = LoserIndex {
        purged_through: None,
        end,
        chunks: chunks.len() as u64,
    };
    Ok((chunks, index))
}

/// The index stored under `bytes` (that of an empty store when none was).
pub(crate) fn decode_index(bytes: Option<&[u8]>) -> Result<LoserIndex, CoreError> {
    match bytes {
        Some(bytes) => decode(INDEX, META, META_LOSERS, bytes),
        None => Ok(LoserIndex::default()),
    }
}
