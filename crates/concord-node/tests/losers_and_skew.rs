//! The loser log over gRPC (`ListLosers`: records, filters, paging, read
//! permission) and the `[testing] clock_offset_ms` knob.

mod support;

use concord_core::Policy;
use concord_node::auth::{ClientSpec, hash_token};
use concord_node::client::{Client, Read};
use concord_node::config::{NodeConfig, Testing};
use concord_node::node::Node;
use concord_node::pb;
use support::{Cluster, WAIT, eventually, options, spec};
use tonic::Code;

const NAMES: [&str; 2] = ["us-east", "eu-west"];

fn list(collection: &str, after_id: Option<u64>, limit: u32) -> pb::ListLosersRequest {
    pb::ListLosersRequest {
        collection: collection.into(),
        key: Vec::new(),
        after_id,
        limit,
    }
}

/// Puts `value` through `writer` and waits until `reader`'s region has it,
/// so that the next write there is stamped after it.
async fn put_seen(
    writer: &mut Client,
    reader: &Client,
    collection: &str,
    key: &[u8],
    value: &[u8],
) -> pb::WriteRef {
    let token = writer.put(collection, key, value).await.expect("put");
    eventually(WAIT, "the write in the other region", || {
        let mut reader = reader.clone();
        async move {
            match reader.get(collection, key).await.ok()? {
                Read::Value { value: v, .. } if v == value => Some(()),
                _ => None,
            }
        }
    })
    .await;
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_losers_names_every_overwritten_version() {
    let reader = ClientSpec {
        name: "reader".into(),
        token_sha256: hash_token("reader-token"),
        read: vec!["hlc".into()],
        write: Vec::new(),
        admin: false,
    };
    let cluster = Cluster::start_with(
        &NAMES,
        &[spec("hlc", Policy::LwwHlc), spec("wall", Policy::LwwWall)],
        |c| c.clients.push(reader.clone()),
    )
    .await;
    let mut other = cluster.clients[1].clone();
    let mut c = cluster.clients[0].clone();
    // The regions take turns: each version is overwritten by the other
    // region (a region overwriting its own write is an update, not a loser).
    let mut tokens = Vec::new();
    for n in 0..5 {
        let value = format!("v{n}").into_bytes();
        tokens.push(if n % 2 == 0 {
            put_seen(&mut c, &other, "hlc", b"k", &value).await
        } else {
            put_seen(&mut other, &c, "hlc", b"k", &value).await
        });
    }
    put_seen(&mut c, &other, "wall", b"w", b"a").await;
    let last_wall = put_seen(&mut other, &c, "wall", b"w", b"b").await;
    // An update by the same region: no loser record.
    put_seen(&mut other, &c, "wall", b"w2", b"x").await;
    put_seen(&mut other, &c, "wall", b"w2", b"y").await;
    let c = &mut c;

    // Four versions of hlc/k lost, each to the next.
    let losers = c.losers("hlc").await.expect("losers");
    assert_eq!(losers.len(), 4, "{losers:?}");
    for (n, l) in losers.iter().enumerate() {
        assert_eq!(
            (l.collection.as_str(), l.key.as_slice()),
            ("hlc", &b"k"[..])
        );
        let loser = l.loser.as_ref().expect("loser");
        assert_eq!(loser.value.as_deref(), Some(format!("v{n}").as_bytes()));
        assert_eq!(loser.write, Some(tokens[n]));
        assert_eq!(l.winner, Some(tokens[n + 1]));
        assert!(l.at_micros > 0);
    }
    // The other region has its own log, with the same losers once applied.
    let found = eventually(WAIT, "the losers at eu-west", || {
        let mut other = other.clone();
        async move {
            let l = other.losers("hlc").await.ok()?;
            (l.len() == 4).then_some(l)
        }
    })
    .await;
    let writes = |l: &[pb::LoserRecord]| -> Vec<_> {
        l.iter()
            .map(|r| r.loser.as_ref().and_then(|v| v.write))
            .collect()
    };
    assert_eq!(writes(&found), writes(&losers));

    // Every collection, paging, a key filter.
    let all = c.losers("").await.expect("losers");
    assert_eq!(all.len(), 5);
    assert!(all.iter().any(|l| l.winner == Some(last_wall)));
    let page = c
        .raw()
        .list_losers(list("", None, 2))
        .await
        .expect("page")
        .into_inner();
    assert_eq!(page.losers.len(), 2);
    assert!(page.more);
    let rest = c
        .raw()
        .list_losers(list("", page.losers.last().map(|l| l.id), 0))
        .await
        .expect("rest")
        .into_inner();
    assert_eq!(rest.losers.len(), 3);
    assert!(!rest.more);
    let mut by_key = list("wall", None, 0);
    by_key.key = b"w".to_vec();
    let w = c
        .raw()
        .list_losers(by_key)
        .await
        .expect("by key")
        .into_inner();
    assert_eq!(w.losers.len(), 1);
    let mut keyless = list("", None, 0);
    keyless.key = b"w".to_vec();
    let err = c
        .raw()
        .list_losers(keyless)
        .await
        .expect_err("key without collection");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = c
        .raw()
        .list_losers(list("nope!", None, 0))
        .await
        .expect_err("bad name");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Read permission: the reader sees hlc only.
    let mut r = Client::connect_with(
        &format!("http://{}", cluster.addrs[0]),
        &options().token("reader-token"),
    )
    .await
    .expect("connect");
    assert_eq!(r.losers("hlc").await.expect("losers").len(), 4);
    assert_eq!(r.losers("").await.expect("losers").len(), 4);
    let err = r.losers("wall").await.expect_err("no read permission");
    assert!(
        matches!(&err, concord_node::NodeError::Status(s) if s.code() == Code::PermissionDenied),
        "{err:?}"
    );
    cluster.shutdown().await;
}

#[test]
fn the_testing_table_is_parsed_checked_and_kept_out_of_the_config() {
    let base = "region = \"a\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\n[tls]\ninsecure = true\n[[regions]]\nname = \"a\"\nid = 1\n";
    let (config, testing) = NodeConfig::parse_with_testing(base).expect("parse");
    assert_eq!(testing, Testing::default());
    let skewed = format!("{base}[testing]\nclock_offset_ms = -2500\n");
    let (with, testing) = NodeConfig::parse_with_testing(&skewed).expect("parse");
    assert_eq!(testing.clock_offset_ms, -2500);
    assert_eq!(with, config);
    assert!(!with.to_toml().contains("testing"));
    for (bad, field) in [
        (
            "[testing]\nclock_offset_ms = 1e3\n",
            "testing.clock_offset_ms",
        ),
        ("[testing]\nclock_skew = 5\n", "testing.clock_skew"),
        (
            "[testing]\nclock_offset_ms = 40000000000\n",
            "testing.clock_offset_ms",
        ),
    ] {
        let err = NodeConfig::parse(&format!("{base}{bad}")).expect_err(bad);
        match err {
            concord_node::NodeError::Config { field: f, .. } => assert_eq!(f, field, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

/// A node whose clock is 3 s ahead stamps its writes 3 s ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_offset_skews_the_nodes_stamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let text = format!(
        "region = \"a\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n[tls]\ninsecure = true\n[[regions]]\nname = \"a\"\nid = 1\n[[collections]]\nname = \"wall\"\npolicy = \"lww-wall\"\n[testing]\nclock_offset_ms = 3000\n",
        dir.path().join("data").display().to_string()
    );
    let (config, testing) = NodeConfig::parse_with_testing(&text).expect("parse");
    let node = Node::start_with_testing(config, testing)
        .await
        .expect("start");
    let mut c = Client::connect_with(
        &format!("http://{}", node.addr()),
        &concord_node::client::ClientOptions::default(),
    )
    .await
    .expect("connect");
    c.put("wall", b"k", b"v").await.expect("put");
    let Read::Value { version, .. } = c.get("wall", b"k").await.expect("get") else {
        panic!("not a value");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_micros() as i64;
    let ahead = version.wall_micros - now;
    assert!(
        (2_500_000..=3_500_000).contains(&ahead),
        "stamped {ahead} µs ahead"
    );
    node.shutdown().await.expect("shutdown");
}
