//! Inventory in three regions: counters that every region may change at
//! once, and an application resolver that sums concurrent stock adjustments.
//!
//! Run: `cargo run --release -p concord-node --example inventory`
//!
//! 1. `inventory` is a `counter` collection: each region increments and
//!    decrements the same SKU concurrently, and every region converges on
//!    the exact total (nothing lost, nothing counted twice).
//! 2. `adjustments` is a `queue` collection: each region records a stock
//!    adjustment ("-2" sold here, "+5" restocked there) on the same SKU at
//!    the same moment. No rule may pick one, so the entity goes to the
//!    conflict queue. The application lists the queue over gRPC
//!    (`ListConflicts`), decides with `concord-queue`'s [`SumDeltas`] (all
//!    concurrent adjustments count), and writes the sum back
//!    (`ResolveConflict`): every region then reads the one net adjustment and
//!    closes its own item.

mod common;

use concord_core::{CollectionConfig, Policy};
use concord_node::client::Read;
use concord_queue::{Decision, Resolver, SumDeltas};

use common::{Cluster, RegionSetup, Result, check, core_item, open_items, show, text};

/// Each region's counter changes to `inventory/sku-7`, made concurrently.
const SALES: [&[i64]; 3] = [&[-3, -2, 10, -1], &[-5, -1, -4], &[-4, 6, -2, -2, 1]];

/// Each region's concurrent stock adjustment to `adjustments/sku-9`.
const ADJUSTMENTS: [&str; 3] = ["-2", "+5", "-1"];

/// The example: `Ok` when the counters and the resolution hold everywhere.
pub(crate) async fn run() -> Result {
    println!("Inventory: counters and summed adjustments in three regions.");
    let names = ["us-east", "eu-west", "ap-south"];
    let mut cluster = Cluster::start(
        names.iter().map(|n| RegionSetup::new(n)).collect(),
        &[("adjustments", CollectionConfig::new(Policy::Queue))],
    )
    .await?;

    // --- Counters -----------------------------------------------------------
    println!("1. Counters (collection `inventory`, policy counter)");
    let mut c0 = cluster.client(0);
    let token = c0.increment("inventory", b"sku-7", 100).await?;
    println!(
        "  us-east receives 100 units of sku-7 (write {}#{})",
        token.origin, token.seq
    );
    // Every region starts from the same stock: read-your-writes with the token.
    for (i, name) in names.iter().enumerate() {
        let read = cluster.clients[i]
            .get_after("inventory", b"sku-7", token)
            .await?;
        println!("  {name:<9} reads sku-7 = {}", show(&read));
    }

    println!("  now every region sells and restocks at the same time:");
    let mut tasks = Vec::new();
    for (i, deltas) in SALES.iter().enumerate() {
        let mut c = cluster.client(i);
        let deltas: Vec<i64> = deltas.to_vec();
        tasks.push(tokio::spawn(async move {
            for d in deltas {
                c.increment("inventory", b"sku-7", d).await?;
            }
            Ok::<(), concord_node::NodeError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    for (name, deltas) in names.iter().zip(SALES) {
        let shown: Vec<String> = deltas.iter().map(|d| format!("{d:+}")).collect();
        let net: i64 = deltas.iter().sum();
        println!("  {name:<9} {} (net {net:+})", shown.join(" "));
    }
    let expected = 100 + SALES.iter().flat_map(|d| d.iter()).sum::<i64>();
    let view = cluster.converged(&[("inventory", b"sku-7")]).await?;
    for (k, v) in &view {
        println!("  converged: every region reads {k} = {v}");
    }
    for (i, name) in names.iter().enumerate() {
        let read = cluster.clients[i].get("inventory", b"sku-7").await?;
        check(read == Read::Counter(expected), || {
            format!(
                "{name} reads {} for sku-7, expected {expected}",
                show(&read)
            )
        })?;
    }
    println!("  100 received, every sale and restock counted once: {expected} everywhere\n");

    // --- Summing concurrent adjustments -------------------------------------
    println!("2. Adjustments (collection `adjustments`, policy queue) resolved by summing");
    let mut tasks = Vec::new();
    for (i, delta) in ADJUSTMENTS.iter().enumerate() {
        let mut c = cluster.client(i);
        tasks.push(tokio::spawn(async move {
            c.put("adjustments", b"sku-9", delta.as_bytes()).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    for (name, delta) in names.iter().zip(ADJUSTMENTS) {
        println!("  {name:<9} records adjustment {delta} for sku-9");
    }
    let view = cluster.converged(&[("adjustments", b"sku-9")]).await?;
    for (k, v) in &view {
        println!("  every region reads {k} = {v}");
    }
    let open = open_items(&mut cluster.clients).await?;
    println!("  open conflict items per region: {open:?}");
    check(open.iter().all(|n| *n == 1), || {
        format!("expected one open item in every region, found {open:?}")
    })?;

    // The application's resolver runs in one region (us-east): resolving the
    // same item everywhere at once would make the resolutions concurrent.
    println!("  the app's resolver, at us-east, over gRPC:");
    let listed = c0
        .raw()
        .list_conflicts(concord_node::pb::ListConflictsRequest {
            collection: "adjustments".into(),
            include_closed: false,
            limit: 0,
        })
        .await?
        .into_inner();
    println!("    ListConflicts: {} open item(s)", listed.depth);
    let mut resolved = None;
    for item in &listed.items {
        let versions: Vec<String> = item
            .versions
            .iter()
            .map(|v| format!("{} from {}", common::value_of(v), v.origin))
            .collect();
        println!(
            "    item {} {}/{} ({}): {}",
            item.id,
            item.collection,
            text(&item.key),
            item.reason,
            versions.join(", ")
        );
        let decision = SumDeltas.decide(&core_item(item)?)?;
        let Decision::Resolve(sum) = decision else {
            return Err(format!("{} decided {decision:?}", SumDeltas.name()).into());
        };
        let token = c0.resolve(item.id, Some(sum.clone())).await?;
        println!(
            "    {} decides {:?}; ResolveConflict({}) is write {}#{}",
            SumDeltas.name(),
            text(&sum),
            item.id,
            token.origin,
            token.seq
        );
        resolved = Some((sum, token));
    }
    let (sum, token) = resolved.ok_or("no item to resolve")?;

    let expected_sum: i64 = ADJUSTMENTS
        .iter()
        .map(|a| a.trim_start_matches('+').parse::<i64>())
        .sum::<std::result::Result<i64, _>>()?;
    check(text(&sum) == expected_sum.to_string(), || {
        format!(
            "the resolver summed to {}, expected {expected_sum}",
            text(&sum)
        )
    })?;
    for (i, name) in names.iter().enumerate() {
        let read = cluster.clients[i]
            .get_after("adjustments", b"sku-9", token)
            .await?;
        println!("  {name:<9} reads sku-9 = {}", show(&read));
        let one = matches!(&read, Read::Siblings { versions, .. }
            if versions.len() == 1 && versions[0].value.as_deref() == Some(sum.as_slice()));
        check(one, || {
            format!("{name} reads {} after the resolution", show(&read))
        })?;
    }
    cluster.converged(&[("adjustments", b"sku-9")]).await?;
    let open = open_items(&mut cluster.clients).await?;
    println!("  open conflict items per region after the resolution: {open:?}");
    check(open.iter().all(|n| *n == 0), || {
        format!("items still open: {open:?}")
    })?;

    cluster.shutdown().await?;
    println!(
        "\nok: sku-7 = {expected} everywhere; the adjustments of sku-9 sum to {expected_sum} everywhere"
    );
    Ok(())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inventory example FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
