//! Bad input over real gRPC: each case gets the right status code, and the
//! node keeps serving afterwards (a Put and a Get after each prove it).
//! Client side: unknown and invalid collections, an op of the wrong kind,
//! oversize values and messages, bytes that are not protobuf, a bad context
//! vector. Peer side: a stream without a hello, a peer that claims another
//! region, malformed batches, a write stamped far in the future, a stream
//! that stops mid-batch.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use concord_core::{CollectionConfig, Policy, SkewAction};
use concord_node::client::Read;
use concord_node::node::Node;
use concord_node::pb;
use prost::Message;
use support::{
    Cluster, RawPeer, WAIT, batch_frame, configs_with_fakes, eventually, hello, now, spec,
    spec_with, tagged_set,
};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

const MAX_VALUE: usize = 64 * 1024;
const MAX_MESSAGE: usize = 128 * 1024;

fn collections() -> Vec<concord_node::config::CollectionSpec> {
    vec![
        spec("hlcs", Policy::LwwHlc),
        spec("mvs", Policy::Mv),
        spec("counters", Policy::Counter),
        spec_with(
            "refusing",
            CollectionConfig {
                skew_action: SkewAction::Refuse,
                ..CollectionConfig::new(Policy::LwwHlc)
            },
        ),
    ]
}

fn put(collection: &str, key: &[u8], value: Vec<u8>) -> pb::PutRequest {
    pb::PutRequest {
        collection: collection.into(),
        key: key.to_vec(),
        value,
        context: None,
        concern: None,
    }
}

/// Two real nodes (us-east, eu-west) with small size limits, and a third
/// region, ap-south, that only the tests' raw peer plays.
async fn cluster() -> Cluster {
    Cluster::start_with_fakes(
        &["us-east", "eu-west"],
        &["ap-south"],
        &collections(),
        |c| {
            c.tuning.max_value_bytes = MAX_VALUE;
            c.tuning.max_message_bytes = MAX_MESSAGE;
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_requests_get_their_status_and_the_node_keeps_serving() {
    let mut cluster = cluster().await;
    let mut raw = cluster.clients[0].raw().clone();

    // Unknown collection.
    let err = raw
        .put(put("nope", b"k", b"v".to_vec()))
        .await
        .expect_err("unknown collection");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("nope"), "{}", err.message());
    cluster.assert_serving(0, "hlcs").await;
    let err = raw
        .get(pb::GetRequest {
            collection: "nope".into(),
            key: b"k".to_vec(),
            after: None,
            wait_ms: 0,
        })
        .await
        .expect_err("unknown collection");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    cluster.assert_serving(0, "hlcs").await;

    // Invalid collection name.
    for name in ["no spaces", "", &"x".repeat(1000)] {
        let err = raw
            .put(put(name, b"k", b"v".to_vec()))
            .await
            .expect_err("invalid collection name");
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}: {err:?}");
        cluster.assert_serving(0, "hlcs").await;
    }

    // An increment on an lww collection, and a put on a counter.
    let err = raw
        .increment(pb::IncrementRequest {
            collection: "hlcs".into(),
            key: b"k".to_vec(),
            delta: 1,
            concern: None,
        })
        .await
        .expect_err("increment on lww");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("lww-hlc"), "{}", err.message());
    cluster.assert_serving(0, "hlcs").await;
    let err = raw
        .put(put("counters", b"k", b"v".to_vec()))
        .await
        .expect_err("put on a counter");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("counter"), "{}", err.message());
    cluster.assert_serving(0, "hlcs").await;

    // A value over max_value_bytes, in a message under max_message_bytes.
    let err = raw
        .put(put("hlcs", b"big", vec![7u8; MAX_VALUE + 1]))
        .await
        .expect_err("oversize value");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    cluster.assert_serving(0, "hlcs").await;
    // An oversize key.
    let err = raw
        .put(put("hlcs", &[b'k'; 5000], b"v".to_vec()))
        .await
        .expect_err("oversize key");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    cluster.assert_serving(0, "hlcs").await;
    // The largest value is fine.
    raw.put(put("hlcs", b"big", vec![7u8; MAX_VALUE]))
        .await
        .expect("a value of exactly max_value_bytes");

    // A message over max_message_bytes: tonic refuses to decode it.
    let err = raw
        .put(put("hlcs", b"huge", vec![7u8; MAX_MESSAGE + 1024]))
        .await
        .expect_err("oversize message");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("too large"), "{}", err.message());
    cluster.assert_serving(0, "hlcs").await;
    assert_eq!(
        cluster.clients[0].get("hlcs", b"huge").await.expect("get"),
        Read::Missing
    );

    // A context vector out of order, or with a zero entry.
    for (entries, field) in [
        (vec![(2, 1), (1, 1)], "context.entries[1]"),
        (vec![(1, 1), (1, 2)], "context.entries[1]"),
        (vec![(1, 0)], "context.entries[0].counter"),
        (vec![(70_000, 1)], "context.entries[0].region"),
    ] {
        let mut request = put("mvs", b"ctx", b"v".to_vec());
        request.context = Some(pb::VersionVector {
            entries: entries
                .iter()
                .map(|(region, counter)| pb::VersionEntry {
                    region: *region,
                    counter: *counter,
                })
                .collect(),
        });
        let err = raw.put(request).await.expect_err("bad context");
        assert_eq!(err.code(), Code::InvalidArgument, "{entries:?}: {err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
        cluster.assert_serving(0, "hlcs").await;
    }
    assert_eq!(
        cluster.clients[0].get("mvs", b"ctx").await.expect("get"),
        Read::Missing
    );

    // A write concern level that does not exist.
    let mut request = put("hlcs", b"lvl", b"v".to_vec());
    request.concern = Some(pb::WriteConcern {
        level: 42,
        regions: 0,
        timeout_ms: 0,
    });
    let err = raw.put(request).await.expect_err("bad level");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    cluster.assert_serving(0, "hlcs").await;

    // An unknown conflict item.
    let err = raw
        .resolve_conflict(pb::ResolveConflictRequest {
            id: 999_999,
            value: None,
            concern: None,
            expected_position: None,
        })
        .await
        .expect_err("unknown item");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    cluster.assert_serving(0, "hlcs").await;
    cluster.assert_serving(1, "hlcs").await;
    cluster.shutdown().await;
}

// ---------------------------------------------------------------------------
// Bytes that are not protobuf: a codec that sends whatever it is given.

#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_grpc(addr: SocketAddr) -> tonic::client::Grpc<concord_node::client::Transport> {
    // The admin token for the client service, ap-south's certificate for
    // the peer service.
    let channel = support::tls_channel(addr, Some("ap-south")).await;
    tonic::client::Grpc::new(support::with_token(channel))
}

async fn unary_bytes(
    addr: SocketAddr,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = raw_grpc(addr).await;
    grpc.ready().await.expect("ready");
    grpc.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_protobuf_are_refused_and_the_node_keeps_serving() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    // The codec itself works: a well-formed PutRequest through it succeeds.
    let good = put("hlcs", b"raw", b"through the raw codec".to_vec()).encode_to_vec();
    let answer = unary_bytes(addr, "/concord.v1.Concord/Put", good)
        .await
        .expect("a well-formed message");
    let answer = pb::WriteResponse::decode(answer.as_slice()).expect("a WriteResponse");
    assert_eq!(answer.token.expect("a token").origin, 1);

    let garbage: [&[u8]; 3] = [
        // Field 1, length-delimited, far longer than the message.
        &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
        // Wire type 7 does not exist.
        &[0xff, 0xff, 0xff, 0xff],
        // A truncated varint.
        &[0x08, 0x80],
    ];
    for path in [
        "/concord.v1.Concord/Put",
        "/concord.v1.Concord/Get",
        "/concord.v1.Concord/WriteMany",
    ] {
        for g in garbage {
            let err = unary_bytes(addr, path, g.to_vec())
                .await
                .expect_err("garbage is refused");
            // tonic-prost maps a protobuf decode error to INTERNAL.
            assert_eq!(err.code(), Code::Internal, "{path} {g:?}: {err:?}");
            assert!(err.message().contains("decode"), "{}", err.message());
            cluster.assert_serving(0, "hlcs").await;
        }
    }

    // Garbage as the first frame of a replication stream.
    let mut grpc = raw_grpc(addr).await;
    grpc.ready().await.expect("ready");
    let frames = tokio_stream::iter(vec![garbage[0].to_vec()]);
    let err = grpc
        .streaming(
            tonic::Request::new(frames),
            tonic::codegen::http::uri::PathAndQuery::from_static("/concord.v1.Peer/Replicate"),
            RawCodec,
        )
        .await
        .expect_err("garbage instead of a hello");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    cluster.assert_serving(0, "hlcs").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_a_hello_or_claiming_another_region_is_refused() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    let not_hello = pb::PeerFrame {
        frame: Some(pb::peer_frame::Frame::Heartbeat(pb::Heartbeat {
            heads: Vec::new(),
            now_micros: now().as_micros(),
        })),
    };
    let batch_first = batch_frame(3, &[tagged_set(3, 1, now(), "hlcs", b"k", b"v")]);
    let empty = pb::PeerFrame { frame: None };
    for (first, code, what) in [
        (not_hello, Code::InvalidArgument, "a heartbeat first"),
        (batch_first, Code::InvalidArgument, "a batch first"),
        (empty, Code::InvalidArgument, "an empty frame first"),
        (
            hello(1, "us-east"),
            Code::PermissionDenied,
            "this node's own id",
        ),
        (hello(9, "mars"), Code::PermissionDenied, "an unknown id"),
        (
            hello(3, "eu-west"),
            Code::PermissionDenied,
            "ap-south's id named eu-west",
        ),
        (
            hello(2, "ap-south"),
            Code::PermissionDenied,
            "eu-west's id named ap-south",
        ),
        (
            hello(70_000, "ap-south"),
            Code::InvalidArgument,
            "an id above 65535",
        ),
    ] {
        let err = RawPeer::open(addr, first)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: the node accepted the stream"));
        assert_eq!(err.code(), code, "{what}: {err:?}");
        cluster.assert_serving(0, "hlcs").await;
    }
    // A stream that closes before its hello.
    let mut peer = support::peer_client(addr, "ap-south").await;
    let err = peer
        .replicate(tokio_stream::iter(Vec::<pb::PeerFrame>::new()))
        .await
        .expect_err("no hello");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // The real peer is unaffected, and the right hello is welcome.
    let t = cluster.clients[0]
        .put("hlcs", b"after", b"v")
        .await
        .expect("put");
    assert!(matches!(
        cluster.clients[1]
            .get_after("hlcs", b"after", t)
            .await
            .expect("get"),
        Read::Value { .. }
    ));
    let mut raw = RawPeer::open(addr, hello(3, "ap-south"))
        .await
        .expect("the right hello is welcome");
    let h = raw.expect_hello().await;
    assert_eq!((h.region, h.region_name.as_str()), (1, "us-east"));
    // A second hello on the same stream that claims another region closes it.
    raw.send(hello(2, "eu-west")).await;
    raw.expect_closed(WAIT).await;
    cluster.assert_serving(0, "hlcs").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_batch_closes_its_stream_only() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    let w = |seq: u64, key: &str| tagged_set(3, seq, now(), "hlcs", key.as_bytes(), b"bad");
    let gap = {
        let mut f = batch_frame(3, &[w(1, "gap-1"), w(2, "gap-2")]);
        if let Some(pb::peer_frame::Frame::Batch(b)) = &mut f.frame {
            b.writes[1].seq = 3; // skips seq 2
        }
        f
    };
    let mixed = {
        let mut f = batch_frame(3, &[w(1, "mixed-1"), w(2, "mixed-2")]);
        if let Some(pb::peer_frame::Frame::Batch(b)) = &mut f.frame {
            b.writes[1].origin = 2; // eu-west's write in ap-south's batch
        }
        f
    };
    let bad_id = {
        let mut f = batch_frame(3, &[w(1, "id-1")]);
        if let Some(pb::peer_frame::Frame::Batch(b)) = &mut f.frame {
            b.writes[0].id = vec![1, 2, 3];
        }
        f
    };
    for (bad, what) in [
        (gap, "a gap"),
        (mixed, "mixed origins"),
        (bad_id, "a bad id"),
    ] {
        let mut raw = RawPeer::open(addr, hello(3, "ap-south"))
            .await
            .expect("hello accepted");
        raw.expect_hello().await;
        raw.send(bad).await;
        // The node closes this connection ...
        raw.expect_closed(WAIT).await;
        // ... keeps serving ...
        cluster.assert_serving(0, "hlcs").await;
        // ... and the other peer is unaffected.
        let t = cluster.clients[0]
            .put("hlcs", b"other-peer", what.as_bytes())
            .await
            .expect("put");
        match cluster.clients[1]
            .get_after("hlcs", b"other-peer", t)
            .await
            .expect("get at the other peer")
        {
            Read::Value { value, .. } => assert_eq!(value, what.as_bytes()),
            other => panic!("{what}: {other:?}"),
        }
    }
    // None of the malformed writes was applied.
    for k in ["gap-1", "gap-2", "mixed-1", "mixed-2", "id-1"] {
        assert_eq!(
            cluster.clients[0]
                .get("hlcs", k.as_bytes())
                .await
                .expect("get"),
            Read::Missing,
            "{k}"
        );
    }
    // The peer reconnects and its well-formed batch is applied.
    let raw = RawPeer::open(addr, hello(3, "ap-south"))
        .await
        .expect("reconnect");
    raw.send(batch_frame(3, &[w(1, "good-1"), w(2, "good-2")]))
        .await;
    let c = &mut cluster.clients[0];
    for k in ["good-1", "good-2"] {
        let t = pb::WriteRef {
            origin: 3,
            seq: if k == "good-1" { 1 } else { 2 },
        };
        assert!(matches!(
            c.get_after("hlcs", k.as_bytes(), t).await.expect("get"),
            Read::Value { .. }
        ));
    }
    drop(raw);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stamped_far_in_the_future_is_held_queued_and_applied_once_the_clock_catches_up() {
    // us-east on a manual clock; eu-west is the raw peer.
    let dir = tempfile::tempdir().expect("temp dir");
    let (cfgs, listeners) =
        configs_with_fakes(&["us-east"], &["eu-west"], dir.path(), &collections()).await;
    let clock = support::manual_clock();
    let listener = listeners.into_iter().next().expect("a listener");
    let addr = listener.local_addr().expect("addr");
    let node = Node::start_with_clock(cfgs[0].clone(), listener, clock.clone())
        .await
        .expect("node starts");
    let mut c = support::client(addr).await;

    let raw = RawPeer::open(addr, hello(2, "eu-west"))
        .await
        .expect("hello accepted");
    let ahead = Duration::from_secs(3600);
    let future = clock_now(&clock).saturating_add(ahead);
    raw.send(batch_frame(
        2,
        &[
            tagged_set(2, 1, future, "hlcs", b"future", b"from the future"),
            // Behind it in eu-west's log: held too, origins apply in order.
            tagged_set(2, 2, future, "hlcs", b"next", b"after the future write"),
        ],
    ))
    .await;

    // A future-timestamp item appears for the queue-skew collection.
    let item = eventually(WAIT, "a future-timestamp item", || {
        let mut c = c.clone();
        async move {
            c.conflicts(false)
                .await
                .expect("list")
                .into_iter()
                .find(|i| i.key == b"future")
        }
    })
    .await;
    assert_eq!(item.reason, "future-timestamp");
    assert_eq!(item.collection, "hlcs");
    assert!(item.detail.contains("ahead"), "{}", item.detail);
    assert_eq!(item.versions.len(), 1);
    assert_eq!(item.versions[0].origin, "eu-west");
    // Held: not visible.
    assert_eq!(c.get("hlcs", b"future").await.expect("get"), Read::Missing);
    assert_eq!(c.get("hlcs", b"next").await.expect("get"), Read::Missing);
    let s = c.status().await.expect("status");
    let applied_2 = s
        .applied
        .iter()
        .find(|w| w.origin == 2)
        .map_or(0, |w| w.seq);
    assert_eq!(applied_2, 0, "nothing of eu-west is applied yet");
    // The node keeps serving meanwhile.
    let t = c.put("hlcs", b"local", b"v").await.expect("put");
    assert!(matches!(
        c.get_after("hlcs", b"local", t).await.expect("get"),
        Read::Value { .. }
    ));

    // The clock catches up: both writes are applied, the item is released.
    clock.advance(ahead + Duration::from_secs(1));
    let v = eventually(WAIT, "the held write applied", || {
        let mut c = c.clone();
        async move {
            match c.get("hlcs", b"future").await.expect("get") {
                Read::Value { value, .. } => Some(value),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(v, b"from the future");
    let next = c
        .get_after("hlcs", b"next", pb::WriteRef { origin: 2, seq: 2 })
        .await
        .expect("get after the second write");
    assert!(matches!(next, Read::Value { .. }), "{next:?}");
    let items = c.conflicts(true).await.expect("list");
    let it = items
        .iter()
        .find(|i| i.id == item.id)
        .expect("the item is still listed");
    assert_eq!(it.status, "released");
    assert!(c.conflicts(false).await.expect("list").is_empty());
    drop(raw);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_write_of_a_refusing_collection_is_held_without_a_queue_item() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cfgs, listeners) =
        configs_with_fakes(&["us-east"], &["eu-west"], dir.path(), &collections()).await;
    let clock = support::manual_clock();
    let listener = listeners.into_iter().next().expect("a listener");
    let addr = listener.local_addr().expect("addr");
    let node = Node::start_with_clock(cfgs[0].clone(), listener, clock.clone())
        .await
        .expect("node starts");
    let mut c = support::client(addr).await;
    let raw = RawPeer::open(addr, hello(2, "eu-west"))
        .await
        .expect("hello accepted");
    let ahead = Duration::from_secs(3600);
    let future = clock_now(&clock).saturating_add(ahead);
    let mut w = tagged_set(2, 1, future, "refusing", b"future", b"v");
    w.policy = Policy::LwwHlc;
    raw.send(batch_frame(2, &[w])).await;
    // Held: the node counts it, shows nothing, queues nothing.
    let held = eventually(WAIT, "the write held", || {
        let d = node.driver().clone();
        async move {
            let n = d.inspect(|e| e.stats().future_held).await.expect("inspect");
            (n > 0).then_some(n)
        }
    })
    .await;
    assert_eq!(held, 1);
    assert_eq!(
        c.get("refusing", b"future").await.expect("get"),
        Read::Missing
    );
    assert!(c.conflicts(true).await.expect("list").is_empty());
    clock.advance(ahead + Duration::from_secs(1));
    eventually(WAIT, "the held write applied", || {
        let mut c = c.clone();
        async move {
            matches!(
                c.get("refusing", b"future").await.expect("get"),
                Read::Value { .. }
            )
            .then_some(())
        }
    })
    .await;
    assert!(c.conflicts(true).await.expect("list").is_empty());
    drop(raw);
    node.shutdown().await.expect("shutdown");
}

/// A read that waits for a held future write (`after` = its token) is
/// answered once the clock catches up and the write is applied; and the
/// released write is made durable (and so acknowledged to its origin) with
/// nothing else happening on the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waiting_for_a_held_future_write_is_answered_and_the_write_made_durable_on_release()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let (cfgs, listeners) =
        configs_with_fakes(&["us-east"], &["eu-west"], dir.path(), &collections()).await;
    let clock = support::manual_clock();
    let listener = listeners.into_iter().next().expect("a listener");
    let addr = listener.local_addr().expect("addr");
    let node = Node::start_with_clock(cfgs[0].clone(), listener, clock.clone())
        .await
        .expect("node starts");
    let c = support::client(addr).await;
    let raw = RawPeer::open(addr, hello(2, "eu-west"))
        .await
        .expect("hello accepted");
    let ahead = Duration::from_secs(3600);
    let future = clock_now(&clock).saturating_add(ahead);
    raw.send(batch_frame(
        2,
        &[tagged_set(2, 1, future, "hlcs", b"future", b"v")],
    ))
    .await;
    eventually(WAIT, "the write held", || {
        let d = node.driver().clone();
        async move {
            let n = d.inspect(|e| e.stats().future_held).await.expect("inspect");
            (n > 0).then_some(())
        }
    })
    .await;
    // A read-your-writes Get for it waits ...
    let mut waiting = c.clone();
    let read = tokio::spawn(async move {
        waiting
            .raw()
            .get(pb::GetRequest {
                collection: "hlcs".into(),
                key: b"future".to_vec(),
                after: Some(pb::WriteRef { origin: 2, seq: 1 }),
                wait_ms: 5_000,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!read.is_finished(), "the read waits for the held write");
    // ... until the clock catches up.
    clock.advance(ahead + Duration::from_secs(1));
    let answer = tokio::time::timeout(WAIT, read)
        .await
        .expect("the read is answered")
        .expect("the read task");
    match answer.map(|r| r.into_inner().result) {
        Ok(Some(pb::get_response::Result::Value(v))) => {
            assert_eq!(v.value.as_deref(), Some(&b"v"[..]))
        }
        other => panic!("the waiting read got {other:?} after the write was released"),
    }
    // The released write is made durable without any other traffic.
    eventually(WAIT, "the released write durable", || {
        let d = node.driver().clone();
        async move {
            let durable = d.inspect(|e| e.durable_cursors()).await.expect("inspect");
            durable
                .iter()
                .any(|(o, s)| o.get() == 2 && *s >= 1)
                .then_some(())
        }
    })
    .await;
    drop(raw);
    node.shutdown().await.expect("shutdown");
}

fn clock_now(clock: &concord_clock::ManualClock) -> concord_clock::WallTime {
    use concord_clock::Clock;
    clock.now()
}

// ---------------------------------------------------------------------------
// A stream that stops mid-batch: raw HTTP/2, so half a gRPC message can go.

fn grpc_frame(message: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(message.len() + 5);
    b.put_u8(0);
    b.put_u32(u32::try_from(message.len()).expect("small"));
    b.extend_from_slice(message);
    Bytes::from(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stops_mid_batch_leaves_the_node_serving_and_the_peer_reconnects() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    let writes: Vec<_> = (1..=50u64)
        .map(|s| {
            tagged_set(
                3,
                s,
                now(),
                "hlcs",
                format!("half-{s}").as_bytes(),
                &[b'x'; 100],
            )
        })
        .collect();
    let batch = batch_frame(3, &writes).encode_to_vec();

    for cut in [batch.len() / 2, 1, batch.len() - 1] {
        let tcp = support::tls_stream(addr, "ap-south").await;
        let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        let conn = tokio::spawn(connection);
        let mut client = client.ready().await.expect("h2 ready");
        let request = http::Request::post(format!("https://{addr}/concord.v1.Peer/Replicate"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request");
        let (response, mut send) = client.send_request(request, false).expect("send request");
        send.send_data(grpc_frame(&hello(3, "ap-south").encode_to_vec()), false)
            .expect("send the hello");
        let response = tokio::time::timeout(WAIT, response)
            .await
            .expect("the node answers the hello")
            .expect("a response");
        assert_eq!(response.status(), 200);
        // The 5-byte header announces the whole batch; part of it follows.
        let mut partial = grpc_frame(&batch).to_vec();
        partial.truncate(5 + cut);
        send.send_data(Bytes::from(partial), false)
            .expect("send half a batch");
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The peer dies: the connection is gone mid-message.
        drop(send);
        drop(response);
        drop(client);
        conn.abort();
        let _ = conn.await;

        cluster.assert_serving(0, "hlcs").await;
        assert_eq!(
            cluster.clients[0]
                .get("hlcs", b"half-1")
                .await
                .expect("get"),
            Read::Missing,
            "nothing of a half batch is applied"
        );
    }

    // The peer reconnects, and the whole batch goes through.
    let mut raw = RawPeer::open(addr, hello(3, "ap-south"))
        .await
        .expect("the peer reconnects");
    raw.expect_hello().await;
    raw.send(pb::PeerFrame::decode(batch.as_slice()).expect("the batch"))
        .await;
    let last = pb::WriteRef { origin: 3, seq: 50 };
    assert!(matches!(
        cluster.clients[0]
            .get_after("hlcs", b"half-50", last)
            .await
            .expect("get"),
        Read::Value { .. }
    ));
    assert!(matches!(
        cluster.clients[0]
            .get("hlcs", b"half-1")
            .await
            .expect("get"),
        Read::Value { .. }
    ));
    // The other real peer was never disturbed.
    let t = cluster.clients[0]
        .put("hlcs", b"x", b"y")
        .await
        .expect("put");
    assert!(matches!(
        cluster.clients[1]
            .get_after("hlcs", b"x", t)
            .await
            .expect("get"),
        Read::Value { .. }
    ));
    drop(raw);
    cluster.shutdown().await;
}
