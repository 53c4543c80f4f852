//! Read-your-writes across regions over gRPC: a Get with the token of a Put
//! made in another region waits for it and never reads stale; a token the
//! node cannot have fails with DEADLINE_EXCEEDED after the wait asked for.

mod support;

use std::time::{Duration, Instant};

use concord_core::Policy;
use concord_node::client::Read;
use concord_node::pb;
use support::{Cluster, spec};
use tonic::Code;

const NAMES: [&str; 2] = ["us-east", "eu-west"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_after_a_token_from_another_region_never_reads_stale() {
    let mut cluster = Cluster::start(
        &NAMES,
        &[
            spec("hlcs", Policy::LwwHlc),
            spec("counters", Policy::Counter),
        ],
    )
    .await;
    let (a, b) = cluster.clients.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    for i in 0..200i64 {
        // The same key overwritten: a stale read would see the previous value.
        let value = format!("v{i}");
        let t = a.put("hlcs", b"k", value.as_bytes()).await.expect("put");
        match b.get_after("hlcs", b"k", t).await.expect("get after") {
            Read::Value {
                value: got,
                version,
            } => {
                assert_eq!(String::from_utf8_lossy(&got), value, "write {i}");
                assert_eq!(version.write, Some(t));
            }
            other => panic!("write {i}: {other:?}"),
        }
        let t = a.increment("counters", b"c", 1).await.expect("incr");
        assert_eq!(
            b.get_after("counters", b"c", t).await.expect("get after"),
            Read::Counter(i + 1),
            "increment {i}"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_node_cannot_have_fails_with_deadline_exceeded_after_the_wait() {
    let mut cluster = Cluster::start(&NAMES, &[spec("hlcs", Policy::LwwHlc)]).await;
    let t = cluster.clients[0]
        .put("hlcs", b"k", b"v")
        .await
        .expect("put");
    let wait_ms = 400;
    for (i, token) in [
        // us-east's write a million seqs ahead: not made yet anywhere.
        pb::WriteRef {
            origin: t.origin,
            seq: t.seq + 1_000_000,
        },
        // An origin that does not exist.
        pb::WriteRef { origin: 77, seq: 1 },
    ]
    .into_iter()
    .enumerate()
    {
        for c in 0..2 {
            let started = Instant::now();
            let err = cluster.clients[c]
                .raw()
                .get(pb::GetRequest {
                    collection: "hlcs".into(),
                    key: b"k".to_vec(),
                    after: Some(token),
                    wait_ms,
                })
                .await
                .expect_err("the write is not there");
            let took = started.elapsed();
            assert_eq!(
                err.code(),
                Code::DeadlineExceeded,
                "token {i} at {c}: {err:?}"
            );
            assert!(
                err.message()
                    .contains(&format!("write r{}#{} ", token.origin, token.seq)),
                "the message names the write: {}",
                err.message()
            );
            // It waited as asked: not less, and not the node's 5 s default.
            assert!(
                took >= Duration::from_millis(u64::from(wait_ms)),
                "answered after {took:?}"
            );
            assert!(took < Duration::from_secs(4), "answered after {took:?}");
        }
    }
    // A token with seq 0 is malformed, not a wait.
    let err = cluster.clients[1]
        .raw()
        .get(pb::GetRequest {
            collection: "hlcs".into(),
            key: b"k".to_vec(),
            after: Some(pb::WriteRef { origin: 1, seq: 0 }),
            wait_ms,
        })
        .await
        .expect_err("seq 0");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // And the nodes still answer the real token.
    assert!(matches!(
        cluster.clients[1]
            .get_after("hlcs", b"k", t)
            .await
            .expect("get"),
        Read::Value { .. }
    ));
    cluster.shutdown().await;
}
