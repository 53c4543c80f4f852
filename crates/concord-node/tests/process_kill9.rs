//! kill -9 one real `concord` process under load, several times, and
//! restart it on the same data dir: every write acknowledged before a kill
//! is present in every region afterwards.
//!
//! One writer per region keeps making acknowledged writes (write concern
//! local) the whole time: counter increments, on a key of its own and on a
//! shared key, and LWW puts of increasing values on keys of its own. A write
//! that failed may or may not have been made, so counters are checked
//! between the acknowledged sum and that plus the unknown outcomes, and an
//! LWW key holds its last acknowledged value or a later one.

mod process_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use concord_node::client::{Client, Read};
use concord_node::pb;
use process_support::{Cluster, CollectionDef, NAMES, Spec};

/// Concurrent writers per region.
const WRITERS: usize = 3;

/// LWW keys per writer.
const LWW_KEYS: u64 = 8;

/// What one writer knows about its writes.
#[derive(Debug, Default)]
struct Tally {
    /// Counter key -> (sum of acknowledged deltas, sum of unknown ones).
    counters: BTreeMap<String, (i64, i64)>,
    /// LWW key -> last acknowledged value (an increasing number).
    lww: BTreeMap<String, u64>,
    acked: u64,
    failed: u64,
}

fn local() -> Option<pb::WriteConcern> {
    Some(pb::WriteConcern {
        level: pb::write_concern::Level::Local.into(),
        ..Default::default()
    })
}

async fn connect(addr: &str) -> Client {
    loop {
        if let Ok(c) = Client::connect(addr).await {
            return c.with_concern(local());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writer `w` of region `r` (at `addr`): writes until `stop`.
async fn writer(r: usize, w: usize, addr: String, stop: Arc<AtomicBool>) -> Tally {
    let mut t = Tally::default();
    let mut c = connect(&addr).await;
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let own = format!("own-{r}-{w}");
        let delta = i64::try_from(n % 5 + 1).expect("small");
        let mut ok = true;
        for (k, d) in [(own.as_str(), delta), ("shared", 1)] {
            let e = t.counters.entry(k.to_owned()).or_default();
            match c.increment("stock", k.as_bytes(), d).await {
                Ok(_) => {
                    e.0 += d;
                    t.acked += 1;
                }
                Err(_) => {
                    e.1 += d;
                    t.failed += 1;
                    ok = false;
                }
            }
        }
        let k = format!("lww-{r}-{w}-{}", n % LWW_KEYS);
        match c
            .put("profiles", k.as_bytes(), n.to_string().as_bytes())
            .await
        {
            Ok(_) => {
                t.lww.insert(k, n);
                t.acked += 1;
            }
            Err(_) => {
                t.failed += 1;
                ok = false;
            }
        }
        if !ok {
            // The node is down: wait for it, with a fresh connection.
            tokio::time::sleep(Duration::from_millis(50)).await;
            c = connect(&addr).await;
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill9_under_load() {
    let mut spec = Spec::new(3);
    spec.collections = vec![
        CollectionDef {
            name: "stock",
            policy: "counter",
        },
        CollectionDef {
            name: "profiles",
            policy: "lww-hlc",
        },
    ];
    // Checkpoints often, so kills land before, during and after them.
    spec.checkpoint_every = Some(100);
    let mut cluster = Cluster::new(spec);
    cluster.start().await;
    cluster.wait_connected().await;

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3 * WRITERS)
        .map(|i| {
            let r = i % 3;
            tokio::spawn(writer(r, i / 3, cluster.nodes[r].addr(), Arc::clone(&stop)))
        })
        .collect();

    // Kill a node three times (a different one each time, the middle one
    // twice), each after a while of load, and restart it at once.
    for victim in [1, 2, 1] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        cluster.nodes[victim].kill9();
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.restart(victim).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let mut tallies = Vec::new();
    for w in writers {
        tallies.push(w.await.expect("writer"));
    }
    for (i, t) in tallies.iter().enumerate() {
        eprintln!(
            "{} writer {}: {} writes acknowledged, {} failed",
            NAMES[i % 3],
            i / 3,
            t.acked,
            t.failed
        );
        assert!(t.acked > 0, "{} acknowledged nothing", NAMES[i % 3]);
    }

    // Every region: the same state, holding every acknowledged write.
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    let mut counters: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for t in &tallies {
        for (k, (a, u)) in &t.counters {
            let e = counters.entry(k.clone()).or_default();
            e.0 += a;
            e.1 += u;
        }
        for k in t.lww.keys() {
            keys.push(("profiles".into(), k.clone().into_bytes()));
        }
    }
    for k in counters.keys() {
        keys.push(("stock".into(), k.clone().into_bytes()));
    }
    let _ = cluster.wait_converged(&keys).await;
    let mut clients = cluster.clients().await;
    for (i, c) in clients.iter_mut().enumerate() {
        for (k, (acked, unknown)) in &counters {
            let r = c.get("stock", k.as_bytes()).await.expect("get");
            let Read::Counter(n) = r else {
                panic!("stock/{k}: {r:?}");
            };
            assert!(
                (*acked..=acked + unknown).contains(&n),
                "{}: stock/{k} = {n}, acknowledged {acked} (+ up to {unknown} unknown)\n{}",
                NAMES[i],
                cluster.logs()
            );
        }
        for t in &tallies {
            for (k, last) in &t.lww {
                let r = c.get("profiles", k.as_bytes()).await.expect("get");
                let Read::Value { value, .. } = &r else {
                    panic!("{}: profiles/{k} lost: {r:?}", NAMES[i]);
                };
                let got: u64 = String::from_utf8_lossy(value).parse().expect("a number");
                assert!(
                    got >= *last,
                    "{}: profiles/{k} = {got}, but {last} was acknowledged",
                    NAMES[i]
                );
            }
        }
    }
}
