//! The one error type of this crate.

use std::fmt;

use concord_crdt::RegionId;
use serde::{Deserialize, Serialize};

/// Why a [`Rule`](crate::Rule) is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleDefect {
    /// A modulo rule lists no regions.
    NoRegions,
    /// A hash-range rule lists no ranges.
    NoRanges,
    /// The upper bound at `index` is not strictly greater than the one before it.
    UnsortedBounds {
        /// Position of the offending range in the list.
        index: usize,
    },
    /// The last upper bound is not `u64::MAX`, so some hashes have no range.
    LastBoundNotMax {
        /// The last upper bound given.
        last: u64,
    },
}

impl fmt::Display for RuleDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRegions => f.write_str("modulo rule lists no regions"),
            Self::NoRanges => f.write_str("hash-range rule lists no ranges"),
            Self::UnsortedBounds { index } => {
                write!(
                    f,
                    "upper bound of range {index} is not above the previous one"
                )
            }
            Self::LastBoundNotMax { last } => {
                write!(f, "last upper bound is {last}, not u64::MAX")
            }
        }
    }
}

/// Everything that can go wrong when resolving, changing or merging ownership.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipError {
    /// A modulo rule got a key that is not a decimal `u64`.
    #[error("key {key:?} is not a decimal u64")]
    NotAnInteger {
        /// The key, as given.
        key: Vec<u8>,
    },

    /// A rule is malformed and cannot assign owners.
    #[error("invalid rule: {defect}")]
    InvalidRule {
        /// What is wrong with it.
        defect: RuleDefect,
    },

    /// A table rule has no entry for the key and no default.
    #[error("no owner for key {key:?}: not in the table and no default")]
    NoOwner {
        /// The key, as given.
        key: Vec<u8>,
    },

    /// The map has no rule for the collection.
    #[error("no ownership rule for collection {collection:?}")]
    UnknownCollection {
        /// The collection asked about.
        collection: String,
    },

    /// Two replicas of the map carry the same epoch but different content.
    ///
    /// Epochs must be bumped by one authority at a time; two different maps
    /// at one epoch means two regions changed ownership concurrently, and
    /// picking either would let replicas disagree about who owns a key.
    #[error("two different ownership maps carry epoch {epoch}")]
    EpochConflict {
        /// The epoch both maps claim.
        epoch: u64,
    },

    /// A write was made under an older ownership epoch than the current one.
    #[error("write under epoch {write_epoch} is fenced: current epoch is {current}")]
    Fenced {
        /// The epoch the write was made under.
        write_epoch: u64,
        /// The map's current epoch.
        current: u64,
    },

    /// A region was asked to take over its own keys.
    #[error("region {region} cannot take over from itself")]
    SelfTakeover {
        /// The region.
        region: RegionId,
    },

    /// A takeover named no collection.
    #[error("a takeover must name at least one collection")]
    NothingToTakeOver,

    /// The epoch cannot be bumped past `u64::MAX`.
    #[error("ownership epoch is at u64::MAX and cannot be bumped")]
    EpochOverflow,
}
