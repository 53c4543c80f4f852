//! What a successful run did, in numbers.

use std::fmt;

use concord_core::Stats;

/// A summary of one run that kept every invariant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Nodes in the cluster.
    pub nodes: u16,
    /// Fault-phase steps.
    pub steps: u32,
    /// Client writes accepted (resolutions included; lost ones included).
    pub writes: u64,
    /// Writes acknowledged to the client (durable at their origin).
    pub acked: u64,
    /// Accepted, never acknowledged writes a crash lost.
    pub lost_unacked: u64,
    /// Conflict-queue items resolved by a client.
    pub resolves: u64,
    /// Explicit checkpoints.
    pub checkpoints: u64,
    /// Group commits.
    pub commits: u64,
    /// Messages put on the wire.
    pub messages: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Connections broken (drops, partitions, crashes).
    pub connection_breaks: u64,
    /// Partitions.
    pub partitions: u64,
    /// Node crashes.
    pub crashes: u64,
    /// True when one node's clock ran far in the future.
    pub future_node: bool,
    /// The engines' decision counters, summed over nodes and restarts.
    pub stats: Stats,
    /// Conflict-queue items still open after heal (at the first node).
    pub open_conflicts: u64,
    /// Simulated time of the whole run, microseconds.
    pub sim_micros: i64,
    /// Simulated time from heal to quiescence, microseconds.
    pub heal_micros: i64,
}

/// Adds `b`'s counters to `a`'s.
pub(crate) fn add_stats(a: &mut Stats, b: &Stats) {
    a.local_writes += b.local_writes;
    a.remote_applied += b.remote_applied;
    a.duplicates += b.duplicates;
    a.gaps_held += b.gaps_held;
    a.gaps_dropped += b.gaps_dropped;
    a.future_held += b.future_held;
    a.future_released += b.future_released;
    a.unknown_collection += b.unknown_collection;
    a.wrong_op_kind += b.wrong_op_kind;
    a.merge_refused += b.merge_refused;
    a.batches_refused += b.batches_refused;
    a.lww_losers += b.lww_losers;
    a.losers_evicted += b.losers_evicted;
    a.conflicts_opened += b.conflicts_opened;
    a.conflicts_closed += b.conflicts_closed;
    a.withheld += b.withheld;
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed={} nodes={} writes={} acked={} lost-unacked={} resolves={} \
             msgs={} dup={} breaks={} partitions={} crashes={} future-node={} \
             losers={} conflicts={} held-future={} gaps={} open={} heal={}ms",
            self.seed,
            self.nodes,
            self.writes,
            self.acked,
            self.lost_unacked,
            self.resolves,
            self.messages,
            self.duplicated,
            self.connection_breaks,
            self.partitions,
            self.crashes,
            self.future_node,
            self.stats.lww_losers,
            self.stats.conflicts_opened,
            self.stats.future_held,
            self.stats.gaps_held,
            self.open_conflicts,
            self.heal_micros / 1000,
        )
    }
}
