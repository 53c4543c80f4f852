//! Limits: an oversize message, key or value, a WriteMany over its item
//! limit, a peer batch over its limit, and calls over a client's or a
//! peer's concurrency are each refused with their status, counted, and
//! write nothing.

mod support;

use std::time::Duration;

use concord_core::Policy;
use concord_node::client::{Client, Read};
use concord_node::pb;
use support::{Cluster, RawPeer, WAIT, batch_frame, hello, now, spec, tagged_set};
use tonic::Code;

const MAX_KEY: usize = 16;
const MAX_VALUE: usize = 64;
const MAX_MESSAGE: usize = 8192;

async fn cluster() -> Cluster {
    Cluster::start_with_fakes(
        &["us-east", "eu-west"],
        &["ap-south"],
        &[spec("hlcs", Policy::LwwHlc), spec("queues", Policy::Queue)],
        |c| {
            c.tuning.max_key_bytes = MAX_KEY;
            c.tuning.max_value_bytes = MAX_VALUE;
            c.tuning.max_message_bytes = MAX_MESSAGE;
            c.tuning.max_batch_writes = 4;
            c.limits.max_peer_batch = 4;
            c.limits.max_write_many = 3;
            c.limits.max_concurrent_per_client = 64;
            c.limits.max_concurrent_per_peer = 1;
        },
    )
    .await
}

fn item(key: &[u8], value: &[u8]) -> pb::WriteItem {
    pb::WriteItem {
        collection: "hlcs".into(),
        key: key.to_vec(),
        context: None,
        op: Some(pb::write_item::Op::Put(value.to_vec())),
    }
}

fn put(key: &[u8], value: Vec<u8>) -> pb::PutRequest {
    pb::PutRequest {
        collection: "hlcs".into(),
        key: key.to_vec(),
        value,
        context: None,
        concern: None,
    }
}

async fn missing(c: &mut Client, key: &[u8]) {
    assert_eq!(
        c.get("hlcs", key).await.expect("get"),
        Read::Missing,
        "{}",
        String::from_utf8_lossy(key)
    );
}

async fn rejections(c: &mut Client) -> pb::Rejections {
    c.status()
        .await
        .expect("status")
        .rejections
        .expect("rejections")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_limit_client_requests_are_refused_counted_and_write_nothing() {
    let mut cluster = cluster().await;
    let mut raw = cluster.clients[0].raw().clone();
    let before = rejections(&mut cluster.clients[0]).await;
    let local = cluster.clients[0]
        .status()
        .await
        .expect("status")
        .local_writes;

    // A key over max_key_bytes.
    let long_key = vec![b'k'; MAX_KEY + 1];
    let err = raw
        .put(put(&long_key, b"v".to_vec()))
        .await
        .expect_err("a long key");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("max_key_bytes"), "{}", err.message());

    // A value over max_value_bytes.
    let err = raw
        .put(put(b"big", vec![7; MAX_VALUE + 1]))
        .await
        .expect_err("a big value");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("max_value_bytes"),
        "{}",
        err.message()
    );

    // A message over max_message_bytes.
    let err = raw
        .put(put(b"huge", vec![7; MAX_MESSAGE + 100]))
        .await
        .expect_err("a huge message");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // A WriteMany over max_write_many, and one with an oversize item.
    let err = raw
        .write_many(pb::WriteManyRequest {
            writes: (0..4u8).map(|i| item(&[b'm', i], b"v")).collect(),
            concern: None,
        })
        .await
        .expect_err("too many items");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("max_write_many"),
        "{}",
        err.message()
    );
    let err = raw
        .write_many(pb::WriteManyRequest {
            writes: vec![item(b"m-ok", b"v"), item(b"m-big", &[1; MAX_VALUE + 1])],
            concern: None,
        })
        .await
        .expect_err("an oversize item");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("writes[1]"), "{}", err.message());

    let c = &mut cluster.clients[0];
    missing(c, &long_key[..MAX_KEY]).await;
    missing(c, b"big").await;
    missing(c, b"huge").await;
    for i in 0..4u8 {
        missing(c, &[b'm', i]).await;
    }
    missing(c, b"m-ok").await;
    missing(c, b"m-big").await;
    let s = c.status().await.expect("status");
    assert_eq!(s.local_writes, local, "nothing was written");
    let after = s.rejections.expect("rejections");
    assert!(
        after.invalid_argument >= before.invalid_argument + 4,
        "{after:?}"
    );
    assert!(
        after.resource_exhausted > before.resource_exhausted,
        "{after:?}"
    );
    // The limits themselves are fine.
    raw.put(put(&[b'k'; MAX_KEY], vec![1; MAX_VALUE]))
        .await
        .expect("a key and a value of exactly the limits");
    raw.write_many(pb::WriteManyRequest {
        writes: (0..3u8).map(|i| item(&[b'w', i], b"v")).collect(),
        concern: None,
    })
    .await
    .expect("max_write_many items");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_concurrency_is_resource_exhausted() {
    let cluster = Cluster::start_with(&["us-east"], &[spec("queues", Policy::Queue)], |c| {
        c.limits.max_concurrent_per_client = 2;
    })
    .await;
    let addr = cluster.addrs[0];
    // Two watches hold the admin's two slots while they are open.
    let mut a = support::client(addr).await;
    let mut b = support::client(addr).await;
    let wa = a
        .raw()
        .watch_conflicts(pb::WatchConflictsRequest { after: 0 })
        .await
        .expect("a first watch");
    let wb = b
        .raw()
        .watch_conflicts(pb::WatchConflictsRequest { after: 0 })
        .await
        .expect("a second watch");
    let mut c = support::client(addr).await;
    let err = c
        .put("queues", b"third", b"v")
        .await
        .expect_err("a third call");
    match err {
        concord_node::NodeError::Status(s) => {
            assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
            assert!(s.message().contains("max_concurrent_per_client"), "{s:?}");
        }
        other => panic!("{other}"),
    }
    // Closing a watch frees its slot.
    drop(wa);
    drop(wb);
    let start = std::time::Instant::now();
    loop {
        match c.put("queues", b"after", b"v").await {
            Ok(_) => break,
            Err(e) => assert!(start.elapsed() < WAIT, "the slots never came back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = rejections(&mut c).await;
    assert!(r.resource_exhausted >= 1, "{r:?}");
    match c.get("queues", b"third").await.expect("get") {
        Read::Missing => {}
        other => panic!("the refused write was made: {other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_batch_over_the_limit_closes_the_stream_and_writes_nothing() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    let mut raw = RawPeer::open(addr, hello(3, "ap-south"))
        .await
        .expect("ap-south connects");
    raw.expect_hello().await;
    let writes: Vec<_> = (1..=5u64)
        .map(|s| tagged_set(3, s, now(), "hlcs", format!("pb-{s}").as_bytes(), b"v"))
        .collect();
    raw.send(batch_frame(3, &writes)).await;
    raw.expect_closed(WAIT).await;
    for s in 1..=5u64 {
        missing(&mut cluster.clients[0], format!("pb-{s}").as_bytes()).await;
    }
    let r = rejections(&mut cluster.clients[0]).await;
    assert!(r.invalid_argument >= 1, "{r:?}");

    // A batch of the limit is fine, on a new stream.
    let mut raw = support::eventually(WAIT, "ap-south reconnects", || async {
        RawPeer::open(addr, hello(3, "ap-south")).await.ok()
    })
    .await;
    raw.expect_hello().await;
    raw.send(batch_frame(3, &writes[..4])).await;
    let t = pb::WriteRef { origin: 3, seq: 4 };
    assert!(matches!(
        cluster.clients[0]
            .get_after("hlcs", b"pb-4", t)
            .await
            .expect("get"),
        Read::Value { .. }
    ));

    // A second stream from ap-south while this one is open: over
    // max_concurrent_per_peer (1).
    let err = RawPeer::open(addr, hello(3, "ap-south"))
        .await
        .err()
        .expect("a second stream is refused");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let r = rejections(&mut cluster.clients[0]).await;
    assert!(r.resource_exhausted >= 1 && r.peer_streams >= 1, "{r:?}");
    drop(raw);
    cluster.shutdown().await;
}
