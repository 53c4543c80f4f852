//! An application resolver that drains the conflict queue over gRPC.
//!
//! Run: `cargo run --release -p concord-node --example resolver`
//!
//! `orders` is a `queue` collection: concurrent writes to an order are never
//! decided by a rule; each region puts the order in its conflict queue. The
//! application's resolver runs in one region (us-east), with nothing but the
//! gRPC client:
//!
//! - it subscribes with `WatchConflicts` (from position 0: every current
//!   item first, then each change as it happens);
//! - for each open item it decides: the version whose JSON `version` field
//!   is largest (`concord-queue`'s [`PickByField`]), or, when no version has
//!   that field, the newest version (largest HLC);
//! - it writes the decision with `ResolveConflict`; the resolution
//!   replicates and every region closes its own item;
//! - it stops once the queue is empty in every region and every region has
//!   applied the same writes.
//!
//! Some orders conflict before the resolver starts (it drains them), others
//! while it runs (it resolves them live).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use concord_node::client::{Client, Read};
use concord_node::pb;
use concord_queue::{Decision, PickByField, Prefer, Resolver};

use common::{Cluster, Result, check, core_item, open_items, show, text};

/// Orders and what each region writes to them: us-east, eu-west, ap-south
/// (`None`: that region does not write it).
type Orders = Vec<(&'static str, [Option<String>; 3])>;

/// An order version as the application writes it.
fn order(id: &str, status: &str, version: u32) -> String {
    format!(r#"{{"order":"{id}","status":"{status}","version":{version}}}"#)
}

/// Concurrent writes per order: what us-east, eu-west and ap-south write
/// (`None`: that region does not write it).
fn orders_before() -> Orders {
    vec![
        (
            "order-1",
            [
                Some(order("order-1", "paid", 2)),
                Some(order("order-1", "shipped", 3)),
                Some(order("order-1", "cancelled", 1)),
            ],
        ),
        (
            "order-2",
            [
                Some(order("order-2", "refunded", 5)),
                Some(order("order-2", "shipped", 4)),
                Some(order("order-2", "paid", 2)),
            ],
        ),
        (
            "order-3",
            [
                Some(order("order-3", "paid", 1)),
                Some("note: call the customer".to_owned()),
                Some(order("order-3", "packed", 2)),
            ],
        ),
        (
            "order-4",
            [
                Some("gift wrap: red".to_owned()),
                Some("gift wrap: blue".to_owned()),
                Some("gift wrap: none".to_owned()),
            ],
        ),
    ]
}

/// Orders that conflict while the resolver runs. Only eu-west and ap-south
/// write them, so that the resolver's region (us-east) sees each item once
/// both versions are there (see the note on [`resolve_one`]).
fn orders_live() -> Orders {
    vec![
        (
            "order-5",
            [
                None,
                Some(order("order-5", "delivered", 3)),
                Some(order("order-5", "returned", 4)),
            ],
        ),
        (
            "order-6",
            [
                None,
                Some(order("order-6", "paid", 2)),
                Some(order("order-6", "new", 1)),
            ],
        ),
    ]
}

/// Makes every region's writes of `orders` at the same moment (`clients`:
/// one per region, in order).
async fn write_concurrently(clients: Vec<Client>, orders: Orders) -> Result {
    let mut tasks = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let writes: Vec<(&'static str, String)> = orders
            .iter()
            .filter_map(|(key, values)| Some((*key, values[i].clone()?)))
            .collect();
        tasks.push(tokio::spawn(async move {
            for (key, value) in writes {
                c.put("orders", key.as_bytes(), value.as_bytes()).await?;
            }
            Ok::<(), concord_node::NodeError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// The application's decision for one item: a short account, and the value.
fn decide(item: &pb::ConflictItem) -> Result<(String, Option<Vec<u8>>)> {
    let pick = PickByField::new("version", Prefer::Max);
    Ok(match pick.decide(&core_item(item)?)? {
        Decision::Resolve(v) => (format!("{}: largest version", pick.name()), Some(v)),
        Decision::Delete => (format!("{}: delete", pick.name()), None),
        Decision::Skip => {
            let newest = item
                .versions
                .iter()
                .filter(|v| v.value.is_some())
                .max_by_key(|v| (v.hlc, v.write.map(|w| (w.origin, w.seq))))
                .ok_or("an item with no live version")?;
            (
                format!("no version field: the newest, from {}", newest.origin),
                newest.value.clone(),
            )
        }
    })
}

/// Resolves one open item at `client`.
///
/// `ResolveConflict` covers the versions the item holds when the call
/// arrives, which may be more than the ones the decision saw if another
/// version arrived meanwhile. The example avoids that by resolving in a
/// region that does not write the live orders.
async fn resolve_one(client: &mut Client, item: &pb::ConflictItem) -> Result<bool> {
    let versions: Vec<String> = item
        .versions
        .iter()
        .map(|v| format!("{} from {}", common::value_of(v), v.origin))
        .collect();
    println!(
        "  item {} {}/{} ({}): {}",
        item.id,
        item.collection,
        text(&item.key),
        item.reason,
        versions.join(" | ")
    );
    let (why, value) = decide(item)?;
    match client.resolve(item.id, value.clone()).await {
        Ok(t) => {
            println!(
                "    -> {} ({why}); ResolveConflict is write {}#{}",
                value.as_deref().map_or_else(|| "delete".to_owned(), text),
                t.origin,
                t.seq
            );
            Ok(true)
        }
        Err(concord_node::NodeError::Status(s))
            if matches!(
                s.code(),
                tonic::Code::FailedPrecondition | tonic::Code::NotFound
            ) =>
        {
            println!("    -> closed meanwhile ({})", s.message());
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// True when every region's queue is empty and every region has applied the
/// same writes.
async fn drained(clients: &mut [Client]) -> Result<bool> {
    if open_items(clients).await?.iter().any(|n| *n > 0) {
        return Ok(false);
    }
    let mut cursors = Vec::with_capacity(clients.len());
    for c in clients.iter_mut() {
        let mut applied: Vec<(u32, u64)> = c
            .status()
            .await?
            .applied
            .iter()
            .map(|w| (w.origin, w.seq))
            .collect();
        applied.sort_unstable();
        cursors.push(applied);
    }
    Ok(cursors.windows(2).all(|w| w[0] == w[1]))
}

/// The value each order should end with, decided from every version written.
fn expected(
    orders: &[(&'static str, [Option<String>; 3])],
    newest: &BTreeMap<&'static str, String>,
) -> BTreeMap<&'static str, String> {
    orders
        .iter()
        .map(|(key, values)| {
            let by_version = values
                .iter()
                .flatten()
                .filter_map(|v| {
                    let json: serde_json::Value = serde_json::from_str(v).ok()?;
                    Some((json.get("version")?.as_u64()?, v.clone()))
                })
                .max();
            let value = by_version
                .map(|(_, v)| v)
                .or_else(|| newest.get(key).cloned())
                .unwrap_or_default();
            (*key, value)
        })
        .collect()
}

/// The example: `Ok` when the resolver drained every region's queue and
/// every order ends with the value the decision rule picks.
pub(crate) async fn run() -> Result {
    println!("An application resolver draining the conflict queue over gRPC.");
    let names = ["us-east", "eu-west", "ap-south"];
    let mut cluster = Cluster::start_local(&names).await?;

    println!("1. Orders written concurrently in every region, before the resolver starts");
    let before = orders_before();
    let clients: Vec<Client> = (0..names.len()).map(|i| cluster.client(i)).collect();
    write_concurrently(clients, before.clone()).await?;
    let keys: Vec<(&str, &[u8])> = before
        .iter()
        .map(|(k, _)| ("orders", k.as_bytes()))
        .collect();
    let view = cluster.converged(&keys).await?;
    for (k, v) in &view {
        println!("  {k}: {v}");
    }
    // The newest version of each order, for the orders without a version field.
    let mut newest = BTreeMap::new();
    for (key, _) in &before {
        if let Read::Siblings { versions, .. } =
            cluster.clients[0].get("orders", key.as_bytes()).await?
            && let Some(v) = versions
                .iter()
                .max_by_key(|v| (v.hlc, v.write.map(|w| (w.origin, w.seq))))
        {
            newest.insert(*key, common::value_of(v));
        }
    }
    println!(
        "  open conflict items per region: {:?}",
        open_items(&mut cluster.clients).await?
    );

    println!("\n2. The resolver at us-east: WatchConflicts, decide, ResolveConflict");
    let mut resolver = cluster.client(0);
    let mut stream = resolver
        .raw()
        .watch_conflicts(pb::WatchConflictsRequest { after: 0 })
        .await?
        .into_inner();
    // More conflicts arrive while it runs.
    let live = orders_live();
    let clients: Vec<Client> = (0..names.len()).map(|i| cluster.client(i)).collect();
    let writes = live.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        write_concurrently(clients, writes).await
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut resolved = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            message = stream.message() => {
                let item = message?.ok_or("the watch stream ended")?;
                if item.status == "open" && resolve_one(&mut resolver, &item).await? {
                    resolved += 1;
                }
            }
            _ = tick.tick() => {
                if writer.is_finished() && drained(&mut cluster.clients).await? {
                    break;
                }
                check(Instant::now() < deadline, || "the queue did not drain within 20 s".into())?;
            }
        }
    }
    drop(stream);
    writer.await??;
    println!("  the resolver made {resolved} resolution(s); it stops: every queue is empty");

    println!("\n3. What every region reads now");
    let mut all = before.clone();
    all.extend(live);
    let want = expected(&all, &newest);
    let keys: Vec<(&str, &[u8])> = all.iter().map(|(k, _)| ("orders", k.as_bytes())).collect();
    cluster.converged(&keys).await?;
    for (key, value) in &want {
        for (i, name) in names.iter().enumerate() {
            let read = cluster.clients[i].get("orders", key.as_bytes()).await?;
            if i == 0 {
                println!("  {key}: {}", show(&read));
            }
            let ok = matches!(&read, Read::Siblings { versions, .. }
                if versions.len() == 1 && versions[0].value.as_deref() == Some(value.as_bytes()));
            check(ok, || {
                format!("{name} reads {key} = {}, expected {value}", show(&read))
            })?;
        }
    }
    let open = open_items(&mut cluster.clients).await?;
    println!("  open conflict items per region: {open:?}");
    check(open.iter().all(|n| *n == 0), || {
        format!("items still open: {open:?}")
    })?;

    cluster.shutdown().await?;
    println!(
        "\nok: {} orders decided by the application, the queue empty in every region",
        all.len()
    );
    Ok(())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("resolver example FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
