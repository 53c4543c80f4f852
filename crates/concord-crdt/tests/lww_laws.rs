//! Property tests: the LWW register obeys the join laws, picks one winner in
//! any order, and reports every loser.

mod common;

use common::*;
use concord_crdt::{Lww, LwwOutcome, Merge, Stamp};
use proptest::prelude::*;

proptest! {
    #[test]
    fn lww_merge_is_a_join(a in lww(), b in lww(), c in lww()) {
        check_laws(&a, &b, &c)?;
    }

    #[test]
    fn lww_winner_does_not_depend_on_order(
        (writes, orders) in proptest::collection::vec(lww(), 1..8)
            .prop_flat_map(|s| { let n = s.len(); (Just(s), two_orders(n)) })
    ) {
        let first = writes[orders.0[0]].clone();
        let x = deliver(&first, &writes, &orders.0);
        let first = writes[orders.1[0]].clone();
        let y = deliver(&first, &writes, &orders.1);
        prop_assert_eq!(&x, &y);
        let best = writes.iter().map(|w| *w.stamp()).max().expect("non-empty");
        prop_assert_eq!(*x.stamp(), best);
    }

    /// Delivering distinct writes once each: every write but the winner is
    /// reported as a loser exactly once, so nothing is lost silently.
    #[test]
    fn every_overwritten_write_is_reported_once(
        shuffled in proptest::collection::btree_set(stamp(), 1..10)
            .prop_flat_map(|s| Just(s.into_iter().collect::<Vec<_>>()).prop_shuffle()),
    ) {
        let writes: Vec<Lww<u64, u64>> =
            shuffled.iter().map(|s| Lww::new(value_of(s), *s)).collect();
        let mut reg = writes[0].clone();
        let mut losers: Vec<Stamp<u64>> = Vec::new();
        for w in &writes[1..] {
            match reg.set(*w.value(), *w.stamp()).expect("distinct stamps") {
                LwwOutcome::Replaced(old) => losers.push(*old.stamp()),
                LwwOutcome::KeptOurs => losers.push(*w.stamp()),
                LwwOutcome::Same => prop_assert!(false, "distinct writes are never the same"),
            }
        }
        losers.sort();
        let mut expected = shuffled.clone();
        expected.sort();
        let winner = expected.pop().expect("non-empty");
        prop_assert_eq!(*reg.stamp(), winner);
        prop_assert_eq!(losers, expected);
    }
}

#[test]
fn equal_stamps_with_different_values_never_merge() {
    let s = Stamp::new(5u64, concord_crdt::RegionId::new(1), 1).unwrap();
    let mut a = Lww::new(1u64, s);
    assert!(a.merge(&Lww::new(2u64, s)).is_err());
    assert_eq!(*a.value(), 1);
}
