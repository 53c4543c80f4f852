//! Invariant: a node's durable cursor of an origin never goes backwards,
//! not even across a crash and restart.

use std::collections::BTreeMap;

use concord_crdt::RegionId;

use crate::{Invariant, Violation};

/// Remembers the highest durable cursor seen per node and origin.
#[derive(Clone, Debug, Default)]
pub struct CursorWatch {
    highest: BTreeMap<(RegionId, RegionId), u64>,
}

impl CursorWatch {
    /// A watch that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `node`'s durable cursors now; an origin whose cursor is lower
    /// than before (or gone) is a violation.
    pub fn observe(
        &mut self,
        node: RegionId,
        durable: &[(RegionId, u64)],
    ) -> Result<(), Violation> {
        for ((n, origin), highest) in self
            .highest
            .range((node, RegionId::new(0))..=(node, RegionId::new(u16::MAX)))
        {
            debug_assert_eq!(*n, node);
            let now = durable
                .iter()
                .find(|(o, _)| o == origin)
                .map_or(0, |(_, s)| *s);
            if now < *highest {
                return Err(Violation::new(
                    Invariant::CursorsMonotone,
                    format!("durable cursor of origin {origin} went back from {highest} to {now}"),
                )
                .at(node));
            }
        }
        for (origin, seq) in durable {
            let slot = self.highest.entry((node, *origin)).or_default();
            *slot = (*slot).max(*seq);
        }
        Ok(())
    }

    /// The highest durable cursor seen at `node` for `origin`.
    pub fn highest(&self, node: RegionId, origin: RegionId) -> u64 {
        self.highest.get(&(node, origin)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: u16) -> RegionId {
        RegionId::new(id)
    }

    #[test]
    fn growing_cursors_pass_and_a_step_back_is_caught() {
        let mut w = CursorWatch::new();
        w.observe(r(0), &[(r(0), 3), (r(1), 2)]).unwrap();
        w.observe(r(0), &[(r(0), 3), (r(1), 5)]).unwrap();
        w.observe(r(1), &[(r(1), 1)]).unwrap(); // other nodes are separate
        assert_eq!(w.highest(r(0), r(1)), 5);
        let err = w.observe(r(0), &[(r(0), 3), (r(1), 4)]).unwrap_err();
        assert_eq!(err.invariant, Invariant::CursorsMonotone);
        assert_eq!(err.node, Some(r(0)));
        assert!(err.detail.contains("from 5 to 4"), "{}", err.detail);
    }

    #[test]
    fn an_origin_that_disappears_went_back_to_zero() {
        let mut w = CursorWatch::new();
        w.observe(r(2), &[(r(0), 7)]).unwrap();
        let err = w.observe(r(2), &[]).unwrap_err();
        assert!(err.detail.contains("from 7 to 0"), "{}", err.detail);
    }
}
