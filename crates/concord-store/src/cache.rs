//! The most recently appended writes, decoded, per origin: what the engine
//! reads right after a commit (to send to peers) is cloned from here rather
//! than read back from the log files and decoded.

use std::collections::{BTreeMap, VecDeque};

use concord_core::TaggedWrite;
use concord_crdt::RegionId;

/// The writes of one append of one origin, in the order appends came: the
/// oldest is evicted first.
#[derive(Debug)]
struct Chunk {
    origin: RegionId,
    /// The seq of its last write.
    last: u64,
    writes: usize,
    bytes: usize,
}

/// Per origin, the last writes of its log, with consecutive seqs up to the
/// log's end; bounded in writes and in (encoded) bytes over all origins.
#[derive(Debug)]
pub(crate) struct TailCache {
    max_writes: usize,
    max_bytes: usize,
    origins: BTreeMap<RegionId, VecDeque<TaggedWrite>>,
    order: VecDeque<Chunk>,
    writes: usize,
    bytes: usize,
}

impl TailCache {
    /// An empty cache holding at most `max_writes` writes and about
    /// `max_bytes` bytes of their encoding (either 0: nothing is cached).
    pub(crate) fn new(max_writes: usize, max_bytes: usize) -> Self {
        Self {
            max_writes,
            max_bytes,
            origins: BTreeMap::new(),
            order: VecDeque::new(),
            writes: 0,
            bytes: 0,
        }
    }

    /// Adds writes just appended to `origin`'s log (consecutive seqs that
    /// continue it; `bytes` is about their encoded size), then evicts the
    /// oldest appends past the bounds.
    pub(crate) fn push(&mut self, origin: RegionId, writes: Vec<TaggedWrite>, bytes: usize) {
        let (Some(first), Some(last)) = (writes.first(), writes.last()) else {
            return;
        };
        let (first, last) = (first.seq, last.seq);
        if self.max_writes == 0 || self.max_bytes == 0 {
            return;
        }
        let held = self.origins.entry(origin).or_default();
        if held
            .back()
            .is_some_and(|w| w.seq.checked_add(1) != Some(first))
        {
            // Not a continuation (the log was emptied and started again):
            // what is held is no longer the log's tail.
            self.clear(origin);
        }
        let count = writes.len();
        self.origins.entry(origin).or_default().extend(writes);
        self.order.push_back(Chunk {
            origin,
            last,
            writes: count,
            bytes,
        });
        self.writes += count;
        self.bytes += bytes;
        while self.writes > self.max_writes || self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.writes = self.writes.saturating_sub(oldest.writes);
            self.bytes = self.bytes.saturating_sub(oldest.bytes);
            if let Some(held) = self.origins.get_mut(&oldest.origin) {
                while held.front().is_some_and(|w| w.seq <= oldest.last) {
                    held.pop_front();
                }
                if held.is_empty() {
                    self.origins.remove(&oldest.origin);
                }
            }
        }
    }

    /// The first and last seq held of `origin`.
    pub(crate) fn range(&self, origin: RegionId) -> Option<(u64, u64)> {
        let held = self.origins.get(&origin)?;
        Some((held.front()?.seq, held.back()?.seq))
    }

    /// Appends to `out` up to `limit` writes of `origin` from seq `from`,
    /// which must be held; returns how many.
    pub(crate) fn read(
        &self,
        origin: RegionId,
        from: u64,
        limit: usize,
        out: &mut Vec<TaggedWrite>,
    ) -> usize {
        let Some(held) = self.origins.get(&origin) else {
            return 0;
        };
        let Some(start) = held
            .front()
            .and_then(|w| from.checked_sub(w.seq))
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < held.len())
        else {
            return 0;
        };
        let n = limit.min(held.len() - start);
        out.extend(held.range(start..start + n).cloned());
        n
    }

    /// Forgets `origin`'s writes below seq `first` (its log was trimmed).
    pub(crate) fn trim_below(&mut self, origin: RegionId, first: u64) {
        if let Some(held) = self.origins.get_mut(&origin) {
            while held.front().is_some_and(|w| w.seq < first) {
                held.pop_front();
            }
            if held.is_empty() {
                self.origins.remove(&origin);
            }
        }
    }

    /// Forgets every write of `origin`.
    pub(crate) fn clear(&mut self, origin: RegionId) {
        self.origins.remove(&origin);
        self.order.retain(|c| c.origin != origin);
        self.writes = self.order.iter().map(|c| c.writes).sum();
        self.bytes = self.order.iter().map(|c| c.bytes).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::storage_conformance::sample_batch;

    const A: RegionId = RegionId::new(1);
    const B: RegionId = RegionId::new(2);

    fn read(cache: &TailCache, origin: RegionId, from: u64, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        cache.read(origin, from, limit, &mut out);
        out.iter().map(|w| w.seq).collect()
    }

    #[test]
    fn reads_what_was_pushed_from_any_seq() {
        let mut cache = TailCache::new(100, 1 << 20);
        cache.push(A, sample_batch(A, 5..=9).writes, 50);
        cache.push(A, sample_batch(A, 10..=12).writes, 30);
        cache.push(B, sample_batch(B, 1..=2).writes, 20);
        assert_eq!(cache.range(A), Some((5, 12)));
        assert_eq!(read(&cache, A, 5, 100), (5..=12).collect::<Vec<_>>());
        assert_eq!(read(&cache, A, 8, 3), vec![8, 9, 10]);
        assert_eq!(read(&cache, A, 4, 3), Vec::<u64>::new());
        assert_eq!(read(&cache, A, 13, 3), Vec::<u64>::new());
        assert_eq!(read(&cache, B, 2, 3), vec![2]);
        let mut out = Vec::new();
        cache.read(A, 6, 2, &mut out);
        assert_eq!(out, sample_batch(A, 6..=7).writes);
    }

    #[test]
    fn the_oldest_appends_go_first_past_either_bound() {
        let mut cache = TailCache::new(6, 1 << 20);
        cache.push(A, sample_batch(A, 1..=3).writes, 1);
        cache.push(B, sample_batch(B, 1..=2).writes, 1);
        cache.push(A, sample_batch(A, 4..=5).writes, 1);
        // 7 writes: A's first append goes.
        assert_eq!(cache.range(A), Some((4, 5)));
        assert_eq!(cache.range(B), Some((1, 2)));

        let mut cache = TailCache::new(100, 100);
        cache.push(A, sample_batch(A, 1..=3).writes, 60);
        cache.push(A, sample_batch(A, 4..=4).writes, 60);
        assert_eq!(cache.range(A), Some((4, 4)));
        // One append larger than the bound is not kept.
        cache.push(B, sample_batch(B, 1..=1).writes, 101);
        assert_eq!(cache.range(B), None);
        assert_eq!(cache.range(A), None);
    }

    #[test]
    fn trims_and_restarts_keep_a_tail() {
        let mut cache = TailCache::new(100, 1 << 20);
        cache.push(A, sample_batch(A, 1..=5).writes, 10);
        cache.trim_below(A, 3);
        assert_eq!(cache.range(A), Some((3, 5)));
        cache.trim_below(A, 6);
        assert_eq!(cache.range(A), None);
        cache.push(A, sample_batch(A, 6..=7).writes, 10);
        // A push that does not continue the tail replaces it.
        cache.push(A, sample_batch(A, 20..=21).writes, 10);
        assert_eq!(cache.range(A), Some((20, 21)));
        cache.clear(A);
        assert_eq!(cache.range(A), None);
        assert_eq!((cache.writes, cache.bytes), (0, 0));
    }

    #[test]
    fn a_zero_bound_caches_nothing() {
        let mut cache = TailCache::new(0, 1 << 20);
        cache.push(A, sample_batch(A, 1..=5).writes, 10);
        assert_eq!(cache.range(A), None);
    }
}
