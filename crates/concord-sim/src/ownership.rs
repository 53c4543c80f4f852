//! Ownership scenarios: owned collections under a seeded faulty network
//! (delays, reorders, duplicates, broken connections), with a planned
//! handoff under load, a forced takeover of a partitioned owner with writes
//! on both sides, and a takeover whose data at risk is checked against the
//! writes really lost.
//!
//! Every client write goes to a random node; a node that does not own the
//! key forwards it to the owner when it can reach it (as the node does for a
//! collection with `forward`), and the client gives up otherwise. After
//! heal the checks are:
//!
//! - every acknowledged write is in state (current, in the loser log, or
//!   counted in a counter's totals) or in the conflict queue, at every node;
//! - every write was accepted by the owner of its key under the epoch it
//!   carries (no key accepted by two regions once the epoch is known);
//! - after a takeover, exactly the fenced region's writes past the fence are
//!   queued as fenced, and once the application resolves them at the owner
//!   every replica holds the same state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use concord_clock::WallTime;
use concord_core::{
    ClientOp, ClientWrite, Collection, CollectionConfig, ConflictReason, CoreError, Engine,
    EngineConfig, EntityKey, FailoverEvent, HandoffStatus, MemoryStorage, Outgoing,
    OwnershipConfig, PeerMessage, Policy, Storage, WriteRef,
};
use concord_crdt::RegionId;
use concord_ownership::{OwnershipMap, Rule};

use crate::network::{Envelope, Network};
use crate::node::SimNode;
use crate::{FaultRates, Invariant, NodeView, SimRng, Violation};

const START: i64 = 1_795_435_200_000_000;
const MS: i64 = 1_000;
const SEC: i64 = 1_000_000;
const NODES: usize = 3;
const KEYS: u64 = 6;
/// The owned last-write-wins collection.
const LWW: &str = "owned";
/// The owned counter collection.
const TALLY: &str = "tally";

/// What an ownership scenario did, for the tests to check it did something.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnershipReport {
    /// The seed.
    pub seed: u64,
    /// Writes accepted.
    pub accepted: u64,
    /// Writes forwarded from a non-owner to the owner.
    pub forwarded: u64,
    /// Writes refused: the owner was unreachable, or its key was moving.
    pub refused: u64,
    /// Writes refused as fenced and queued, at the new owner.
    pub fenced: u64,
    /// Fenced items the application resolved at the owner.
    pub resolved: u64,
    /// The takeover's event, if the scenario made one.
    pub failover: Option<FailoverEvent>,
    /// Writes of the old owner really lost at the takeover: made and
    /// durable there, not applied at the new owner.
    pub really_lost: u64,
}

#[derive(Clone, Debug)]
struct Made {
    write: WriteRef,
    entity: EntityKey,
    epoch: u64,
    acked: bool,
    /// For counters: the origin's running totals (incremented, decremented).
    totals: Option<(u64, u64)>,
    wall: Option<WallTime>,
}

/// Whether LWW write `m` is at `view`: current, a loser, queued, or
/// superseded by a later write of its own origin that is kept there (the
/// collections here are `lww-hlc`, whose stamps grow with the seq at an
/// origin, so a later write of the origin beats an earlier one).
fn lww_kept(view: &NodeView, m: &Made, made: &[Made], depth: usize) -> bool {
    let key = (m.entity.clone(), m.write);
    if view.losers.contains(&key)
        || view.queued.contains(&key)
        || view.entities.get(&m.entity).is_some_and(|e| {
            e.versions(Policy::LwwHlc).iter().any(|v| {
                // The current version beat every other: `m` itself, or a
                // later write of its origin (a resolution, say).
                v.write == m.write || concord_core::superseded(m.write, v.write)
            })
        })
    {
        return true;
    }
    depth < made.len()
        && made.iter().any(|x| {
            x.entity == m.entity
                && x.totals.is_none()
                && concord_core::superseded(m.write, x.write)
                && lww_kept(view, x, made, depth + 1)
        })
}

struct Driver {
    now: i64,
    nodes: Vec<SimNode>,
    net: Network,
    rng: SimRng,
    net_rng: SimRng,
    faults: Option<FaultRates>,
    rule: Rule,
    made: Vec<Made>,
    /// Per (origin, key): the origin's running counter totals.
    totals: BTreeMap<(RegionId, Vec<u8>), (u64, u64)>,
    /// Every map seen, by epoch.
    maps: BTreeMap<u64, OwnershipMap>,
    /// Nodes whose clients are stopped.
    quiet: BTreeSet<RegionId>,
    /// Batches of these origins are lost on their way to these nodes
    /// (a stalled stream: heartbeats still get through).
    stalled: BTreeSet<(RegionId, RegionId)>,
    /// Nodes cut off from every other.
    isolated: BTreeSet<RegionId>,
    report: OwnershipReport,
}

fn region_of(i: usize) -> RegionId {
    RegionId::new(u16::try_from(i).unwrap_or(u16::MAX))
}

fn index_of(region: RegionId) -> usize {
    usize::from(region.get())
}

fn engine_error(region: RegionId, what: &str) -> impl FnOnce(CoreError) -> Violation + '_ {
    move |e| Violation::new(Invariant::EngineError, format!("{what}: {e}")).at(region)
}

fn collection(name: &str) -> Result<Collection, Violation> {
    Collection::new(name).map_err(|e| Violation::new(Invariant::EngineError, e.to_string()))
}

impl Driver {
    fn new(seed: u64) -> Result<Self, Violation> {
        let mut rng = SimRng::new(seed);
        let mut setup = rng.fork();
        let net_rng = rng.fork();
        let regions: Vec<RegionId> = (0..NODES).map(region_of).collect();
        let rule = Rule::modulo(regions.clone())
            .map_err(|e| Violation::new(Invariant::EngineError, e.to_string()))?;
        let owned = OwnershipConfig::new(rule.clone()).forwarding();
        let collections = vec![
            (
                collection(LWW)?,
                CollectionConfig::new(Policy::LwwHlc).owned(owned.clone()),
            ),
            (
                collection(TALLY)?,
                CollectionConfig::new(Policy::Counter).owned(owned),
            ),
        ];
        let mut nodes = Vec::with_capacity(NODES);
        for region in &regions {
            let peers = regions.iter().copied().filter(|p| p != region).collect();
            let mut config = EngineConfig::new(*region, peers, collections.clone());
            config.max_batch_writes = usize::try_from(setup.range(1, 4)).unwrap_or(1);
            config.max_in_flight = u32::try_from(setup.range(1, 3)).unwrap_or(1);
            config.heartbeat_every = Duration::from_millis(100);
            let skew = setup.range_i64(-500 * MS, 500 * MS);
            nodes.push(SimNode::new(config, skew, START).map_err(engine_error(*region, "open"))?);
        }
        let mut maps = BTreeMap::new();
        maps.insert(0, OwnershipMap::new());
        Ok(Self {
            now: START,
            nodes,
            net: Network::new(&regions),
            rng,
            net_rng,
            faults: Some(FaultRates {
                duplicate: 0.03,
                drop: 0.005,
                delay_spike: 0.08,
                partition: 0.0,
                crash: 0.0,
                future_node: 0.0,
            }),
            rule,
            made: Vec::new(),
            totals: BTreeMap::new(),
            maps,
            quiet: BTreeSet::new(),
            stalled: BTreeSet::new(),
            isolated: BTreeSet::new(),
            report: OwnershipReport {
                seed,
                ..OwnershipReport::default()
            },
        })
    }

    fn engine(&mut self, region: RegionId) -> Result<&mut Engine<MemoryStorage>, Violation> {
        self.nodes[index_of(region)]
            .engine
            .as_mut()
            .ok_or_else(|| Violation::new(Invariant::EngineError, "node down").at(region))
    }

    fn advance(&mut self, dt: i64) {
        self.now += dt;
        for node in &self.nodes {
            node.set_time(self.now);
        }
    }

    fn cut_between(&self, a: RegionId, b: RegionId) -> bool {
        a != b && (self.isolated.contains(&a) || self.isolated.contains(&b))
    }

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
                    self.now + i64::try_from(self.net_rng.range(5_000, 200_000)).unwrap_or(0);
                self.break_link(a, b, retry)?;
            }
        }
        Ok(())
    }

    fn break_link(&mut self, a: RegionId, b: RegionId, retry_at: i64) -> Result<(), Violation> {
        self.net.break_link(a, b, retry_at);
        for (x, y) in [(a, b), (b, a)] {
            self.engine(x)?
                .disconnect(y)
                .map_err(engine_error(x, "disconnect"))?;
        }
        Ok(())
    }

    fn reconnect_due(&mut self) -> Result<(), Violation> {
        for (a, b) in self.net.due_to_reconnect(self.now) {
            self.net.connected(a, b);
            let mut hellos = Vec::new();
            for (x, y) in [(a, b), (b, a)] {
                hellos.push((
                    x,
                    self.engine(x)?
                        .connect(y)
                        .map_err(engine_error(x, "connect"))?,
                ));
            }
            for (x, out) in hellos {
                self.send(x, out)?;
            }
        }
        Ok(())
    }

    /// Cuts `region` off from every other node until [`Driver::heal`].
    fn isolate(&mut self, region: RegionId) -> Result<(), Violation> {
        self.isolated.insert(region);
        for j in 0..NODES {
            let other = region_of(j);
            if other != region {
                self.net.cut(region, other);
                self.break_link(region, other, self.now)?;
            }
        }
        Ok(())
    }

    fn deliver(&mut self) -> Result<(), Violation> {
        while let Some(envelope) = self.net.next_due(self.now) {
            if let PeerMessage::Batch(b) = &envelope.message
                && self.stalled.contains(&(b.origin, envelope.to))
            {
                continue;
            }
            let (from, to) = (envelope.from, envelope.to);
            let out = self
                .engine(to)?
                .receive(from, envelope.message)
                .map_err(engine_error(to, "receive"))?;
            self.send(to, out)?;
        }
        Ok(())
    }

    /// Marks the writes each node has made durable as acknowledged, reading
    /// each back from its origin's log (for its wall time).
    fn acknowledge(&mut self) -> Result<(), Violation> {
        for i in 0..NODES {
            let region = region_of(i);
            let Some(engine) = self.nodes[i].engine.as_ref() else {
                continue;
            };
            let durable = engine
                .durable_cursors()
                .into_iter()
                .find(|(o, _)| *o == region)
                .map_or(0, |(_, s)| s);
            for m in self
                .made
                .iter_mut()
                .filter(|m| !m.acked && m.write.origin == region && m.write.seq <= durable)
            {
                m.acked = true;
                let logged = engine
                    .storage()
                    .read_log(region, m.write.seq, 1)
                    .map_err(engine_error(region, "read log"))?;
                m.wall = logged.first().map(|w| w.wall);
            }
        }
        Ok(())
    }

    fn observe_maps(&mut self) -> Result<(), Violation> {
        for node in &self.nodes {
            let Some(engine) = node.engine.as_ref() else {
                continue;
            };
            let map = engine.ownership();
            match self.maps.get(&map.epoch()) {
                Some(known) if known != map => {
                    return Err(Violation::new(
                        Invariant::SingleOwner,
                        format!("two different ownership maps at epoch {}", map.epoch()),
                    )
                    .at(node.region));
                }
                Some(_) => {}
                None => {
                    self.maps.insert(map.epoch(), map.clone());
                }
            }
        }
        Ok(())
    }

    /// A client writes at a random node; a non-owner forwards to the owner
    /// when it can reach it.
    fn client_write(&mut self) -> Result<(), Violation> {
        let candidates: Vec<RegionId> = (0..NODES)
            .map(region_of)
            .filter(|r| !self.quiet.contains(r))
            .collect();
        let Some(&at) = self.rng.pick(&candidates) else {
            return Ok(());
        };
        let counter = self.rng.chance(0.4);
        let name = if counter { TALLY } else { LWW };
        let key = self.rng.below(KEYS).to_string().into_bytes();
        let delta = self.rng.range_i64(-20, 20);
        let request = ClientWrite {
            collection: collection(name)?,
            key: key.clone(),
            op: if counter {
                ClientOp::Add(delta)
            } else {
                ClientOp::Put(format!("{at}-{}", self.made.len()).into_bytes())
            },
            context: None,
        };
        let mut target = at;
        let accepted = match self.engine(at)?.write(request.clone()) {
            Ok(a) => a,
            Err(CoreError::NotOwner {
                owner,
                forward: true,
                ..
            }) if !self.cut_between(at, owner) && !self.quiet.contains(&owner) => {
                self.report.forwarded += 1;
                target = owner;
                match self.engine(owner)?.write(request) {
                    Ok(a) => a,
                    Err(CoreError::NotOwner { .. } | CoreError::HandoffInProgress { .. }) => {
                        self.report.refused += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(engine_error(owner, "forwarded write")(e)),
                }
            }
            Err(CoreError::NotOwner { .. } | CoreError::HandoffInProgress { .. }) => {
                self.report.refused += 1;
                return Ok(());
            }
            Err(e) => return Err(engine_error(at, "write")(e)),
        };
        if accepted.write.origin != target {
            return Err(Violation::new(
                Invariant::EngineError,
                format!("a write accepted at {target} was tagged {}", accepted.write),
            ));
        }
        let epoch = self.engine(target)?.ownership_epoch();
        let totals = if counter {
            let t = self.totals.entry((target, key.clone())).or_default();
            if delta >= 0 {
                t.0 += delta.unsigned_abs();
            } else {
                t.1 += delta.unsigned_abs();
            }
            Some(*t)
        } else {
            None
        };
        self.report.accepted += 1;
        self.made.push(Made {
            write: accepted.write,
            entity: EntityKey::new(collection(name)?, key),
            epoch,
            acked: false,
            totals,
            wall: None,
        });
        Ok(())
    }

    fn step(&mut self, writes: bool) -> Result<(), Violation> {
        let dt = i64::try_from(self.rng.range(1_000, 20_000)).unwrap_or(MS);
        self.advance(dt);
        self.reconnect_due()?;
        if writes {
            for _ in 0..self.rng.range(0, 3) {
                self.client_write()?;
            }
        }
        for i in 0..NODES {
            let region = region_of(i);
            let mut out = Vec::new();
            if self.rng.chance(0.4) || !writes {
                out.extend(
                    self.engine(region)?
                        .commit()
                        .map_err(engine_error(region, "commit"))?
                        .outgoing,
                );
            }
            out.extend(
                self.engine(region)?
                    .poll()
                    .map_err(engine_error(region, "poll"))?,
            );
            out.extend(
                self.engine(region)?
                    .tick()
                    .map_err(engine_error(region, "tick"))?,
            );
            self.send(region, out)?;
        }
        self.deliver()?;
        self.acknowledge()?;
        self.observe_maps()
    }

    fn run(&mut self, steps: u32) -> Result<(), Violation> {
        for _ in 0..steps {
            self.step(true)?;
        }
        Ok(())
    }

    /// Faults stop, partitions and stalls end; runs until every node has
    /// applied and made durable every write of every origin.
    fn heal(&mut self) -> Result<(), Violation> {
        self.faults = None;
        self.isolated.clear();
        self.quiet.clear();
        if !self.stalled.is_empty() {
            self.stalled.clear();
            // Stalled streams lost batches without breaking: restart them.
            for a in 0..NODES {
                for b in a + 1..NODES {
                    self.break_link(region_of(a), region_of(b), self.now)?;
                }
            }
        }
        self.net.heal(self.now);
        self.net.retry_all(self.now);
        let start = self.now;
        loop {
            self.step(false)?;
            if self.quiescent() {
                return Ok(());
            }
            if self.now - start > 10 * 60 * SEC {
                return Err(Violation::new(
                    Invariant::Quiescence,
                    "no quiescence 10 minutes after heal",
                ));
            }
        }
    }

    fn quiescent(&self) -> bool {
        let busy = self.net.in_flight().any(|e| {
            matches!(
                e.message,
                PeerMessage::Batch(_) | PeerMessage::Hello { .. } | PeerMessage::Rewind { .. }
            )
        });
        let engines: Vec<&Engine<MemoryStorage>> = self
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref())
            .collect();
        !busy
            && engines.iter().all(|origin| {
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

    /// Every write was accepted by its key's owner under the epoch it carries.
    fn check_single_owner(&self) -> Result<(), Violation> {
        let mut by_epoch: BTreeMap<(EntityKey, u64), RegionId> = BTreeMap::new();
        for m in &self.made {
            let map = self.maps.get(&m.epoch).ok_or_else(|| {
                Violation::new(
                    Invariant::SingleOwner,
                    format!(
                        "{} carries epoch {} that no node ever held",
                        m.write, m.epoch
                    ),
                )
            })?;
            let owner = map
                .owner_or(
                    m.entity.collection.as_str(),
                    &m.entity.key,
                    Some(&self.rule),
                )
                .map_err(|e| Violation::new(Invariant::SingleOwner, e.to_string()))?;
            if owner != m.write.origin {
                return Err(Violation::new(
                    Invariant::SingleOwner,
                    format!(
                        "{} was accepted by {} under epoch {}, whose owner is {owner}",
                        m.write, m.write.origin, m.epoch
                    ),
                )
                .on(&m.entity));
            }
            if let Some(other) = by_epoch.insert((m.entity.clone(), m.epoch), m.write.origin)
                && other != m.write.origin
            {
                return Err(Violation::new(
                    Invariant::SingleOwner,
                    format!(
                        "accepted by {other} and {} under epoch {}",
                        m.write.origin, m.epoch
                    ),
                )
                .on(&m.entity));
            }
        }
        Ok(())
    }

    /// Every acknowledged write is in state or in the queue at every node.
    fn check_writes_kept(&self) -> Result<(), Violation> {
        for node in &self.nodes {
            let Some(engine) = node.engine.as_ref() else {
                continue;
            };
            let view = NodeView::of(engine);
            for m in self.made.iter().filter(|m| m.acked) {
                let key = (m.entity.clone(), m.write);
                let queued = view.queued.contains(&key);
                let in_state = match m.totals {
                    Some((inc, dec)) => view.entities.get(&m.entity).is_some_and(|e| {
                        let t = e.counter_totals(m.write.origin);
                        t.incremented >= inc && t.decremented >= dec
                    }),
                    None => lww_kept(&view, m, &self.made, 0),
                };
                if !queued && !in_state {
                    return Err(Violation::new(
                        Invariant::AckedWrites,
                        format!("{} is neither in state nor in the queue", m.write),
                    )
                    .at(node.region)
                    .on(&m.entity));
                }
            }
        }
        Ok(())
    }

    /// The fenced writes queued at every node: exactly the writes of the
    /// fenced region past the fence, under an older epoch.
    fn check_fenced_exactly(&mut self, event: &FailoverEvent) -> Result<(), Violation> {
        let expected: BTreeSet<WriteRef> = self
            .made
            .iter()
            .filter(|m| {
                m.write.origin == event.from
                    && m.write.seq > event.fenced_after_seq
                    && m.epoch < event.epoch
            })
            .map(|m| m.write)
            .collect();
        for node in &self.nodes {
            let Some(engine) = node.engine.as_ref() else {
                continue;
            };
            let fenced: BTreeSet<WriteRef> = engine
                .conflicts()
                .filter(|c| matches!(c.reason, ConflictReason::Fenced { .. }))
                .flat_map(|c| c.versions.iter().map(|v| v.write))
                .collect();
            if fenced != expected {
                return Err(Violation::new(
                    Invariant::Fencing,
                    format!(
                        "fenced items name {} writes, expected {}: extra {:?}, missing {:?}",
                        fenced.len(),
                        expected.len(),
                        fenced.difference(&expected).collect::<Vec<_>>(),
                        expected.difference(&fenced).collect::<Vec<_>>()
                    ),
                )
                .at(node.region));
            }
            // None of them is in the new owner's state.
            if node.region == event.to {
                let view = NodeView::of(engine);
                for e in view.entities.values() {
                    if e.versions(Policy::LwwHlc)
                        .iter()
                        .any(|v| expected.contains(&v.write))
                    {
                        return Err(Violation::new(
                            Invariant::Fencing,
                            "a fenced write is in the new owner's state",
                        )
                        .at(node.region));
                    }
                }
            }
        }
        self.report.fenced = u64::try_from(expected.len()).unwrap_or(u64::MAX);
        Ok(())
    }

    /// The application resolves every open fenced item at the key's owner
    /// (keeping the fenced value for LWW), then every replica must agree.
    fn resolve_fenced_and_compare(&mut self) -> Result<(), Violation> {
        for _ in 0..4 {
            let mut any = false;
            for i in 0..NODES {
                let region = region_of(i);
                let engine = self.engine(region)?;
                let items: Vec<(u64, Option<Vec<u8>>)> = engine
                    .conflicts()
                    .filter(|c| c.status.is_open())
                    .filter(|c| matches!(c.reason, ConflictReason::Fenced { .. }))
                    .filter(|c| c.entity.collection.as_str() == LWW)
                    .filter(|c| {
                        engine.owner(&c.entity.collection, &c.entity.key).ok() == Some(Some(region))
                    })
                    .map(|c| (c.id, c.versions.first().and_then(|v| v.value.clone())))
                    .collect();
                for (id, value) in items {
                    any = true;
                    self.report.resolved += 1;
                    self.engine(region)?
                        .resolve(id, value)
                        .map_err(engine_error(region, "resolve"))?;
                }
            }
            self.heal()?;
            if !any {
                break;
            }
        }
        let views: Vec<NodeView> = self
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref().map(NodeView::of))
            .collect();
        for v in &views[1..] {
            // Counters keep fenced totals where they were applied (see the
            // design notes), so only the LWW collection must agree whole.
            let lww = |v: &NodeView| -> Vec<_> {
                v.entities
                    .iter()
                    .filter(|(k, _)| k.collection.as_str() == LWW)
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect()
            };
            if lww(v) != lww(&views[0]) {
                return Err(Violation::new(
                    Invariant::ReplicasEqual,
                    "owned entities differ after every fenced item was resolved",
                )
                .at(v.region));
            }
            let open = |v: &NodeView| -> Vec<_> {
                v.open_items
                    .iter()
                    .filter(|(k, _)| k.collection.as_str() == LWW)
                    .map(|(k, i)| (k.clone(), i.clone()))
                    .collect()
            };
            if open(v) != open(&views[0]) {
                return Err(Violation::new(
                    Invariant::ReplicasEqual,
                    "open items differ after resolution",
                )
                .at(v.region));
            }
        }
        Ok(())
    }

    fn finish(mut self) -> OwnershipReport {
        self.report.accepted = u64::try_from(self.made.len()).unwrap_or(u64::MAX);
        self.report
    }
}

/// Partition the owner r0, let r1 take over, write on both sides, heal:
/// every write is in state or in the queue, no key is accepted by two
/// regions once the epoch is known, the queued writes are exactly r0's
/// writes past the fence, and once they are resolved every replica agrees.
pub fn partition_takeover(seed: u64) -> Result<OwnershipReport, Violation> {
    let run = || {
        let mut d = Driver::new(seed)?;
        let (old, new) = (region_of(0), region_of(1));
        d.run(150)?;
        d.isolate(old)?;
        d.run(60)?;
        let (event, out) = d
            .engine(new)?
            .take_over(old, "owner unreachable")
            .map_err(engine_error(new, "take over"))?;
        d.send(new, out)?;
        d.report.failover = Some(event.clone());
        // Both sides write: r1 (and r2 through it) to r0's keys, r0 to its own.
        d.run(150)?;
        d.heal()?;
        d.check_single_owner()?;
        d.check_writes_kept()?;
        d.check_fenced_exactly(&event)?;
        if d.engine(old)?.ownership_epoch() < event.epoch {
            return Err(Violation::new(Invariant::Fencing, "r0 never learned the epoch").at(old));
        }
        d.resolve_fenced_and_compare()?;
        d.check_writes_kept()?;
        Ok(d.finish())
    };
    run().map_err(|v: Violation| v.seeded(seed))
}

/// A planned handoff of r0's counters and values to r1 under load: nothing
/// is lost (every counter is the exact sum of its acknowledged adds), no
/// write is fenced, and no key is accepted by two regions.
pub fn planned_handoff(seed: u64) -> Result<OwnershipReport, Violation> {
    let run = || {
        let mut d = Driver::new(seed)?;
        let (old, new) = (region_of(0), region_of(1));
        d.run(100)?;
        // r0 owns ids 0 and 3 by the rule.
        let keys = vec![b"0".to_vec(), b"3".to_vec()];
        for name in [TALLY, LWW] {
            d.engine(old)?
                .hand_off(&collection(name)?, keys.clone(), new)
                .map_err(engine_error(old, "hand off"))?;
        }
        let mut steps = 0;
        while d
            .engine(old)?
            .handoffs()
            .iter()
            .any(|h| h.status == HandoffStatus::Draining)
        {
            d.step(true)?;
            steps += 1;
            if steps > 5_000 {
                return Err(Violation::new(
                    Invariant::Quiescence,
                    "handoff never completed",
                ));
            }
        }
        d.run(100)?;
        d.heal()?;
        d.check_single_owner()?;
        d.check_writes_kept()?;
        for n in &d.nodes {
            let Some(engine) = n.engine.as_ref() else {
                continue;
            };
            if engine.stats().fenced + engine.stats().fenced_found_applied > 0 {
                return Err(
                    Violation::new(Invariant::Fencing, "a handoff fenced a write").at(n.region),
                );
            }
            for key in &keys {
                let moved = engine
                    .owner(&collection(TALLY)?, key)
                    .map_err(engine_error(n.region, "owner"))?;
                if moved != Some(new) {
                    return Err(
                        Violation::new(Invariant::SingleOwner, "the key did not move").at(n.region),
                    );
                }
            }
        }
        // Nothing lost: each counter is the exact sum of every acknowledged add.
        let tally = collection(TALLY)?;
        for key in 0..KEYS {
            let key = key.to_string().into_bytes();
            let expected: i128 = d
                .totals
                .iter()
                .filter(|((_, k), _)| *k == key)
                .map(|(_, (inc, dec))| i128::from(*inc) - i128::from(*dec))
                .sum();
            for n in &d.nodes {
                let Some(engine) = n.engine.as_ref() else {
                    continue;
                };
                let got = match engine
                    .read(&tally, &key)
                    .map_err(engine_error(n.region, "read"))?
                {
                    concord_core::ReadValue::Counter(v) => v,
                    _ => 0,
                };
                if got != expected {
                    return Err(Violation::new(
                        Invariant::AckedWrites,
                        format!("counter is {got}, the adds sum to {expected}"),
                    )
                    .at(n.region)
                    .on(&EntityKey::new(tally.clone(), key.clone())));
                }
            }
        }
        Ok(d.finish())
    };
    run().map_err(|v: Violation| v.seeded(seed))
}

/// A takeover whose data at risk is exactly what was lost: r0's stream to
/// r1 stalls (heartbeats still get through), r0's clients stop, r0 is cut
/// off and r1 takes over. The event's writes at risk must equal r0's
/// durable writes that r1 had not applied, its seconds the span of their
/// origin times, and after heal exactly those writes are fenced and queued.
pub fn takeover_at_risk(seed: u64) -> Result<OwnershipReport, Violation> {
    let run = || {
        let mut d = Driver::new(seed)?;
        let (old, new) = (region_of(0), region_of(1));
        d.run(120)?;
        d.stalled.insert((old, new));
        d.run(80)?;
        // r0's clients stop; its last writes become durable and its
        // heartbeats carry its head to r1.
        d.quiet.insert(old);
        for _ in 0..100 {
            d.step(true)?;
        }
        d.isolate(old)?;
        let durable_at_old = d
            .engine(old)?
            .durable_cursors()
            .into_iter()
            .find(|(o, _)| *o == old)
            .map_or(0, |(_, s)| s);
        let applied_at_new = d.engine(new)?.cursor(old);
        let (event, out) = d
            .engine(new)?
            .take_over(old, "owner unreachable")
            .map_err(engine_error(new, "take over"))?;
        d.send(new, out)?;
        let really_lost = durable_at_old - applied_at_new;
        let wall_of = |seq: u64| {
            d.made
                .iter()
                .find(|m| m.write.origin == old && m.write.seq == seq)
                .and_then(|m| m.wall)
        };
        // The span is known when r1 had applied some write of r0 (otherwise
        // the engine can only bound it by its own clock).
        let span = match (wall_of(durable_at_old), wall_of(applied_at_new)) {
            _ if really_lost == 0 => Some(0),
            (Some(h), Some(a)) => Some(h.micros_since(a).max(0)),
            _ => None,
        };
        if event.at_risk_writes != really_lost || span.is_some_and(|s| s != event.at_risk_micros) {
            return Err(Violation::new(
                Invariant::Fencing,
                format!(
                    "reported {} writes / {} µs at risk; really lost {really_lost} writes / {span:?} µs",
                    event.at_risk_writes, event.at_risk_micros
                ),
            )
            .at(new));
        }
        d.report.really_lost = really_lost;
        d.report.failover = Some(event.clone());
        d.run(60)?;
        d.heal()?;
        d.check_single_owner()?;
        d.check_writes_kept()?;
        d.check_fenced_exactly(&event)?;
        if d.report.fenced != really_lost {
            return Err(Violation::new(
                Invariant::Fencing,
                format!(
                    "{} writes fenced, {really_lost} really lost",
                    d.report.fenced
                ),
            ));
        }
        d.resolve_fenced_and_compare()?;
        Ok(d.finish())
    };
    run().map_err(|v: Violation| v.seeded(seed))
}
