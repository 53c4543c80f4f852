//! Property tests: the counters obey the join laws and converge under any delivery.

mod common;

use common::*;
use concord_crdt::{GCounter, Merge, PnCounter, RegionId};
use proptest::prelude::*;

proptest! {
    #[test]
    fn g_counter_merge_is_a_join(a in g_counter(), b in g_counter(), c in g_counter()) {
        check_laws(&a, &b, &c)?;
    }

    #[test]
    fn pn_counter_merge_is_a_join(a in pn_counter(), b in pn_counter(), c in pn_counter()) {
        check_laws(&a, &b, &c)?;
    }

    #[test]
    fn g_counter_any_delivery_order_converges(
        (states, orders) in proptest::collection::vec(g_counter(), 1..6)
            .prop_flat_map(|s| { let n = s.len(); (Just(s), two_orders(n)) })
    ) {
        let x = deliver(&GCounter::new(), &states, &orders.0);
        let y = deliver(&GCounter::new(), &states, &orders.1);
        prop_assert_eq!(&x, &y);
        // The merged value is the sum over regions of the largest total seen.
        let expected: u128 = (0..REGIONS)
            .map(|r| states.iter().map(|s| s.total(RegionId::new(r))).max().unwrap_or(0))
            .map(u128::from)
            .sum();
        prop_assert_eq!(x.value(), expected);
    }

    #[test]
    fn pn_counter_any_delivery_order_converges(
        (states, orders) in proptest::collection::vec(pn_counter(), 1..6)
            .prop_flat_map(|s| { let n = s.len(); (Just(s), two_orders(n)) })
    ) {
        let x = deliver(&PnCounter::new(), &states, &orders.0);
        let y = deliver(&PnCounter::new(), &states, &orders.1);
        prop_assert_eq!(x, y);
    }

    /// Each region counts locally and ships its running totals, repeatedly and
    /// out of order: the receiver ends with exactly the sum of every increment.
    #[test]
    fn running_totals_shipped_in_any_order_sum_exactly(
        deltas in proptest::collection::vec((region(), -50i64..50), 1..40),
        shuffle_seed in any::<u64>(),
    ) {
        let mut origin = PnCounter::new();
        let mut shipped = Vec::new();
        for (r, d) in &deltas {
            let totals = origin.add(*r, *d).expect("small numbers");
            shipped.push((*r, totals));
        }
        // A deterministic shuffle with duplicates of what was shipped.
        let mut order: Vec<usize> = (0..shipped.len()).chain(0..shipped.len() / 2).collect();
        let mut s = shuffle_seed | 1;
        for i in (1..order.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            order.swap(i, usize::try_from(s % (i as u64 + 1)).expect("fits"));
        }
        let mut receiver = PnCounter::new();
        for i in order {
            let (r, t) = shipped[i];
            receiver.apply_totals(r, t);
        }
        let exact: i128 = deltas.iter().map(|(_, d)| i128::from(*d)).sum();
        prop_assert_eq!(receiver.value(), exact);
        prop_assert_eq!(receiver, origin);
    }
}

#[test]
fn merging_an_older_state_never_decreases_a_counter() {
    let r = RegionId::new(1);
    let mut newer = GCounter::new();
    newer.increment(r, 5).unwrap();
    let older = newer.clone();
    newer.increment(r, 2).unwrap();
    newer.merge(&older).unwrap();
    assert_eq!(newer.value(), 7);
}
