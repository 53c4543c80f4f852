//! Messages between the engines of two regions.

use concord_clock::WallTime;
use concord_crdt::RegionId;
use serde::{Deserialize, Serialize};

use crate::{CollectionEntry, Entity, EntityKey, WriteBatch};

/// Per origin, the highest seq a node has (applied, or durable).
pub type Cursors = Vec<(RegionId, u64)>;

/// What one origin's newest write is, as far as the sender knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The origin.
    pub origin: RegionId,
    /// Its highest seq the sender holds.
    pub seq: u64,
    /// That write's wall time at the origin.
    pub wall: WallTime,
}

/// A message from one engine to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Sent on connect: who I am and what I have durably applied, so the peer
    /// streams everything past it.
    Hello {
        /// The sender's region.
        region: RegionId,
        /// The sender's durable cursors.
        durable: Cursors,
    },
    /// Writes of one origin, consecutive.
    Batch(WriteBatch),
    /// What the sender has applied and made durable (answers batches; also
    /// sent after each group commit). Frees flow-control credit.
    Ack {
        /// Applied (in memory) cursors.
        applied: Cursors,
        /// Durable cursors: what survives a crash of the sender.
        durable: Cursors,
        /// How many batches this acknowledges.
        batches: u32,
    },
    /// Resend `origin`'s writes from `from`: the receiver dropped some.
    Rewind {
        /// The origin to resend.
        origin: RegionId,
        /// The first seq wanted.
        from: u64,
    },
    /// The sender's whole durable state, for a peer that needs writes the
    /// sender has already trimmed from its log. Merging it is safe to repeat.
    Snapshot {
        /// The cursors the state reflects.
        cursors: Cursors,
        /// Every entity's state.
        entities: Vec<(EntityKey, Entity)>,
        /// Collections changed at runtime.
        collections: Vec<CollectionEntry>,
        /// The sender's ownership map (`None`: never changed).
        ownership: Option<crate::OwnershipState>,
    },
    /// Asks the peer for a snapshot: this node holds less of its own writes
    /// than the peer does (it lost its disk), so it must not write again
    /// until the snapshot restores them.
    SnapshotRequest,
    /// Sent when idle: the sender's newest known write of every origin, and
    /// its clock, so lag is known without traffic.
    Heartbeat {
        /// The sender's heads.
        heads: Vec<Head>,
        /// The sender's wall clock when it sent this.
        now: WallTime,
    },
}
