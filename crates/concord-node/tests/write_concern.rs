//! Write concerns over gRPC against three real nodes: `local`,
//! `regions(n)` and `all`, a timeout that says where the write is durable,
//! an impossible concern, and WriteMany (consecutive tokens, all or none).

mod support;

use std::collections::BTreeSet;

use concord_core::Policy;
use concord_node::client::Read;
use concord_node::pb;
use concord_node::pb::write_concern::Level;
use support::{Cluster, NAMES, spec};
use tonic::Code;

fn concern(level: Level, regions: u32, timeout_ms: u32) -> Option<pb::WriteConcern> {
    Some(pb::WriteConcern {
        level: level.into(),
        regions,
        timeout_ms,
    })
}

fn put(key: &str, value: &str, concern: Option<pb::WriteConcern>) -> pb::PutRequest {
    pb::PutRequest {
        collection: "hlcs".into(),
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        context: None,
        concern,
    }
}

fn collections() -> Vec<concord_node::config::CollectionSpec> {
    vec![
        spec("hlcs", Policy::LwwHlc),
        spec("counters", Policy::Counter),
    ]
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_regions_and_all_answer_with_where_the_write_is_durable() {
    let mut cluster = Cluster::start(&NAMES, &collections()).await;
    let raw = cluster.clients[0].raw();

    let local = raw
        .put(put("a", "1", concern(Level::Local, 0, 0)))
        .await
        .expect("local put")
        .into_inner();
    assert_eq!(
        local.durable_in.first().map(String::as_str),
        Some("us-east")
    );
    let token = local.token.expect("a token");
    assert_eq!(token.origin, 1);

    let one = raw
        .put(put("b", "2", concern(Level::Regions, 1, 10_000)))
        .await
        .expect("regions(1) put")
        .into_inner();
    assert!(one.durable_in.len() >= 2, "{:?}", one.durable_in);
    assert_eq!(one.durable_in[0], "us-east");
    assert!(
        set(&one.durable_in[1..]).is_subset(&names(&["eu-west", "ap-south"])),
        "{:?}",
        one.durable_in
    );

    let all = raw
        .put(put("c", "3", concern(Level::All, 0, 10_000)))
        .await
        .expect("all put")
        .into_inner();
    assert_eq!(set(&all.durable_in), names(&NAMES));
    assert_eq!(all.durable_in.len(), 3);
    let t = all.token.expect("a token");
    // Durable everywhere means applied everywhere: the others read it at once.
    for c in cluster.clients.iter_mut().skip(1) {
        match c.get_after("hlcs", b"c", t).await.expect("get") {
            Read::Value { value, .. } => assert_eq!(value, b"3"),
            other => panic!("{other:?}"),
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_with_a_peer_down_times_out_saying_where_the_write_is_durable() {
    let mut cluster = Cluster::start(&NAMES, &collections()).await;
    cluster.stop(2).await;
    let raw = cluster.clients[0].raw();
    let err = raw
        .put(put("x", "held back", concern(Level::All, 0, 1_000)))
        .await
        .expect_err("ap-south is down");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    let msg = err.message();
    assert!(msg.contains("durable in us-east (here), eu-west"), "{msg}");
    assert!(msg.contains("not yet in ap-south"), "{msg}");
    // The write stands: it is readable here and at eu-west.
    assert!(matches!(
        cluster.clients[0].get("hlcs", b"x").await.expect("get"),
        Read::Value { .. }
    ));
    // regions(1) is still met by eu-west.
    let one = cluster.clients[0]
        .raw()
        .put(put("y", "v", concern(Level::Regions, 1, 10_000)))
        .await
        .expect("regions(1) with one peer up")
        .into_inner();
    assert_eq!(
        one.durable_in,
        vec!["us-east".to_owned(), "eu-west".to_owned()]
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_regions_than_there_are_peers_is_invalid() {
    let mut cluster = Cluster::start(&NAMES, &collections()).await;
    let err = cluster.clients[0]
        .raw()
        .put(put("z", "v", concern(Level::Regions, 5, 1_000)))
        .await
        .expect_err("5 other regions of 2");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains('5'), "{}", err.message());
    let err = cluster.clients[0]
        .raw()
        .put(put("z", "v", concern(Level::Regions, 0, 1_000)))
        .await
        .expect_err("regions(0)");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // Nothing was written.
    assert_eq!(
        cluster.clients[0].get("hlcs", b"z").await.expect("get"),
        Read::Missing
    );
    cluster.shutdown().await;
}

fn item(collection: &str, key: &str, op: pb::write_item::Op) -> pb::WriteItem {
    pb::WriteItem {
        collection: collection.into(),
        key: key.as_bytes().to_vec(),
        op: Some(op),
        context: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_many_returns_consecutive_tokens_and_is_all_or_nothing() {
    use pb::write_item::Op;
    let mut cluster = Cluster::start(&NAMES, &collections()).await;
    let before = cluster.clients[0]
        .put("hlcs", b"first", b"0")
        .await
        .expect("put");

    let writes: Vec<pb::WriteItem> = (0..10)
        .map(|i| {
            item(
                "hlcs",
                &format!("many-{i}"),
                Op::Put(format!("v{i}").into_bytes()),
            )
        })
        .chain([item("counters", "hits", Op::Increment(7))])
        .collect();
    let r = cluster.clients[0]
        .raw()
        .write_many(pb::WriteManyRequest {
            writes,
            concern: concern(Level::All, 0, 10_000),
        })
        .await
        .expect("write many")
        .into_inner();
    assert_eq!(r.count, 11);
    let first = r.first.expect("first token");
    assert_eq!(first.origin, 1);
    assert_eq!(first.seq, before.seq + 1, "tokens follow the last write");
    assert_eq!(set(&r.durable_in), names(&NAMES));
    // Every write is readable, each after its own token, in another region.
    for i in 0..10u64 {
        let t = pb::WriteRef {
            origin: 1,
            seq: first.seq + i,
        };
        match cluster.clients[1]
            .get_after("hlcs", format!("many-{i}").as_bytes(), t)
            .await
            .expect("get")
        {
            Read::Value { value, version } => {
                assert_eq!(value, format!("v{i}").into_bytes());
                assert_eq!(version.write, Some(t), "write {i} has token first+{i}");
            }
            other => panic!("many-{i}: {other:?}"),
        }
    }
    assert_eq!(
        cluster.clients[2]
            .get("counters", b"hits")
            .await
            .expect("get"),
        Read::Counter(7)
    );

    // One bad item (an increment on an lww collection) makes none of them.
    let seq_before = cluster.clients[0]
        .status()
        .await
        .expect("status")
        .applied
        .iter()
        .find(|w| w.origin == 1)
        .expect("own cursor")
        .seq;
    let writes = vec![
        item("hlcs", "none-0", Op::Put(b"a".to_vec())),
        item("counters", "none-1", Op::Increment(1)),
        item("hlcs", "none-2", Op::Increment(1)),
        item("hlcs", "none-3", Op::Put(b"b".to_vec())),
    ];
    let err = cluster.clients[0]
        .raw()
        .write_many(pb::WriteManyRequest {
            writes,
            concern: None,
        })
        .await
        .expect_err("writes[2] is bad");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("writes[2]"), "{}", err.message());
    for k in ["none-0", "none-2", "none-3"] {
        assert_eq!(
            cluster.clients[0]
                .get("hlcs", k.as_bytes())
                .await
                .expect("get"),
            Read::Missing,
            "{k}"
        );
    }
    assert_eq!(
        cluster.clients[0]
            .get("counters", b"none-1")
            .await
            .expect("get"),
        Read::Missing
    );
    let seq_after = cluster.clients[0]
        .status()
        .await
        .expect("status")
        .applied
        .iter()
        .find(|w| w.origin == 1)
        .expect("own cursor")
        .seq;
    assert_eq!(seq_after, seq_before, "no write was made");

    // A bad collection name in an item is named too.
    let err = cluster.clients[0]
        .raw()
        .write_many(pb::WriteManyRequest {
            writes: vec![
                item("hlcs", "ok", Op::Put(b"a".to_vec())),
                item("no spaces", "k", Op::Put(b"a".to_vec())),
            ],
            concern: None,
        })
        .await
        .expect_err("writes[1] is bad");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("writes[1]"), "{}", err.message());
    assert_eq!(
        cluster.clients[0].get("hlcs", b"ok").await.expect("get"),
        Read::Missing
    );
    cluster.shutdown().await;
}
