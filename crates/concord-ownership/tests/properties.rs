//! Property tests: owners are total and deterministic; merging converges.

use concord_crdt::RegionId;
use concord_ownership::{OwnershipError, OwnershipMap, Rule, key_hash};
use proptest::prelude::*;

fn regions() -> impl Strategy<Value = Vec<RegionId>> {
    prop::collection::vec(any::<u16>().prop_map(RegionId::new), 1..8)
}

/// Valid hash ranges: strictly increasing bounds ending at `u64::MAX`.
fn ranges() -> impl Strategy<Value = Vec<(u64, RegionId)>> {
    (
        prop::collection::btree_set(any::<u64>(), 0..8),
        prop::collection::vec(any::<u16>().prop_map(RegionId::new), 9),
    )
        .prop_map(|(bounds, owners)| {
            let mut bounds: Vec<u64> = bounds.into_iter().filter(|&b| b != u64::MAX).collect();
            bounds.push(u64::MAX);
            bounds.into_iter().zip(owners).collect()
        })
}

proptest! {
    #[test]
    fn modulo_owner_is_total_and_deterministic(regions in regions(), id in any::<u64>()) {
        let rule = Rule::modulo(regions.clone()).unwrap();
        let key = id.to_string();
        let owner = rule.owner(key.as_bytes()).unwrap();
        prop_assert!(regions.contains(&owner));
        prop_assert_eq!(owner, regions[(id % regions.len() as u64) as usize]);
        prop_assert_eq!(rule.owner(key.as_bytes()).unwrap(), owner);
        // Zero-padding to 20 digits names the same id.
        let padded = format!("{id:020}");
        prop_assert_eq!(rule.owner(padded.as_bytes()).unwrap(), owner);
    }

    #[test]
    fn modulo_rejects_non_digits(regions in regions(), key in prop::collection::vec(any::<u8>(), 0..24)) {
        prop_assume!(key.is_empty() || key.iter().any(|b| !b.is_ascii_digit()));
        let rule = Rule::modulo(regions).unwrap();
        prop_assert_eq!(rule.owner(&key), Err(OwnershipError::NotAnInteger { key: key.clone() }));
    }

    #[test]
    fn hash_range_owner_is_total_and_deterministic(
        ranges in ranges(),
        key in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let rule = Rule::hash_ranges(ranges.clone()).unwrap();
        let owner = rule.owner(&key).unwrap();
        prop_assert_eq!(rule.owner(&key).unwrap(), owner);
        // Exactly one range contains the hash, and its region is the owner.
        let hash = key_hash(&key);
        let mut low = 0u64;
        let mut containing = Vec::new();
        for &(upper, region) in &ranges {
            if (low..=upper).contains(&hash) {
                containing.push(region);
            }
            low = upper.wrapping_add(1);
        }
        prop_assert_eq!(containing, vec![owner]);
    }

    #[test]
    fn unsorted_or_short_ranges_are_rejected(
        mut ranges in ranges(),
        swap in any::<prop::sample::Index>(),
    ) {
        // Dropping the u64::MAX bound leaves hashes uncovered.
        let mut short = ranges.clone();
        short.pop();
        prop_assert!(Rule::hash_ranges(short).is_err());
        // Repeating any bound breaks strict ordering.
        let i = swap.index(ranges.len());
        let repeated = ranges[i];
        ranges.insert(i, repeated);
        prop_assert!(
            matches!(Rule::hash_ranges(ranges), Err(OwnershipError::InvalidRule { .. })),
            "repeated bound accepted"
        );
    }

    #[test]
    fn merge_converges_in_either_order(
        ops_a in prop::collection::vec((0u8..3, any::<u16>(), 0u16..4), 0..6),
        ops_b in prop::collection::vec((0u8..3, any::<u16>(), 0u16..4), 0..6),
    ) {
        let build = |ops: &[(u8, u16, u16)]| {
            let mut map = OwnershipMap::new();
            for &(op, id, r) in ops {
                let r = RegionId::new(r);
                match op {
                    0 => map.set_rule("users", Rule::modulo(vec![r]).unwrap()).unwrap(),
                    1 => map.set_rule("docs", Rule::hash_ranges(vec![(u64::MAX, r)]).unwrap()).unwrap(),
                    _ => map.move_keys("users", [id.to_string().into_bytes()], r).unwrap_or(0),
                };
            }
            map
        };
        let (a, b) = (build(&ops_a), build(&ops_b));
        let (mut ab, mut ba) = (a.clone(), b.clone());
        let (rab, rba) = (ab.merge(&b), ba.merge(&a));
        if a.epoch() == b.epoch() && a != b {
            let conflict = Err(OwnershipError::EpochConflict { epoch: a.epoch() });
            prop_assert_eq!(rab, conflict.clone());
            prop_assert_eq!(rba, conflict);
            prop_assert_eq!(ab, a);
            prop_assert_eq!(ba, b);
        } else {
            prop_assert!(rab.is_ok() && rba.is_ok());
            prop_assert_eq!(&ab, &ba);
            prop_assert_eq!(ab.epoch(), a.epoch().max(b.epoch()));
            // Merging is idempotent.
            let again = ab.clone();
            prop_assert!(ab.merge(&again).is_ok());
            prop_assert_eq!(ab, again);
        }
    }
}

#[test]
fn an_ownership_map_round_trips_through_the_record_codec() {
    use concord_crdt::{RegionId, codec};
    use concord_ownership::{OwnershipMap, Rule};
    let mut map = OwnershipMap::new();
    map.set_rule(
        "users",
        Rule::modulo(vec![RegionId::new(0), RegionId::new(1)]).unwrap(),
    )
    .unwrap();
    map.set_rule(
        "carts",
        Rule::table(
            [(b"k1".to_vec(), RegionId::new(1))].into_iter().collect(),
            Some(RegionId::new(0)),
        ),
    )
    .unwrap();
    map.move_keys("users", [b"42".to_vec()], RegionId::new(1))
        .unwrap();
    let bytes = codec::encode(&map).unwrap();
    let back: OwnershipMap = codec::decode(&bytes).unwrap();
    assert_eq!(back, map);
    assert_eq!(back.owner("users", b"42").unwrap(), RegionId::new(1));
}
