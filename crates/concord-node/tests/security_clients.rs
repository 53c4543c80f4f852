//! Client authentication: no token and a wrong token are UNAUTHENTICATED,
//! a collection without permission and an admin call by a non-admin are
//! PERMISSION_DENIED, and none of them writes anything.

mod support;

use std::net::SocketAddr;

use concord_core::Policy;
use concord_node::auth::{ClientSpec, hash_token};
use concord_node::client::{Client, ClientOptions, Read};
use concord_node::pb;
use support::{Cluster, owned_spec, pki, spec};
use tonic::Code;

const READER: &str = "reader-token";
const WRITER: &str = "writer-token";

/// Two nodes; besides the local admin, a reader of `hlcs` and a writer of
/// `hlcs` and `counters`, neither an admin.
async fn cluster() -> Cluster {
    Cluster::start_with(
        &["us-east", "eu-west"],
        &[
            spec("hlcs", Policy::LwwHlc),
            spec("secret", Policy::LwwHlc),
            spec("counters", Policy::Counter),
            spec("queues", Policy::Queue),
            owned_spec("accounts", &[1, 2], true),
        ],
        |c| {
            c.clients.push(ClientSpec {
                name: "reader".into(),
                token_sha256: hash_token(READER),
                read: vec!["hlcs".into()],
                write: Vec::new(),
                admin: false,
            });
            c.clients.push(ClientSpec {
                name: "writer".into(),
                token_sha256: hash_token(WRITER),
                read: vec!["hlcs".into(), "accounts".into()],
                write: vec!["hlcs".into(), "counters".into(), "accounts".into()],
                admin: false,
            });
        },
    )
    .await
}

async fn as_client(addr: SocketAddr, token: Option<&str>) -> Client {
    let mut options = ClientOptions::default().ca_pem(pki().ca_pem());
    if let Some(t) = token {
        options = options.token(t);
    }
    Client::connect_with(&format!("https://{addr}"), &options)
        .await
        .expect("connects")
}

fn code(e: concord_node::NodeError) -> Code {
    match e {
        concord_node::NodeError::Status(s) => s.code(),
        other => panic!("expected a status, got {other}"),
    }
}

/// The admin reads `collection/key` as missing on both nodes, and node 0
/// took no local write.
async fn assert_nothing_written(cluster: &mut Cluster, collection: &str, key: &[u8], local: u64) {
    for c in cluster.clients.iter_mut() {
        let read = c.get(collection, key).await.expect("the admin reads");
        assert!(
            matches!(read, Read::Missing | Read::Counter(0)),
            "{collection}/{}: {read:?}",
            String::from_utf8_lossy(key)
        );
    }
    let s = cluster.clients[0].status().await.expect("status");
    assert_eq!(s.local_writes, local, "no local write was made");
}

async fn local_writes(cluster: &mut Cluster) -> u64 {
    cluster.clients[0]
        .status()
        .await
        .expect("status")
        .local_writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_and_a_wrong_token_are_unauthenticated_and_write_nothing() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    let local = local_writes(&mut cluster).await;
    for (what, token) in [
        ("no token", None),
        ("a wrong token", Some("not-a-token")),
        ("the hash instead of the token", Some(&*hash_token(WRITER))),
    ] {
        let mut c = as_client(addr, token).await;
        let err = c.put("hlcs", b"k", b"v").await.expect_err(what);
        assert_eq!(code(err), Code::Unauthenticated, "{what}");
        let err = c.increment("counters", b"n", 5).await.expect_err(what);
        assert_eq!(code(err), Code::Unauthenticated, "{what}");
        let err = c.get("hlcs", b"k").await.expect_err(what);
        assert_eq!(code(err), Code::Unauthenticated, "{what}");
        let err = c.status().await.expect_err(what);
        assert_eq!(code(err), Code::Unauthenticated, "{what}");
        let err = c
            .raw()
            .write_many(pb::WriteManyRequest {
                writes: vec![pb::WriteItem {
                    collection: "hlcs".into(),
                    key: b"many".to_vec(),
                    context: None,
                    op: Some(pb::write_item::Op::Put(b"v".to_vec())),
                }],
                concern: None,
            })
            .await
            .expect_err(what);
        assert_eq!(err.code(), Code::Unauthenticated, "{what}");
    }
    // A malformed authorization header.
    let channel = support::tls_channel(addr, None).await;
    let mut raw = pb::concord_client::ConcordClient::new(channel);
    let mut request = tonic::Request::new(pb::GetRequest {
        collection: "hlcs".into(),
        key: b"k".to_vec(),
        after: None,
        wait_ms: 0,
    });
    request
        .metadata_mut()
        .insert("authorization", "Basic abc".parse().expect("ascii"));
    let err = raw.get(request).await.expect_err("not a bearer token");
    assert_eq!(err.code(), Code::Unauthenticated);

    assert_nothing_written(&mut cluster, "hlcs", b"k", local).await;
    assert_nothing_written(&mut cluster, "hlcs", b"many", local).await;
    assert_nothing_written(&mut cluster, "counters", b"n", local).await;
    let r = cluster.clients[0]
        .status()
        .await
        .expect("status")
        .rejections
        .expect("rejections");
    assert!(r.unauthenticated >= 16, "{r:?}");

    // A plaintext client gets nowhere near the service.
    let plain = Client::connect_with(&format!("http://{addr}"), &ClientOptions::default()).await;
    if let Ok(mut c) = plain {
        assert!(c.put("hlcs", b"k", b"v").await.is_err());
    }
    assert_nothing_written(&mut cluster, "hlcs", b"k", local).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_without_permission_is_permission_denied_and_writes_nothing() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    let mut reader = as_client(addr, Some(READER)).await;
    let mut writer = as_client(addr, Some(WRITER)).await;
    let local = local_writes(&mut cluster).await;

    // The reader reads hlcs, and may not write it.
    assert_eq!(
        reader.get("hlcs", b"r").await.expect("reader reads hlcs"),
        Read::Missing
    );
    let err = reader.put("hlcs", b"r", b"v").await.expect_err("read-only");
    assert_eq!(code(err), Code::PermissionDenied);
    let err = reader.delete("hlcs", b"r").await.expect_err("read-only");
    assert_eq!(code(err), Code::PermissionDenied);
    // Nobody but the admin touches `secret`.
    for c in [&mut reader, &mut writer] {
        let err = c.get("secret", b"s").await.expect_err("no read permission");
        assert_eq!(code(err), Code::PermissionDenied);
        let err = c.put("secret", b"s", b"v").await.expect_err("no write");
        assert_eq!(code(err), Code::PermissionDenied);
    }
    // The writer may write counters but not read them.
    writer
        .increment("counters", b"ok", 1)
        .await
        .expect("the writer writes counters");
    let err = writer.get("counters", b"ok").await.expect_err("write-only");
    assert_eq!(code(err), Code::PermissionDenied);
    let local = local + 1;

    // One forbidden item refuses the whole WriteMany.
    let err = writer
        .raw()
        .write_many(pb::WriteManyRequest {
            writes: vec![
                pb::WriteItem {
                    collection: "hlcs".into(),
                    key: b"many-ok".to_vec(),
                    context: None,
                    op: Some(pb::write_item::Op::Put(b"v".to_vec())),
                },
                pb::WriteItem {
                    collection: "secret".into(),
                    key: b"many-no".to_vec(),
                    context: None,
                    op: Some(pb::write_item::Op::Put(b"v".to_vec())),
                },
            ],
            concern: None,
        })
        .await
        .expect_err("a forbidden item");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("writes[1]"), "{}", err.message());

    // Conflicts of collections the client may not read are not listed.
    let items = writer
        .raw()
        .list_conflicts(pb::ListConflictsRequest {
            collection: "queues".into(),
            include_closed: true,
            limit: 0,
        })
        .await
        .expect_err("queues is not readable");
    assert_eq!(items.code(), Code::PermissionDenied);

    assert_nothing_written(&mut cluster, "hlcs", b"r", local).await;
    assert_nothing_written(&mut cluster, "secret", b"s", local).await;
    assert_nothing_written(&mut cluster, "hlcs", b"many-ok", local).await;
    assert_nothing_written(&mut cluster, "secret", b"many-no", local).await;

    // A write forwarded to its owner is the peer's (mutual TLS): key 1 of
    // accounts belongs to eu-west (modulo over [us-east, eu-west]).
    let t = writer
        .put("accounts", b"1", b"forwarded")
        .await
        .expect("forwarded to the owner");
    assert_eq!(t.origin, 2, "written at the owner");
    let mut owner_writer = as_client(cluster.addrs[1], Some(WRITER)).await;
    assert!(matches!(
        owner_writer
            .get_after("accounts", b"1", t)
            .await
            .expect("get"),
        Read::Value { .. }
    ));
    // The reader may not do the same.
    let err = reader
        .put("accounts", b"3", b"no")
        .await
        .expect_err("no write permission");
    assert_eq!(code(err), Code::PermissionDenied);

    let r = cluster.clients[0]
        .status()
        .await
        .expect("status")
        .rejections
        .expect("rejections");
    assert!(r.permission_denied >= 9, "{r:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_by_a_non_admin_are_permission_denied_and_change_nothing() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    let mut writer = as_client(addr, Some(WRITER)).await;
    let epoch = cluster.clients[0]
        .status()
        .await
        .expect("status")
        .ownership_epoch;

    let err = writer
        .raw()
        .takeover(pb::TakeoverRequest {
            from: "eu-west".into(),
            reason: "not allowed".into(),
        })
        .await
        .expect_err("a non-admin takeover");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("admin"), "{}", err.message());
    let err = writer
        .raw()
        .handoff(pb::HandoffRequest {
            collection: "accounts".into(),
            keys: vec![b"0".to_vec()],
            to: "eu-west".into(),
            timeout_ms: 1000,
        })
        .await
        .expect_err("a non-admin handoff");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = writer
        .resolve(1, Some(b"mine".to_vec()))
        .await
        .expect_err("a non-admin resolve");
    assert_eq!(code(err), Code::PermissionDenied);

    let s = cluster.clients[0].status().await.expect("status");
    assert_eq!(s.ownership_epoch, epoch, "no takeover or handoff happened");
    assert!(s.failovers.is_empty(), "{:?}", s.failovers);
    let owner = cluster.clients[0]
        .raw()
        .owner(pb::OwnerRequest {
            collection: "accounts".into(),
            key: b"0".to_vec(),
        })
        .await
        .expect("owner")
        .into_inner();
    assert_eq!(owner.owner, "us-east", "key 0 did not move");

    // The admin may (a takeover of eu-west's keys, here as the control).
    let event = cluster.clients[0]
        .raw()
        .takeover(pb::TakeoverRequest {
            from: "eu-west".into(),
            reason: "admin".into(),
        })
        .await
        .expect("the admin takes over")
        .into_inner();
    assert!(event.event.is_some());
    cluster.shutdown().await;
}
