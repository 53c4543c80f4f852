//! Last-write-wins registers over any timestamp.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::{CrdtError, Merge, RegionId};

/// The identity and order of one write to a [`Lww`] register.
///
/// Stamps are totally ordered by `(time, origin, seq)`: the timestamp first,
/// then the origin region, then the origin's sequence number. `(origin, seq)`
/// is unique per write, so two replicas comparing the same pair of stamps
/// always pick the same winner, even when the timestamps are equal.
///
/// ```
/// use concord_crdt::{RegionId, Stamp};
/// let a = Stamp::new(10u64, RegionId::new(1), 1);
/// let b = Stamp::new(10u64, RegionId::new(2), 1);
/// assert!(a < b); // equal time: the higher region wins, on every node
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp<T> {
    /// When the write happened, by the register's clock (wall or HLC).
    pub time: T,
    /// The region that accepted the write.
    pub origin: RegionId,
    /// The origin's sequence number for the write.
    pub seq: u64,
}

impl<T> Stamp<T> {
    /// A stamp for the write `seq` of `origin` at `time`.
    pub const fn new(time: T, origin: RegionId, seq: u64) -> Self {
        Self { time, origin, seq }
    }
}

/// A last-write-wins register with timestamps of type `T`.
///
/// `T` is any totally ordered timestamp: a wall clock (`concord_clock::WallTime`)
/// or a hybrid logical clock (`concord_clock::HlcTime`). The register keeps the
/// value with the greatest [`Stamp`]. A merge never loses a value silently: it
/// reports which side lost, and hands back the overwritten value, so the caller
/// can log and count it.
///
/// ```
/// use concord_crdt::{Lww, LwwOutcome, Merge, RegionId, Stamp};
/// let (eu, us) = (RegionId::new(0), RegionId::new(1));
/// let mut here = Lww::new("blue", Stamp::new(100u64, eu, 1));
/// let there = Lww::new("green", Stamp::new(105u64, us, 1));
/// match here.merge(&there)? {
///     LwwOutcome::Replaced(loser) => assert_eq!(*loser.value(), "blue"),
///     other => panic!("expected the later write to win, got {other:?}"),
/// }
/// assert_eq!(*here.value(), "green");
/// # Ok::<(), concord_crdt::CrdtError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lww<T, V> {
    stamp: Stamp<T>,
    value: V,
}

/// What a [`Lww`] merge did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LwwOutcome<T, V> {
    /// Both sides were the same write; nothing changed.
    Same,
    /// `self` won; the other side (which the caller still holds) lost.
    KeptOurs,
    /// The other side won; this is the previous content of `self`, which lost.
    Replaced(Lww<T, V>),
}

impl<T, V> LwwOutcome<T, V> {
    /// True when one of the two sides lost (a real conflict was decided).
    pub fn had_loser(&self) -> bool {
        !matches!(self, Self::Same)
    }
}

impl<T: Ord, V> Lww<T, V> {
    /// A register holding `value`, written at `stamp`.
    pub const fn new(value: V, stamp: Stamp<T>) -> Self {
        Self { stamp, value }
    }

    /// The current value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The stamp of the current value.
    pub fn stamp(&self) -> &Stamp<T> {
        &self.stamp
    }

    /// The value and its stamp.
    pub fn into_parts(self) -> (V, Stamp<T>) {
        (self.value, self.stamp)
    }

    /// Offers a write; it takes effect only if its stamp is greater.
    ///
    /// Same report as [`Merge::merge`], without cloning the incoming value.
    pub fn set(&mut self, value: V, stamp: Stamp<T>) -> Result<LwwOutcome<T, V>, CrdtError>
    where
        V: PartialEq,
    {
        match stamp.cmp(&self.stamp) {
            Ordering::Less => Ok(LwwOutcome::KeptOurs),
            Ordering::Equal if value == self.value => Ok(LwwOutcome::Same),
            Ordering::Equal => Err(CrdtError::StampCollision {
                origin: stamp.origin,
                seq: stamp.seq,
            }),
            Ordering::Greater => {
                let previous = std::mem::replace(self, Self::new(value, stamp));
                Ok(LwwOutcome::Replaced(previous))
            }
        }
    }
}

impl<T: Ord + Clone, V: Clone + PartialEq> Merge for Lww<T, V> {
    type Outcome = LwwOutcome<T, V>;

    fn merge(&mut self, other: &Self) -> Result<Self::Outcome, CrdtError> {
        match other.stamp.cmp(&self.stamp) {
            Ordering::Less => Ok(LwwOutcome::KeptOurs),
            Ordering::Equal if other.value == self.value => Ok(LwwOutcome::Same),
            Ordering::Equal => Err(CrdtError::StampCollision {
                origin: other.stamp.origin,
                seq: other.stamp.seq,
            }),
            Ordering::Greater => Ok(LwwOutcome::Replaced(std::mem::replace(self, other.clone()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lww(v: &'static str, t: u64, origin: u16, seq: u64) -> Lww<u64, &'static str> {
        Lww::new(v, Stamp::new(t, RegionId::new(origin), seq))
    }

    #[test]
    fn later_timestamp_wins_and_loser_is_returned() {
        let mut a = lww("a", 1, 0, 1);
        let outcome = a.merge(&lww("b", 2, 0, 2)).unwrap();
        assert_eq!(outcome, LwwOutcome::Replaced(lww("a", 1, 0, 1)));
        assert_eq!(*a.value(), "b");
        assert_eq!(a.merge(&lww("c", 1, 5, 9)).unwrap(), LwwOutcome::KeptOurs);
        assert_eq!(*a.value(), "b");
    }

    #[test]
    fn equal_time_is_broken_by_origin_then_seq() {
        let mut a = lww("low-origin", 7, 1, 100);
        a.merge(&lww("high-origin", 7, 2, 1)).unwrap();
        assert_eq!(*a.value(), "high-origin");
        let mut b = lww("seq1", 7, 3, 1);
        b.merge(&lww("seq2", 7, 3, 2)).unwrap();
        assert_eq!(*b.value(), "seq2");
    }

    #[test]
    fn same_stamp_same_value_is_same_and_different_value_is_an_error() {
        let mut a = lww("x", 3, 1, 1);
        assert_eq!(a.merge(&lww("x", 3, 1, 1)).unwrap(), LwwOutcome::Same);
        let err = a.merge(&lww("y", 3, 1, 1)).unwrap_err();
        assert!(matches!(err, CrdtError::StampCollision { seq: 1, .. }));
        assert_eq!(*a.value(), "x");
        assert!(a.set("y", Stamp::new(3, RegionId::new(1), 1)).is_err());
    }

    #[test]
    fn set_reports_like_merge() {
        let mut a = lww("x", 3, 1, 1);
        let out = a.set("y", Stamp::new(4, RegionId::new(1), 2)).unwrap();
        assert!(out.had_loser());
        assert_eq!(out, LwwOutcome::Replaced(lww("x", 3, 1, 1)));
        assert_eq!(
            a.set("old", Stamp::new(1, RegionId::new(1), 3)).unwrap(),
            LwwOutcome::KeptOurs
        );
    }
}
