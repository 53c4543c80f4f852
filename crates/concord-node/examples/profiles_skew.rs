//! User profiles under `lww-hlc` while one region's clock runs 2 s fast.
//!
//! Run: `cargo run --release -p concord-node --example profiles_skew`
//!
//! - eu-west's clock is 2 s ahead of the others (a start-up clock with an
//!   offset over the system clock: [`common::AheadClock`]).
//! - us-east and eu-west update the same profile at the same moment. The
//!   hybrid logical clock (HLC) orders them; eu-west's fast clock gives its
//!   write the later timestamp, so it wins everywhere, and every region's
//!   loser log keeps the overwritten version: nothing vanishes silently.
//! - Causality holds despite the skew: us-east reads the winner (a read that
//!   waits for eu-west's write with its causal token), then writes again.
//!   Having seen eu-west's timestamp, us-east's HLC stamps the new write
//!   after it, so this later write wins, although us-east's wall clock is
//!   still 2 s behind eu-west's.
//! - For contrast, the same read-then-write on `prefs` (`lww-wall`, ordered
//!   by wall clocks alone) loses to the older write from the fast region.

mod common;

use std::time::Duration;

use concord_clock::HlcTime;
use concord_node::client::Read;

use common::{Cluster, RegionSetup, Result, check, show, text};

/// How far eu-west's clock runs ahead.
const AHEAD: Duration = Duration::from_secs(2);

/// The loser log of region `i`, in lines.
async fn losers(cluster: &Cluster, i: usize) -> Result<Vec<String>> {
    let names = cluster.names.clone();
    let name_of = move |origin: u16| {
        names
            .get(usize::from(origin).wrapping_sub(1))
            .map_or_else(|| format!("region {origin}"), |n| (*n).to_owned())
    };
    Ok(cluster
        .node(i)?
        .driver()
        .inspect(move |e| {
            e.losers()
                .map(|l| {
                    format!(
                        "{}: {:?} written in {} (HLC {} ms) lost to write {}",
                        l.entity,
                        String::from_utf8_lossy(l.loser.value.as_deref().unwrap_or_default()),
                        name_of(l.loser.write.origin.get()),
                        l.loser.hlc.physical_millis(),
                        l.winner,
                    )
                })
                .collect::<Vec<_>>()
        })
        .await?)
}

/// The winning value of an LWW read, and the region that wrote it.
fn winner(read: &Read) -> Option<(String, String)> {
    match read {
        Read::Value { value, version } => Some((text(value), version.origin.clone())),
        _ => None,
    }
}

/// The example: `Ok` when the skewed region wins the race, the loser is
/// logged everywhere, and the causally later write wins under `lww-hlc`.
pub(crate) async fn run() -> Result {
    println!("Profiles under lww-hlc, with eu-west's clock {AHEAD:?} ahead.");
    let mut cluster = Cluster::start(
        vec![
            RegionSetup::new("us-east"),
            RegionSetup::ahead("eu-west", AHEAD),
            RegionSetup::new("ap-south"),
        ],
        &[],
    )
    .await?;
    let (us, eu) = (0, 1);

    println!("1. us-east and eu-west update profiles/alice at the same moment");
    let mut cu = cluster.client(us);
    let mut ce = cluster.client(eu);
    let us_value = r#"{"name":"Alice","city":"Boston"}"#;
    let eu_value = r#"{"name":"Alice","city":"Berlin"}"#;
    let (a, b) = tokio::join!(
        cu.put("profiles", b"alice", us_value.as_bytes()),
        ce.put("profiles", b"alice", eu_value.as_bytes()),
    );
    let (us_token, eu_token) = (a?, b?);
    println!(
        "  us-east writes {us_value} (write {}#{})",
        us_token.origin, us_token.seq
    );
    println!(
        "  eu-west writes {eu_value} (write {}#{})",
        eu_token.origin, eu_token.seq
    );
    let view = cluster.converged(&[("profiles", b"alice")]).await?;
    for (k, v) in &view {
        println!("  every region reads {k} = {v}");
    }
    let read = cluster.clients[us].get("profiles", b"alice").await?;
    let Read::Value { version: w, .. } = &read else {
        return Err(format!("profiles/alice reads {}", show(&read)).into());
    };
    println!(
        "  the winner is {}'s write (HLC {} ms): its fast clock stamped it ~{} ms after us-east's",
        w.origin,
        HlcTime::from_u64(w.hlc).physical_millis(),
        AHEAD.as_millis()
    );
    check(
        winner(&read) == Some((eu_value.to_owned(), "eu-west".to_owned())),
        || format!("expected eu-west's write to win, read {}", show(&read)),
    )?;

    println!("  the loser logs (what was overwritten):");
    for i in 0..cluster.names.len() {
        let lines = losers(&cluster, i).await?;
        for l in &lines {
            println!("    {:<9} {l}", cluster.names[i]);
        }
        check(lines.iter().any(|l| l.contains("Boston")), || {
            format!(
                "{}'s loser log does not show us-east's overwritten write: {lines:?}",
                cluster.names[i]
            )
        })?;
    }

    println!("\n2. us-east reads Alice's profile, then corrects it (a causally later write)");
    let seen = cu.get_after("profiles", b"alice", eu_token).await?;
    println!(
        "  us-east reads {} (waiting for eu-west's write with its token)",
        show(&seen)
    );
    let fixed = r#"{"name":"Alice","city":"Berlin","phone":"+49 30 1234"}"#;
    let token = cu.put("profiles", b"alice", fixed.as_bytes()).await?;
    println!(
        "  us-east writes {fixed} (write {}#{})",
        token.origin, token.seq
    );
    println!(
        "  us-east's wall clock is still {AHEAD:?} behind eu-west's, but its HLC has seen eu-west's write"
    );
    for i in 0..cluster.names.len() {
        let read = cluster.clients[i]
            .get_after("profiles", b"alice", token)
            .await?;
        println!("  {:<9} reads {}", cluster.names[i], show(&read));
        check(
            winner(&read) == Some((fixed.to_owned(), "us-east".to_owned())),
            || {
                format!(
                    "{}: the causally later write from us-east lost: {}",
                    cluster.names[i],
                    show(&read)
                )
            },
        )?;
    }

    println!("\n3. The same sequence on prefs (lww-wall: wall clocks only), for contrast");
    let eu_pref = ce.put("prefs", b"alice-theme", b"dark (eu-west)").await?;
    let seen = cu.get_after("prefs", b"alice-theme", eu_pref).await?;
    println!(
        "  eu-west writes \"dark (eu-west)\"; us-east reads {}",
        show(&seen)
    );
    let us_pref = cu
        .put("prefs", b"alice-theme", b"light (us-east, later)")
        .await?;
    println!("  us-east then writes \"light (us-east, later)\"");
    let read = cluster.clients[us]
        .get_after("prefs", b"alice-theme", us_pref)
        .await?;
    println!("  us-east reads {}", show(&read));
    // Unless more than AHEAD passed between the two writes, the fast wall
    // clock wins even though us-east wrote after reading eu-west's value.
    check(
        winner(&read).is_some_and(|(v, _)| v == "dark (eu-west)"),
        || {
            format!(
                "expected the fast region's older write to win under lww-wall, read {}",
                show(&read)
            )
        },
    )?;
    println!(
        "  under lww-wall the earlier write from the fast clock wins: skew breaks causality there"
    );

    cluster
        .converged(&[("profiles", b"alice"), ("prefs", b"alice-theme")])
        .await?;
    cluster.shutdown().await?;
    println!(
        "\nok: concurrent writes ordered by HLC, the loser logged in every region, and causality kept despite a {AHEAD:?} skew"
    );
    Ok(())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("profiles_skew example FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
