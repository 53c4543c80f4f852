//! A snapshot of one node's replicated state, taken after heal: what the
//! invariant checkers compare (and what their tests doctor).

use std::collections::{BTreeMap, BTreeSet};

use concord_core::{ConflictReason, Engine, Entity, EntityKey, Storage, WriteRef};
use concord_crdt::RegionId;

/// Why a conflict-queue item is open, without node-local details (the
/// `ahead_micros` of a future timestamp depends on the node's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReasonKind {
    /// Concurrent writes to a `queue` entity.
    Concurrent,
    /// An `mv` entity over its sibling cap.
    SiblingCap(u32),
    /// A remote write held because its timestamp is in the future.
    FutureTimestamp,
    /// A write of a region fenced by a takeover.
    Fenced,
}

impl From<&ConflictReason> for ReasonKind {
    fn from(reason: &ConflictReason) -> Self {
        match reason {
            ConflictReason::Concurrent => Self::Concurrent,
            ConflictReason::SiblingCap { max } => Self::SiblingCap(*max),
            ConflictReason::FutureTimestamp { .. } => Self::FutureTimestamp,
            ConflictReason::Fenced { .. } => Self::Fenced,
        }
    }
}

/// An open conflict-queue item as compared across nodes: item ids and
/// times are node-local, the reason and the versions are not.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpenItem {
    /// Why it is open.
    pub reason: ReasonKind,
    /// The writes in conflict, sorted.
    pub versions: Vec<WriteRef>,
}

/// One node's state after heal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeView {
    /// The node.
    pub region: RegionId,
    /// Every entity and its state.
    pub entities: BTreeMap<EntityKey, Entity>,
    /// Open conflict-queue items by entity, sorted.
    pub open_items: BTreeMap<EntityKey, Vec<OpenItem>>,
    /// Every write named by any conflict item (open or closed), by entity.
    pub queued: BTreeSet<(EntityKey, WriteRef)>,
    /// Every write in the loser log, by entity.
    pub losers: BTreeSet<(EntityKey, WriteRef)>,
    /// The node's durable cursors.
    pub durable: BTreeMap<RegionId, u64>,
}

impl NodeView {
    /// An empty view of `region` (for building doctored states in tests).
    pub fn empty(region: RegionId) -> Self {
        Self {
            region,
            ..Self::default()
        }
    }

    /// The snapshot of `engine`.
    pub fn of<S: Storage>(engine: &Engine<S>) -> Self {
        let mut view = Self::empty(engine.region());
        view.entities = engine
            .entities()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for item in engine.conflicts() {
            for v in &item.versions {
                view.queued.insert((item.entity.clone(), v.write));
            }
            if item.status.is_open() {
                let mut versions: Vec<WriteRef> = item.versions.iter().map(|v| v.write).collect();
                versions.sort();
                view.open_items
                    .entry(item.entity.clone())
                    .or_default()
                    .push(OpenItem {
                        reason: ReasonKind::from(&item.reason),
                        versions,
                    });
            }
        }
        for items in view.open_items.values_mut() {
            items.sort();
        }
        view.losers = engine
            .losers()
            .map(|l| (l.entity.clone(), l.loser.write))
            .collect();
        view.durable = engine.durable_cursors().into_iter().collect();
        view
    }
}
