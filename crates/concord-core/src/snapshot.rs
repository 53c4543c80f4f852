//! Log trimming, and state snapshots for peers behind the trim point.

use concord_crdt::RegionId;

use crate::engine::Outgoing;
use crate::{CoreError, Engine, Entity, EntityKey, PeerMessage, Policy, Storage};

impl<S: Storage> Engine<S> {
    /// Trims each origin's log through the highest seq that every peer holds
    /// durably and that this node's last checkpoint covers. A peer that never
    /// reported keeps everything.
    pub(crate) fn trim_logs(&mut self) -> Result<(), CoreError> {
        if self.storage.checkpoint_in_flight()? {
            // The next tick trims: it covers everything up to its cursors.
            return Ok(());
        }
        let origins: Vec<(RegionId, u64)> = self.durable_cursors();
        for (origin, durable) in origins {
            let peers_hold = self
                .peers
                .iter()
                .filter(|(p, _)| **p != origin)
                .map(|(_, l)| l.durable.get(&origin).copied().unwrap_or(0))
                .min()
                .unwrap_or(durable);
            let checkpointed = self.checkpointed.get(&origin).copied().unwrap_or(0);
            let through = peers_hold.min(checkpointed).min(durable);
            if through > self.trimmed.get(&origin).copied().unwrap_or(0) {
                self.storage.trim_log(origin, through)?;
                self.trimmed.insert(origin, through);
            }
        }
        Ok(())
    }

    /// Snapshots for the peers that need one: commits first, so the
    /// snapshot holds only durable state, then sends every entity.
    pub(crate) fn snapshots(&mut self) -> Result<Vec<Outgoing>, CoreError> {
        let needy: Vec<RegionId> = self
            .peers
            .iter()
            .filter(|(_, l)| l.connected && l.greeted && l.needs_snapshot)
            .map(|(p, _)| *p)
            .collect();
        if needy.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = self.commit()?.outgoing;
        let cursors = self.durable_cursors();
        let entities: Vec<(EntityKey, Entity)> =
            self.entities.iter().map(|(k, e)| (k, e.clone())).collect();
        let collections: Vec<_> = self
            .collections
            .values()
            .filter(|e| e.set_by.is_some())
            .cloned()
            .collect();
        let ownership = self
            .ownership
            .set_by
            .is_some()
            .then(|| self.ownership.clone());
        for peer in needy {
            if let Some(link) = self.peers.get_mut(&peer) {
                link.needs_snapshot = false;
                for (origin, seq) in &cursors {
                    if *origin != peer {
                        link.sent.insert(*origin, *seq);
                    }
                }
                link.in_flight += 1;
            }
            self.stats.snapshots_sent += 1;
            out.push(Outgoing {
                to: peer,
                message: PeerMessage::Snapshot {
                    cursors: cursors.clone(),
                    entities: entities.clone(),
                    collections: collections.clone(),
                    ownership: ownership.clone(),
                },
            });
        }
        Ok(out)
    }

    /// Merges a peer's snapshot: every entity state joins ours, cursors move
    /// up to the snapshot's, the result is checkpointed, and the logs of the
    /// origins whose cursor jumped are emptied (their writes are in state now,
    /// and the next ones continue from the new cursor).
    pub(crate) fn receive_snapshot(
        &mut self,
        from: RegionId,
        cursors: Vec<(RegionId, u64)>,
        entities: Vec<(EntityKey, Entity)>,
        collections: Vec<crate::CollectionEntry>,
        ownership: Option<crate::OwnershipState>,
    ) -> Result<Vec<Outgoing>, CoreError> {
        // Check every merge first, so a contradicting snapshot changes nothing.
        let mut merged = Vec::with_capacity(entities.len());
        for (key, theirs) in entities {
            let mut mine = self
                .entities
                .get(&key.collection, &key.key)
                .cloned()
                .unwrap_or_default();
            let losers = mine.merge(&theirs).map_err(|e| CoreError::PeerViolation {
                peer: from,
                reason: format!("snapshot state of {key} contradicts ours: {e}"),
            })?;
            merged.push((key, mine, losers));
        }
        let now = self.clock.now();
        for (key, entity, losers) in merged {
            for (loser, winner) in losers {
                self.stats.lww_losers += 1;
                if self.losers.push(key.clone(), loser, winner, now) {
                    self.stats.losers_evicted += 1;
                }
            }
            let versions: Vec<crate::Version> = entity
                .versions(Policy::Queue)
                .into_iter()
                .cloned()
                .collect();
            self.entities.insert(key.clone(), entity);
            if versions.len() > 1 && self.queue.concurrent(&key, versions, now) {
                self.stats.conflicts_opened += 1;
            }
        }
        for entry in collections {
            let newer = self
                .collections
                .get(&entry.collection)
                .is_none_or(|e| e.set_by < entry.set_by);
            if newer {
                self.collections.insert(entry.collection.clone(), entry);
            }
        }
        if let Some(state) = ownership {
            self.adopt_ownership(state)?;
        }
        let mut jumped = Vec::new();
        for (origin, seq) in cursors {
            if seq > self.cursor(origin) {
                self.applied.insert(origin, seq);
                jumped.push((origin, seq));
                if let Some(h) = self.held.get_mut(&origin) {
                    h.retain(|s, _| *s > seq);
                }
            }
        }
        self.stats.snapshots_received += 1;
        if self
            .own_writes_behind
            .is_some_and(|hold| self.cursor(self.config.region) >= hold)
        {
            self.own_writes_behind = None;
        }
        let mut out = self.checkpoint()?.outgoing;
        for (origin, seq) in jumped {
            self.storage.trim_log(origin, seq)?;
            self.trimmed.insert(origin, seq);
        }
        out.push(Outgoing {
            to: from,
            message: PeerMessage::Ack {
                applied: self.cursors(),
                durable: self.durable_cursors(),
                batches: 1,
            },
        });
        Ok(out)
    }
}
