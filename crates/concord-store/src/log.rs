//! The per-origin logs, in the `log` tree: one record per appended batch.

use std::collections::BTreeMap;
use std::ops::Bound;

use concord_core::{CoreError, LogBounds, TaggedWrite, WriteBatch};
use concord_crdt::RegionId;
use sled::{IVec, Tree};

use crate::layout::{LOG, log_key, parse_log_key};
use crate::record::{backend, corrupt, decode, encode};

const WHAT: &str = "log record";

/// The `log` tree and, per origin with a non-empty log, the last seq it
/// holds (kept in memory so that an append validates without a read).
pub(crate) struct Log {
    tree: Tree,
    last: BTreeMap<RegionId, u64>,
}

/// The keys of every record `origin` may have.
fn origin_range(origin: RegionId) -> std::ops::RangeInclusive<[u8; 10]> {
    log_key(origin, 0)..=log_key(origin, u64::MAX)
}

/// The first seq a log key of `origin` names.
fn first_seq_of(origin: RegionId, key: &[u8]) -> Result<u64, CoreError> {
    match parse_log_key(key) {
        Some((o, seq)) if o == origin => Ok(seq),
        _ => Err(corrupt(
            WHAT,
            LOG,
            key,
            format!("a key among {origin}'s log records is not a log key of {origin}"),
        )),
    }
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

impl Log {
    /// Opens the log tree and reads the last seq of each origin: one seek
    /// per origin, from the highest down.
    pub(crate) fn open(tree: Tree) -> Result<Self, CoreError> {
        let mut last = BTreeMap::new();
        let mut below: Option<[u8; 10]> = None;
        loop {
            let entry = match below {
                None => tree.last(),
                Some(bound) => tree.range(..bound).next_back().transpose(),
            };
            let Some((key, value)) = entry.map_err(backend)? else {
                break;
            };
            let batch = decode_record(&key, &value)?;
            last.insert(batch.origin, batch.last_seq());
            if batch.origin.get() == 0 {
                break;
            }
            below = Some(log_key(batch.origin, 0));
        }
        Ok(Self { tree, last })
    }

    /// The last seq `origin`'s log holds, read from the tree.
    fn last_in_tree(&self, origin: RegionId) -> Result<Option<u64>, CoreError> {
        match self.tree.range(origin_range(origin)).next_back() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry.map_err(backend)?;
                Ok(Some(decode_record(&key, &value)?.last_seq()))
            }
        }
    }

    /// Appends every batch or none: validates them all against the cached
    /// ends of the logs, then writes them in one sled batch (atomic, also
    /// across a crash).
    ///
    /// A batch is one record or, when large, a few consecutive records of
    /// at most about [`MAX_RECORD_BYTES`] each.
    pub(crate) fn append(&mut self, batches: &[WriteBatch]) -> Result<(), CoreError> {
        let mut pending: BTreeMap<RegionId, u64> = BTreeMap::new();
        let mut write = sled::Batch::default();
        for b in batches.iter().filter(|b| !b.writes.is_empty()) {
            if !b.is_well_formed() {
                return Err(CoreError::Backend(format!(
                    "batch of {} is not consecutive writes of that origin",
                    b.origin
                )));
            }
            let last = pending
                .get(&b.origin)
                .or_else(|| self.last.get(&b.origin))
                .copied();
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
            if estimated_size(&b.writes) <= MAX_RECORD_BYTES {
                write.insert(&log_key(b.origin, first)[..], encode(WHAT, b)?);
            } else {
                // sled writes a value past ~128 KiB to a blob file of its
                // own; keep records well below that (a batch of a thousand
                // writes is a few records).
                let parts = estimated_size(&b.writes).div_ceil(MAX_RECORD_BYTES);
                let per = b.writes.len().div_ceil(parts).max(1);
                for chunk in b.writes.chunks(per) {
                    let sub = WriteBatch {
                        origin: b.origin,
                        writes: chunk.to_vec(),
                    };
                    write.insert(&log_key(b.origin, sub.first_seq())[..], encode(WHAT, &sub)?);
                }
            }
            pending.insert(b.origin, b.last_seq());
        }
        if pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.tree.apply_batch(write) {
            // Keep the cache true to the tree, whatever part of the batch
            // the failure left in memory.
            for origin in pending.keys() {
                match self.last_in_tree(*origin) {
                    Ok(Some(seq)) => {
                        self.last.insert(*origin, seq);
                    }
                    Ok(None) => {
                        self.last.remove(origin);
                    }
                    Err(_) => {}
                }
            }
            return Err(backend(e));
        }
        self.last.extend(pending);
        Ok(())
    }

    /// Up to `limit` writes of `origin` from seq `from` on.
    pub(crate) fn read(
        &self,
        origin: RegionId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<TaggedWrite>, CoreError> {
        let Some(first_entry) = self.tree.range(origin_range(origin)).next() else {
            return Ok(Vec::new());
        };
        let (first_key, _) = first_entry.map_err(backend)?;
        let first_held = first_seq_of(origin, &first_key)?;
        if from < first_held {
            return Err(CoreError::LogGap {
                origin,
                seq: from,
                first: first_held,
                last: self.last.get(&origin).copied().unwrap_or(first_held),
            });
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The record that holds `from`: the last one starting at or before it.
        let start = match self
            .tree
            .range(log_key(origin, 0)..=log_key(origin, from))
            .next_back()
        {
            Some(entry) => entry.map_err(backend)?.0,
            None => first_key,
        };
        let mut out = Vec::new();
        for entry in self
            .tree
            .range(start..=IVec::from(&log_key(origin, u64::MAX)))
        {
            let (key, value) = entry.map_err(backend)?;
            let batch = decode_record(&key, &value)?;
            let wanted = limit - out.len();
            out.extend(
                batch
                    .writes
                    .into_iter()
                    .filter(|w| w.seq >= from)
                    .take(wanted),
            );
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The first and last seq of each origin's log.
    pub(crate) fn bounds(&self) -> Result<Vec<(RegionId, LogBounds)>, CoreError> {
        let mut out = Vec::with_capacity(self.last.len());
        for (&origin, &last) in &self.last {
            if let Some(entry) = self.tree.range(origin_range(origin)).next() {
                let (key, _) = entry.map_err(backend)?;
                let first = first_seq_of(origin, &key)?;
                out.push((origin, LogBounds { first, last }));
            }
        }
        Ok(out)
    }

    /// Drops `origin`'s records whose writes are all at or below `through`.
    ///
    /// An origin's records are contiguous, so a record's last seq is the next
    /// record's first minus one (the last record's is the cached end of the
    /// log): no record is decoded, and a corrupt one can still be trimmed.
    /// Not flushed: a crash before the next flush may bring trimmed records
    /// back, which only delays their removal.
    pub(crate) fn trim(&mut self, origin: RegionId, through: u64) -> Result<(), CoreError> {
        let Some(&log_last) = self.last.get(&origin) else {
            return Ok(());
        };
        let mut starting_at_or_before: Vec<(IVec, u64)> = Vec::new();
        for entry in self
            .tree
            .range(log_key(origin, 0)..=log_key(origin, through))
        {
            let (key, _) = entry.map_err(backend)?;
            let first = first_seq_of(origin, &key)?;
            starting_at_or_before.push((key, first));
        }
        let Some((_, last_first)) = starting_at_or_before.last() else {
            return Ok(());
        };
        let after = (
            Bound::Excluded(log_key(origin, *last_first)),
            Bound::Included(log_key(origin, u64::MAX)),
        );
        let end_of_last = match self.tree.range(after).next() {
            Some(entry) => {
                let (key, _) = entry.map_err(backend)?;
                first_seq_of(origin, &key)?.saturating_sub(1)
            }
            None => log_last,
        };
        if end_of_last > through {
            // The last of them straddles `through`: it stays.
            starting_at_or_before.pop();
        }
        if starting_at_or_before.is_empty() {
            return Ok(());
        }
        let mut removal = sled::Batch::default();
        for (key, _) in &starting_at_or_before {
            removal.remove(key);
        }
        self.tree.apply_batch(removal).map_err(backend)?;
        if self.tree.range(origin_range(origin)).next().is_none() {
            self.last.remove(&origin);
        }
        Ok(())
    }

    /// The origins with a log and the last seq each holds.
    pub(crate) fn ends(&self) -> &BTreeMap<RegionId, u64> {
        &self.last
    }
}

/// A log record's size limit, in bytes (estimated before encoding).
pub(crate) const MAX_RECORD_BYTES: usize = 48 * 1024;

/// About how many bytes `writes` take encoded: their keys and values, and a
/// fixed allowance for the rest of each write.
fn estimated_size(writes: &[TaggedWrite]) -> usize {
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
