//! Three real nodes in one process, over real gRPC on loopback: concurrent
//! writes under every policy converge key by key in every region; the
//! conflict queue is watched and resolved over gRPC; a node restarted on its
//! data dir keeps everything and rejoins.

mod support;

use std::collections::BTreeSet;

use concord_node::client::{Client, Read};
use concord_node::demo::wait_converged;
use concord_node::pb;
use support::{Cluster, NAMES, WAIT, every_policy};

const KEYS: usize = 5;

fn key(i: usize) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

/// Every (collection, key) the concurrent writes touch.
fn all_keys() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for c in ["walls", "hlcs", "mvs", "counters", "queues"] {
        for i in 0..KEYS {
            out.push((c.to_owned(), key(i)));
        }
    }
    out
}

/// Each region writes every key of every collection at once.
async fn concurrent_writes(clients: &[Client]) {
    let mut tasks = Vec::new();
    for (r, name) in NAMES.iter().enumerate() {
        let mut c = clients[r].clone();
        let name = (*name).to_owned();
        tasks.push(tokio::spawn(async move {
            for i in 0..KEYS {
                let k = key(i);
                let v = format!("from-{name}");
                c.put("walls", &k, v.as_bytes()).await.expect("put walls");
                c.put("hlcs", &k, v.as_bytes()).await.expect("put hlcs");
                c.put("mvs", &k, v.as_bytes()).await.expect("put mvs");
                c.increment("counters", &k, 10).await.expect("incr");
                c.increment("counters", &k, -(r as i64 + 1))
                    .await
                    .expect("decr");
                c.put("queues", &k, v.as_bytes()).await.expect("put queues");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn sibling_values(versions: &[pb::Version]) -> BTreeSet<String> {
    versions
        .iter()
        .map(|v| text(v.value.as_deref().unwrap_or_default()))
        .collect()
}

async fn converge(clients: &mut [Client], keys: &[(String, Vec<u8>)]) {
    let refs: Vec<(&str, &[u8])> = keys
        .iter()
        .map(|(c, k)| (c.as_str(), k.as_slice()))
        .collect();
    wait_converged(clients, &refs, WAIT)
        .await
        .expect("the regions converge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_under_every_policy_converge_and_the_queue_is_watched_and_resolved() {
    let mut cluster = Cluster::start(&NAMES, &every_policy()).await;
    // Watch the queue of us-east from the start.
    let mut watch = cluster.clients[0]
        .raw()
        .watch_conflicts(pb::WatchConflictsRequest { after: 0 })
        .await
        .expect("watch")
        .into_inner();

    concurrent_writes(&cluster.clients).await;
    let keys = all_keys();
    converge(&mut cluster.clients, &keys).await;

    let everyone: BTreeSet<String> = NAMES.iter().map(|n| format!("from-{n}")).collect();
    for (collection, k) in &keys {
        let mut reads = Vec::new();
        for c in cluster.clients.iter_mut() {
            reads.push(c.get(collection, k).await.expect("get"));
        }
        // Key by key, every region reads the same.
        for r in &reads[1..] {
            assert_eq!(
                describe(r),
                describe(&reads[0]),
                "{collection}/{} differs",
                text(k)
            );
        }
        match (collection.as_str(), &reads[0]) {
            ("walls" | "hlcs", Read::Value { value, version }) => {
                assert!(everyone.contains(&text(value)), "{collection}: {value:?}");
                assert_eq!(text(value), format!("from-{}", version.origin));
            }
            ("mvs" | "queues", Read::Siblings { versions, .. }) => {
                // Blind concurrent writes: one sibling per region.
                assert_eq!(sibling_values(versions), everyone, "{collection}");
            }
            ("counters", Read::Counter(n)) => assert_eq!(*n, 3 * 10 - (1 + 2 + 3)),
            (c, other) => panic!("{c}: unexpected read {other:?}"),
        }
    }
    // Every region has an open queue item per queue key.
    for c in cluster.clients.iter_mut() {
        let open: BTreeSet<Vec<u8>> = c
            .conflicts(false)
            .await
            .expect("list")
            .into_iter()
            .filter(|i| i.collection == "queues")
            .map(|i| i.key)
            .collect();
        assert_eq!(open.len(), KEYS);
    }

    // The watch streamed the queue item of k0 ...
    let item = loop {
        let it = tokio::time::timeout(WAIT, watch.message())
            .await
            .expect("a queue item in time")
            .expect("the watch is healthy")
            .expect("the watch is open");
        if it.collection == "queues" && it.key == key(0) && it.status == "open" {
            break it;
        }
    };
    assert_eq!(item.reason, "concurrent");
    // ... whose versions are the three writes, once all have arrived.
    let resolved = b"chosen by the test".to_vec();
    cluster.clients[0]
        .resolve(item.id, Some(resolved.clone()))
        .await
        .expect("resolve");
    // Then its closing.
    loop {
        let it = tokio::time::timeout(WAIT, watch.message())
            .await
            .expect("the closing in time")
            .expect("the watch is healthy")
            .expect("the watch is open");
        if it.id == item.id && it.status != "open" {
            assert_eq!(it.status, "resolved");
            break;
        }
    }
    let k0 = vec![("queues".to_owned(), key(0))];
    converge(&mut cluster.clients, &k0).await;
    for c in cluster.clients.iter_mut() {
        let values = match c.get("queues", &key(0)).await.expect("get") {
            Read::Siblings { versions, .. } => sibling_values(&versions),
            Read::Value { value, .. } => [text(&value)].into(),
            other => panic!("queues/k0: {other:?}"),
        };
        assert_eq!(values, [text(&resolved)].into());
        // Each region closed its own item for k0.
        let still_open = c
            .conflicts(false)
            .await
            .expect("list")
            .into_iter()
            .any(|i| i.collection == "queues" && i.key == key(0));
        assert!(!still_open, "queues/k0 is still open somewhere");
    }
    drop(watch);
    cluster.shutdown().await;
}

fn describe(r: &Read) -> String {
    match r {
        Read::Siblings { versions, .. } => format!("siblings {:?}", sibling_values(versions)),
        Read::Value { value, version } => format!("value {} from {}", text(value), version.origin),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_everything_and_rejoins() {
    let mut cluster = Cluster::start(&NAMES, &every_policy()).await;
    concurrent_writes(&cluster.clients).await;
    let keys = all_keys();
    converge(&mut cluster.clients, &keys).await;
    let mut before = Vec::new();
    for (c, k) in &keys {
        before.push(describe(&cluster.clients[2].get(c, k).await.expect("get")));
    }
    let own_before = cluster.clients[2]
        .status()
        .await
        .expect("status")
        .local_writes;
    assert!(own_before > 0);

    // ap-south goes down; us-east keeps writing.
    cluster.stop(2).await;
    let mut while_down = Vec::new();
    for i in 0..20 {
        let k = format!("down-{i}").into_bytes();
        cluster.clients[0]
            .put("hlcs", &k, b"written while ap-south was down")
            .await
            .expect("put while a peer is down");
        cluster.clients[0]
            .increment("counters", b"k0", 1)
            .await
            .expect("incr while a peer is down");
        while_down.push(("hlcs".to_owned(), k));
    }

    // Same data dir, same address.
    cluster.restart(2).await;
    // Everything it had is still there, before it even reconnects.
    for ((c, k), b) in keys.iter().zip(&before) {
        if c == "counters" && k == &key(0) {
            continue; // moves with the writes made meanwhile
        }
        let now = describe(&cluster.clients[2].get(c, k).await.expect("get"));
        assert_eq!(&now, b, "{c}/{} after restart", text(k));
    }
    cluster.wait_connected().await;

    // It catches up with what it missed, and its new writes reach the others.
    cluster.clients[2]
        .put("hlcs", b"after-restart", b"from ap-south again")
        .await
        .expect("put after restart");
    let mut check = keys.clone();
    check.extend(while_down.iter().cloned());
    check.push(("hlcs".to_owned(), b"after-restart".to_vec()));
    converge(&mut cluster.clients, &check).await;
    for c in cluster.clients.iter_mut() {
        assert_eq!(
            c.get("counters", &key(0)).await.expect("get"),
            Read::Counter(24 + 20)
        );
        for (col, k) in &while_down {
            assert!(matches!(
                c.get(col, k).await.expect("get"),
                Read::Value { .. }
            ));
        }
        match c.get("hlcs", b"after-restart").await.expect("get") {
            Read::Value { value, version } => {
                assert_eq!(value, b"from ap-south again");
                assert_eq!(version.origin, "ap-south");
            }
            other => panic!("after-restart: {other:?}"),
        }
    }
    // The restarted node's own log continued where it was.
    let s = cluster.clients[2].status().await.expect("status");
    let own = s
        .applied
        .iter()
        .find(|w| w.origin == 3)
        .expect("its own cursor")
        .seq;
    assert_eq!(own, own_before + 1, "the own log continues where it was");
    cluster.shutdown().await;
}
