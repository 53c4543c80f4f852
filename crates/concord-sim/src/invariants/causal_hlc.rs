//! Invariant (beyond the four): under `lww-hlc`, a write is stamped
//! after the version its node showed as current when it was accepted, so a
//! client that read a value and wrote over it at the same node wins over
//! what it read. Stamps beyond the node's drift bound are exempt: the HLC
//! cannot absorb them by design (they come from resolving held future writes).

use crate::{Invariant, Oracle, Violation};

/// Checks every acknowledged `lww-hlc` write that saw a current version.
pub fn check(oracle: &Oracle) -> Result<(), Violation> {
    for w in oracle.writes().filter(|w| w.acked) {
        let (Some((seen, seen_hlc)), Some(logged)) = (w.seen, &w.logged) else {
            continue;
        };
        if logged.hlc <= seen_hlc {
            let what = oracle.get(seen).map_or_else(
                || "a write the oracle lost".to_owned(),
                |s| format!("{:?}", s.request),
            );
            return Err(Violation::new(
                Invariant::CausalHlc,
                format!(
                    "{} was stamped {} though its node already showed {seen} ({what}), stamped {seen_hlc}, as current",
                    w.write, logged.hlc
                ),
            )
            .at(w.write.origin)
            .on(&w.entity));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use concord_core::{Op, Policy};
    use concord_crdt::VersionVector;

    use super::*;
    use crate::Request;
    use crate::invariants::test_support::{acked, key, r, tagged};

    #[test]
    fn a_write_stamped_before_what_its_node_showed_is_caught() {
        let e = key("hlc", "k");
        let older = tagged(
            1,
            1,
            &e,
            Policy::LwwHlc,
            Op::Set(b"a".to_vec()),
            None,
            VersionVector::new(),
        );
        let newer = tagged(
            0,
            9,
            &e,
            Policy::LwwHlc,
            Op::Set(b"b".to_vec()),
            None,
            VersionVector::new(),
        );
        let mut fine = acked(&newer, Request::Put(b"b".to_vec()), None);
        fine.seen = Some((older.write_ref(), older.hlc));
        let mut oracle = Oracle::new();
        oracle.insert(fine);
        check(&oracle).unwrap();

        // The node showed `newer` as current, then stamped `older`'s write.
        let mut backwards = acked(&older, Request::Put(b"a".to_vec()), None);
        backwards.seen = Some((newer.write_ref(), newer.hlc));
        oracle.insert(backwards);
        let err = check(&oracle).unwrap_err();
        assert_eq!(err.invariant, Invariant::CausalHlc);
        assert_eq!((err.node, err.entity), (Some(r(1)), Some(e)));
    }
}
