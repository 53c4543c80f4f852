//! Deterministic simulation of Concord engines.
//!
//! [`Sim`] drives N engines ([`concord_core::Engine`] over
//! [`concord_core::MemoryStorage`]) from one `u64` seed: a network that
//! delays, reorders and duplicates messages, breaks connections and
//! partitions nodes; clocks with skew (sometimes one far in the future);
//! crashes that keep only what was synced. Clients write at random nodes and
//! an [`Oracle`] records every acknowledged write. After the fault phase
//! everything heals; once the cluster is quiescent the invariants in
//! [`invariants`] are checked. A failed run returns a [`Violation`] that
//! names the invariant, node, entity and seed.
//!
//! ```
//! use concord_sim::{Sim, SimConfig};
//! let report = Sim::new(SimConfig::new(7).with_steps(60))?.run()?;
//! assert_eq!(report.seed, 7);
//! assert!(report.acked <= report.writes);
//! # Ok::<(), concord_sim::Violation>(())
//! ```

mod config;
pub mod invariants;
mod network;
mod node;
mod node_view;
mod oracle;
pub mod ownership;
mod report;
mod rng;
mod sim;
mod violation;
mod workload;

pub use config::{FaultRates, SimConfig};
pub use node_view::{NodeView, OpenItem, ReasonKind};
pub use oracle::{Logged, Oracle, OracleWrite, Request, Submission};
pub use report::Report;
pub use rng::SimRng;
pub use sim::{Sim, run_seed};
pub use violation::{Invariant, Violation};
pub use workload::{COLLECTIONS, KEYS};
