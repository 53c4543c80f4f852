//! LWW merge, Concord against `crdts`, timed in alternating batches.
//!
//! At well under a nanosecond per merge, the criterion group `lww_merge` in
//! `vs_crdts` moves by a tenth or more from one run to the next on a shared
//! machine, because its two functions are timed seconds apart. This bench
//! times the same two workloads in alternating batches of 4,096 merges, 401
//! rounds, the order swapped every round, and prints the median time per
//! merge of each and the median of the per-round ratios, so both sides see
//! the same machine at the same moment.
//!
//! The workloads are those of `vs_crdts`' `lww_merge/concord` and
//! `lww_merge/crdts`, under the same rules: the targets (and `crdts`'
//! merged-in states, which its merge takes by value) are cloned before the
//! timer starts; Concord's merge report is used as a caller uses it, to
//! count the merges whose target lost (checked against the batch size after
//! the timer stops), so it is built and timed; `crdts` is called without
//! `validate_merge`.
//!
//! Passing the report through `black_box` instead would store it: in a loop
//! whose merges are a compare and a few stores, that one-byte store per
//! merge is the whole difference (ratio 0.99 with it, 1.05-1.19 counting).
//! A caller branches on the report or counts it; none stores it per merge.
//!
//! ```text
//! cargo bench -p concord-crdt --bench lww_ratio
//! ```
//!
//! A ratio above 1 means Concord's merge is the faster.

use std::hint::black_box;
use std::time::Instant;

use concord_crdt::{Lww, LwwMerge, Merge};
use crdts::CvRDT;

#[path = "support/lww_registers.rs"]
mod lww_registers;

use lww_registers::lww_registers;

/// Merges per timed batch.
const BATCH: usize = 4096;
/// Timed batches per side.
const ROUNDS: usize = 401;

/// The median of `values` (sorted in place).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Nanoseconds per merge over one batch of Concord merges.
fn concord_batch(earlier: &Lww<u64, u64>, later: &Lww<u64, u64>) -> f64 {
    let mut targets: Vec<_> = (0..BATCH).map(|_| earlier.clone()).collect();
    let start = Instant::now();
    let mut replaced = 0usize;
    for target in &mut targets {
        let report = target.merge(black_box(later)).expect("lww merge");
        replaced += usize::from(report == LwwMerge::Replaced);
    }
    let per_merge = start.elapsed().as_secs_f64() * 1e9 / BATCH as f64;
    assert_eq!(black_box(replaced), BATCH, "every merge reported its loser");
    assert!(targets.iter().all(|t| t == later), "the later write won");
    per_merge
}

/// Nanoseconds per merge over one batch of `crdts` merges.
fn crdts_batch(earlier: &crdts::LWWReg<u64, u64>, later: &crdts::LWWReg<u64, u64>) -> f64 {
    let mut pairs: Vec<_> = (0..BATCH)
        .map(|_| (earlier.clone(), later.clone()))
        .collect();
    let start = Instant::now();
    for (target, source) in &mut pairs {
        target.merge(black_box(std::mem::take(source)));
    }
    let per_merge = start.elapsed().as_secs_f64() * 1e9 / BATCH as f64;
    assert!(pairs.iter().all(|(t, _)| t == later), "the later write won");
    per_merge
}

fn main() {
    let r = lww_registers();

    let mut concord_ns = Vec::with_capacity(ROUNDS);
    let mut crdts_ns = Vec::with_capacity(ROUNDS);
    let mut ratios = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (ours, theirs) = if round % 2 == 0 {
            let ours = concord_batch(&r.earlier, &r.later);
            (ours, crdts_batch(&r.x_earlier, &r.x_later))
        } else {
            let theirs = crdts_batch(&r.x_earlier, &r.x_later);
            (concord_batch(&r.earlier, &r.later), theirs)
        };
        concord_ns.push(ours);
        crdts_ns.push(theirs);
        ratios.push(theirs / ours);
    }
    println!(
        "lww_merge: concord {:.3} ns, crdts {:.3} ns per merge (medians of {ROUNDS} batches of {BATCH}); \
         ratio crdts/concord, median per round: {:.3}",
        median(&mut concord_ns),
        median(&mut crdts_ns),
        median(&mut ratios)
    );
}
