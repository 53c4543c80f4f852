//! Mutual TLS between regions: a replication stream is refused for a peer
//! certificate from another CA, for no certificate, for an expired one and
//! for a certificate of another region, and nothing it carried is written.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use concord_core::Policy;
use concord_node::certs::{CertAuthority, CertPem, Validity};
use concord_node::client::Read;
use concord_node::pb;
use support::{Cluster, WAIT, batch_frame, hello, now, pki, spec, tagged_set};
use tokio_stream::StreamExt as _;
use tonic::Code;

/// Two real nodes; ap-south is a configured peer that only the test plays.
async fn cluster() -> Cluster {
    Cluster::start_with_fakes(
        &["us-east", "eu-west"],
        &["ap-south"],
        &[spec("hlcs", Policy::LwwHlc)],
        |_| {},
    )
    .await
}

/// A peer channel to `addr` trusting the local CA, with `identity`.
async fn channel(
    addr: SocketAddr,
    identity: Option<&CertPem>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(pki().ca_pem()));
    if let Some(id) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(&id.cert, &id.key));
    }
    tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .expect("an endpoint")
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
}

/// Opens a replication stream as `identity` that sends a hello as
/// ap-south (id 3) and then a batch writing `key`. Returns how the node
/// answered: `Ok` if it took the stream.
async fn attempt(addr: SocketAddr, identity: Option<&CertPem>, key: &[u8]) -> Result<(), String> {
    attempt_as(addr, identity, 3, "ap-south", key).await
}

async fn attempt_as(
    addr: SocketAddr,
    identity: Option<&CertPem>,
    id: u16,
    name: &str,
    key: &[u8],
) -> Result<(), String> {
    let channel = channel(addr, identity)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut client = pb::peer_client::PeerClient::new(channel);
    let frames = vec![
        hello(u32::from(id), name),
        batch_frame(id, &[tagged_set(id, 1, now(), "hlcs", key, b"forged")]),
    ];
    let response = tokio::time::timeout(
        WAIT,
        client.replicate(tokio_stream::iter(frames).chain(tokio_stream::pending())),
    )
    .await
    .map_err(|_| "no answer".to_owned())?;
    match response {
        Ok(r) => {
            // Drain a little so the node reads the batch.
            let mut inbound = r.into_inner();
            let _ = tokio::time::timeout(Duration::from_millis(300), inbound.message()).await;
            Ok(())
        }
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// Nothing from ap-south was applied on node 0: the key is missing and
/// no cursor of origin 3 moved.
async fn assert_nothing_written(cluster: &mut Cluster, key: &[u8]) {
    // Give a wrongly accepted batch time to be applied.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cluster.clients[0].get("hlcs", key).await.expect("get"),
        Read::Missing,
        "{}",
        String::from_utf8_lossy(key)
    );
    let s = cluster.clients[0].status().await.expect("status");
    assert!(
        s.applied.iter().all(|w| w.origin != 3 || w.seq == 0),
        "a cursor of ap-south moved: {:?}",
        s.applied
    );
}

fn rejections(s: &pb::StatusResponse) -> pb::Rejections {
    s.rejections.expect("Status reports rejections")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_certificate_from_another_ca_is_refused_and_writes_nothing() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    let before = rejections(&cluster.clients[0].status().await.expect("status"));
    let rogue = CertAuthority::new("rogue CA").expect("a CA");
    let forged = rogue.region("ap-south", &[]).expect("a certificate");
    let err = attempt(addr, Some(&forged), b"other-ca")
        .await
        .expect_err("a certificate from another CA is refused");
    assert!(!err.is_empty());
    assert_nothing_written(&mut cluster, b"other-ca").await;
    let after = rejections(&cluster.clients[0].status().await.expect("status"));
    assert!(
        after.tls_handshakes > before.tls_handshakes,
        "the failed handshake is counted: {after:?}"
    );
    cluster.assert_serving(0, "hlcs").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_a_certificate_is_unauthenticated_and_writes_nothing() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    let err = attempt(addr, None, b"no-cert")
        .await
        .expect_err("no certificate is refused");
    assert!(err.starts_with("Unauthenticated"), "{err}");
    assert_nothing_written(&mut cluster, b"no-cert").await;
    // Snapshot (the whole state) needs a peer certificate too.
    let channel = channel(addr, None).await.expect("a TLS channel");
    let err = pb::peer_client::PeerClient::new(channel)
        .snapshot(pb::SnapshotRequest {})
        .await
        .expect_err("a snapshot without a certificate");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let r = rejections(&cluster.clients[0].status().await.expect("status"));
    assert!(r.unauthenticated >= 2 && r.peer_streams >= 2, "{r:?}");
    cluster.assert_serving(0, "hlcs").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_peer_certificate_is_refused_and_writes_nothing() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    let before = rejections(&cluster.clients[0].status().await.expect("status"));
    let expired = pki()
        .ca()
        .region_with("ap-south", &[], Validity::expired())
        .expect("an expired certificate");
    let err = attempt(addr, Some(&expired), b"expired")
        .await
        .expect_err("an expired certificate is refused");
    assert!(!err.is_empty());
    assert_nothing_written(&mut cluster, b"expired").await;
    let after = rejections(&cluster.clients[0].status().await.expect("status"));
    assert!(after.tls_handshakes > before.tls_handshakes, "{after:?}");
    cluster.assert_serving(0, "hlcs").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_region_is_permission_denied_and_writes_nothing() {
    let mut cluster = cluster().await;
    let addr = cluster.addrs[0];
    // eu-west's certificate, saying hello as ap-south.
    let eu = pki().region("eu-west").expect("a certificate");
    let err = attempt(addr, Some(&eu), b"wrong-region")
        .await
        .expect_err("another region's certificate is refused");
    assert!(err.starts_with("PermissionDenied"), "{err}");
    assert!(err.contains("eu-west"), "{err}");
    assert_nothing_written(&mut cluster, b"wrong-region").await;
    // A fresh certificate of ap-south from the right CA is accepted: the
    // control.
    let right = pki()
        .ca()
        .region_with("ap-south", &[], Validity::years(1))
        .expect("a certificate");
    attempt(addr, Some(&right), b"right-region")
        .await
        .expect("ap-south's own certificate is accepted");
    let r = rejections(&cluster.clients[0].status().await.expect("status"));
    assert!(r.permission_denied >= 1 && r.peer_streams >= 1, "{r:?}");
    // The real peer was never disturbed.
    let t = cluster.clients[1]
        .put("hlcs", b"after", b"fine")
        .await
        .expect("put");
    assert!(matches!(
        cluster.clients[0]
            .get_after("hlcs", b"after", t)
            .await
            .expect("get"),
        Read::Value { .. }
    ));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_certificate_names_another_region_does_not_start() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let listeners = concord_node::demo::loopback_listeners(2)
        .await
        .expect("listeners");
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr().expect("an address"))
        .collect();
    let mut configs =
        concord_node::demo::local_configs(&["us-east", "eu-west"], &addrs, dir.path())
            .expect("configs");
    // us-east configured with eu-west's certificate and key.
    let eu = configs[1].tls.clone();
    configs[0].tls = eu;
    let listener = listeners.into_iter().next().expect("a listener");
    match concord_node::node::Node::start_on(configs.remove(0), listener).await {
        Err(concord_node::NodeError::Tls { field, reason }) => {
            assert_eq!(field, "tls.cert");
            assert!(reason.contains("eu-west"), "{reason}");
        }
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("a node started with another region's certificate"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_named_with_dots_and_underscores_connect_over_mutual_tls() {
    let mut cluster =
        Cluster::start(&["us_east.1", "eu.west"], &[spec("hlcs", Policy::LwwHlc)]).await;
    let t = cluster.clients[0]
        .put("hlcs", b"dotted", b"v")
        .await
        .expect("put");
    assert!(matches!(
        cluster.clients[1]
            .get_after("hlcs", b"dotted", t)
            .await
            .expect("get"),
        Read::Value { .. }
    ));
    cluster.shutdown().await;
}
