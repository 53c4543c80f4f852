//! Golden test vectors: the stored bytes of every merge type are pinned.
//!
//! Each case encodes a fixed value and compares it with the hex checked in at
//! `tests/golden/vectors.txt`, then decodes the checked-in bytes and compares
//! them with the value. A change of the encoding therefore fails here instead
//! of silently making old records unreadable. To record vectors for a new
//! case (or after a deliberate format change, which also bumps
//! `codec::FORMAT_VERSION`), run with `CONCORD_BLESS=1`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use concord_clock::{HlcTime, WallTime};
use concord_crdt::{
    Dot, GCounter, Lww, MvRegister, PnCounter, RegionId, Stamp, VersionVector, codec,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/vectors.txt")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn r(id: u16) -> RegionId {
    RegionId::new(id)
}

struct Golden {
    stored: BTreeMap<String, String>,
    fresh: BTreeMap<String, String>,
    failures: Vec<String>,
}

impl Golden {
    fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(&mut self, name: &str, value: T) {
        let bytes = codec::encode(&value).expect("encode");
        self.fresh.insert(name.to_owned(), hex(&bytes));
        match self.stored.get(name) {
            None => self.failures.push(format!(
                "{name}: no stored vector (run with CONCORD_BLESS=1)"
            )),
            Some(stored) => {
                if *stored != hex(&bytes) {
                    self.failures.push(format!(
                        "{name}: encoding changed: stored {stored}, now {}",
                        hex(&bytes)
                    ));
                }
                match codec::decode::<T>(&unhex(stored)) {
                    Ok(decoded) if decoded == value => {}
                    Ok(decoded) => self
                        .failures
                        .push(format!("{name}: stored bytes decode to {decoded:?}")),
                    Err(e) => self
                        .failures
                        .push(format!("{name}: stored bytes do not decode: {e}")),
                }
            }
        }
    }
}

#[test]
fn stored_encodings_do_not_change() {
    let stored = std::fs::read_to_string(path())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(n, h)| (n.to_owned(), h.trim().to_owned()))
        })
        .collect();
    let mut g = Golden {
        stored,
        fresh: BTreeMap::new(),
        failures: Vec::new(),
    };

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

    if std::env::var_os("CONCORD_BLESS").is_some() {
        let mut out = String::from(
            "# name hex: the encoded bytes of each golden case (see tests/golden_vectors.rs)\n",
        );
        for (name, hex) in &g.fresh {
            out.push_str(&format!("{name} {hex}\n"));
        }
        std::fs::create_dir_all(path().parent().expect("has parent")).expect("mkdir");
        std::fs::write(path(), out).expect("write vectors");
        return;
    }
    assert!(
        g.failures.is_empty(),
        "golden vectors differ:\n{}",
        g.failures.join("\n")
    );
}
