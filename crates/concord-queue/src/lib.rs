//! Concord's application-level conflict queue.
//!
//! What no merge rule may decide — concurrent writes to a `queue`
//! collection, an `mv` entity past its sibling cap, a write stamped too far
//! in the future — waits in a durable queue beside the entity state, in the
//! node's one database, changed in the same atomic step as the apply that
//! caused it. This crate is the queue's API over the engine:
//!
//! - [`list`], [`get`] and [`Watch`] (at-least-once, from a position);
//! - [`resolve`]: a resolution write whose context dominates every version in
//!   conflict; it replicates like any write and each region closes its own item;
//! - in-process [`Resolver`]s, bound to a collection and run on one region
//!   ([`run_resolvers`]): [`SumDeltas`] for inventory-style adjustments,
//!   [`PickByField`] to pick by a field of JSON values;
//! - [`Retention`] and [`purge`]; [`depth`] is the queue-depth metric.

mod error;
mod pick_by_field;
mod queue;
mod resolver;
mod sum_deltas;
pub mod testing;

pub use error::QueueError;
pub use pick_by_field::{PickByField, Prefer};
pub use queue::{
    Binding, ListFilter, Purged, Retention, RunOn, RunReport, Watch, depth, get, list, purge,
    resolve, run_resolvers,
};
pub use resolver::{Decision, Resolver};
pub use sum_deltas::SumDeltas;
