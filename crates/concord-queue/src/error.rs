//! The one error type of this crate.

/// What the conflict queue can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The engine refused the resolution (unknown or closed item, size limit, ...).
    #[error("engine: {0}")]
    Engine(#[from] concord_core::CoreError),

    /// A version's value could not be read the way the resolver needs.
    #[error("item {item}: version {write} cannot be read by resolver {resolver}: {reason}")]
    Unreadable {
        /// The item.
        item: u64,
        /// The version's write, as `region#seq`.
        write: String,
        /// The resolver.
        resolver: &'static str,
        /// What was wrong.
        reason: String,
    },

    /// Summing the versions would overflow an `i64`.
    #[error("item {item}: the sum of its versions overflows")]
    Overflow {
        /// The item.
        item: u64,
    },
}
