//! The storage the engine persists through, and the records it stores.

use concord_clock::WallTime;
use concord_crdt::RegionId;
use serde::{Deserialize, Serialize};

use crate::{
    Collection, CollectionConfig, ConflictItem, CoreError, Entity, EntityKey, TaggedWrite, Version,
    WriteRef,
};

/// Consecutive writes of one origin: `writes[i].seq == first_seq + i`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBatch {
    /// The origin of every write in the batch.
    pub origin: RegionId,
    /// The writes, in seq order with no gaps.
    pub writes: Vec<TaggedWrite>,
}

impl WriteBatch {
    /// Seq of the first write (0 for an empty batch).
    pub fn first_seq(&self) -> u64 {
        self.writes.first().map_or(0, |w| w.seq)
    }

    /// Seq of the last write (0 for an empty batch).
    pub fn last_seq(&self) -> u64 {
        self.writes.last().map_or(0, |w| w.seq)
    }

    /// True when every write is of `origin` and the seqs are consecutive.
    pub fn is_well_formed(&self) -> bool {
        self.writes.iter().all(|w| w.origin == self.origin)
            && self
                .writes
                .windows(2)
                .all(|p| p[0].seq.checked_add(1) == Some(p[1].seq))
    }
}

/// The first and last seq an origin's log holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBounds {
    /// Lowest seq still held.
    pub first: u64,
    /// Highest seq held.
    pub last: u64,
}

/// A version that lost under an LWW policy: the loser log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoserRecord {
    /// This region's id for the record; ids grow.
    pub id: u64,
    /// The entity.
    pub entity: EntityKey,
    /// The version that lost.
    pub loser: Version,
    /// The write that beat it.
    pub winner: WriteRef,
    /// When this region recorded it.
    pub at: WallTime,
}

/// A collection's configuration with the stamp of the change that set it
/// (the newest change wins everywhere, like an `lww-hlc` value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionEntry {
    /// The collection.
    pub collection: Collection,
    /// Its configuration.
    pub config: CollectionConfig,
    /// The stamp of the change that set it (`None`: from the node's config file).
    pub set_by: Option<(concord_clock::HlcTime, WriteRef)>,
}

/// Small engine state that a checkpoint stores whole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineMeta {
    /// Collections changed at runtime (those from the config file are not here).
    pub collections: Vec<CollectionEntry>,
    /// The id the next conflict item gets.
    pub next_item_id: u64,
    /// The queue position of the last change.
    pub queue_position: u64,
    /// The id the next loser record gets.
    pub next_loser_id: u64,
    /// The replicated ownership map, with the stamp of the change that set
    /// it (`None`: no change was ever made; owners come from the
    /// collections' rules).
    #[serde(default)]
    pub ownership: Option<crate::OwnershipState>,
    /// Forced takeovers this region made, oldest first.
    #[serde(default)]
    pub failovers: Vec<crate::FailoverEvent>,
    /// Handoffs this region started, oldest first.
    #[serde(default)]
    pub handoffs: Vec<crate::Handoff>,
    /// Per origin, the origin wall time of the newest write applied here
    /// (for lag and data at risk after a restart).
    #[serde(default)]
    pub applied_walls: Vec<(RegionId, WallTime)>,
}

/// The change a checkpoint makes, applied atomically and durably.
///
/// Entity states, queue items and loser records are as of `cursors`: the
/// engine replays the log past them on restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointDelta {
    /// Per origin, the highest seq the states reflect (the full set).
    pub cursors: Vec<(RegionId, u64)>,
    /// Entities whose state changed since the last checkpoint (shared with
    /// the engine's memory: a store reads them, and the engine copies a
    /// state it changes only while a checkpoint still holds it).
    pub entities: Vec<(EntityKey, std::sync::Arc<Entity>)>,
    /// Queue items that changed.
    pub queue: Vec<ConflictItem>,
    /// Queue items purged.
    pub queue_removed: Vec<u64>,
    /// New loser records.
    pub losers: Vec<LoserRecord>,
    /// Loser records with an id at or below this are purged.
    pub losers_purged_through: Option<u64>,
    /// Engine metadata (whole).
    pub meta: EngineMeta,
}

/// Everything the last checkpoint holds, loaded on start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Per origin, the highest seq the states reflect.
    pub cursors: Vec<(RegionId, u64)>,
    /// Every entity.
    pub entities: Vec<(EntityKey, Entity)>,
    /// Every queue item not purged.
    pub queue: Vec<ConflictItem>,
    /// Every loser record not purged.
    pub losers: Vec<LoserRecord>,
    /// Engine metadata.
    pub meta: EngineMeta,
}

/// Durable storage for one node: per-origin logs and checkpoints.
///
/// The log is the write-ahead record. A local or remote write is appended,
/// and once [`Storage::sync`] returns it survives a crash: that is when a
/// client may be acknowledged. Entity state, cursors, the conflict queue and
/// the loser log are checkpointed from memory now and then; on restart the
/// engine loads the checkpoint and replays the log past its cursors, so state,
/// cursors and queue always change together.
///
/// Two implementations pass one conformance suite: [`crate::MemoryStorage`]
/// (for the simulator, with a crash that drops what was not synced) and the
/// sled store of `concord-store`.
pub trait Storage {
    /// Appends batches to their origins' logs: all or nothing. Not yet durable.
    ///
    /// Each batch must be well formed and continue its origin's log (its
    /// first seq is one past the log's last, or the log is empty); otherwise
    /// nothing is appended and the error says why.
    fn append(&mut self, batches: Vec<WriteBatch>) -> Result<(), CoreError>;

    /// Makes every append so far durable: one flush covers many appends
    /// (group commit).
    fn sync(&mut self) -> Result<(), CoreError>;

    /// Up to `limit` writes of `origin` from seq `from` on, in order.
    ///
    /// Empty when `from` is past the log's end; [`CoreError::LogGap`] when
    /// `from` was trimmed away.
    fn read_log(
        &self,
        origin: RegionId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<TaggedWrite>, CoreError>;

    /// For each origin with a non-empty log, the seqs it holds.
    fn log_bounds(&self) -> Result<Vec<(RegionId, LogBounds)>, CoreError>;

    /// Drops `origin`'s writes with seq at or below `through` (whole storage
    /// records only; a record that straddles `through` stays). A store that
    /// writes checkpoints in the background finishes the one in flight
    /// first: the log past a checkpoint that is not durable is never trimmed.
    fn trim_log(&mut self, origin: RegionId, through: u64) -> Result<(), CoreError>;

    /// Applies a checkpoint delta atomically and durably.
    ///
    /// A store may write it in the background and return at once: then
    /// every later call behaves as if it were done (the next checkpoint,
    /// a trim and a load wait for it; a crash before it is durable leaves
    /// the previous checkpoint whole, and the log past it), and a failure
    /// is returned by the next call that waits.
    fn checkpoint(&mut self, delta: CheckpointDelta) -> Result<(), CoreError>;

    /// True while a checkpoint is being written in the background. The
    /// engine trims its logs only when none is, so routine trimming never
    /// waits for one.
    fn checkpoint_in_flight(&mut self) -> Result<bool, CoreError> {
        Ok(false)
    }

    /// Waits until the last checkpoint is durable (for a store that writes
    /// them in the background; others have nothing to wait for).
    fn finish_checkpoint(&mut self) -> Result<(), CoreError> {
        Ok(())
    }

    /// Loads the whole last checkpoint (empty on a new store).
    fn load_checkpoint(&self) -> Result<Checkpoint, CoreError>;

    /// An estimate of the bytes the store uses on disk (0 when unknown).
    fn size_on_disk(&self) -> u64 {
        0
    }
}

/// Checks that `batches` may be appended after logs ending at `last_of`.
pub(crate) fn check_append(
    batches: &[WriteBatch],
    mut last_of: impl FnMut(RegionId) -> Option<u64>,
) -> Result<(), CoreError> {
    let mut pending: Vec<(RegionId, u64)> = Vec::new();
    for b in batches {
        if b.writes.is_empty() {
            continue;
        }
        if !b.is_well_formed() {
            return Err(CoreError::Backend(format!(
                "batch of {} is not consecutive writes of that origin",
                b.origin
            )));
        }
        let last = match pending.iter().find(|(o, _)| *o == b.origin) {
            Some((_, l)) => Some(*l),
            None => last_of(b.origin),
        };
        let expected = last.map_or(b.first_seq(), |l| l + 1);
        if b.first_seq() != expected {
            return Err(CoreError::LogGap {
                origin: b.origin,
                seq: b.first_seq(),
                first: expected,
                last: last.unwrap_or(0),
            });
        }
        match pending.iter_mut().find(|(o, _)| *o == b.origin) {
            Some(p) => p.1 = b.last_seq(),
            None => pending.push((b.origin, b.last_seq())),
        }
    }
    Ok(())
}
