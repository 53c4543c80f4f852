//! Real `concord` processes on loopback, for the process tests: TOML
//! configs in a tempdir, free ports, readiness, SIGTERM and SIGKILL,
//! restarts on the same data dir, and a Drop guard that kills every child.
//!
//! Each test file includes this with `mod process_support;`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use concord_node::client::{Client, ClientOptions, Read};
use concord_node::pb;

/// The binary under test.
pub(crate) const CONCORD: &str = env!("CARGO_BIN_EXE_concord");

/// The region names, by index (region id = index + 1).
pub(crate) const NAMES: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// Generous bound for anything that should happen "soon" on a noisy machine.
pub(crate) const PATIENCE: Duration = Duration::from_secs(45);

/// A free loopback port: bind :0, read it, drop the listener.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// One collection of the deployment.
#[derive(Clone, Debug)]
pub(crate) struct CollectionDef {
    pub(crate) name: &'static str,
    pub(crate) policy: &'static str,
}

/// One collection per policy.
pub(crate) const EVERY_POLICY: [CollectionDef; 5] = [
    CollectionDef {
        name: "wall",
        policy: "lww-wall",
    },
    CollectionDef {
        name: "hlc",
        policy: "lww-hlc",
    },
    CollectionDef {
        name: "carts",
        policy: "mv",
    },
    CollectionDef {
        name: "stock",
        policy: "counter",
    },
    CollectionDef {
        name: "orders",
        policy: "queue",
    },
];

/// How to lay out a deployment.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    /// How many regions (at most 3).
    pub(crate) regions: usize,
    pub(crate) collections: Vec<CollectionDef>,
    /// `failed_after_ms` of `[lag]`.
    pub(crate) failed_after_ms: u64,
    /// `heartbeat_ms` of `[tuning]`.
    pub(crate) heartbeat_ms: u64,
    /// `checkpoint_every` of `[tuning]` (none: the default).
    pub(crate) checkpoint_every: Option<u64>,
    /// Plaintext (`tls.insecure = true`, open access) instead of TLS with
    /// the local PKI's certificates and admin token.
    pub(crate) insecure: bool,
    /// TOML appended after the collections (more `[[collections]]`, e.g.
    /// owned ones).
    pub(crate) extra_collections: String,
    /// Per node: TOML appended at the end of its file (e.g. `[testing]`).
    pub(crate) node_toml: Vec<String>,
}

impl Spec {
    pub(crate) fn new(regions: usize) -> Self {
        Self {
            regions,
            collections: EVERY_POLICY.to_vec(),
            failed_after_ms: 3000,
            heartbeat_ms: 100,
            checkpoint_every: None,
            insecure: false,
            extra_collections: String::new(),
            node_toml: vec![String::new(); regions],
        }
    }
}

/// One `concord node` process (or its config and data, while it is down).
pub(crate) struct NodeProc {
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) port: u16,
    pub(crate) config_path: PathBuf,
    pub(crate) data_dir: PathBuf,
    log_dir: PathBuf,
    starts: usize,
    child: Option<Child>,
}

impl NodeProc {
    pub(crate) fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log_path(&self, start: usize) -> PathBuf {
        self.log_dir.join(format!("{}.{start}.log", self.name))
    }

    /// Spawns the process (it may still fail to bind).
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = Command::new(CONCORD)
            .arg("node")
            .arg("--config")
            .arg(&self.config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn concord node");
        self.child = Some(child);
    }

    /// Whether the process has exited (reaping it), and how.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait().expect("try_wait") {
            Some(status) => {
                self.child = None;
                Some(status)
            }
            None => None,
        }
    }

    /// The logs of every start, for a failure message.
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for s in 1..=self.starts {
            let text = std::fs::read_to_string(self.log_path(s)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let _ = writeln!(out, "--- {} start {s} (last 40 lines):", self.name);
            for l in tail.iter().rev() {
                let _ = writeln!(out, "{l}");
            }
        }
        out
    }

    /// Whether the last start's log says the listener could not be bound.
    fn bind_failed(&self) -> bool {
        std::fs::read_to_string(self.log_path(self.starts))
            .is_ok_and(|t| t.contains("cannot listen") || t.contains("Address already in use"))
    }

    /// SIGKILL, and reap.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; waits for the exit and returns its status.
    pub(crate) fn sigterm(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("node running");
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -TERM failed");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {limit:?} of SIGTERM\n{}",
                    self.name,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A deployment of real nodes under one tempdir. Dropping it kills them all.
pub(crate) struct Cluster {
    pub(crate) spec: Spec,
    pub(crate) nodes: Vec<NodeProc>,
    /// Address overrides: `(from, to) -> address` that node `from` uses
    /// for region `to` (a proxy).
    pub(crate) routes: BTreeMap<(usize, usize), String>,
    // Last: removed after the nodes are killed.
    pub(crate) dir: tempfile::TempDir,
}

impl Cluster {
    /// Lays out the deployment (ports, configs); starts nothing.
    pub(crate) fn new(spec: Spec) -> Self {
        assert!((1..=NAMES.len()).contains(&spec.regions));
        let dir = tempfile::tempdir().expect("tempdir");
        if !spec.insecure {
            let pki = concord_node::certs::local().expect("the local PKI");
            for name in &NAMES[..spec.regions] {
                pki.write_region(&dir.path().join("tls"), name)
                    .expect("write the region's certificate");
            }
        }
        let nodes = (0..spec.regions)
            .map(|i| NodeProc {
                name: NAMES[i].to_owned(),
                index: i,
                port: free_port(),
                config_path: dir.path().join(format!("{}.toml", NAMES[i])),
                data_dir: dir.path().join("data").join(NAMES[i]),
                log_dir: dir.path().to_path_buf(),
                starts: 0,
                child: None,
            })
            .collect();
        Self {
            spec,
            nodes,
            routes: BTreeMap::new(),
            dir,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The TOML config of node `i`.
    pub(crate) fn config_text(&self, i: usize) -> String {
        let me = &self.nodes[i];
        let mut t = String::new();
        let _ = writeln!(t, "region = {:?}", me.name);
        let _ = writeln!(t, "listen = \"127.0.0.1:{}\"", me.port);
        let _ = writeln!(t, "data_dir = {:?}", me.data_dir.display().to_string());
        let _ = writeln!(t, "write_concern = \"local\"");
        let _ = writeln!(t, "write_timeout_ms = 10000");
        let _ = writeln!(t, "read_wait_ms = 10000");
        let _ = writeln!(t, "\n[lag]");
        let _ = writeln!(t, "failed_after_ms = {}", self.spec.failed_after_ms);
        let _ = writeln!(t, "\n[tuning]");
        let _ = writeln!(t, "heartbeat_ms = {}", self.spec.heartbeat_ms);
        if let Some(n) = self.spec.checkpoint_every {
            let _ = writeln!(t, "checkpoint_every = {n}");
        }
        let _ = writeln!(t, "\n[tls]");
        if self.spec.insecure {
            let _ = writeln!(t, "insecure = true");
        } else {
            let tls = self.dir.path().join("tls");
            let path = |f: String| format!("{:?}", tls.join(f).display().to_string());
            let _ = writeln!(t, "ca = {}", path("ca.pem".into()));
            let _ = writeln!(t, "cert = {}", path(format!("{}.pem", me.name)));
            let _ = writeln!(t, "key = {}", path(format!("{}.key", me.name)));
        }
        for (j, n) in self.nodes.iter().enumerate() {
            let _ = writeln!(t, "\n[[regions]]");
            let _ = writeln!(t, "name = {:?}", n.name);
            let _ = writeln!(t, "id = {}", j + 1);
            if j != i {
                let addr = self
                    .routes
                    .get(&(i, j))
                    .cloned()
                    .unwrap_or_else(|| n.addr());
                let _ = writeln!(t, "address = {addr:?}");
            }
        }
        for c in &self.spec.collections {
            let _ = writeln!(t, "\n[[collections]]");
            let _ = writeln!(t, "name = {:?}", c.name);
            let _ = writeln!(t, "policy = {:?}", c.policy);
        }
        t.push_str(&self.spec.extra_collections);
        if !self.spec.insecure {
            let pki = concord_node::certs::local().expect("the local PKI");
            let _ = writeln!(t, "\n[[clients]]");
            let _ = writeln!(t, "name = \"local-admin\"");
            let _ = writeln!(
                t,
                "token_sha256 = {:?}",
                concord_node::auth::hash_token(pki.admin_token())
            );
            let _ = writeln!(t, "read = [\"*\"]\nwrite = [\"*\"]\nadmin = true");
        }
        if let Some(extra) = self.spec.node_toml.get(i) {
            let _ = writeln!(t, "\n{extra}");
        }
        t
    }

    /// How the tests' clients connect: the local PKI's CA and admin token,
    /// or plaintext.
    pub(crate) fn options(&self) -> ClientOptions {
        if self.spec.insecure {
            ClientOptions::default()
        } else {
            ClientOptions::local().expect("the local PKI")
        }
    }

    /// Writes node `i`'s config file again (from the spec, as it is now:
    /// a restart then reads the new one).
    pub(crate) fn write_config(&self, i: usize) {
        std::fs::write(&self.nodes[i].config_path, self.config_text(i)).expect("write config");
    }

    fn write_configs(&self) {
        for i in 0..self.nodes.len() {
            std::fs::write(&self.nodes[i].config_path, self.config_text(i)).expect("write config");
        }
    }

    /// Starts every node and waits until each serves as its own region.
    /// A port taken meanwhile by someone else: new ports for all, again.
    pub(crate) async fn start(&mut self) {
        for attempt in 0.. {
            self.write_configs();
            for n in &mut self.nodes {
                n.spawn();
            }
            let mut collided = false;
            for i in 0..self.nodes.len() {
                if let Err(e) = self.wait_ready(i).await {
                    if self.nodes[i].bind_failed() && attempt < 5 {
                        collided = true;
                        break;
                    }
                    panic!("{e}\n{}", self.logs());
                }
            }
            if !collided {
                return;
            }
            for n in &mut self.nodes {
                n.kill9();
                n.port = free_port();
            }
        }
    }

    /// Restarts node `i` on its data dir and port (retrying while the port
    /// is still held), and waits until it serves.
    pub(crate) async fn restart(&mut self, i: usize) {
        let start = Instant::now();
        loop {
            self.nodes[i].spawn();
            match self.wait_ready(i).await {
                Ok(()) => return,
                Err(e) => {
                    if self.nodes[i].bind_failed() && start.elapsed() < PATIENCE {
                        self.nodes[i].kill9();
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    panic!("{e}\n{}", self.logs());
                }
            }
        }
    }

    /// Waits until node `i` answers Status as its own region.
    async fn wait_ready(&mut self, i: usize) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.nodes[i].exited() {
                return Err(format!("{} exited early: {status}", self.nodes[i].name));
            }
            if let Ok(mut c) = Client::connect_with(&self.nodes[i].addr(), &self.options()).await
                && let Ok(s) = c.status().await
            {
                if s.region == self.nodes[i].name {
                    return Ok(());
                }
                return Err(format!(
                    "port {} answers as {:?}, not {}",
                    self.nodes[i].port, s.region, self.nodes[i].name
                ));
            }
            if start.elapsed() > PATIENCE {
                return Err(format!(
                    "{} not serving after {PATIENCE:?}",
                    self.nodes[i].name
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client of node `i`.
    pub(crate) async fn client(&self, i: usize) -> Client {
        let start = Instant::now();
        loop {
            match Client::connect_with(&self.nodes[i].addr(), &self.options()).await {
                Ok(c) => return c,
                Err(e) if start.elapsed() > PATIENCE => {
                    panic!("connect to {}: {e}", self.nodes[i].name)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Clients of every node, in order.
    pub(crate) async fn clients(&self) -> Vec<Client> {
        let mut out = Vec::new();
        for i in 0..self.nodes.len() {
            out.push(self.client(i).await);
        }
        out
    }

    /// Every node's logs.
    pub(crate) fn logs(&self) -> String {
        self.nodes.iter().map(NodeProc::logs).collect()
    }

    /// Waits until every running node has every replication stream up and
    /// active.
    pub(crate) async fn wait_connected(&self) {
        let ok = eventually(PATIENCE, || async {
            for i in 0..self.nodes.len() {
                let mut c = self.client(i).await;
                let Ok(s) = c.status().await else {
                    return false;
                };
                if s.channels.len() != self.nodes.len() - 1
                    || !s
                        .channels
                        .iter()
                        .all(|ch| ch.connected && ch.status == "active")
                {
                    return false;
                }
            }
            true
        })
        .await;
        assert!(ok, "replication streams did not come up\n{}", self.logs());
    }

    /// Waits until every node reads `keys` alike and has applied the same
    /// writes; returns the common view. Panics with the differences if not.
    pub(crate) async fn wait_converged(
        &self,
        keys: &[(String, Vec<u8>)],
    ) -> BTreeMap<String, String> {
        let start = Instant::now();
        let mut clients = self.clients().await;
        loop {
            let mut views = Vec::new();
            let mut failed = None;
            for c in &mut clients {
                match view(c, keys).await {
                    Ok(v) => views.push(v),
                    Err(e) => failed = Some(e),
                }
            }
            if failed.is_none() && views.windows(2).all(|w| w[0] == w[1]) {
                return views.swap_remove(0).1;
            }
            if start.elapsed() > PATIENCE {
                let mut msg = format!("not converged after {PATIENCE:?}: {failed:?}\n");
                if views.len() == self.nodes.len() {
                    let _ = writeln!(
                        msg,
                        "applied: {:?}",
                        views.iter().map(|v| &v.0).collect::<Vec<_>>()
                    );
                    for (k, v0) in &views[0].1 {
                        let all: Vec<&String> = views.iter().filter_map(|v| v.1.get(k)).collect();
                        if all.iter().any(|v| *v != v0) {
                            let _ = writeln!(msg, "  {k}: {all:?}");
                        }
                    }
                }
                panic!("{msg}{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Polls `check` until it is true or `limit` passes.
pub(crate) async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn wref(w: Option<&pb::WriteRef>) -> String {
    w.map_or_else(|| "?".into(), |w| format!("{}#{}", w.origin, w.seq))
}

/// A read in a form that compares across regions: the value and the write
/// that made it.
pub(crate) fn describe(read: &Read) -> String {
    match read {
        Read::Missing => "(missing)".into(),
        Read::Value { value, version } => {
            format!("{:?} @{}", text(value), wref(version.write.as_ref()))
        }
        Read::Siblings { versions, .. } => {
            let mut vs: Vec<String> = versions
                .iter()
                .map(|v| {
                    format!(
                        "{:?} @{}",
                        v.value.as_deref().map(text).unwrap_or_default(),
                        wref(v.write.as_ref())
                    )
                })
                .collect();
            vs.sort();
            format!("siblings [{}]", vs.join(", "))
        }
        Read::Counter(n) => format!("{n}"),
    }
}

type View = (Vec<(u32, u64)>, BTreeMap<String, String>);

/// One node's applied cursors and reads of `keys`.
async fn view(c: &mut Client, keys: &[(String, Vec<u8>)]) -> Result<View, String> {
    let mut out = BTreeMap::new();
    for (collection, key) in keys {
        let r = c
            .get(collection, key)
            .await
            .map_err(|e| format!("get {collection}/{}: {e}", text(key)))?;
        out.insert(format!("{collection}/{}", text(key)), describe(&r));
    }
    let s = c.status().await.map_err(|e| format!("status: {e}"))?;
    let mut applied: Vec<(u32, u64)> = s.applied.iter().map(|w| (w.origin, w.seq)).collect();
    applied.sort_unstable();
    Ok((applied, out))
}

/// The values of the versions of a read (one for LWW, several for
/// siblings), sorted.
pub(crate) fn values(read: &Read) -> Vec<String> {
    let mut v = match read {
        Read::Missing => vec![],
        Read::Value { value, .. } => vec![text(value)],
        Read::Siblings { versions, .. } => versions
            .iter()
            .map(|v| v.value.as_deref().map(text).unwrap_or_default())
            .collect(),
        Read::Counter(n) => vec![n.to_string()],
    };
    v.sort();
    v
}

/// Runs `concord <args>` to completion and returns (success, stdout).
/// Runs `concord ARGS` (for commands that talk to a node of `cluster`:
/// its CA and the admin token through the environment).
pub(crate) fn cli_of(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let mut command = Command::new(CONCORD);
    if !cluster.spec.insecure {
        let pki = concord_node::certs::local().expect("the local PKI");
        command
            .env("CONCORD_CA", cluster.path().join("tls").join("ca.pem"))
            .env("CONCORD_TOKEN", pki.admin_token());
    }
    run_cli(command, args)
}

pub(crate) fn cli(args: &[&str]) -> (bool, String) {
    run_cli(Command::new(CONCORD), args)
}

fn run_cli(mut command: Command, args: &[&str]) -> (bool, String) {
    let out = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run concord");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A TCP proxy to `upstream` that injects faults: latency (each chunk is
/// delivered `latency` after it was read, in order, each way), resets
/// (every connection open now is closed at once) and cuts (every
/// connection is closed and new ones are refused until the heal).
pub(crate) struct FaultProxy {
    pub(crate) addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
    resets: tokio::sync::watch::Sender<u64>,
    latency_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port.
    pub(crate) async fn start(upstream: String) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::AtomicU64;
        use tokio::sync::watch;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (up, up_rx) = watch::channel(true);
        let (resets, resets_rx) = watch::channel(0u64);
        let latency_ms = Arc::new(AtomicU64::new(0));
        let latency = latency_ms.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                if !*up_rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut = up_rx.clone();
                let mut reset = resets_rx.clone();
                let generation = *reset.borrow();
                let upstream = upstream.clone();
                let latency = latency.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    let both = async {
                        tokio::join!(pump(ri, wo, latency.clone()), pump(ro, wi, latency.clone()))
                    };
                    tokio::select! {
                        _ = both => {}
                        _ = cut.wait_for(|up| !*up) => {}
                        _ = reset.wait_for(|g| *g != generation) => {}
                    }
                    // Every half drops here: both sides see the close.
                });
            }
        });
        Self {
            addr,
            up,
            resets,
            latency_ms,
            task,
        }
    }

    /// The proxy's address as a node config wants it.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Delays every chunk by `ms` each way from now on.
    pub(crate) fn set_latency(&self, ms: u64) {
        self.latency_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes every connection open now (new ones are accepted).
    pub(crate) fn reset(&self) {
        self.resets.send_modify(|g| *g += 1);
    }

    /// Closes every connection and refuses new ones until [`Self::heal`].
    pub(crate) fn cut(&self) {
        let _ = self.up.send(false);
    }

    /// Accepts connections again.
    pub(crate) fn heal(&self) {
        let _ = self.up.send(true);
    }

    /// Whether the proxy is cut.
    pub(crate) fn is_cut(&self) -> bool {
        !*self.up.borrow()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.up.send(false);
    }
}

/// Copies `from` to `to`, each chunk held until `latency` after it was read.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    latency: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let ms = latency.load(std::sync::atomic::Ordering::Relaxed);
                    let due = tokio::time::Instant::now() + Duration::from_millis(ms);
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, data)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&data).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
