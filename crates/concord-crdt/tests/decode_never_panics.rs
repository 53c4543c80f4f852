//! Decoding any byte string gives a value or a typed error, never a panic;
//! whatever decodes keeps its type's invariants and round-trips.

mod common;

use common::*;
use concord_crdt::{Dot, GCounter, Lww, Merge, MvRegister, PnCounter, Stamp, VersionVector, codec};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes `bytes` as `T`; if that works, the value must re-encode to bytes
/// that decode to the same value.
fn decode_round_trips<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = codec::decode::<T>(bytes) {
        let again = codec::encode(&value).expect("encode a decoded value");
        prop_assert_eq!(
            codec::decode::<T>(&again).expect("decode re-encoded"),
            value
        );
    }
    Ok(())
}

fn all_types(bytes: &[u8]) -> Result<(), TestCaseError> {
    decode_round_trips::<VersionVector>(bytes)?;
    decode_round_trips::<Dot>(bytes)?;
    decode_round_trips::<GCounter>(bytes)?;
    decode_round_trips::<PnCounter>(bytes)?;
    decode_round_trips::<Lww<u64, Vec<u8>>>(bytes)?;
    decode_round_trips::<Stamp<u64>>(bytes)?;
    decode_round_trips::<MvRegister<Vec<u8>>>(bytes)?;
    Ok(())
}

/// Valid encodings of each type, to mutate.
fn valid_records() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        version_vector().prop_map(|v| codec::encode(&v).expect("encode")),
        g_counter().prop_map(|v| codec::encode(&v).expect("encode")),
        pn_counter().prop_map(|v| codec::encode(&v).expect("encode")),
        lww().prop_map(|v| codec::encode(&v).expect("encode")),
        mv_states().prop_map(|s| {
            let mut all = MvRegister::new();
            for st in &s {
                all.merge(st).expect("consistent");
            }
            codec::encode(&all).expect("encode")
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        all_types(&bytes)?;
        let mut versioned = vec![codec::FORMAT_VERSION];
        versioned.extend_from_slice(&bytes);
        all_types(&versioned)?;
    }

    #[test]
    fn mutated_records_never_panic(
        record in valid_records(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = record;
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        all_types(&bytes)?;
        let end = cut.index(bytes.len() + 1);
        all_types(&bytes[..end])?;
    }
}
