//! The one error type of this crate.

use concord_crdt::{CrdtError, RegionId};

use crate::{Collection, Policy};

/// Everything the engine or a storage can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A collection name is empty, too long, or has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid collection name {name:?}: {reason}")]
    InvalidCollection {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A key or value is larger than the configured limit.
    #[error("{what} is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Which part was too large ("key" or "value").
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The collection is not configured on this node.
    #[error("unknown collection {0}")]
    UnknownCollection(Collection),

    /// The operation does not fit the collection's policy (an increment on an LWW collection, ...).
    #[error("{op} is not allowed on collection {collection}, whose policy is {policy}")]
    WrongOpKind {
        /// The collection.
        collection: Collection,
        /// Its policy.
        policy: Policy,
        /// The operation that was refused.
        op: &'static str,
    },

    /// A merge type refused the write (overflow, a collision of identities, ...).
    #[error("merge refused: {0}")]
    Merge(#[from] CrdtError),

    /// The local hybrid logical clock could not produce or accept a timestamp.
    #[error("clock: {0}")]
    Clock(#[from] concord_clock::ClockError),

    /// The region is not one this node knows.
    #[error("unknown region {0}")]
    UnknownRegion(RegionId),

    /// A conflict-queue item does not exist (or was purged).
    #[error("no conflict item {0}")]
    UnknownConflict(u64),

    /// A conflict-queue item is already resolved.
    #[error("conflict item {0} is already resolved")]
    ConflictClosed(u64),

    /// A stored record could not be decoded.
    #[error("corrupt record {what} at {location}: {source}")]
    CorruptRecord {
        /// The kind of record.
        what: &'static str,
        /// Where it was found (a key, described).
        location: String,
        /// What the decoder said.
        #[source]
        source: CrdtError,
    },

    /// A peer sent something no correct peer sends (writes of another origin
    /// in a batch, a batch that is not consecutive, ...). Nothing of it was applied.
    #[error("peer {peer} violated the protocol: {reason}")]
    PeerViolation {
        /// The peer.
        peer: RegionId,
        /// What it did.
        reason: String,
    },

    /// This node holds fewer of its own writes than a peer does (its storage
    /// was lost or replaced); it accepts writes again once a peer's snapshot
    /// restores them, so that no seq is given twice.
    #[error(
        "region {region} is rebuilding: peers hold its writes up to seq {peers_hold}, it holds {holds}"
    )]
    Rebuilding {
        /// This region.
        region: RegionId,
        /// The highest own seq a peer holds.
        peers_hold: u64,
        /// The highest own seq this node holds.
        holds: u64,
    },

    /// The key belongs to another region in an owned collection: the node
    /// forwards the write to `owner` when `forward` is set, or refuses it
    /// naming the owner.
    #[error(
        "{collection} key {key:?} is owned by region {owner} (ownership epoch {epoch}), not this region"
    )]
    NotOwner {
        /// The collection.
        collection: Collection,
        /// The key.
        key: Vec<u8>,
        /// The region that owns it.
        owner: RegionId,
        /// The ownership epoch this node decided under.
        epoch: u64,
        /// The collection asks for writes to be forwarded to the owner.
        forward: bool,
    },

    /// The key is being handed over to another region: writes wait until
    /// the handoff completes (then they go to `to`) or is cancelled.
    #[error("{collection} key {key:?} is being handed over to region {to} (handoff {handoff})")]
    HandoffInProgress {
        /// The collection.
        collection: Collection,
        /// The key.
        key: Vec<u8>,
        /// The region it moves to.
        to: RegionId,
        /// The handoff's id.
        handoff: u64,
    },

    /// A handoff id this node does not know, or one no longer draining.
    #[error("no draining handoff {0}")]
    UnknownHandoff(u64),

    /// A handoff or takeover that cannot be made.
    #[error("invalid ownership change: {reason}")]
    InvalidOwnershipChange {
        /// Why.
        reason: &'static str,
    },

    /// The ownership map refused a lookup or a change.
    #[error("ownership: {0}")]
    Ownership(#[from] concord_ownership::OwnershipError),

    /// A blind write (no context) to a multi-value entity that already holds
    /// its collection's cap of siblings: read the entity and write back with
    /// its context instead (that replaces the siblings it covers).
    #[error(
        "{collection} key {key:?} already holds {siblings} siblings (the cap is {max}): read it and write back with its context"
    )]
    SiblingLimit {
        /// The collection.
        collection: Collection,
        /// The key.
        key: Vec<u8>,
        /// Live siblings now.
        siblings: usize,
        /// The collection's cap.
        max: u32,
    },

    /// A counter would pass the range of its totals.
    #[error("counter total would overflow")]
    CounterOverflow,

    /// The storage backend failed (I/O, database error).
    #[error("storage backend: {0}")]
    Backend(String),

    /// The log of an origin does not hold the requested writes (trimmed or never written).
    #[error("log of {origin} does not hold seq {seq} (it holds {first}..={last})")]
    LogGap {
        /// The origin whose log was read.
        origin: RegionId,
        /// The seq that was asked for.
        seq: u64,
        /// First seq held.
        first: u64,
        /// Last seq held.
        last: u64,
    },
}
