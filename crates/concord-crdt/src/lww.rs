//! Last-write-wins registers over any timestamp.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CrdtError, Merge, RegionId};

/// The identity and order of one write to a [`Lww`] register.
///
/// Stamps are totally ordered by `(time, origin, seq)`: the timestamp first,
/// then the origin region, then the origin's sequence number. `(origin, seq)`
/// is unique per write, so two replicas comparing the same pair of stamps
/// always pick the same winner, even when the timestamps are equal.
///
/// In memory the origin and seq are packed into one `u64` tie-breaker
/// (origin in the top 16 bits, seq in the low 48), so a stamp with a `u64`
/// timestamp is two words and compares in two steps. Seqs therefore go up to
/// [`Stamp::MAX_SEQ`] (2^48 - 1, 281 trillion writes per region). The encoded
/// form still carries the three fields.
///
/// ```
/// use concord_crdt::{RegionId, Stamp};
/// let a = Stamp::new(10u64, RegionId::new(1), 1)?;
/// let b = Stamp::new(10u64, RegionId::new(2), 1)?;
/// assert!(a < b); // equal time: the higher region wins, on every node
/// assert_eq!((b.origin(), b.seq()), (RegionId::new(2), 1));
/// assert!(Stamp::new(10u64, RegionId::new(1), Stamp::<u64>::MAX_SEQ + 1).is_err());
/// # Ok::<(), concord_crdt::CrdtError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "StampRepr<T>", bound(deserialize = "T: Deserialize<'de>"))]
pub struct Stamp<T> {
    time: T,
    /// `origin << 48 | seq`.
    tiebreak: u64,
}

/// The encoded form of a [`Stamp`]: its three fields.
#[derive(Serialize, Deserialize)]
pub struct StampRepr<T> {
    time: T,
    origin: RegionId,
    seq: u64,
}

impl<T> TryFrom<StampRepr<T>> for Stamp<T> {
    type Error = CrdtError;

    fn try_from(r: StampRepr<T>) -> Result<Self, CrdtError> {
        Self::new(r.time, r.origin, r.seq)
    }
}

impl<T: Serialize> Serialize for Stamp<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StampRepr {
            time: &self.time,
            origin: self.origin(),
            seq: self.seq(),
        }
        .serialize(serializer)
    }
}

impl<T: fmt::Debug> fmt::Debug for Stamp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stamp")
            .field("time", &self.time)
            .field("origin", &self.origin())
            .field("seq", &self.seq())
            .finish()
    }
}

impl<T> Stamp<T> {
    /// The largest seq a stamp can carry.
    pub const MAX_SEQ: u64 = (1 << 48) - 1;

    /// A stamp for the write `seq` of `origin` at `time`; a seq above
    /// [`Stamp::MAX_SEQ`] is [`CrdtError::SeqOutOfRange`].
    pub fn new(time: T, origin: RegionId, seq: u64) -> Result<Self, CrdtError> {
        if seq > Self::MAX_SEQ {
            return Err(CrdtError::SeqOutOfRange {
                seq,
                max: Self::MAX_SEQ,
            });
        }
        Ok(Self {
            time,
            tiebreak: (u64::from(origin.get()) << 48) | seq,
        })
    }

    /// When the write happened, by the register's clock (wall or HLC).
    pub fn time(&self) -> &T {
        &self.time
    }

    /// The region that accepted the write.
    pub fn origin(&self) -> RegionId {
        // The top 16 bits hold the origin exactly.
        RegionId::new((self.tiebreak >> 48) as u16)
    }

    /// The origin's sequence number for the write.
    pub fn seq(&self) -> u64 {
        self.tiebreak & Self::MAX_SEQ
    }
}

/// A last-write-wins register with timestamps of type `T`.
///
/// `T` is any totally ordered timestamp: a wall clock (`concord_clock::WallTime`)
/// or a hybrid logical clock (`concord_clock::HlcTime`). The register keeps the
/// value with the greatest [`Stamp`]. Nothing is lost silently: a merge
/// reports which side lost ([`LwwMerge`]), and [`Lww::set`] hands back the
/// overwritten value, so the caller can log and count it.
///
/// ```
/// use concord_crdt::{Lww, LwwMerge, LwwOutcome, Merge, RegionId, Stamp};
/// let (eu, us) = (RegionId::new(0), RegionId::new(1));
/// let mut here = Lww::new("blue", Stamp::new(100u64, eu, 1)?);
/// let there = Lww::new("green", Stamp::new(105u64, us, 1)?);
/// assert_eq!(here.clone().merge(&there)?, LwwMerge::Replaced);
/// match here.set("green", *there.stamp())? {
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

/// Which side of a [`Lww`] merge lost.
///
/// A merge of states reports the side; [`Lww::set`] hands back the losing
/// value itself, for a caller that logs losers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LwwMerge {
    /// Both sides were the same write; nothing changed.
    Same,
    /// `self` won; the other side (which the caller still holds) lost.
    KeptOurs,
    /// The other side won; the previous content of `self` lost.
    Replaced,
}

/// What [`Lww::set`] did, with the losing value when one was overwritten.
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

    /// Offers a write whose value is written into the current one: if
    /// `stamp` is greater than the register's, the stamp becomes `stamp`,
    /// `update` rewrites the value in place (so it can reuse the value's
    /// storage, as `Vec::clone_from` does), and the result is true. Otherwise
    /// nothing changes and the result is false: an equal or older stamp is
    /// for [`Lww::set`] to decide.
    ///
    /// Nothing is handed back, so this is for a caller that knows the
    /// current value need not be kept (e.g. it is superseded).
    ///
    /// ```
    /// use concord_crdt::{Lww, RegionId, Stamp};
    /// let r = RegionId::new(0);
    /// let mut reg = Lww::new(vec![1u8, 2, 3], Stamp::new(10u64, r, 1)?);
    /// assert!(reg.set_with(Stamp::new(11u64, r, 2)?, |v| v.clone_from(&vec![4, 5])));
    /// assert_eq!((reg.value(), reg.stamp().seq()), (&vec![4, 5], 2));
    /// assert!(!reg.set_with(Stamp::new(9u64, r, 3)?, |v| v.clear()));
    /// assert_eq!(reg.value(), &vec![4, 5]);
    /// # Ok::<(), concord_crdt::CrdtError>(())
    /// ```
    pub fn set_with(&mut self, stamp: Stamp<T>, update: impl FnOnce(&mut V)) -> bool {
        if stamp <= self.stamp {
            return false;
        }
        self.stamp = stamp;
        update(&mut self.value);
        true
    }

    /// Offers a write; it takes effect only if its stamp is greater.
    ///
    /// When the write replaces the current value, that value is handed back
    /// in [`LwwOutcome::Replaced`], so the caller can log the loser.
    pub fn set(&mut self, value: V, stamp: Stamp<T>) -> Result<LwwOutcome<T, V>, CrdtError>
    where
        V: PartialEq,
    {
        match stamp.cmp(&self.stamp) {
            Ordering::Less => Ok(LwwOutcome::KeptOurs),
            Ordering::Equal if value == self.value => Ok(LwwOutcome::Same),
            Ordering::Equal => Err(CrdtError::StampCollision {
                origin: stamp.origin(),
                seq: stamp.seq(),
            }),
            Ordering::Greater => {
                let previous = std::mem::replace(self, Self::new(value, stamp));
                Ok(LwwOutcome::Replaced(previous))
            }
        }
    }
}

impl<T: Ord + Clone, V: Clone + PartialEq> Merge for Lww<T, V> {
    type Outcome = LwwMerge;

    /// Keeps the write with the greater [`Stamp`], as `Stamp`'s `Ord` orders
    /// them: by time, then by the `(origin, seq)` tie-breaker.
    ///
    /// Written as two flat steps rather than one `match` on `Stamp::cmp`: a
    /// `match` on a three-way result makes the compiler build the `Ordering`
    /// as a value (`seta`/`sbb`) and branch on it again, while `is_gt` and
    /// `is_lt` of one `cmp` fold into a single compare and two conditional
    /// jumps. Equal times, the rare case, are finished in `merge_same_time`,
    /// whose replacing branch is kept apart from the one here so that this
    /// one copies `other` whole (two stores for `Lww<u64, u64>`) instead of
    /// reusing the tie-breaker it loaded.
    fn merge(&mut self, other: &Self) -> Result<LwwMerge, CrdtError> {
        let by_time = other.stamp.time.cmp(&self.stamp.time);
        if by_time.is_gt() {
            self.clone_from(other);
            Ok(LwwMerge::Replaced)
        } else if by_time.is_lt() {
            Ok(LwwMerge::KeptOurs)
        } else {
            self.merge_same_time(other)
        }
    }
}

impl<T: Ord + Clone, V: Clone + PartialEq> Lww<T, V> {
    /// [`Merge::merge`] once the times are equal: the tie-breaker decides,
    /// and equal stamps must carry equal values.
    #[inline]
    fn merge_same_time(&mut self, other: &Self) -> Result<LwwMerge, CrdtError> {
        let by_tiebreak = other.stamp.tiebreak.cmp(&self.stamp.tiebreak);
        if by_tiebreak.is_gt() {
            // Both clones before any assignment, as in `clone_from`, so a
            // panicking clone leaves `self` whole. Assigning the value first
            // keeps this branch distinct from the one in `merge` (see there).
            let (value, stamp) = (other.value.clone(), other.stamp.clone());
            self.value = value;
            self.stamp = stamp;
            Ok(LwwMerge::Replaced)
        } else if by_tiebreak.is_lt() {
            Ok(LwwMerge::KeptOurs)
        } else if other.value == self.value {
            Ok(LwwMerge::Same)
        } else {
            Err(CrdtError::StampCollision {
                origin: other.stamp.origin(),
                seq: other.stamp.seq(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(t: u64, origin: u16, seq: u64) -> Stamp<u64> {
        Stamp::new(t, RegionId::new(origin), seq).unwrap()
    }

    fn lww(v: &'static str, t: u64, origin: u16, seq: u64) -> Lww<u64, &'static str> {
        Lww::new(v, stamp(t, origin, seq))
    }

    #[test]
    fn later_timestamp_wins() {
        let mut a = lww("a", 1, 0, 1);
        assert_eq!(a.merge(&lww("b", 2, 0, 2)).unwrap(), LwwMerge::Replaced);
        assert_eq!(*a.value(), "b");
        assert_eq!(a.merge(&lww("c", 1, 5, 9)).unwrap(), LwwMerge::KeptOurs);
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
        // The packed tie-breaker orders the top region above any seq of a lower one.
        assert!(stamp(7, u16::MAX, 1) > stamp(7, u16::MAX - 1, Stamp::<u64>::MAX_SEQ));
    }

    #[test]
    fn stamp_fields_survive_packing() {
        let s = stamp(9, u16::MAX, Stamp::<u64>::MAX_SEQ);
        assert_eq!(
            (*s.time(), s.origin(), s.seq()),
            (9, RegionId::new(u16::MAX), Stamp::<u64>::MAX_SEQ)
        );
        assert!(matches!(
            Stamp::new(9u64, RegionId::new(1), 1 << 48),
            Err(CrdtError::SeqOutOfRange { .. })
        ));
    }

    #[test]
    fn same_stamp_same_value_is_same_and_different_value_is_an_error() {
        let mut a = lww("x", 3, 1, 1);
        assert_eq!(a.merge(&lww("x", 3, 1, 1)).unwrap(), LwwMerge::Same);
        let err = a.merge(&lww("y", 3, 1, 1)).unwrap_err();
        assert!(matches!(err, CrdtError::StampCollision { seq: 1, .. }));
        assert_eq!(*a.value(), "x");
        assert!(a.set("y", stamp(3, 1, 1)).is_err());
    }

    #[test]
    fn merge_agrees_with_the_stamp_order_on_every_pair() {
        let stamps: Vec<Stamp<u64>> = [0, 1, u64::MAX]
            .into_iter()
            .flat_map(|t| {
                [(0, 0), (0, 1), (1, 0), (u16::MAX, Stamp::<u64>::MAX_SEQ)]
                    .map(|(o, q)| stamp(t, o, q))
            })
            .collect();
        for (i, a) in stamps.iter().enumerate() {
            for (j, b) in stamps.iter().enumerate() {
                let (ours, theirs) = (Lww::new(i, *a), Lww::new(j, *b));
                let mut merged = ours.clone();
                let outcome = merged.merge(&theirs).unwrap();
                let (expected, winner) = match b.cmp(a) {
                    Ordering::Less => (LwwMerge::KeptOurs, &ours),
                    Ordering::Equal => (LwwMerge::Same, &ours),
                    Ordering::Greater => (LwwMerge::Replaced, &theirs),
                };
                assert_eq!((outcome, &merged), (expected, winner), "{a:?} <- {b:?}");
                // Same stamp, other value: refused, and nothing changes.
                let mut kept = ours.clone();
                let forged = Lww::new(i + 100, *a);
                assert!(matches!(
                    kept.merge(&forged),
                    Err(CrdtError::StampCollision { origin, seq })
                        if (origin, seq) == (a.origin(), a.seq())
                ));
                assert_eq!(kept, ours);
            }
        }
    }

    #[test]
    fn set_hands_back_the_loser() {
        let mut a = lww("x", 3, 1, 1);
        let out = a.set("y", stamp(4, 1, 2)).unwrap();
        assert!(out.had_loser());
        assert_eq!(out, LwwOutcome::Replaced(lww("x", 3, 1, 1)));
        assert_eq!(a.set("old", stamp(1, 1, 3)).unwrap(), LwwOutcome::KeptOurs);
        assert_eq!(a.set("y", stamp(4, 1, 2)).unwrap(), LwwOutcome::Same);
    }
}
