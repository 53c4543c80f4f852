//! The soak: three real `concord node` processes on loopback for a given
//! time under a mixed workload (every policy, and an owned collection with
//! takeovers), with faults injected: 40 ms of latency each way on every
//! link between regions (a proxy per direction), connection resets,
//! partitions (cut, heal), isolation of a region then a takeover of its
//! keys, kill -9 and restart of random nodes, and clock skew (each node's
//! `[testing] clock_offset_ms`, changed on some restarts).
//!
//! At the end everything is healed, and it checks that the regions
//! converge (the same reads key by key, the same applied cursors) and that
//! every acknowledged write is accounted for in every region: in the state
//! (the LWW value, a sibling), in the loser log (`ListLosers`), in the
//! conflict queue (open or closed, fenced writes included), replaced by a
//! later write or resolution that read it, or (LWW) superseded by a later
//! write of its own region that is accounted for. Counters: each key's value is
//! at least the acknowledged increments, at most those plus the ones whose
//! outcome is unknown. It prints a summary.
//!
//! Ignored by default; run it with
//!
//! ```text
//! CONCORD_SOAK_SECS=60 cargo test --release -p concord-node --test soak -- --ignored --nocapture
//! ```
//!
//! `CONCORD_SOAK_SECS` (default 60): how long the workload runs;
//! `CONCORD_SOAK_SEED` (default: from the time, printed): the faults' and
//! the workload's choices; `CONCORD_SOAK_RATE` (default 10): operations
//! per second per worker (two workers per region).

mod process_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_node::NodeError;
use concord_node::client::{Client, ClientOptions, Read};
use concord_node::pb;
use process_support::{Cluster, FaultProxy, NAMES, Spec, describe};
use tonic::Code;

const LATENCY_MS: u64 = 40;
const LWW_KEYS: u64 = 20;
const MV_KEYS: u64 = 10;
const COUNTER_KEYS: u64 = 5;
const OWNED_KEYS: u64 = 30;
const WORKERS_PER_REGION: usize = 2;
const CONVERGE_LIMIT: Duration = Duration::from_secs(180);

/// A small deterministic generator (xorshift64*).
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A write's identity.
type Ref = (u32, u64);

fn ref_of(w: Option<&pb::WriteRef>) -> Option<Ref> {
    w.map(|w| (w.origin, w.seq))
}

/// What the workers did.
#[derive(Default)]
struct Ledger {
    /// Acknowledged writes (not counters): collection -> refs.
    acked: BTreeMap<String, Vec<Ref>>,
    /// Writes whose outcome is unknown (the call failed in a way that may
    /// have left the write made), by collection.
    uncertain: BTreeMap<String, u64>,
    /// Writes refused (nothing written), by status code.
    refused: BTreeMap<String, u64>,
    /// Versions an attempted write or a resolution replaced on purpose
    /// (its context covered them: they were read first).
    replaced: HashSet<Ref>,
    /// The (collection, key) of each acknowledged LWW write.
    lww_keys: HashMap<Ref, (String, String)>,
    /// Counters: key -> (acknowledged sum, unknown sum).
    counters: BTreeMap<String, (i64, i64)>,
    /// Acknowledged resolutions.
    resolutions: u64,
    /// Reads that failed.
    read_errors: u64,
}

/// How a failed write is counted.
enum Outcome {
    Refused(String),
    Unknown,
}

fn classify(e: &NodeError) -> Outcome {
    let status = match e {
        NodeError::Status(s) => s,
        _ => return Outcome::Unknown,
    };
    match status.code() {
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::Aborted
        | Code::ResourceExhausted
        | Code::OutOfRange
        | Code::AlreadyExists => Outcome::Refused(format!("{:?}", status.code())),
        _ => Outcome::Unknown,
    }
}

impl Ledger {
    /// An LWW write to `key` (kept by key, to follow what superseded it).
    fn wrote_lww(&mut self, collection: &str, key: &str, r: Result<pb::WriteRef, NodeError>) {
        if let Ok(w) = &r {
            self.lww_keys
                .insert((w.origin, w.seq), (collection.to_owned(), key.to_owned()));
        }
        self.wrote(collection, r, &[]);
    }

    fn wrote(&mut self, collection: &str, r: Result<pb::WriteRef, NodeError>, read: &[Ref]) {
        match r {
            Ok(w) => {
                self.acked
                    .entry(collection.to_owned())
                    .or_default()
                    .push((w.origin, w.seq));
                self.replaced.extend(read.iter().copied());
            }
            Err(e) => match classify(&e) {
                Outcome::Refused(code) => *self.refused.entry(code).or_default() += 1,
                Outcome::Unknown => {
                    *self.uncertain.entry(collection.to_owned()).or_default() += 1;
                    self.replaced.extend(read.iter().copied());
                }
            },
        }
    }
}

/// Faults injected, by kind.
#[derive(Default)]
struct Faults {
    counts: BTreeMap<&'static str, u64>,
    takeover_errors: Vec<String>,
}

impl Faults {
    fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_default() += 1;
    }
}

/// The highest lag any node reported.
#[derive(Default, Clone, Copy)]
struct Lag {
    seconds: f64,
    writes: u64,
}

fn spec() -> Spec {
    let mut spec = Spec::new(3);
    spec.failed_after_ms = 2000;
    spec.checkpoint_every = Some(2000);
    let regions = NAMES.map(|n| format!("{n:?}")).join(", ");
    spec.extra_collections = format!(
        "\n[[collections]]\nname = \"accounts\"\npolicy = \"lww-hlc\"\nowned = {{ rule = \"modulo\", regions = [{regions}] }}\n"
    );
    spec
}

fn clock_toml(offset_ms: i64) -> String {
    format!("[testing]\nclock_offset_ms = {offset_ms}\n")
}

/// The keys of every collection.
fn keys() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for n in 0..LWW_KEYS {
        out.push(("wall".to_owned(), format!("w{n}").into_bytes()));
        out.push(("hlc".to_owned(), format!("h{n}").into_bytes()));
    }
    for n in 0..MV_KEYS {
        out.push(("carts".to_owned(), format!("c{n}").into_bytes()));
        out.push(("orders".to_owned(), format!("o{n}").into_bytes()));
    }
    for n in 0..COUNTER_KEYS {
        out.push(("stock".to_owned(), format!("s{n}").into_bytes()));
    }
    for n in 0..OWNED_KEYS {
        out.push(("accounts".to_owned(), n.to_string().into_bytes()));
    }
    out
}

/// What a worker needs.
struct Worker {
    addr: String,
    options: ClientOptions,
    region: usize,
    id: usize,
    seed: u64,
    rate: u64,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
}

/// One worker: writes to one region's node until `stop`.
async fn worker(w: Worker) {
    let Worker {
        addr,
        options,
        region,
        id,
        seed,
        rate,
        stop,
        ledger,
    } = w;
    let mut rng = Rng::new(seed);
    let mut client: Option<Client> = None;
    let pause = Duration::from_millis(1000 / rate.max(1));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(pause).await;
        let c = match &mut client {
            Some(c) => c,
            None => match Client::connect_with(&addr, &options).await {
                Ok(c) => client.insert(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        n += 1;
        let value = format!("{}-{id}-{n}", NAMES[region]);
        let op = rng.below(100);
        if op < 18 {
            let key = format!("w{}", rng.below(LWW_KEYS));
            let r = c.put("wall", key.as_bytes(), value.as_bytes()).await;
            lock(&ledger).wrote_lww("wall", &key, r);
        } else if op < 36 {
            let key = format!("h{}", rng.below(LWW_KEYS));
            let r = c.put("hlc", key.as_bytes(), value.as_bytes()).await;
            lock(&ledger).wrote_lww("hlc", &key, r);
        } else if op < 66 {
            let collection = if op < 51 { "carts" } else { "orders" };
            let prefix = if op < 51 { "c" } else { "o" };
            let key = format!("{prefix}{}", rng.below(MV_KEYS));
            // Mostly read-modify-write (the context replaces what was read);
            // sometimes blind (concurrent with everything).
            let (context, read) = if rng.chance(75) {
                match c.get(collection, key.as_bytes()).await {
                    Ok(Read::Siblings { versions, context }) => (
                        Some(context),
                        versions
                            .iter()
                            .filter_map(|v| ref_of(v.write.as_ref()))
                            .collect::<Vec<_>>(),
                    ),
                    Ok(_) => (None, Vec::new()),
                    Err(_) => {
                        lock(&ledger).read_errors += 1;
                        client = None;
                        continue;
                    }
                }
            } else {
                (None, Vec::new())
            };
            let r = c
                .put_with(collection, key.as_bytes(), value.as_bytes(), context)
                .await;
            lock(&ledger).wrote(collection, r, &read);
        } else if op < 80 {
            let key = format!("s{}", rng.below(COUNTER_KEYS));
            let delta = i64::try_from(rng.range(1, 5)).unwrap_or(1);
            let r = c.increment("stock", key.as_bytes(), delta).await;
            let mut l = lock(&ledger);
            let e = l.counters.entry(key).or_default();
            match r {
                Ok(_) => e.0 += delta,
                Err(err) => match classify(&err) {
                    Outcome::Refused(code) => *l.refused.entry(code).or_default() += 1,
                    Outcome::Unknown => e.1 += delta,
                },
            }
        } else if op < 97 {
            // The owned collection: write where the worker is; a region that
            // does not own the key refuses (FAILED_PRECONDITION).
            let key = rng.below(OWNED_KEYS).to_string();
            let r = c.put("accounts", key.as_bytes(), value.as_bytes()).await;
            lock(&ledger).wrote_lww("accounts", &key, r);
        } else {
            // Resolve an open conflict of the queue collection, keeping every
            // value (an application's merge).
            let items = match c.conflicts(false).await {
                Ok(items) => items,
                Err(_) => {
                    lock(&ledger).read_errors += 1;
                    client = None;
                    continue;
                }
            };
            let Some(item) = items
                .iter()
                .find(|i| i.collection == "orders" && i.reason == "concurrent")
            else {
                continue;
            };
            let merged: Vec<String> = item
                .versions
                .iter()
                .filter_map(|v| {
                    v.value
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                })
                .collect();
            let read: Vec<Ref> = item
                .versions
                .iter()
                .filter_map(|v| ref_of(v.write.as_ref()))
                .collect();
            let r = c
                .resolve_item(item, Some(merged.join("+").into_bytes()))
                .await;
            let mut l = lock(&ledger);
            if r.is_ok() {
                l.resolutions += 1;
            }
            l.wrote("orders", r, &read);
        }
    }
}

/// The LWW writes superseded in a region by a later write of their own
/// origin to the same key that is accounted for there: the current version,
/// a loser, queued, or superseded in turn. (A later write of the same origin
/// that did not beat the earlier one — a clock that went back — is logged as
/// a loser itself and leaves the earlier one current, so it never stands in
/// for it.)
///
/// The links of a chain are the acknowledged LWW writes and the versions the
/// region's loser log and queue name (writes the workers did not make or
/// see acknowledged, like resolutions, are links too).
fn superseded_in_region(
    ledger: &Ledger,
    found: &[(Ref, (String, String))],
    current: &HashMap<(String, String), Ref>,
    present: &HashSet<Ref>,
    lost: &HashSet<Ref>,
    queued: &HashSet<Ref>,
) -> HashSet<Ref> {
    let mut chains: HashMap<(&(String, String), u32), Vec<u64>> = HashMap::new();
    for (r, at) in ledger
        .lww_keys
        .iter()
        .chain(found.iter().map(|(r, at)| (r, at)))
    {
        chains.entry((at, r.0)).or_default().push(r.1);
    }
    let mut out = HashSet::new();
    for ((at, origin), mut seqs) in chains {
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        seqs.dedup();
        let now = current.get(at);
        // Whether a later write of this origin to this key is accounted for.
        let mut later_kept = false;
        for seq in seqs {
            let r = (origin, seq);
            if later_kept || now.is_some_and(|c| c.0 == origin && c.1 > seq) {
                out.insert(r);
                later_kept = true;
            }
            if present.contains(&r) || lost.contains(&r) || queued.contains(&r) {
                later_kept = true;
            }
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Polls every node's Status for the highest lag, until `stop`.
async fn monitor(
    addrs: Vec<String>,
    options: ClientOptions,
    stop: Arc<AtomicBool>,
    lag: Arc<Mutex<Lag>>,
) {
    let mut clients: Vec<Option<Client>> = vec![None; addrs.len()];
    while !stop.load(Ordering::Relaxed) {
        for (i, addr) in addrs.iter().enumerate() {
            if clients[i].is_none() {
                clients[i] = Client::connect_with(addr, &options).await.ok();
            }
            let Some(c) = &mut clients[i] else { continue };
            match c.status().await {
                Ok(s) => {
                    let mut l = lock(&lag);
                    for ch in &s.channels {
                        l.seconds = l.seconds.max(ch.seconds_behind).max(ch.max_ever_seconds);
                        l.writes = l.writes.max(ch.writes_behind).max(ch.max_ever_writes);
                    }
                }
                Err(_) => clients[i] = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Proxies between every pair: `proxies[(i, j)]` is how node `i` reaches `j`.
struct Links(BTreeMap<(usize, usize), FaultProxy>);

impl Links {
    fn pair(&self, a: usize, b: usize) -> impl Iterator<Item = &FaultProxy> {
        [(a, b), (b, a)].into_iter().filter_map(|k| self.0.get(&k))
    }
    fn heal_all(&self) {
        for p in self.0.values() {
            p.heal();
        }
    }
}

/// The application's part of a takeover: a write the fenced region made
/// after the fence is in the conflict queue, and its region may still hold
/// it in state, until the application decides. Here the application keeps
/// the owner's value: each open fenced item is resolved at the key's owner
/// (the resolution replaces the fenced write everywhere; the write stays
/// accounted for in the closed item). Returns how many it resolved.
async fn resolve_fenced(clients: &mut [Client]) -> usize {
    let mut resolved = 0;
    for (i, c) in clients.iter_mut().enumerate() {
        let Ok(items) = c.conflicts(false).await else {
            continue;
        };
        for it in items.into_iter().filter(|it| it.reason == "fenced") {
            let owner = c
                .raw()
                .owner(pb::OwnerRequest {
                    collection: it.collection.clone(),
                    key: it.key.clone(),
                })
                .await;
            match owner {
                Ok(o) if o.get_ref().owner == NAMES[i] => {}
                _ => continue,
            }
            let value = match c.get(&it.collection, &it.key).await {
                Ok(Read::Value { value, .. }) => Some(value),
                Ok(Read::Missing) => None,
                _ => continue,
            };
            if c.resolve_item(&it, value).await.is_ok() {
                resolved += 1;
            }
        }
    }
    resolved
}

/// One region's view: applied cursors and the reads of every key.
async fn view(c: &mut Client, keys: &[(String, Vec<u8>)]) -> Result<(Vec<Ref>, Vec<Read>), String> {
    let mut reads = Vec::with_capacity(keys.len());
    for (collection, key) in keys {
        reads.push(
            c.get(collection, key)
                .await
                .map_err(|e| format!("get {collection}/{}: {e}", String::from_utf8_lossy(key)))?,
        );
    }
    let s = c.status().await.map_err(|e| format!("status: {e}"))?;
    let mut applied: Vec<Ref> = s.applied.iter().map(|w| (w.origin, w.seq)).collect();
    applied.sort_unstable();
    Ok((applied, reads))
}

fn same(a: &(Vec<Ref>, Vec<Read>), b: &(Vec<Ref>, Vec<Read>)) -> bool {
    a.0 == b.0
        && a.1.len() == b.1.len()
        && a.1
            .iter()
            .zip(&b.1)
            .all(|(x, y)| describe(x) == describe(y))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the soak: CONCORD_SOAK_SECS=60 cargo test --release -p concord-node --test soak -- --ignored --nocapture"]
async fn soak() {
    let secs = env_u64("CONCORD_SOAK_SECS", 60);
    let seed = env_u64(
        "CONCORD_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    );
    let rate = env_u64("CONCORD_SOAK_RATE", 10);
    println!(
        "soak: {secs} s, seed {seed}, {rate} ops/s per worker (CONCORD_SOAK_SEED={seed} to replay the choices)"
    );
    let mut rng = Rng::new(seed);

    let mut cluster = Cluster::new(spec());
    let mut offsets: Vec<i64> = vec![0, 700, -400];
    let mut links = BTreeMap::new();
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                let p = FaultProxy::start(format!("127.0.0.1:{}", cluster.nodes[j].port)).await;
                p.set_latency(LATENCY_MS);
                cluster.routes.insert((i, j), p.url());
                links.insert((i, j), p);
            }
        }
    }
    let links = Links(links);
    for (i, o) in offsets.iter().enumerate() {
        cluster.spec.node_toml[i] = clock_toml(*o);
    }
    cluster.start().await;
    cluster.wait_connected().await;
    let options = cluster.options();
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr()).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let lag = Arc::new(Mutex::new(Lag::default()));
    let mut tasks = Vec::new();
    for (region, addr) in addrs.iter().enumerate() {
        for w in 0..WORKERS_PER_REGION {
            tasks.push(tokio::spawn(worker(Worker {
                addr: addr.clone(),
                options: options.clone(),
                region,
                id: w,
                seed: rng.next(),
                rate,
                stop: stop.clone(),
                ledger: ledger.clone(),
            })));
        }
    }
    let mon_stop = Arc::new(AtomicBool::new(false));
    let mon = tokio::spawn(monitor(
        addrs.clone(),
        options.clone(),
        mon_stop.clone(),
        lag.clone(),
    ));

    // Faults, one after another, until the time is up.
    let mut faults = Faults::default();
    faults
        .counts
        .insert("latency (40 ms each way, every link)", 6);
    faults
        .counts
        .insert("clock skew at start (node offsets)", 2);
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut admin = cluster.clients().await;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(rng.range(500, 2500))).await;
        if Instant::now() >= end {
            break;
        }
        let a = usize::try_from(rng.below(3)).unwrap_or(0);
        let b = (a + 1 + usize::try_from(rng.below(2)).unwrap_or(0)) % 3;
        match rng.below(100) {
            0..30 => {
                // Drops: reset the connections of a link.
                for p in links.pair(a, b) {
                    p.reset();
                }
                faults.count("drop (connections reset)");
            }
            30..55 => {
                for p in links.pair(a, b) {
                    p.cut();
                }
                faults.count("partition (pair cut, healed)");
                tokio::time::sleep(Duration::from_millis(rng.range(1000, 5000))).await;
                for p in links.pair(a, b) {
                    p.heal();
                }
            }
            55..80 => {
                cluster.nodes[a].kill9();
                faults.count("kill -9 (restarted)");
                tokio::time::sleep(Duration::from_millis(rng.range(200, 3000))).await;
                if rng.chance(50) {
                    let o = i64::try_from(rng.range(0, 3000)).unwrap_or(0) - 1500;
                    offsets[a] = o;
                    cluster.spec.node_toml[a] = clock_toml(o);
                    cluster.write_config(a);
                    faults.count("clock skew change (at restart)");
                }
                cluster.restart(a).await;
                admin[a] = cluster.client(a).await;
            }
            _ => {
                // Isolate a region, take its keys over from another one,
                // let the isolated region keep writing (fenced), heal.
                let other = (a + 1) % 3;
                for p in links.pair(a, other).chain(links.pair(a, (a + 2) % 3)) {
                    p.cut();
                }
                faults.count("isolation + takeover");
                tokio::time::sleep(Duration::from_millis(500)).await;
                let r = admin[other]
                    .raw()
                    .takeover(pb::TakeoverRequest {
                        from: NAMES[a].to_owned(),
                        reason: "soak".to_owned(),
                    })
                    .await;
                if let Err(e) = r {
                    faults.takeover_errors.push(format!("{}: {e}", NAMES[a]));
                }
                tokio::time::sleep(Duration::from_millis(rng.range(1000, 4000))).await;
                links.heal_all();
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let ran = started.elapsed();

    // Heal everything, then wait for convergence.
    links.heal_all();
    for i in 0..3 {
        if cluster.nodes[i].exited().is_some() || cluster.nodes[i].pid().is_none() {
            cluster.restart(i).await;
        }
    }
    let keys = keys();
    let converge_start = Instant::now();
    let mut clients = cluster.clients().await;
    let mut last_error = String::new();
    let mut fenced_resolved = 0;
    let views = loop {
        fenced_resolved += resolve_fenced(&mut clients).await;
        let mut views = Vec::new();
        for c in &mut clients {
            match view(c, &keys).await {
                Ok(v) => views.push(v),
                Err(e) => last_error = e,
            }
        }
        if views.len() == 3 && views.windows(2).all(|w| same(&w[0], &w[1])) {
            break Some(views);
        }
        if converge_start.elapsed() > CONVERGE_LIMIT {
            if views.len() == 3 {
                let _ = writeln!(
                    last_error,
                    "applied: {:?}",
                    views.iter().map(|v| &v.0).collect::<Vec<_>>()
                );
                for (k, (collection, key)) in keys.iter().enumerate() {
                    let d: Vec<String> = views.iter().map(|v| describe(&v.1[k])).collect();
                    if d.windows(2).any(|w| w[0] != w[1]) {
                        let _ = writeln!(
                            last_error,
                            "  {collection}/{}: {d:?}",
                            String::from_utf8_lossy(key)
                        );
                    }
                }
            }
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let converge_time = converge_start.elapsed();
    mon_stop.store(true, Ordering::Relaxed);
    let _ = mon.await;

    // Accounting, region by region.
    let ledger = std::mem::take(&mut *lock(&ledger));
    let mut problems: Vec<String> = Vec::new();
    let mut conflicts_by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_region = Vec::new();
    if let Some(views) = &views {
        for (i, c) in clients.iter_mut().enumerate() {
            let name = NAMES[i];
            let mut present: HashSet<Ref> = HashSet::new();
            // The current LWW version of each key.
            let mut current: HashMap<(String, String), Ref> = HashMap::new();
            for (k, r) in views[i].1.iter().enumerate() {
                match r {
                    Read::Value { version, .. } => {
                        present.extend(ref_of(version.write.as_ref()));
                        if let (Some(at), Some((collection, key))) =
                            (ref_of(version.write.as_ref()), keys.get(k))
                        {
                            current.insert(
                                (
                                    collection.clone(),
                                    String::from_utf8_lossy(key).into_owned(),
                                ),
                                at,
                            );
                        }
                    }
                    Read::Siblings { versions, .. } => {
                        present.extend(versions.iter().filter_map(|v| ref_of(v.write.as_ref())));
                    }
                    _ => {}
                }
            }
            let losers = match c.losers("").await {
                Ok(l) => l,
                Err(e) => {
                    problems.push(format!("{name}: ListLosers: {e}"));
                    continue;
                }
            };
            let lost: HashSet<Ref> = losers
                .iter()
                .filter_map(|l| l.loser.as_ref().and_then(|v| ref_of(v.write.as_ref())))
                .collect();
            let items = match c.conflicts(true).await {
                Ok(items) => items,
                Err(e) => {
                    problems.push(format!("{name}: ListConflicts: {e}"));
                    continue;
                }
            };
            let queued: HashSet<Ref> = items
                .iter()
                .flat_map(|it| it.versions.iter().filter_map(|v| ref_of(v.write.as_ref())))
                .collect();
            let open = items.iter().filter(|it| it.status == "open").count();
            if i == 0 {
                for it in &items {
                    *conflicts_by_reason.entry(it.reason.clone()).or_default() += 1;
                }
            }
            let key_of = |collection: &str, key: &[u8]| {
                (
                    collection.to_owned(),
                    String::from_utf8_lossy(key).into_owned(),
                )
            };
            let found: Vec<(Ref, (String, String))> = losers
                .iter()
                .filter_map(|l| {
                    let r = l.loser.as_ref().and_then(|v| ref_of(v.write.as_ref()))?;
                    Some((r, key_of(&l.collection, &l.key)))
                })
                .chain(items.iter().flat_map(|it| {
                    it.versions.iter().filter_map(|v| {
                        ref_of(v.write.as_ref()).map(|r| (r, key_of(&it.collection, &it.key)))
                    })
                }))
                .collect();
            let superseded =
                superseded_in_region(&ledger, &found, &current, &present, &lost, &queued);
            let mut missing: Vec<String> = Vec::new();
            let mut where_found: BTreeMap<&str, u64> = BTreeMap::new();
            for (collection, refs) in &ledger.acked {
                for r in refs {
                    let place = if present.contains(r) {
                        "state"
                    } else if lost.contains(r) {
                        "loser log"
                    } else if queued.contains(r) {
                        "conflict queue"
                    } else if ledger.replaced.contains(r) {
                        "replaced by a write that read it"
                    } else if superseded.contains(r) {
                        "superseded by a later write of its region"
                    } else {
                        missing.push(format!("{collection} {}#{}", r.0, r.1));
                        continue;
                    };
                    *where_found.entry(place).or_default() += 1;
                }
            }
            if !missing.is_empty() {
                problems.push(format!(
                    "{name}: {} acknowledged writes not accounted for, e.g. {:?}",
                    missing.len(),
                    &missing[..missing.len().min(10)]
                ));
            }
            // Counters.
            for (k, (collection, key)) in keys.iter().enumerate() {
                if collection != "stock" {
                    continue;
                }
                let key = String::from_utf8_lossy(key).into_owned();
                let (acked, unknown) = ledger.counters.get(&key).copied().unwrap_or_default();
                match &views[i].1[k] {
                    Read::Counter(v) if *v >= acked && *v <= acked + unknown => {}
                    Read::Missing if acked == 0 => {}
                    other => problems.push(format!(
                        "{name}: counter stock/{key} is {other:?}, expected {acked}..={}",
                        acked + unknown
                    )),
                }
            }
            per_region.push(format!(
                "{name}: {} losers logged, {} conflict items ({open} open); acknowledged writes found in {:?}",
                losers.len(),
                items.len(),
                where_found
            ));
        }
    } else {
        problems.push(format!(
            "not converged {CONVERGE_LIMIT:?} after the heal: {last_error}"
        ));
    }

    // The summary.
    let acked: usize = ledger.acked.values().map(Vec::len).sum();
    let counter_acked = ledger.counters.values().map(|c| c.0).sum::<i64>();
    let lag = *lock(&lag);
    let mut out = String::new();
    let _ = writeln!(out, "\n==== concord soak summary ====");
    let _ = writeln!(
        out,
        "seed {seed}; workload ran {:.1} s; 3 regions, {} workers",
        ran.as_secs_f64(),
        3 * WORKERS_PER_REGION
    );
    let _ = writeln!(
        out,
        "writes acknowledged: {acked} (+ counter increments totalling {counter_acked}); by collection: {:?}",
        ledger
            .acked
            .iter()
            .map(|(c, v)| (c.as_str(), v.len()))
            .collect::<BTreeMap<_, _>>()
    );
    let _ = writeln!(
        out,
        "writes with unknown outcome: {:?}; refused: {:?}; resolutions: {}; failed reads: {}",
        ledger.uncertain, ledger.refused, ledger.resolutions, ledger.read_errors
    );
    let _ = writeln!(out, "faults injected:");
    for (k, v) in &faults.counts {
        let _ = writeln!(out, "  {k}: {v}");
    }
    let _ = writeln!(out, "final clock offsets (ms): {offsets:?}");
    if !faults.takeover_errors.is_empty() {
        let _ = writeln!(out, "takeovers refused: {:?}", faults.takeover_errors);
    }
    let _ = writeln!(
        out,
        "max lag seen (Status): {:.3} s, {} writes behind",
        lag.seconds, lag.writes
    );
    let _ = writeln!(
        out,
        "conflict items at {} by reason: {conflicts_by_reason:?}",
        NAMES[0]
    );
    for line in &per_region {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "converged {:.1} s after the heal ({fenced_resolved} fenced writes resolved at their owner)",
        converge_time.as_secs_f64()
    );
    let verdict = if problems.is_empty() { "PASS" } else { "FAIL" };
    let _ = writeln!(out, "verdict: {verdict}");
    for p in &problems {
        let _ = writeln!(out, "  {p}");
    }
    println!("{out}");
    if !problems.is_empty() {
        panic!(
            "the soak failed (seed {seed}):\n{}\n{}",
            problems.join("\n"),
            cluster.logs()
        );
    }
}
