//! Rules that assign a home region to every key of one collection.

use std::collections::BTreeMap;

use concord_crdt::RegionId;
use serde::{Deserialize, Serialize};

use crate::{OwnershipError, RuleDefect, key_hash};

/// How one collection's keys are assigned to home regions.
///
/// Build rules with [`Rule::modulo`], [`Rule::hash_ranges`] and
/// [`Rule::table`], which validate; the variants are public so a rule can be
/// matched on and deserialized, and [`Rule::owner`] re-checks validity so a
/// malformed rule yields [`OwnershipError::InvalidRule`] instead of a panic.
///
/// ```
/// use concord_crdt::RegionId;
/// use concord_ownership::Rule;
///
/// let (a, b) = (RegionId::new(0), RegionId::new(1));
/// // Region A owns even user ids, region B odd ones.
/// let rule = Rule::modulo(vec![a, b])?;
/// assert_eq!(rule.owner(b"42")?, a);
/// assert_eq!(rule.owner(b"43")?, b);
/// assert!(rule.owner(b"alice").is_err());
/// # Ok::<(), concord_ownership::OwnershipError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// The key is a decimal `u64` id `n`; its owner is `regions[n % regions.len()]`.
    ///
    /// The key must be 1 to 20 ASCII digits whose value fits a `u64`: no
    /// sign, no whitespace. Leading zeros are allowed (`"007"` is 7). A
    /// region may be listed more than once to give it a larger share.
    Modulo {
        /// Regions in order; must not be empty.
        regions: Vec<RegionId>,
    },
    /// The key's [`key_hash`] falls in exactly one range; that range's region owns it.
    ///
    /// Each entry is `(upper, region)` where `upper` is the inclusive upper
    /// bound of a range; a range starts just above the previous bound (the
    /// first starts at 0). Bounds must be strictly increasing and the last
    /// must be `u64::MAX`, so the ranges cover every hash exactly once.
    HashRanges {
        /// `(inclusive upper bound, owner)` pairs, sorted by bound.
        ranges: Vec<(u64, RegionId)>,
    },
    /// An explicit key-to-region table with an optional fallback.
    Table {
        /// Keys with an explicit owner.
        entries: BTreeMap<Vec<u8>, RegionId>,
        /// Owner of keys not in `entries`; `None` makes them an error.
        default: Option<RegionId>,
    },
}

impl Rule {
    /// A validated [`Rule::Modulo`]; fails with [`RuleDefect::NoRegions`] if `regions` is empty.
    pub fn modulo(regions: Vec<RegionId>) -> Result<Self, OwnershipError> {
        let rule = Self::Modulo { regions };
        rule.validate()?;
        Ok(rule)
    }

    /// A validated [`Rule::HashRanges`].
    ///
    /// ```
    /// use concord_crdt::RegionId;
    /// use concord_ownership::{Rule, key_hash};
    ///
    /// let (a, b) = (RegionId::new(0), RegionId::new(1));
    /// let rule = Rule::hash_ranges(vec![(u64::MAX / 2, a), (u64::MAX, b)])?;
    /// let expected = if key_hash(b"alice") <= u64::MAX / 2 { a } else { b };
    /// assert_eq!(rule.owner(b"alice")?, expected);
    /// // Ranges that leave hashes uncovered are rejected.
    /// assert!(Rule::hash_ranges(vec![(100, a)]).is_err());
    /// # Ok::<(), concord_ownership::OwnershipError>(())
    /// ```
    pub fn hash_ranges(ranges: Vec<(u64, RegionId)>) -> Result<Self, OwnershipError> {
        let rule = Self::HashRanges { ranges };
        rule.validate()?;
        Ok(rule)
    }

    /// A [`Rule::Table`]; every table is valid.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use concord_crdt::RegionId;
    /// use concord_ownership::{OwnershipError, Rule};
    ///
    /// let entries = BTreeMap::from([(b"acme".to_vec(), RegionId::new(2))]);
    /// let rule = Rule::table(entries, None);
    /// assert_eq!(rule.owner(b"acme")?, RegionId::new(2));
    /// assert_eq!(rule.owner(b"globex"), Err(OwnershipError::NoOwner { key: b"globex".to_vec() }));
    /// # Ok::<(), OwnershipError>(())
    /// ```
    pub fn table(entries: BTreeMap<Vec<u8>, RegionId>, default: Option<RegionId>) -> Self {
        Self::Table { entries, default }
    }

    /// Checks that the rule assigns an owner to every key it accepts.
    pub fn validate(&self) -> Result<(), OwnershipError> {
        let defect = match self {
            Self::Modulo { regions } if regions.is_empty() => Some(RuleDefect::NoRegions),
            Self::Modulo { .. } | Self::Table { .. } => None,
            Self::HashRanges { ranges } => hash_ranges_defect(ranges),
        };
        match defect {
            Some(defect) => Err(OwnershipError::InvalidRule { defect }),
            None => Ok(()),
        }
    }

    /// The home region of `key` under this rule.
    pub fn owner(&self, key: &[u8]) -> Result<RegionId, OwnershipError> {
        self.validate()?;
        match self {
            Self::Modulo { regions } => {
                let id = parse_decimal_u64(key)
                    .ok_or_else(|| OwnershipError::NotAnInteger { key: key.to_vec() })?;
                // `validate` guarantees `regions` is not empty, so the
                // remainder is a valid index; usize -> u64 never truncates
                // on supported targets, and the remainder fits usize.
                let len = regions.len() as u64;
                let index = (id % len) as usize;
                Ok(regions[index])
            }
            Self::HashRanges { ranges } => {
                let hash = key_hash(key);
                // Bounds are sorted and the last is u64::MAX, so the first
                // range whose bound is >= hash exists and is the only one
                // containing it.
                let index = ranges.partition_point(|&(upper, _)| upper < hash);
                Ok(ranges[index].1)
            }
            Self::Table { entries, default } => entries
                .get(key)
                .copied()
                .or(*default)
                .ok_or_else(|| OwnershipError::NoOwner { key: key.to_vec() }),
        }
    }
}

fn hash_ranges_defect(ranges: &[(u64, RegionId)]) -> Option<RuleDefect> {
    let Some(&(last, _)) = ranges.last() else {
        return Some(RuleDefect::NoRanges);
    };
    if let Some(index) = ranges.windows(2).position(|w| w[1].0 <= w[0].0) {
        return Some(RuleDefect::UnsortedBounds { index: index + 1 });
    }
    (last != u64::MAX).then_some(RuleDefect::LastBoundNotMax { last })
}

/// Parses 1 to 20 ASCII digits into a `u64`; anything else is `None`.
fn parse_decimal_u64(key: &[u8]) -> Option<u64> {
    if key.is_empty() || key.len() > 20 {
        return None;
    }
    key.iter().try_fold(0u64, |acc, &b| {
        let digit = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return None,
        };
        acc.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ranges_are_rejected() {
        assert_eq!(
            Rule::hash_ranges(Vec::new()),
            Err(OwnershipError::InvalidRule {
                defect: RuleDefect::NoRanges
            })
        );
    }

    #[test]
    fn parse_decimal_bounds() {
        assert_eq!(parse_decimal_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal_u64(b"18446744073709551616"), None);
        assert_eq!(parse_decimal_u64(b"000000000000000000001"), None);
        assert_eq!(parse_decimal_u64(b"00000000000000000001"), Some(1));
        assert_eq!(parse_decimal_u64(b"-1"), None);
        assert_eq!(parse_decimal_u64(b"+1"), None);
        assert_eq!(parse_decimal_u64(b" 1"), None);
        assert_eq!(parse_decimal_u64(b""), None);
    }
}
