//! A small map from region to value, kept as a sorted inline vector.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use smallvec::SmallVec;

use crate::RegionId;

/// How many regions a [`RegionMap`] holds without a heap allocation.
pub const INLINE_REGIONS: usize = 8;

/// A map from [`RegionId`] to `V`, stored as a vector sorted by region.
///
/// Deployments have a handful of regions, so a sorted vector beats a tree or
/// hash map on every operation, and up to [`INLINE_REGIONS`] entries live
/// inline with no heap allocation. Version vectors and counters are built on
/// it. Decoding rejects entries that are not strictly ascending by region, so
/// a decoded map always keeps the invariant.
///
/// ```
/// use concord_crdt::{RegionId, RegionMap};
/// let mut m: RegionMap<u64> = RegionMap::new();
/// *m.get_or_insert(RegionId::new(2)) += 5;
/// *m.get_or_insert(RegionId::new(1)) += 1;
/// let regions: Vec<u16> = m.iter().map(|(r, _)| r.get()).collect();
/// assert_eq!(regions, [1, 2]);
/// assert_eq!(m.get(RegionId::new(2)), Some(&5));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RegionMap<V> {
    entries: SmallVec<[(RegionId, V); INLINE_REGIONS]>,
}

impl<V> Default for RegionMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for RegionMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(r, v)| (r, v)))
            .finish()
    }
}

impl<V> RegionMap<V> {
    /// An empty map.
    pub const fn new() -> Self {
        Self {
            entries: SmallVec::new_const(),
        }
    }

    /// Builds a map from entries in any order; a later entry for the same
    /// region replaces an earlier one.
    pub fn from_entries(entries: impl IntoIterator<Item = (RegionId, V)>) -> Self {
        let mut map = Self::new();
        for (region, value) in entries {
            map.insert(region, value);
        }
        map
    }

    /// Number of regions with an entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no region has an entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, region: RegionId) -> Result<usize, usize> {
        // Linear scan: for the handful of entries a deployment has this is
        // faster than a binary search.
        for (i, (r, _)) in self.entries.iter().enumerate() {
            if *r == region {
                return Ok(i);
            }
            if *r > region {
                return Err(i);
            }
        }
        Err(self.entries.len())
    }

    /// The entry of `region`, if any.
    pub fn get(&self, region: RegionId) -> Option<&V> {
        self.position(region).ok().map(|i| &self.entries[i].1)
    }

    /// The entry of `region` for update, if any.
    pub fn get_mut(&mut self, region: RegionId) -> Option<&mut V> {
        match self.position(region) {
            Ok(i) => Some(&mut self.entries[i].1),
            Err(_) => None,
        }
    }

    /// Sets the entry of `region`, returning the previous one.
    pub fn insert(&mut self, region: RegionId, value: V) -> Option<V> {
        match self.position(region) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (region, value));
                None
            }
        }
    }

    /// Removes the entry of `region`, returning it.
    pub fn remove(&mut self, region: RegionId) -> Option<V> {
        match self.position(region) {
            Ok(i) => Some(self.entries.remove(i).1),
            Err(_) => None,
        }
    }

    /// Entries in ascending region order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (RegionId, &V)> + '_ {
        self.entries.iter().map(|(r, v)| (*r, v))
    }

    /// Joins `other` into `self` entry by entry: `both` combines two entries
    /// of the same region; an entry only in `other` is cloned in.
    ///
    /// One pass over both sorted vectors; no allocation when `other` has no
    /// region that `self` lacks (the common case) or the result fits inline.
    pub fn join_with(&mut self, other: &Self, mut both: impl FnMut(&mut V, &V))
    where
        V: Clone,
    {
        let mut i = 0;
        for (region, theirs) in other.entries.iter() {
            while i < self.entries.len() && self.entries[i].0 < *region {
                i += 1;
            }
            if i < self.entries.len() && self.entries[i].0 == *region {
                both(&mut self.entries[i].1, theirs);
            } else {
                self.entries.insert(i, (*region, theirs.clone()));
            }
            i += 1;
        }
    }
}

impl<V: Default> RegionMap<V> {
    /// The entry of `region` for update, inserting `V::default()` first if absent.
    pub fn get_or_insert(&mut self, region: RegionId) -> &mut V {
        let i = match self.position(region) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (region, V::default()));
                i
            }
        };
        &mut self.entries[i].1
    }
}

impl<V: Serialize> Serialize for RegionMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.entries.as_slice().serialize(serializer)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for RegionMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
            type Value = RegionMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a sequence of (region, value) pairs in strictly ascending region order",
                )
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut entries: SmallVec<[(RegionId, V); INLINE_REGIONS]> = SmallVec::new();
                while let Some((region, value)) = seq.next_element::<(RegionId, V)>()? {
                    if let Some((last, _)) = entries.last()
                        && *last >= region
                    {
                        return Err(de::Error::custom(format_args!(
                            "region {region} follows region {last}: entries must be strictly ascending"
                        )));
                    }
                    entries.push((region, value));
                }
                Ok(RegionMap { entries })
            }
        }

        deserializer.deserialize_seq(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: u16) -> RegionId {
        RegionId::new(id)
    }

    #[test]
    fn insert_keeps_regions_sorted_and_replaces() {
        let mut m = RegionMap::new();
        assert_eq!(m.insert(r(5), 50), None);
        assert_eq!(m.insert(r(1), 10), None);
        assert_eq!(m.insert(r(3), 30), None);
        assert_eq!(m.insert(r(3), 33), Some(30));
        let got: Vec<_> = m.iter().map(|(r, v)| (r.get(), *v)).collect();
        assert_eq!(got, [(1, 10), (3, 33), (5, 50)]);
        assert_eq!(m.remove(r(1)), Some(10));
        assert_eq!(m.remove(r(1)), None);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn join_with_adds_missing_regions_in_order() {
        let mut a = RegionMap::from_entries([(r(2), 1u64), (r(6), 7)]);
        let b = RegionMap::from_entries([(r(1), 4u64), (r(2), 9), (r(4), 2), (r(9), 3)]);
        a.join_with(&b, |x, y| *x = (*x).max(*y));
        let got: Vec<_> = a.iter().map(|(r, v)| (r.get(), *v)).collect();
        assert_eq!(got, [(1, 4), (2, 9), (4, 2), (6, 7), (9, 3)]);
    }

    #[test]
    fn decoding_rejects_unsorted_or_repeated_regions() {
        let sorted = crate::codec::encode(&vec![(r(1), 1u64), (r(2), 2)]).unwrap();
        let ok: RegionMap<u64> = crate::codec::decode(&sorted).unwrap();
        assert_eq!(ok.len(), 2);
        for bad in [vec![(r(2), 1u64), (r(1), 2)], vec![(r(1), 1u64), (r(1), 2)]] {
            let bytes = crate::codec::encode(&bad).unwrap();
            assert!(crate::codec::decode::<RegionMap<u64>>(&bytes).is_err());
        }
    }
}
