//! The bounded log of versions that lost under an LWW policy.

use std::collections::VecDeque;

use concord_clock::WallTime;

use crate::{EntityKey, LoserRecord, Version, WriteRef};

/// Keeps the newest losers in memory, up to a capacity, and what changed
/// since the last checkpoint.
#[derive(Debug)]
pub(crate) struct LoserLog {
    records: VecDeque<LoserRecord>,
    capacity: usize,
    next_id: u64,
    /// Records added since the last checkpoint.
    fresh: Vec<LoserRecord>,
    /// Records with an id at or below this are gone (evicted or purged).
    purged_through: Option<u64>,
}

impl LoserLog {
    pub(crate) fn new(capacity: usize, next_id: u64, records: Vec<LoserRecord>) -> Self {
        Self {
            records: records.into(),
            capacity: capacity.max(1),
            next_id,
            fresh: Vec::new(),
            purged_through: None,
        }
    }

    /// Records a loser; returns true when an old record had to be evicted.
    pub(crate) fn push(
        &mut self,
        entity: EntityKey,
        loser: Version,
        winner: WriteRef,
        at: WallTime,
    ) -> bool {
        let record = LoserRecord {
            id: self.next_id,
            entity,
            loser,
            winner,
            at,
        };
        self.next_id += 1;
        self.fresh.push(record.clone());
        self.records.push_back(record);
        if self.records.len() > self.capacity {
            if let Some(old) = self.records.pop_front() {
                self.purged_through = Some(old.id);
                self.fresh.retain(|r| r.id > old.id);
            }
            return true;
        }
        false
    }

    /// Drops records recorded before `before`; returns how many.
    pub(crate) fn purge_before(&mut self, before: WallTime) -> usize {
        let mut n = 0;
        while self.records.front().is_some_and(|r| r.at < before) {
            if let Some(old) = self.records.pop_front() {
                self.purged_through = Some(old.id);
                self.fresh.retain(|r| r.id > old.id);
                n += 1;
            }
        }
        n
    }

    pub(crate) fn records(&self) -> &VecDeque<LoserRecord> {
        &self.records
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// What changed since the last checkpoint, and forget it.
    pub(crate) fn take_delta(&mut self) -> (Vec<LoserRecord>, Option<u64>) {
        (std::mem::take(&mut self.fresh), self.purged_through.take())
    }
}
