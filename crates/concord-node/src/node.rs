//! A running region node: the store, the engine thread, the gRPC server
//! (client, peer, health and reflection services), the peer dialers and the
//! metrics endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use concord_clock::{Clock, SystemClock, WallTime};
use concord_core::{CoreError, Engine, PeerMessage};
use concord_store::SledStore;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::config::{NodeConfig, Testing, TlsSetting};
use crate::driver::{self, Command, DriverHandle, DriverSettings, NodeEngine};
use crate::limits::{Gate, Rejections};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::peer::{PeerContext, PeerService};
use crate::service::{ClientService, ServiceSettings};
use crate::tls::TlsMaterial;
use crate::{NodeError, pb};

/// HTTP/2 flow-control window of a stream, in bytes.
pub(crate) const WINDOW: u32 = 16 << 20;

/// The engine's snapshot message (for the `Snapshot` call).
pub(crate) fn snapshot_of(e: &mut NodeEngine) -> Result<PeerMessage, CoreError> {
    e.snapshot_message()
}

/// A clock `offset_ms` milliseconds off another (ahead if positive): a
/// skewed region for tests (`[testing] clock_offset_ms`).
///
/// ```
/// use std::sync::Arc;
/// use concord_clock::{Clock, ManualClock, WallTime};
/// use concord_node::node::OffsetClock;
///
/// let base = Arc::new(ManualClock::new(WallTime::from_micros(10_000_000)));
/// let ahead = OffsetClock::new(base.clone(), 1500);
/// assert_eq!(ahead.now().as_micros(), 11_500_000);
/// assert_eq!(OffsetClock::new(base, -2000).now().as_micros(), 8_000_000);
/// ```
#[derive(Debug)]
pub struct OffsetClock {
    inner: Arc<dyn Clock>,
    offset: Duration,
    ahead: bool,
}

impl OffsetClock {
    /// `inner`, moved `offset_ms` ahead (or behind, if negative).
    pub fn new(inner: Arc<dyn Clock>, offset_ms: i64) -> Self {
        Self {
            inner,
            offset: Duration::from_millis(offset_ms.unsigned_abs()),
            ahead: offset_ms >= 0,
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> WallTime {
        let t = self.inner.now();
        if self.ahead {
            t.saturating_add(self.offset)
        } else {
            t.saturating_sub(self.offset)
        }
    }
}

/// A node that is serving.
pub struct Node {
    config: NodeConfig,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    driver: DriverHandle,
    engine_thread: Option<std::thread::JoinHandle<()>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// The listener on `config.listen`.
async fn bind(config: &NodeConfig) -> Result<TcpListener, NodeError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: config.listen.to_string(),
            source,
        })
}

impl Node {
    /// Opens the store in `config.data_dir`, starts the engine and serves.
    /// Ports of 0 in the config are chosen by the system: see
    /// [`Node::addr`] and [`Node::metrics_addr`].
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        let listener = bind(&config).await?;
        Self::start_on(config, listener).await
    }

    /// Like [`Node::start`], serving gRPC on `listener` (already bound)
    /// instead of `config.listen`.
    pub async fn start_on(config: NodeConfig, listener: TcpListener) -> Result<Self, NodeError> {
        Self::start_with_clock(config, listener, Arc::new(SystemClock)).await
    }

    /// Like [`Node::start`], with the testing knobs of the config file's
    /// `[testing]` table applied: a `clock_offset_ms` makes the engine read
    /// time from an [`OffsetClock`] (logged at warn). How `concord node`
    /// starts.
    pub async fn start_with_testing(
        config: NodeConfig,
        testing: Testing,
    ) -> Result<Self, NodeError> {
        if testing.clock_offset_ms == 0 {
            return Self::start(config).await;
        }
        tracing::warn!(
            region = %config.region,
            clock_offset_ms = testing.clock_offset_ms,
            "TESTING: [testing] clock_offset_ms skews this node's clock; never use it in a real deployment"
        );
        let listener = bind(&config).await?;
        let clock = OffsetClock::new(Arc::new(SystemClock), testing.clock_offset_ms);
        Self::start_with_clock(config, listener, Arc::new(clock)).await
    }

    /// Like [`Node::start_on`], with the engine reading time from `clock`
    /// (tests and examples use a skewed or manual clock).
    pub async fn start_with_clock(
        config: NodeConfig,
        listener: TcpListener,
        clock: Arc<dyn concord_clock::Clock>,
    ) -> Result<Self, NodeError> {
        config.validate()?;
        let tls = match &config.tls {
            Some(TlsSetting::Files(files)) => {
                let m = TlsMaterial::load(files)?;
                m.check(&config.region)?;
                Some(Arc::new(m))
            }
            _ => {
                tracing::warn!(
                    region = %config.region,
                    "INSECURE: tls.insecure = true: this node serves and replicates in plaintext, and does not authenticate its peers; use [tls] outside local experiments"
                );
                None
            }
        };
        let auth = Arc::new(Auth::new(&config.clients));
        if !auth.enabled() {
            tracing::warn!(
                region = %config.region,
                "INSECURE: no [[clients]]: the client service is open to anyone who reaches it"
            );
        }
        let server_tls = tls.as_ref().map(|m| m.server_config()).transpose()?;
        let rejections = Arc::new(Rejections::default());
        std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        let data_dir = config.data_dir.clone();
        let engine_config = config.engine_config();
        let engine = tokio::task::spawn_blocking(move || {
            let store = SledStore::open(&data_dir)?;
            Engine::open(engine_config, store, clock)
        })
        .await
        .map_err(|_| NodeError::Stopped)??;
        let region = engine.region();
        let (driver, engine_thread) = driver::spawn(engine, DriverSettings::default())?;

        let addr = listener.local_addr().map_err(|source| NodeError::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let names = config.region_names();
        let max_message = config.tuning.max_message_bytes;
        let peer_ctx = PeerContext {
            driver: driver.clone(),
            region,
            names: names.clone(),
            peers: config.peers().map(|p| p.id).collect(),
            max_snapshot_bytes: 4 << 30,
            conns: Arc::new(AtomicU64::new(1)),
            tls: tls.clone(),
            max_peer_batch: config.limits.max_peer_batch,
            gate: Arc::new(Gate::new(
                config.limits.max_concurrent_per_peer,
                "limits.max_concurrent_per_peer",
            )),
            rejections: rejections.clone(),
        };
        let client = ClientService::new(
            driver.clone(),
            region,
            names.clone(),
            ServiceSettings {
                write_concern: config.write_concern,
                write_timeout: config.write_timeout,
                read_wait: config.read_wait,
            },
            crate::service::Security {
                auth,
                tls: tls.clone(),
                peers: config.peers().map(|p| p.name.clone()).collect(),
                gate: Arc::new(Gate::new(
                    config.limits.max_concurrent_per_client,
                    "limits.max_concurrent_per_client",
                )),
                rejections: rejections.clone(),
                limits: config.limits,
                max_key_bytes: config.tuning.max_key_bytes,
                max_value_bytes: config.tuning.max_value_bytes,
            },
            config
                .peers()
                .filter_map(|p| Some((p.id, p.address.clone()?)))
                .collect(),
        );
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<pb::concord_server::ConcordServer<ClientService>>()
            .await;
        health_reporter
            .set_serving::<pb::peer_server::PeerServer<PeerService>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| NodeError::Config {
                field: "proto".into(),
                reason: e.to_string(),
            })?;
        let router = tonic::transport::Server::builder()
            .layer(crate::limits::TooLargeLayer::new(rejections.clone()))
            .tcp_nodelay(true)
            // Batches of a thousand writes are hundreds of KiB: HTTP/2's
            // default 64 KiB windows would stall every one on a round trip.
            .initial_stream_window_size(Some(WINDOW))
            .initial_connection_window_size(Some(2 * WINDOW))
            .http2_keepalive_interval(Some(Duration::from_secs(5)))
            .add_service(health)
            .add_service(reflection)
            .add_service(
                pb::concord_server::ConcordServer::new(client)
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(max_message),
            )
            .add_service(
                pb::peer_server::PeerServer::new(PeerService::new(peer_ctx.clone()))
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(max_message),
            );
        let mut tasks = Vec::new();
        let mut server_stop = stop_rx.clone();
        let shutdown = async move {
            let _ = server_stop.wait_for(|s| *s).await;
        };
        match server_tls {
            Some(server_tls) => {
                let incoming = crate::tls::incoming(
                    listener,
                    tokio_rustls::TlsAcceptor::from(server_tls),
                    rejections.clone(),
                    stop_rx.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = router
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                    {
                        tracing::error!(error = %e, "gRPC server failed");
                    }
                }));
            }
            None => {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = router
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                    {
                        tracing::error!(error = %e, "gRPC server failed");
                    }
                }));
            }
        }
        // The region with the lower id opens each pair's stream.
        for peer in config.peers().filter(|p| p.id > region) {
            let Some(address) = peer.address.clone() else {
                continue;
            };
            tasks.push(tokio::spawn(crate::peer::dial(
                peer_ctx.clone(),
                peer.id,
                address,
                max_message,
                stop_rx.clone(),
            )));
        }
        let mut metrics_addr = None;
        if let Some(listen) = config.metrics_listen {
            let listener = TcpListener::bind(listen)
                .await
                .map_err(|source| NodeError::Listen {
                    addr: listen.to_string(),
                    source,
                })?;
            metrics_addr = listener.local_addr().ok();
            let (tx, rx) = watch::channel(MetricsSnapshot {
                region: names.name(region),
                ..MetricsSnapshot::default()
            });
            let d = driver.clone();
            let n = names.clone();
            let mut s = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match d
                        .inspect({
                            let n = n.clone();
                            move |e| crate::status::metrics_of_engine(e, &n)
                        })
                        .await
                    {
                        Ok(m) => {
                            let _ = tx.send(m);
                        }
                        Err(_) => return,
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = s.wait_for(|s| *s) => return,
                    }
                }
            }));
            let mut s = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = s.wait_for(|s| *s).await;
                };
                if let Err(e) = Metrics::new(rx).serve(listener, shutdown).await {
                    tracing::error!(error = %e, "metrics server failed");
                }
            }));
        }
        tracing::info!(region = %names.name(region), %addr, tls = tls.is_some(), "node serving");
        Ok(Self {
            config,
            addr,
            metrics_addr,
            driver,
            engine_thread: Some(engine_thread),
            stop,
            tasks,
        })
    }

    /// The gRPC address the node serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics address, if metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The engine thread (for in-process inspection: the demo, tests).
    pub fn driver(&self) -> &DriverHandle {
        &self.driver
    }

    /// Stops serving, closes peer streams, and flushes: everything accepted
    /// is durable when this returns.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let _ = self.stop.send(true);
        // Replication streams and watch streams stay open until their peer
        // or client goes: give calls in progress a moment, then close them.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        for mut t in self.tasks.drain(..) {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
            }
        }
        let (reply, rx) = oneshot::channel();
        let result = match self.driver.send(Command::Shutdown(reply)) {
            Ok(()) => rx
                .await
                .map_err(|_| NodeError::Stopped)?
                .map_err(NodeError::from),
            Err(e) => Err(e),
        };
        if let Some(t) = self.engine_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        result
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}
