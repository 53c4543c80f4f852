//! Multi-value register on dotted version vectors.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::{CrdtError, Dot, Merge, RegionId, VersionVector};

/// One concurrent value of a [`MvRegister`], with the dot of the write that made it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sibling<V> {
    /// The write that produced this value.
    pub dot: Dot,
    /// The value.
    pub value: V,
}

/// What applying one write to a [`MvRegister`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MvApplied {
    /// The write is now a sibling; `replaced` siblings were covered by its context.
    Added {
        /// How many earlier siblings the write's context covered and so replaced.
        replaced: usize,
    },
    /// The register had already seen this write (or a later write that covered it).
    AlreadySeen,
}

/// A multi-value register: concurrent writes are all kept as siblings.
///
/// Built on dotted version vectors (as in Riak's DVV sets). The register holds
/// its siblings, each tagged with the [`Dot`] of the write that made it, and a
/// causal context: the version vector of every write it has seen. A read
/// returns the siblings and the context; a write that carries that context
/// replaces exactly the siblings the context covers and no others, so a write
/// made concurrently elsewhere survives as a sibling. Nothing is lost unless a
/// later write's context covered it.
///
/// ```
/// use concord_crdt::{Merge, MvRegister, RegionId};
/// let (eu, us) = (RegionId::new(0), RegionId::new(1));
/// let mut cart_eu = MvRegister::new();
/// let mut cart_us = MvRegister::new();
/// cart_eu.write(eu, "milk", &Default::default())?;
/// cart_us.write(us, "eggs", &Default::default())?;
/// cart_eu.merge(&cart_us)?;
/// let mut seen: Vec<_> = cart_eu.values().copied().collect();
/// seen.sort();
/// assert_eq!(seen, ["eggs", "milk"]); // both concurrent writes survive
///
/// // Writing back with the read's context replaces both siblings.
/// let ctx = cart_eu.context().clone();
/// cart_eu.write(eu, "eggs+milk", &ctx)?;
/// assert_eq!(cart_eu.values().collect::<Vec<_>>(), [&"eggs+milk"]);
/// # Ok::<(), concord_crdt::CrdtError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MvRegisterRepr<V>", into = "MvRegisterRepr<V>")]
#[serde(bound(
    serialize = "V: Serialize + Clone",
    deserialize = "V: Deserialize<'de>"
))]
pub struct MvRegister<V> {
    /// Sorted by dot, unique dots, every dot covered by `context`. One
    /// sibling (the common case) lives inline, without an allocation.
    siblings: SmallVec<[Sibling<V>; 1]>,
    context: VersionVector,
}

impl<V: fmt::Debug> fmt::Debug for MvRegister<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MvRegister")
            .field("siblings", &self.siblings)
            .field("context", &self.context)
            .finish()
    }
}

impl<V> Default for MvRegister<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// The encoded form of a [`MvRegister`], checked on decode.
#[derive(Serialize, Deserialize)]
pub struct MvRegisterRepr<V> {
    siblings: Vec<Sibling<V>>,
    context: VersionVector,
}

/// Why a decoded [`MvRegister`] was refused.
#[derive(Debug)]
pub enum InvalidMvRegister {
    /// Siblings are not strictly ascending by dot.
    Unsorted(Dot),
    /// A sibling's dot is not covered by the register's context.
    Uncovered(Dot),
}

impl fmt::Display for InvalidMvRegister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsorted(dot) => write!(f, "sibling {dot} is out of order or repeated"),
            Self::Uncovered(dot) => write!(f, "sibling {dot} is not covered by the context"),
        }
    }
}

impl<V> TryFrom<MvRegisterRepr<V>> for MvRegister<V> {
    type Error = InvalidMvRegister;

    fn try_from(repr: MvRegisterRepr<V>) -> Result<Self, Self::Error> {
        for pair in repr.siblings.windows(2) {
            if pair[0].dot >= pair[1].dot {
                return Err(InvalidMvRegister::Unsorted(pair[1].dot));
            }
        }
        if let Some(s) = repr.siblings.iter().find(|s| !repr.context.contains(s.dot)) {
            return Err(InvalidMvRegister::Uncovered(s.dot));
        }
        Ok(Self {
            siblings: SmallVec::from_vec(repr.siblings),
            context: repr.context,
        })
    }
}

impl<V> From<MvRegister<V>> for MvRegisterRepr<V> {
    fn from(reg: MvRegister<V>) -> Self {
        Self {
            siblings: reg.siblings.into_vec(),
            context: reg.context,
        }
    }
}

impl<V> MvRegister<V> {
    /// An empty register: no value, nothing seen.
    pub const fn new() -> Self {
        Self {
            siblings: SmallVec::new_const(),
            context: VersionVector::new(),
        }
    }

    /// The current siblings, ordered by dot.
    pub fn siblings(&self) -> &[Sibling<V>] {
        &self.siblings
    }

    /// The current values, ordered by the dot of the write that made them.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &V> + '_ {
        self.siblings.iter().map(|s| &s.value)
    }

    /// The causal context: every write this register has seen. Pass it back
    /// with a write to replace the siblings read with it.
    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    /// True when the register holds no value.
    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty()
    }

    /// A local write at `region`: takes the next dot of `region` and applies
    /// the write with `context` (what the writer had read).
    ///
    /// Returns the new write's dot. Only `region` itself may generate its dots.
    pub fn write(
        &mut self,
        region: RegionId,
        value: V,
        context: &VersionVector,
    ) -> Result<Dot, CrdtError> {
        let current = self.context.get(region);
        let next = current.checked_add(1).ok_or(CrdtError::Overflow {
            region,
            current,
            by: 1,
        })?;
        let dot = Dot::new(region, next);
        self.insert(dot, value, context);
        Ok(dot)
    }

    /// Applies a write made elsewhere: `dot` is its identity, `context` what
    /// its writer had read.
    ///
    /// A write already seen is [`MvApplied::AlreadySeen`] (a repeated delivery
    /// or one a later write superseded). A dot that skips an unseen earlier dot
    /// of its region is [`CrdtError::DotGap`]; the same dot with another value
    /// is [`CrdtError::DotCollision`]. On error nothing changes.
    pub fn apply(
        &mut self,
        dot: Dot,
        value: V,
        context: &VersionVector,
    ) -> Result<MvApplied, CrdtError>
    where
        V: PartialEq,
    {
        if self.context.contains(dot) {
            if let Ok(i) = self.find(dot)
                && self.siblings[i].value != value
            {
                return Err(CrdtError::DotCollision { dot });
            }
            return Ok(MvApplied::AlreadySeen);
        }
        let expected = self.context.get(dot.region).saturating_add(1);
        if dot.counter != expected
            && !context.contains(Dot::new(dot.region, dot.counter.saturating_sub(1)))
        {
            return Err(CrdtError::DotGap { dot, expected });
        }
        let replaced = self.insert(dot, value, context);
        Ok(MvApplied::Added { replaced })
    }

    fn find(&self, dot: Dot) -> Result<usize, usize> {
        self.siblings.binary_search_by(|s| s.dot.cmp(&dot))
    }

    /// Removes covered siblings, adds the new one, widens the context.
    /// Returns how many siblings were replaced.
    fn insert(&mut self, dot: Dot, value: V, context: &VersionVector) -> usize {
        let before = self.siblings.len();
        self.siblings.retain(|s| !context.contains(s.dot));
        let replaced = before - self.siblings.len();
        let at = self.find(dot).unwrap_or_else(|i| i);
        self.siblings.insert(at, Sibling { dot, value });
        // Widening with a context cannot fail: max never overflows.
        let _ = self.context.merge(context);
        self.context.apply_dot(dot);
        replaced
    }
}

impl<V: Clone + PartialEq> Merge for MvRegister<V> {
    /// Nothing to report: no sibling is dropped unless a context covers it.
    type Outcome = ();

    fn merge(&mut self, other: &Self) -> Result<(), CrdtError> {
        // First pass: check the two states agree on every shared dot.
        let (mut i, mut j) = (0, 0);
        while i < self.siblings.len() && j < other.siblings.len() {
            let (a, b) = (&self.siblings[i], &other.siblings[j]);
            match a.dot.cmp(&b.dot) {
                Ordering::Less => i += 1,
                Ordering::Greater => j += 1,
                Ordering::Equal => {
                    if a.value != b.value {
                        return Err(CrdtError::DotCollision { dot: a.dot });
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        // Keep what both hold, and what one holds that the other has not seen.
        let mut merged: SmallVec<[Sibling<V>; 1]> =
            SmallVec::with_capacity(self.siblings.len() + other.siblings.len());
        let mut theirs = other.siblings.iter().peekable();
        for mine in self.siblings.drain(..) {
            while let Some(t) = theirs.next_if(|t| t.dot < mine.dot) {
                if !self.context.contains(t.dot) {
                    merged.push(t.clone());
                }
            }
            if theirs.next_if(|t| t.dot == mine.dot).is_some() || !other.context.contains(mine.dot)
            {
                merged.push(mine);
            }
        }
        for t in theirs {
            if !self.context.contains(t.dot) {
                merged.push(t.clone());
            }
        }
        self.siblings = merged;
        self.context.merge(&other.context)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: u16) -> RegionId {
        RegionId::new(id)
    }

    #[test]
    fn write_with_context_replaces_only_covered_siblings() {
        let mut reg = MvRegister::new();
        reg.write(r(0), "a", &VersionVector::new()).unwrap();
        let read_ctx = reg.context().clone();
        // A concurrent write from another region, not covered by read_ctx.
        reg.apply(Dot::new(r(1), 1), "b", &VersionVector::new())
            .unwrap();
        reg.write(r(0), "c", &read_ctx).unwrap();
        let vals: Vec<_> = reg.values().copied().collect();
        assert_eq!(vals, ["c", "b"]);
    }

    #[test]
    fn apply_twice_is_already_seen() {
        let mut reg = MvRegister::new();
        let d = Dot::new(r(1), 1);
        assert_eq!(
            reg.apply(d, 5, &VersionVector::new()).unwrap(),
            MvApplied::Added { replaced: 0 }
        );
        assert_eq!(
            reg.apply(d, 5, &VersionVector::new()).unwrap(),
            MvApplied::AlreadySeen
        );
        assert!(matches!(
            reg.apply(d, 6, &VersionVector::new()),
            Err(CrdtError::DotCollision { .. })
        ));
        assert_eq!(reg.values().copied().collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn superseded_write_arriving_late_is_already_seen() {
        // Region 1 saw r0:1 and overwrote it; r0:1 then arrives late.
        let mut reg = MvRegister::new();
        let ctx = VersionVector::from_entries([(r(0), 1)]);
        reg.apply(Dot::new(r(1), 1), "new", &ctx).unwrap();
        assert_eq!(
            reg.apply(Dot::new(r(0), 1), "old", &VersionVector::new())
                .unwrap(),
            MvApplied::AlreadySeen
        );
        assert_eq!(reg.values().copied().collect::<Vec<_>>(), ["new"]);
    }

    #[test]
    fn a_gap_is_refused_and_changes_nothing() {
        let mut reg: MvRegister<u8> = MvRegister::new();
        let err = reg
            .apply(Dot::new(r(2), 3), 1, &VersionVector::new())
            .unwrap_err();
        assert!(matches!(err, CrdtError::DotGap { expected: 1, .. }));
        assert!(reg.is_empty());
        assert!(reg.context().is_empty());
    }

    #[test]
    fn merge_drops_siblings_the_other_side_overwrote() {
        let mut a = MvRegister::new();
        a.write(r(0), "v1", &VersionVector::new()).unwrap();
        let mut b = a.clone();
        let ctx = b.context().clone();
        b.write(r(1), "v2", &ctx).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.values().copied().collect::<Vec<_>>(), ["v2"]);
        assert_eq!(a, b);
    }

    #[test]
    fn merge_refuses_contradicting_states() {
        let mut a = MvRegister::new();
        a.write(r(0), 1, &VersionVector::new()).unwrap();
        let mut b = MvRegister::new();
        b.write(r(0), 2, &VersionVector::new()).unwrap();
        let before = a.clone();
        assert!(matches!(a.merge(&b), Err(CrdtError::DotCollision { .. })));
        assert_eq!(a, before);
    }

    #[test]
    fn decoding_rejects_uncovered_or_unsorted_siblings() {
        let uncovered = MvRegisterRepr {
            siblings: vec![Sibling {
                dot: Dot::new(r(0), 2),
                value: 1u8,
            }],
            context: VersionVector::from_entries([(r(0), 1)]),
        };
        let bytes = crate::codec::encode(&uncovered).unwrap();
        assert!(crate::codec::decode::<MvRegister<u8>>(&bytes).is_err());
        let unsorted = MvRegisterRepr {
            siblings: vec![
                Sibling {
                    dot: Dot::new(r(1), 1),
                    value: 1u8,
                },
                Sibling {
                    dot: Dot::new(r(0), 1),
                    value: 2u8,
                },
            ],
            context: VersionVector::from_entries([(r(0), 1), (r(1), 1)]),
        };
        let bytes = crate::codec::encode(&unsorted).unwrap();
        assert!(crate::codec::decode::<MvRegister<u8>>(&bytes).is_err());
    }
}
