//! The peer protocol: what the engine does with peer messages, and what it sends.

use concord_clock::SkewVerdict;
use concord_crdt::RegionId;

use crate::engine::{Outgoing, PeerLink, Source};
use crate::peer_message::Head;
use crate::{CoreError, Engine, Op, PeerMessage, Storage, TaggedWrite, Version, WriteBatch};

impl<S: Storage> Engine<S> {
    fn link(&mut self, peer: RegionId) -> Result<&mut PeerLink, CoreError> {
        self.peers
            .get_mut(&peer)
            .ok_or(CoreError::UnknownRegion(peer))
    }

    /// A connection to `peer` is up: returns the hello to send it.
    pub fn connect(&mut self, peer: RegionId) -> Result<Vec<Outgoing>, CoreError> {
        let durable = self.durable_cursors();
        let link = self.link(peer)?;
        link.connected = true;
        link.greeted = false;
        link.in_flight = 0;
        Ok(vec![Outgoing {
            to: peer,
            message: PeerMessage::Hello {
                region: self.config.region,
                durable,
            },
        }])
    }

    /// The connection to `peer` is down: stop sending to it.
    pub fn disconnect(&mut self, peer: RegionId) -> Result<(), CoreError> {
        let link = self.link(peer)?;
        link.connected = false;
        link.greeted = false;
        link.in_flight = 0;
        Ok(())
    }

    /// Handles one message from `from`. Returns what to send back.
    ///
    /// Remote writes are applied in each origin's seq order: a seq already
    /// applied is a counted duplicate; a seq past a gap is held until the gap
    /// fills; a write stamped beyond the max skew is held (and queued, if the
    /// collection says so) until this region's clock catches up. A batch
    /// that mixes origins or skips seqs is refused whole.
    ///
    /// A newer ownership map (in a write or a snapshot) is adopted and
    /// checkpointed before this returns.
    pub fn receive(
        &mut self,
        from: RegionId,
        message: PeerMessage,
    ) -> Result<Vec<Outgoing>, CoreError> {
        let mut out = self.receive_message(from, message)?;
        out.extend(self.checkpoint_if_ownership_changed()?);
        Ok(out)
    }

    fn receive_message(
        &mut self,
        from: RegionId,
        message: PeerMessage,
    ) -> Result<Vec<Outgoing>, CoreError> {
        let now = self.clock.now();
        self.link(from)?.last_heard = Some(now);
        match message {
            PeerMessage::Hello { region, durable } => {
                if region != from {
                    return Err(CoreError::PeerViolation {
                        peer: from,
                        reason: format!("connection of {from} says hello as {region}"),
                    });
                }
                let link = self.link(from)?;
                link.connected = true;
                link.greeted = true;
                link.needs_snapshot = false;
                link.in_flight = 0;
                // The hello opens the connection: what the peer holds now is
                // what it says, even below what it acknowledged before (it
                // may have lost its disk). Streaming restarts from there.
                link.durable = durable.iter().copied().collect();
                link.sent = link.durable.clone();
                // The peer holds own writes this node lost: stop writing, and
                // ask for a snapshot that brings them back.
                let own = self.config.region;
                let peers_hold = durable
                    .iter()
                    .find(|(o, _)| *o == own)
                    .map_or(0, |(_, s)| *s);
                if peers_hold > self.cursor(own) {
                    self.own_writes_behind =
                        Some(self.own_writes_behind.unwrap_or(0).max(peers_hold));
                    return Ok(vec![Outgoing {
                        to: from,
                        message: PeerMessage::SnapshotRequest,
                    }]);
                }
                Ok(Vec::new())
            }
            PeerMessage::Batch(batch) => self.receive_batch(from, batch),
            PeerMessage::Ack {
                applied,
                durable,
                batches,
            } => {
                let link = self.link(from)?;
                for (o, s) in applied {
                    let e = link.applied.entry(o).or_default();
                    *e = (*e).max(s);
                }
                for (o, s) in durable {
                    let e = link.durable.entry(o).or_default();
                    *e = (*e).max(s);
                    // Never stream again what the peer already holds durably.
                    let sent = link.sent.entry(o).or_default();
                    *sent = (*sent).max(s);
                }
                link.in_flight = link.in_flight.saturating_sub(batches);
                Ok(Vec::new())
            }
            PeerMessage::Rewind { origin, from: seq } => {
                let link = self.link(from)?;
                // A rewind may be stale: never below what the peer has
                // since reported durable.
                let floor = link.durable.get(&origin).copied().unwrap_or(0);
                let sent = link.sent.entry(origin).or_default();
                *sent = (*sent).min(seq.saturating_sub(1)).max(floor);
                Ok(Vec::new())
            }
            PeerMessage::Snapshot {
                cursors,
                entities,
                collections,
                ownership,
            } => self.receive_snapshot(from, cursors, entities, collections, ownership),
            PeerMessage::SnapshotRequest => {
                self.link(from)?.needs_snapshot = true;
                Ok(Vec::new())
            }
            PeerMessage::Heartbeat { heads, .. } => {
                for head in heads {
                    self.learn_head(head);
                }
                Ok(Vec::new())
            }
        }
    }

    fn learn_head(&mut self, head: Head) {
        if head.origin == self.config.region {
            return;
        }
        let known = self.known_heads.entry(head.origin).or_insert(head);
        if head.seq > known.seq {
            *known = head;
        }
    }

    fn receive_batch(
        &mut self,
        from: RegionId,
        batch: WriteBatch,
    ) -> Result<Vec<Outgoing>, CoreError> {
        if !batch.is_well_formed() {
            self.stats.batches_refused += 1;
            return Err(CoreError::PeerViolation {
                peer: from,
                reason: format!(
                    "batch of {} holds writes of another origin or skips seqs",
                    batch.origin
                ),
            });
        }
        let origin = batch.origin;
        if let Some(last) = batch.writes.last() {
            self.learn_head(Head {
                origin,
                seq: last.seq,
                wall: last.wall,
            });
        }
        let mut logged = Vec::new();
        if origin != self.config.region {
            let mut rest = batch.writes.into_iter();
            while !rest.as_slice().is_empty() {
                // The next writes' entities, read into the cache together.
                let ahead = rest.as_slice();
                let n = ahead.len().min(Self::WARM_AHEAD);
                self.entities
                    .warm(ahead[..n].iter().map(|w| (&w.collection, &w.key[..])));
                for w in rest.by_ref().take(n) {
                    self.offer(w, &mut logged)?;
                }
            }
            self.drain(origin, &mut logged)?;
            if !logged.is_empty() {
                self.storage.append(vec![WriteBatch {
                    origin,
                    writes: logged,
                }])?;
            }
        } else {
            // Our own writes, relayed back: we have them all.
            self.stats.duplicates += u64::try_from(batch.writes.len()).unwrap_or(0);
        }
        Ok(vec![Outgoing {
            to: from,
            message: PeerMessage::Ack {
                applied: self.cursors(),
                durable: self.durable_cursors(),
                batches: 1,
            },
        }])
    }

    /// Takes one remote write: apply it, hold it, or count it as a duplicate.
    fn offer(&mut self, w: TaggedWrite, logged: &mut Vec<TaggedWrite>) -> Result<(), CoreError> {
        let origin = w.origin;
        let cursor = self.cursor(origin);
        let held = self.held.entry(origin).or_default();
        if w.seq <= cursor
            || held.contains_key(&w.seq)
            || self
                .held_future
                .get(&origin)
                .is_some_and(|f| f.seq == w.seq)
        {
            self.stats.duplicates += 1;
            return Ok(());
        }
        if w.seq > cursor + 1 || self.held_future.contains_key(&origin) {
            if held.len() < self.config.max_held_per_origin {
                held.insert(w.seq, w);
                self.stats.gaps_held += 1;
            } else {
                self.stats.gaps_dropped += 1;
                let from = self.rewind.entry(origin).or_insert(w.seq);
                *from = (*from).min(w.seq);
            }
            return Ok(());
        }
        self.apply_next(w, logged)
    }

    /// Applies held writes of `origin` that are now next in line.
    fn drain(&mut self, origin: RegionId, logged: &mut Vec<TaggedWrite>) -> Result<(), CoreError> {
        while !self.held_future.contains_key(&origin) {
            let next = self.cursor(origin) + 1;
            let Some(w) = self.held.get_mut(&origin).and_then(|h| h.remove(&next)) else {
                break;
            };
            self.apply_next(w, logged)?;
        }
        // Anything at or below the cursor left in the buffer is stale.
        let cursor = self.cursor(origin);
        if let Some(h) = self.held.get_mut(&origin) {
            h.retain(|seq, _| *seq > cursor);
        }
        Ok(())
    }

    /// Applies `w`, the next write of its origin, unless its timestamp is too
    /// far in the future, in which case it is held.
    fn apply_next(
        &mut self,
        w: TaggedWrite,
        logged: &mut Vec<TaggedWrite>,
    ) -> Result<(), CoreError> {
        if !matches!(w.op, Op::Withheld) {
            let verdict = self.skew_verdict(w.wall);
            // Only a timestamp ahead of ours moves the clock; the rest are
            // already ordered before our next event.
            let drift_ok = w.hlc <= self.hlc.last() || self.hlc.update(w.hlc).is_ok();
            if let SkewVerdict::BeyondMaxSkew { ahead_by, .. } = verdict {
                return self
                    .hold_future(w, i64::try_from(ahead_by.as_micros()).unwrap_or(i64::MAX));
            }
            if !drift_ok {
                let ahead = w.wall.micros_since(self.clock.now());
                return self.hold_future(w, ahead);
            }
        }
        self.apply_logged(&w, Source::Remote)?;
        logged.push(w);
        Ok(())
    }

    fn hold_future(&mut self, w: TaggedWrite, ahead_micros: i64) -> Result<(), CoreError> {
        self.stats.future_held += 1;
        let queue_it = self
            .collections
            .get(&w.collection)
            .is_none_or(|e| e.config.skew_action == crate::SkewAction::Queue);
        if queue_it && !matches!(w.op, Op::Configure(_)) {
            let version = Version::of(
                &w,
                match &w.op {
                    Op::Set(v) => Some(v.clone()),
                    Op::Resolve { value, .. } => value.clone(),
                    _ => None,
                },
            );
            if self
                .queue
                .future(&w.entity(), version, ahead_micros, self.clock.now())
            {
                self.stats.conflicts_opened += 1;
            }
        }
        self.held_future.insert(w.origin, w);
        Ok(())
    }

    /// Applies held future writes whose time has come; returns how many.
    fn release_future(&mut self) -> Result<usize, CoreError> {
        let ready: Vec<RegionId> = self
            .held_future
            .iter()
            .filter(|(_, w)| matches!(self.skew_verdict(w.wall), SkewVerdict::Acceptable))
            .map(|(o, _)| *o)
            .collect();
        for origin in &ready {
            let Some(w) = self.held_future.remove(origin) else {
                continue;
            };
            let mut logged = Vec::new();
            let write_ref = w.write_ref();
            self.apply_next(w, &mut logged)?;
            if !logged.is_empty() {
                self.stats.future_released += 1;
                if self.queue.release_future(write_ref, self.clock.now()) {
                    self.stats.conflicts_closed += 1;
                }
            }
            self.drain(*origin, &mut logged)?;
            if !logged.is_empty() {
                self.storage.append(vec![WriteBatch {
                    origin: *origin,
                    writes: logged,
                }])?;
            }
        }
        Ok(ready.len())
    }

    /// Batches to send now: for each connected peer and origin, the durable
    /// writes past what the peer has, within the flow-control window.
    ///
    /// A write of a collection the peer may not see goes as a withheld
    /// placeholder. A placeholder this node holds is never relayed to a peer
    /// that may see the write: that peer gets it from its origin.
    pub fn poll(&mut self) -> Result<Vec<Outgoing>, CoreError> {
        let mut out = Vec::new();
        let peers: Vec<RegionId> = self
            .peers
            .iter()
            .filter(|(_, l)| l.connected && l.greeted && !l.needs_snapshot)
            .map(|(p, _)| *p)
            .collect();
        let now = self.clock.now();
        for peer in peers {
            let origins: Vec<(RegionId, u64)> = self.durable_cursors();
            for (origin, durable) in origins {
                if origin == peer {
                    continue;
                }
                loop {
                    let link = self.link(peer)?;
                    let sent = link.sent.get(&origin).copied().unwrap_or(0);
                    if link.in_flight >= self.config.max_in_flight || sent >= durable {
                        break;
                    }
                    if sent < self.trimmed.get(&origin).copied().unwrap_or(0) {
                        // The peer needs writes this node no longer logs.
                        self.link(peer)?.needs_snapshot = true;
                        break;
                    }
                    let want = usize::try_from(durable - sent)
                        .unwrap_or(usize::MAX)
                        .min(self.config.max_batch_writes);
                    let writes = match self.storage.read_log(origin, sent + 1, want) {
                        Ok(w) => w,
                        // Trimmed past what the peer needs: it needs a snapshot.
                        Err(CoreError::LogGap { .. }) => {
                            self.link(peer)?.needs_snapshot = true;
                            break;
                        }
                        // A record this node cannot read: its writes are in
                        // state, so the peer gets them by a snapshot.
                        Err(CoreError::CorruptRecord { .. }) => {
                            self.stats.corrupt_records += 1;
                            self.link(peer)?.needs_snapshot = true;
                            break;
                        }
                        Err(e) => return Err(e),
                    };
                    let mut batch = Vec::with_capacity(writes.len());
                    for w in writes {
                        // Ownership changes go everywhere, whatever the
                        // residency of the collection they name.
                        let allowed = matches!(w.op, Op::Ownership(_))
                            || self
                                .collections
                                .get(&w.collection)
                                .is_none_or(|e| e.config.replication.allows(peer));
                        match (allowed, matches!(w.op, Op::Withheld)) {
                            (true, true) => break,
                            (true, false) | (false, true) => batch.push(w),
                            (false, false) => {
                                self.stats.withheld += 1;
                                batch.push(w.withheld());
                            }
                        }
                    }
                    let Some(last) = batch.last().map(|w| w.seq) else {
                        break;
                    };
                    let link = self.link(peer)?;
                    link.sent.insert(origin, last);
                    link.in_flight += 1;
                    link.last_sent = Some(now);
                    out.push(Outgoing {
                        to: peer,
                        message: PeerMessage::Batch(WriteBatch {
                            origin,
                            writes: batch,
                        }),
                    });
                }
            }
        }
        // Peers found behind this node's trimmed log get a snapshot now.
        out.extend(self.snapshots()?);
        Ok(out)
    }

    /// Time passes: releases held future writes, asks for resends of dropped
    /// writes, sends heartbeats to idle peers, updates lag, moves the map of
    /// handoffs whose new owner has caught up, and checkpoints when enough
    /// has been applied (or a new ownership map was adopted).
    pub fn tick(&mut self) -> Result<Vec<Outgoing>, CoreError> {
        let now = self.clock.now();
        self.release_future()?;
        let mut out = self.checkpoint_if_ownership_changed()?;
        out.extend(self.progress_handoffs()?);
        let connected: Vec<RegionId> = self
            .peers
            .iter()
            .filter(|(_, l)| l.connected)
            .map(|(p, _)| *p)
            .collect();
        for (origin, from) in std::mem::take(&mut self.rewind) {
            for peer in &connected {
                out.push(Outgoing {
                    to: *peer,
                    message: PeerMessage::Rewind { origin, from },
                });
            }
        }
        let heads: Vec<Head> = self
            .durable
            .iter()
            .map(|(o, s)| Head {
                origin: *o,
                seq: *s,
                wall: self.applied_wall.get(o).copied().unwrap_or(now),
            })
            .collect();
        let every = self.config.heartbeat_every;
        for peer in &connected {
            let link = self.link(*peer)?;
            let idle = link.last_sent.is_none_or(|t| {
                now.micros_since(t) >= i64::try_from(every.as_micros()).unwrap_or(i64::MAX)
            });
            if idle {
                link.last_sent = Some(now);
                out.push(Outgoing {
                    to: *peer,
                    message: PeerMessage::Heartbeat {
                        heads: heads.clone(),
                        now,
                    },
                });
            }
        }
        let origins: Vec<RegionId> = self.lag.keys().copied().collect();
        for origin in origins {
            let applied = (self.cursor(origin), self.applied_wall.get(&origin).copied());
            let head = self
                .known_heads
                .get(&origin)
                .map_or((applied.0, applied.1.unwrap_or(now)), |h| (h.seq, h.wall));
            if let Some(t) = self.lag.get_mut(&origin) {
                t.observe(now, head, applied);
            }
        }
        // A checkpoint still being written in the background postpones the
        // next one to a later tick, rather than stalling this thread on it.
        if self.since_checkpoint >= self.config.checkpoint_every
            && !self.storage.checkpoint_in_flight()?
        {
            out.extend(self.checkpoint()?.outgoing);
        }
        self.trim_logs()?;
        Ok(out)
    }
}
