//! Loser records in chunks: a checkpoint packs its new loser records, in id
//! order, into a few large values, as it packs entity states into segments
//! (sled spends microseconds on every key it writes, whatever its size).
//!
//! A chunk is framed as a segment ([`crate::segment`]): its entry keys are
//! record ids (`u64` big endian), its records `LoserRecord`s (codec
//! records), in strictly increasing id order. Its key in the
//! [`LOSER_CHUNKS`] tree is its first and last id, so chunks sort by id and
//! purging reads no chunk: the chunks whose last id is at or below the purge
//! point are removed whole, and one that straddles it stays; loading skips
//! its records at or below the purge point, which the chunks' index (in
//! `meta`, written in the same transaction as the chunks) keeps, with the
//! number of chunks.
//!
//! The engine's record ids grow, so a checkpoint's new records are all
//! above every stored or purged one, and it only appends chunks. A
//! checkpoint that breaks that rule (a record at or below an id stored or
//! purged before) is still applied exactly, by rewriting every chunk: slow,
//! but never done by the engine.

use concord_core::{CoreError, LoserRecord};
use serde::{Deserialize, Serialize};
use sled::{Batch, IVec, Tree};

use crate::layout::{
    LEGACY_LOSERS, LOSER_CHUNKS, id_key, loser_chunk_key, parse_id_key, parse_loser_chunk_key,
};
use crate::record::{backend, corrupt, corrupt_at, decode, encode, location};
use crate::segment::{RawEntry, merge_newest, pack_counted, unpack};

const LOSER: &str = "loser record";
const CHUNK: &str = "loser chunk";

/// About how many bytes one chunk holds: as many as a segment, for the same
/// reasons (sled's cost per key spread over ~35 records; no sled blobs).
const CHUNK_BYTES: usize = 7 * 1024;

/// What the store knows about its loser chunks, kept in the `meta` tree and
/// written in the same transaction as the chunks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoserIndex {
    /// Records with an id at or below this are purged: a chunk that
    /// straddles it still holds some, which loading skips.
    pub(crate) purged_through: Option<u64>,
    /// The chunks stored.
    pub(crate) chunks: u64,
}

/// A checkpoint's new loser records, encoded: in strictly increasing id
/// order, each with its id as a key (big endian).
pub(crate) type Fresh = Vec<([u8; 8], Vec<u8>)>;

/// The chunk writes of one checkpoint.
pub(crate) struct LoserWrite {
    /// Chunks inserted and removed.
    pub(crate) batch: Batch,
    /// The index after them.
    pub(crate) index: LoserIndex,
}

/// Encodes a delta's new loser records: those above `purged_through`, in
/// id order; of two records with one id, the later one.
pub(crate) fn prepare(
    losers: &[LoserRecord],
    purged_through: Option<u64>,
) -> Result<Fresh, CoreError> {
    let mut fresh: Fresh = Vec::with_capacity(losers.len());
    for loser in losers {
        if purged_through.is_none_or(|t| loser.id > t) {
            fresh.push((id_key(loser.id), encode(LOSER, loser)?));
        }
    }
    // The engine gives them in id order already; a stable sort keeps the
    // order of equal ids, and the dedup keeps the last of each run.
    if !fresh.is_sorted_by(|a, b| a.0 < b.0) {
        fresh.sort_by_key(|e| e.0);
        fresh.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
    }
    Ok(fresh)
}

/// The chunk writes of a checkpoint that adds `fresh` (as [`prepare`] made
/// it) and purges the records at or below `purged_through`, to the chunks
/// of `tree` that `index` describes.
pub(crate) fn write(
    tree: &Tree,
    index: LoserIndex,
    fresh: &Fresh,
    purged_through: Option<u64>,
) -> Result<LoserWrite, CoreError> {
    let stored_through = match tree.last().map_err(backend)? {
        Some((key, _)) => Some(chunk_range(&key)?.1),
        None => None,
    };
    let appends = fresh.first().is_none_or(|(first, _)| {
        let first = u64::from_be_bytes(*first);
        stored_through.is_none_or(|s| first > s) && index.purged_through.is_none_or(|p| first > p)
    });
    if appends {
        append(tree, index, fresh, purged_through)
    } else {
        rewrite(tree, index, fresh, purged_through)
    }
}

/// The usual write: the purge removes the chunks wholly at or below the
/// purge point, and `fresh` (all above every stored id) goes into new ones.
fn append(
    tree: &Tree,
    mut index: LoserIndex,
    fresh: &Fresh,
    purged_through: Option<u64>,
) -> Result<LoserWrite, CoreError> {
    let mut batch = Batch::default();
    let through = index.purged_through.max(purged_through);
    if let Some(through) = through {
        for entry in tree {
            let (key, _) = entry.map_err(backend)?;
            if chunk_range(&key)?.1 > through {
                break;
            }
            batch.remove(key);
            index.chunks = index.chunks.saturating_sub(1);
        }
    }
    index.purged_through = through;
    let entries: Vec<([u8; 8], &[u8])> = fresh.iter().map(|(id, r)| (*id, &r[..])).collect();
    index.chunks += pack_chunks(&entries, &mut batch)?;
    Ok(LoserWrite { batch, index })
}

/// The write of records not all above the stored ones: every chunk is read
/// and rewritten with the records that stay (moved as bytes), `fresh`
/// replacing stored records of the same id. No record at or below a purge
/// point is left behind, so none needs to be skipped any more.
fn rewrite(
    tree: &Tree,
    index: LoserIndex,
    fresh: &Fresh,
    purged_through: Option<u64>,
) -> Result<LoserWrite, CoreError> {
    let mut batch = Batch::default();
    let mut old: Vec<(IVec, IVec)> = Vec::new();
    for entry in tree {
        let (key, value) = entry.map_err(backend)?;
        batch.remove(key.clone());
        old.push((key, value));
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
    let fresh_run: Vec<(&[u8], &[u8])> = fresh.iter().map(|(k, r)| (&k[..], &r[..])).collect();
    let mut entries: Vec<([u8; 8], &[u8])> = Vec::new();
    for (id, record) in merge_newest(vec![stored, fresh_run]) {
        if let Some(id) = parse_id_key(id)
            && purged_through.is_none_or(|t| id > t)
        {
            entries.push((id_key(id), record));
        }
    }
    let chunks = pack_chunks(&entries, &mut batch)?;
    Ok(LoserWrite {
        batch,
        index: LoserIndex {
            purged_through: None,
            chunks,
        },
    })
}

/// Packs `entries` (in strictly increasing id order) into chunks inserted
/// in `batch`; returns how many.
fn pack_chunks(entries: &[([u8; 8], &[u8])], batch: &mut Batch) -> Result<u64, CoreError> {
    let packed = pack_counted(entries.iter().map(|(id, r)| (&id[..], *r)), CHUNK_BYTES)?;
    let mut rest = entries;
    let mut chunks = 0;
    for (chunk, count) in packed {
        let (these, after) = rest.split_at(count.min(rest.len()));
        rest = after;
        let (Some((first, _)), Some((last, _))) = (these.first(), these.last()) else {
            continue;
        };
        let key = loser_chunk_key(u64::from_be_bytes(*first), u64::from_be_bytes(*last));
        batch.insert(&key[..], chunk);
        chunks += 1;
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
fn chunk_entries<'a>(
    key: &[u8],
    value: &'a [u8],
) -> Result<Vec<(u64, RawEntry<'a>)>, CoreError> {
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

/// Every record not purged, in id order, each checked against its chunk.
/// Only the records loading returns are decoded.
pub(crate) fn load(tree: &Tree, index: &LoserIndex) -> Result<Vec<LoserRecord>, CoreError> {
    let mut out = Vec::new();
    let mut previous: Option<(IVec, u64)> = None;
    let mut chunks = 0u64;
    for entry in tree {
        let (key, value) = entry.map_err(backend)?;
        let entries = chunk_entries(&key, &value)?;
        if let (Some((_, before)), Some((first, _))) = (&previous, entries.first())
            && first <= before
        {
            return Err(corrupt(
                CHUNK,
                LOSER_CHUNKS,
                &key,
                format!("its first id {first} is not past the previous chunk's last {before}"),
            ));
        }
        for (n, (id, (_, record))) in entries.iter().enumerate() {
            if index.purged_through.is_some_and(|p| *id <= p) {
                continue;
            }
            let at = || format!("{}, entry {n}", location(LOSER_CHUNKS, &key));
            let loser: LoserRecord =
                concord_crdt::codec::decode(record).map_err(|source| CoreError::CorruptRecord {
                    what: LOSER,
                    location: at(),
                    source,
                })?;
            if loser.id != *id {
                return Err(corrupt_at(
                    LOSER,
                    at(),
                    format!("the chunk says id {id}, the record {}", loser.id),
                ));
            }
            out.push(loser);
        }
        let last = entries.last().map_or(0, |(id, _)| *id);
        previous = Some((key, last));
        chunks += 1;
    }
    if chunks != index.chunks {
        return Err(corrupt(
            INDEX,
            crate::layout::META,
            crate::layout::META_LOSERS,
            format!(
                "the index counts {} chunks, the tree holds {chunks}",
                index.chunks
            ),
        ));
    }
    Ok(out)
}

/// The chunk writes that move the records of a store that kept one per key
/// (the [`LEGACY_LOSERS`] tree, listed in `records`), as bytes, into
/// chunks; and the index after them. Their ids are checked when they load.
pub(crate) fn convert_legacy(
    records: &[(IVec, IVec)],
    index: LoserIndex,
) -> Result<LoserWrite, CoreError> {
    if index.chunks > 0 && !records.is_empty() {
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
    let mut batch = Batch::default();
    let chunks = pack_chunks(&entries, &mut batch)?;
    Ok(LoserWrite {
        batch,
        index: LoserIndex {
            purged_through: index.purged_through,
            chunks: index.chunks + chunks,
        },
    })
}

/// What the index is called in errors.
pub(crate) const INDEX: &str = "loser chunk index";

/// The index stored under `bytes` (that of an empty store when none was).
pub(crate) fn decode_index(bytes: Option<&[u8]>) -> Result<LoserIndex, CoreError> {
    match bytes {
        Some(bytes) => decode(
            INDEX,
            crate::layout::META,
            crate::layout::META_LOSERS,
            bytes,
        ),
        None => Ok(LoserIndex::default()),
    }
}
