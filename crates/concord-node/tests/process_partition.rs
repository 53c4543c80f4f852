//! A partition between two real `concord` processes, through a TCP proxy
//! the test runs: region 1 (us-east) dials region 2 (eu-west) for their
//! replication stream, at the proxy's address. While the proxy is cut, both
//! sides keep accepting writes and neither sees the other's; Status (and
//! `concord status`) shows the channel failed or lagging. After the heal the
//! channel is active again and the regions converge, with the queue conflict
//! and the mv siblings made during the partition.

mod process_support;

use std::time::Duration;

use concord_node::client::{Client, Read};
use process_support::{Cluster, NAMES, PATIENCE, Spec, cli_of, eventually, values};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy to `upstream`: while up, each accepted connection is piped
/// both ways to a new upstream connection; cutting it closes every
/// connection and refuses new ones (accepted, then closed at once) until
/// the heal.
struct Proxy {
    addr: std::net::SocketAddr,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (up, up_rx) = watch::channel(true);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !*up_rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut = up_rx.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                    // Both sockets drop here: each side sees the close.
                });
            }
        });
        Self { addr, up, task }
    }

    fn cut(&self) {
        let _ = self.up.send(false);
    }

    fn heal(&self) {
        let _ = self.up.send(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The channel to `peer` as `c`'s node reports it: (status, connected).
async fn channel(c: &mut Client, peer: &str) -> Option<(String, bool)> {
    let s = c.status().await.ok()?;
    s.channels
        .iter()
        .find(|ch| ch.region == peer)
        .map(|ch| (ch.status.clone(), ch.connected))
}

/// `concord status` of the node at `addr`: the line of `peer`'s channel.
fn status_line(cluster: &Cluster, addr: &str, peer: &str) -> String {
    let (ok, out) = cli_of(cluster, &["status", "--addr", addr]);
    assert!(ok, "concord status failed: {out}");
    out.lines()
        .find(|l| l.starts_with(peer))
        .unwrap_or_else(|| panic!("no line for {peer} in:\n{out}"))
        .to_owned()
}

async fn counter(c: &mut Client, key: &[u8]) -> i64 {
    match c.get("stock", key).await.expect("get") {
        Read::Counter(n) => n,
        other => panic!("stock: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_through_a_proxy_then_heal() {
    let mut spec = Spec::new(2);
    spec.failed_after_ms = 2000;
    let mut cluster = Cluster::new(spec);
    let proxy = Proxy::start(format!("127.0.0.1:{}", cluster.nodes[1].port)).await;
    // Region 1 dials region 2: through the proxy.
    cluster
        .routes
        .insert((0, 1), format!("http://{}", proxy.addr));
    cluster.start().await;
    cluster.wait_connected().await;
    let (a, b) = (NAMES[0], NAMES[1]);
    let (addr_a, addr_b) = (cluster.nodes[0].addr(), cluster.nodes[1].addr());
    let mut ca = cluster.client(0).await;
    let mut cb = cluster.client(1).await;

    // Replication flows through the proxy.
    let t = ca.put("hlc", b"before", b"from-a").await.expect("put");
    let r = cb.get_after("hlc", b"before", t).await.expect("get after");
    assert_eq!(values(&r), vec!["from-a".to_owned()]);
    assert!(status_line(&cluster, &addr_a, b).contains("active"));

    // Cut. Each side sees the channel go down.
    proxy.cut();
    for (c, peer, name) in [(&mut ca, b, a), (&mut cb, a, b)] {
        let down = eventually(PATIENCE, || {
            let mut c = c.clone();
            async move {
                matches!(channel(&mut c, peer).await,
                    Some((s, connected)) if !connected && (s == "failed" || s == "lagging"))
            }
        })
        .await;
        assert!(
            down,
            "{name} still reports its channel from {peer} as {:?} during the partition",
            channel(c, peer).await
        );
    }
    for (addr, peer) in [(&addr_a, b), (&addr_b, a)] {
        let line = status_line(&cluster, addr, peer);
        assert!(
            (line.contains("failed") || line.contains("lagging")) && line.contains("down"),
            "concord status during the partition: {line}"
        );
    }

    // Both sides keep accepting writes.
    for (c, name) in [(&mut ca, a), (&mut cb, b)] {
        for n in 0..20 {
            c.put("wall", format!("{name}-{n}").as_bytes(), name.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("{name} refused a write during the partition: {e}"));
        }
        c.put("hlc", b"both", name.as_bytes()).await.expect("put");
        c.increment("stock", b"sum", 10).await.expect("incr");
        c.put("carts", b"cart", format!("item from {name}").as_bytes())
            .await
            .expect("put mv");
        c.put("orders", b"order", format!("ship via {name}").as_bytes())
            .await
            .expect("put queue");
    }
    // ... and the other side does not see them (give it time to, first).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for (c, me, other) in [(&mut ca, a, b), (&mut cb, b, a)] {
        let r = c
            .get("wall", format!("{other}-0").as_bytes())
            .await
            .expect("get");
        assert_eq!(
            r,
            Read::Missing,
            "{me} sees {other}'s write during the partition"
        );
        assert_eq!(counter(c, b"sum").await, 10, "{me}'s counter");
        assert_eq!(
            values(&c.get("carts", b"cart").await.expect("get")),
            vec![format!("item from {me}")]
        );
        assert_eq!(
            values(&c.get("orders", b"order").await.expect("get")),
            vec![format!("ship via {me}")]
        );
        assert_eq!(
            values(&c.get("hlc", b"both").await.expect("get")),
            vec![me.to_owned()]
        );
        assert!(
            c.conflicts(false).await.expect("conflicts").is_empty(),
            "{me} has a conflict before seeing the other side"
        );
    }

    // Heal: the channel comes back, active, on both sides.
    proxy.heal();
    for (c, peer, name) in [(&mut ca, b, a), (&mut cb, a, b)] {
        let active = eventually(PATIENCE, || {
            let mut c = c.clone();
            async move {
                matches!(channel(&mut c, peer).await,
                    Some((s, connected)) if connected && s == "active")
            }
        })
        .await;
        assert!(
            active,
            "{name}'s channel from {peer} after the heal: {:?}\n{}",
            channel(c, peer).await,
            cluster.logs()
        );
    }

    // Converged, with what both sides wrote.
    let mut keys: Vec<(String, Vec<u8>)> = vec![
        ("hlc".into(), b"before".to_vec()),
        ("hlc".into(), b"both".to_vec()),
        ("stock".into(), b"sum".to_vec()),
        ("carts".into(), b"cart".to_vec()),
        ("orders".into(), b"order".to_vec()),
    ];
    for name in [a, b] {
        for n in 0..20 {
            keys.push(("wall".into(), format!("{name}-{n}").into_bytes()));
        }
    }
    let view = cluster.wait_converged(&keys).await;
    assert_eq!(view["stock/sum"], "20");
    for name in [a, b] {
        for n in 0..20 {
            assert!(view[&format!("wall/{name}-{n}")].starts_with(&format!("{name:?}")));
        }
    }
    for (c, name) in [(&mut ca, a), (&mut cb, b)] {
        let mut want = vec![format!("item from {a}"), format!("item from {b}")];
        want.sort();
        let r = c.get("carts", b"cart").await.expect("get");
        assert!(matches!(r, Read::Siblings { .. }), "{name}: {r:?}");
        assert_eq!(values(&r), want, "{name}: mv siblings");
        let mut want = vec![format!("ship via {a}"), format!("ship via {b}")];
        want.sort();
        assert_eq!(
            values(&c.get("orders", b"order").await.expect("get")),
            want,
            "{name}: queue versions"
        );
        let w = values(&c.get("hlc", b"both").await.expect("get"));
        assert!(w == vec![a.to_owned()] || w == vec![b.to_owned()], "{w:?}");
        // The queue conflict is open here, naming both versions.
        let opened = eventually(PATIENCE, || {
            let mut c = c.clone();
            async move {
                c.conflicts(false).await.is_ok_and(|items| {
                    items.iter().any(|it| {
                        it.collection == "orders" && it.key == b"order" && it.versions.len() == 2
                    })
                })
            }
        })
        .await;
        assert!(
            opened,
            "{name}: no open conflict for orders/order: {:?}",
            c.conflicts(true).await
        );
    }
    for (addr, peer) in [(&addr_a, b), (&addr_b, a)] {
        let line = status_line(&cluster, addr, peer);
        assert!(
            line.contains("active") && line.contains("up"),
            "concord status after the heal: {line}"
        );
    }
}
