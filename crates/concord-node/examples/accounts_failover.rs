//! Accounts under ownership, with a failover.
//!
//! Run: `cargo run --release -p concord-node --example accounts_failover`
//!
//! - `accounts` is an *owned* collection (configured in code): each account
//!   id has one home region, `regions[id % 3]`, the only region that accepts
//!   its writes. A write at another region is refused, and the error names
//!   the owner. `limits` is owned the same way but *forwards*: a write at a
//!   non-owner is sent on to the owner by the node.
//! - The owner of account 1 (eu-west) is shut down. us-east takes its keys
//!   over with the `Takeover` call; the `FailoverEvent` it returns says how
//!   much of eu-west's history was at risk (written there, never received
//!   here).
//! - Writes to account 1 continue at its new owner, and the other regions
//!   now refuse (or forward) naming us-east.

mod common;

use std::time::{Duration, Instant};

use concord_core::{CollectionConfig, OwnershipConfig, Policy};
use concord_crdt::RegionId;
use concord_node::NodeError;
use concord_node::client::{Client, Read};
use concord_node::pb;
use concord_ownership::Rule;

use common::{Cluster, RegionSetup, Result, check, show, text};

/// Who owns `collection`/`key`, asked over gRPC.
async fn owner(c: &mut Client, collection: &str, key: &[u8]) -> Result<pb::OwnerResponse> {
    Ok(c.raw()
        .owner(pb::OwnerRequest {
            collection: collection.to_owned(),
            key: key.to_vec(),
        })
        .await?
        .into_inner())
}

/// A balance, as the accounts store it.
fn balance(n: i64) -> Vec<u8> {
    format!("{{\"balance\":{n}}}").into_bytes()
}

/// Expects `result` to be the refusal of a non-owner naming `owner`.
fn expect_refused(result: std::result::Result<pb::WriteRef, NodeError>, owner: &str) -> Result {
    match result {
        Err(NodeError::Status(s)) if s.code() == tonic::Code::FailedPrecondition => {
            println!("    refused: {:?}: {}", s.code(), s.message());
            check(s.message().contains(owner), || {
                format!(
                    "the refusal does not name the owner {owner}: {}",
                    s.message()
                )
            })
        }
        Err(e) => Err(format!("expected a refusal naming {owner}, got {e}").into()),
        Ok(t) => Err(format!(
            "a non-owner accepted the write (write {}#{}), expected a refusal",
            t.origin, t.seq
        )
        .into()),
    }
}

/// The example: `Ok` when non-owners refuse or forward, the takeover moves
/// eu-west's keys to us-east, and writes continue there.
pub(crate) async fn run() -> Result {
    println!("Accounts under ownership, with a failover.");
    let names = ["us-east", "eu-west", "ap-south"];
    // local_configs gives the regions ids 1, 2, 3 in this order.
    let ids: Vec<RegionId> = (1..=3).map(RegionId::new).collect();
    let rule = Rule::modulo(ids)?;
    let accounts = CollectionConfig::new(Policy::LwwHlc).owned(OwnershipConfig::new(rule.clone()));
    let limits =
        CollectionConfig::new(Policy::LwwHlc).owned(OwnershipConfig::new(rule).forwarding());
    let mut cluster = Cluster::start(
        names.iter().map(|n| RegionSetup::new(n)).collect(),
        &[("accounts", accounts), ("limits", limits)],
    )
    .await?;
    let (us, eu, ap) = (0, 1, 2);
    let mut cu = cluster.client(us);
    let mut ce = cluster.client(eu);
    let mut ca = cluster.client(ap);

    println!("1. Who owns which account (Owner, asked at us-east)");
    for id in ["1", "2", "3", "4"] {
        let o = owner(&mut cu, "accounts", id.as_bytes()).await?;
        println!("  accounts/{id}: {} (epoch {})", o.owner, o.epoch);
    }
    check(
        owner(&mut cu, "accounts", b"1").await?.owner == "eu-west",
        || "account 1 should start at eu-west".into(),
    )?;

    println!("\n2. Writes at the owner, and at a non-owner");
    let mut last = None;
    for (key, n) in [("1", 100), ("4", 40), ("1", 90)] {
        let t = ce.put("accounts", key.as_bytes(), &balance(n)).await?;
        println!(
            "  eu-west (owner) writes accounts/{key} = {} (write {}#{})",
            text(&balance(n)),
            t.origin,
            t.seq
        );
        last = Some(t);
    }
    println!("  us-east writes accounts/1 (it is not the owner):");
    expect_refused(cu.put("accounts", b"1", &balance(0)).await, "eu-west")?;
    println!("  us-east writes limits/1 (a forwarding collection):");
    let t = cu.put("limits", b"1", b"{\"daily\":500}").await?;
    let origin = &names[usize::try_from(t.origin)? - 1];
    println!(
        "    forwarded: made by {origin} as write {}#{}",
        t.origin, t.seq
    );
    check(*origin == "eu-west", || {
        format!("the forwarded write was made by {origin}, not the owner eu-west")
    })?;
    let last = last.ok_or("no write")?;
    for (i, name) in names.iter().enumerate() {
        let read = cluster.clients[i].get_after("accounts", b"1", last).await?;
        println!("  {name:<9} reads accounts/1 = {}", show(&read));
    }
    cluster
        .converged(&[("accounts", b"1"), ("accounts", b"4"), ("limits", b"1")])
        .await?;

    println!("\n3. eu-west goes down");
    cluster.stop(eu).await?;
    drop(ce);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = cu.status().await?;
        let down = s
            .channels
            .iter()
            .find(|c| c.region == "eu-west")
            .is_some_and(|c| !c.connected);
        if down {
            for c in &s.channels {
                println!(
                    "  us-east's channel from {}: {} (connected: {})",
                    c.region, c.status, c.connected
                );
            }
            break;
        }
        check(Instant::now() < deadline, || {
            "us-east still sees eu-west connected".into()
        })?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("  us-east writes accounts/1 while eu-west is down:");
    expect_refused(cu.put("accounts", b"1", &balance(0)).await, "eu-west")?;

    println!("\n4. us-east takes over eu-west's keys (Takeover over gRPC)");
    let event = cu
        .raw()
        .takeover(pb::TakeoverRequest {
            from: "eu-west".into(),
            reason: "eu-west is unreachable".into(),
        })
        .await?
        .into_inner()
        .event
        .ok_or("Takeover returned no event")?;
    println!("  FailoverEvent:");
    println!(
        "    from {} to {}, reason {:?}",
        event.from, event.to, event.reason
    );
    println!("    ownership epoch {}", event.epoch);
    println!(
        "    data at risk: {} write(s) of eu-west never received here, spanning {:.3} s",
        event.at_risk_writes, event.at_risk_seconds
    );
    println!(
        "    took {:.3} ms",
        (event.completed_micros - event.started_micros) as f64 / 1e3
    );
    check(event.from == "eu-west" && event.to == "us-east", || {
        format!("unexpected event {event:?}")
    })?;
    // Every write eu-west acknowledged had replicated before it stopped.
    check(event.at_risk_writes == 0, || {
        format!("{} writes at risk, expected none", event.at_risk_writes)
    })?;

    println!("\n5. Writes continue at the new owner");
    let o = owner(&mut cu, "accounts", b"1").await?;
    println!(
        "  Owner at us-east: accounts/1 is owned by {} (epoch {})",
        o.owner, o.epoch
    );
    check(o.owner == "us-east", || {
        format!("accounts/1 owned by {}", o.owner)
    })?;
    let t = cu.put("accounts", b"1", &balance(75)).await?;
    println!(
        "  us-east writes accounts/1 = {} (write {}#{})",
        text(&balance(75)),
        t.origin,
        t.seq
    );
    let read = ca.get_after("accounts", b"1", t).await?;
    println!("  ap-south reads accounts/1 = {}", show(&read));
    check(
        matches!(&read, Read::Value { value, .. } if *value == balance(75)),
        || format!("ap-south reads {}", show(&read)),
    )?;
    // ap-south has applied the takeover (it came before the write above).
    let o = owner(&mut ca, "accounts", b"1").await?;
    println!(
        "  Owner at ap-south: accounts/1 is owned by {} (epoch {})",
        o.owner, o.epoch
    );
    check(o.owner == "us-east", || {
        format!("ap-south sees accounts/1 owned by {}", o.owner)
    })?;
    println!("  ap-south writes accounts/1:");
    expect_refused(ca.put("accounts", b"1", &balance(0)).await, "us-east")?;
    println!("  ap-south writes limits/1 (forwarding):");
    let t = ca.put("limits", b"1", b"{\"daily\":250}").await?;
    let origin = &names[usize::try_from(t.origin)? - 1];
    println!(
        "    forwarded: made by {origin} as write {}#{}",
        t.origin, t.seq
    );
    check(*origin == "us-east", || {
        format!("the forwarded write was made by {origin}, not the new owner us-east")
    })?;
    // The region that took over records the event; the others apply the
    // new ownership map (its epoch) that the takeover replicated.
    let s = cu.status().await?;
    for f in &s.failovers {
        println!(
            "  us-east's Status lists the failover {} -> {} at epoch {} ({} write(s) at risk)",
            f.from, f.to, f.epoch, f.at_risk_writes
        );
    }
    check(s.failovers.iter().any(|f| f.epoch == event.epoch), || {
        "us-east's Status lists no failover".into()
    })?;
    let s = ca.status().await?;
    println!("  ap-south's Status: ownership epoch {}", s.ownership_epoch);
    check(s.ownership_epoch == event.epoch, || {
        format!(
            "ap-south is at ownership epoch {}, expected {}",
            s.ownership_epoch, event.epoch
        )
    })?;

    drop((cu, ca));
    cluster.shutdown().await?;
    println!(
        "\nok: non-owners refused or forwarded, us-east took over from eu-west, account 1 kept being written"
    );
    Ok(())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accounts_failover example FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
