//! Golden test vectors for the engine's stored types: a tagged write (the
//! log's records), an entity (the checkpoint's records), a version, an op
//! and an entity key.
//!
//! Each case encodes a fixed value with `concord_crdt::codec` and compares
//! the hex with the line checked in at `tests/golden/vectors.txt`; then it
//! decodes the checked-in bytes and compares the result with the value. An
//! encoding change (a serde attribute, a field moved) therefore fails here
//! instead of making the records of existing stores unreadable. To record a
//! new case (or after a deliberate format change, which also bumps the
//! format byte), run with `CONCORD_BLESS=1`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use concord_clock::{HlcTime, WallTime};
use concord_core::{Collection, Entity, EntityKey, Op, Policy, TaggedWrite, Version, WriteRef};
use concord_crdt::{Dot, PnTotals, RegionId, VersionVector, codec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

fn vectors_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/vectors.txt")
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(digits, 16).expect("hex digits")
        })
        .collect()
}

/// The checked-in vectors, by name.
fn checked_in() -> BTreeMap<String, String> {
    std::fs::read_to_string(vectors_file())
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (name, hex) = line.split_once(' ')?;
            Some((name.to_owned(), hex.trim().to_owned()))
        })
        .collect()
}

/// Encodes each case, compares it with its checked-in vector, decodes the
/// vector and compares it with the case. Collects every mismatch.
#[derive(Default)]
struct Cases {
    pinned: BTreeMap<String, String>,
    now: BTreeMap<String, String>,
    mismatches: Vec<String>,
}

impl Cases {
    fn case<T: Serialize + DeserializeOwned + PartialEq + Debug>(&mut self, name: &str, value: T) {
        let encoded = to_hex(&codec::encode(&value).expect("encodes"));
        self.now.insert(name.to_owned(), encoded.clone());
        let Some(pinned) = self.pinned.get(name) else {
            self.mismatches.push(format!(
                "{name}: not pinned yet (CONCORD_BLESS=1 records it)"
            ));
            return;
        };
        if *pinned != encoded {
            self.mismatches
                .push(format!("{name}: pinned {pinned}, encodes as {encoded}"));
        }
        match codec::decode::<T>(&from_hex(pinned)) {
            Ok(decoded) if decoded == value => {}
            Ok(decoded) => self
                .mismatches
                .push(format!("{name}: pinned bytes decode to {decoded:?}")),
            Err(error) => self
                .mismatches
                .push(format!("{name}: pinned bytes do not decode: {error}")),
        }
    }
}

fn region(id: u16) -> RegionId {
    RegionId::new(id)
}

fn write(origin: u16, seq: u64, policy: Policy, op: Op) -> TaggedWrite {
    TaggedWrite {
        id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(seq)),
        origin: region(origin),
        seq,
        hlc: HlcTime::from_u64(0x0001_9000_0000_0003 + seq),
        wall: WallTime::from_micros(1_700_000_000_000_000 + i64::from(origin)),
        collection: Collection::new("profiles").expect("valid name"),
        key: b"user:42".to_vec(),
        context: VersionVector::from_entries([(region(0), 3), (region(2), 1)]),
        epoch: 7,
        policy,
        dot: matches!(policy, Policy::Mv | Policy::Queue).then(|| Dot::new(region(origin), seq)),
        op,
    }
}

#[test]
fn stored_engine_encodings_do_not_change() {
    let mut cases = Cases {
        pinned: checked_in(),
        ..Cases::default()
    };

    let set = write(
        1,
        9,
        Policy::LwwHlc,
        Op::Set(b"a 100-byte value, or so".to_vec()),
    );
    cases.case("op_set", set.op.clone());
    cases.case("op_delete", Op::Delete);
    cases.case(
        "op_resolve",
        Op::Resolve {
            value: Some(b"merged".to_vec()),
            resolves: vec![
                WriteRef {
                    origin: region(0),
                    seq: 4,
                },
                WriteRef {
                    origin: region(2),
                    seq: 11,
                },
            ],
        },
    );
    cases.case(
        "op_counter",
        Op::Counter(PnTotals {
            incremented: 300,
            decremented: 2,
        }),
    );
    cases.case("tagged_write_lww", set.clone());
    cases.case(
        "tagged_write_mv_delete",
        write(2, 1_000_000, Policy::Mv, Op::Delete),
    );
    cases.case(
        "version_value",
        Version::of(&set, Some(b"\x00\xffbytes".to_vec())),
    );
    cases.case("version_tombstone", Version::of(&set, None));
    cases.case(
        "entity_key",
        EntityKey::new(
            Collection::new("carts").expect("valid name"),
            b"cart\x00\x01".to_vec(),
        ),
    );

    let mut lww = Entity::new();
    lww.apply(&set).expect("applies");
    cases.case("entity_lww_hlc", lww);
    let mut mv = Entity::new();
    mv.apply(&write(0, 3, Policy::Mv, Op::Set(b"milk".to_vec())))
        .expect("applies");
    mv.apply(&write(2, 1, Policy::Mv, Op::Set(b"eggs".to_vec())))
        .expect("applies");
    cases.case("entity_mv_siblings", mv);
    let mut counter = Entity::new();
    counter
        .apply(&write(
            1,
            5,
            Policy::Counter,
            Op::Counter(PnTotals {
                incremented: 12,
                decremented: 5,
            }),
        ))
        .expect("applies");
    cases.case("entity_counter", counter);

    if std::env::var_os("CONCORD_BLESS").is_some() {
        let mut text = String::from(
            "# name hex: the encoded bytes of each golden case (see tests/golden_vectors.rs)\n",
        );
        for (name, hex) in &cases.now {
            text.push_str(&format!("{name} {hex}\n"));
        }
        std::fs::create_dir_all(vectors_file().parent().expect("has a parent")).expect("mkdir");
        std::fs::write(vectors_file(), text).expect("writes the vectors");
        return;
    }
    assert!(
        cases.mismatches.is_empty(),
        "golden vectors:\n{}",
        cases.mismatches.join("\n")
    );
}
