//! A shopping cart under `mv` (multi-value): concurrent adds keep every
//! version as a sibling, and the application merges them on write-back.
//!
//! Run: `cargo run --release -p concord-node --example cart`
//!
//! - us-east creates the cart with one item; every region sees it.
//! - Each region reads the cart (its versions and their *context*) and adds
//!   an item at the same moment, writing back with the context it read.
//!   Each write replaces what its region had read, but none of them saw
//!   the others: the three carts become siblings, in every region.
//! - The application reads the siblings and the context, merges them (the
//!   union of the items) and writes the merged cart back with that context.
//!   The write covers every sibling, so every region then holds one version.

mod common;

use std::collections::BTreeSet;

use concord_node::client::{Client, Read};
use concord_node::pb;

use common::{Cluster, Result, check, show, value_of};

/// The item each region adds concurrently.
const ADDS: [&str; 3] = ["pen", "lamp", "mug"];

/// A cart value: a JSON array of item names.
fn cart_json(items: &BTreeSet<String>) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(items)?)
}

/// The items of one cart version.
fn items_of(v: &pb::Version) -> Result<BTreeSet<String>> {
    Ok(serde_json::from_slice(v.value.as_deref().unwrap_or(b"[]"))?)
}

/// Reads the cart: its versions and the context that covers them.
async fn read_cart(c: &mut Client) -> Result<(Vec<pb::Version>, Option<pb::VersionVector>)> {
    match c.get("carts", b"cart-42").await? {
        Read::Missing => Ok((Vec::new(), None)),
        Read::Siblings { versions, context } => Ok((versions, Some(context))),
        other => Err(format!("carts is not multi-value: read {}", show(&other)).into()),
    }
}

/// The example: `Ok` when the concurrent adds became siblings and the merge
/// left one version with every item in every region.
pub(crate) async fn run() -> Result {
    println!("A shopping cart under mv, in three regions.");
    let names = ["us-east", "eu-west", "ap-south"];
    let mut cluster = Cluster::start_local(&names).await?;
    let key: &[u8] = b"cart-42";

    println!("1. us-east creates carts/cart-42 with a book");
    let first = BTreeSet::from(["book".to_owned()]);
    let token = cluster.clients[0]
        .put("carts", key, &cart_json(&first)?)
        .await?;
    for (i, name) in names.iter().enumerate() {
        let read = cluster.clients[i].get_after("carts", key, token).await?;
        println!("  {name:<9} reads {}", show(&read));
    }

    println!("\n2. Every region reads the cart, then adds an item, at the same moment");
    // All reads first, so that no region's write can have seen another's.
    let mut reads = Vec::new();
    for i in 0..names.len() {
        reads.push(read_cart(&mut cluster.clients[i]).await?);
    }
    let mut tasks = Vec::new();
    for (i, ((versions, context), add)) in reads.into_iter().zip(ADDS).enumerate() {
        let mut items = BTreeSet::new();
        for v in &versions {
            items.extend(items_of(v)?);
        }
        items.insert(add.to_owned());
        let value = cart_json(&items)?;
        println!(
            "  {:<9} read {} version(s), writes {} with the context it read",
            names[i],
            versions.len(),
            String::from_utf8_lossy(&value)
        );
        let mut c = cluster.client(i);
        tasks.push(tokio::spawn(async move {
            c.put_with("carts", b"cart-42", &value, context).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let view = cluster.converged(&[("carts", key)]).await?;
    for (k, v) in &view {
        println!("  every region reads {k} = {v}");
    }
    for (i, name) in names.iter().enumerate() {
        let (versions, _) = read_cart(&mut cluster.clients[i]).await?;
        check(versions.len() == ADDS.len(), || {
            format!(
                "{name} holds {} versions, expected {} siblings",
                versions.len(),
                ADDS.len()
            )
        })?;
    }
    println!("  the book's version is gone (each add covered it); the three adds are siblings");

    println!("\n3. The app at ap-south merges the siblings and writes back with their context");
    let (versions, context) = read_cart(&mut cluster.clients[2]).await?;
    let mut merged = BTreeSet::new();
    for v in &versions {
        println!("  sibling from {:<9} {}", v.origin, value_of(v));
        merged.extend(items_of(v)?);
    }
    let value = cart_json(&merged)?;
    let token = cluster.clients[2]
        .put_with("carts", key, &value, context)
        .await?;
    println!(
        "  ap-south writes {} (write {}#{})",
        String::from_utf8_lossy(&value),
        token.origin,
        token.seq
    );
    for (i, name) in names.iter().enumerate() {
        let read = cluster.clients[i].get_after("carts", key, token).await?;
        println!("  {name:<9} reads {}", show(&read));
        let one = matches!(&read, Read::Siblings { versions, .. }
            if versions.len() == 1 && versions[0].value.as_deref() == Some(value.as_slice()));
        check(one, || {
            format!("{name} reads {} after the merge", show(&read))
        })?;
    }
    let expected: BTreeSet<String> = std::iter::once("book")
        .chain(ADDS)
        .map(str::to_owned)
        .collect();
    check(merged == expected, || {
        format!("the merged cart is {merged:?}, expected {expected:?}")
    })?;
    cluster.converged(&[("carts", key)]).await?;
    let open = common::open_items(&mut cluster.clients).await?;
    check(open.iter().all(|n| *n == 0), || {
        format!("conflict items open: {open:?}")
    })?;

    cluster.shutdown().await?;
    println!("\nok: one version everywhere, with every item: {merged:?}");
    Ok(())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cart example FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
