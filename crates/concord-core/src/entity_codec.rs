//! An entity's stored record, written by hand.
//!
//! A checkpoint writes the record of every entity changed since the last
//! one, so with writes spread over many keys it encodes about as many
//! records as there were writes. serde drives bincode one field at a time
//! through generic calls; for the states most entities hold (last-write-wins
//! registers) the few integers and the value are written here directly.
//! The bytes are exactly those `concord_crdt::codec` writes (property test
//! below; the golden vectors in `tests/golden_vectors.rs` pin them), so
//! records are read back with the same serde decoder, and states without a
//! hand-written form (multi-value registers, the queue, counters) are left
//! to it.

use concord_clock::{HlcTime, WallTime};
use concord_crdt::codec::{encode_body_into, put_bytes, put_i64, put_u64};
use concord_crdt::{CrdtError, Lww};

use crate::{Entity, PolicyState, Version};

/// The variant indexes serde gives `PolicyState` (declaration order).
const LWW_WALL: u64 = 0;
const LWW_HLC: u64 = 1;

impl Entity {
    /// Appends this entity's record body (what `concord_crdt::codec::encode`
    /// writes after the format byte) to `out`.
    ///
    /// ```
    /// use concord_core::Entity;
    ///
    /// let entity = Entity::new();
    /// let mut body = Vec::new();
    /// entity.encode_body_into(&mut body).unwrap();
    /// assert_eq!(body, concord_crdt::codec::encode(&entity).unwrap()[1..]);
    /// ```
    pub fn encode_body_into(&self, out: &mut Vec<u8>) -> Result<(), CrdtError> {
        put_u64(out, self.states().len() as u64);
        for state in self.states() {
            match state {
                PolicyState::LwwWall(lww) => {
                    put_u64(out, LWW_WALL);
                    put_lww(out, lww, |out, t: &WallTime| put_i64(out, t.as_micros()));
                }
                PolicyState::LwwHlc(lww) => {
                    put_u64(out, LWW_HLC);
                    put_lww(out, lww, |out, t: &HlcTime| put_u64(out, t.as_u64()));
                }
                other => encode_body_into(other, out)?,
            }
        }
        Ok(())
    }
}

/// An `Lww`: its stamp (time, origin, seq), then its version.
#[inline]
fn put_lww<T: Ord>(out: &mut Vec<u8>, lww: &Lww<T, Version>, put_time: impl Fn(&mut Vec<u8>, &T)) {
    let stamp = lww.stamp();
    put_time(out, stamp.time());
    put_u64(out, u64::from(stamp.origin().get()));
    put_u64(out, stamp.seq());
    put_version(out, lww.value());
}

/// A `Version`: value (an option of a byte string), write (origin, seq),
/// HLC, wall.
#[inline]
fn put_version(out: &mut Vec<u8>, version: &Version) {
    match &version.value {
        Some(bytes) => {
            out.push(1);
            put_bytes(out, bytes);
        }
        None => out.push(0),
    }
    put_u64(out, u64::from(version.write.origin.get()));
    put_u64(out, version.write.seq);
    put_u64(out, version.hlc.as_u64());
    put_i64(out, version.wall.as_micros());
}

#[cfg(test)]
mod tests {
    use concord_crdt::{Dot, PnTotals, RegionId, VersionVector, codec};
    use proptest::prelude::*;
    use uuid::Uuid;

    use crate::{Collection, Entity, Op, Policy, TaggedWrite};

    fn write(origin: u16, seq: u64, hlc: u64, wall: i64, policy: Policy, op: Op) -> TaggedWrite {
        TaggedWrite {
            id: Uuid::from_u128(u128::from(seq)),
            origin: RegionId::new(origin),
            seq,
            hlc: concord_clock::HlcTime::from_u64(hlc),
            wall: concord_clock::WallTime::from_micros(wall),
            collection: Collection::new("c").expect("valid"),
            key: b"k".to_vec(),
            context: VersionVector::new(),
            epoch: 0,
            policy,
            dot: matches!(policy, Policy::Mv | Policy::Queue)
                .then(|| Dot::new(RegionId::new(origin), seq)),
            op,
        }
    }

    fn policy() -> impl Strategy<Value = Policy> {
        prop_oneof![
            Just(Policy::LwwWall),
            Just(Policy::LwwHlc),
            Just(Policy::Mv),
            Just(Policy::Queue),
            Just(Policy::Counter),
        ]
    }

    fn op_for(policy: Policy, value: Option<Vec<u8>>, n: u64) -> Op {
        match (policy, value) {
            (Policy::Counter, _) => Op::Counter(PnTotals {
                incremented: n,
                decremented: n / 3,
            }),
            (_, Some(v)) => Op::Set(v),
            (_, None) => Op::Delete,
        }
    }

    proptest! {
        /// The hand-written record is byte for byte the serde one, for
        /// entities under every policy (and several at once), with times
        /// and seqs across every integer width, negative wall times,
        /// tombstones and empty values.
        #[test]
        fn hand_written_bytes_are_the_serde_bytes(
            writes in proptest::collection::vec(
                (
                    policy(),
                    0u16..=u16::MAX,
                    prop_oneof![0u64..300, 0u64..70_000, 0u64..(1 << 48) - 1],
                    any::<u64>(),
                    any::<i64>(),
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
                ),
                0..6,
            )
        ) {
            let mut entity = Entity::new();
            for (policy, origin, seq, hlc, wall, value) in writes {
                let seq = seq.max(1);
                let op = op_for(policy, value, seq);
                // A refused write (a collision, an overflow) leaves the
                // entity as it was; either way it is encoded below.
                let _ = entity.apply(&write(origin, seq, hlc, wall, policy, op));
            }
            let mut body = Vec::new();
            entity.encode_body_into(&mut body).expect("encodes");
            let serde = codec::encode(&entity).expect("encodes");
            prop_assert_eq!(&body[..], &serde[1..]);
        }
    }
}
