//! The shipped resolvers decide exactly as documented.

use concord_queue::testing::item;
use concord_queue::{Decision, PickByField, Prefer, QueueError, Resolver, SumDeltas};
use proptest::prelude::*;

#[test]
fn sum_deltas_counts_deleted_as_zero_and_rejects_junk() {
    assert_eq!(
        SumDeltas
            .decide(&item(&[Some("4"), None, Some("-1")]))
            .unwrap(),
        Decision::Resolve(b"3".to_vec())
    );
    let err = SumDeltas
        .decide(&item(&[Some("4"), Some("four")]))
        .unwrap_err();
    assert!(matches!(err, QueueError::Unreadable { ref reason, .. } if reason.contains("four")));
    let max = i64::MAX.to_string();
    let err = SumDeltas
        .decide(&item(&[Some(&max), Some("1")]))
        .unwrap_err();
    assert!(matches!(err, QueueError::Overflow { .. }));
}

#[test]
fn pick_by_field_min_max_and_no_candidate() {
    let it = item(&[
        Some(r#"{"p":5}"#),
        Some(r#"{"p":2}"#),
        Some("not json"),
        None,
    ]);
    assert_eq!(
        PickByField::new("p", Prefer::Max).decide(&it).unwrap(),
        Decision::Resolve(br#"{"p":5}"#.to_vec())
    );
    assert_eq!(
        PickByField::new("p", Prefer::Min).decide(&it).unwrap(),
        Decision::Resolve(br#"{"p":2}"#.to_vec())
    );
    assert_eq!(
        PickByField::new("missing", Prefer::Max)
            .decide(&it)
            .unwrap(),
        Decision::Skip
    );
}

#[test]
fn pick_by_field_breaks_ties_by_the_later_version() {
    let it = item(&[Some(r#"{"p":1,"who":"a"}"#), Some(r#"{"p":1,"who":"b"}"#)]);
    assert_eq!(
        PickByField::new("p", Prefer::Max).decide(&it).unwrap(),
        Decision::Resolve(br#"{"p":1,"who":"b"}"#.to_vec())
    );
}

proptest! {
    /// The sum does not depend on the order of the versions.
    #[test]
    fn sum_deltas_is_order_independent(mut xs in proptest::collection::vec(-1_000_000i64..1_000_000, 1..8)) {
        let text: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
        let a = SumDeltas.decide(&item(&text.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>())).unwrap();
        xs.reverse();
        let text: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
        let b = SumDeltas.decide(&item(&text.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>())).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a, Decision::Resolve(xs.iter().sum::<i64>().to_string().into_bytes()));
    }
}
