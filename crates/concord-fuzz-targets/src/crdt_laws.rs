//! States of every merge type, checked against the join laws.
//!
//! The first byte picks the type; the rest is read with `arbitrary` into
//! three states. Counters and version vectors are any states. `Lww` states
//! are any stamps, with the value a function of the stamp (two replicas
//! never hold different values under one stamp); a second `Lww` mode lets
//! values collide to check that a collision is refused the same way in both
//! orders and changes nothing. `MvRegister` states come from a history:
//! three regions' replicas write (blind, with their context, or with part of
//! it) and merge into each other, and any three replicas' states are taken.
//!
//! What must hold, for states `a`, `b`, `c` and `⊔` the merge: `a ⊔ b = b ⊔
//! a`; `(a ⊔ b) ⊔ c = a ⊔ (b ⊔ c)`; `a ⊔ a = a`; merging a state already
//! merged changes nothing; and no merge of states from one history fails.

use std::fmt::Debug;

use arbitrary::{Arbitrary, Unstructured};
use concord_crdt::{
    Dot, GCounter, Lww, Merge, MvRegister, PnCounter, PnTotals, RegionId, Stamp, VersionVector,
};

/// The merge types, in selector order.
pub const TYPES: &[&str] = &[
    "version vector",
    "g-counter",
    "pn-counter",
    "lww",
    "lww (colliding values)",
    "mv register",
];

/// Regions the states use: few, so that states overlap.
const REGIONS: u16 = 4;

fn region(u: &mut Unstructured<'_>) -> arbitrary::Result<RegionId> {
    Ok(RegionId::new(u.int_in_range(0..=REGIONS - 1)?))
}

/// A counter value: mostly small (so states overlap), sometimes extreme.
fn count(u: &mut Unstructured<'_>) -> arbitrary::Result<u64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => u64::MAX - u64::from(u.int_in_range(0..=2u8)?),
        1 => u64::arbitrary(u)?,
        _ => u64::from(u.int_in_range(0..=6u8)?),
    })
}

/// Merges `b` into a copy of `a`.
fn join<T: Merge + Clone>(a: &T, b: &T) -> Result<T, String> {
    let mut out = a.clone();
    out.merge(b).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The join laws for `a`, `b`, `c`, whose merges must all succeed.
fn laws<T: Merge + Clone + PartialEq + Debug>(a: &T, b: &T, c: &T) {
    let ok = |r: Result<T, String>, what: &str| -> T {
        r.unwrap_or_else(|e| panic!("{what} failed: {e}\na = {a:?}\nb = {b:?}\nc = {c:?}"))
    };
    let ab = ok(join(a, b), "a ⊔ b");
    let ba = ok(join(b, a), "b ⊔ a");
    assert_eq!(ab, ba, "not commutative\na = {a:?}\nb = {b:?}");
    let ab_c = ok(join(&ab, c), "(a ⊔ b) ⊔ c");
    let bc = ok(join(b, c), "b ⊔ c");
    let a_bc = ok(join(a, &bc), "a ⊔ (b ⊔ c)");
    assert_eq!(
        ab_c, a_bc,
        "not associative\na = {a:?}\nb = {b:?}\nc = {c:?}"
    );
    let aa = ok(join(a, a), "a ⊔ a");
    assert_eq!(&aa, a, "not idempotent");
    let ab_b = ok(join(&ab, b), "(a ⊔ b) ⊔ b");
    assert_eq!(ab_b, ab, "merging an absorbed state changed the result");
    let ab_a = ok(join(&ab, a), "(a ⊔ b) ⊔ a");
    assert_eq!(ab_a, ab, "merging an absorbed state changed the result");
}

fn version_vector(u: &mut Unstructured<'_>) -> arbitrary::Result<VersionVector> {
    let n = u.int_in_range(0..=REGIONS)?;
    let mut entries = Vec::new();
    for _ in 0..n {
        entries.push((region(u)?, count(u)?));
    }
    Ok(VersionVector::from_entries(entries))
}

fn g_counter(u: &mut Unstructured<'_>) -> arbitrary::Result<GCounter> {
    let mut c = GCounter::new();
    for _ in 0..u.int_in_range(0..=REGIONS)? {
        c.apply_total(region(u)?, count(u)?);
    }
    Ok(c)
}

fn pn_counter(u: &mut Unstructured<'_>) -> arbitrary::Result<PnCounter> {
    let mut c = PnCounter::new();
    for _ in 0..u.int_in_range(0..=REGIONS)? {
        let totals = PnTotals {
            incremented: count(u)?,
            decremented: count(u)?,
        };
        c.apply_totals(region(u)?, totals);
    }
    Ok(c)
}

/// A stamp from few times, regions and seqs, so that stamps tie.
fn stamp(u: &mut Unstructured<'_>) -> arbitrary::Result<Stamp<u64>> {
    let time = u64::from(u.int_in_range(0..=3u8)?);
    let seq = u64::from(u.int_in_range(0..=3u8)?);
    Ok(Stamp::new(time, region(u)?, seq).expect("a small seq"))
}

fn lww(u: &mut Unstructured<'_>) -> arbitrary::Result<Lww<u64, u64>> {
    let s = stamp(u)?;
    let value = s.time() * 1000 + u64::from(s.origin().get()) * 100 + s.seq();
    Ok(Lww::new(value, s))
}

/// `Lww` states whose values may collide: a merge either fails in both
/// orders and leaves both sides unchanged, or the laws hold.
fn lww_colliding(u: &mut Unstructured<'_>) {
    let Ok(states) = (0..3)
        .map(|_| Ok(Lww::new(u64::from(u.int_in_range(0..=1u8)?), stamp(u)?)))
        .collect::<arbitrary::Result<Vec<Lww<u64, u64>>>>()
    else {
        return;
    };
    let collide =
        |x: &Lww<u64, u64>, y: &Lww<u64, u64>| x.stamp() == y.stamp() && x.value() != y.value();
    for x in &states {
        for y in &states {
            let mut m = x.clone();
            let r = m.merge(y);
            assert_eq!(r.is_err(), collide(x, y), "merge {x:?} ⊔ {y:?} gave {r:?}");
            if r.is_err() {
                assert_eq!(&m, x, "a refused merge changed the state");
            }
        }
    }
    let [a, b, c] = &states[..] else {
        return;
    };
    if !collide(a, b) && !collide(b, c) && !collide(a, c) {
        laws(a, b, c);
    }
}

/// Replicas of three regions after a history of writes and merges.
fn mv_history(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<MvRegister<u32>>> {
    let mut replicas: Vec<MvRegister<u32>> = vec![MvRegister::new(); 3];
    let mut next_value = 0u32;
    let steps = u.int_in_range(0..=24u8)?;
    for _ in 0..steps {
        let r = usize::from(u.int_in_range(0..=2u8)?);
        match u.int_in_range(0..=3u8)? {
            0 => {
                let from = usize::from(u.int_in_range(0..=2u8)?);
                let other = replicas[from].clone();
                replicas[r]
                    .merge(&other)
                    .expect("replicas of one history merge");
            }
            mode => {
                let context = match mode {
                    1 => VersionVector::new(),
                    2 => replicas[r].context().clone(),
                    // Part of what the replica has seen: an older read.
                    _ => {
                        let full = replicas[r].context().clone();
                        let mut part = VersionVector::new();
                        for (region, counter) in full.iter() {
                            let keep = u.int_in_range(0..=counter.min(4))?;
                            for n in 1..=keep {
                                part.apply_dot(Dot::new(region, n));
                            }
                        }
                        part
                    }
                };
                next_value += 1;
                let region = RegionId::new(u16::try_from(r).expect("three replicas"));
                replicas[r]
                    .write(region, next_value, &context)
                    .expect("a small history writes");
            }
        }
    }
    Ok(replicas)
}

fn three<T>(
    u: &mut Unstructured<'_>,
    mut make: impl FnMut(&mut Unstructured<'_>) -> arbitrary::Result<T>,
) -> arbitrary::Result<(T, T, T)> {
    Ok((make(u)?, make(u)?, make(u)?))
}

/// The target: see the module docs.
pub fn run(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let u = &mut u;
    match usize::from(kind) % TYPES.len() {
        0 => {
            if let Ok((a, b, c)) = three(u, version_vector) {
                laws(&a, &b, &c);
            }
        }
        1 => {
            if let Ok((a, b, c)) = three(u, g_counter) {
                laws(&a, &b, &c);
            }
        }
        2 => {
            if let Ok((a, b, c)) = three(u, pn_counter) {
                laws(&a, &b, &c);
            }
        }
        3 => {
            if let Ok((a, b, c)) = three(u, lww) {
                laws(&a, &b, &c);
            }
        }
        4 => lww_colliding(u),
        _ => {
            let Ok(replicas) = mv_history(u) else {
                return;
            };
            let pick = |u: &mut Unstructured<'_>| -> usize {
                usize::from(u.int_in_range(0..=2u8).unwrap_or(0))
            };
            let (i, j, k) = (pick(u), pick(u), pick(u));
            laws(&replicas[i], &replicas[j], &replicas[k]);
        }
    }
}
