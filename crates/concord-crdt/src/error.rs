//! The one error type of this crate.

use crate::{Dot, RegionId};

/// Everything that can go wrong when merging, updating or decoding a merge type.
#[derive(Debug, thiserror::Error)]
pub enum CrdtError {
    /// Two LWW values carry the same `(timestamp, origin, seq)` but differ.
    ///
    /// Every write has a unique `(origin, seq)`, so this means a replica is
    /// corrupt or a peer lies; picking one would silently drop the other.
    #[error("two different values carry the same stamp (origin {origin}, seq {seq})")]
    StampCollision {
        /// Region of the colliding stamp.
        origin: RegionId,
        /// Sequence number of the colliding stamp.
        seq: u64,
    },

    /// Two siblings of a multi-value register carry the same dot but differ.
    #[error("two different values carry the same dot {dot}")]
    DotCollision {
        /// The dot both values claim.
        dot: Dot,
    },

    /// A remote write's dot skips dots of its region that this replica has not seen.
    ///
    /// Dots of one region reach a replica in order; a gap means an earlier
    /// write is missing, and accepting this one would hide that write forever.
    #[error("dot {dot} arrived before dot counter {expected} of the same region")]
    DotGap {
        /// The dot that arrived.
        dot: Dot,
        /// The counter this replica expects next from that region.
        expected: u64,
    },

    /// A write's seq does not fit a stamp.
    #[error("seq {seq} is beyond the largest a stamp carries ({max})")]
    SeqOutOfRange {
        /// The seq given.
        seq: u64,
        /// The largest allowed.
        max: u64,
    },

    /// A counter or vector entry would pass `u64::MAX`.
    #[error("entry of region {region} is {current}; adding {by} would pass u64::MAX")]
    Overflow {
        /// The region whose entry would overflow.
        region: RegionId,
        /// The entry's current value.
        current: u64,
        /// The amount that was to be added.
        by: u64,
    },

    /// A record was empty: not even a format-version byte.
    #[error("record is empty: expected a format-version byte")]
    EmptyRecord,

    /// A record's format-version byte is not one this build reads.
    #[error("record has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },

    /// A record's body could not be decoded (truncated, malformed or invalid).
    #[error("record body is malformed: {source}")]
    Malformed {
        /// What the decoder reported.
        #[source]
        source: Box<bincode::error::DecodeError>,
    },

    /// A record decoded but bytes were left over after it.
    #[error("record has {count} trailing bytes after its body")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },

    /// A value could not be encoded.
    #[error("value could not be encoded: {source}")]
    Encode {
        /// What the encoder reported.
        #[source]
        source: Box<bincode::error::EncodeError>,
    },
}
