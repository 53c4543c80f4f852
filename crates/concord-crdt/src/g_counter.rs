//! Grow-only counter with per-region running totals.

use serde::{Deserialize, Serialize};

use crate::{CrdtError, Merge, RegionId, RegionMap};

/// A grow-only counter: each region owns an entry holding its running total.
///
/// The value is the sum of the entries. Because an entry is a total, not a
/// delta, merging (pointwise maximum) the same state twice, or in any order,
/// gives the same result. Entries never wrap: an increment past `u64::MAX`
/// is [`CrdtError::Overflow`]; the sum is a `u128`, so it cannot overflow.
///
/// ```
/// use concord_crdt::{GCounter, Merge, RegionId};
/// let (eu, us) = (RegionId::new(0), RegionId::new(1));
/// let mut a = GCounter::new();
/// a.increment(eu, 3)?;
/// let mut b = GCounter::new();
/// b.increment(us, 4)?;
/// a.merge(&b)?;
/// a.merge(&b)?; // repeated delivery changes nothing
/// assert_eq!(a.value(), 7);
/// assert_eq!(a.total(us), 4);
/// # Ok::<(), concord_crdt::CrdtError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RegionMap<u64>", into = "RegionMap<u64>")]
pub struct GCounter {
    totals: RegionMap<u64>,
}

/// The error a decoder reports for a counter entry that is zero.
#[derive(Debug)]
pub struct ZeroTotal(RegionId);

impl std::fmt::Display for ZeroTotal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "region {} has a zero total; zero entries are omitted",
            self.0
        )
    }
}

impl TryFrom<RegionMap<u64>> for GCounter {
    type Error = ZeroTotal;

    fn try_from(totals: RegionMap<u64>) -> Result<Self, Self::Error> {
        let zero = totals
            .iter()
            .find(|(_, n)| **n == 0)
            .map(|(region, _)| region);
        match zero {
            Some(region) => Err(ZeroTotal(region)),
            None => Ok(Self { totals }),
        }
    }
}

impl From<GCounter> for RegionMap<u64> {
    fn from(c: GCounter) -> Self {
        c.totals
    }
}

impl GCounter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self {
            totals: RegionMap::new(),
        }
    }

    /// Adds `by` to `region`'s total and returns the new total.
    pub fn increment(&mut self, region: RegionId, by: u64) -> Result<u64, CrdtError> {
        if by == 0 {
            return Ok(self.total(region));
        }
        let entry = self.totals.get_or_insert(region);
        let next = entry.checked_add(by).ok_or(CrdtError::Overflow {
            region,
            current: *entry,
            by,
        })?;
        *entry = next;
        Ok(next)
    }

    /// The running total of `region` (0 when it never counted).
    pub fn total(&self, region: RegionId) -> u64 {
        self.totals.get(region).copied().unwrap_or(0)
    }

    /// Applies a running total reported by `region`: the entry becomes the
    /// larger of the two, so a stale or repeated report changes nothing.
    /// Returns true when the entry grew.
    pub fn apply_total(&mut self, region: RegionId, total: u64) -> bool {
        if total == 0 {
            return false;
        }
        let entry = self.totals.get_or_insert(region);
        if total > *entry {
            *entry = total;
            true
        } else {
            false
        }
    }

    /// Each region's total, ascending by region.
    pub fn totals(&self) -> impl ExactSizeIterator<Item = (RegionId, u64)> + '_ {
        self.totals.iter().map(|(r, n)| (r, *n))
    }

    /// The counter's value: the sum of all totals.
    pub fn value(&self) -> u128 {
        self.totals.iter().map(|(_, n)| u128::from(*n)).sum()
    }
}

impl Merge for GCounter {
    /// Nothing to report: counters have no losers.
    type Outcome = ();

    /// Pointwise maximum of the totals.
    fn merge(&mut self, other: &Self) -> Result<(), CrdtError> {
        self.totals.join_with(&other.totals, |mine, theirs| {
            if *theirs > *mine {
                *mine = *theirs;
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increment_past_max_errors_and_changes_nothing() {
        let r = RegionId::new(3);
        let mut c = GCounter::new();
        c.increment(r, u64::MAX - 1).unwrap();
        let err = c.increment(r, 2).unwrap_err();
        assert!(
            matches!(err, CrdtError::Overflow { current, by: 2, .. } if current == u64::MAX - 1)
        );
        assert_eq!(c.total(r), u64::MAX - 1);
    }

    #[test]
    fn value_of_many_max_entries_does_not_wrap() {
        let mut c = GCounter::new();
        for id in 0..4 {
            c.increment(RegionId::new(id), u64::MAX).unwrap();
        }
        assert_eq!(c.value(), 4 * u128::from(u64::MAX));
    }

    #[test]
    fn apply_total_keeps_the_larger() {
        let r = RegionId::new(1);
        let mut c = GCounter::new();
        assert!(c.apply_total(r, 5));
        assert!(!c.apply_total(r, 3));
        assert!(!c.apply_total(r, 5));
        assert_eq!(c.value(), 5);
    }

    #[test]
    fn increment_by_zero_adds_no_entry() {
        let mut c = GCounter::new();
        c.increment(RegionId::new(1), 0).unwrap();
        assert_eq!(c, GCounter::new());
    }
}
