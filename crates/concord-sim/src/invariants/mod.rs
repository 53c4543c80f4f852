//! The invariants a run must keep, one per file. Acknowledged writes,
//! replica equality and the same winner are checked on snapshots after heal,
//! HLC causality on the oracle's records; cursor monotonicity is watched
//! after every step.

pub mod acked_writes;
pub mod causal_hlc;
pub mod cursors_monotone;
pub mod replicas_equal;
pub mod same_winner;

#[cfg(test)]
pub(crate) mod test_support;

use crate::{NodeView, Oracle, Violation};

/// Checks the after-heal invariants, most serious first: acknowledged
/// writes accounted for, replicas equal, same winner everywhere, HLC
/// causality.
pub fn check_after_heal(views: &[NodeView], oracle: &Oracle) -> Result<(), Violation> {
    acked_writes::check(views, oracle)?;
    replicas_equal::check(views)?;
    same_winner::check(views)?;
    causal_hlc::check(oracle)?;
    Ok(())
}
