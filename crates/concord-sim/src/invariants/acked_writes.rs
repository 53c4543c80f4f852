//! Invariant: every acknowledged write is accounted for at every node — the
//! current LWW version, a loser-log record or a conflict item; an `mv`/`queue`
//! sibling unless a later write's context covered it; and counters exact.

use std::collections::BTreeMap;

use concord_core::{EntityKey, Policy, PolicyState, Version, WriteRef};
use concord_crdt::{MvRegister, PnTotals, RegionId};

use crate::{Invariant, NodeView, Oracle, OracleWrite, Violation};

fn violation(view: &NodeView, w: &OracleWrite, detail: String) -> Violation {
    Violation::new(
        Invariant::AckedWrites,
        format!("acknowledged write {} ({:?}): {detail}", w.write, w.request),
    )
    .at(view.region)
    .on(&w.entity)
}

/// Checks every acknowledged write of `oracle` against every node.
pub fn check(views: &[NodeView], oracle: &Oracle) -> Result<(), Violation> {
    let mut by_entity: BTreeMap<&EntityKey, Vec<&OracleWrite>> = BTreeMap::new();
    for w in oracle.writes() {
        by_entity.entry(&w.entity).or_default().push(w);
    }
    for (entity, writes) in &by_entity {
        for w in writes.iter().filter(|w| w.acked) {
            match w.policy {
                Policy::LwwWall | Policy::LwwHlc => check_lww(views, w, writes)?,
                Policy::Mv | Policy::Queue => check_mv(views, w, writes)?,
                Policy::Counter => {}
            }
        }
        if writes
            .iter()
            .any(|w| w.acked && w.policy == Policy::Counter)
        {
            check_counter(views, entity, writes)?;
        }
    }
    Ok(())
}

fn lww_current<'a>(view: &'a NodeView, w: &OracleWrite) -> Option<&'a Version> {
    match view.entities.get(&w.entity)?.state(w.policy)? {
        PolicyState::LwwWall(l) => Some(l.value()),
        PolicyState::LwwHlc(l) => Some(l.value()),
        _ => None,
    }
}

fn same_value(version: &Version, w: &OracleWrite) -> bool {
    w.request.stored_value() == Some(version.value.as_deref())
}

/// LWW: the current version everywhere, or a loser-log record or conflict
/// item there, or superseded there by a later write of its own origin that
/// is itself accounted for (see [`concord_core::superseded`]).
fn check_lww(
    views: &[NodeView],
    w: &OracleWrite,
    same_entity: &[&OracleWrite],
) -> Result<(), Violation> {
    for view in views {
        let current = lww_current(view, w);
        if let Some(v) = current
            && v.write == w.write
            && !same_value(v, w)
        {
            return Err(violation(
                view,
                w,
                format!("it is the current version but holds {:?}", v.value),
            ));
        }
        if lww_accounted(view, w, same_entity, 0) {
            continue;
        }
        return Err(violation(
            view,
            w,
            format!(
                "not the current version (that is {:?}), not in the loser log, not in the conflict queue, not superseded by a later write of its origin",
                current.map(|v| v.write)
            ),
        ));
    }
    Ok(())
}

/// The stamp LWW orders `w` by under its policy.
fn lww_stamp(w: &OracleWrite) -> Option<(i128, WriteRef)> {
    let logged = w.logged.as_ref()?;
    let time = match w.policy {
        Policy::LwwWall => i128::from(logged.wall.as_micros()),
        _ => i128::from(logged.hlc.as_u64()),
    };
    Some((time, w.write))
}

/// Whether `w` is at `view`: current, a loser, queued, or replaced there by
/// a later write of its own origin that beat it and is accounted for.
fn lww_accounted(
    view: &NodeView,
    w: &OracleWrite,
    same_entity: &[&OracleWrite],
    depth: usize,
) -> bool {
    // The current version beat every other: `w` itself, or a later write
    // of its origin (one the oracle may not know, like a resolution).
    if lww_current(view, w)
        .is_some_and(|v| v.write == w.write || concord_core::superseded(w.write, v.write))
    {
        return true;
    }
    let key = (w.entity.clone(), w.write);
    if view.losers.contains(&key) || view.queued.contains(&key) {
        return true;
    }
    if depth >= same_entity.len() {
        return false;
    }
    let Some(stamp) = lww_stamp(w) else {
        return false;
    };
    same_entity.iter().any(|x| {
        x.policy == w.policy
            && concord_core::superseded(w.write, x.write)
            && lww_stamp(x).is_some_and(|s| s > stamp)
            && lww_accounted(view, x, same_entity, depth + 1)
    })
}

fn register<'a>(view: &'a NodeView, w: &OracleWrite) -> Option<&'a MvRegister<Version>> {
    match view.entities.get(&w.entity)?.state(w.policy)? {
        PolicyState::Mv(r) | PolicyState::Queue(r) => Some(r),
        _ => None,
    }
}

/// `mv`/`queue`: a sibling exactly when no other write's context covers its
/// dot; seen by every node either way.
fn check_mv(
    views: &[NodeView],
    w: &OracleWrite,
    same_entity: &[&OracleWrite],
) -> Result<(), Violation> {
    let Some(dot) = w.logged.as_ref().and_then(|l| l.dot) else {
        return Err(Violation::new(
            Invariant::AckedWrites,
            format!("acknowledged write {} has no logged dot", w.write),
        )
        .on(&w.entity));
    };
    let holds_dot = |x: &&&OracleWrite| {
        x.write != w.write
            && x.policy == w.policy
            && x.logged.as_ref().is_some_and(|l| l.context.contains(dot))
    };
    // A context read before `w` existed cannot have seen `w`: if it holds
    // `w`'s dot, the dot was handed out twice (and that context would
    // silently drop `w` wherever it arrives first).
    if let Some(x) = same_entity
        .iter()
        .filter(holds_dot)
        .find(|x| x.context_at < w.accepted_at)
    {
        return Err(Violation::new(
            Invariant::AckedWrites,
            format!(
                "acknowledged write {} ({:?}) got dot {dot}, which {} already carried in a context read before {} was accepted: the dot was reused",
                w.write, w.request, x.write, w.write
            ),
        )
        .at(w.write.origin)
        .on(&w.entity));
    }
    let covered_by = same_entity.iter().find(holds_dot);
    for view in views {
        let Some(reg) = register(view, w) else {
            return Err(violation(view, w, format!("no {} state at all", w.policy)));
        };
        if !reg.context().contains(dot) {
            return Err(violation(
                view,
                w,
                format!("its dot {dot} was never seen (context {:?})", reg.context()),
            ));
        }
        let sibling = reg.siblings().iter().find(|s| s.dot == dot);
        match (sibling, covered_by) {
            (Some(s), None) => {
                if s.value.write != w.write || !same_value(&s.value, w) {
                    return Err(violation(
                        view,
                        w,
                        format!("its dot {dot} holds another version: {:?}", s.value),
                    ));
                }
            }
            (None, Some(_)) => {}
            (None, None) => {
                return Err(violation(
                    view,
                    w,
                    format!("dot {dot} is not a sibling and no write's context covers it"),
                ));
            }
            (Some(_), Some(x)) => {
                return Err(violation(
                    view,
                    w,
                    format!("dot {dot} is still a sibling though {} covered it", x.write),
                ));
            }
        }
    }
    Ok(())
}

/// Counters: each origin's totals at every node are exactly the totals of
/// that origin's newest surviving add, and the value is their sum.
fn check_counter(
    views: &[NodeView],
    entity: &EntityKey,
    writes: &[&OracleWrite],
) -> Result<(), Violation> {
    let mut expected: BTreeMap<RegionId, PnTotals> = BTreeMap::new();
    for w in writes.iter().filter(|w| w.policy == Policy::Counter) {
        // `writes` is in (origin, seq) order: the last one per origin wins.
        if let Some(t) = w.totals {
            expected.insert(w.write.origin, t);
        }
    }
    let expected_value: i128 = expected
        .values()
        .map(|t| i128::from(t.incremented) - i128::from(t.decremented))
        .sum();
    for view in views {
        let fail = |detail: String| {
            Err(
                Violation::new(Invariant::AckedWrites, format!("counter: {detail}"))
                    .at(view.region)
                    .on(entity),
            )
        };
        let counter = match view
            .entities
            .get(entity)
            .and_then(|e| e.state(Policy::Counter))
        {
            Some(PolicyState::Counter(c)) => (**c).clone(),
            _ => concord_crdt::PnCounter::new(),
        };
        for (origin, want) in &expected {
            let got = counter.totals(*origin);
            if got != *want {
                return fail(format!(
                    "origin {origin}'s totals are {got:?}, its surviving adds sum to {want:?}"
                ));
            }
        }
        if let Some((origin, got)) = counter.entries().find(|(o, _)| !expected.contains_key(o)) {
            return fail(format!(
                "origin {origin} has totals {got:?} but no surviving add"
            ));
        }
        if counter.value() != expected_value {
            return fail(format!(
                "value {} instead of {expected_value}",
                counter.value()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use concord_core::Op;
    use concord_crdt::{Dot, PnTotals, VersionVector};

    use super::*;
    use crate::Request;
    use crate::invariants::test_support::{acked, entity_of, key, r, tagged, view, wref};

    fn put(v: &str) -> (Op, Request) {
        (
            Op::Set(v.as_bytes().to_vec()),
            Request::Put(v.as_bytes().to_vec()),
        )
    }

    #[test]
    fn an_lww_loser_must_be_in_the_loser_log_or_the_queue() {
        let e = key("wall", "k");
        let (op1, req1) = put("a");
        let (op2, req2) = put("b");
        let w1 = tagged(0, 1, &e, Policy::LwwWall, op1, None, VersionVector::new());
        let w2 = tagged(1, 1, &e, Policy::LwwWall, op2, None, VersionVector::new());
        let mut oracle = Oracle::new();
        oracle.insert(acked(&w1, req1, None));
        oracle.insert(acked(&w2, req2, None));
        let state = entity_of(&[&w1, &w2]);

        let mut logged = view(0, vec![(e.clone(), state.clone())]);
        logged.losers.insert((e.clone(), w1.write_ref()));
        let mut queued = view(1, vec![(e.clone(), state.clone())]);
        queued.queued.insert((e.clone(), w1.write_ref()));
        check(&[logged.clone(), queued], &oracle).unwrap();

        let silent = view(2, vec![(e.clone(), state)]);
        let err = check(&[logged, silent], &oracle).unwrap_err();
        assert_eq!(err.invariant, Invariant::AckedWrites);
        assert_eq!(err.node, Some(r(2)));
        assert_eq!(err.entity, Some(e));
        assert!(
            err.detail.contains(&wref(0, 1).to_string()),
            "{}",
            err.detail
        );
    }

    #[test]
    fn an_lww_write_superseded_by_a_later_write_of_its_origin_is_accounted_for() {
        let e = key("wall", "k");
        let (op1, req1) = put("a");
        let (op2, req2) = put("b");
        let (op3, req3) = put("c");
        let w1 = tagged(0, 1, &e, Policy::LwwWall, op1, None, VersionVector::new());
        let w2 = tagged(0, 2, &e, Policy::LwwWall, op2, None, VersionVector::new());
        let w3 = tagged(1, 5, &e, Policy::LwwWall, op3, None, VersionVector::new());
        let mut oracle = Oracle::new();
        oracle.insert(acked(&w1, req1, None));
        oracle.insert(acked(&w2, req2, None));

        // w2 replaced w1 at their origin: no loser record, and none needed.
        let current = view(0, vec![(e.clone(), entity_of(&[&w1, &w2]))]);
        check(std::slice::from_ref(&current), &oracle).unwrap();

        // w3 (another region) beat w2 in turn: w2 is a loser, and w1 is
        // accounted for through it.
        oracle.insert(acked(&w3, req3, None));
        let mut chained = view(1, vec![(e.clone(), entity_of(&[&w1, &w2, &w3]))]);
        chained.losers.insert((e.clone(), w2.write_ref()));
        check(std::slice::from_ref(&chained), &oracle).unwrap();

        // Without w2's loser record neither w2 nor w1 is accounted for.
        let silent = view(2, vec![(e.clone(), entity_of(&[&w1, &w2, &w3]))]);
        let err = check(&[silent], &oracle).unwrap_err();
        assert!(
            err.detail.contains(&wref(0, 1).to_string()),
            "{}",
            err.detail
        );
    }

    #[test]
    fn the_current_lww_version_must_hold_the_acknowledged_value() {
        let e = key("hlc", "k");
        let (op, _) = put("stored");
        let w = tagged(0, 1, &e, Policy::LwwHlc, op, None, VersionVector::new());
        let mut oracle = Oracle::new();
        oracle.insert(acked(
            &w,
            Request::Put(b"what the client sent".to_vec()),
            None,
        ));
        let err = check(&[view(0, vec![(e.clone(), entity_of(&[&w]))])], &oracle).unwrap_err();
        assert!(
            err.detail.contains("current version but holds"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn an_mv_write_is_a_sibling_unless_a_context_covered_it() {
        let e = key("mv", "k");
        let mv = |origin: u16, seq: u64, counter: u64, ctx: VersionVector, v: &str| {
            let (op, req) = put(v);
            let w = tagged(
                origin,
                seq,
                &e,
                Policy::Mv,
                op,
                Some(Dot::new(r(origin), counter)),
                ctx,
            );
            (w, req)
        };
        let (w1, q1) = mv(0, 1, 1, VersionVector::new(), "a");
        let (w2, q2) = mv(1, 1, 1, VersionVector::new(), "b");
        let covering = VersionVector::from_entries([(r(0), 1), (r(1), 1)]);
        let (w3, q3) = mv(0, 2, 2, covering, "c");
        let mut oracle = Oracle::new();
        oracle.insert(acked(&w1, q1.clone(), None));
        oracle.insert(acked(&w2, q2, None));

        // Two concurrent siblings: fine.
        let both = view(0, vec![(e.clone(), entity_of(&[&w1, &w2]))]);
        check(std::slice::from_ref(&both), &oracle).unwrap();

        // A node that never saw w1.
        let missing = view(1, vec![(e.clone(), entity_of(&[&w2]))]);
        let err = check(&[both.clone(), missing], &oracle).unwrap_err();
        assert!(err.detail.contains("never seen"), "{}", err.detail);

        // w3 covered both: only w3 remains, and that is fine.
        oracle.insert(acked(&w3, q3, None));
        let replaced = view(0, vec![(e.clone(), entity_of(&[&w1, &w2, &w3]))]);
        check(std::slice::from_ref(&replaced), &oracle).unwrap();

        // A sibling still there though w3's context covered it.
        let err = check(std::slice::from_ref(&both), &oracle).unwrap_err();
        assert!(err.detail.contains("still a sibling"), "{}", err.detail);

        // Gone, but nothing the oracle knows covered it.
        let mut without_w3 = Oracle::new();
        without_w3.insert(acked(&w1, q1, None));
        let err = check(&[replaced], &without_w3).unwrap_err();
        assert!(
            err.detail.contains("no write's context covers it"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn a_dot_already_in_an_older_context_is_a_reused_dot() {
        let e = key("queue", "k");
        // A lost write's dot r0:1 escaped in a read; x wrote with that context.
        let x = tagged(
            1,
            1,
            &e,
            Policy::Queue,
            Op::Set(b"x".to_vec()),
            Some(Dot::new(r(1), 1)),
            VersionVector::from_entries([(r(0), 1)]),
        );
        // The origin restarted and gave dot r0:1 to a new write, w.
        let w = tagged(
            0,
            1,
            &e,
            Policy::Queue,
            Op::Set(b"w".to_vec()),
            Some(Dot::new(r(0), 1)),
            VersionVector::new(),
        );
        let mut oracle = Oracle::new();
        let mut early = acked(&x, Request::Put(b"x".to_vec()), None);
        early.context_at = 1;
        early.accepted_at = 5;
        let mut later = acked(&w, Request::Put(b"w".to_vec()), None);
        later.accepted_at = 3;
        later.context_at = 3;
        oracle.insert(early.clone());
        oracle.insert(later.clone());
        let state = view(0, vec![(e.clone(), entity_of(&[&x, &w]))]);
        let err = check(std::slice::from_ref(&state), &oracle).unwrap_err();
        assert!(err.detail.contains("reused"), "{}", err.detail);

        // Had x's context been read after w was accepted, x covered w.
        early.context_at = 4;
        let mut fine = Oracle::new();
        fine.insert(early);
        fine.insert(later);
        check(&[state], &fine).unwrap();
    }

    #[test]
    fn counter_totals_must_be_exact_per_origin() {
        let e = key("counter", "k");
        let t = |incremented, decremented| PnTotals {
            incremented,
            decremented,
        };
        let add = |origin: u16, seq: u64, totals: PnTotals| {
            tagged(
                origin,
                seq,
                &e,
                Policy::Counter,
                Op::Counter(totals),
                None,
                VersionVector::new(),
            )
        };
        let a1 = add(0, 1, t(5, 0));
        let a2 = add(0, 2, t(5, 2));
        let b1 = add(1, 1, t(3, 0));
        let mut oracle = Oracle::new();
        oracle.insert(acked(&a1, Request::Add(5), Some(t(5, 0))));
        oracle.insert(acked(&a2, Request::Add(-2), Some(t(5, 2))));
        oracle.insert(acked(&b1, Request::Add(3), Some(t(3, 0))));

        let exact = view(0, vec![(e.clone(), entity_of(&[&b1, &a2, &a1]))]);
        check(std::slice::from_ref(&exact), &oracle).unwrap();

        // Missing the decrement: the value is 8 instead of 6, and that is
        // caught although it is larger than the acked increments minus nothing.
        let behind = view(1, vec![(e.clone(), entity_of(&[&a1, &b1]))]);
        let err = check(&[exact.clone(), behind], &oracle).unwrap_err();
        assert_eq!(err.node, Some(r(1)));
        assert!(err.detail.contains("origin r0"), "{}", err.detail);

        // Totals of an origin no client wrote from.
        let stray = add(2, 1, t(1, 0));
        let extra = view(2, vec![(e.clone(), entity_of(&[&a1, &a2, &b1, &stray]))]);
        let err = check(&[exact, extra], &oracle).unwrap_err();
        assert!(err.detail.contains("no surviving add"), "{}", err.detail);
    }
}
