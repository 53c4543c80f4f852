//! Property tests: the multi-value register obeys the join laws, converges
//! under any delivery, and loses no write that a later context did not cover.

mod common;

use std::collections::BTreeSet;

use common::*;
use concord_crdt::{Dot, MvRegister};
use proptest::prelude::*;

proptest! {
    #[test]
    fn mv_merge_is_a_join(states in mv_states(), i in any::<prop::sample::Index>(), j in any::<prop::sample::Index>(), k in any::<prop::sample::Index>()) {
        let n = states.len();
        check_laws(&states[i.index(n)], &states[j.index(n)], &states[k.index(n)])?;
    }

    #[test]
    fn mv_any_delivery_order_converges(
        (states, orders) in mv_states().prop_flat_map(|s| { let n = s.len(); (Just(s), two_orders(n)) })
    ) {
        let x = deliver(&MvRegister::new(), &states, &orders.0);
        let y = deliver(&MvRegister::new(), &states, &orders.1);
        prop_assert_eq!(x, y);
    }

    /// After every replica's state is merged, the siblings are exactly the
    /// writes whose dot no other write's context covered.
    #[test]
    fn no_write_is_lost_unless_a_later_context_covered_it(steps in mv_steps()) {
        let history = run_mv_history(&steps);
        let all = deliver(&MvRegister::new(), &history.replicas, &(0..history.replicas.len()).collect::<Vec<_>>());
        let expected: BTreeSet<(Dot, u32)> = history.writes.iter()
            .filter(|w| !history.writes.iter().any(|o| o.context.contains(w.dot)))
            .map(|w| (w.dot, w.value))
            .collect();
        let got: BTreeSet<(Dot, u32)> = all.siblings().iter().map(|s| (s.dot, s.value)).collect();
        prop_assert_eq!(got, expected);
    }

    /// Op-based delivery: applying the writes themselves (each origin's in
    /// order, origins interleaved at random, with duplicates) reaches the same
    /// state as merging the replicas' states.
    #[test]
    fn applying_writes_in_any_causal_interleaving_matches_state_merge(
        steps in mv_steps(),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..64),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let history = run_mv_history(&steps);
        let by_state = deliver(&MvRegister::new(), &history.replicas, &(0..history.replicas.len()).collect::<Vec<_>>());

        // Per-origin queues, in dot order.
        let mut queues: Vec<Vec<&MvWrite>> = vec![Vec::new(); usize::from(REGIONS)];
        for w in &history.writes {
            queues[usize::from(w.dot.region.get())].push(w);
        }
        let mut order = Vec::new();
        let mut picks = picks.into_iter();
        while queues.iter().any(|q| !q.is_empty()) {
            let live: Vec<usize> = (0..queues.len()).filter(|i| !queues[*i].is_empty()).collect();
            let q = picks.next().map_or(live[0], |p| live[p.index(live.len())]);
            order.push(queues[q].remove(0));
        }
        for d in dups {
            if !order.is_empty() {
                let w = order[d.index(order.len())];
                order.push(w);
            }
        }
        let mut by_ops = MvRegister::new();
        for w in order {
            by_ops.apply(w.dot, w.value, &w.context).expect("causal delivery");
        }
        prop_assert_eq!(by_ops.siblings(), by_state.siblings());
    }
}
