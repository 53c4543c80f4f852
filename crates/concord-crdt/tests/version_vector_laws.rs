//! Property tests: version vectors agree with a plain map model and obey the join laws.

mod common;

use std::collections::BTreeMap;

use common::*;
use concord_crdt::{Causality, RegionId, VersionVector};
use proptest::prelude::*;

fn model(vv: &VersionVector) -> BTreeMap<RegionId, u64> {
    vv.iter().collect()
}

fn model_compare(a: &BTreeMap<RegionId, u64>, b: &BTreeMap<RegionId, u64>) -> Causality {
    let get = |m: &BTreeMap<RegionId, u64>, r: &RegionId| m.get(r).copied().unwrap_or(0);
    let regions: Vec<_> = a.keys().chain(b.keys()).collect();
    let a_le_b = regions.iter().all(|r| get(a, r) <= get(b, r));
    let b_le_a = regions.iter().all(|r| get(b, r) <= get(a, r));
    match (a_le_b, b_le_a) {
        (true, true) => Causality::Equal,
        (true, false) => Causality::Before,
        (false, true) => Causality::After,
        (false, false) => Causality::Concurrent,
    }
}

proptest! {
    #[test]
    fn vv_merge_is_a_join(a in version_vector(), b in version_vector(), c in version_vector()) {
        check_laws(&a, &b, &c)?;
    }

    #[test]
    fn compare_matches_the_model(a in version_vector(), b in version_vector()) {
        prop_assert_eq!(a.compare(&b), model_compare(&model(&a), &model(&b)));
        prop_assert_eq!(a.dominates(&b), matches!(model_compare(&model(&a), &model(&b)), Causality::After | Causality::Equal));
    }

    #[test]
    fn merge_is_pointwise_max_and_dominates_both(a in version_vector(), b in version_vector()) {
        let m = merged(&a, &b);
        prop_assert!(m.dominates(&a) && m.dominates(&b));
        for r in 0..REGIONS {
            let r = RegionId::new(r);
            prop_assert_eq!(m.get(r), a.get(r).max(b.get(r)));
        }
    }

    #[test]
    fn vv_any_delivery_order_converges(
        (states, orders) in proptest::collection::vec(version_vector(), 1..6)
            .prop_flat_map(|s| { let n = s.len(); (Just(s), two_orders(n)) })
    ) {
        let x = deliver(&VersionVector::new(), &states, &orders.0);
        let y = deliver(&VersionVector::new(), &states, &orders.1);
        prop_assert_eq!(x, y);
    }

    #[test]
    fn increment_moves_strictly_after(a in version_vector(), r in region()) {
        let mut b = a.clone();
        let dot = b.increment(r).expect("small counts");
        prop_assert_eq!(b.compare(&a), Causality::After);
        prop_assert!(b.contains(dot) && !a.contains(dot));
    }
}
