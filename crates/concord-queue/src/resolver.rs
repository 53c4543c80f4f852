//! In-process resolvers: code that decides conflict-queue items.

use concord_core::ConflictItem;

use crate::QueueError;

/// A resolver's decision for one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Resolve with this value.
    Resolve(Vec<u8>),
    /// Resolve by deleting the entity.
    Delete,
    /// Leave the item to the application.
    Skip,
}

/// Decides conflict-queue items in-process.
///
/// A resolver must be deterministic: given the same item it returns the same
/// decision. Run it on one fixed region (see [`crate::RunOn`]): if every
/// region resolved the same item at once, the resolutions would themselves be
/// concurrent writes.
pub trait Resolver {
    /// A short name, for logs and errors.
    fn name(&self) -> &'static str;

    /// Decides one open item.
    fn decide(&self, item: &ConflictItem) -> Result<Decision, QueueError>;
}
