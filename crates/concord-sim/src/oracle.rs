//! The client oracle: every write a client was told was accepted, which of
//! them were acknowledged (a commit made them durable at their origin), and
//! what the origin logged for each.

use std::collections::BTreeMap;

use concord_clock::{HlcTime, WallTime};
use concord_core::{EntityKey, Op, Policy, Storage, TaggedWrite, WriteRef};
use concord_crdt::{Dot, PnTotals, RegionId, VersionVector};

use crate::{Invariant, Violation};

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Set the value.
    Put(Vec<u8>),
    /// Delete the entity.
    Delete,
    /// Add to a counter (negative subtracts).
    Add(i64),
    /// Resolve a conflict-queue item.
    Resolve {
        /// The value chosen (`None` deletes).
        value: Option<Vec<u8>>,
        /// The writes of the item resolved, in the item's order.
        resolves: Vec<WriteRef>,
    },
}

impl Request {
    /// The value a non-counter write stores (`Some(None)`: a tombstone);
    /// `None` for a counter add.
    pub fn stored_value(&self) -> Option<Option<&[u8]>> {
        match self {
            Self::Put(v) => Some(Some(v)),
            Self::Delete => Some(None),
            Self::Resolve { value, .. } => Some(value.as_deref()),
            Self::Add(_) => None,
        }
    }
}

/// What the origin logged for a write, read back from its log once durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// The write's dot (`mv`/`queue`).
    pub dot: Option<Dot>,
    /// The causal context it carries.
    pub context: VersionVector,
    /// Its HLC stamp.
    pub hlc: HlcTime,
    /// Its wall stamp.
    pub wall: WallTime,
}

/// One write the oracle knows of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleWrite {
    /// Its identity, as the engine returned it.
    pub write: WriteRef,
    /// The entity written.
    pub entity: EntityKey,
    /// The collection's policy.
    pub policy: Policy,
    /// What the client asked for.
    pub request: Request,
    /// The context the client passed (`None`: a blind write).
    pub client_context: Option<VersionVector>,
    /// When it was accepted, in client operations since the start.
    pub accepted_at: u64,
    /// When the context it carries was read (in client operations): at
    /// `accepted_at` for a fresh read, a resolution or a blind write,
    /// earlier for a context a client remembered.
    pub context_at: u64,
    /// `lww-hlc`: the current version the node showed just before the write
    /// (within its drift bound), which the write must be stamped after.
    pub seen: Option<(WriteRef, HlcTime)>,
    /// Counter adds: the origin's running totals for the entity after this
    /// write, summed by the oracle over the origin's surviving adds.
    pub totals: Option<PnTotals>,
    /// True once a commit report acknowledged it.
    pub acked: bool,
    /// What the origin logged, once durable.
    pub logged: Option<Logged>,
}

/// A write a client submitted and the engine accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// Its identity, as the engine returned it.
    pub write: WriteRef,
    /// The entity written.
    pub entity: EntityKey,
    /// The collection's policy.
    pub policy: Policy,
    /// What the client asked for.
    pub request: Request,
    /// The context the client passed (`None`: a blind write).
    pub client_context: Option<VersionVector>,
    /// The client operation number of the write.
    pub op: u64,
    /// The client operation number of the read its context came from.
    pub context_op: u64,
    /// `lww-hlc`: the version the node showed as current just before the
    /// write, when its stamp was within the node's drift bound.
    pub seen: Option<(WriteRef, HlcTime)>,
}

/// Every accepted write that has not been lost, by `(origin, seq)`.
#[derive(Clone, Debug, Default)]
pub struct Oracle {
    writes: BTreeMap<WriteRef, OracleWrite>,
    acked_through: BTreeMap<RegionId, u64>,
    totals: BTreeMap<(RegionId, EntityKey), PnTotals>,
    lost: u64,
}

fn add_delta(mut t: PnTotals, delta: i64) -> PnTotals {
    if delta >= 0 {
        t.incremented = t.incremented.saturating_add(delta.unsigned_abs());
    } else {
        t.decremented = t.decremented.saturating_add(delta.unsigned_abs());
    }
    t
}

impl Oracle {
    /// An oracle that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client was told its write was accepted.
    pub fn accepted(&mut self, s: Submission) -> Result<(), Violation> {
        let Submission {
            write,
            entity,
            policy,
            request,
            client_context,
            op,
            context_op,
            seen,
        } = s;
        if let Some(old) = self.writes.get(&write) {
            return Err(Violation::new(
                Invariant::AckedWrites,
                format!(
                    "the engine accepted {write} twice (first {:?} on {}, acked: {})",
                    old.request, old.entity, old.acked
                ),
            )
            .at(write.origin)
            .on(&entity));
        }
        let totals = match request {
            Request::Add(delta) => {
                let slot = self
                    .totals
                    .entry((write.origin, entity.clone()))
                    .or_default();
                *slot = add_delta(*slot, delta);
                Some(*slot)
            }
            _ => None,
        };
        self.insert(OracleWrite {
            write,
            entity,
            policy,
            request,
            client_context,
            accepted_at: op,
            context_at: context_op,
            seen,
            totals,
            acked: false,
            logged: None,
        });
        Ok(())
    }

    /// Adds a fully formed record (for checker tests).
    pub fn insert(&mut self, write: OracleWrite) {
        self.writes.insert(write.write, write);
    }

    /// A commit at `origin` reported `local_durable`: every write of it up to
    /// there is acknowledged. Reads each newly durable write back from the
    /// origin's log and checks it is what the client asked for. Returns how
    /// many writes were newly acknowledged.
    pub fn committed<S: Storage>(
        &mut self,
        origin: RegionId,
        local_durable: u64,
        storage: &S,
    ) -> Result<usize, Violation> {
        let from = self.acked_through.get(&origin).copied().unwrap_or(0) + 1;
        if local_durable < from {
            return Ok(0);
        }
        let want = usize::try_from(local_durable - from + 1).unwrap_or(usize::MAX);
        let logged = storage.read_log(origin, from, want).map_err(|e| {
            Violation::new(
                Invariant::EngineError,
                format!("reading {origin}'s log from {from}: {e}"),
            )
            .at(origin)
        })?;
        if logged.len() != want {
            return Err(Violation::new(
                Invariant::AckedWrites,
                format!(
                    "commit acknowledged through seq {local_durable} but the log holds {} of the {want} writes from seq {from}",
                    logged.len()
                ),
            )
            .at(origin));
        }
        for w in &logged {
            let Some(record) = self.writes.get_mut(&w.write_ref()) else {
                return Err(Violation::new(
                    Invariant::AckedWrites,
                    format!("the log holds {}, which no client wrote", w.write_ref()),
                )
                .at(origin)
                .on(&w.entity()));
            };
            check_logged(record, w)?;
            record.logged = Some(Logged {
                dot: w.dot,
                context: w.context.clone(),
                hlc: w.hlc,
                wall: w.wall,
            });
            record.acked = true;
        }
        self.acked_through.insert(origin, local_durable);
        Ok(logged.len())
    }

    /// `origin` restarted after a crash with its own cursor at `cursor`:
    /// writes past it were lost. None of them may have been acknowledged.
    /// Returns how many (unacknowledged) writes were lost.
    pub fn restarted(&mut self, origin: RegionId, cursor: u64) -> Result<usize, Violation> {
        let past: Vec<WriteRef> = self
            .writes
            .range(
                WriteRef {
                    origin,
                    seq: cursor + 1,
                }..=WriteRef {
                    origin,
                    seq: u64::MAX,
                },
            )
            .map(|(k, _)| *k)
            .collect();
        if let Some(acked) = past.iter().find(|w| self.writes[w].acked) {
            let record = &self.writes[acked];
            return Err(Violation::new(
                Invariant::AckedWrites,
                format!(
                    "acknowledged write {acked} ({:?}) was lost in a crash: the node restarted with its own cursor at {cursor}",
                    record.request
                ),
            )
            .at(origin)
            .on(&record.entity));
        }
        for w in &past {
            self.writes.remove(w);
        }
        self.lost += u64::try_from(past.len()).unwrap_or(u64::MAX);
        // Rebuild the origin's counter totals from its surviving adds.
        self.totals.retain(|(o, _), _| *o != origin);
        for w in self.writes.values().filter(|w| w.write.origin == origin) {
            if let Request::Add(delta) = w.request {
                let slot = self.totals.entry((origin, w.entity.clone())).or_default();
                *slot = add_delta(*slot, delta);
            }
        }
        Ok(past.len())
    }

    /// True when `origin` has a write on `entity` not yet acknowledged (a
    /// read there may show it, and a crash may still lose it).
    pub fn unacked_on(&self, origin: RegionId, entity: &EntityKey) -> bool {
        let from = self.acked_through.get(&origin).copied().unwrap_or(0) + 1;
        self.writes
            .range(
                WriteRef { origin, seq: from }..=WriteRef {
                    origin,
                    seq: u64::MAX,
                },
            )
            .any(|(_, w)| w.entity == *entity)
    }

    /// Every surviving write, by `(origin, seq)`.
    pub fn writes(&self) -> impl Iterator<Item = &OracleWrite> + '_ {
        self.writes.values()
    }

    /// One write.
    pub fn get(&self, write: WriteRef) -> Option<&OracleWrite> {
        self.writes.get(&write)
    }

    /// How many surviving writes were acknowledged.
    pub fn acked(&self) -> usize {
        self.writes.values().filter(|w| w.acked).count()
    }

    /// Surviving writes not (yet) acknowledged.
    pub fn unacked(&self) -> Vec<WriteRef> {
        self.writes
            .values()
            .filter(|w| !w.acked)
            .map(|w| w.write)
            .collect()
    }

    /// How many accepted, never acknowledged writes crashes lost.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

/// Checks that the origin logged what the client asked for.
fn check_logged(record: &OracleWrite, w: &TaggedWrite) -> Result<(), Violation> {
    let fail = |what: String| {
        Err(Violation::new(
            Invariant::AckedWrites,
            format!("{} was logged wrong: {what}", record.write),
        )
        .at(record.write.origin)
        .on(&record.entity))
    };
    if w.entity() != record.entity {
        return fail(format!(
            "entity {} instead of {}",
            w.entity(),
            record.entity
        ));
    }
    if w.policy != record.policy {
        return fail(format!("policy {} instead of {}", w.policy, record.policy));
    }
    let op_ok = match (&record.request, &w.op) {
        (Request::Put(v), Op::Set(logged)) => v == logged,
        (Request::Delete, Op::Delete) => true,
        (Request::Add(_), Op::Counter(t)) => Some(*t) == record.totals,
        (
            Request::Resolve { value, resolves },
            Op::Resolve {
                value: v,
                resolves: r,
            },
        ) => value == v && resolves == r,
        _ => false,
    };
    if !op_ok {
        return fail(format!(
            "op {:?} for request {:?} (oracle totals {:?})",
            w.op, record.request, record.totals
        ));
    }
    if matches!(record.request, Request::Put(_) | Request::Delete) {
        let expected = record.client_context.clone().unwrap_or_default();
        if w.context != expected {
            return fail(format!(
                "context {:?} instead of the client's {expected:?}",
                w.context
            ));
        }
    }
    let wants_dot = matches!(record.policy, Policy::Mv | Policy::Queue);
    if w.dot.is_some() != wants_dot {
        return fail(format!("dot {:?} under policy {}", w.dot, record.policy));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use concord_core::Collection;

    use super::*;

    fn entity() -> EntityKey {
        EntityKey::new(Collection::new("counter").unwrap(), "k")
    }

    fn add(seq: u64, delta: i64) -> Submission {
        Submission {
            write: at(seq),
            entity: entity(),
            policy: Policy::Counter,
            request: Request::Add(delta),
            client_context: None,
            op: seq,
            context_op: seq,
            seen: None,
        }
    }

    fn at(seq: u64) -> WriteRef {
        WriteRef {
            origin: RegionId::new(1),
            seq,
        }
    }

    #[test]
    fn a_lost_acknowledged_write_is_a_violation_and_lost_unacked_ones_are_dropped() {
        let mut o = Oracle::new();
        for seq in 1..=3 {
            o.accepted(add(seq, 5)).unwrap();
        }
        // Pretend seq 1 was acknowledged.
        o.writes.get_mut(&at(1)).unwrap().acked = true;
        assert_eq!(o.restarted(RegionId::new(1), 1).unwrap(), 2);
        assert_eq!(o.writes().count(), 1);
        // Totals were rebuilt from the survivor: the next add continues from 5.
        o.accepted(add(2, -2)).unwrap();
        assert_eq!(
            o.get(at(2)).unwrap().totals,
            Some(PnTotals {
                incremented: 5,
                decremented: 2
            })
        );
        let err = o.restarted(RegionId::new(1), 0).unwrap_err();
        assert_eq!(err.invariant, Invariant::AckedWrites);
    }

    #[test]
    fn accepting_the_same_write_twice_is_a_violation() {
        let mut o = Oracle::new();
        o.accepted(add(1, 1)).unwrap();
        assert!(o.accepted(add(1, 1)).is_err());
    }
}
