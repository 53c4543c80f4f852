//! Concord's merge types against the `crdts` crate (7.3.2), side by side.
//!
//! Every workload runs once per library, on inputs built to be the same
//! logical state in both, in one criterion group named after the workload;
//! its functions are `concord` and `crdts`, so the output reads as
//! `gcounter_merge_8/concord`, `gcounter_merge_8/crdts`, and so on
//! (`vv_compare_8` adds the pair, as in `vv_compare_8/concord/ordered`, and
//! `lww_merge` has a third function, `crdts_stamp3`; see [`lww_merge`]).
//! Each group reports throughput in elements/s, one element being one
//! iteration as described on its function below.
//!
//! | group | one iteration |
//! |---|---|
//! | `gcounter_merge_8` | merge one 8-region grow-only counter into another in place |
//! | `pncounter_merge_8` | the same with 8-region up/down counters |
//! | `lww_merge` | merge a later LWW register into an earlier one (the later wins); also `crdts_stamp3` |
//! | `vv_compare_8` | causal comparison of two 8-region vectors, `concurrent` and `ordered` pairs |
//! | `vv_merge_8` | pointwise-max merge of one 8-region vector into another in place |
//! | `mvreg_write_merge_3` | one write with the read context, then a merge, 3 regions |
//!
//! Rules that keep the comparison fair:
//!
//! - A merge mutates its target, so the target is cloned in criterion's
//!   setup (`iter_batched_ref` with `BatchSize::SmallInput`), which is not
//!   timed, for both libraries alike. `crdts` merges take the other state by
//!   value, so its clone is made in the setup too; the timed routine moves it
//!   out with `std::mem::take` (free: it leaves an empty `BTreeMap` or `Vec`,
//!   or two zero words for `LWWReg<u64, _>`).
//! - Every timed routine returns `()`. Criterion keeps each routine's return
//!   value in a freshly allocated vector written during the timed loop, so a
//!   large return value (Concord's LWW outcome is 40 bytes) would be timed
//!   with page faults of that vector, which `crdts`, returning `()`, never
//!   pays. A merge's report, when there is one, is instead passed through
//!   `black_box` inside the routine, so it is still built and timed; the LWW
//!   report is used the way a caller uses it, to count losers (a counter
//!   checked after the group), which builds and times it without the store
//!   `black_box` adds to a loop of two-store merges.
//! - Concord's merges return `Result` and check for contradicting states;
//!   that check is timed. `crdts` merges are called without
//!   `validate_merge`, which is the cheaper path for `crdts`.
//! - Actors are `u16` in `crdts` and `RegionId(u16)` in Concord, so both sides
//!   key their entries by the same small integer.
//! - Before timing, each workload is run once on both sides and the results
//!   are checked to be the same logical state, so both really do the same work.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -p concord-crdt --bench vs_crdts
//! ```
//!
//! and one group alone with, for example,
//! `cargo bench -p concord-crdt --bench vs_crdts -- mvreg_write_merge_3`.

use std::time::Duration;

use concord_crdt::{
    Causality, GCounter, LwwMerge, Merge, MvRegister, PnCounter, RegionId, VersionVector,
};
use crdts::{CmRDT, CvRDT};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, black_box};

#[path = "support/lww_registers.rs"]
mod lww_registers;

use lww_registers::{LwwRegisters, lww_registers};

/// Regions (actors) of the 8-region workloads.
const REGIONS: u16 = 8;

fn region(id: u16) -> RegionId {
    RegionId::new(id)
}

/// Per-region totals of the merge target and of the merged-in state.
///
/// The source is ahead in even regions and behind in odd ones, so a merge
/// changes exactly half of the 8 entries, and both states have all 8 regions
/// (no insertion: the common steady state of a running deployment).
fn target_and_source_totals(i: u16) -> (u64, u64) {
    let mine = 1_000 + 37 * u64::from(i);
    let theirs = if i.is_multiple_of(2) {
        mine + 11
    } else {
        mine - 13
    };
    (mine, theirs)
}

fn configured() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

// ---------------------------------------------------------------- gcounter --

fn concord_gcounter(totals: impl Fn(u16) -> u64) -> GCounter {
    let mut c = GCounter::new();
    for i in 0..REGIONS {
        c.increment(region(i), totals(i))
            .expect("gcounter increment");
    }
    c
}

fn crdts_gcounter(totals: impl Fn(u16) -> u64) -> crdts::GCounter<u16> {
    let mut c = crdts::GCounter::new();
    for i in 0..REGIONS {
        c.apply(c.inc_many(i, totals(i)));
    }
    c
}

/// One iteration: merge `source` into a fresh clone of `target` (the clone is
/// setup), 8 regions on both sides, 4 of them raised by the merge.
fn gcounter_merge_8(c: &mut Criterion) {
    let target = concord_gcounter(|i| target_and_source_totals(i).0);
    let source = concord_gcounter(|i| target_and_source_totals(i).1);
    let x_target = crdts_gcounter(|i| target_and_source_totals(i).0);
    let x_source = crdts_gcounter(|i| target_and_source_totals(i).1);

    // Same result on both sides.
    let mut merged = target.clone();
    merged.merge(&source).expect("gcounter merge");
    let mut x_merged = x_target.clone();
    x_merged.merge(x_source.clone());
    assert_eq!(merged.value().to_string(), x_merged.read().to_string());

    let mut g = c.benchmark_group("gcounter_merge_8");
    g.throughput(Throughput::Elements(1));
    g.bench_function("concord", |b| {
        b.iter_batched_ref(
            || target.clone(),
            |t| {
                t.merge(black_box(&source)).expect("gcounter merge");
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("crdts", |b| {
        b.iter_batched_ref(
            || (x_target.clone(), x_source.clone()),
            |(t, s)| {
                t.merge(black_box(std::mem::take(s)));
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

// --------------------------------------------------------------- pncounter --

/// Per-region (added, subtracted) totals of the merge target and source: the
/// source is ahead on additions in even regions and on subtractions in odd
/// ones, and behind on the other total, so each region has exactly one of its
/// two totals raised by a merge.
fn pn_totals(i: u16) -> ((u64, u64), (u64, u64)) {
    let (inc_mine, inc_theirs) = target_and_source_totals(i);
    let dec_mine = 400 + 23 * u64::from(i);
    let dec_theirs = if !i.is_multiple_of(2) {
        dec_mine + 7
    } else {
        dec_mine - 5
    };
    ((inc_mine, dec_mine), (inc_theirs, dec_theirs))
}

fn concord_pncounter(totals: impl Fn(u16) -> (u64, u64)) -> PnCounter {
    let mut c = PnCounter::new();
    for i in 0..REGIONS {
        let (up, down) = totals(i);
        c.increment(region(i), up).expect("pncounter increment");
        c.decrement(region(i), down).expect("pncounter decrement");
    }
    c
}

fn crdts_pncounter(totals: impl Fn(u16) -> (u64, u64)) -> crdts::PNCounter<u16> {
    let mut c = crdts::PNCounter::new();
    for i in 0..REGIONS {
        let (up, down) = totals(i);
        c.apply(c.inc_many(i, up));
        c.apply(c.dec_many(i, down));
    }
    c
}

/// One iteration: merge `source` into a fresh clone of `target` (the clone is
/// setup); 8 regions, each with both totals non-zero; each region has one of
/// its two totals raised by the merge (half of the 16 totals change).
fn pncounter_merge_8(c: &mut Criterion) {
    let target = concord_pncounter(|i| pn_totals(i).0);
    let source = concord_pncounter(|i| pn_totals(i).1);
    let x_target = crdts_pncounter(|i| pn_totals(i).0);
    let x_source = crdts_pncounter(|i| pn_totals(i).1);

    let mut merged = target.clone();
    merged.merge(&source).expect("pncounter merge");
    let mut x_merged = x_target.clone();
    x_merged.merge(x_source.clone());
    assert_eq!(merged.value().to_string(), x_merged.read().to_string());

    let mut g = c.benchmark_group("pncounter_merge_8");
    g.throughput(Throughput::Elements(1));
    g.bench_function("concord", |b| {
        b.iter_batched_ref(
            || target.clone(),
            |t| {
                t.merge(black_box(&source)).expect("pncounter merge");
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("crdts", |b| {
        b.iter_batched_ref(
            || (x_target.clone(), x_source.clone()),
            |(t, s)| {
                t.merge(black_box(std::mem::take(s)));
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

// --------------------------------------------------------------------- lww --

/// A `crdts` marker with the same ordering information as Concord's
/// [`Stamp<u64>`](concord_crdt::Stamp): `(time, origin, seq)`, compared lexicographically.
type Stamp3 = (u64, u16, u64);

/// One iteration: merge a register written later (time 200 vs 100) into a
/// fresh clone of the earlier one (the clone is setup); the later value
/// replaces the earlier.
///
/// Concord's stamp is `(time, origin, seq)`, so equal times still have one
/// winner on every node, and its merge reports which side lost (an
/// `LwwMerge`), which the routine uses as a caller would: it counts the
/// merges whose target lost (a register add, checked after the group). `crdts` (the reference
/// `LWWReg<u64, u64>`) orders by the bare `u64` time and reports nothing. A
/// third function, `crdts_stamp3`, gives `crdts` a [`Stamp3`] marker: the same
/// ordering information as Concord's stamp. A fourth, `crdts_validated`, runs
/// `crdts`' `validate_merge` before its merge: Concord's merge always makes
/// that check (equal stamps with different values are an error), `crdts`'
/// merge alone does not.
fn lww_merge(c: &mut Criterion) {
    let LwwRegisters {
        earlier,
        later,
        x_earlier,
        x_later,
    } = lww_registers();
    let x3_earlier: crdts::LWWReg<u64, Stamp3> = crdts::LWWReg {
        val: 1,
        marker: (100, 0, 1),
    };
    let x3_later: crdts::LWWReg<u64, Stamp3> = crdts::LWWReg {
        val: 2,
        marker: (200, 1, 1),
    };

    // `lww_registers` checked Concord's and `crdts`' merges; the later
    // value wins under the three-part marker too.
    let mut x3_merged = x3_earlier.clone();
    x3_merged.merge(x3_later.clone());
    assert_eq!(*later.value(), x3_merged.val);

    let mut g = c.benchmark_group("lww_merge");
    g.throughput(Throughput::Elements(1));
    let mut replaced = 0u64;
    g.bench_function("concord", |b| {
        b.iter_batched_ref(
            || earlier.clone(),
            |t| {
                let report = t.merge(black_box(&later)).expect("lww merge");
                replaced += u64::from(report == LwwMerge::Replaced);
            },
            BatchSize::SmallInput,
        );
    });
    assert!(black_box(replaced) > 0, "the merges reported their losers");
    g.bench_function("crdts", |b| {
        b.iter_batched_ref(
            || (x_earlier.clone(), x_later.clone()),
            |(t, s)| {
                t.merge(black_box(std::mem::take(s)));
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("crdts_stamp3", |b| {
        b.iter_batched_ref(
            || (x3_earlier.clone(), x3_later.clone()),
            |(t, s)| {
                t.merge(black_box(std::mem::take(s)));
            },
            BatchSize::SmallInput,
        );
    });
    // Concord's merge refuses equal stamps with different values as it
    // merges; `crdts` does that check in `validate_merge`. This is `crdts`
    // doing the same work: validate, then merge.
    g.bench_function("crdts_validated", |b| {
        b.iter_batched_ref(
            || (x_earlier.clone(), x_later.clone()),
            |(t, s)| {
                let other = black_box(std::mem::take(s));
                t.validate_merge(&other).expect("no conflicting values");
                t.merge(other);
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

// ---------------------------------------------------------- version vector --

fn concord_vv(counts: impl Fn(u16) -> u64) -> VersionVector {
    VersionVector::from_entries((0..REGIONS).map(|i| (region(i), counts(i))))
}

fn crdts_vv(counts: impl Fn(u16) -> u64) -> crdts::VClock<u16> {
    let mut v = crdts::VClock::new();
    for i in 0..REGIONS {
        v.apply(crdts::Dot::new(i, counts(i)));
    }
    v
}

/// The base counts of the compared vectors.
fn base_count(i: u16) -> u64 {
    100 + u64::from(i)
}

/// A concurrent pair: equal except the right one is ahead in region 2 and
/// the left one in region 6, so neither dominates.
fn concurrent_pair(i: u16) -> (u64, u64) {
    let n = base_count(i);
    match i {
        2 => (n, n + 5),
        6 => (n + 3, n),
        _ => (n, n),
    }
}

/// An ordered pair: the left one is ahead in regions 3 and 7, equal elsewhere,
/// so it dominates (every entry must be looked at to know that).
fn ordered_pair(i: u16) -> (u64, u64) {
    let n = base_count(i);
    match i {
        3 => (n + 1, n),
        7 => (n + 2, n),
        _ => (n, n),
    }
}

/// One iteration: one causal comparison of two 8-region vectors, the inputs
/// passed through `black_box`. Measured separately for the concurrent pair
/// (`<lib>/concurrent`) and the ordered pair (`<lib>/ordered`).
fn vv_compare_8(c: &mut Criterion) {
    let mut g = c.benchmark_group("vv_compare_8");
    g.throughput(Throughput::Elements(1));
    type Pair = fn(u16) -> (u64, u64);
    let cases: [(&str, Pair, Causality, Option<std::cmp::Ordering>); 2] = [
        ("concurrent", concurrent_pair, Causality::Concurrent, None),
        (
            "ordered",
            ordered_pair,
            Causality::After,
            Some(std::cmp::Ordering::Greater),
        ),
    ];
    for (name, pair, expected, x_expected) in cases {
        let (left, right) = (concord_vv(|i| pair(i).0), concord_vv(|i| pair(i).1));
        let (x_left, x_right) = (crdts_vv(|i| pair(i).0), crdts_vv(|i| pair(i).1));
        assert_eq!(left.compare(&right), expected);
        assert_eq!(x_left.partial_cmp(&x_right), x_expected);

        g.bench_function(BenchmarkId::new("concord", name), |b| {
            b.iter(|| black_box(&left).compare(black_box(&right)));
        });
        g.bench_function(BenchmarkId::new("crdts", name), |b| {
            b.iter(|| black_box(&x_left).partial_cmp(black_box(&x_right)));
        });
    }
    g.finish();
}

/// One iteration: merge (pointwise max) an 8-region vector into a fresh clone
/// of another (the clone is setup); 4 of the 8 entries are raised.
fn vv_merge_8(c: &mut Criterion) {
    let target = concord_vv(|i| target_and_source_totals(i).0);
    let source = concord_vv(|i| target_and_source_totals(i).1);
    let x_target = crdts_vv(|i| target_and_source_totals(i).0);
    let x_source = crdts_vv(|i| target_and_source_totals(i).1);

    let mut merged = target.clone();
    assert!(merged.merge(&source).expect("vv merge"));
    let mut x_merged = x_target.clone();
    x_merged.merge(x_source.clone());
    let x_entries: Vec<(u16, u64)> = x_merged.dots.iter().map(|(a, n)| (*a, *n)).collect();
    let entries: Vec<(u16, u64)> = merged.iter().map(|(r, n)| (r.get(), n)).collect();
    assert_eq!(entries, x_entries);

    let mut g = c.benchmark_group("vv_merge_8");
    g.throughput(Throughput::Elements(1));
    g.bench_function("concord", |b| {
        b.iter_batched_ref(
            || target.clone(),
            |t| {
                black_box(t.merge(black_box(&source)).expect("vv merge"));
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("crdts", |b| {
        b.iter_batched_ref(
            || (x_target.clone(), x_source.clone()),
            |(t, s)| {
                t.merge(black_box(std::mem::take(s)));
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

// ----------------------------------------------------------------- mvreg --

/// The value written by replica A in every iteration.
const A_WRITE: u64 = 40;

/// Concord's prior state and replica B for the MV-register workload.
///
/// Prior state `S`: regions 0, 1 and 2 each wrote once with an empty context
/// (values 10, 11, 12) and the writes were merged, so `S` holds 3 concurrent
/// siblings (dots r0:1, r1:1, r2:1). Replica B read `S` and wrote 30 at
/// region 1 with that context: B holds the single sibling r1:2.
fn concord_mvreg_states() -> (MvRegister<u64>, MvRegister<u64>) {
    let none = VersionVector::new();
    let mut prior = MvRegister::new();
    prior.write(region(0), 10, &none).expect("mv write");
    for (id, value) in [(1, 11), (2, 12)] {
        let mut other = MvRegister::new();
        other.write(region(id), value, &none).expect("mv write");
        prior.merge(&other).expect("mv merge");
    }
    assert_eq!(prior.siblings().len(), 3);
    let mut b = prior.clone();
    let read = b.context().clone();
    b.write(region(1), 30, &read).expect("mv write");
    assert_eq!(b.siblings().len(), 1);
    (prior, b)
}

/// The same two states in `crdts`: actors 0, 1, 2 wrote 10, 11, 12 with empty
/// read contexts (clocks {0:1}, {1:1}, {2:1}), merged into 3 siblings; B read
/// that and wrote 30 as actor 1 (clock {0:1, 1:2, 2:1}).
fn crdts_mvreg_states() -> (crdts::MVReg<u64, u16>, crdts::MVReg<u64, u16>) {
    let mut prior = crdts::MVReg::new();
    for (actor, value) in [(0u16, 10u64), (1, 11), (2, 12)] {
        let mut other = crdts::MVReg::new();
        let ctx = other.read_ctx().derive_add_ctx(actor);
        other.apply(other.write(value, ctx));
        prior.merge(other);
    }
    assert_eq!(prior.read().val.len(), 3);
    let mut b = prior.clone();
    let ctx = b.read_ctx().derive_add_ctx(1);
    b.apply(b.write(30, ctx));
    assert_eq!(b.read().val.len(), 1);
    (prior, b)
}

/// Concord, one iteration: replica A (a fresh clone of `S`, setup) reads its
/// causal context (a clone of it, as a client would hold it), writes
/// `A_WRITE` at region 0 with it (replacing the 3 siblings; new dot r0:2),
/// then merges B (sibling r1:2, concurrent with r0:2). A ends with 2 siblings.
fn concord_mv_iteration(a: &mut MvRegister<u64>, b: &MvRegister<u64>) {
    let read = a.context().clone();
    a.write(region(0), A_WRITE, &read).expect("mv write");
    a.merge(b).expect("mv merge");
}

/// `crdts`, the same iteration: replica A (a fresh clone of `S`, setup) takes
/// its read context, derives the add context for actor 0, writes `A_WRITE`
/// and applies the op (replacing the 3 siblings; clock {0:2, 1:1, 2:1}), then
/// merges B (clock {0:1, 1:2, 2:1}, concurrent). A ends with 2 siblings.
fn crdts_mv_iteration(a: &mut crdts::MVReg<u64, u16>, b: crdts::MVReg<u64, u16>) {
    let ctx = a.read_ctx().derive_add_ctx(0);
    let op = a.write(A_WRITE, ctx);
    a.apply(op);
    a.merge(b);
}

/// One iteration: a write with the read context, then a merge of a
/// concurrent replica, 3 regions; see the two `*_mv_iteration` functions.
fn mvreg_write_merge_3(c: &mut Criterion) {
    let (prior, b_state) = concord_mvreg_states();
    let (x_prior, x_b_state) = crdts_mvreg_states();

    let mut a = prior.clone();
    concord_mv_iteration(&mut a, &b_state);
    let mut values: Vec<u64> = a.values().copied().collect();
    values.sort_unstable();
    let mut x_a = x_prior.clone();
    crdts_mv_iteration(&mut x_a, x_b_state.clone());
    let mut x_values = x_a.read().val;
    x_values.sort_unstable();
    assert_eq!(values, [30, A_WRITE]);
    assert_eq!(values, x_values);

    let mut g = c.benchmark_group("mvreg_write_merge_3");
    g.throughput(Throughput::Elements(1));
    g.bench_function("concord", |bench| {
        bench.iter_batched_ref(
            || prior.clone(),
            |a| concord_mv_iteration(a, black_box(&b_state)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("crdts", |bench| {
        bench.iter_batched_ref(
            || (x_prior.clone(), x_b_state.clone()),
            |(a, b)| crdts_mv_iteration(a, black_box(std::mem::take(b))),
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

/// Runs every group with the modest configuration of [`configured`], after
/// applying the command line (filters, `--bench`, and so on). Written out
/// rather than with `criterion_group!`, whose generated `pub fn` would need
/// docs; it does exactly what that macro and `criterion_main!` do.
fn main() {
    let mut c = configured().configure_from_args();
    gcounter_merge_8(&mut c);
    pncounter_merge_8(&mut c);
    lww_merge(&mut c);
    vv_compare_8(&mut c);
    vv_merge_8(&mut c);
    mvreg_write_merge_3(&mut c);
    c.final_summary();
}
