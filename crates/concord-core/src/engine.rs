//! The engine: one region's replication state machine over a [`Storage`].

use std::collections::BTreeMap;
use std::sync::Arc;

use concord_clock::{Clock, Hlc, HlcTime, SkewGuard, SkewVerdict, WallTime};
use concord_crdt::{PnTotals, RegionId, Stamp, VersionVector};

use foldhash::{HashMap, HashMapExt};

use crate::conflict_queue::ConflictQueue;
use crate::entity_map::EntityMap;
use crate::lag::LagTracker;
use crate::loser_log::LoserLog;
use crate::peer_message::Head;
use crate::{
    ChannelStatus, Checkpoint, CheckpointDelta, Collection, CollectionConfig, CollectionEntry,
    ConflictItem, CoreError, Effect, EngineConfig, EngineMeta, Entity, EntityKey, LoserRecord, Op,
    OriginLag, PeerMessage, Policy, Stats, Storage, TaggedWrite, Version, WriteBatch, WriteRef,
};

/// What a client asks to do to one entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// Set the value (`lww-*`, `mv`, `queue`).
    Put(Vec<u8>),
    /// Delete the entity (`lww-*`, `mv`, `queue`).
    Delete,
    /// Add to a counter; negative subtracts (`counter`).
    Add(i64),
}

/// A client's write request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientWrite {
    /// The entity's collection.
    pub collection: Collection,
    /// The entity's key.
    pub key: Vec<u8>,
    /// What to do.
    pub op: ClientOp,
    /// For `mv`/`queue`: the context of the read this write replaces (none:
    /// a blind write, concurrent with every current version).
    pub context: Option<VersionVector>,
}

/// A write the engine accepted. It is durable once [`Engine::commit`] covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The write's identity; also the causal token for read-your-writes.
    pub write: WriteRef,
}

/// What a read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadValue {
    /// Never written, or deleted.
    Missing,
    /// LWW: the winning version.
    Value(Version),
    /// `mv`/`queue`: every concurrent live version, and the context to write back with.
    Siblings {
        /// The versions (tombstones left out).
        versions: Vec<Version>,
        /// Pass this with the next write to replace all of them.
        context: VersionVector,
    },
    /// `counter`: the value.
    Counter(i128),
}

/// A message for one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The peer.
    pub to: RegionId,
    /// The message.
    pub message: PeerMessage,
}

/// What [`Engine::commit`] made durable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// This region's writes are durable up to this seq: acknowledge them.
    pub local_durable: u64,
    /// Acks telling peers what is now durable here.
    pub outgoing: Vec<Outgoing>,
}

/// The engine's view of one peer.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerLink {
    pub(crate) connected: bool,
    /// What the peer reported as durable, per origin.
    pub(crate) durable: BTreeMap<RegionId, u64>,
    /// What the peer reported as applied, per origin.
    pub(crate) applied: BTreeMap<RegionId, u64>,
    /// Highest seq sent to the peer, per origin.
    pub(crate) sent: BTreeMap<RegionId, u64>,
    /// Batches sent and not yet acknowledged.
    pub(crate) in_flight: u32,
    pub(crate) last_sent: Option<WallTime>,
    pub(crate) last_heard: Option<WallTime>,
    /// The peer needs writes this node has trimmed: send it a snapshot.
    pub(crate) needs_snapshot: bool,
    /// The peer's hello arrived on this connection: its cursors are known,
    /// so streaming to it can start.
    pub(crate) greeted: bool,
}

/// How a write reached [`Engine::apply_write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Local,
    Remote,
    Replay,
}

/// One region's replication engine.
///
/// Sans-IO: the caller feeds it client writes ([`Engine::write`]), peer
/// messages ([`Engine::receive`]) and ticks ([`Engine::tick`]), makes appends
/// durable with [`Engine::commit`] (group commit: one sync for everything
/// since the last), and sends what [`Engine::poll`] and the others return.
/// The real node and the simulator drive this same code.
pub struct Engine<S: Storage> {
    pub(crate) config: EngineConfig,
    pub(crate) storage: S,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hlc: Hlc,
    pub(crate) skew: SkewGuard,
    pub(crate) collections: BTreeMap<Collection, CollectionEntry>,
    pub(crate) entities: EntityMap,
    /// Per origin: highest seq applied (for this region: highest accepted).
    pub(crate) applied: BTreeMap<RegionId, u64>,
    /// Per origin: highest seq durable here.
    pub(crate) durable: BTreeMap<RegionId, u64>,
    /// Per origin: wall time of the newest applied write.
    pub(crate) applied_wall: BTreeMap<RegionId, WallTime>,
    /// Per origin: the newest write known to exist (from batches and heartbeats).
    pub(crate) known_heads: BTreeMap<RegionId, Head>,
    /// Local writes accepted since the last commit (one log record at commit).
    pub(crate) pending_local: Vec<TaggedWrite>,
    /// Per entity: the lowest dot counter of this region's writes not yet
    /// durable. Reads leave those dots out of the contexts they return: a
    /// crash may lose the writes, and their dots would then be given again.
    pub(crate) pending_dots: HashMap<EntityKey, u64>,
    pub(crate) peers: BTreeMap<RegionId, PeerLink>,
    /// Remote writes received ahead of a missing seq, per origin.
    pub(crate) held: BTreeMap<RegionId, BTreeMap<u64, TaggedWrite>>,
    /// Per origin: the next write, held because its timestamp is in the future.
    pub(crate) held_future: BTreeMap<RegionId, TaggedWrite>,
    /// Per origin: the seq to ask peers to resend from (writes were dropped).
    pub(crate) rewind: BTreeMap<RegionId, u64>,
    pub(crate) queue: ConflictQueue,
    pub(crate) losers: LoserLog,
    pub(crate) lag: BTreeMap<RegionId, LagTracker>,
    pub(crate) stats: Stats,
    pub(crate) since_checkpoint: u64,
    /// Per origin: the cursor of the last checkpoint (the log past it is
    /// needed for replay and is never trimmed).
    pub(crate) checkpointed: BTreeMap<RegionId, u64>,
    /// Per origin: the log is trimmed through this seq.
    pub(crate) trimmed: BTreeMap<RegionId, u64>,
    /// Set when a peer holds more of this region's own writes than this node
    /// does: local writes are refused until a snapshot restores them.
    pub(crate) own_writes_behind: Option<u64>,
    /// The replicated ownership map.
    pub(crate) ownership: crate::OwnershipState,
    /// A new map was adopted since the last checkpoint.
    pub(crate) ownership_changed: bool,
    /// While replaying: maps met in the log, adopted once replay is done.
    pub(crate) deferred_ownership: Option<Vec<crate::OwnershipState>>,
    /// Forced takeovers this region made.
    pub(crate) failovers: Vec<crate::FailoverEvent>,
    /// Handoffs this region started.
    pub(crate) handoffs: Vec<crate::Handoff>,
}

impl<S: Storage> Engine<S> {
    /// How many writes [`Engine::warm`] should read ahead at a time.
    pub const WARM_AHEAD: usize = crate::entity_map::WARM_GROUP;

    /// Opens the engine on `storage`: loads the last checkpoint and replays
    /// the log past it.
    pub fn open(
        config: EngineConfig,
        storage: S,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CoreError> {
        let Checkpoint {
            cursors,
            entities,
            queue,
            losers,
            meta,
        } = storage.load_checkpoint()?;
        let mut collections: BTreeMap<Collection, CollectionEntry> = config
            .collections
            .iter()
            .map(|(c, cfg)| {
                (
                    c.clone(),
                    CollectionEntry {
                        collection: c.clone(),
                        config: cfg.clone(),
                        set_by: None,
                    },
                )
            })
            .collect();
        for entry in meta.collections {
            collections.insert(entry.collection.clone(), entry);
        }
        let peers = config
            .peers
            .iter()
            .filter(|p| **p != config.region)
            .map(|p| (*p, PeerLink::default()))
            .collect();
        let lag = config
            .peers
            .iter()
            .map(|p| (*p, LagTracker::new(*p)))
            .collect();
        let hlc = Hlc::new(clock.clone(), config.max_skew);
        let mut engine = Self {
            skew: SkewGuard::new(config.max_skew),
            losers: LoserLog::new(config.loser_log_capacity, meta.next_loser_id, losers),
            queue: ConflictQueue::new(queue, meta.next_item_id, meta.queue_position),
            applied: cursors.iter().copied().collect(),
            durable: cursors.iter().copied().collect(),
            entities: EntityMap::from_checkpoint(entities),
            config,
            storage,
            clock,
            hlc,
            collections,
            applied_wall: meta.applied_walls.into_iter().collect(),
            known_heads: BTreeMap::new(),
            pending_local: Vec::new(),
            pending_dots: HashMap::new(),
            peers,
            held: BTreeMap::new(),
            held_future: BTreeMap::new(),
            rewind: BTreeMap::new(),
            lag,
            stats: Stats::default(),
            since_checkpoint: 0,
            checkpointed: cursors.iter().copied().collect(),
            trimmed: BTreeMap::new(),
            own_writes_behind: None,
            ownership: meta.ownership.unwrap_or_default(),
            ownership_changed: false,
            deferred_ownership: None,
            failovers: meta.failovers,
            handoffs: meta.handoffs,
        };
        engine.deferred_ownership = Some(Vec::new());
        let replayed = engine.replay();
        // Maps met in the log are adopted after every origin is replayed:
        // the writes replayed were decided under the checkpointed map (a new
        // map is checkpointed as soon as it is adopted).
        replayed?;
        for state in engine.deferred_ownership.take().unwrap_or_default() {
            engine.adopt_ownership(state)?;
        }
        // What the log no longer holds: below its first record, or all of
        // it when the log is empty though writes were applied.
        let bounds: BTreeMap<RegionId, u64> = engine
            .storage
            .log_bounds()?
            .into_iter()
            .map(|(o, b)| (o, b.first.saturating_sub(1)))
            .collect();
        for (origin, applied) in engine.applied.clone() {
            let trimmed = bounds.get(&origin).copied().unwrap_or(applied);
            engine.trimmed.insert(origin, trimmed);
        }
        Ok(engine)
    }

    /// Applies every logged write past the checkpoint's cursors.
    fn replay(&mut self) -> Result<(), CoreError> {
        // The newest stamp this node holds (every version in the
        // checkpointed state, every replayed write, its own last write) that
        // the HLC can absorb. A resolution of a held future write is stamped
        // past that write, beyond the drift bound: the HLC could not absorb
        // it when it was made either, and it must neither keep the node from
        // reopening nor keep the HLC from absorbing every other stamp.
        let limit =
            self.clock.now().as_millis().saturating_add(
                i64::try_from(self.config.max_skew.as_millis()).unwrap_or(i64::MAX),
            );
        let absorbable = |t: &HlcTime| t.physical_millis() <= limit;
        let mut newest: Option<HlcTime> = self
            .entities
            .iter()
            .map(|(_, e)| e)
            .flat_map(|e| {
                e.states()
                    .iter()
                    .flat_map(|s| e.versions(crate::entity::policy_of(s)))
            })
            .map(|v| v.hlc)
            .filter(absorbable)
            .max();
        for (origin, bounds) in self.storage.log_bounds()? {
            if origin == self.config.region
                && let Some(last) = self.storage.read_log(origin, bounds.last, 1)?.first()
                && absorbable(&last.hlc)
            {
                newest = newest.max(Some(last.hlc));
            }
            let mut next = self.cursor(origin) + 1;
            while next <= bounds.last {
                let chunk = self.storage.read_log(origin, next, 4096)?;
                if chunk.is_empty() {
                    break;
                }
                for w in chunk {
                    if w.seq != next {
                        return Err(CoreError::LogGap {
                            origin,
                            seq: next,
                            first: bounds.first,
                            last: bounds.last,
                        });
                    }
                    if absorbable(&w.hlc) {
                        newest = newest.max(Some(w.hlc));
                    }
                    self.apply_logged(&w, Source::Replay)?;
                    next += 1;
                }
            }
            self.durable.insert(origin, self.cursor(origin));
        }
        if let Some(t) = newest {
            // Never stamp a new write below one this region already made or
            // applied (the HLC had absorbed those before the restart).
            match self.hlc.update(t) {
                Ok(_) | Err(concord_clock::ClockError::DriftExceeded { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// This node's region.
    pub fn region(&self) -> RegionId {
        self.config.region
    }

    /// The storage (for inspection).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Per origin, the highest seq applied here.
    pub fn cursor(&self, origin: RegionId) -> u64 {
        self.applied.get(&origin).copied().unwrap_or(0)
    }

    /// Per origin, the highest seq applied here.
    pub fn cursors(&self) -> Vec<(RegionId, u64)> {
        self.applied.iter().map(|(r, s)| (*r, *s)).collect()
    }

    /// Per origin, the highest seq durable here.
    pub fn durable_cursors(&self) -> Vec<(RegionId, u64)> {
        self.durable.iter().map(|(r, s)| (*r, *s)).collect()
    }

    /// The decision counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A collection's current configuration.
    pub fn collection(&self, collection: &Collection) -> Option<&CollectionConfig> {
        self.collections.get(collection).map(|e| &e.config)
    }

    /// Every entity and its state.
    pub fn entities(&self) -> impl Iterator<Item = (EntityKey, &Entity)> + '_ {
        self.entities.iter()
    }

    /// The loser log, oldest first.
    pub fn losers(&self) -> impl ExactSizeIterator<Item = &LoserRecord> + '_ {
        self.losers.records().iter()
    }

    /// Every conflict-queue item not purged, by id.
    pub fn conflicts(&self) -> impl Iterator<Item = &ConflictItem> + '_ {
        self.queue.items()
    }

    /// One conflict-queue item.
    pub fn conflict(&self, id: u64) -> Option<&ConflictItem> {
        self.queue.get(id)
    }

    /// Items changed after queue `position`, oldest change first (for watching).
    pub fn conflicts_after(&self, position: u64) -> Vec<&ConflictItem> {
        self.queue.changed_after(position)
    }

    /// The number of open conflict-queue items.
    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// True once the write `token` names is applied here (read-your-writes).
    pub fn has_applied(&self, token: WriteRef) -> bool {
        self.cursor(token.origin) >= token.seq
    }

    /// The peers that hold `write` durably.
    pub fn durable_at(&self, write: WriteRef) -> Vec<RegionId> {
        self.peers
            .iter()
            .filter(|(_, l)| {
                l.durable
                    .get(&write.origin)
                    .is_some_and(|s| *s >= write.seq)
            })
            .map(|(p, _)| *p)
            .collect()
    }

    /// Lag of every peer origin, now.
    pub fn lag(&self) -> Vec<OriginLag> {
        let now = self.clock.now();
        self.lag.values().map(|t| t.report(now)).collect()
    }

    /// Status of the channel from each peer.
    ///
    /// A peer counts as up while it is connected and has been heard from
    /// within `lag.failed_after` (heartbeats keep an idle peer heard).
    pub fn channels(&self) -> Vec<(RegionId, ChannelStatus)> {
        let now = self.clock.now();
        let silence = i64::try_from(self.config.lag.failed_after.as_micros()).unwrap_or(i64::MAX);
        self.lag
            .iter()
            .map(|(p, t)| {
                let up = self.peers.get(p).is_some_and(|l| {
                    l.connected && l.last_heard.is_some_and(|h| now.micros_since(h) <= silence)
                });
                (*p, t.status(up, &self.config.lag))
            })
            .collect()
    }

    fn validate_sizes(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), CoreError> {
        if key.len() > self.config.max_key_bytes {
            return Err(CoreError::TooLarge {
                what: "key",
                len: key.len(),
                max: self.config.max_key_bytes,
            });
        }
        if let Some(v) = value
            && v.len() > self.config.max_value_bytes
        {
            return Err(CoreError::TooLarge {
                what: "value",
                len: v.len(),
                max: self.config.max_value_bytes,
            });
        }
        Ok(())
    }

    fn next_seq(&self) -> Result<u64, CoreError> {
        if let Some(peers_hold) = self.own_writes_behind {
            return Err(CoreError::Rebuilding {
                region: self.config.region,
                peers_hold,
                holds: self.cursor(self.config.region),
            });
        }
        let seq = self.cursor(self.config.region) + 1;
        if seq > Stamp::<u64>::MAX_SEQ {
            return Err(concord_crdt::CrdtError::SeqOutOfRange {
                seq,
                max: Stamp::<u64>::MAX_SEQ,
            }
            .into());
        }
        Ok(seq)
    }

    /// Reads the entities these writes will change into the cache, so that
    /// writing them one by one does not wait on the memory for each in
    /// turn. A caller about to [`Engine::write`] many writes calls it for
    /// each [`Engine::WARM_AHEAD`] of them before writing them: what it
    /// reads stays in the cache that long. It changes nothing.
    pub fn warm(&self, writes: &[ClientWrite]) {
        self.entities
            .warm(writes.iter().map(|w| (&w.collection, &w.key[..])));
    }

    /// Accepts a client write: tags it, applies it here, and queues it for
    /// the log. It is durable (and may be acknowledged) after the next
    /// [`Engine::commit`].
    pub fn write(&mut self, req: ClientWrite) -> Result<Accepted, CoreError> {
        let value = match &req.op {
            ClientOp::Put(v) => Some(v.as_slice()),
            _ => None,
        };
        self.validate_sizes(&req.key, value)?;
        let policy = self
            .collections
            .get(&req.collection)
            .map(|e| e.config.policy)
            .ok_or_else(|| CoreError::UnknownCollection(req.collection.clone()))?;
        let epoch = self.check_local_owner(&req.collection, &req.key)?;
        let entity_key = EntityKey::new(req.collection, req.key);
        let region = self.config.region;
        let op = match (req.op, policy) {
            (ClientOp::Put(v), p) if p != Policy::Counter => Op::Set(v),
            (ClientOp::Delete, p) if p != Policy::Counter => Op::Delete,
            (ClientOp::Add(delta), Policy::Counter) => {
                let current = self
                    .entities
                    .get(&entity_key.collection, &entity_key.key)
                    .map(|e| e.counter_totals(region))
                    .unwrap_or_default();
                Op::Counter(add_to_totals(current, delta)?)
            }
            (op, policy) => {
                return Err(CoreError::WrongOpKind {
                    collection: entity_key.collection,
                    policy,
                    op: match op {
                        ClientOp::Put(_) => "put",
                        ClientOp::Delete => "delete",
                        ClientOp::Add(_) => "increment",
                    },
                });
            }
        };
        let context = req.context.unwrap_or_default();
        self.tag_and_apply(entity_key, policy, op, context, None, epoch)
    }

    /// Resolves an open conflict-queue item with `value` (`None` deletes).
    ///
    /// The resolution is a write whose context covers every version in
    /// conflict and whose stamps order it after all of them; it replicates
    /// like any write, and each region closes its own item when it applies it.
    pub fn resolve(&mut self, item: u64, value: Option<Vec<u8>>) -> Result<Accepted, CoreError> {
        let it = self
            .queue
            .get(item)
            .ok_or(CoreError::UnknownConflict(item))?;
        if !it.status.is_open() {
            return Err(CoreError::ConflictClosed(item));
        }
        self.validate_sizes(&it.entity.key, value.as_deref())?;
        let entity_key = it.entity.clone();
        let resolves: Vec<WriteRef> = it.versions.iter().map(|v| v.write).collect();
        let after = it
            .versions
            .iter()
            .map(|v| (v.hlc, v.wall))
            .fold((HlcTime::MIN, WallTime::from_micros(i64::MIN)), |a, b| {
                (a.0.max(b.0), a.1.max(b.1))
            });
        let policy = self
            .collections
            .get(&entity_key.collection)
            .map(|e| e.config.policy)
            .ok_or_else(|| CoreError::UnknownCollection(entity_key.collection.clone()))?;
        if policy == Policy::Counter {
            return Err(CoreError::WrongOpKind {
                collection: entity_key.collection,
                policy,
                op: "resolve",
            });
        }
        let epoch = self.check_local_owner(&entity_key.collection, &entity_key.key)?;
        let mut context = self
            .entities
            .get(&entity_key.collection, &entity_key.key)
            .map(|e| e.context(policy))
            .unwrap_or_default();
        if let crate::ConflictReason::Fenced { dot: Some(dot), .. } = &it.reason {
            // A fenced write was never applied here: the resolution covers
            // it explicitly, so it replaces it where it was applied.
            context.apply_dot(*dot);
        }
        self.tag_and_apply(
            entity_key,
            policy,
            Op::Resolve { value, resolves },
            context,
            Some(after),
            epoch,
        )
    }

    /// Changes a collection's configuration here and in every region (the
    /// change replicates; the newest change wins everywhere).
    pub fn configure(
        &mut self,
        collection: Collection,
        config: CollectionConfig,
    ) -> Result<Accepted, CoreError> {
        let policy = config.policy;
        self.tag_and_apply(
            EntityKey::new(collection, Vec::new()),
            policy,
            Op::Configure(config),
            VersionVector::new(),
            None,
            0,
        )
    }

    /// Builds the tagged write, applies it, and keeps it for the next commit.
    /// `after`: stamps the write must exceed (a resolution's versions).
    pub(crate) fn tag_and_apply(
        &mut self,
        entity: EntityKey,
        policy: Policy,
        op: Op,
        context: VersionVector,
        after: Option<(HlcTime, WallTime)>,
        epoch: u64,
    ) -> Result<Accepted, CoreError> {
        let region = self.config.region;
        let seq = self.next_seq()?;
        // One reading of the clock for both stamps.
        let mut wall = self.clock.now();
        let mut hlc = self.hlc.now_at(wall)?;
        if let Some((h, w)) = after {
            hlc = hlc.max(HlcTime::from_u64(h.as_u64().saturating_add(1)));
            wall = wall.max(WallTime::from_micros(w.as_micros().saturating_add(1)));
        }
        let dot = match (policy, &op) {
            (Policy::Mv | Policy::Queue, Op::Set(_) | Op::Delete | Op::Resolve { .. }) => Some(
                self.entities
                    .get(&entity.collection, &entity.key)
                    .map_or(Ok(concord_crdt::Dot::new(region, 1)), |e| {
                        e.next_dot(policy, region)
                    })?,
            ),
            _ => None,
        };
        if let Some(d) = dot {
            self.pending_dots.entry(entity.clone()).or_insert(d.counter);
        }
        let write = TaggedWrite {
            id: TaggedWrite::make_id(region, seq, wall),
            origin: region,
            seq,
            hlc,
            wall,
            collection: entity.collection,
            key: entity.key,
            context,
            epoch,
            policy,
            dot,
            op,
        };
        self.apply_write(&write, Source::Local)?;
        self.applied.insert(region, seq);
        self.applied_wall.insert(region, wall);
        self.stats.local_writes += 1;
        self.since_checkpoint += 1;
        let accepted = Accepted {
            write: write.write_ref(),
        };
        self.pending_local.push(write);
        Ok(accepted)
    }

    /// Reads an entity under its collection's policy.
    pub fn read(&self, collection: &Collection, key: &[u8]) -> Result<ReadValue, CoreError> {
        let policy = self
            .collections
            .get(collection)
            .map(|e| e.config.policy)
            .ok_or_else(|| CoreError::UnknownCollection(collection.clone()))?;
        let Some(entity) = self.entities.get(collection, key) else {
            return Ok(ReadValue::Missing);
        };
        // After a policy change an entity may only have state under the old one.
        let policy = if entity.state(policy).is_some() {
            policy
        } else {
            match entity.states().first() {
                Some(s) => crate::entity::policy_of(s),
                None => return Ok(ReadValue::Missing),
            }
        };
        Ok(match policy {
            Policy::Counter => ReadValue::Counter(entity.counter_value().unwrap_or(0)),
            Policy::LwwWall | Policy::LwwHlc => match entity.versions(policy).first() {
                Some(v) if v.value.is_some() => ReadValue::Value((*v).clone()),
                _ => ReadValue::Missing,
            },
            Policy::Mv | Policy::Queue => {
                let versions: Vec<Version> = entity
                    .versions(policy)
                    .into_iter()
                    .filter(|v| v.value.is_some())
                    .cloned()
                    .collect();
                let mut context = entity.context(policy);
                let own = self.config.region;
                if let Some(low) = self
                    .pending_dots
                    .get(&EntityKey::new(collection.clone(), key.to_vec()))
                    && context.get(own) >= *low
                {
                    // Hand out only dots that survive a crash (see `pending_dots`).
                    context = VersionVector::from_entries(
                        context
                            .iter()
                            .map(|(r, n)| if r == own { (r, low - 1) } else { (r, n) }),
                    );
                }
                if versions.is_empty() && context.is_empty() {
                    ReadValue::Missing
                } else {
                    ReadValue::Siblings { versions, context }
                }
            }
        })
    }

    /// Applies one write to state, queue and loser log. On error nothing changed.
    pub(crate) fn apply_write(&mut self, w: &TaggedWrite, source: Source) -> Result<(), CoreError> {
        if let Op::Configure(config) = &w.op {
            let stamp = (w.hlc, w.write_ref());
            let newer = self
                .collections
                .get(&w.collection)
                .is_none_or(|e| e.set_by.is_none_or(|s| s < stamp));
            if newer {
                self.collections.insert(
                    w.collection.clone(),
                    CollectionEntry {
                        collection: w.collection.clone(),
                        config: config.clone(),
                        set_by: Some(stamp),
                    },
                );
            }
            return Ok(());
        }
        if let Op::Ownership(map) = &w.op {
            let state = crate::OwnershipState {
                map: map.clone(),
                set_by: Some((w.hlc, w.write_ref())),
            };
            match (&mut self.deferred_ownership, source) {
                (Some(deferred), Source::Replay) => deferred.push(state),
                _ => {
                    self.adopt_ownership(state)?;
                }
            }
            return Ok(());
        }
        if matches!(w.op, Op::Withheld) {
            return Ok(());
        }
        if source != Source::Local
            && let Some(fence) = self.fence_of(w)
        {
            let (owner, epoch) = (fence.to, fence.epoch);
            self.queue_fenced(w, owner, epoch);
            return Ok(());
        }
        if source == Source::Remote && !self.collections.contains_key(&w.collection) {
            self.stats.unknown_collection += 1;
        }
        let effect = self.entities.apply(w)?;
        let quiet = match &effect {
            Effect::Won
            | Effect::Superseded
            | Effect::Counted
            | Effect::Duplicate
            | Effect::AlreadySeen => true,
            Effect::LwwLoser { .. } => false,
            // Siblings within the policy's limit, and no open item that this
            // write could close.
            Effect::Siblings { siblings, .. } => {
                // One version is always within the limit (a cap of 0 means 1),
                // so the collection is looked up only past it.
                self.queue.depth() == 0
                    && (*siblings <= 1
                        || (w.policy == Policy::Mv
                            && *siblings <= self.max_siblings(&w.collection)))
            }
        };
        if quiet && !matches!(w.op, Op::Resolve { .. }) {
            // The common case: nothing to log or queue.
            return Ok(());
        }
        let key = w.entity();
        let now = self.clock.now();
        match effect {
            Effect::LwwLoser { loser, winner } => {
                self.stats.lww_losers += 1;
                if self.losers.push(key.clone(), loser, winner, now) {
                    self.stats.losers_evicted += 1;
                }
            }
            Effect::Siblings { siblings, .. } => {
                let versions = || -> Vec<Version> {
                    self.entities
                        .get(&w.collection, &w.key)
                        .map(|e| e.versions(w.policy).into_iter().cloned().collect())
                        .unwrap_or_default()
                };
                if w.policy == Policy::Queue {
                    if siblings > 1 {
                        let vs = versions();
                        if self.queue.concurrent(&key, vs, now) {
                            self.stats.conflicts_opened += 1;
                        }
                    } else if self.queue.close_concurrent(&key, w.write_ref(), now) {
                        self.stats.conflicts_closed += 1;
                    }
                } else if w.policy == Policy::Mv {
                    let max = self
                        .collections
                        .get(&w.collection)
                        .map_or(u32::MAX, |e| e.config.max_siblings.max(1));
                    if siblings > usize::try_from(max).unwrap_or(usize::MAX) {
                        let vs = versions();
                        if self.queue.sibling_cap(&key, max, vs, now) {
                            self.stats.conflicts_opened += 1;
                        }
                    } else if self.queue.close_sibling_cap(&key, w.write_ref(), now) {
                        self.stats.conflicts_closed += 1;
                    }
                }
            }
            Effect::Won
            | Effect::Superseded
            | Effect::Duplicate
            | Effect::AlreadySeen
            | Effect::Counted => {}
        }
        if let Op::Resolve { resolves, .. } = &w.op {
            let closed = self.queue.resolve(&key, resolves, w.write_ref(), now);
            self.stats.conflicts_closed += u64::try_from(closed).unwrap_or(0);
        }
        Ok(())
    }

    /// Applies a write that is (or will be) in the log: a refused write is
    /// counted and stays logged, unapplied; the cursor moves either way.
    pub(crate) fn apply_logged(
        &mut self,
        w: &TaggedWrite,
        source: Source,
    ) -> Result<(), CoreError> {
        match self.apply_write(w, source) {
            Ok(()) => {
                if source == Source::Remote {
                    self.stats.remote_applied += 1;
                }
            }
            Err(CoreError::WrongOpKind { .. }) => self.stats.wrong_op_kind += 1,
            Err(CoreError::Merge(_)) => self.stats.merge_refused += 1,
            Err(e) => return Err(e),
        }
        if source != Source::Local && self.queue.release_future(w.write_ref(), self.clock.now()) {
            // Its future-timestamp item may outlive the hold: checkpointed
            // open, then the write arrived again after a crash (or replay
            // applied it once released). Applied means released.
            self.stats.conflicts_closed += 1;
        }
        self.applied.insert(w.origin, w.seq);
        self.applied_wall.insert(w.origin, w.wall);
        self.since_checkpoint += 1;
        Ok(())
    }

    /// Makes everything accepted and received so far durable (one sync), and
    /// says which local writes may now be acknowledged.
    pub fn commit(&mut self) -> Result<CommitReport, CoreError> {
        if !self.pending_local.is_empty() {
            let batch = WriteBatch {
                origin: self.config.region,
                writes: std::mem::take(&mut self.pending_local),
            };
            self.storage.append(vec![batch])?;
        }
        self.storage.sync()?;
        self.pending_dots.clear();
        let advanced = self.durable != self.applied;
        self.durable = self.applied.clone();
        let mut outgoing = Vec::new();
        if advanced {
            for (peer, link) in &self.peers {
                if link.connected {
                    outgoing.push(Outgoing {
                        to: *peer,
                        message: PeerMessage::Ack {
                            applied: self.cursors(),
                            durable: self.durable_cursors(),
                            batches: 0,
                        },
                    });
                }
            }
        }
        Ok(CommitReport {
            local_durable: self.durable.get(&self.config.region).copied().unwrap_or(0),
            outgoing,
        })
    }

    /// Writes a checkpoint: commits first, then hands storage the state as
    /// it is now: the cursors, the entities, queue items and loser records
    /// changed since the last one, and the metadata, all taken at once (the
    /// entities' states are shared with the engine, copied on write).
    pub fn checkpoint(&mut self) -> Result<CommitReport, CoreError> {
        let report = self.commit()?;
        let entities = self.entities.take_listed();
        let (queue, queue_removed) = self.queue.take_delta();
        let (losers, losers_purged_through) = self.losers.take_delta();
        let meta = EngineMeta {
            collections: self
                .collections
                .values()
                .filter(|e| e.set_by.is_some())
                .cloned()
                .collect(),
            next_item_id: self.queue.next_id(),
            queue_position: self.queue.position(),
            next_loser_id: self.losers.next_id(),
            ownership: self
                .ownership
                .set_by
                .is_some()
                .then(|| self.ownership.clone()),
            failovers: self.failovers.clone(),
            handoffs: self.handoffs.clone(),
            applied_walls: self.applied_wall.iter().map(|(r, w)| (*r, *w)).collect(),
        };
        self.storage.checkpoint(CheckpointDelta {
            cursors: self.cursors(),
            entities,
            queue,
            queue_removed,
            losers,
            losers_purged_through,
            meta,
        })?;
        self.checkpointed = self.applied.clone();
        self.since_checkpoint = 0;
        self.ownership_changed = false;
        Ok(report)
    }

    /// Drops closed queue items and loser records older than `before`.
    pub fn purge(&mut self, before: WallTime) -> (usize, usize) {
        (
            self.queue.purge_closed_before(before),
            self.losers.purge_before(before),
        )
    }

    /// The sibling cap of an `mv` collection (at least 1; none: no cap).
    fn max_siblings(&self, collection: &Collection) -> usize {
        self.collections.get(collection).map_or(usize::MAX, |e| {
            usize::try_from(e.config.max_siblings.max(1)).unwrap_or(usize::MAX)
        })
    }

    /// The skew verdict for a remote write's wall time, now.
    pub(crate) fn skew_verdict(&self, wall: WallTime) -> SkewVerdict {
        self.skew.check(self.clock.now(), wall)
    }
}

/// The region's new running totals after adding `delta`.
fn add_to_totals(mut t: PnTotals, delta: i64) -> Result<PnTotals, CoreError> {
    let slot = if delta >= 0 {
        &mut t.incremented
    } else {
        &mut t.decremented
    };
    *slot = slot
        .checked_add(delta.unsigned_abs())
        .ok_or(CoreError::CounterOverflow)?;
    Ok(t)
}
