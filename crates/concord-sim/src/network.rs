//! The simulated network: one connection per pair of nodes; each batch of
//! writes gets its own random delay (so batches reorder) and a few are
//! duplicated; control messages (hello, acks, rewinds, heartbeats,
//! snapshots) keep their order on a connection, as on a gRPC stream; and
//! a "dropped" message breaks the whole connection, as a broken gRPC stream
//! would: both ends disconnect, whatever was queued on it is lost, and the
//! link reconnects later unless a partition keeps it cut.

use std::collections::BTreeMap;

use concord_core::PeerMessage;
use concord_crdt::RegionId;

use crate::{FaultRates, SimRng};

/// A message on the wire.
#[derive(Clone, Debug)]
pub(crate) struct Envelope {
    pub(crate) from: RegionId,
    pub(crate) to: RegionId,
    pub(crate) message: PeerMessage,
}

#[derive(Clone, Debug, Default)]
struct Link {
    up: bool,
    /// Bumped at every break: messages of an older generation are lost.
    generation: u64,
    /// While down: when to try to reconnect.
    retry_at: i64,
    /// Cut by a partition: no reconnecting until it heals.
    cut: bool,
    /// Per direction: when the last control message is due (they stay in order).
    control_due: BTreeMap<RegionId, i64>,
}

/// Counters of what the network did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NetStats {
    pub(crate) sent: u64,
    pub(crate) delivered: u64,
    pub(crate) duplicated: u64,
    pub(crate) breaks: u64,
    pub(crate) lost_in_breaks: u64,
}

/// Every link and every message in flight.
#[derive(Debug)]
pub(crate) struct Network {
    links: BTreeMap<(RegionId, RegionId), Link>,
    /// Messages by (delivery time, send order), with their link generation.
    wire: BTreeMap<(i64, u64), (u64, Envelope)>,
    next_id: u64,
    pub(crate) stats: NetStats,
}

fn pair(a: RegionId, b: RegionId) -> (RegionId, RegionId) {
    if a < b { (a, b) } else { (b, a) }
}

impl Network {
    /// Every pair of `regions` linked, all links down and due to connect.
    pub(crate) fn new(regions: &[RegionId]) -> Self {
        let mut links = BTreeMap::new();
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                links.insert(pair(*a, *b), Link::default());
            }
        }
        Self {
            links,
            wire: BTreeMap::new(),
            next_id: 0,
            stats: NetStats::default(),
        }
    }

    fn link(&mut self, a: RegionId, b: RegionId) -> &mut Link {
        self.links.entry(pair(a, b)).or_default()
    }

    fn delay(rng: &mut SimRng, faults: Option<&FaultRates>) -> i64 {
        let spike = faults.is_some_and(|f| rng.chance(f.delay_spike));
        let micros = if spike {
            rng.range(20_000, 250_000)
        } else {
            rng.range(1_000, 12_000)
        };
        i64::try_from(micros).unwrap_or(i64::MAX)
    }

    fn enqueue(&mut self, at: i64, generation: u64, envelope: Envelope) {
        self.next_id += 1;
        self.wire.insert((at, self.next_id), (generation, envelope));
    }

    /// Puts a message on the wire at `now`. With `faults`, it may be
    /// duplicated, delayed long, or break its connection instead: then the
    /// broken pair is returned and the caller disconnects both engines.
    pub(crate) fn put(
        &mut self,
        rng: &mut SimRng,
        faults: Option<&FaultRates>,
        now: i64,
        envelope: Envelope,
    ) -> Option<(RegionId, RegionId)> {
        let (from, to) = (envelope.from, envelope.to);
        let link = self.link(from, to);
        if !link.up {
            self.stats.lost_in_breaks += 1;
            return None;
        }
        let generation = link.generation;
        if let Some(f) = faults
            && rng.chance(f.drop)
        {
            return Some(pair(from, to));
        }
        self.stats.sent += 1;
        let mut at = now + Self::delay(rng, faults);
        let is_batch = matches!(envelope.message, PeerMessage::Batch(_));
        if !is_batch {
            let due = self.link(from, to).control_due.entry(from).or_insert(at);
            at = at.max(*due);
            *due = at;
        }
        if let Some(f) = faults
            && is_batch
            && rng.chance(f.duplicate)
        {
            self.stats.duplicated += 1;
            let again = now + Self::delay(rng, faults);
            self.enqueue(again, generation, envelope.clone());
        }
        self.enqueue(at, generation, envelope);
        None
    }

    /// The connection between `a` and `b` breaks: everything queued on it is
    /// lost; it may reconnect from `retry_at` on.
    pub(crate) fn break_link(&mut self, a: RegionId, b: RegionId, retry_at: i64) {
        let link = self.link(a, b);
        let was_up = link.up;
        link.up = false;
        link.generation += 1;
        link.retry_at = link.retry_at.max(retry_at);
        if was_up {
            self.stats.breaks += 1;
        }
    }

    /// The connection between `a` and `b` is up again.
    pub(crate) fn connected(&mut self, a: RegionId, b: RegionId) {
        self.link(a, b).up = true;
    }

    /// A partition cuts the link between `a` and `b` (the caller breaks it).
    pub(crate) fn cut(&mut self, a: RegionId, b: RegionId) {
        self.link(a, b).cut = true;
    }

    /// Every partition heals: cut links may reconnect from `retry_at` on.
    pub(crate) fn heal(&mut self, retry_at: i64) {
        for link in self.links.values_mut() {
            if link.cut {
                link.cut = false;
                link.retry_at = retry_at;
            }
        }
    }

    /// Makes every down link due to reconnect at `at` (after heal).
    pub(crate) fn retry_all(&mut self, at: i64) {
        for link in self.links.values_mut().filter(|l| !l.up) {
            link.retry_at = at;
        }
    }

    /// Down links, not cut, due to reconnect by `now`.
    pub(crate) fn due_to_reconnect(&self, now: i64) -> Vec<(RegionId, RegionId)> {
        self.links
            .iter()
            .filter(|(_, l)| !l.up && !l.cut && l.retry_at <= now)
            .map(|(p, _)| *p)
            .collect()
    }

    /// The next message due by `now`, skipping those of broken connections.
    pub(crate) fn next_due(&mut self, now: i64) -> Option<Envelope> {
        loop {
            let entry = self.wire.first_entry()?;
            if entry.key().0 > now {
                return None;
            }
            let (generation, envelope) = entry.remove();
            let link = self.link(envelope.from, envelope.to);
            if link.up && link.generation == generation {
                self.stats.delivered += 1;
                return Some(envelope);
            }
            self.stats.lost_in_breaks += 1;
        }
    }

    /// Messages in flight on live connections.
    pub(crate) fn in_flight(&self) -> impl Iterator<Item = &Envelope> + '_ {
        self.wire.values().filter_map(|(generation, envelope)| {
            self.links
                .get(&pair(envelope.from, envelope.to))
                .filter(|l| l.up && l.generation == *generation)
                .map(|_| envelope)
        })
    }
}
