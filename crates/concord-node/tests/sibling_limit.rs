//! A blind write to a multi-value entity at its sibling cap is refused with
//! RESOURCE_EXHAUSTED, counted, and writes nothing; a write back with the
//! context (which merges the siblings) still goes through.

mod support;

use concord_core::{CollectionConfig, Policy};
use concord_node::NodeError;
use concord_node::client::Read;
use support::{Cluster, NAMES, WAIT, eventually, spec_with};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blind_write_past_the_sibling_cap_is_refused_and_a_merge_is_not() {
    let mut config = CollectionConfig::new(Policy::Mv);
    config.max_siblings = 2;
    let mut cluster = Cluster::start(&NAMES[..2], &[spec_with("carts", config)]).await;
    // Two regions write blind at once: two siblings everywhere.
    cluster.clients[0]
        .put("carts", b"c1", b"milk")
        .await
        .expect("put");
    cluster.clients[1]
        .put("carts", b"c1", b"eggs")
        .await
        .expect("put");
    {
        let c = &cluster.clients[0];
        eventually(WAIT, "two siblings at us-east", || {
            let mut c = c.clone();
            async move {
                match c.get("carts", b"c1").await.ok()? {
                    Read::Siblings { versions, .. } if versions.len() == 2 => Some(()),
                    _ => None,
                }
            }
        })
        .await;
    }
    let status = cluster.clients[0].status().await.expect("status");
    let (writes, refused) = (
        status.local_writes,
        status.rejections.expect("rejections").resource_exhausted,
    );

    // A third blind write is refused, names the cap, and writes nothing.
    match cluster.clients[0].put("carts", b"c1", b"bread").await {
        Err(NodeError::Status(s)) => {
            assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
            assert!(s.message().contains("cap is 2"), "{s:?}");
        }
        other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
    }
    let status = cluster.clients[0].status().await.expect("status");
    assert_eq!(status.local_writes, writes, "nothing was written");
    assert_eq!(
        status.rejections.expect("rejections").resource_exhausted,
        refused + 1,
        "the refusal is counted"
    );

    // Writing back with the context merges them: allowed, one version left.
    let Read::Siblings { context, .. } = cluster.clients[0].get("carts", b"c1").await.expect("get")
    else {
        panic!("siblings expected");
    };
    cluster.clients[0]
        .put_with("carts", b"c1", b"eggs+milk", Some(context))
        .await
        .expect("a merge is not refused");
    match cluster.clients[0].get("carts", b"c1").await.expect("get") {
        Read::Siblings { versions, .. } => {
            assert_eq!(versions.len(), 1);
            assert_eq!(versions[0].value.as_deref(), Some(&b"eggs+milk"[..]));
        }
        other => panic!("unexpected read {other:?}"),
    }
    cluster.shutdown().await;
}
