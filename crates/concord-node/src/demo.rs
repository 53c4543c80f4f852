//! `concord demo`: three regions in one process, on loopback ports with
//! temporary data directories. Each region takes conflicting writes under
//! every policy at once; the demo shows what each policy made of them and
//! prints `converged` once all three regions agree.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use concord_core::{Collection, CollectionConfig, Policy};
use concord_crdt::RegionId;

use crate::client::{Client, Read};
use crate::config::{CollectionSpec, NodeConfig, RegionEntry, Tuning, WriteConcern};
use crate::node::Node;
use crate::{NodeError, pb};

/// The demo's collections: one per policy.
pub const COLLECTIONS: [(&str, Policy); 5] = [
    ("profiles", Policy::LwwHlc),
    ("prefs", Policy::LwwWall),
    ("carts", Policy::Mv),
    ("inventory", Policy::Counter),
    ("orders", Policy::Queue),
];

/// Configurations for `regions` nodes on loopback, one per listener, with
/// data under `dir`. The regions replicate every collection of
/// [`COLLECTIONS`].
///
/// TLS is on: each region's certificate, from the process's local PKI
/// ([`crate::certs::local`]), is written under `dir/tls`, and the one
/// client, `local-admin` (admin, every collection), has the PKI's admin
/// token, which [`Client::connect`] sends.
pub fn local_configs(
    names: &[&str],
    listeners: &[SocketAddr],
    dir: &std::path::Path,
) -> Result<Vec<NodeConfig>, NodeError> {
    let pki = crate::certs::local()?;
    let tls_dir = dir.join("tls");
    let mut tls = Vec::with_capacity(names.len());
    for name in names {
        let (ca, files) = pki.write_region(&tls_dir, name)?;
        tls.push(crate::config::TlsSetting::Files(crate::tls::TlsFiles {
            ca,
            cert: files.cert,
            key: files.key,
        }));
    }
    let clients = vec![crate::auth::ClientSpec::admin(
        "local-admin",
        crate::auth::hash_token(pki.admin_token()),
    )];
    let regions: Vec<RegionEntry> = names
        .iter()
        .zip(listeners)
        .enumerate()
        .map(|(i, (name, addr))| RegionEntry {
            name: (*name).to_owned(),
            id: RegionId::new(u16::try_from(i + 1).unwrap_or(u16::MAX)),
            address: Some(format!("https://{addr}")),
        })
        .collect();
    let collections: Vec<CollectionSpec> = COLLECTIONS
        .iter()
        .filter_map(|(name, policy)| {
            Some(CollectionSpec {
                name: Collection::new(name).ok()?,
                config: CollectionConfig::new(*policy),
            })
        })
        .collect();
    Ok(names
        .iter()
        .zip(listeners)
        .zip(tls)
        .map(|((name, addr), tls)| NodeConfig {
            region: (*name).to_owned(),
            listen: *addr,
            metrics_listen: None,
            data_dir: dir.join(name),
            regions: regions.clone(),
            collections: collections.clone(),
            max_skew: Duration::from_secs(5),
            write_concern: WriteConcern::Local,
            write_timeout: Duration::from_secs(5),
            read_wait: Duration::from_secs(5),
            lag: concord_core::LagThresholds::default(),
            tuning: Tuning::default(),
            tls: Some(tls),
            clients: clients.clone(),
            limits: crate::limits::Limits::default(),
        })
        .collect())
}

/// Listeners on free loopback ports, kept bound until the nodes take them.
pub async fn loopback_listeners(n: usize) -> Result<Vec<tokio::net::TcpListener>, NodeError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| NodeError::Listen {
                    addr: "127.0.0.1:0".into(),
                    source,
                })?,
        );
    }
    Ok(out)
}

/// Starts one node per name on loopback, under `dir`.
pub async fn start_local(names: &[&str], dir: &std::path::Path) -> Result<Vec<Node>, NodeError> {
    start_local_with(names, dir, |_| {}).await
}

/// Like [`start_local`], letting `adjust` change each configuration first.
pub async fn start_local_with(
    names: &[&str],
    dir: &std::path::Path,
    adjust: impl Fn(&mut NodeConfig),
) -> Result<Vec<Node>, NodeError> {
    let listeners = loopback_listeners(names.len()).await?;
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let configs = local_configs(names, &addrs, dir)?;
    let mut nodes = Vec::with_capacity(names.len());
    for (mut config, listener) in configs.into_iter().zip(listeners) {
        adjust(&mut config);
        nodes.push(Node::start_on(config, listener).await?);
    }
    Ok(nodes)
}

/// How one region reads one entity, in a form that compares across regions.
fn describe(read: &Read) -> String {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    match read {
        Read::Missing => "(missing)".into(),
        Read::Value { value, version } => {
            format!("{:?} (written in {})", text(value), version.origin)
        }
        Read::Siblings { versions, .. } => {
            let mut vs: Vec<String> = versions
                .iter()
                .map(|v| {
                    format!(
                        "{:?} from {}",
                        text(v.value.as_deref().unwrap_or_default()),
                        v.origin
                    )
                })
                .collect();
            vs.sort();
            format!("{} siblings: {}", vs.len(), vs.join(", "))
        }
        Read::Counter(n) => format!("{n}"),
    }
}

/// Reads `keys` in every region; `Ok(Some(view))` once all regions agree.
async fn agreed(
    clients: &mut [Client],
    keys: &[(&str, &[u8])],
) -> Result<Option<BTreeMap<String, String>>, NodeError> {
    let mut views = Vec::with_capacity(clients.len());
    let mut cursors = Vec::with_capacity(clients.len());
    for c in clients.iter_mut() {
        let mut view = BTreeMap::new();
        for (collection, key) in keys {
            let read = c.get(collection, key).await?;
            view.insert(
                format!("{collection}/{}", String::from_utf8_lossy(key)),
                describe(&read),
            );
        }
        views.push(view);
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
    let same = views.windows(2).all(|w| w[0] == w[1]) && cursors.windows(2).all(|w| w[0] == w[1]);
    Ok(same.then(|| views.swap_remove(0)))
}

/// Waits until every region agrees on `keys`, up to `limit`.
pub async fn wait_converged(
    clients: &mut [Client],
    keys: &[(&str, &[u8])],
    limit: Duration,
) -> Result<BTreeMap<String, String>, NodeError> {
    let start = Instant::now();
    loop {
        if let Some(view) = agreed(clients, keys).await? {
            return Ok(view);
        }
        if start.elapsed() > limit {
            return Err(NodeError::NotConverged {
                seconds: limit.as_secs(),
                detail: "regions still read different values".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the demo, printing as it goes. `Ok` once the regions converged.
pub async fn run(out: &mut (dyn std::io::Write + Send)) -> Result<(), NodeError> {
    let names = ["us-east", "eu-west", "ap-south"];
    let dir = tempfile::tempdir().map_err(|source| NodeError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let say = |out: &mut (dyn std::io::Write + Send), s: &str| {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    say(
        out,
        "Concord demo: three regions in one process, on loopback gRPC with mutual TLS.",
    );
    let nodes = start_local(&names, dir.path()).await?;
    let mut clients = Vec::new();
    for (name, node) in names.iter().zip(&nodes) {
        say(out, &format!("  {name:<9} serving on {}", node.addr()));
        clients.push(Client::connect(&format!("http://{}", node.addr())).await?);
    }
    // Wait for the replication streams, so the writes below really race.
    wait_connected(&mut clients, Duration::from_secs(10)).await?;
    say(out, "  all replication streams are up\n");

    say(
        out,
        "Each region writes the same entities at the same moment:",
    );
    let writes = names.iter().enumerate().map(|(i, name)| {
        let mut c = clients[i].clone();
        let name = (*name).to_owned();
        async move {
            c.put("profiles", b"alice", format!("alice@{name}").as_bytes())
                .await?;
            c.put("prefs", b"theme", format!("theme set in {name}").as_bytes())
                .await?;
            c.put("carts", b"cart-42", format!("item from {name}").as_bytes())
                .await?;
            c.increment("inventory", b"sku-7", -(i64::try_from(i).unwrap_or(0) + 1))
                .await?;
            c.increment("inventory", b"sku-7", 10).await?;
            c.put(
                "orders",
                b"order-9",
                format!("shipping via {name}").as_bytes(),
            )
            .await?;
            Ok::<(), NodeError>(())
        }
    });
    for r in futures_join_all(writes).await {
        r?;
    }
    for name in &names {
        say(
            out,
            &format!(
                "  {name}: profiles/alice, prefs/theme, carts/cart-42, inventory/sku-7 (+10 and a decrement), orders/order-9"
            ),
        );
    }

    let keys: [(&str, &[u8]); 5] = [
        ("profiles", b"alice"),
        ("prefs", b"theme"),
        ("carts", b"cart-42"),
        ("inventory", b"sku-7"),
        ("orders", b"order-9"),
    ];
    let view = wait_converged(&mut clients, &keys, Duration::from_secs(30)).await?;
    say(out, "\nWhat every region reads now:");
    for (collection, policy) in COLLECTIONS {
        if let Some((k, v)) = view
            .iter()
            .find(|(k, _)| k.starts_with(&format!("{collection}/")))
        {
            say(out, &format!("  {k:<18} [{policy}]  {v}"));
        }
    }
    say(
        out,
        "  (inventory: 3 x +10, and -1 -2 -3: 24, from every region's own totals)",
    );

    say(
        out,
        "\nLWW losers (what was overwritten, kept in each region's loser log):",
    );
    for (name, node) in names.iter().zip(&nodes) {
        let losers = node
            .driver()
            .inspect(|e| {
                e.losers()
                    .map(|l| {
                        format!(
                            "{}: {:?} (write {}) lost to write {}",
                            l.entity,
                            String::from_utf8_lossy(l.loser.value.as_deref().unwrap_or_default()),
                            l.loser.write,
                            l.winner
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
        for l in &losers {
            say(out, &format!("  {name}: {l}"));
        }
    }

    say(
        out,
        "\nThe conflict queue (orders is a queue collection: no rule may decide):",
    );
    let items = wait_for_conflict(&mut clients[0], Duration::from_secs(10)).await?;
    for it in &items {
        let vs: Vec<String> = it
            .versions
            .iter()
            .map(|v| {
                format!(
                    "{:?} from {}",
                    String::from_utf8_lossy(v.value.as_deref().unwrap_or_default()),
                    v.origin
                )
            })
            .collect();
        say(
            out,
            &format!(
                "  item {} {}/{}: {} [{}]",
                it.id,
                it.collection,
                String::from_utf8_lossy(&it.key),
                it.detail,
                vs.join(", ")
            ),
        );
    }
    if let Some(it) = items.first() {
        let token = clients[0]
            .resolve(
                it.id,
                Some(b"shipping via eu-west (chosen by the app)".to_vec()),
            )
            .await?;
        say(
            out,
            &format!(
                "  us-east resolves item {} as write {}#{}",
                it.id, token.origin, token.seq
            ),
        );
    }

    say(
        out,
        "\nThe cart's siblings merge when the app writes back with their context:",
    );
    if let Read::Siblings { versions, context } = clients[1].get("carts", b"cart-42").await? {
        let mut items: Vec<String> = versions
            .iter()
            .map(|v| String::from_utf8_lossy(v.value.as_deref().unwrap_or_default()).into_owned())
            .collect();
        items.sort();
        let merged = items.join(" + ");
        clients[1]
            .put_with("carts", b"cart-42", merged.as_bytes(), Some(context))
            .await?;
        say(out, &format!("  eu-west writes back {merged:?}"));
    }

    let view = wait_converged(&mut clients, &keys, Duration::from_secs(30)).await?;
    say(out, "\nAfter the resolution and the merge:");
    for (k, v) in &view {
        say(out, &format!("  {k:<18} {v}"));
    }
    let mut open = 0;
    for c in clients.iter_mut() {
        open += c.conflicts(false).await?.len();
    }
    say(
        out,
        &format!("  open conflict items in all regions: {open}"),
    );

    say(out, "\nReplication lag, as each region sees the others:");
    for (name, c) in names.iter().zip(clients.iter_mut()) {
        let s = c.status().await?;
        let cols: Vec<String> = s
            .channels
            .iter()
            .map(|ch| {
                format!(
                    "{} {} ({} writes, {:.3} s behind, max {:.3} s)",
                    ch.region, ch.status, ch.writes_behind, ch.seconds_behind, ch.max_ever_seconds
                )
            })
            .collect();
        say(out, &format!("  {name}: {}", cols.join("; ")));
    }
    if open != 0 {
        return Err(NodeError::NotConverged {
            seconds: 30,
            detail: format!("{open} conflict items still open"),
        });
    }
    drop(clients);
    for node in nodes {
        node.shutdown().await?;
    }
    say(out, "\nconverged");
    Ok(())
}

/// Waits until every client's node has every replication stream up.
pub async fn wait_connected(clients: &mut [Client], limit: Duration) -> Result<(), NodeError> {
    let start = Instant::now();
    loop {
        let mut all = true;
        for c in clients.iter_mut() {
            let s = c.status().await?;
            all &= s
                .channels
                .iter()
                .all(|ch| ch.connected && ch.status == "active");
        }
        if all {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(NodeError::NotConverged {
                seconds: limit.as_secs(),
                detail: "replication streams did not come up".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_conflict(
    c: &mut Client,
    limit: Duration,
) -> Result<Vec<pb::ConflictItem>, NodeError> {
    let start = Instant::now();
    loop {
        let items = c.conflicts(false).await?;
        if !items.is_empty() || start.elapsed() > limit {
            return Ok(items);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs futures concurrently and collects their results in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    fs: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(r) => out.push(r),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}
