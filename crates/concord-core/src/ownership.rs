//! Owned collections: who may accept a write, planned handoffs, forced
//! takeovers with fencing, and the recovery-point report.
//!
//! The ownership map ([`OwnershipMap`]) is replicated state: every change is
//! an [`Op::Ownership`] write carrying the whole new map, replicated to
//! every region whatever the collection's residency, and merged by epoch
//! (then by the change's stamp, so regions agree even if two changes were
//! made at once). It is persisted in the checkpoint and carried by
//! snapshots. Adopting a new map is followed by a checkpoint before any
//! further write of another origin is applied, so replay after a crash
//! decides every write under the same map it was first decided under.

use concord_clock::{HlcTime, WallTime};
use concord_crdt::{RegionId, VersionVector};
use concord_ownership::{Fence, OwnershipMap, Rule};
use serde::{Deserialize, Serialize};

use crate::engine::Outgoing;
use crate::{
    Accepted, Collection, ConflictReason, CoreError, Engine, EntityKey, Op, Policy, Storage,
    TaggedWrite, Version, WriteRef,
};

/// The replicated ownership map and the stamp of the change that set it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipState {
    /// The map.
    pub map: OwnershipMap,
    /// The stamp of the [`Op::Ownership`] write that set it (`None`: the
    /// map was never changed; owners come from the collections' rules).
    pub set_by: Option<(HlcTime, WriteRef)>,
}

impl OwnershipState {
    /// The order in which replicas adopt maps: epoch first, then the stamp.
    fn version(&self) -> (u64, Option<(HlcTime, WriteRef)>) {
        (self.map.epoch(), self.set_by)
    }
}

/// A forced takeover this region made: it became the owner of every key of
/// `from` in every owned collection and fenced `from`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverEvent {
    /// The region taken over (the old owner).
    pub from: RegionId,
    /// The region that took over (this one).
    pub to: RegionId,
    /// Why, as the operator or the node gave it.
    pub reason: String,
    /// The epoch the takeover created.
    pub epoch: u64,
    /// When the takeover was asked for (this node's clock).
    pub started: WallTime,
    /// When the takeover was in force: the new map applied here and durable.
    pub completed: Option<WallTime>,
    /// The fence: writes of `from` past this seq (under an older epoch) are
    /// refused everywhere and go to the conflict queue.
    pub fenced_after_seq: u64,
    /// Data at risk, in writes: the writes of `from` known to exist (from
    /// its last heartbeat or batch) that were not applied here.
    pub at_risk_writes: u64,
    /// Data at risk, in time: origin time of the newest known write of
    /// `from` minus that of the newest applied here, µs (0 when nothing is
    /// at risk).
    pub at_risk_micros: i64,
    /// The ownership write that made the change.
    pub write: WriteRef,
}

/// Where a planned handoff stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandoffStatus {
    /// This region refuses writes to the keys and waits until the new owner
    /// holds every write it made up to `drain_to`.
    Draining,
    /// The map moved: the keys belong to the new owner from `epoch` on.
    Completed {
        /// The epoch of the move.
        epoch: u64,
        /// When it moved (this node's clock).
        at: WallTime,
    },
    /// Cancelled before the map moved; the keys stayed here.
    Cancelled {
        /// When.
        at: WallTime,
    },
    /// The keys stopped being this region's before the move (a takeover
    /// moved them elsewhere); nothing was moved.
    Aborted {
        /// When.
        at: WallTime,
    },
}

/// A planned handoff of keys of one owned collection to another region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// This region's id for it.
    pub id: u64,
    /// The collection.
    pub collection: Collection,
    /// The keys that move.
    pub keys: Vec<Vec<u8>>,
    /// The new owner.
    pub to: RegionId,
    /// The highest seq of this region when the handoff started: the new
    /// owner must hold every write up to it durably before the map moves.
    pub drain_to: u64,
    /// When it started (this node's clock).
    pub started: WallTime,
    /// Where it stands.
    pub status: HandoffStatus,
}

/// The recovery point for one origin at this node, now: the writes a
/// failover to this node would lose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginRpo {
    /// The origin.
    pub origin: RegionId,
    /// Its highest seq applied here.
    pub applied_seq: u64,
    /// Its highest seq known to exist (from batches and heartbeats).
    pub known_seq: u64,
    /// Writes known to exist and not applied here (`known_seq - applied_seq`).
    pub unapplied_writes: u64,
    /// Age of the oldest write not applied here, µs, by this node's clock
    /// against the origin's wall time (0 when none). Exact when
    /// `oldest_exact`; otherwise an upper bound: the oldest unapplied write
    /// was made after the newest applied one.
    pub oldest_unapplied_micros: i64,
    /// True when the oldest unapplied write's time is known exactly (it is
    /// held here, or it is the newest known write).
    pub oldest_exact: bool,
    /// Origin time of the newest known write minus that of the newest
    /// applied, µs: how much of the origin's history is missing here.
    pub span_micros: i64,
}

impl<S: Storage> Engine<S> {
    /// The replicated ownership map (refined by the collections' rules for
    /// collections it has no rule of its own for).
    pub fn ownership(&self) -> &OwnershipMap {
        &self.ownership.map
    }

    /// The current ownership epoch.
    pub fn ownership_epoch(&self) -> u64 {
        self.ownership.map.epoch()
    }

    /// The configured base rule of an owned collection.
    fn base_rule(&self, collection: &Collection) -> Option<&Rule> {
        self.collections
            .get(collection)
            .and_then(|e| e.config.owned.as_ref())
            .map(|o| &o.rule)
    }

    /// True when `collection` is owned: configured so, or given a rule by the map.
    pub fn is_owned(&self, collection: &Collection) -> bool {
        self.base_rule(collection).is_some()
            || self.ownership.map.rule(collection.as_str()).is_some()
    }

    /// The home region of `key` in the owned `collection`, `None` when the
    /// collection is not owned.
    pub fn owner(
        &self,
        collection: &Collection,
        key: &[u8],
    ) -> Result<Option<RegionId>, CoreError> {
        if !self.is_owned(collection) {
            return Ok(None);
        }
        Ok(Some(self.ownership.map.owner_or(
            collection.as_str(),
            key,
            self.base_rule(collection),
        )?))
    }

    /// The epoch a local write to `key` of `collection` carries, after
    /// checking that this region may accept it: it owns the key and is not
    /// handing it over. 0 for a collection that is not owned.
    pub(crate) fn check_local_owner(
        &self,
        collection: &Collection,
        key: &[u8],
    ) -> Result<u64, CoreError> {
        let Some(owner) = self.owner(collection, key)? else {
            return Ok(0);
        };
        let epoch = self.ownership.map.epoch();
        if owner != self.config.region {
            let forward = self
                .collections
                .get(collection)
                .and_then(|e| e.config.owned.as_ref())
                .is_some_and(|o| o.forward);
            return Err(CoreError::NotOwner {
                collection: collection.clone(),
                key: key.to_vec(),
                owner,
                epoch,
                forward,
            });
        }
        if let Some(h) = self.handoffs.iter().find(|h| {
            h.status == HandoffStatus::Draining
                && h.collection == *collection
                && h.keys.iter().any(|k| k == key)
        }) {
            return Err(CoreError::HandoffInProgress {
                collection: collection.clone(),
                key: key.to_vec(),
                to: h.to,
                handoff: h.id,
            });
        }
        Ok(epoch)
    }

    /// The fence a remote write falls behind, if any: its origin was taken
    /// over, the write comes after the fence in the origin's log, and it
    /// carries an older epoch.
    pub(crate) fn fence_of(&self, w: &TaggedWrite) -> Option<&Fence> {
        if w.origin == self.config.region
            || !matches!(
                w.op,
                Op::Set(_) | Op::Delete | Op::Counter(_) | Op::Resolve { .. }
            )
        {
            return None;
        }
        self.ownership
            .map
            .fence_for(w.collection.as_str(), w.origin, w.seq, w.epoch)
    }

    /// Queues a fenced write instead of applying it.
    pub(crate) fn queue_fenced(&mut self, w: &TaggedWrite, owner: RegionId, fence_epoch: u64) {
        let value = match &w.op {
            Op::Set(v) => Some(v.clone()),
            Op::Resolve { value, .. } => value.clone(),
            _ => None,
        };
        let reason = ConflictReason::Fenced {
            owner,
            fence_epoch,
            dot: w.dot,
        };
        self.stats.fenced += 1;
        if self
            .queue
            .fenced(&w.entity(), Version::of(w, value), reason, self.clock.now())
        {
            self.stats.conflicts_opened += 1;
        }
    }

    /// Adopts `incoming` if it is newer than the current map. New fences
    /// are checked against what is already applied: a write of a fenced
    /// region past its fence that arrived before the fence did goes to the
    /// conflict queue too. Returns true when the map changed.
    pub(crate) fn adopt_ownership(&mut self, incoming: OwnershipState) -> Result<bool, CoreError> {
        let same_epoch = incoming.map.epoch() == self.ownership.map.epoch();
        if same_epoch
            && incoming.map != self.ownership.map
            && incoming.set_by != self.ownership.set_by
        {
            self.stats.ownership_conflicts += 1;
        }
        if incoming.version() <= self.ownership.version() {
            return Ok(false);
        }
        let old = std::mem::replace(&mut self.ownership, incoming);
        let new_fences: Vec<Fence> = self
            .ownership
            .map
            .fences()
            .iter()
            .filter(|f| !old.map.fences().contains(f))
            .cloned()
            .collect();
        self.ownership_changed = true;
        for fence in &new_fences {
            self.queue_applied_behind(fence)?;
        }
        Ok(true)
    }

    /// Opens a fenced item for every write `fence` covers that was applied
    /// here before the fence was known: from the fenced origin's log where
    /// it still holds them, and from state (current versions and the loser
    /// log) for what was trimmed.
    fn queue_applied_behind(&mut self, fence: &Fence) -> Result<(), CoreError> {
        let Ok(collection) = Collection::new(&fence.collection) else {
            return Ok(());
        };
        let now = self.clock.now();
        let reason = |dot| ConflictReason::Fenced {
            owner: fence.to,
            fence_epoch: fence.epoch,
            dot,
        };
        let mut found: Vec<(EntityKey, Version, Option<concord_crdt::Dot>)> = Vec::new();
        let cursor = self.cursor(fence.region);
        let mut next = fence.after_seq + 1;
        while next <= cursor {
            let chunk = match self.storage.read_log(fence.region, next, 4096) {
                Ok(chunk) => chunk,
                // Trimmed: what is left of those writes is in state.
                Err(CoreError::LogGap { .. }) => break,
                Err(e) => return Err(e),
            };
            let Some(last) = chunk.last().map(|w| w.seq) else {
                break;
            };
            for w in chunk.iter().filter(|w| w.seq <= cursor) {
                if w.collection == collection && self.fence_of_applied(w, fence) {
                    let value = match &w.op {
                        Op::Set(v) => Some(v.clone()),
                        Op::Resolve { value, .. } => value.clone(),
                        _ => None,
                    };
                    found.push((w.entity(), Version::of(w, value), w.dot));
                }
            }
            next = last + 1;
        }
        let covered = |v: &Version| v.write.origin == fence.region && v.write.seq > fence.after_seq;
        for (key, entity) in self.entities.in_collection(&collection) {
            for state in entity.states() {
                let policy = crate::entity::policy_of(state);
                for v in entity.versions(policy) {
                    if covered(v) {
                        let e = EntityKey::new(collection.clone(), key.to_vec());
                        found.push((e, v.clone(), None));
                    }
                }
            }
        }
        for l in self.losers.records() {
            if l.entity.collection == collection && covered(&l.loser) {
                found.push((l.entity.clone(), l.loser.clone(), None));
            }
        }
        // Deterministic order; the log's entry (with its dot) first.
        found.sort_by(|a, b| (&a.0, a.1.write, b.2).cmp(&(&b.0, b.1.write, a.2)));
        found.dedup_by(|a, b| a.1.write == b.1.write);
        for (entity, version, dot) in found {
            if self.queue.fenced(&entity, version, reason(dot), now) {
                self.stats.fenced_found_applied += 1;
                self.stats.conflicts_opened += 1;
            }
        }
        Ok(())
    }

    /// True when `w`, a logged write of the fenced origin, is one `fence`
    /// covers (what the receive path would have refused).
    fn fence_of_applied(&self, w: &TaggedWrite, fence: &Fence) -> bool {
        matches!(
            w.op,
            Op::Set(_) | Op::Delete | Op::Counter(_) | Op::Resolve { .. }
        ) && fence.covers(w.collection.as_str(), w.origin, w.seq, w.epoch)
    }

    /// After a new map was adopted: checkpoint, so that no write of another
    /// origin is applied under it before the map is durable with the state.
    pub(crate) fn checkpoint_if_ownership_changed(&mut self) -> Result<Vec<Outgoing>, CoreError> {
        if !self.ownership_changed {
            return Ok(Vec::new());
        }
        let out = self.checkpoint()?.outgoing;
        self.storage.finish_checkpoint()?;
        Ok(out)
    }

    /// Makes an ownership change: tags and applies the new map here.
    fn change_ownership(
        &mut self,
        collection: Collection,
        map: OwnershipMap,
    ) -> Result<Accepted, CoreError> {
        let epoch = map.epoch();
        self.tag_and_apply(
            EntityKey::new(collection, Vec::new()),
            Policy::LwwHlc,
            Op::Ownership(map),
            VersionVector::new(),
            None,
            epoch,
        )
    }

    /// The current map with the configured rules of `collections` added
    /// (they travel with the change that is about to be made).
    fn map_with_rules<'a>(
        &self,
        collections: impl IntoIterator<Item = &'a Collection>,
    ) -> Result<OwnershipMap, CoreError> {
        let mut map = self.ownership.map.clone();
        for c in collections {
            if let Some(rule) = self.base_rule(c) {
                map.ensure_rule(c.as_str(), rule)?;
            }
        }
        Ok(map)
    }

    /// Starts a planned handoff of `keys` of the owned `collection` to `to`.
    ///
    /// From now on this region refuses writes to those keys
    /// ([`CoreError::HandoffInProgress`]). Once `to` holds durably every
    /// write this region has made so far (its acks say so), [`Engine::tick`]
    /// moves the map: an ownership write, replicated after all of them, so
    /// the new owner applies every write to the keys before it accepts its
    /// own. Returns the handoff's id; see [`Engine::handoffs`].
    pub fn hand_off(
        &mut self,
        collection: &Collection,
        keys: Vec<Vec<u8>>,
        to: RegionId,
    ) -> Result<u64, CoreError> {
        if to == self.config.region {
            return Err(CoreError::InvalidOwnershipChange {
                reason: "a region cannot hand keys off to itself",
            });
        }
        if !self.peers.contains_key(&to) {
            return Err(CoreError::UnknownRegion(to));
        }
        if !self.is_owned(collection) {
            return Err(CoreError::InvalidOwnershipChange {
                reason: "the collection is not owned",
            });
        }
        if keys.is_empty() {
            return Err(CoreError::InvalidOwnershipChange {
                reason: "a handoff must name at least one key",
            });
        }
        for key in &keys {
            self.check_local_owner(collection, key)?;
        }
        let id = self.handoffs.iter().map(|h| h.id + 1).max().unwrap_or(1);
        self.handoffs.push(Handoff {
            id,
            collection: collection.clone(),
            keys,
            to,
            drain_to: self.cursor(self.config.region),
            started: self.clock.now(),
            status: HandoffStatus::Draining,
        });
        Ok(id)
    }

    /// Cancels a draining handoff: the keys accept writes here again.
    pub fn cancel_handoff(&mut self, id: u64) -> Result<(), CoreError> {
        let now = self.clock.now();
        let h = self
            .handoffs
            .iter_mut()
            .find(|h| h.id == id && h.status == HandoffStatus::Draining)
            .ok_or(CoreError::UnknownHandoff(id))?;
        h.status = HandoffStatus::Cancelled { at: now };
        Ok(())
    }

    /// Every handoff this region started, oldest first.
    pub fn handoffs(&self) -> &[Handoff] {
        &self.handoffs
    }

    /// Moves the map for every draining handoff whose new owner has caught
    /// up. Called by [`Engine::tick`].
    pub(crate) fn progress_handoffs(&mut self) -> Result<Vec<Outgoing>, CoreError> {
        let own = self.config.region;
        let ready: Vec<usize> = self
            .handoffs
            .iter()
            .enumerate()
            .filter(|(_, h)| h.status == HandoffStatus::Draining)
            .filter(|(_, h)| {
                self.peers
                    .get(&h.to)
                    .and_then(|l| l.durable.get(&own))
                    .is_some_and(|held| *held >= h.drain_to)
            })
            .map(|(i, _)| i)
            .collect();
        if ready.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        for i in ready {
            let h = self.handoffs[i].clone();
            let still_ours = h.keys.iter().all(|k| {
                self.owner(&h.collection, k)
                    .is_ok_and(|o| o == Some(self.config.region))
            });
            if !still_ours {
                self.handoffs[i].status = HandoffStatus::Aborted { at: now };
                continue;
            }
            let mut map = self.map_with_rules([&h.collection])?;
            let epoch = map.move_keys(h.collection.as_str(), h.keys.iter().cloned(), h.to)?;
            self.change_ownership(h.collection.clone(), map)?;
            self.handoffs[i].status = HandoffStatus::Completed { epoch, at: now };
        }
        self.checkpoint_if_ownership_changed()
    }

    /// Forced takeover: this region becomes the owner of every key of
    /// `from` in every owned collection, bumps the epoch and fences `from`
    /// after the last of its writes applied here.
    ///
    /// Writes of `from` past the fence that carry an older epoch are refused
    /// by every region that knows the new map, and go to its conflict queue
    /// ([`ConflictReason::Fenced`]); none is silently discarded. The change
    /// is made durable (a checkpoint) before this returns; the recorded
    /// [`FailoverEvent`] says how much of `from`'s history was at risk.
    pub fn take_over(
        &mut self,
        from: RegionId,
        reason: impl Into<String>,
    ) -> Result<(FailoverEvent, Vec<Outgoing>), CoreError> {
        let started = self.clock.now();
        if from == self.config.region {
            return Err(CoreError::InvalidOwnershipChange {
                reason: "a region cannot take over from itself",
            });
        }
        if !self.peers.contains_key(&from) {
            return Err(CoreError::UnknownRegion(from));
        }
        let mut owned: Vec<Collection> = self
            .collections
            .iter()
            .filter(|(_, e)| e.config.owned.is_some())
            .map(|(c, _)| c.clone())
            .collect();
        for c in self.ownership.map_rule_collections() {
            if let Ok(c) = Collection::new(&c)
                && !owned.contains(&c)
            {
                owned.push(c);
            }
        }
        owned.sort();
        let Some(first) = owned.first().cloned() else {
            return Err(CoreError::InvalidOwnershipChange {
                reason: "no collection is owned",
            });
        };
        let after = self.cursor(from);
        let rpo = self.rpo_of(from);
        let mut map = self.map_with_rules(&owned)?;
        let epoch = map.take_over(
            owned.iter().map(|c| c.as_str().to_owned()),
            from,
            self.config.region,
            after,
        )?;
        let accepted = self.change_ownership(first, map)?;
        let event = FailoverEvent {
            from,
            to: self.config.region,
            reason: reason.into(),
            epoch,
            started,
            completed: Some(self.clock.now()),
            fenced_after_seq: after,
            at_risk_writes: rpo.unapplied_writes,
            at_risk_micros: rpo.span_micros,
            write: accepted.write,
        };
        self.failovers.push(event.clone());
        // Durable with the event, so that both survive a restart together.
        match self.checkpoint_if_ownership_changed() {
            Ok(outgoing) => Ok((event, outgoing)),
            Err(e) => {
                if let Some(last) = self.failovers.last_mut() {
                    last.completed = None;
                }
                Err(e)
            }
        }
    }

    /// Forced takeovers this region made, oldest first.
    pub fn failover_events(&self) -> &[FailoverEvent] {
        &self.failovers
    }

    /// The recovery-point report: per origin, the writes this node has not
    /// applied and the age of the oldest. That is what a failover to this
    /// node would lose now.
    pub fn rpo(&self) -> Vec<OriginRpo> {
        let mut origins: Vec<RegionId> = self.peers.keys().copied().collect();
        for o in self.known_heads.keys() {
            if !origins.contains(o) {
                origins.push(*o);
            }
        }
        origins.sort();
        origins.into_iter().map(|o| self.rpo_of(o)).collect()
    }

    pub(crate) fn rpo_of(&self, origin: RegionId) -> OriginRpo {
        let now = self.clock.now();
        let applied_seq = self.cursor(origin);
        let applied_wall = self.applied_wall.get(&origin).copied();
        let head = self.known_heads.get(&origin).copied();
        let known_seq = head.map_or(applied_seq, |h| h.seq.max(applied_seq));
        let unapplied_writes = known_seq - applied_seq;
        if unapplied_writes == 0 {
            return OriginRpo {
                origin,
                applied_seq,
                known_seq,
                unapplied_writes,
                oldest_unapplied_micros: 0,
                oldest_exact: true,
                span_micros: 0,
            };
        }
        let next = applied_seq + 1;
        let held = self
            .held
            .get(&origin)
            .and_then(|h| h.get(&next))
            .or_else(|| self.held_future.get(&origin).filter(|w| w.seq == next))
            .map(|w| w.wall);
        let head_wall = head.map(|h| h.wall);
        let (oldest, exact) = match (held, head) {
            (Some(wall), _) => (Some(wall), true),
            (None, Some(h)) if h.seq == next => (Some(h.wall), true),
            _ => (applied_wall.or(head_wall), false),
        };
        let span_micros = match (head_wall, applied_wall) {
            (Some(h), Some(a)) => h.micros_since(a).max(0),
            (Some(h), None) => now.micros_since(h).max(0),
            _ => 0,
        };
        OriginRpo {
            origin,
            applied_seq,
            known_seq,
            unapplied_writes,
            oldest_unapplied_micros: oldest.map_or(0, |w| now.micros_since(w).max(0)),
            oldest_exact: exact,
            span_micros,
        }
    }
}

impl OwnershipState {
    /// Collections the map has a rule for.
    fn map_rule_collections(&self) -> Vec<String> {
        self.map.collections().map(str::to_owned).collect()
    }
}
