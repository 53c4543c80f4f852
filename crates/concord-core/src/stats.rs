//! Counters of every decision the engine makes.

use serde::{Deserialize, Serialize};

/// How many times each decision was taken since the engine opened.
///
/// Every refused, held, filtered or duplicated write is counted here, so bad
/// input is visible in metrics instead of vanishing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Writes accepted from local clients.
    pub local_writes: u64,
    /// Remote writes applied.
    pub remote_applied: u64,
    /// Remote writes skipped because they were already applied.
    pub duplicates: u64,
    /// Remote writes that arrived ahead of a missing seq and were held.
    pub gaps_held: u64,
    /// Remote writes dropped because the out-of-order buffer was full (resent later).
    pub gaps_dropped: u64,
    /// Remote writes held because their wall time was beyond the max skew.
    pub future_held: u64,
    /// Held future writes applied once the local clock caught up.
    pub future_released: u64,
    /// Remote writes to a collection this node does not configure (applied
    /// under the policy they carry).
    pub unknown_collection: u64,
    /// Writes whose op did not fit their policy: logged, never applied.
    pub wrong_op_kind: u64,
    /// Writes a merge type refused (collisions, gaps, overflow): logged, never applied.
    pub merge_refused: u64,
    /// Batches refused whole (a peer sent writes of another origin, or not consecutive).
    pub batches_refused: u64,
    /// Versions that lost under an LWW policy (each goes to the loser log).
    pub lww_losers: u64,
    /// Loser records evicted from the bounded loser log.
    pub losers_evicted: u64,
    /// Conflict-queue items opened.
    pub conflicts_opened: u64,
    /// Conflict-queue items closed (resolved or released).
    pub conflicts_closed: u64,
    /// Writes withheld from a peer by a residency or local-only rule.
    pub withheld: u64,
    /// State snapshots sent to peers behind this node's trimmed log.
    pub snapshots_sent: u64,
    /// State snapshots received and merged.
    pub snapshots_received: u64,
    /// Remote writes refused because a takeover fenced their origin: each
    /// went to the conflict queue.
    pub fenced: u64,
    /// Writes found applied here when their fence was learned (they arrived
    /// first): each went to the conflict queue too.
    pub fenced_found_applied: u64,
    /// Ownership maps received with the same epoch as ours but other content
    /// (two regions changed ownership at once); the newer stamp won.
    pub ownership_conflicts: u64,
    /// Log records found corrupt while streaming to a peer (that peer gets a
    /// snapshot instead).
    pub corrupt_records: u64,
}
