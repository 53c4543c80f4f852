//! `concord bench`: starts nodes on loopback, drives writes of 100-byte
//! values to random keys into every node through the client service (in
//! `WriteMany` calls of many writes, like transactions of many rows), and
//! measures what comes out the other side.
//!
//! - `accepted_writes_per_s`: writes acknowledged durable at their origin;
//! - `replicated_writes_per_s`: writes durable in every other region, per
//!   second, end to end (a write counts once all the others hold it);
//! - `lag_*_ms`: from a write's acknowledgement at its origin to its
//!   durability in another region, over sampled writes;
//! - `conflicts_per_s`: LWW losers and queue items, all regions together.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use concord_crdt::RegionId;

use crate::client::Client;
use crate::node::Node;
use crate::{NodeError, pb};

/// The benchmark's options.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Regions (nodes) on loopback.
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    /// Seconds to drive writes.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Target rate, writes per second over all nodes (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Writes per `WriteMany` call.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Calls in flight per node.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Distinct keys (random keys collide, and collisions are conflicts).
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// How many of the nodes take client writes (the others only receive
    /// replicated ones; 1 is a publisher-subscriber setup). 0: all.
    #[arg(long, default_value_t = 0)]
    pub write_to: usize,
    /// Applied writes between checkpoints (the node's `tuning.checkpoint_every`).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
}

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            nodes: 2,
            duration: 10,
            rate: 0,
            batch: 1000,
            concurrency: 4,
            keys: 1_000_000,
            value_bytes: 100,
            write_to: 0,
            checkpoint_every: None,
            json: false,
        }
    }
}

/// What the benchmark measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Nodes.
    pub nodes: usize,
    /// Nodes that took client writes.
    pub writing_nodes: usize,
    /// Seconds of writing.
    pub seconds: f64,
    /// Writes acknowledged.
    pub accepted_writes: u64,
    /// Accepted writes per second.
    pub accepted_writes_per_s: f64,
    /// Writes durable in every other region, per second.
    pub replicated_writes_per_s: f64,
    /// Replication lag percentiles and maximum, in milliseconds.
    pub lag_p50_ms: f64,
    /// 99th percentile.
    pub lag_p99_ms: f64,
    /// Maximum.
    pub lag_max_ms: f64,
    /// Lag samples taken.
    pub lag_samples: usize,
    /// LWW losers and queue items per second.
    pub conflicts_per_s: f64,
}

impl BenchReport {
    /// One JSON line.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "nodes": self.nodes,
            "writing_nodes": self.writing_nodes,
            "seconds": round(self.seconds),
            "accepted_writes": self.accepted_writes,
            "accepted_writes_per_s": round(self.accepted_writes_per_s),
            "replicated_writes_per_s": round(self.replicated_writes_per_s),
            "lag_p50_ms": round(self.lag_p50_ms),
            "lag_p99_ms": round(self.lag_p99_ms),
            "lag_max_ms": round(self.lag_max_ms),
            "lag_samples": self.lag_samples,
            "conflicts_per_s": round(self.conflicts_per_s),
        })
        .to_string()
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nodes                   {} ({} taking writes)",
            self.nodes, self.writing_nodes
        )?;
        writeln!(f, "seconds                 {:.1}", self.seconds)?;
        writeln!(
            f,
            "accepted writes/s       {:.0}",
            self.accepted_writes_per_s
        )?;
        writeln!(
            f,
            "replicated writes/s     {:.0}",
            self.replicated_writes_per_s
        )?;
        writeln!(
            f,
            "lag p50/p99/max ms      {:.1} / {:.1} / {:.1} ({} samples)",
            self.lag_p50_ms, self.lag_p99_ms, self.lag_max_ms, self.lag_samples
        )?;
        write!(f, "conflicts/s             {:.1}", self.conflicts_per_s)
    }
}

/// A small fast PRNG (xorshift64*), so keys are random without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The key of entity `n`: `user-` and `n` in at least eight decimal digits
/// (as `format!("user-{n:08}")`, without the formatting machinery, which
/// was a percent of the run's CPU: the writers share the cores with the
/// nodes they drive).
fn bench_key(n: u64) -> Vec<u8> {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut rest = n;
    while rest > 0 || at > digits.len() - 8 {
        at -= 1;
        // A decimal digit: `rest % 10` is below 10.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let mut key = Vec::with_capacity(5 + digits.len() - at);
    key.extend_from_slice(b"user-");
    key.extend_from_slice(&digits[at..]);
    key
}

/// A write whose replication is being timed.
struct Sample {
    origin: RegionId,
    seq: u64,
    acked: Instant,
    /// Nodes that have not yet made it durable.
    waiting: Vec<usize>,
}

/// Runs the benchmark.
pub async fn run(args: &BenchArgs) -> Result<BenchReport, NodeError> {
    if args.nodes < 2 || args.nodes > 16 {
        return Err(NodeError::Config {
            field: "--nodes".into(),
            reason: "between 2 and 16".into(),
        });
    }
    let dir = tempfile::tempdir().map_err(|source| NodeError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let names: Vec<String> = (1..=args.nodes).map(|i| format!("region-{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let checkpoint_every = args.checkpoint_every;
    let nodes = crate::demo::start_local_with(&name_refs, dir.path(), |c| {
        if let Some(n) = checkpoint_every {
            c.tuning.checkpoint_every = n;
        }
    })
    .await?;
    let writing = if args.write_to == 0 {
        args.nodes
    } else {
        args.write_to.min(args.nodes)
    };
    let mut clients = Vec::new();
    for n in &nodes {
        clients.push(Client::connect(&format!("http://{}", n.addr())).await?);
    }
    crate::demo::wait_connected(&mut clients, Duration::from_secs(10)).await?;
    let regions: Vec<RegionId> = nodes.iter().map(|n| n.config().region_id()).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let (samples_tx, mut samples_rx) =
        tokio::sync::mpsc::unbounded_channel::<(RegionId, u64, Instant)>();
    let per_call_interval = if args.rate == 0 {
        None
    } else {
        let calls_per_s = args.rate as f64 / args.batch as f64;
        let writers = (writing * args.concurrency) as f64;
        Some(Duration::from_secs_f64(writers / calls_per_s))
    };
    let start = Instant::now();
    let mut writers = Vec::new();
    for (i, c) in clients.iter().enumerate().take(writing) {
        for w in 0..args.concurrency {
            let mut client = c.clone();
            let stop = stop.clone();
            let accepted = accepted.clone();
            let samples = samples_tx.clone();
            let args = args.clone();
            let origin = regions[i];
            writers.push(tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (((i as u64) << 32) | (w as u64 + 1)));
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(every) = per_call_interval {
                        next += every;
                        let now = Instant::now();
                        if next > now {
                            tokio::time::sleep(next - now).await;
                        }
                    }
                    let writes = (0..args.batch)
                        .map(|_| {
                            let key = rng.next() % args.keys;
                            let mut value = vec![b'v'; args.value_bytes];
                            let tag = rng.next().to_le_bytes();
                            let n = value.len().min(8);
                            value[..n].copy_from_slice(&tag[..n]);
                            pb::WriteItem {
                                collection: "profiles".into(),
                                key: bench_key(key),
                                op: Some(pb::write_item::Op::Put(value)),
                                context: None,
                            }
                        })
                        .collect();
                    let r = client
                        .raw()
                        .write_many(pb::WriteManyRequest {
                            writes,
                            concern: None,
                        })
                        .await?
                        .into_inner();
                    accepted.fetch_add(u64::from(r.count), Ordering::Relaxed);
                    if let Some(first) = r.first {
                        let _ = samples.send((
                            origin,
                            first.seq + u64::from(r.count) - 1,
                            Instant::now(),
                        ));
                    }
                }
                Ok::<(), NodeError>(())
            }));
        }
    }
    drop(samples_tx);

    // Sample lag: poll every node's durable cursors.
    let mut pending: VecDeque<Sample> = VecDeque::new();
    let mut lags: Vec<f64> = Vec::new();
    let deadline = start + Duration::from_secs(args.duration);
    let mut replicated_at_end: Option<u64> = None;
    let mut accepted_at_end = 0;
    let conflicts_before = conflicts(&nodes).await?;
    loop {
        while let Ok((origin, seq, acked)) = samples_rx.try_recv() {
            let waiting = (0..nodes.len()).filter(|j| regions[*j] != origin).collect();
            pending.push_back(Sample {
                origin,
                seq,
                acked,
                waiting,
            });
        }
        let mut cursors = Vec::with_capacity(nodes.len());
        for n in &nodes {
            cursors.push(n.driver().inspect(|e| e.durable_cursors()).await?);
        }
        let now = Instant::now();
        for s in &mut pending {
            s.waiting.retain(|j| {
                let durable = cursors[*j]
                    .iter()
                    .find(|(o, _)| *o == s.origin)
                    .map_or(0, |(_, q)| *q);
                if durable >= s.seq {
                    lags.push(now.duration_since(s.acked).as_secs_f64() * 1000.0);
                    false
                } else {
                    true
                }
            });
        }
        pending.retain(|s| !s.waiting.is_empty());
        if replicated_at_end.is_none() && now >= deadline {
            stop.store(true, Ordering::Relaxed);
            // A write is replicated once every other node holds it durably.
            let mut total = 0;
            for (i, origin) in regions.iter().enumerate().take(writing) {
                let least = cursors
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, c)| c.iter().find(|(o, _)| o == origin).map_or(0, |(_, q)| *q))
                    .min()
                    .unwrap_or(0);
                total += least;
            }
            replicated_at_end = Some(total);
            accepted_at_end = accepted.load(Ordering::Relaxed);
        }
        if replicated_at_end.is_some()
            && (pending.is_empty() || now > deadline + Duration::from_secs(10))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = start
        .elapsed()
        .min(Duration::from_secs(args.duration))
        .as_secs_f64();
    for w in writers {
        match w.await {
            Ok(r) => r?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    let accepted = accepted_at_end;
    let conflicts_after = conflicts(&nodes).await?;
    for n in nodes {
        n.shutdown().await?;
    }
    lags.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if lags.is_empty() {
            return 0.0;
        }
        let i = ((lags.len() as f64 - 1.0) * p).round() as usize;
        lags[i.min(lags.len() - 1)]
    };
    Ok(BenchReport {
        nodes: args.nodes,
        writing_nodes: writing,
        seconds,
        accepted_writes: accepted,
        accepted_writes_per_s: accepted as f64 / seconds,
        replicated_writes_per_s: replicated_at_end.unwrap_or(0) as f64 / seconds,
        lag_p50_ms: pct(0.5),
        lag_p99_ms: pct(0.99),
        lag_max_ms: lags.last().copied().unwrap_or(0.0),
        lag_samples: lags.len(),
        conflicts_per_s: conflicts_after.saturating_sub(conflicts_before) as f64 / seconds,
    })
}

async fn conflicts(nodes: &[Node]) -> Result<u64, NodeError> {
    let mut n = 0;
    for node in nodes {
        n += node
            .driver()
            .inspect(|e| e.stats().lww_losers + e.stats().conflicts_opened)
            .await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::bench_key;

    #[test]
    fn keys_are_user_and_eight_or_more_digits() {
        for n in [0, 7, 42, 99_999_999, 100_000_000, 123_456_789_012, u64::MAX] {
            assert_eq!(bench_key(n), format!("user-{n:08}").into_bytes(), "{n}");
        }
    }
}
