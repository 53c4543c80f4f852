//! A tour of Concord's merge types: three regions in one process make
//! conflicting writes, exchange their states in a scrambled order with
//! duplicates, and converge.
//!
//! Run it with `cargo run --release -p concord-examples --example merge_tour`.

use std::process::ExitCode;
use std::time::Duration;

use concord_clock::{Hlc, HlcTime, SkewGuard, SkewVerdict, WallTime};
use concord_crdt::{GCounter, Lww, LwwOutcome, Merge, MvRegister, PnCounter, Stamp, VersionVector};
use concord_examples::{Region, exchange_order};

/// 2026-11-23T12:00:00Z in microseconds.
const NOON: i64 = 1_795_435_200_000_000;

fn main() -> ExitCode {
    match run() {
        Ok(true) => {
            println!("\nconverged");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("\nDIVERGED");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn run() -> Result<bool> {
    let regions = [
        Region::new(0, "eu-west", 0),
        Region::new(1, "us-east", -40_000),
        Region::new(2, "ap-south", 25_000),
    ];
    println!("Regions and their clock offsets from true time:");
    for r in &regions {
        println!(
            "  {:<9} {}  offset {:+} ms",
            r.name,
            r.id,
            r.offset_micros / 1_000
        );
    }
    let mut converged = true;
    converged &= lww_wall(&regions)?;
    converged &= lww_hlc(&regions)?;
    converged &= mv_cart(&regions)?;
    converged &= counters(&regions)?;
    skew_guard(&regions);
    Ok(converged)
}

/// Merges every state into every other in a scrambled order with duplicates;
/// returns the final states.
fn exchange<T: Merge + Clone>(states: &[T], seed: u64) -> Result<Vec<T>> {
    let mut out = states.to_vec();
    for (to, from) in exchange_order(states.len(), seed) {
        let incoming = states[from].clone();
        out[to]
            .merge(&incoming)
            .map_err(|e| format!("merge: {e:?}"))?;
    }
    Ok(out)
}

fn all_equal<T: PartialEq>(states: &[T]) -> bool {
    states.windows(2).all(|w| w[0] == w[1])
}

fn lww_wall(regions: &[Region; 3]) -> Result<bool> {
    println!("\n1. lww-wall: every region renames profile 42 within 10 ms (true time)");
    let mut states = Vec::new();
    for (i, r) in regions.iter().enumerate() {
        let true_time = NOON + i64::try_from(i)? * 5_000;
        let wall = r.wall_at(true_time);
        let name = format!("name set in {}", r.name);
        println!(
            "   {:<9} writes {:?} at its wall clock {}",
            r.name, name, wall
        );
        states.push(Lww::new(name, Stamp::new(wall, r.id, 1)?));
    }
    // Who loses, from the point of view of the first region.
    let mut here = states[0].clone();
    for other in &states[1..] {
        match here.set(other.value().clone(), *other.stamp())? {
            LwwOutcome::Replaced(loser) => {
                println!("   loser: {:?} (logged and counted)", loser.value())
            }
            LwwOutcome::KeptOurs => println!("   loser: {:?} (logged and counted)", other.value()),
            LwwOutcome::Same => {}
        }
    }
    let merged = exchange(&states, 1)?;
    println!("   winner everywhere: {:?}", merged[0].value());
    println!("   note: ap-south's clock runs 25 ms fast, so its write wins on wall time.");
    Ok(all_equal(&merged))
}

fn lww_hlc(regions: &[Region; 3]) -> Result<bool> {
    println!("\n2. lww-hlc: a causal chain of writes across regions with skewed clocks");
    let hlcs: Vec<Hlc> = regions
        .iter()
        .map(|r| Hlc::new(r.clock(NOON), Duration::from_secs(1)))
        .collect();
    // ap-south writes; us-east reads it and overwrites 1 ms later (true time).
    let first = hlcs[2].now()?;
    let first_reg = Lww::new(
        "v1 from ap-south".to_owned(),
        Stamp::new(first, regions[2].id, 1)?,
    );
    hlcs[1].update(first)?;
    let second: HlcTime = hlcs[1].now()?;
    let second_reg = Lww::new(
        "v2 from us-east (saw v1)".to_owned(),
        Stamp::new(second, regions[1].id, 1)?,
    );
    println!("   ap-south  v1 at HLC {first}");
    println!("   us-east   v2 at HLC {second}  (its wall clock is 65 ms behind ap-south's)");
    let merged = exchange(&[first_reg.clone(), second_reg.clone(), first_reg], 2)?;
    println!(
        "   winner everywhere: {:?}: the causal successor, whatever the clocks say",
        merged[0].value()
    );
    Ok(all_equal(&merged) && merged[0].value().starts_with("v2"))
}

fn mv_cart(regions: &[Region; 3]) -> Result<bool> {
    println!("\n3. mv: a shopping cart edited in two regions at once");
    let mut carts = vec![MvRegister::<Vec<&str>>::new(); 3];
    carts[0].write(regions[0].id, vec!["milk"], &VersionVector::new())?;
    carts[1].write(regions[1].id, vec!["eggs"], &VersionVector::new())?;
    let carts = exchange(&carts, 3)?;
    let siblings: Vec<_> = carts[2].values().collect();
    println!("   after exchange every region reads siblings {siblings:?}");
    // The application merges the siblings and writes back with the read context.
    let mut carts = carts;
    let ctx = carts[2].context().clone();
    let mut union: Vec<&str> = carts[2].values().flatten().copied().collect();
    union.sort_unstable();
    union.dedup();
    let dot = carts[2].write(regions[2].id, union, &ctx)?;
    println!("   ap-south writes back the union with context {ctx} (dot {dot})");
    let carts = exchange(&carts, 4)?;
    println!(
        "   every region now reads {:?}",
        carts[0].values().collect::<Vec<_>>()
    );
    Ok(all_equal(&carts) && carts[0].siblings().len() == 1)
}

fn counters(regions: &[Region; 3]) -> Result<bool> {
    println!("\n4. counter: stock of one item, sold and restocked everywhere");
    let moves: [(usize, i64); 7] = [
        (0, 100),
        (1, -3),
        (2, -4),
        (0, -10),
        (1, 20),
        (2, -1),
        (1, -2),
    ];
    let mut stock = vec![PnCounter::new(); 3];
    let mut views = vec![GCounter::new(); 3];
    for (i, delta) in moves {
        stock[i].add(regions[i].id, delta)?;
        views[i].increment(regions[i].id, 1)?;
        println!("   {:<9} {delta:+}", regions[i].name);
    }
    let stock = exchange(&stock, 5)?;
    let views = exchange(&views, 6)?;
    let exact: i64 = moves.iter().map(|(_, d)| d).sum();
    println!(
        "   every region counts {} in stock (exact sum {exact}); {} stock moves",
        stock[0].value(),
        views[0].value()
    );
    Ok(all_equal(&stock) && all_equal(&views) && stock[0].value() == i128::from(exact))
}

fn skew_guard(regions: &[Region; 3]) {
    println!("\n5. skew guard: a write stamped 10 s in the future");
    let guard = SkewGuard::new(Duration::from_millis(500));
    let local = regions[0].clock(NOON).now();
    let remote = WallTime::from_micros(local.as_micros() + 10_000_000);
    match guard.check(local, remote) {
        SkewVerdict::Acceptable => println!("   accepted"),
        SkewVerdict::BeyondMaxSkew { ahead_by, max_skew } => {
            println!(
                "   refused: {ahead_by:?} ahead, max skew {max_skew:?} (refused or queued, never applied silently)"
            )
        }
    }
}
