//! Golden test vectors for the engine's stored types: a tagged write (the
//! log's records), an entity (the checkpoint's records), a version, an op
//! and an entity key.
//!
//! The vectors are in `tests/golden/vectors.txt`; the checker (shared with
//! `concord-crdt`) is `concord-crdt/tests/golden/checker.rs`. An encoding
//! change (a serde attribute, a field moved) fails here instead of making
//! the records of existing stores unreadable.

#[path = "../../concord-crdt/tests/golden/checker.rs"]
mod checker;

use checker::Golden;
use concord_clock::{HlcTime, WallTime};
use concord_core::{Collection, Entity, EntityKey, Op, Policy, TaggedWrite, Version, WriteRef};
use concord_crdt::{Dot, PnTotals, RegionId, VersionVector};
use uuid::Uuid;

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
    let mut cases = Golden::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/vectors.txt"),
    );

    let set = write(
        1,
        9,
        Policy::LwwHlc,
        Op::Set(b"a 100-byte value, or so".to_vec()),
    );
    cases.check("op_set", set.op.clone());
    cases.check("op_delete", Op::Delete);
    cases.check(
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
    cases.check(
        "op_counter",
        Op::Counter(PnTotals {
            incremented: 300,
            decremented: 2,
        }),
    );
    cases.check("tagged_write_lww", set.clone());
    cases.check(
        "tagged_write_mv_delete",
        write(2, 1_000_000, Policy::Mv, Op::Delete),
    );
    cases.check(
        "version_value",
        Version::of(&set, Some(b"\x00\xffbytes".to_vec())),
    );
    cases.check("version_tombstone", Version::of(&set, None));
    cases.check(
        "entity_key",
        EntityKey::new(
            Collection::new("carts").expect("valid name"),
            b"cart\x00\x01".to_vec(),
        ),
    );

    let mut lww = Entity::new();
    lww.apply(&set).expect("applies");
    cases.check("entity_lww_hlc", lww);
    let mut mv = Entity::new();
    mv.apply(&write(0, 3, Policy::Mv, Op::Set(b"milk".to_vec())))
        .expect("applies");
    mv.apply(&write(2, 1, Policy::Mv, Op::Set(b"eggs".to_vec())))
        .expect("applies");
    cases.check("entity_mv_siblings", mv);
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
    cases.check("entity_counter", counter);

    cases.finish();
}
