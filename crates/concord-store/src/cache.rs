//! The most recently appended writes, decoded, per origin: what the engine
//! reads right after a commit (to send to peers) is cloned from here rather
//! than read back from the log files and decoded.

use std::collections::{BTreeMap, VecDeque};

use concord_core::TaggedWrite;
use concord_crdt::RegionId;

/// The writes of one append of one origin (consecutive seqs, never empty),
/// kept as the append gave them: caching them moves no write.
#[derive(Debug)]
struct Chunk {
    writes: Vec<TaggedWrite>,
    /// About how much memory they take.
    bytes: usize,
    /// When it was pushed: chunks of all origins are evicted oldest first.
    age: u64,
}

impl Chunk {
    fn first(&self) -> u64 {
        self.writes.first().map_or(0, |w| w.seq)
    }

    fn last(&self) -> u64 {
        self.writes.last().map_or(0, |w| w.seq)
    }
}

/// One origin's cached writes: chunks with consecutive seqs up to the end
/// of its log, of which those from `from` on are held.
#[derive(Debug, Default)]
struct Tail {
    chunks: VecDeque<Chunk>,
    /// The first seq held (writes of the first chunk below it were trimmed).
    from: u64,
}

/// Per origin, the last writes of its log, with consecutive seqs up to the
/// log's end; bounded in writes and in the memory they take over all
/// origins, the oldest appends evicted first.
#[derive(Debug)]
pub(crate) struct TailCache {
    max_writes: usize,
    max_bytes: usize,
    origins: BTreeMap<RegionId, Tail>,
    /// The age the next chunk gets.
    next_age: u64,
    writes: usize,
    bytes: usize,
}

impl TailCache {
    /// An empty cache holding at most `max_writes` writes taking about
    /// `max_bytes` bytes of memory at most (either 0: nothing is cached).
    pub(crate) fn new(max_writes: usize, max_bytes: usize) -> Self {
        Self {
            max_writes,
            max_bytes,
            origins: BTreeMap::new(),
            next_age: 0,
            writes: 0,
            bytes: 0,
        }
    }

    /// Adds writes just appended to `origin`'s log (consecutive seqs that
    /// continue it; `bytes` is about the memory they take), then evicts the
    /// oldest appends past the bounds.
    pub(crate) fn push(&mut self, origin: RegionId, writes: Vec<TaggedWrite>, bytes: usize) {
        let Some(first) = writes.first().map(|w| w.seq) else {
            return;
        };
        if self.max_writes == 0 || self.max_bytes == 0 {
            return;
        }
        let continues = self
            .origins
            .get(&origin)
            .and_then(|t| t.chunks.back())
            .is_none_or(|c| c.last().checked_add(1) == Some(first));
        if !continues {
            // The log was emptied and started again: what is held is no
            // longer its tail.
            self.clear(origin);
        }
        self.writes += writes.len();
        self.bytes += bytes;
        let tail = self.origins.entry(origin).or_insert_with(|| Tail {
            chunks: VecDeque::new(),
            from: first,
        });
        tail.chunks.push_back(Chunk {
            writes,
            bytes,
            age: self.next_age,
        });
        self.next_age += 1;
        while self.writes > self.max_writes || self.bytes > self.max_bytes {
            // The oldest chunk is the first of some origin (a few origins).
            let oldest = self
                .origins
                .iter()
                .filter_map(|(o, t)| Some((t.chunks.front()?.age, *o)))
                .min();
            let Some((_, origin)) = oldest else {
                break;
            };
            self.evict_first(origin);
        }
    }

    /// Drops `origin`'s oldest chunk.
    fn evict_first(&mut self, origin: RegionId) {
        let Some(tail) = self.origins.get_mut(&origin) else {
            return;
        };
        if let Some(chunk) = tail.chunks.pop_front() {
            self.writes = self.writes.saturating_sub(chunk.writes.len());
            self.bytes = self.bytes.saturating_sub(chunk.bytes);
            tail.from = tail.from.max(chunk.last().saturating_add(1));
        }
        if tail.chunks.is_empty() {
            self.origins.remove(&origin);
        }
    }

    /// The first and last seq held of `origin`.
    pub(crate) fn range(&self, origin: RegionId) -> Option<(u64, u64)> {
        let tail = self.origins.get(&origin)?;
        let last = tail.chunks.back()?.last();
        (tail.from <= last).then_some((tail.from, last))
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
        let Some(tail) = self.origins.get(&origin) else {
            return 0;
        };
        if from < tail.from {
            return 0;
        }
        let start = tail.chunks.partition_point(|c| c.last() < from);
        let mut got = 0;
        for chunk in tail.chunks.range(start..) {
            if got >= limit {
                break;
            }
            let skip = usize::try_from(from.saturating_sub(chunk.first())).unwrap_or(usize::MAX);
            let take = chunk.writes.get(skip..).unwrap_or_default();
            let n = take.len().min(limit - got);
            out.extend(take.iter().take(n).cloned());
            got += n;
        }
        got
    }

    /// Forgets `origin`'s writes below seq `first` (its log was trimmed).
    pub(crate) fn trim_below(&mut self, origin: RegionId, first: u64) {
        let Some(tail) = self.origins.get_mut(&origin) else {
            return;
        };
        tail.from = tail.from.max(first);
        while tail.chunks.front().is_some_and(|c| c.last() < first) {
            if let Some(chunk) = tail.chunks.pop_front() {
                self.writes = self.writes.saturating_sub(chunk.writes.len());
                self.bytes = self.bytes.saturating_sub(chunk.bytes);
            }
        }
        if tail.chunks.is_empty() {
            self.origins.remove(&origin);
        }
    }

    /// Forgets every write of `origin`.
    pub(crate) fn clear(&mut self, origin: RegionId) {
        if let Some(tail) = self.origins.remove(&origin) {
            for chunk in tail.chunks {
                self.writes = self.writes.saturating_sub(chunk.writes.len());
                self.bytes = self.bytes.saturating_sub(chunk.bytes);
            }
        }
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
        assert_eq!(read(&cache, A, 3, 10), Vec::<u64>::new());

        let mut cache = TailCache::new(100, 100);
        cache.push(A, sample_batch(A, 1..=3).writes, 60);
        cache.push(A, sample_batch(A, 4..=4).writes, 60);
        assert_eq!(cache.range(A), Some((4, 4)));
        // One append larger than the bound is not kept.
        cache.push(B, sample_batch(B, 1..=1).writes, 101);
        assert_eq!(cache.range(B), None);
        assert_eq!(cache.range(A), None);
        assert_eq!((cache.writes, cache.bytes), (0, 0));
    }

    #[test]
    fn trims_and_restarts_keep_a_tail() {
        let mut cache = TailCache::new(100, 1 << 20);
        cache.push(A, sample_batch(A, 1..=5).writes, 10);
        cache.push(A, sample_batch(A, 6..=7).writes, 10);
        cache.trim_below(A, 3);
        assert_eq!(cache.range(A), Some((3, 7)));
        assert_eq!(read(&cache, A, 2, 10), Vec::<u64>::new());
        assert_eq!(read(&cache, A, 3, 10), vec![3, 4, 5, 6, 7]);
        cache.trim_below(A, 6);
        assert_eq!(cache.range(A), Some((6, 7)));
        assert_eq!(cache.writes, 2);
        cache.trim_below(A, 8);
        assert_eq!(cache.range(A), None);
        cache.push(A, sample_batch(A, 8..=9).writes, 10);
        assert_eq!(cache.range(A), Some((8, 9)));
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
