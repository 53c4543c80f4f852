//! Invariant: every node picks the same winner for every last-write-wins
//! entity.

use std::collections::BTreeSet;

use concord_core::{EntityKey, Policy, PolicyState};

use crate::{Invariant, NodeView, Violation};

/// The winner of `entity` under `policy` at `view`: the winning version's
/// write and the stamp's `(origin, seq)`, which must agree.
fn winner(
    view: &NodeView,
    entity: &EntityKey,
    policy: Policy,
) -> Result<Option<String>, Violation> {
    let state = view.entities.get(entity).and_then(|e| e.state(policy));
    let (write, origin, seq) = match state {
        Some(PolicyState::LwwWall(l)) => (l.value().write, l.stamp().origin(), l.stamp().seq()),
        Some(PolicyState::LwwHlc(l)) => (l.value().write, l.stamp().origin(), l.stamp().seq()),
        _ => return Ok(None),
    };
    if (write.origin, write.seq) != (origin, seq) {
        return Err(Violation::new(
            Invariant::SameWinner,
            format!("the winning version is {write} but its stamp names {origin}#{seq}"),
        )
        .at(view.region)
        .on(entity));
    }
    Ok(Some(write.to_string()))
}

/// Checks that every node has the same LWW winner for every entity any node
/// holds under an LWW policy.
pub fn check(views: &[NodeView]) -> Result<(), Violation> {
    let lww: BTreeSet<&EntityKey> = views
        .iter()
        .flat_map(|v| v.entities.iter())
        .filter(|(_, e)| {
            e.states()
                .iter()
                .any(|s| matches!(s, PolicyState::LwwWall(_) | PolicyState::LwwHlc(_)))
        })
        .map(|(k, _)| k)
        .collect();
    for entity in lww {
        for policy in [Policy::LwwWall, Policy::LwwHlc] {
            let mut first: Option<(&NodeView, Option<String>)> = None;
            for view in views {
                let w = winner(view, entity, policy)?;
                match &first {
                    None => first = Some((view, w)),
                    Some((first_view, first_w)) if *first_w != w => {
                        return Err(Violation::new(
                            Invariant::SameWinner,
                            format!(
                                "{policy}: {} picks {} but {} picks {}",
                                first_view.region,
                                first_w.as_deref().unwrap_or("nothing"),
                                view.region,
                                w.as_deref().unwrap_or("nothing"),
                            ),
                        )
                        .at(view.region)
                        .on(entity));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use concord_core::Op;
    use concord_crdt::VersionVector;

    use super::*;
    use crate::invariants::test_support::{entity_of, key, r, tagged, view};

    #[test]
    fn nodes_that_pick_different_winners_are_caught() {
        let e = key("wall", "k");
        let w1 = tagged(
            0,
            1,
            &e,
            Policy::LwwWall,
            Op::Set(b"a".to_vec()),
            None,
            VersionVector::new(),
        );
        let w2 = tagged(
            1,
            1,
            &e,
            Policy::LwwWall,
            Op::Set(b"b".to_vec()),
            None,
            VersionVector::new(),
        );
        let a = view(0, vec![(e.clone(), entity_of(&[&w1, &w2]))]);
        let b = view(1, vec![(e.clone(), entity_of(&[&w2, &w1]))]);
        check(&[a.clone(), b]).unwrap();

        // A node where only the older write arrived picks it.
        let c = view(2, vec![(e.clone(), entity_of(&[&w1]))]);
        let err = check(&[a.clone(), c]).unwrap_err();
        assert_eq!(err.invariant, Invariant::SameWinner);
        assert_eq!((err.node, err.entity), (Some(r(2)), Some(e)));
        assert!(
            err.detail.contains("r1#1") && err.detail.contains("r0#1"),
            "{}",
            err.detail
        );

        // A node without the entity at all picks nothing.
        assert!(check(&[a, view(3, vec![])]).is_err());
    }
}
