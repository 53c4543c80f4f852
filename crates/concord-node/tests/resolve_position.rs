//! A resolution made from a stale reading of a conflict item is refused:
//! a version that arrived after the application read the item is never
//! replaced unseen.

mod support;

use concord_node::NodeError;
use concord_node::client::{Client, Read};
use concord_node::pb;
use support::{Cluster, NAMES, WAIT, eventually, every_policy};
use tonic::Code;

/// Waits until `c`'s queue item for `order-1` holds `n` versions.
async fn item_with_versions(c: &Client, n: usize) -> pb::ConflictItem {
    eventually(WAIT, &format!("an item of {n} versions"), || {
        let mut c = c.clone();
        async move {
            c.conflicts(false)
                .await
                .ok()?
                .into_iter()
                .find(|i| i.key == b"order-1" && i.versions.len() == n)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_based_on_a_stale_item_is_aborted_and_writes_nothing() {
    let mut cluster = Cluster::start(&NAMES, &every_policy()).await;
    // Two regions write the queue key at once: an item of two versions.
    cluster.clients[0]
        .put("queues", b"order-1", b"from us-east")
        .await
        .expect("put");
    cluster.clients[1]
        .put("queues", b"order-1", b"from eu-west")
        .await
        .expect("put");
    let stale = item_with_versions(&cluster.clients[0], 2).await;
    // A third version arrives after the application read the item.
    cluster.clients[2]
        .put("queues", b"order-1", b"from ap-south")
        .await
        .expect("put");
    let fresh = item_with_versions(&cluster.clients[0], 3).await;
    assert_eq!(fresh.id, stale.id);
    assert!(fresh.position > stale.position);
    let before = cluster.clients[0]
        .status()
        .await
        .expect("status")
        .local_writes;

    // The decision made on two versions is refused, and writes nothing.
    match cluster.clients[0]
        .resolve_item(&stale, Some(b"decided on two".to_vec()))
        .await
    {
        Err(NodeError::Status(s)) => {
            assert_eq!(s.code(), Code::Aborted, "{s:?}");
            assert!(s.message().contains("changed"), "{s:?}");
        }
        other => panic!("expected ABORTED, got {other:?}"),
    }
    let after = cluster.clients[0]
        .status()
        .await
        .expect("status")
        .local_writes;
    assert_eq!(after, before, "the refused resolution wrote nothing");
    let still_open = cluster.clients[0]
        .conflicts(false)
        .await
        .expect("list")
        .into_iter()
        .any(|i| i.id == stale.id);
    assert!(still_open);

    // Decided again on all three, it goes through.
    cluster.clients[0]
        .resolve_item(&fresh, Some(b"decided on three".to_vec()))
        .await
        .expect("a resolution of the current item");
    match cluster.clients[0]
        .get("queues", b"order-1")
        .await
        .expect("get")
    {
        Read::Siblings { versions, .. } => {
            assert_eq!(versions.len(), 1);
            assert_eq!(versions[0].value.as_deref(), Some(&b"decided on three"[..]));
        }
        other => panic!("unexpected read {other:?}"),
    }
    cluster.shutdown().await;
}
