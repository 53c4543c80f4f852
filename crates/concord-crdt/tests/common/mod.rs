//! Strategies and law checks shared by the property tests.
#![allow(dead_code, unreachable_pub)]

use std::fmt::Debug;

use concord_crdt::{
    GCounter, Lww, Merge, MvRegister, PnCounter, PnTotals, RegionId, Stamp, VersionVector,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// Regions used by the tests: enough for several entries, few enough to collide.
pub const REGIONS: u16 = 5;

pub fn region() -> impl Strategy<Value = RegionId> {
    (0..REGIONS).prop_map(RegionId::new)
}

pub fn version_vector() -> impl Strategy<Value = VersionVector> {
    proptest::collection::vec((region(), 0u64..6), 0..6).prop_map(VersionVector::from_entries)
}

pub fn g_counter() -> impl Strategy<Value = GCounter> {
    proptest::collection::vec((region(), 0u64..1_000), 0..6).prop_map(|entries| {
        let mut c = GCounter::new();
        for (r, t) in entries {
            c.apply_total(r, t);
        }
        c
    })
}

pub fn pn_counter() -> impl Strategy<Value = PnCounter> {
    proptest::collection::vec((region(), 0u64..1_000, 0u64..1_000), 0..6).prop_map(|entries| {
        let mut c = PnCounter::new();
        for (r, incremented, decremented) in entries {
            c.apply_totals(
                r,
                PnTotals {
                    incremented,
                    decremented,
                },
            );
        }
        c
    })
}

/// A stamp from a small universe, so equal stamps happen often.
pub fn stamp() -> impl Strategy<Value = Stamp<u64>> {
    (0u64..4, region(), 1u64..4).prop_map(|(t, r, s)| Stamp::new(t, r, s).expect("seq in range"))
}

/// The value a write with `stamp` carries: a function of the stamp, so two
/// registers with the same stamp always agree (as real writes do).
pub fn value_of(stamp: &Stamp<u64>) -> u64 {
    stamp.time() * 10_000 + u64::from(stamp.origin().get()) * 100 + stamp.seq()
}

pub fn lww() -> impl Strategy<Value = Lww<u64, u64>> {
    stamp().prop_map(|s| Lww::new(value_of(&s), s))
}

/// One step of a multi-replica history of a multi-value register.
#[derive(Clone, Debug)]
pub enum MvStep {
    /// Replica `at` writes, with everything it has seen as context.
    Write { at: Index },
    /// Replica `into` merges the state of replica `from`.
    Merge { from: Index, into: Index },
}

pub fn mv_steps() -> impl Strategy<Value = Vec<MvStep>> {
    proptest::collection::vec(
        prop_oneof![
            any::<Index>().prop_map(|at| MvStep::Write { at }),
            (any::<Index>(), any::<Index>()).prop_map(|(from, into)| MvStep::Merge { from, into }),
        ],
        0..24,
    )
}

/// A write made during an [`MvHistory`].
#[derive(Clone, Debug)]
pub struct MvWrite {
    pub dot: concord_crdt::Dot,
    pub value: u32,
    pub context: VersionVector,
}

/// Replica states reached by running steps over `REGIONS` replicas, one per region.
#[derive(Clone, Debug)]
pub struct MvHistory {
    pub replicas: Vec<MvRegister<u32>>,
    pub writes: Vec<MvWrite>,
}

pub fn run_mv_history(steps: &[MvStep]) -> MvHistory {
    let n = usize::from(REGIONS);
    let mut replicas = vec![MvRegister::new(); n];
    let mut writes = Vec::new();
    for step in steps {
        match step {
            MvStep::Write { at } => {
                let i = at.index(n);
                let context = replicas[i].context().clone();
                let value = u32::try_from(writes.len()).expect("few writes");
                let region = RegionId::new(u16::try_from(i).expect("few regions"));
                let dot = replicas[i].write(region, value, &context).expect("write");
                writes.push(MvWrite {
                    dot,
                    value,
                    context,
                });
            }
            MvStep::Merge { from, into } => {
                let (f, t) = (from.index(n), into.index(n));
                let source = replicas[f].clone();
                replicas[t]
                    .merge(&source)
                    .expect("states of one history agree");
            }
        }
    }
    MvHistory { replicas, writes }
}

/// Reachable register states: the replicas at the end of a random history.
pub fn mv_states() -> impl Strategy<Value = Vec<MvRegister<u32>>> {
    mv_steps().prop_map(|steps| run_mv_history(&steps).replicas)
}

pub fn merged<T: Merge + Clone>(a: &T, b: &T) -> T {
    let mut out = a.clone();
    out.merge(b).expect("merge of consistent states");
    out
}

/// Checks the three join laws for one triple of states.
pub fn check_laws<T: Merge + Clone + PartialEq + Debug>(
    a: &T,
    b: &T,
    c: &T,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(merged(a, b), merged(b, a), "commutative");
    prop_assert_eq!(
        merged(&merged(a, b), c),
        merged(a, &merged(b, c)),
        "associative"
    );
    prop_assert_eq!(merged(a, a), a.clone(), "idempotent");
    Ok(())
}

/// Merges `states` into a fresh `start` in the order given by `order`
/// (indices into `states`; repeats are duplicates).
pub fn deliver<T: Merge + Clone>(start: &T, states: &[T], order: &[usize]) -> T {
    let mut out = start.clone();
    for &i in order {
        out.merge(&states[i]).expect("merge of consistent states");
    }
    out
}

/// Two delivery orders of `len` states: each a shuffle of every index, plus duplicates.
pub fn two_orders(len: usize) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    let one = move || {
        (
            Just((0..len).collect::<Vec<_>>()).prop_shuffle(),
            proptest::collection::vec(any::<Index>(), 0..4),
        )
            .prop_map(move |(mut order, dups)| {
                if len > 0 {
                    for d in dups {
                        let at = d.index(order.len() + 1);
                        order.insert(at, d.index(len));
                    }
                }
                order
            })
    };
    (one(), one())
}
