//! Dots, version vectors and their causal comparison.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CrdtError, Merge, RegionId, RegionMap};

/// One event of one region: the `counter`-th event `region` generated.
///
/// ```
/// use concord_crdt::{Dot, RegionId};
/// let d = Dot::new(RegionId::new(2), 7);
/// assert_eq!(d.to_string(), "r2:7");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The region that generated the event.
    pub region: RegionId,
    /// The event's position among that region's events, from 1.
    pub counter: u64,
}

impl Dot {
    /// A dot for `region`'s `counter`-th event.
    pub const fn new(region: RegionId, counter: u64) -> Self {
        Self { region, counter }
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.region, self.counter)
    }
}

/// How two version vectors relate causally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Causality {
    /// The left vector happened before the right one (right dominates, not equal).
    Before,
    /// The left vector happened after the right one (left dominates, not equal).
    After,
    /// Both vectors are the same.
    Equal,
    /// Neither dominates: each has seen events the other has not.
    Concurrent,
}

/// A version vector: for each region, how many of its events have been seen.
///
/// Stored as a sorted inline vector keyed by [`RegionId`], without zero
/// entries, so equal histories have equal representations. Entries never
/// wrap: an increment past `u64::MAX` is [`CrdtError::Overflow`].
///
/// ```
/// use concord_crdt::{Causality, Merge, RegionId, VersionVector};
/// let (a, b) = (RegionId::new(0), RegionId::new(1));
/// let mut x = VersionVector::new();
/// x.increment(a)?;
/// let mut y = x.clone();
/// y.increment(b)?;
/// assert_eq!(x.compare(&y), Causality::Before);
/// x.increment(a)?;
/// assert_eq!(x.compare(&y), Causality::Concurrent);
/// x.merge(&y)?;
/// assert!(x.dominates(&y));
/// assert_eq!(x.get(a), 2);
/// # Ok::<(), concord_crdt::CrdtError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RegionMap<u64>", into = "RegionMap<u64>")]
pub struct VersionVector {
    entries: RegionMap<u64>,
}

impl fmt::Debug for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (region, n)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{region}:{n}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Display for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The error a decoder reports for a vector with a zero entry.
#[derive(Debug)]
pub struct ZeroEntry(RegionId);

impl fmt::Display for ZeroEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "region {} has a zero entry; zero entries are omitted",
            self.0
        )
    }
}

impl TryFrom<RegionMap<u64>> for VersionVector {
    type Error = ZeroEntry;

    fn try_from(entries: RegionMap<u64>) -> Result<Self, Self::Error> {
        let zero = entries
            .iter()
            .find(|(_, n)| **n == 0)
            .map(|(region, _)| region);
        match zero {
            Some(region) => Err(ZeroEntry(region)),
            None => Ok(Self { entries }),
        }
    }
}

impl From<VersionVector> for RegionMap<u64> {
    fn from(vv: VersionVector) -> Self {
        vv.entries
    }
}

impl VersionVector {
    /// The empty vector: nothing seen.
    pub const fn new() -> Self {
        Self {
            entries: RegionMap::new(),
        }
    }

    /// Builds a vector from `(region, count)` pairs; zero counts are dropped
    /// and a later pair for the same region replaces an earlier one.
    pub fn from_entries(entries: impl IntoIterator<Item = (RegionId, u64)>) -> Self {
        let mut vv = Self::new();
        for (region, n) in entries {
            if n == 0 {
                vv.entries.remove(region);
            } else {
                vv.entries.insert(region, n);
            }
        }
        vv
    }

    /// How many events of `region` have been seen (0 when none).
    pub fn get(&self, region: RegionId) -> u64 {
        self.entries.get(region).copied().unwrap_or(0)
    }

    /// Regions with a non-zero entry, ascending, with their counts.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (RegionId, u64)> + '_ {
        self.entries.iter().map(|(r, n)| (r, *n))
    }

    /// True when nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records the next event of `region` and returns its dot.
    pub fn increment(&mut self, region: RegionId) -> Result<Dot, CrdtError> {
        let entry = self.entries.get_or_insert(region);
        let next = entry.checked_add(1).ok_or(CrdtError::Overflow {
            region,
            current: *entry,
            by: 1,
        })?;
        *entry = next;
        Ok(Dot::new(region, next))
    }

    /// True when the event `dot` has been seen.
    pub fn contains(&self, dot: Dot) -> bool {
        dot.counter <= self.get(dot.region)
    }

    /// Records that every event of `dot.region` up to `dot.counter` has been seen.
    pub fn apply_dot(&mut self, dot: Dot) {
        if dot.counter == 0 {
            return;
        }
        let entry = self.entries.get_or_insert(dot.region);
        *entry = (*entry).max(dot.counter);
    }

    /// True when `self` has seen everything `other` has (`self >= other`).
    pub fn dominates(&self, other: &Self) -> bool {
        matches!(self.compare(other), Causality::After | Causality::Equal)
    }

    /// The causal relation of `self` to `other`, in one pass over both.
    pub fn compare(&self, other: &Self) -> Causality {
        let (mut left_ahead, mut right_ahead) = (false, false);
        let mut mine = self.entries.iter().peekable();
        let mut theirs = other.entries.iter().peekable();
        loop {
            match (mine.peek(), theirs.peek()) {
                (None, None) => break,
                (Some(_), None) => {
                    left_ahead = true;
                    break;
                }
                (None, Some(_)) => {
                    right_ahead = true;
                    break;
                }
                (Some((ra, na)), Some((rb, nb))) => match ra.cmp(rb) {
                    Ordering::Less => {
                        left_ahead = true;
                        mine.next();
                    }
                    Ordering::Greater => {
                        right_ahead = true;
                        theirs.next();
                    }
                    Ordering::Equal => {
                        match na.cmp(nb) {
                            Ordering::Less => right_ahead = true,
                            Ordering::Greater => left_ahead = true,
                            Ordering::Equal => {}
                        }
                        mine.next();
                        theirs.next();
                    }
                },
            }
            if left_ahead && right_ahead {
                return Causality::Concurrent;
            }
        }
        match (left_ahead, right_ahead) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (true, true) => Causality::Concurrent,
        }
    }
}

impl PartialOrd for VersionVector {
    /// The causal partial order; concurrent vectors are unordered.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.compare(other) {
            Causality::Before => Some(Ordering::Less),
            Causality::After => Some(Ordering::Greater),
            Causality::Equal => Some(Ordering::Equal),
            Causality::Concurrent => None,
        }
    }
}

impl Merge for VersionVector {
    /// Whether the merge changed `self`.
    type Outcome = bool;

    /// Pointwise maximum.
    fn merge(&mut self, other: &Self) -> Result<bool, CrdtError> {
        let mut changed = false;
        let before = self.entries.len();
        self.entries.join_with(&other.entries, |mine, theirs| {
            if *theirs > *mine {
                *mine = *theirs;
                changed = true;
            }
        });
        Ok(changed || self.entries.len() != before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(entries: &[(u16, u64)]) -> VersionVector {
        VersionVector::from_entries(entries.iter().map(|(r, n)| (RegionId::new(*r), *n)))
    }

    #[test]
    fn compare_covers_all_four_relations() {
        assert_eq!(vv(&[(1, 2)]).compare(&vv(&[(1, 2)])), Causality::Equal);
        assert_eq!(vv(&[]).compare(&vv(&[])), Causality::Equal);
        assert_eq!(vv(&[(1, 1)]).compare(&vv(&[(1, 2)])), Causality::Before);
        assert_eq!(
            vv(&[(1, 2)]).compare(&vv(&[(1, 2), (3, 1)])),
            Causality::Before
        );
        assert_eq!(
            vv(&[(1, 2), (2, 1)]).compare(&vv(&[(2, 1)])),
            Causality::After
        );
        assert_eq!(vv(&[(1, 2)]).compare(&vv(&[(2, 1)])), Causality::Concurrent);
        assert_eq!(
            vv(&[(1, 3), (2, 1)]).compare(&vv(&[(1, 2), (2, 2)])),
            Causality::Concurrent
        );
    }

    #[test]
    fn zero_entries_are_not_stored() {
        assert_eq!(vv(&[(1, 0), (2, 3)]), vv(&[(2, 3)]));
        assert_eq!(vv(&[(1, 0)]).iter().len(), 0);
    }

    #[test]
    fn increment_at_max_is_an_overflow_error_and_changes_nothing() {
        let mut x = vv(&[(4, u64::MAX)]);
        let err = x.increment(RegionId::new(4)).unwrap_err();
        assert!(matches!(
            err,
            CrdtError::Overflow {
                current: u64::MAX,
                by: 1,
                ..
            }
        ));
        assert_eq!(x.get(RegionId::new(4)), u64::MAX);
    }

    #[test]
    fn merge_reports_change() {
        let mut x = vv(&[(1, 2)]);
        assert!(!x.merge(&vv(&[(1, 1)])).unwrap());
        assert!(x.merge(&vv(&[(1, 1), (2, 1)])).unwrap());
        assert!(x.merge(&vv(&[(1, 5)])).unwrap());
        assert_eq!(x, vv(&[(1, 5), (2, 1)]));
    }

    #[test]
    fn contains_and_apply_dot() {
        let mut x = vv(&[(1, 2)]);
        assert!(x.contains(Dot::new(RegionId::new(1), 2)));
        assert!(!x.contains(Dot::new(RegionId::new(1), 3)));
        x.apply_dot(Dot::new(RegionId::new(1), 3));
        assert!(x.contains(Dot::new(RegionId::new(1), 3)));
        x.apply_dot(Dot::new(RegionId::new(1), 1));
        assert_eq!(x.get(RegionId::new(1)), 3);
    }

    #[test]
    fn decoding_rejects_zero_entries() {
        let bytes = crate::codec::encode(&vec![(RegionId::new(1), 0u64)]).unwrap();
        assert!(crate::codec::decode::<VersionVector>(&bytes).is_err());
    }
}
