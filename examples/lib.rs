//! Shared helpers for the Concord examples: regions with skewed clocks and a
//! deterministic, scrambled exchange order.

use std::sync::Arc;

use concord_clock::{Clock, ManualClock, WallTime};
use concord_crdt::RegionId;

/// A region in an example: its id, its name and how far its clock is off.
#[derive(Clone, Debug)]
pub struct Region {
    /// The region's compact id.
    pub id: RegionId,
    /// A readable name.
    pub name: &'static str,
    /// The region's clock offset from true time, in microseconds.
    pub offset_micros: i64,
}

impl Region {
    /// A region with the given id, name and clock offset (microseconds).
    pub fn new(id: u16, name: &'static str, offset_micros: i64) -> Self {
        Self {
            id: RegionId::new(id),
            name,
            offset_micros,
        }
    }

    /// What this region's wall clock reads at `true_micros`.
    pub fn wall_at(&self, true_micros: i64) -> WallTime {
        WallTime::from_micros(true_micros.saturating_add(self.offset_micros))
    }

    /// A manual clock set to what this region reads at `true_micros`.
    pub fn clock(&self, true_micros: i64) -> Arc<dyn Clock> {
        Arc::new(ManualClock::new(self.wall_at(true_micros)))
    }
}

/// Every `(to, from)` pair of `n` replicas (to != from), scrambled by `seed`,
/// with some pairs delivered twice: the order states are exchanged in.
pub fn exchange_order(n: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|to| {
            (0..n)
                .filter(move |from| *from != to)
                .map(move |from| (to, from))
        })
        .collect();
    let dups: Vec<_> = pairs.iter().step_by(2).copied().collect();
    pairs.extend(dups);
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..pairs.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let j = usize::try_from(s % (i as u64 + 1)).unwrap_or(0);
        pairs.swap(i, j);
    }
    pairs
}

/// The README's code blocks run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_order_covers_every_pair() {
        let order = exchange_order(3, 7);
        for to in 0..3 {
            for from in 0..3 {
                if to != from {
                    assert!(order.contains(&(to, from)), "missing {to}<-{from}");
                }
            }
        }
        assert!(order.iter().all(|(to, from)| to != from));
        assert!(order.len() > 6, "some pairs are delivered twice");
    }
}
