//! The state-based join every merge type implements.

use crate::CrdtError;

/// A state-based join (the least upper bound of two replicas' states).
///
/// Every implementation is commutative, associative and idempotent: replicas
/// that have merged the same states, in any order and any number of times,
/// hold equal states. The property tests of this crate check exactly that.
///
/// A merge can fail only when the two states contradict each other (the same
/// write identity with two different values); the state is then unchanged.
///
/// ```
/// use concord_crdt::{GCounter, Merge, RegionId};
/// let mut a = GCounter::new();
/// a.increment(RegionId::new(0), 2)?;
/// let mut b = GCounter::new();
/// b.increment(RegionId::new(1), 3)?;
/// a.merge(&b)?;
/// assert_eq!(a.value(), 5);
/// # Ok::<(), concord_crdt::CrdtError>(())
/// ```
pub trait Merge {
    /// What a merge reports besides the new state (for example which side lost).
    type Outcome;

    /// Joins `other` into `self`.
    fn merge(&mut self, other: &Self) -> Result<Self::Outcome, CrdtError>;
}
