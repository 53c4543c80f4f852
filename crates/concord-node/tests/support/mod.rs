//! Helpers shared by the node's gRPC test files: configurations for real
//! nodes on loopback, starting them, waiting for things, and a raw peer.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_clock::{Clock, HlcTime, WallTime};
use concord_core::{
    Collection, CollectionConfig, Op, OwnershipConfig, Policy, TaggedWrite, WriteBatch,
};
use concord_crdt::RegionId;
use concord_node::client::{BearerToken, Client, ClientOptions, Transport};
use concord_node::config::{CollectionSpec, NodeConfig, RegionEntry, Tuning};
use concord_node::demo::{local_configs, loopback_listeners};
use concord_node::node::Node;
use concord_node::{convert, pb};
use concord_ownership::Rule;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// Generous limit for anything that waits on replication (2-core, noisy).
pub(crate) const WAIT: Duration = Duration::from_secs(20);

static SERVING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The usual three region names.
pub(crate) const NAMES: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// A collection with `policy`.
pub(crate) fn spec(name: &str, policy: Policy) -> CollectionSpec {
    spec_with(name, CollectionConfig::new(policy))
}

/// A collection with a full configuration.
pub(crate) fn spec_with(name: &str, config: CollectionConfig) -> CollectionSpec {
    CollectionSpec {
        name: Collection::new(name).expect("a valid collection name"),
        config,
    }
}

/// An owned lww-hlc collection: key n belongs to `regions[n % len]`.
pub(crate) fn owned_spec(name: &str, regions: &[u16], forward: bool) -> CollectionSpec {
    let rule = Rule::modulo(regions.iter().map(|r| RegionId::new(*r)).collect())
        .expect("a valid modulo rule");
    let mut owned = OwnershipConfig::new(rule);
    owned.forward = forward;
    spec_with(name, CollectionConfig::new(Policy::LwwHlc).owned(owned))
}

/// One collection per policy, named after it.
pub(crate) fn every_policy() -> Vec<CollectionSpec> {
    vec![
        spec("walls", Policy::LwwWall),
        spec("hlcs", Policy::LwwHlc),
        spec("mvs", Policy::Mv),
        spec("counters", Policy::Counter),
        spec("queues", Policy::Queue),
    ]
}

/// Configurations for nodes `names` on `addrs` (region ids 1, 2, ...), data
/// under `dir`, with `collections`.
pub(crate) fn configs(
    names: &[&str],
    addrs: &[SocketAddr],
    dir: &std::path::Path,
    collections: &[CollectionSpec],
) -> Vec<NodeConfig> {
    let mut out = local_configs(names, addrs, dir).expect("local configurations");
    for c in &mut out {
        c.collections = collections.to_vec();
    }
    out
}

/// A set of real nodes on loopback, with a client for each.
pub(crate) struct Cluster {
    /// Keeps the data directories alive.
    pub(crate) dir: tempfile::TempDir,
    /// The nodes that are running (`None`: shut down).
    pub(crate) nodes: Vec<Option<Node>>,
    /// Each node's configuration.
    pub(crate) configs: Vec<NodeConfig>,
    /// Each node's gRPC address.
    pub(crate) addrs: Vec<SocketAddr>,
    /// A client per node.
    pub(crate) clients: Vec<Client>,
}

impl Cluster {
    /// Starts `names` with `collections`, and waits for every replication
    /// stream to be up.
    pub(crate) async fn start(names: &[&str], collections: &[CollectionSpec]) -> Self {
        Self::start_with(names, collections, |_| {}).await
    }

    /// Like [`Cluster::start`], with `tweak` applied to every configuration.
    pub(crate) async fn start_with(
        names: &[&str],
        collections: &[CollectionSpec],
        tweak: impl Fn(&mut NodeConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let listeners = loopback_listeners(names.len()).await.expect("listeners");
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr().expect("an address"))
            .collect();
        let mut cfgs = configs(names, &addrs, dir.path(), collections);
        for c in &mut cfgs {
            tweak(c);
        }
        let mut nodes = Vec::new();
        for (config, listener) in cfgs.iter().cloned().zip(listeners) {
            nodes.push(Some(
                Node::start_on(config, listener).await.expect("node starts"),
            ));
        }
        let mut clients = Vec::new();
        for a in &addrs {
            clients.push(client(*a).await);
        }
        let mut cluster = Self {
            dir,
            nodes,
            configs: cfgs,
            addrs,
            clients,
        };
        cluster.wait_connected().await;
        cluster
    }

    /// Starts real nodes `real` with regions `fake` in their configuration
    /// that no node plays (a test's raw peer may), and waits until the real
    /// nodes are connected to each other.
    pub(crate) async fn start_with_fakes(
        real: &[&str],
        fake: &[&str],
        collections: &[CollectionSpec],
        tweak: impl Fn(&mut NodeConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (mut cfgs, listeners) = configs_with_fakes(real, fake, dir.path(), collections).await;
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr().expect("an address"))
            .collect();
        let mut nodes = Vec::new();
        for (config, listener) in cfgs.iter_mut().zip(listeners) {
            tweak(config);
            nodes.push(Some(
                Node::start_on(config.clone(), listener)
                    .await
                    .expect("node starts"),
            ));
        }
        let mut clients = Vec::new();
        for a in &addrs {
            clients.push(client(*a).await);
        }
        let mut cluster = Self {
            dir,
            nodes,
            configs: cfgs,
            addrs,
            clients,
        };
        cluster.wait_connected().await;
        cluster
    }

    /// Proves node `i` still serves: a Put and a Get of a fresh key of the
    /// lww collection `collection`.
    pub(crate) async fn assert_serving(&mut self, i: usize, collection: &str) {
        let n = SERVING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("serving-{n}").into_bytes();
        let c = &mut self.clients[i];
        let t = c
            .put(collection, &key, b"still serving")
            .await
            .expect("the node still takes writes");
        match c
            .get_after(collection, &key, t)
            .await
            .expect("the node still reads")
        {
            concord_node::client::Read::Value { value, .. } => assert_eq!(value, b"still serving"),
            other => panic!("read back {other:?}"),
        }
    }

    /// Node `i`.
    pub(crate) fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// Waits until every running node has every channel to a running node up.
    pub(crate) async fn wait_connected(&mut self) {
        let running: Vec<String> = self
            .nodes
            .iter()
            .zip(&self.configs)
            .filter(|(n, _)| n.is_some())
            .map(|(_, c)| c.region.clone())
            .collect();
        let start = Instant::now();
        loop {
            let mut all = true;
            for (i, c) in self.clients.iter_mut().enumerate() {
                if self.nodes[i].is_none() {
                    continue;
                }
                let s = c.status().await.expect("status");
                all &= s
                    .channels
                    .iter()
                    .filter(|ch| running.contains(&ch.region))
                    .all(|ch| ch.connected && ch.status == "active");
            }
            if all {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "replication streams did not come up within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Shuts node `i` down (flushes, stops serving).
    pub(crate) async fn stop(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("node is running");
        node.shutdown().await.expect("clean shutdown");
    }

    /// Starts node `i` again on its address and data dir.
    pub(crate) async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let listener = bind_again(self.addrs[i]).await;
        let node = Node::start_on(self.configs[i].clone(), listener)
            .await
            .expect("node restarts");
        self.nodes[i] = Some(node);
        self.clients[i] = client(self.addrs[i]).await;
    }

    /// Shuts every running node down.
    pub(crate) async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop(i).await;
            }
        }
    }
}

/// Binds `addr` again (a node restarting on its port), retrying a while.
pub(crate) async fn bind_again(addr: SocketAddr) -> TcpListener {
    let start = Instant::now();
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => {
                assert!(start.elapsed() < WAIT, "cannot bind {addr} again: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The process's local PKI (the CA and admin token of every cluster here).
pub(crate) fn pki() -> &'static concord_node::certs::LocalPki {
    concord_node::certs::local().expect("the local PKI")
}

/// How the tests' clients connect: the local CA and the admin token.
pub(crate) fn options() -> ClientOptions {
    ClientOptions::default()
        .ca_pem(pki().ca_pem())
        .token(pki().admin_token())
}

/// A client of the node at `addr` (TLS, the admin token).
pub(crate) async fn client(addr: SocketAddr) -> Client {
    Client::connect_with(&format!("https://{addr}"), &options())
        .await
        .expect("client connects")
}

/// A TLS channel to `addr` trusting the local CA, presenting the local
/// certificate of `region` if any (a peer), without a token.
pub(crate) async fn tls_channel(addr: SocketAddr, region: Option<&str>) -> Channel {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(pki().ca_pem()));
    if let Some(r) = region {
        let pem = pki().region(r).expect("a region certificate");
        tls = tls.identity(tonic::transport::Identity::from_pem(pem.cert, pem.key));
    }
    tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .expect("an endpoint")
        .tls_config(tls)
        .expect("a TLS config")
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect("a TLS channel")
}

/// The admin token as an interceptor, over `channel`.
pub(crate) fn with_token(channel: Channel) -> Transport {
    let token = BearerToken::new(Some(pki().admin_token())).expect("a token");
    tonic::service::interceptor::InterceptedService::new(channel, token)
}

/// A raw generated client of the node's peer service at `addr`, with the
/// certificate of `region`.
pub(crate) async fn peer_client(
    addr: SocketAddr,
    region: &str,
) -> pb::peer_client::PeerClient<Channel> {
    pb::peer_client::PeerClient::new(tls_channel(addr, Some(region)).await)
}

/// A raw generated client of the node's client service at `addr`.
pub(crate) async fn raw_client(addr: SocketAddr) -> concord_node::client::RawClient {
    client(addr).await.raw().clone()
}

/// A loopback address nothing listens on (for a region that is never up).
pub(crate) async fn dead_address() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("an address")
}

/// A deployment of `real` nodes plus `fake` regions that only a test's raw
/// peer plays (their addresses refuse connections). Returns the
/// configurations of the real nodes and their listeners.
pub(crate) async fn configs_with_fakes(
    real: &[&str],
    fake: &[&str],
    dir: &std::path::Path,
    collections: &[CollectionSpec],
) -> (Vec<NodeConfig>, Vec<TcpListener>) {
    let listeners = loopback_listeners(real.len()).await.expect("listeners");
    let mut addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr().expect("an address"))
        .collect();
    for _ in fake {
        addrs.push(dead_address().await);
    }
    let names: Vec<&str> = real.iter().chain(fake).copied().collect();
    let mut cfgs = configs(&names, &addrs, dir, collections);
    cfgs.truncate(real.len());
    (cfgs, listeners)
}

/// Polls `f` until it returns `Some`, for up to `limit`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A region's config entry by name.
pub(crate) fn region_entry<'a>(config: &'a NodeConfig, name: &str) -> &'a RegionEntry {
    config
        .regions
        .iter()
        .find(|r| r.name == name)
        .expect("a known region")
}

/// A hello frame from region `id` called `name`, holding nothing.
pub(crate) fn hello(id: u32, name: &str) -> pb::PeerFrame {
    pb::PeerFrame {
        frame: Some(pb::peer_frame::Frame::Hello(pb::Hello {
            region: id,
            region_name: name.to_owned(),
            durable: Vec::new(),
        })),
    }
}

/// A well-formed tagged write of `origin` (a set of `value`), stamped `wall`.
pub(crate) fn tagged_set(
    origin: u16,
    seq: u64,
    wall: WallTime,
    collection: &str,
    key: &[u8],
    value: &[u8],
) -> TaggedWrite {
    let origin = RegionId::new(origin);
    TaggedWrite {
        id: TaggedWrite::make_id(origin, seq, wall),
        origin,
        seq,
        hlc: HlcTime::from_parts(wall.as_millis(), 0).expect("an HLC time"),
        wall,
        collection: Collection::new(collection).expect("a valid collection"),
        key: key.to_vec(),
        context: concord_crdt::VersionVector::new(),
        epoch: 0,
        policy: Policy::LwwHlc,
        dot: None,
        op: Op::Set(value.to_vec()),
    }
}

/// A batch frame of `writes` (all of `origin`, consecutive from the first).
pub(crate) fn batch_frame(origin: u16, writes: &[TaggedWrite]) -> pb::PeerFrame {
    pb::PeerFrame {
        frame: Some(pb::peer_frame::Frame::Batch(convert::batch_to_pb(
            &WriteBatch {
                origin: RegionId::new(origin),
                writes: writes.to_vec(),
            },
        ))),
    }
}

/// The wall time now, by the system clock.
pub(crate) fn now() -> WallTime {
    concord_clock::SystemClock.now()
}

/// A raw peer connection: frames to send, and every frame the node sends
/// back (drained by a task so the node never blocks on this peer).
pub(crate) struct RawPeer {
    /// Frames to send.
    pub(crate) tx: mpsc::Sender<pb::PeerFrame>,
    /// What the node sent, then `Err` (or nothing more) when it closed.
    pub(crate) rx: mpsc::UnboundedReceiver<Result<pb::PeerFrame, tonic::Status>>,
}

impl RawPeer {
    /// Opens a replication stream to the node at `addr`, sends `first`, and
    /// returns the connection once the node answers the call, or the status
    /// it refused the call with.
    pub(crate) async fn open(
        addr: SocketAddr,
        first: pb::PeerFrame,
    ) -> Result<Self, tonic::Status> {
        // The certificate of the region the hello names (ap-south if none).
        let region = match &first.frame {
            Some(pb::peer_frame::Frame::Hello(h)) if !h.region_name.is_empty() => {
                h.region_name.clone()
            }
            _ => "ap-south".to_owned(),
        };
        let client = peer_client(addr, &region).await;
        Self::open_with(client, first).await
    }

    /// Like [`RawPeer::open`], over `client`.
    pub(crate) async fn open_with(
        mut client: pb::peer_client::PeerClient<Channel>,
        first: pb::PeerFrame,
    ) -> Result<Self, tonic::Status> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(first).await.expect("queue the first frame");
        let response = tokio::time::timeout(
            WAIT,
            client.replicate(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
        .await
        .expect("the node answers the call")?;
        let mut inbound = response.into_inner();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let _client = client;
            loop {
                match inbound.message().await {
                    Ok(Some(f)) => {
                        if out_tx.send(Ok(f)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = out_tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        Ok(Self { tx, rx: out_rx })
    }

    /// Waits for the next hello from the node.
    pub(crate) async fn expect_hello(&mut self) -> pb::Hello {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let f = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .expect("a hello in time")
                .expect("the stream is open")
                .expect("no error");
            if let Some(pb::peer_frame::Frame::Hello(h)) = f.frame {
                return h;
            }
        }
    }

    /// Waits until the node closes the stream (or resets it); panics if it
    /// is still open after `limit`.
    pub(crate) async fn expect_closed(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => panic!("the node kept the stream open for {limit:?}"),
                Ok(None | Some(Err(_))) => return,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Sends a frame.
    pub(crate) async fn send(&self, f: pb::PeerFrame) {
        self.tx.send(f).await.expect("the stream is open");
    }
}

/// A ManualClock that reads the system time now.
pub(crate) fn manual_clock() -> Arc<concord_clock::ManualClock> {
    Arc::new(concord_clock::ManualClock::new(now()))
}

/// Default tuning (for tests that change one field).
pub(crate) fn tuning() -> Tuning {
    Tuning::default()
}

/// A raw TLS connection to `addr` speaking h2 (ALPN), with the local
/// certificate of `region` (for tests below gRPC).
pub(crate) async fn tls_stream(
    addr: SocketAddr,
    region: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in concord_node::tls::pem_certs(pki().ca_pem().as_bytes(), "ca").expect("the CA") {
        roots.add(c).expect("a CA");
    }
    let pem = pki().region(region).expect("a region certificate");
    let chain = concord_node::tls::pem_certs(pem.cert.as_bytes(), "cert").expect("a chain");
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).expect("a key");
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("a client certificate");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a server name"),
            tcp,
        )
        .await
        .expect("a TLS handshake")
}
