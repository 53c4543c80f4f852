//! Every record type Concord stores, decoded from arbitrary bytes.
//!
//! The first input byte picks the type; the rest is the record, as
//! `concord_crdt::codec` stores it (a format byte, then bincode 2). Decoding
//! must give a value or a typed error, never panic; a value that decodes must
//! re-encode to bytes that decode to the same value.
//!
//! Types 0 to 6 are the merge types (the golden vectors of `concord-crdt`
//! are their seeds); 7 on are the records of the sled store and the engine:
//! log batches, entities, conflict-queue items, loser records, checkpoint
//! cursors, engine metadata, and the snapshot a peer sends.

use std::fmt::Debug;

use concord_core::{ConflictItem, EngineMeta, Entity, LoserRecord, PeerMessage, WriteBatch};
use concord_crdt::{
    Dot, GCounter, Lww, MvRegister, PnCounter, RegionId, Stamp, VersionVector, codec,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The record types, in selector order (the first input byte, modulo their
/// number, picks one).
pub const TYPES: &[&str] = &[
    "version vector",
    "dot",
    "g-counter",
    "pn-counter",
    "lww (u64, bytes)",
    "stamp (u64)",
    "mv register (bytes)",
    "log batch",
    "entity",
    "conflict item",
    "loser record",
    "checkpoint cursors",
    "engine metadata",
    "peer message",
];

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    if let Ok(value) = codec::decode::<T>(bytes) {
        let again = codec::encode(&value).expect("a decoded value encodes");
        let back = codec::decode::<T>(&again).expect("a re-encoded value decodes");
        assert_eq!(back, value, "decode(encode(v)) == v");
    }
}

/// Decodes `data[1..]` as the type `data[0]` picks.
pub fn run(data: &[u8]) {
    let Some((&kind, record)) = data.split_first() else {
        return;
    };
    match usize::from(kind) % TYPES.len() {
        0 => round_trip::<VersionVector>(record),
        1 => round_trip::<Dot>(record),
        2 => round_trip::<GCounter>(record),
        3 => round_trip::<PnCounter>(record),
        4 => round_trip::<Lww<u64, Vec<u8>>>(record),
        5 => round_trip::<Stamp<u64>>(record),
        6 => round_trip::<MvRegister<Vec<u8>>>(record),
        7 => round_trip::<WriteBatch>(record),
        8 => round_trip::<Entity>(record),
        9 => round_trip::<ConflictItem>(record),
        10 => round_trip::<LoserRecord>(record),
        11 => round_trip::<Vec<(RegionId, u64)>>(record),
        12 => round_trip::<EngineMeta>(record),
        _ => round_trip::<PeerMessage>(record),
    }
}

/// The selector byte of the type named `name` in [`TYPES`].
pub fn selector(name: &str) -> Option<u8> {
    TYPES
        .iter()
        .position(|t| *t == name)
        .and_then(|i| u8::try_from(i).ok())
}
