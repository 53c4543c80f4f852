//! Counter that goes up and down, with per-region running totals.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CrdtError, Merge, RegionId, RegionMap};

/// One region's running totals in a [`PnCounter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnTotals {
    /// Everything the region ever added.
    pub incremented: u64,
    /// Everything the region ever subtracted.
    pub decremented: u64,
}

impl PnTotals {
    fn is_zero(&self) -> bool {
        self.incremented == 0 && self.decremented == 0
    }
}

/// A counter that can go up and down.
///
/// Each region owns an entry with two running totals: what it added and what
/// it subtracted. Merging takes the maximum of each, so a repeated or
/// reordered delivery is harmless. The value, a signed `i128`, is the sum of
/// additions minus the sum of subtractions; it cannot overflow.
///
/// ```
/// use concord_crdt::{Merge, PnCounter, RegionId};
/// let (eu, us) = (RegionId::new(0), RegionId::new(1));
/// let mut stock_eu = PnCounter::new();
/// stock_eu.increment(eu, 10)?;
/// let mut stock_us = PnCounter::new();
/// stock_us.decrement(us, 3)?;
/// stock_eu.merge(&stock_us)?;
/// assert_eq!(stock_eu.value(), 7);
/// # Ok::<(), concord_crdt::CrdtError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RegionMap<PnTotals>", into = "RegionMap<PnTotals>")]
pub struct PnCounter {
    totals: RegionMap<PnTotals>,
}

/// The error a decoder reports for a counter entry whose totals are both zero.
#[derive(Debug)]
pub struct ZeroPnTotals(RegionId);

impl fmt::Display for ZeroPnTotals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "region {} has zero totals; zero entries are omitted",
            self.0
        )
    }
}

impl TryFrom<RegionMap<PnTotals>> for PnCounter {
    type Error = ZeroPnTotals;

    fn try_from(totals: RegionMap<PnTotals>) -> Result<Self, Self::Error> {
        let zero = totals
            .iter()
            .find(|(_, t)| t.is_zero())
            .map(|(region, _)| region);
        match zero {
            Some(region) => Err(ZeroPnTotals(region)),
            None => Ok(Self { totals }),
        }
    }
}

impl From<PnCounter> for RegionMap<PnTotals> {
    fn from(c: PnCounter) -> Self {
        c.totals
    }
}

fn add(region: RegionId, slot: &mut u64, by: u64) -> Result<u64, CrdtError> {
    let next = slot.checked_add(by).ok_or(CrdtError::Overflow {
        region,
        current: *slot,
        by,
    })?;
    *slot = next;
    Ok(next)
}

impl PnCounter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self {
            totals: RegionMap::new(),
        }
    }

    /// Adds `by` at `region`; returns that region's new totals.
    pub fn increment(&mut self, region: RegionId, by: u64) -> Result<PnTotals, CrdtError> {
        if by == 0 {
            return Ok(self.totals(region));
        }
        let entry = self.totals.get_or_insert(region);
        add(region, &mut entry.incremented, by)?;
        Ok(*entry)
    }

    /// Subtracts `by` at `region`; returns that region's new totals.
    pub fn decrement(&mut self, region: RegionId, by: u64) -> Result<PnTotals, CrdtError> {
        if by == 0 {
            return Ok(self.totals(region));
        }
        let entry = self.totals.get_or_insert(region);
        add(region, &mut entry.decremented, by)?;
        Ok(*entry)
    }

    /// Adds a signed amount at `region`: positive increments, negative decrements.
    pub fn add(&mut self, region: RegionId, delta: i64) -> Result<PnTotals, CrdtError> {
        if delta >= 0 {
            self.increment(region, delta.unsigned_abs())
        } else {
            self.decrement(region, delta.unsigned_abs())
        }
    }

    /// `region`'s running totals (zeros when it never counted).
    pub fn totals(&self, region: RegionId) -> PnTotals {
        self.totals.get(region).copied().unwrap_or_default()
    }

    /// Applies running totals reported by `region`: each total becomes the
    /// larger of the two. Returns true when anything grew.
    pub fn apply_totals(&mut self, region: RegionId, totals: PnTotals) -> bool {
        if totals.is_zero() {
            return false;
        }
        let entry = self.totals.get_or_insert(region);
        let grew = totals.incremented > entry.incremented || totals.decremented > entry.decremented;
        entry.incremented = entry.incremented.max(totals.incremented);
        entry.decremented = entry.decremented.max(totals.decremented);
        grew
    }

    /// Each region's totals, ascending by region.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (RegionId, PnTotals)> + '_ {
        self.totals.iter().map(|(r, t)| (r, *t))
    }

    /// The counter's value: all additions minus all subtractions.
    pub fn value(&self) -> i128 {
        self.totals
            .iter()
            .map(|(_, t)| i128::from(t.incremented) - i128::from(t.decremented))
            .sum()
    }
}

impl Merge for PnCounter {
    /// Nothing to report: counters have no losers.
    type Outcome = ();

    /// Pointwise maximum of each region's two totals.
    fn merge(&mut self, other: &Self) -> Result<(), CrdtError> {
        self.totals.join_with(&other.totals, |mine, theirs| {
            mine.incremented = mine.incremented.max(theirs.incremented);
            mine.decremented = mine.decremented.max(theirs.decremented);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_add_and_value() {
        let r = RegionId::new(2);
        let mut c = PnCounter::new();
        c.add(r, 5).unwrap();
        c.add(r, -8).unwrap();
        c.add(r, i64::MIN).unwrap();
        assert_eq!(c.value(), 5 - 8 + i128::from(i64::MIN));
        assert_eq!(
            c.totals(r),
            PnTotals {
                incremented: 5,
                decremented: 8 + (1u64 << 63)
            }
        );
    }

    #[test]
    fn overflow_on_either_side_errors() {
        let r = RegionId::new(0);
        let mut c = PnCounter::new();
        c.increment(r, u64::MAX).unwrap();
        assert!(matches!(c.increment(r, 1), Err(CrdtError::Overflow { .. })));
        c.decrement(r, u64::MAX).unwrap();
        assert!(matches!(c.decrement(r, 1), Err(CrdtError::Overflow { .. })));
        assert_eq!(c.value(), 0);
    }

    #[test]
    fn apply_totals_is_idempotent() {
        let r = RegionId::new(1);
        let t = PnTotals {
            incremented: 4,
            decremented: 1,
        };
        let mut c = PnCounter::new();
        assert!(c.apply_totals(r, t));
        assert!(!c.apply_totals(r, t));
        assert!(!c.apply_totals(
            r,
            PnTotals {
                incremented: 2,
                decremented: 0
            }
        ));
        assert_eq!(c.value(), 3);
    }
}
