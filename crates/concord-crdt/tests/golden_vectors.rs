//! Golden test vectors: the stored bytes of every merge type are pinned
//! (the checker, and how to record vectors: `tests/golden/checker.rs`).

#[path = "golden/checker.rs"]
mod checker;

use checker::Golden;
use concord_clock::{HlcTime, WallTime};
use concord_crdt::{Dot, GCounter, Lww, MvRegister, PnCounter, RegionId, Stamp, VersionVector};

fn r(id: u16) -> RegionId {
    RegionId::new(id)
}

#[test]
fn stored_encodings_do_not_change() {
    let mut g = Golden::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/vectors.txt"),
    );

    g.check("region_id", r(513));
    g.check("dot", Dot::new(r(3), 300));
    g.check("version_vector_empty", VersionVector::new());
    g.check(
        "version_vector",
        VersionVector::from_entries([(r(0), 1), (r(2), 70_000), (r(9), u64::MAX)]),
    );
    g.check(
        "stamp_u64",
        Stamp::new(1_700_000_000_000u64, r(1), 42).expect("seq in range"),
    );
    g.check(
        "lww_wall_string",
        Lww::new(
            "blue".to_owned(),
            Stamp::new(WallTime::from_micros(1_795_464_587_123_456), r(2), 7)
                .expect("seq in range"),
        ),
    );
    g.check(
        "lww_hlc_bytes",
        Lww::new(
            vec![0u8, 255, 7],
            Stamp::new(HlcTime::from_u64(0x0123_4567_89ab_cdef), r(1), 1).expect("seq in range"),
        ),
    );
    let mut mv = MvRegister::new();
    mv.write(r(0), "milk".to_owned(), &VersionVector::new())
        .expect("write");
    mv.apply(Dot::new(r(1), 1), "eggs".to_owned(), &VersionVector::new())
        .expect("apply");
    g.check("mv_register", mv);
    let mut gc = GCounter::new();
    gc.increment(r(0), 5).expect("inc");
    gc.increment(r(4), 1 << 40).expect("inc");
    g.check("g_counter", gc);
    let mut pn = PnCounter::new();
    pn.increment(r(1), 10).expect("inc");
    pn.decrement(r(1), 3).expect("dec");
    pn.decrement(r(6), u64::MAX).expect("dec");
    g.check("pn_counter", pn);

    g.finish();
}
