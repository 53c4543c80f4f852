//! The tagged write: what leaves the region that accepted a write.

use concord_clock::{HlcTime, WallTime};
use concord_crdt::{Dot, PnTotals, RegionId, VersionVector};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Collection, CollectionConfig, EntityKey, Policy};

/// The identity of a write within its origin's log: `(origin, seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WriteRef {
    /// The region that accepted the write.
    pub origin: RegionId,
    /// Its position in the origin's log.
    pub seq: u64,
}

impl std::fmt::Display for WriteRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.origin, self.seq)
    }
}

/// What a write does to its entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Set the value.
    Set(#[serde(with = "crate::serde_bytes")] Vec<u8>),
    /// Delete the entity (a tombstone that takes part in resolution).
    Delete,
    /// The origin's running totals for a counter entity (not a delta).
    Counter(PnTotals),
    /// An application's resolution of queued conflicts on this entity: the
    /// new value (`None` deletes) and the writes it resolves.
    Resolve {
        /// The resolved value; `None` deletes the entity.
        #[serde(with = "crate::serde_bytes::option")]
        value: Option<Vec<u8>>,
        /// Every conflicting write this resolution decides.
        resolves: Vec<WriteRef>,
    },
    /// A change of the collection's configuration (replicated like a write).
    Configure(CollectionConfig),
    /// A change of the ownership map (a handoff or a takeover): the whole
    /// new map. Replicated to every region whatever the collection's
    /// residency, and merged by epoch.
    Ownership(concord_ownership::OwnershipMap),
    /// A placeholder for a write this region may not see (residency or
    /// local-only): it keeps the origin's seqs gapless, carries no data, and
    /// changes no state.
    Withheld,
}

impl Op {
    /// A short name, for errors and metrics.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Set(_) => "set",
            Self::Delete => "delete",
            Self::Counter(_) => "counter",
            Self::Resolve { .. } => "resolve",
            Self::Configure(_) => "configure",
            Self::Ownership(_) => "ownership",
            Self::Withheld => "withheld",
        }
    }
}

/// A write as it leaves the region that accepted it (see `proto/concord.proto`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggedWrite {
    /// UUID v7, unique per write.
    pub id: Uuid,
    /// The region that accepted it.
    pub origin: RegionId,
    /// The origin's log position: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// HLC timestamp at the origin.
    pub hlc: HlcTime,
    /// Origin wall clock.
    pub wall: WallTime,
    /// The entity's collection.
    pub collection: Collection,
    /// The entity's key.
    #[serde(with = "crate::serde_bytes")]
    pub key: Vec<u8>,
    /// What the writer had seen of this entity.
    pub context: VersionVector,
    /// The ownership epoch the origin believed in (0 when not owned).
    pub epoch: u64,
    /// The policy the origin accepted the write under; every region applies it
    /// the same way, whatever its own configuration says at that moment.
    pub policy: Policy,
    /// For `mv` and `queue`: the write's dot for this entity.
    pub dot: Option<Dot>,
    /// What the write does.
    pub op: Op,
}

impl TaggedWrite {
    /// `(origin, seq)`.
    pub fn write_ref(&self) -> WriteRef {
        WriteRef {
            origin: self.origin,
            seq: self.seq,
        }
    }

    /// The placeholder sent instead of this write to a region that may not see it.
    pub fn withheld(&self) -> Self {
        Self {
            id: self.id,
            origin: self.origin,
            seq: self.seq,
            hlc: self.hlc,
            wall: self.wall,
            collection: self.collection.clone(),
            key: Vec::new(),
            context: VersionVector::new(),
            epoch: self.epoch,
            policy: self.policy,
            dot: None,
            op: Op::Withheld,
        }
    }

    /// The entity written.
    pub fn entity(&self) -> EntityKey {
        EntityKey::new(self.collection.clone(), self.key.clone())
    }

    /// A UUID v7 for write `seq` of `origin` at `wall`: the time prefix makes
    /// ids sortable by time, and `(origin, seq)` in the random bits makes them
    /// unique without a random number generator (the engine stays deterministic).
    pub fn make_id(origin: RegionId, seq: u64, wall: WallTime) -> Uuid {
        let millis = u64::try_from(wall.as_millis()).unwrap_or(0);
        // The builder overwrites the high nibble of rand[0] (version) and the
        // high two bits of rand[2] (variant): keep the origin and the low 40
        // bits of seq clear of them, and put seq's next 18 bits around them.
        let high = seq >> 40;
        let mut rand = [0u8; 10];
        rand[0] = ((high >> 14) & 0x0f) as u8;
        rand[1] = ((high >> 6) & 0xff) as u8;
        rand[2] = (high & 0x3f) as u8;
        rand[3..5].copy_from_slice(&origin.get().to_be_bytes());
        rand[5..].copy_from_slice(&seq.to_be_bytes()[3..]);
        uuid::Builder::from_unix_timestamp_millis(millis, &rand).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_unique_per_origin_seq() {
        let wall = WallTime::from_micros(1_795_435_200_000_000);
        let a = TaggedWrite::make_id(RegionId::new(1), 1, wall);
        let b = TaggedWrite::make_id(RegionId::new(1), 2, wall);
        let c = TaggedWrite::make_id(RegionId::new(2), 1, wall);
        assert_eq!(a.get_version_num(), 7);
        assert!(a != b && a != c && b != c);
        // High origins and huge seqs keep their bits too.
        let d = TaggedWrite::make_id(RegionId::new(0xF000), 1, wall);
        let e = TaggedWrite::make_id(RegionId::new(0x0000), 1, wall);
        let f = TaggedWrite::make_id(RegionId::new(1), 1 + (1 << 57), wall);
        assert!(d != e && f != a);
    }
}
