//! A real node's Prometheus endpoint: `concord_` metrics whose values move
//! with the node (writes, replication, channel status and connections).

mod support;

use std::net::SocketAddr;

use concord_core::Policy;
use support::{Cluster, NAMES, WAIT, eventually, spec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8(out).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample `name` whose labels include all of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            (n == name).then_some((rest.trim_end_matches('}'), v))
        })
        .find(|(ls, _)| {
            labels
                .iter()
                .all(|(k, v)| ls.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, v)| v.parse().ok())
}

async fn wait_value(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
    ok: impl Fn(f64) -> bool,
) -> f64 {
    eventually(WAIT, name, || async {
        let text = scrape(addr).await;
        value(&text, name, labels).filter(|v| ok(*v))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_serves_concord_metrics_that_move() {
    let mut cluster = Cluster::start_with(
        &NAMES,
        &[
            spec("hlcs", Policy::LwwHlc),
            spec("counters", Policy::Counter),
        ],
        |c| {
            if c.region == "us-east" {
                c.metrics_listen = Some("127.0.0.1:0".parse().expect("an address"));
            }
        },
    )
    .await;
    let addr = cluster.node(0).metrics_addr().expect("metrics are served");
    assert_ne!(addr.port(), 0);
    assert!(cluster.node(1).metrics_addr().is_none());

    let text = scrape(addr).await;
    for family in [
        "concord_local_writes_total",
        "concord_remote_applied_total",
        "concord_channel_status",
        "concord_channel_connected",
        "concord_lag_seconds",
        "concord_open_conflicts",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "{family} in\n{text}"
        );
    }
    assert!(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.starts_with("concord_") && l.contains("region=\"us-east\"")),
        "every sample is concord_ and labelled with the region:\n{text}"
    );

    // Every channel is active and connected.
    for origin in ["eu-west", "ap-south"] {
        wait_value(
            addr,
            "concord_channel_status",
            &[("origin", origin), ("status", "active")],
            |v| v == 1.0,
        )
        .await;
        wait_value(
            addr,
            "concord_channel_connected",
            &[("origin", origin)],
            |v| v == 1.0,
        )
        .await;
        let failed = value(
            &scrape(addr).await,
            "concord_channel_status",
            &[("origin", origin), ("status", "failed")],
        );
        assert_eq!(failed, Some(0.0), "{origin} is not failed");
    }

    // Local writes move the local total.
    let before = value(&scrape(addr).await, "concord_local_writes_total", &[]).expect("a total");
    for i in 0..25 {
        cluster.clients[0]
            .put("hlcs", format!("m{i}").as_bytes(), b"v")
            .await
            .expect("put");
    }
    wait_value(addr, "concord_local_writes_total", &[], |v| {
        v == before + 25.0
    })
    .await;

    // Remote writes move the remote total.
    let remote = value(&scrape(addr).await, "concord_remote_applied_total", &[]).expect("a total");
    for _ in 0..10 {
        cluster.clients[1]
            .increment("counters", b"c", 1)
            .await
            .expect("incr");
    }
    wait_value(addr, "concord_remote_applied_total", &[], |v| {
        v >= remote + 10.0
    })
    .await;

    // A peer that goes away shows as disconnected.
    cluster.stop(2).await;
    wait_value(
        addr,
        "concord_channel_connected",
        &[("origin", "ap-south")],
        |v| v == 0.0,
    )
    .await;
    let still = value(
        &scrape(addr).await,
        "concord_channel_connected",
        &[("origin", "eu-west")],
    );
    assert_eq!(still, Some(1.0));
    cluster.shutdown().await;
}
