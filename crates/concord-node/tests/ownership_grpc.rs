//! Owned collections over gRPC between two real nodes: refusal at the
//! non-owner naming the owner, forwarding to the owner, the Owner call, a
//! takeover of a stopped owner recorded in Status, and a handoff of a key.

mod support;

use concord_node::client::Read;
use concord_node::pb;
use support::{Cluster, WAIT, eventually, owned_spec};
use tonic::Code;

const NAMES: [&str; 2] = ["us-east", "eu-west"];

/// `accounts` refuses at the non-owner; `ledger` forwards. Key n belongs to
/// us-east if n is even, eu-west if odd.
async fn cluster() -> Cluster {
    Cluster::start(
        &NAMES,
        &[
            owned_spec("accounts", &[1, 2], false),
            owned_spec("ledger", &[1, 2], true),
        ],
    )
    .await
}

fn owner_request(collection: &str, key: &str) -> pb::OwnerRequest {
    pb::OwnerRequest {
        collection: collection.into(),
        key: key.as_bytes().to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_at_the_non_owner_is_refused_naming_the_owner_or_forwarded() {
    let mut cluster = cluster().await;
    // The Owner call, in both regions.
    for c in cluster.clients.iter_mut() {
        for (key, owner) in [("10", "us-east"), ("11", "eu-west")] {
            let r = c
                .raw()
                .owner(owner_request("accounts", key))
                .await
                .expect("owner")
                .into_inner();
            assert_eq!(r.owner, owner, "key {key}");
        }
    }
    let err = cluster.clients[0]
        .raw()
        .owner(owner_request("nope", "1"))
        .await
        .expect_err("unknown collection");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // The owner takes its key.
    let t = cluster.clients[0]
        .put("accounts", b"10", b"at the owner")
        .await
        .expect("put at the owner");
    assert_eq!(t.origin, 1);
    // The non-owner refuses, naming the owner.
    let err = cluster.clients[0]
        .put("accounts", b"11", b"not here")
        .await
        .expect_err("us-east does not own 11");
    let concord_node::NodeError::Status(status) = err else {
        panic!("{err:?}");
    };
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("owned by region eu-west"),
        "{}",
        status.message()
    );
    for c in cluster.clients.iter_mut() {
        assert_eq!(c.get("accounts", b"11").await.expect("get"), Read::Missing);
    }
    // Increments and deletes are refused too.
    let err = cluster.clients[1]
        .raw()
        .delete(pb::DeleteRequest {
            collection: "accounts".into(),
            key: b"10".to_vec(),
            context: None,
            concern: None,
        })
        .await
        .expect_err("eu-west does not own 10");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("us-east"), "{}", err.message());

    // A forwarding collection: the write lands at the owner.
    let t = cluster.clients[0]
        .put("ledger", b"11", b"forwarded")
        .await
        .expect("forwarded put");
    assert_eq!(t.origin, 2, "the token is the owner's");
    match cluster.clients[1]
        .get_after("ledger", b"11", t)
        .await
        .expect("get at the owner")
    {
        Read::Value { value, version } => {
            assert_eq!(value, b"forwarded");
            assert_eq!(version.origin, "eu-west");
        }
        other => panic!("{other:?}"),
    }
    // And comes back to the region it was made at.
    assert!(matches!(
        cluster.clients[0]
            .get_after("ledger", b"11", t)
            .await
            .expect("get"),
        Read::Value { .. }
    ));
    // A key the forwarding region owns is written there.
    let t = cluster.clients[0]
        .put("ledger", b"12", b"local")
        .await
        .expect("put at the owner");
    assert_eq!(t.origin, 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_of_a_stopped_owner_is_an_event_in_status() {
    let mut cluster = cluster().await;
    let t = cluster.clients[1]
        .put("accounts", b"11", b"written at eu-west")
        .await
        .expect("put at the owner");
    cluster.clients[0]
        .get_after("accounts", b"11", t)
        .await
        .expect("replicated");
    let epoch_before = cluster.clients[0]
        .status()
        .await
        .expect("status")
        .ownership_epoch;
    cluster.stop(1).await;

    let event = cluster.clients[0]
        .raw()
        .takeover(pb::TakeoverRequest {
            from: "eu-west".into(),
            reason: "eu-west is down".into(),
        })
        .await
        .expect("takeover")
        .into_inner()
        .event
        .expect("an event");
    assert_eq!(event.from, "eu-west");
    assert_eq!(event.to, "us-east");
    assert_eq!(event.reason, "eu-west is down");
    assert!(
        event.epoch > epoch_before,
        "{} > {epoch_before}",
        event.epoch
    );
    assert_eq!(event.at_risk_writes, 0, "every eu-west write was applied");

    let s = cluster.clients[0].status().await.expect("status");
    assert_eq!(s.ownership_epoch, event.epoch);
    let listed = s
        .failovers
        .iter()
        .find(|f| f.from == "eu-west")
        .expect("the failover is listed");
    assert_eq!(listed.epoch, event.epoch);
    assert_eq!(listed.to, "us-east");

    // us-east owns eu-west's keys now, and kept what eu-west wrote.
    let r = cluster.clients[0]
        .raw()
        .owner(owner_request("accounts", "11"))
        .await
        .expect("owner")
        .into_inner();
    assert_eq!((r.owner.as_str(), r.epoch), ("us-east", event.epoch));
    match cluster.clients[0]
        .get("accounts", b"11")
        .await
        .expect("get")
    {
        Read::Value { value, .. } => assert_eq!(value, b"written at eu-west"),
        other => panic!("{other:?}"),
    }
    cluster.clients[0]
        .put("accounts", b"11", b"after the takeover")
        .await
        .expect("the new owner takes writes");
    // Bad takeovers.
    for (from, code) in [
        ("mars", Code::InvalidArgument),
        ("us-east", Code::InvalidArgument),
    ] {
        let err = cluster.clients[0]
            .raw()
            .takeover(pb::TakeoverRequest {
                from: from.into(),
                reason: String::new(),
            })
            .await
            .expect_err("a bad takeover");
        assert_eq!(err.code(), code, "{from}: {err:?}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_moves_a_key_without_losing_anything() {
    let mut cluster = cluster().await;
    let mut last = None;
    for i in 0..20 {
        last = Some(
            cluster.clients[0]
                .put("accounts", b"10", format!("v{i}").as_bytes())
                .await
                .expect("put at the owner"),
        );
    }
    cluster.clients[0]
        .put("accounts", b"20", b"stays")
        .await
        .expect("put");
    let r = cluster.clients[0]
        .raw()
        .handoff(pb::HandoffRequest {
            collection: "accounts".into(),
            keys: vec![b"10".to_vec()],
            to: "eu-west".into(),
            timeout_ms: 15_000,
        })
        .await
        .expect("handoff")
        .into_inner();
    assert!(r.epoch > 0);
    let last = last.expect("a token");
    assert!(
        r.drained_through >= last.seq,
        "{} >= {}",
        r.drained_through,
        last.seq
    );

    // Both regions answer the new owner (eu-west once it applied the map).
    for i in 0..2 {
        let c = cluster.clients[i].clone();
        eventually(WAIT, "the new owner known", || {
            let mut c = c.clone();
            async move {
                let o = c
                    .raw()
                    .owner(owner_request("accounts", "10"))
                    .await
                    .expect("owner")
                    .into_inner();
                (o.owner == "eu-west" && o.epoch >= r.epoch).then_some(())
            }
        })
        .await;
    }
    // The old owner refuses writes to the key, naming the new one.
    let err = cluster.clients[0]
        .raw()
        .put(pb::PutRequest {
            collection: "accounts".into(),
            key: b"10".to_vec(),
            value: b"too late".to_vec(),
            context: None,
            concern: None,
        })
        .await
        .expect_err("us-east no longer owns 10");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("eu-west"), "{}", err.message());
    // Nothing written before is lost: the new owner has the last value.
    match cluster.clients[1]
        .get_after("accounts", b"10", last)
        .await
        .expect("get")
    {
        Read::Value { value, .. } => assert_eq!(value, b"v19"),
        other => panic!("{other:?}"),
    }
    // The new owner takes writes to it; the other keys did not move.
    let t = cluster.clients[1]
        .put("accounts", b"10", b"at the new owner")
        .await
        .expect("put at the new owner");
    match cluster.clients[0]
        .get_after("accounts", b"10", t)
        .await
        .expect("get")
    {
        Read::Value { value, .. } => assert_eq!(value, b"at the new owner"),
        other => panic!("{other:?}"),
    }
    cluster.clients[0]
        .put("accounts", b"20", b"still ours")
        .await
        .expect("us-east still owns 20");
    cluster.shutdown().await;
}
