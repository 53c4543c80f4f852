//! The replicated, epoch-stamped ownership map.

use std::collections::BTreeMap;

use concord_crdt::RegionId;
use serde::{Deserialize, Serialize};

use crate::{OwnershipError, Rule};

/// What [`OwnershipMap::merge`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The local map had the higher epoch and was kept.
    KeptLocal,
    /// The remote map had the higher epoch and replaced the local one.
    AdoptedRemote,
    /// Both maps were identical.
    Identical,
}

/// Home regions of every `(collection, key)`: a rule per collection, per-key
/// overrides for keys moved by a handoff or takeover, and an epoch.
///
/// Every successful change bumps the epoch by one. Replicas converge with
/// [`OwnershipMap::merge`]: the higher epoch wins whole, and two different
/// maps at the same epoch are an [`OwnershipError::EpochConflict`], so
/// ownership changes must be made by one authority at a time.
///
/// ```
/// use concord_crdt::RegionId;
/// use concord_ownership::{OwnershipMap, Rule};
///
/// let (a, b) = (RegionId::new(0), RegionId::new(1));
/// let mut map = OwnershipMap::new();
/// assert_eq!(map.epoch(), 0);
/// map.set_rule("users", Rule::modulo(vec![a, b])?)?;
/// assert_eq!(map.owner("users", b"42")?, a);
///
/// // Hand user 42 over to region B.
/// map.move_keys("users", [b"42".to_vec()], b)?;
/// assert_eq!(map.owner("users", b"42")?, b);
/// assert_eq!(map.epoch(), 2);
///
/// // A replica that missed the move adopts the newer map.
/// let mut stale = OwnershipMap::new();
/// stale.merge(&map)?;
/// assert_eq!(stale, map);
/// # Ok::<(), concord_ownership::OwnershipError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipMap {
    epoch: u64,
    rules: BTreeMap<String, Rule>,
    /// Per collection, keys whose owner was set explicitly; never holds an empty inner map.
    overrides: BTreeMap<String, BTreeMap<Vec<u8>, RegionId>>,
}

impl OwnershipMap {
    /// An empty map at epoch 0: no collection has an owner yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The epoch: how many changes this map has seen.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The rule of `collection`, if it has one.
    pub fn rule(&self, collection: &str) -> Option<&Rule> {
        self.rules.get(collection)
    }

    /// The explicit owner of `key` in `collection` set by [`OwnershipMap::move_keys`], if any.
    pub fn override_of(&self, collection: &str, key: &[u8]) -> Option<RegionId> {
        self.overrides.get(collection)?.get(key).copied()
    }

    /// The home region of `key` in `collection`.
    ///
    /// A key moved by [`OwnershipMap::move_keys`] belongs to the region it
    /// was moved to; every other key is resolved by the collection's rule.
    pub fn owner(&self, collection: &str, key: &[u8]) -> Result<RegionId, OwnershipError> {
        let rule = self
            .rules
            .get(collection)
            .ok_or_else(|| OwnershipError::UnknownCollection {
                collection: collection.to_owned(),
            })?;
        match self.override_of(collection, key) {
            Some(region) => Ok(region),
            None => rule.owner(key),
        }
    }

    /// Sets (or replaces) the rule of `collection` and bumps the epoch.
    ///
    /// Overrides of the collection's keys stay in force. Returns the new epoch.
    pub fn set_rule(
        &mut self,
        collection: impl Into<String>,
        rule: Rule,
    ) -> Result<u64, OwnershipError> {
        rule.validate()?;
        let epoch = self.next_epoch()?;
        self.rules.insert(collection.into(), rule);
        self.epoch = epoch;
        Ok(epoch)
    }

    /// Makes `to` the owner of every key in `keys` of `collection` and bumps the epoch once.
    ///
    /// The collection must already have a rule. Returns the new epoch.
    pub fn move_keys(
        &mut self,
        collection: &str,
        keys: impl IntoIterator<Item = Vec<u8>>,
        to: RegionId,
    ) -> Result<u64, OwnershipError> {
        if !self.rules.contains_key(collection) {
            return Err(OwnershipError::UnknownCollection {
                collection: collection.to_owned(),
            });
        }
        let epoch = self.next_epoch()?;
        let mut moved = keys.into_iter().map(|key| (key, to)).peekable();
        if moved.peek().is_some() {
            self.overrides
                .entry(collection.to_owned())
                .or_default()
                .extend(moved);
        }
        self.epoch = epoch;
        Ok(epoch)
    }

    /// Merges a replica of the map into this one.
    ///
    /// The map with the higher epoch wins whole. Equal epochs with equal
    /// content are [`MergeOutcome::Identical`]; equal epochs with different
    /// content are [`OwnershipError::EpochConflict`] and leave `self`
    /// untouched. Merging in either direction gives the same result.
    ///
    /// ```
    /// use concord_crdt::RegionId;
    /// use concord_ownership::{MergeOutcome, OwnershipError, OwnershipMap, Rule};
    ///
    /// let mut left = OwnershipMap::new();
    /// let mut right = OwnershipMap::new();
    /// left.set_rule("users", Rule::modulo(vec![RegionId::new(0)])?)?;
    /// right.set_rule("users", Rule::modulo(vec![RegionId::new(1)])?)?;
    /// // Both are at epoch 1 with different content.
    /// assert_eq!(left.merge(&right), Err(OwnershipError::EpochConflict { epoch: 1 }));
    ///
    /// right.set_rule("orders", Rule::modulo(vec![RegionId::new(1)])?)?;
    /// assert_eq!(left.merge(&right)?, MergeOutcome::AdoptedRemote);
    /// assert_eq!(left, right);
    /// # Ok::<(), OwnershipError>(())
    /// ```
    pub fn merge(&mut self, other: &Self) -> Result<MergeOutcome, OwnershipError> {
        use std::cmp::Ordering;
        match self.epoch.cmp(&other.epoch) {
            Ordering::Greater => Ok(MergeOutcome::KeptLocal),
            Ordering::Less => {
                self.clone_from(other);
                Ok(MergeOutcome::AdoptedRemote)
            }
            Ordering::Equal if self == other => Ok(MergeOutcome::Identical),
            Ordering::Equal => Err(OwnershipError::EpochConflict { epoch: self.epoch }),
        }
    }

    fn next_epoch(&self) -> Result<u64, OwnershipError> {
        self.epoch
            .checked_add(1)
            .ok_or(OwnershipError::EpochOverflow)
    }
}
