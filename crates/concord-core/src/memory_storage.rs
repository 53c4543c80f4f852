//! In-memory storage for the simulator and tests, with crash semantics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use concord_crdt::RegionId;

use crate::storage::check_append;
use crate::{
    Checkpoint, CheckpointDelta, ConflictItem, CoreError, EngineMeta, Entity, EntityKey, LogBounds,
    LoserRecord, Storage, TaggedWrite, WriteBatch,
};

#[derive(Clone, Debug, Default)]
struct Durable {
    /// Log records keyed by (origin, first seq), like the sled store.
    logs: BTreeMap<(RegionId, u64), WriteBatch>,
    cursors: BTreeMap<RegionId, u64>,
    entities: BTreeMap<EntityKey, Entity>,
    queue: BTreeMap<u64, ConflictItem>,
    losers: BTreeMap<u64, LoserRecord>,
    meta: EngineMeta,
}

#[derive(Debug, Default)]
struct Inner {
    durable: Durable,
    /// Appended but not synced: lost by a crash.
    unsynced: Vec<WriteBatch>,
    syncs: u64,
}

/// Storage in memory that behaves like a disk across a simulated crash.
///
/// Clones share the same data, so a simulator can drop an engine (its memory)
/// and start a new one on the same storage. [`MemoryStorage::crash`] drops
/// whatever was appended but not synced, as a power cut would.
///
/// ```
/// use concord_core::{MemoryStorage, Storage};
/// let mut disk = MemoryStorage::new();
/// let restarted = disk.clone();
/// disk.sync()?;
/// assert_eq!(restarted.sync_count(), 1);
/// # Ok::<(), concord_core::CoreError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every method
        // validates before it mutates), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops every append not yet synced, as a crash would.
    pub fn crash(&self) {
        self.lock().unsynced.clear();
    }

    /// How many times [`Storage::sync`] made appends durable.
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }
}

fn last_seq(durable: &Durable, unsynced: &[WriteBatch], origin: RegionId) -> Option<u64> {
    let pending = unsynced
        .iter()
        .filter(|b| b.origin == origin && !b.writes.is_empty())
        .map(WriteBatch::last_seq)
        .max();
    let stored = durable
        .logs
        .range((origin, 0)..=(origin, u64::MAX))
        .next_back()
        .map(|(_, b)| b.last_seq());
    pending.or(stored)
}

impl Storage for MemoryStorage {
    fn append(&mut self, batches: Vec<WriteBatch>) -> Result<(), CoreError> {
        let mut inner = self.lock();
        let Inner {
            durable, unsynced, ..
        } = &mut *inner;
        check_append(&batches, |o| last_seq(durable, unsynced, o))?;
        unsynced.extend(batches.into_iter().filter(|b| !b.writes.is_empty()));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), CoreError> {
        let mut inner = self.lock();
        let batches = std::mem::take(&mut inner.unsynced);
        for b in batches {
            inner.durable.logs.insert((b.origin, b.first_seq()), b);
        }
        inner.syncs += 1;
        Ok(())
    }

    fn read_log(
        &self,
        origin: RegionId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<TaggedWrite>, CoreError> {
        let inner = self.lock();
        let mut out = Vec::new();
        let stored = inner
            .durable
            .logs
            .range((origin, 0)..=(origin, u64::MAX))
            .map(|(_, b)| b);
        let pending = inner.unsynced.iter().filter(|b| b.origin == origin);
        let mut first_held = None;
        for batch in stored.chain(pending) {
            first_held.get_or_insert(batch.first_seq());
            if batch.last_seq() < from {
                continue;
            }
            for w in &batch.writes {
                if w.seq >= from && out.len() < limit {
                    out.push(w.clone());
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        match first_held {
            Some(first) if from < first => Err(CoreError::LogGap {
                origin,
                seq: from,
                first,
                last: last_seq(&inner.durable, &inner.unsynced, origin).unwrap_or(0),
            }),
            _ => Ok(out),
        }
    }

    fn log_bounds(&self) -> Result<Vec<(RegionId, LogBounds)>, CoreError> {
        let inner = self.lock();
        let mut bounds: BTreeMap<RegionId, LogBounds> = BTreeMap::new();
        let all = inner.durable.logs.values().chain(inner.unsynced.iter());
        for b in all {
            let e = bounds.entry(b.origin).or_insert(LogBounds {
                first: b.first_seq(),
                last: b.last_seq(),
            });
            e.first = e.first.min(b.first_seq());
            e.last = e.last.max(b.last_seq());
        }
        Ok(bounds.into_iter().collect())
    }

    fn trim_log(&mut self, origin: RegionId, through: u64) -> Result<(), CoreError> {
        let mut inner = self.lock();
        inner
            .durable
            .logs
            .retain(|(o, _), b| *o != origin || b.last_seq() > through);
        Ok(())
    }

    fn checkpoint(&mut self, delta: CheckpointDelta) -> Result<(), CoreError> {
        let mut inner = self.lock();
        let d = &mut inner.durable;
        d.cursors = delta.cursors.iter().copied().collect();
        for (k, e) in delta.entities {
            d.entities.insert(k, Arc::unwrap_or_clone(e));
        }
        for item in delta.queue {
            d.queue.insert(item.id, item);
        }
        for id in &delta.queue_removed {
            d.queue.remove(id);
        }
        for l in delta.losers {
            d.losers.insert(l.id, l);
        }
        if let Some(through) = delta.losers_purged_through {
            d.losers.retain(|id, _| *id > through);
        }
        d.meta = delta.meta;
        Ok(())
    }

    fn load_checkpoint(&self) -> Result<Checkpoint, CoreError> {
        let inner = self.lock();
        let d = &inner.durable;
        Ok(Checkpoint {
            cursors: d.cursors.iter().map(|(r, s)| (*r, *s)).collect(),
            entities: d
                .entities
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
            queue: d.queue.values().cloned().collect(),
            losers: d.losers.values().cloned().collect(),
            meta: d.meta.clone(),
        })
    }
}
