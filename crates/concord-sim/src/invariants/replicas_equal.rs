//! Invariant: after heal every replica holds the same entities and the same
//! open conflict-queue items, entity by entity.

use std::collections::BTreeSet;

use concord_core::EntityKey;

use crate::{Invariant, NodeView, Violation};

/// Caps a debug dump so a violation stays readable.
fn short(text: String) -> String {
    const MAX: usize = 600;
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Checks every node against the first.
pub fn check(views: &[NodeView]) -> Result<(), Violation> {
    let Some((first, rest)) = views.split_first() else {
        return Ok(());
    };
    for view in rest {
        let keys: BTreeSet<&EntityKey> =
            first.entities.keys().chain(view.entities.keys()).collect();
        for key in keys {
            let (a, b) = (first.entities.get(key), view.entities.get(key));
            if a != b {
                return Err(Violation::new(
                    Invariant::ReplicasEqual,
                    short(format!(
                        "{} holds {a:?} but {} holds {b:?}",
                        first.region, view.region
                    )),
                )
                .at(view.region)
                .on(key));
            }
        }
        let keys: BTreeSet<&EntityKey> = first
            .open_items
            .keys()
            .chain(view.open_items.keys())
            .collect();
        for key in keys {
            let (a, b) = (first.open_items.get(key), view.open_items.get(key));
            if a != b {
                return Err(Violation::new(
                    Invariant::ReplicasEqual,
                    short(format!(
                        "open conflict items differ: {} has {a:?} but {} has {b:?}",
                        first.region, view.region
                    )),
                )
                .at(view.region)
                .on(key));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use concord_core::{Op, Policy};
    use concord_crdt::VersionVector;

    use super::*;
    use crate::invariants::test_support::{entity_of, key, r, tagged, view, wref};
    use crate::{OpenItem, ReasonKind};

    #[test]
    fn a_replica_with_another_state_or_other_open_items_is_caught() {
        let e = key("hlc", "k");
        let w1 = tagged(
            0,
            1,
            &e,
            Policy::LwwHlc,
            Op::Set(b"a".to_vec()),
            None,
            VersionVector::new(),
        );
        let w2 = tagged(
            1,
            1,
            &e,
            Policy::LwwHlc,
            Op::Set(b"b".to_vec()),
            None,
            VersionVector::new(),
        );
        let a = view(0, vec![(e.clone(), entity_of(&[&w1, &w2]))]);
        let b = view(1, vec![(e.clone(), entity_of(&[&w2, &w1]))]);
        check(&[a.clone(), b.clone()]).unwrap();

        let stale = view(2, vec![(e.clone(), entity_of(&[&w1]))]);
        let err = check(&[a.clone(), b.clone(), stale]).unwrap_err();
        assert_eq!(err.invariant, Invariant::ReplicasEqual);
        assert_eq!((err.node, err.entity), (Some(r(2)), Some(e.clone())));

        let absent = view(2, vec![]);
        assert!(check(&[a.clone(), absent]).is_err());

        let mut queued = b;
        queued.open_items.insert(
            e.clone(),
            vec![OpenItem {
                reason: ReasonKind::Concurrent,
                versions: vec![wref(0, 1), wref(1, 1)],
            }],
        );
        let err = check(&[a, queued]).unwrap_err();
        assert!(
            err.detail.contains("open conflict items differ"),
            "{}",
            err.detail
        );
    }
}
