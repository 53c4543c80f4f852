//! A tagged write's record body, written by hand.
//!
//! Every write is encoded once into the log (and a peer's copy again into
//! its log). serde drives bincode one field at a time through generic
//! calls, and two of the fields went through an owned copy first (the
//! version vector is serialized as its entry map). Here the fields of the
//! common writes (set, delete, counter) are written directly; the other
//! operations, rare (resolutions, configuration, ownership changes), are
//! left to serde. The bytes are exactly those `concord_crdt::codec`
//! writes (property test below; the golden vectors in
//! `tests/golden_vectors.rs` pin them), so records are read back with the
//! same serde decoder.

use concord_crdt::CrdtError;
use concord_crdt::codec::{encode_body_into, put_bytes, put_i64, put_u64};

use crate::{Op, Policy, TaggedWrite};

/// The variant indexes serde gives `Op` (declaration order).
const OP_SET: u64 = 0;
const OP_DELETE: u64 = 1;
const OP_COUNTER: u64 = 2;

/// The variant index serde gives `policy` (declaration order).
fn policy_index(policy: Policy) -> u64 {
    match policy {
        Policy::LwwWall => 0,
        Policy::LwwHlc => 1,
        Policy::Mv => 2,
        Policy::Counter => 3,
        Policy::Queue => 4,
    }
}

impl TaggedWrite {
    /// Appends this write's record body (what `concord_crdt::codec::encode`
    /// writes after the format byte) to `out`.
    ///
    /// ```
    /// use concord_clock::{HlcTime, WallTime};
    /// use concord_core::{Collection, Op, Policy, TaggedWrite};
    /// use concord_crdt::{RegionId, VersionVector};
    ///
    /// let origin = RegionId::new(1);
    /// let wall = WallTime::from_micros(1_795_435_200_000_000);
    /// let write = TaggedWrite {
    ///     id: TaggedWrite::make_id(origin, 7, wall),
    ///     origin,
    ///     seq: 7,
    ///     hlc: HlcTime::from_u64(1 << 40),
    ///     wall,
    ///     collection: Collection::new("profiles")?,
    ///     key: b"user:1".to_vec(),
    ///     context: VersionVector::new(),
    ///     epoch: 0,
    ///     policy: Policy::LwwHlc,
    ///     dot: None,
    ///     op: Op::Set(b"ada".to_vec()),
    /// };
    /// let mut body = Vec::new();
    /// write.encode_body_into(&mut body)?;
    /// assert_eq!(body, concord_crdt::codec::encode(&write)?[1..]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode_body_into(&self, out: &mut Vec<u8>) -> Result<(), CrdtError> {
        // A UUID is a byte string of 16 to a binary format.
        put_bytes(out, self.id.as_bytes());
        put_u64(out, u64::from(self.origin.get()));
        put_u64(out, self.seq);
        put_u64(out, self.hlc.as_u64());
        put_i64(out, self.wall.as_micros());
        put_bytes(out, self.collection.as_str().as_bytes());
        put_bytes(out, &self.key);
        // A version vector is its entries: a sequence of (region, count).
        put_u64(out, self.context.iter().len() as u64);
        for (region, count) in self.context.iter() {
            put_u64(out, u64::from(region.get()));
            put_u64(out, count);
        }
        put_u64(out, self.epoch);
        put_u64(out, policy_index(self.policy));
        match self.dot {
            Some(dot) => {
                out.push(1);
                put_u64(out, u64::from(dot.region.get()));
                put_u64(out, dot.counter);
            }
            None => out.push(0),
        }
        match &self.op {
            Op::Set(value) => {
                put_u64(out, OP_SET);
                put_bytes(out, value);
            }
            Op::Delete => put_u64(out, OP_DELETE),
            Op::Counter(totals) => {
                put_u64(out, OP_COUNTER);
                put_u64(out, totals.incremented);
                put_u64(out, totals.decremented);
            }
            other => encode_body_into(other, out)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use concord_clock::{HlcTime, WallTime};
    use concord_crdt::{Dot, PnTotals, RegionId, VersionVector};
    use proptest::prelude::*;

    use crate::{Collection, CollectionConfig, Op, Policy, TaggedWrite, WriteRef};

    fn op(kind: u8, bytes: Vec<u8>, n: u64) -> Op {
        match kind % 6 {
            0 => Op::Set(bytes),
            1 => Op::Delete,
            2 => Op::Counter(PnTotals {
                incremented: n,
                decremented: n / 3,
            }),
            3 => Op::Resolve {
                value: Some(bytes),
                resolves: vec![WriteRef {
                    origin: RegionId::new(2),
                    seq: n,
                }],
            },
            4 => Op::Configure(CollectionConfig::new(Policy::Mv)),
            _ => Op::Withheld,
        }
    }

    proptest! {
        /// The hand-written body is serde's, for every operation, context,
        /// dot and integer size (the varint's four widths).
        #[test]
        fn the_body_is_what_serde_writes(
            origin in any::<u16>(),
            seq in any::<u64>(),
            hlc in any::<u64>(),
            wall in any::<i64>(),
            name in "[a-z0-9_.-]{1,20}",
            key in proptest::collection::vec(any::<u8>(), 0..40),
            context in proptest::collection::btree_map(any::<u16>(), 1..u64::MAX, 0..5),
            epoch in any::<u64>(),
            policy in 0usize..5,
            dot in proptest::option::of((any::<u16>(), 1..u64::MAX)),
            kind in any::<u8>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            n in any::<u64>(),
        ) {
            let origin = RegionId::new(origin);
            let wall = WallTime::from_micros(wall);
            let write = TaggedWrite {
                id: TaggedWrite::make_id(origin, seq, wall),
                origin,
                seq,
                hlc: HlcTime::from_u64(hlc),
                wall,
                collection: Collection::new(&name).expect("a valid name"),
                key,
                context: VersionVector::from_entries(
                    context.into_iter().map(|(r, c)| (RegionId::new(r), c)),
                ),
                epoch,
                policy: [Policy::LwwWall, Policy::LwwHlc, Policy::Mv, Policy::Counter, Policy::Queue][policy],
                dot: dot.map(|(r, c)| Dot::new(RegionId::new(r), c)),
                op: op(kind, bytes, n),
            };
            let mut body = Vec::new();
            write.encode_body_into(&mut body).expect("encodes");
            let serde = concord_crdt::codec::encode(&write).expect("encodes");
            prop_assert_eq!(&body[..], &serde[1..]);
        }
    }
}
