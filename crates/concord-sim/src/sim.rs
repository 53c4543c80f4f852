//! The simulator: N engines driven from one seed through a fault phase
//! (client writes, delays, reorders, duplicates, broken connections,
//! partitions, crashes, skewed clocks), then heal, quiescence, and the checks.

use std::time::Duration;

use concord_clock::Clock;
use concord_core::{
    CoreError, EngineConfig, EntityKey, Outgoing, PeerMessage, Policy, ReadValue, WriteRef,
};
use concord_crdt::RegionId;

use crate::invariants::{self, cursors_monotone::CursorWatch};
use crate::network::{Envelope, Network};
use crate::node::SimNode;
use crate::report::add_stats;
use crate::workload::{self, Workload};
use crate::{
    FaultRates, Invariant, NodeView, Oracle, Report, Request, SimConfig, SimRng, Submission,
    Violation,
};

/// Simulated time at the start of every run: 2026-11-23 12:00 UTC, in µs.
const START: i64 = 1_795_435_200_000_000;
const MS: i64 = 1_000;
const SEC: i64 = 1_000_000;
/// The engines' max skew; ordinary clock skews stay well inside it.
const MAX_SKEW: Duration = Duration::from_secs(5);
/// How long after heal the cluster may take to become quiescent.
const HEAL_DEADLINE: i64 = 20 * 60 * SEC;

/// One seeded simulation run.
pub struct Sim {
    config: SimConfig,
    now: i64,
    nodes: Vec<SimNode>,
    net: Network,
    oracle: Oracle,
    cursors: CursorWatch,
    workload: Workload,
    net_rng: SimRng,
    fault_rng: SimRng,
    sched_rng: SimRng,
    faults: Option<FaultRates>,
    partition_until: Option<i64>,
    /// Client operations so far (orders writes and the reads behind them).
    ops: u64,
    report: Report,
}

fn engine_error(region: RegionId, what: &str) -> impl FnOnce(CoreError) -> Violation + '_ {
    move |e| Violation::new(Invariant::EngineError, format!("{what}: {e}")).at(region)
}

fn region_of(i: usize) -> RegionId {
    RegionId::new(u16::try_from(i).unwrap_or(u16::MAX))
}

fn index_of(region: RegionId) -> usize {
    usize::from(region.get())
}

impl Sim {
    /// Builds the cluster of `config`: every knob not in the config (skews,
    /// the far-future node, batch sizes, flow-control window, checkpoint
    /// interval, sibling cap) is drawn from the seed.
    pub fn new(config: SimConfig) -> Result<Self, Violation> {
        let seed = config.seed;
        Self::build(config).map_err(|v| v.seeded(seed))
    }

    fn build(config: SimConfig) -> Result<Self, Violation> {
        let mut rng = SimRng::new(config.seed);
        let mut setup = rng.fork();
        let net_rng = rng.fork();
        let fault_rng = rng.fork();
        let sched_rng = rng.fork();
        let workload = Workload::new(rng.fork())
            .map_err(|e| Violation::new(Invariant::EngineError, e.to_string()))?;
        let n = usize::from(config.nodes.clamp(2, 16));
        let regions: Vec<RegionId> = (0..n).map(region_of).collect();
        let future = setup
            .chance(config.faults.future_node)
            .then(|| setup.index(n));
        let max_batch_writes = usize::try_from(setup.range(1, 4)).unwrap_or(1);
        let max_in_flight = u32::try_from(setup.range(1, 3)).unwrap_or(1);
        let max_held = if setup.chance(0.3) {
            usize::try_from(setup.range(2, 12)).unwrap_or(2)
        } else {
            100_000
        };
        let checkpoint_every = if setup.chance(0.5) {
            setup.range(5, 60)
        } else {
            50_000
        };
        let max_siblings = u32::try_from(setup.range(2, 4)).unwrap_or(2);
        let collections = workload::collections(max_siblings)
            .map_err(|e| Violation::new(Invariant::EngineError, e.to_string()))?;
        let mut nodes = Vec::with_capacity(n);
        for (i, region) in regions.iter().enumerate() {
            let skew = if future == Some(i) {
                setup.range_i64(20 * SEC, 40 * SEC)
            } else {
                setup.range_i64(-2 * SEC, 2 * SEC)
            };
            let peers = regions.iter().copied().filter(|p| p != region).collect();
            let mut engine_config = EngineConfig::new(*region, peers, collections.clone());
            engine_config.max_skew = MAX_SKEW;
            engine_config.max_batch_writes = max_batch_writes;
            engine_config.max_in_flight = max_in_flight;
            engine_config.max_held_per_origin = max_held;
            engine_config.checkpoint_every = checkpoint_every;
            let node =
                SimNode::new(engine_config, skew, START).map_err(engine_error(*region, "open"))?;
            nodes.push(node);
        }
        let report = Report {
            seed: config.seed,
            nodes: u16::try_from(n).unwrap_or(u16::MAX),
            steps: config.steps,
            future_node: future.is_some(),
            ..Report::default()
        };
        Ok(Self {
            faults: Some(config.faults.clone()),
            config,
            now: START,
            net: Network::new(&regions),
            nodes,
            oracle: Oracle::new(),
            cursors: CursorWatch::new(),
            workload,
            net_rng,
            fault_rng,
            sched_rng,
            partition_until: None,
            ops: 0,
            report,
        })
    }

    /// Runs the fault phase, heals, waits for quiescence and checks every
    /// invariant. A violation carries the seed.
    pub fn run(mut self) -> Result<Report, Violation> {
        let seed = self.config.seed;
        self.run_phases().map_err(|v| v.seeded(seed))?;
        Ok(self.report)
    }

    fn run_phases(&mut self) -> Result<(), Violation> {
        for _ in 0..self.config.steps {
            self.fault_step()?;
        }
        self.heal()?;
        self.check()
    }

    fn advance(&mut self, dt: i64) {
        self.now += dt;
        for node in &self.nodes {
            node.set_time(self.now);
        }
    }

    fn up(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_up())
            .collect()
    }

    /// Puts `out` on the wire; a message that breaks its connection
    /// disconnects both ends.
    fn send(&mut self, from: RegionId, out: Vec<Outgoing>) -> Result<(), Violation> {
        for o in out {
            let envelope = Envelope {
                from,
                to: o.to,
                message: o.message,
            };
            let broken = self
                .net
                .put(&mut self.net_rng, self.faults.as_ref(), self.now, envelope);
            if let Some((a, b)) = broken {
                let retry =
                    self.now + i64::try_from(self.net_rng.range(5_000, 300_000)).unwrap_or(0);
                self.break_link(a, b, retry)?;
            }
        }
        Ok(())
    }

    fn break_link(&mut self, a: RegionId, b: RegionId, retry_at: i64) -> Result<(), Violation> {
        self.net.break_link(a, b, retry_at);
        for (x, y) in [(a, b), (b, a)] {
            if let Some(engine) = self.nodes[index_of(x)].engine.as_mut() {
                engine
                    .disconnect(y)
                    .map_err(engine_error(x, "disconnect"))?;
            }
        }
        Ok(())
    }

    fn reconnect_due(&mut self) -> Result<(), Violation> {
        for (a, b) in self.net.due_to_reconnect(self.now) {
            if !self.nodes[index_of(a)].is_up() || !self.nodes[index_of(b)].is_up() {
                continue;
            }
            self.net.connected(a, b);
            let mut hellos = Vec::new();
            for (x, y) in [(a, b), (b, a)] {
                if let Some(engine) = self.nodes[index_of(x)].engine.as_mut() {
                    hellos.push((x, engine.connect(y).map_err(engine_error(x, "connect"))?));
                }
            }
            for (x, out) in hellos {
                self.send(x, out)?;
            }
        }
        Ok(())
    }

    /// A group commit (or a checkpoint) at node `i`: acknowledges what it
    /// made durable.
    fn commit(&mut self, i: usize, checkpoint: bool) -> Result<(), Violation> {
        let node = &mut self.nodes[i];
        let region = node.region;
        let Some(engine) = node.engine.as_mut() else {
            return Ok(());
        };
        let report = if checkpoint {
            self.report.checkpoints += 1;
            engine
                .checkpoint()
                .map_err(engine_error(region, "checkpoint"))?
        } else {
            self.report.commits += 1;
            engine.commit().map_err(engine_error(region, "commit"))?
        };
        let acked = self
            .oracle
            .committed(region, report.local_durable, &node.storage)?;
        self.report.acked += u64::try_from(acked).unwrap_or(0);
        self.send(region, report.outgoing)
    }

    fn poll_and_tick(&mut self, i: usize) -> Result<(), Violation> {
        let region = self.nodes[i].region;
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return Ok(());
        };
        let mut out = engine.poll().map_err(engine_error(region, "poll"))?;
        self.acknowledge_internal_commits(i)?;
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return Ok(());
        };
        out.extend(engine.tick().map_err(engine_error(region, "tick"))?);
        self.acknowledge_internal_commits(i)?;
        self.send(region, out)
    }

    /// The engine commits on its own too (a checkpoint in `tick`, a snapshot
    /// in `poll` or `receive`); a node acknowledges the writes those commits
    /// made durable just as it does after its explicit commits.
    fn acknowledge_internal_commits(&mut self, i: usize) -> Result<(), Violation> {
        let node = &self.nodes[i];
        let Some(engine) = node.engine.as_ref() else {
            return Ok(());
        };
        let durable = engine
            .durable_cursors()
            .into_iter()
            .find(|(r, _)| *r == node.region)
            .map_or(0, |(_, s)| s);
        let acked = self.oracle.committed(node.region, durable, &node.storage)?;
        self.report.acked += u64::try_from(acked).unwrap_or(0);
        Ok(())
    }

    fn deliver(&mut self) -> Result<(), Violation> {
        while let Some(envelope) = self.net.next_due(self.now) {
            let to = envelope.to;
            let Some(engine) = self.nodes[index_of(to)].engine.as_mut() else {
                continue;
            };
            let out = engine
                .receive(envelope.from, envelope.message)
                .map_err(engine_error(to, "receive"))?;
            self.acknowledge_internal_commits(index_of(to))?;
            self.send(to, out)?;
        }
        Ok(())
    }

    fn observe_cursors(&mut self) -> Result<(), Violation> {
        for node in &self.nodes {
            if let Some(engine) = &node.engine {
                self.cursors
                    .observe(node.region, &engine.durable_cursors())?;
            }
        }
        Ok(())
    }

    fn client_write(&mut self) -> Result<(), Violation> {
        let up = self.up();
        let Some(&i) = self.workload.rng().pick(&up) else {
            return Ok(());
        };
        let region = self.nodes[i].region;
        let node_now = self.nodes[i].clock.now();
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return Ok(());
        };
        self.ops += 1;
        let planned = self
            .workload
            .next(engine, self.ops, &self.oracle, self.config.dirty_contexts)
            .map_err(engine_error(region, "read"))?;
        let entity = EntityKey::new(planned.write.collection.clone(), planned.write.key.clone());
        let context = planned.write.context.clone();
        let seen = if planned.policy == Policy::LwwHlc {
            match engine
                .read(&entity.collection, &entity.key)
                .map_err(engine_error(region, "read"))?
            {
                ReadValue::Value(v) => {
                    let skew_ms = i64::try_from(engine.config().max_skew.as_millis()).unwrap_or(0);
                    let bound = node_now.as_millis() + skew_ms;
                    (v.hlc.physical_millis() <= bound).then_some((v.write, v.hlc))
                }
                _ => None,
            }
        } else {
            None
        };
        let accepted = engine
            .write(planned.write)
            .map_err(engine_error(region, "write"))?;
        self.accept(
            region,
            Submission {
                write: accepted.write,
                entity,
                policy: planned.policy,
                request: planned.request,
                client_context: context,
                op: self.ops,
                context_op: planned.context_op,
                seen,
            },
        )
    }

    fn accept(&mut self, region: RegionId, submission: Submission) -> Result<(), Violation> {
        if submission.write.origin != region {
            return Err(Violation::new(
                Invariant::EngineError,
                format!("a write accepted here was tagged {}", submission.write),
            )
            .at(region));
        }
        self.report.writes += 1;
        self.oracle.accepted(submission)
    }

    /// A client resolves a random open item (not of a counter) at a random node.
    fn client_resolve(&mut self) -> Result<(), Violation> {
        let up = self.up();
        let Some(&i) = self.workload.rng().pick(&up) else {
            return Ok(());
        };
        let region = self.nodes[i].region;
        let Some(engine) = self.nodes[i].engine.as_ref() else {
            return Ok(());
        };
        let open: Vec<(u64, EntityKey, Vec<WriteRef>, Policy)> = engine
            .conflicts()
            .filter(|c| c.status.is_open())
            .filter_map(|c| {
                let policy = engine.collection(&c.entity.collection)?.policy;
                (policy != Policy::Counter).then(|| {
                    (
                        c.id,
                        c.entity.clone(),
                        c.versions.iter().map(|v| v.write).collect(),
                        policy,
                    )
                })
            })
            .collect();
        let Some((id, entity, resolves, policy)) = self.workload.rng().pick(&open).cloned() else {
            return Ok(());
        };
        let value = if self.workload.rng().chance(0.8) {
            Some(self.workload.value(&format!("{region}-resolve")))
        } else {
            None
        };
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return Ok(());
        };
        let accepted = engine
            .resolve(id, value.clone())
            .map_err(engine_error(region, "resolve"))?;
        self.report.resolves += 1;
        self.ops += 1;
        self.accept(
            region,
            Submission {
                write: accepted.write,
                entity,
                policy,
                request: Request::Resolve { value, resolves },
                client_context: None,
                op: self.ops,
                context_op: self.ops,
                seen: None,
            },
        )
    }

    fn crash(&mut self) -> Result<(), Violation> {
        let up = self.up();
        if up.len() <= 1 {
            return Ok(());
        }
        let Some(&i) = self.fault_rng.pick(&up) else {
            return Ok(());
        };
        let until = self.now + i64::try_from(self.fault_rng.range(20_000, 3_000_000)).unwrap_or(0);
        if let Some(engine) = &self.nodes[i].engine {
            add_stats(&mut self.report.stats, engine.stats());
        }
        self.nodes[i].crash(until);
        self.report.crashes += 1;
        let region = self.nodes[i].region;
        for j in 0..self.nodes.len() {
            if j != i {
                self.break_link(region, region_of(j), until + MS)?;
            }
        }
        Ok(())
    }

    /// Restarts the nodes that are down and due (all of them with `all`).
    fn restart_due(&mut self, all: bool) -> Result<(), Violation> {
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            if node.is_up() || (!all && node.down_until > self.now) {
                continue;
            }
            let region = node.region;
            let engine = node.restart().map_err(engine_error(region, "reopen"))?;
            let cursor = engine.cursor(region);
            let durable = engine.durable_cursors();
            let lost = self.oracle.restarted(region, cursor)?;
            self.report.lost_unacked += u64::try_from(lost).unwrap_or(0);
            self.cursors.observe(region, &durable)?;
        }
        Ok(())
    }

    fn partition(&mut self) -> Result<(), Violation> {
        let n = self.nodes.len();
        let mask = self.fault_rng.range(1, (1u64 << n) - 2);
        let inside = |i: usize| mask & (1 << i) != 0;
        let until = self.now + i64::try_from(self.fault_rng.range(200_000, 5_000_000)).unwrap_or(0);
        for a in 0..n {
            for b in 0..n {
                if inside(a) && !inside(b) {
                    self.net.cut(region_of(a), region_of(b));
                    self.break_link(region_of(a), region_of(b), until)?;
                }
            }
        }
        self.partition_until = Some(until);
        self.report.partitions += 1;
        Ok(())
    }

    /// One node's clock is stepped (as NTP would), forwards or backwards,
    /// staying within its skew band.
    fn drift_clock(&mut self) {
        let i = self.sched_rng.index(self.nodes.len());
        let step = self.sched_rng.range_i64(-200 * MS, 200 * MS);
        let node = &mut self.nodes[i];
        let (lo, hi) = if node.skew_micros > 10 * SEC {
            (20 * SEC, 40 * SEC)
        } else {
            (-2 * SEC, 2 * SEC)
        };
        node.skew_micros = (node.skew_micros + step).clamp(lo, hi);
        node.set_time(self.now);
    }

    fn fault_step(&mut self) -> Result<(), Violation> {
        let dt = i64::try_from(self.sched_rng.range(1_000, 20_000)).unwrap_or(MS);
        self.advance(dt);
        self.restart_due(false)?;
        if self.partition_until.is_some_and(|t| t <= self.now) {
            self.partition_until = None;
            self.net.heal(self.now + MS);
        }
        if let Some(f) = self.faults.clone() {
            if self.partition_until.is_none() && self.fault_rng.chance(f.partition) {
                self.partition()?;
            }
            if self.fault_rng.chance(f.crash) {
                self.crash()?;
            }
        }
        if self.sched_rng.chance(0.02) {
            self.drift_clock();
        }
        self.reconnect_due()?;
        let writes = self.workload.rng().range(0, 3);
        for _ in 0..writes {
            self.client_write()?;
        }
        if self.workload.rng().chance(0.05) {
            self.client_resolve()?;
        }
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_up() {
                continue;
            }
            if self.sched_rng.chance(0.01) {
                self.commit(i, true)?;
            } else if self.sched_rng.chance(0.3) {
                self.commit(i, false)?;
            }
            self.poll_and_tick(i)?;
        }
        self.deliver()?;
        self.observe_cursors()
    }

    /// Stops faults and writes, heals everything, and runs until every node
    /// has every write (time keeps moving so held future writes release).
    fn heal(&mut self) -> Result<(), Violation> {
        self.faults = None;
        self.partition_until = None;
        self.net.heal(self.now);
        self.restart_due(true)?;
        self.net.retry_all(self.now);
        let start = self.now;
        loop {
            self.reconnect_due()?;
            for i in 0..self.nodes.len() {
                self.commit(i, false)?;
                self.poll_and_tick(i)?;
            }
            self.deliver()?;
            self.observe_cursors()?;
            if self.quiescent() {
                break;
            }
            if self.now - start > HEAL_DEADLINE {
                return Err(Violation::new(
                    Invariant::Quiescence,
                    format!(
                        "no quiescence {} s after heal: {}",
                        HEAL_DEADLINE / SEC,
                        self.describe_cursors()
                    ),
                ));
            }
            // Step finely while replication traffic flows, coarsely while
            // only clocks have to move (held future writes).
            let busy = self
                .net
                .in_flight()
                .any(|e| !matches!(e.message, PeerMessage::Heartbeat { .. }));
            self.advance(if busy { 5 * MS } else { 200 * MS });
        }
        for i in 0..self.nodes.len() {
            self.commit(i, false)?;
        }
        self.report.heal_micros = self.now - start;
        self.report.sim_micros = self.now - START;
        Ok(())
    }

    /// Every node up, has applied and made durable every write of every
    /// origin, and no batch, hello or rewind is in flight.
    fn quiescent(&self) -> bool {
        let busy = self.net.in_flight().any(|e| {
            matches!(
                e.message,
                PeerMessage::Batch(_) | PeerMessage::Hello { .. } | PeerMessage::Rewind { .. }
            )
        });
        if busy {
            return false;
        }
        let engines: Vec<_> = self
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref())
            .collect();
        if engines.len() != self.nodes.len() {
            return false;
        }
        engines.iter().all(|origin| {
            let head = origin.cursor(origin.region());
            engines.iter().all(|e| {
                e.cursor(origin.region()) == head
                    && e.durable_cursors()
                        .iter()
                        .find(|(o, _)| *o == origin.region())
                        .map_or(0, |(_, s)| *s)
                        == head
            })
        })
    }

    fn describe_cursors(&self) -> String {
        self.nodes
            .iter()
            .map(|n| match &n.engine {
                Some(e) => format!(
                    "{} applied {:?} durable {:?} held-future {} open {}",
                    n.region,
                    e.cursors(),
                    e.durable_cursors(),
                    e.stats().future_held,
                    e.queue_depth()
                ),
                None => format!("{} down", n.region),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The after-heal checks.
    fn check(&mut self) -> Result<(), Violation> {
        let unacked = self.oracle.unacked();
        if let Some(w) = unacked.first() {
            return Err(Violation::new(
                Invariant::Quiescence,
                format!(
                    "{} surviving writes never acknowledged after heal, first {w}",
                    unacked.len()
                ),
            )
            .at(w.origin));
        }
        let views: Vec<NodeView> = self
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref().map(NodeView::of))
            .collect();
        for node in &self.nodes {
            if let Some(engine) = &node.engine {
                add_stats(&mut self.report.stats, engine.stats());
            }
        }
        self.report.messages = self.net.stats.sent;
        self.report.delivered = self.net.stats.delivered;
        self.report.duplicated = self.net.stats.duplicated;
        self.report.connection_breaks = self.net.stats.breaks;
        self.report.lost_unacked = self.oracle.lost();
        self.report.open_conflicts = views.first().map_or(0, |v| {
            u64::try_from(v.open_items.values().map(Vec::len).sum::<usize>()).unwrap_or(0)
        });
        invariants::check_after_heal(&views, &self.oracle)
    }
}

/// Runs the default configuration for `seed`.
pub fn run_seed(seed: u64) -> Result<Report, Violation> {
    Sim::new(SimConfig::new(seed))?.run()
}
