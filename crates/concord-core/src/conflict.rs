//! Conflict-queue items: what no rule may decide, kept for the application.

use concord_clock::WallTime;
use concord_crdt::{Dot, RegionId};
use serde::{Deserialize, Serialize};

use crate::{EntityKey, Version, WriteRef};

/// Why an entity is in the conflict queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConflictReason {
    /// A `queue` collection received concurrent writes.
    Concurrent,
    /// An `mv` entity has more siblings than its collection allows.
    SiblingCap {
        /// The collection's limit.
        max: u32,
    },
    /// A remote write's wall timestamp was too far in the future; it is held
    /// until this region's clock catches up, or until the application resolves it.
    FutureTimestamp {
        /// How far ahead of this region's clock it was, in microseconds.
        ahead_micros: i64,
    },
    /// A write of an owned collection made by a region that had already been
    /// fenced by a forced takeover (it came after the fence and carries an
    /// older epoch). It is not applied; the application decides what to do
    /// with it, typically by resolving the item at the owner.
    Fenced {
        /// The region that took over (the key's owner after the takeover).
        owner: RegionId,
        /// The epoch of the takeover that fenced it.
        fence_epoch: u64,
        /// For `mv`/`queue`: the write's dot, which a resolution covers.
        dot: Option<Dot>,
    },
}

/// Where an item stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemStatus {
    /// Waiting for the application (or for a rule to release it).
    Open,
    /// Closed by a write: an application's resolution, or a later write whose
    /// context covered every version.
    Resolved {
        /// The write that closed it.
        by: WriteRef,
        /// When this region closed it.
        at: WallTime,
    },
    /// Closed without a resolution: a held future write was applied once this
    /// region's clock caught up.
    Released {
        /// When this region released it.
        at: WallTime,
    },
}

impl ItemStatus {
    /// True while the item waits for a decision.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Open)
    }
}

/// One item of the conflict queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictItem {
    /// This region's id for the item; ids grow with each new item.
    pub id: u64,
    /// The position of the item's last change in this region's queue (for watching).
    pub position: u64,
    /// The entity in conflict.
    pub entity: EntityKey,
    /// Why it is here.
    pub reason: ConflictReason,
    /// Every version in conflict.
    pub versions: Vec<Version>,
    /// When this region opened it.
    pub opened: WallTime,
    /// Open, resolved or released.
    pub status: ItemStatus,
}
