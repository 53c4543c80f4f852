//! The bounded log of versions that lost under an LWW policy.

use std::collections::VecDeque;

use concord_clock::WallTime;

use crate::{EntityKey, LoserRecord, Version, WriteRef};

/// Keeps the newest losers in memory, up to a capacity. Records newer than
/// the last checkpoint are a suffix of the log, so nothing is copied twice.
#[derive(Debug)]
pub(crate) struct LoserLog {
    records: VecDeque<LoserRecord>,
    capacity: usize,
    next_id: u64,
    /// Records with an id below this are in the last checkpoint.
    checkpointed_below: u64,
    /// Records with an id at or below this are gone (evicted or purged).
    purged_through: Option<u64>,
}

impl LoserLog {
    pub(crate) fn new(capacity: usize, next_id: u64, records: Vec<LoserRecord>) -> Self {
        Self {
            records: records.into(),
            capacity: capacity.max(1),
            next_id,
            checkpointed_below: next_id,
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
        self.records.push_back(LoserRecord {
            id: self.next_id,
            entity,
            loser,
            winner,
            at,
        });
        self.next_id += 1;
        if self.records.len() > self.capacity {
            if let Some(old) = self.records.pop_front() {
                self.purged_through = Some(old.id);
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

    /// Records added and the purge point since the last checkpoint; marks them checkpointed.
    pub(crate) fn take_delta(&mut self) -> (Vec<LoserRecord>, Option<u64>) {
        let since = self.checkpointed_below;
        let start = self.records.partition_point(|r| r.id < since);
        let fresh = self.records.range(start..).cloned().collect();
        self.checkpointed_below = self.next_id;
        (fresh, self.purged_through.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Collection;
    use concord_clock::HlcTime;
    use concord_crdt::RegionId;

    fn push(log: &mut LoserLog, n: u64) -> bool {
        let w = WriteRef {
            origin: RegionId::new(1),
            seq: n,
        };
        log.push(
            EntityKey::new(Collection::new("c").unwrap(), b"k".to_vec()),
            Version {
                value: None,
                write: w,
                hlc: HlcTime::MIN,
                wall: WallTime::from_micros(i64::try_from(n).unwrap()),
            },
            w,
            WallTime::from_micros(i64::try_from(n).unwrap()),
        )
    }

    #[test]
    fn delta_holds_only_records_since_the_last_checkpoint() {
        let mut log = LoserLog::new(3, 0, Vec::new());
        push(&mut log, 1);
        push(&mut log, 2);
        let (fresh, purged) = log.take_delta();
        assert_eq!(fresh.iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(purged, None);
        assert!(!push(&mut log, 3));
        assert!(push(&mut log, 4), "over capacity evicts");
        let (fresh, purged) = log.take_delta();
        assert_eq!(fresh.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(purged, Some(0));
        assert_eq!(log.purge_before(WallTime::from_micros(4)), 2);
        assert_eq!(log.records().len(), 1);
    }
}
