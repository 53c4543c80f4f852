//! Decodes arbitrary bytes as every stored merge type.
//!
//! The first input byte picks the type; the rest is the record. Decoding must
//! return a value or a typed error, never panic; a value that decodes must
//! re-encode to bytes that decode to the same value.
#![no_main]

use concord_crdt::{Dot, GCounter, Lww, MvRegister, PnCounter, Stamp, VersionVector, codec};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(value) = codec::decode::<T>(bytes) {
        let again = codec::encode(&value).expect("a decoded value encodes");
        let back = codec::decode::<T>(&again).expect("a re-encoded value decodes");
        assert_eq!(back, value, "decode(encode(v)) == v");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, record)) = data.split_first() else {
        return;
    };
    match kind % 7 {
        0 => round_trip::<VersionVector>(record),
        1 => round_trip::<Dot>(record),
        2 => round_trip::<GCounter>(record),
        3 => round_trip::<PnCounter>(record),
        4 => round_trip::<Lww<u64, Vec<u8>>>(record),
        5 => round_trip::<Stamp<u64>>(record),
        _ => round_trip::<MvRegister<Vec<u8>>>(record),
    }
});
