//! The replicated, epoch-stamped ownership map.

use std::collections::BTreeMap;

use concord_crdt::RegionId;
use serde::{Deserialize, Serialize};

use crate::{OwnershipError, Rule};

/// A fence set by a forced takeover: the writes `region` made to
/// `collection` after seq `after_seq`, under an epoch older than `epoch`,
/// were made by an owner that had already been replaced.
///
/// The fence is a point in the fenced region's own log, not a point in time:
/// every replica decides the same way for the same write.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    /// The collection taken over.
    pub collection: String,
    /// The region that was fenced (the old owner).
    pub region: RegionId,
    /// The highest seq of `region` that the new owner had applied when it
    /// took over: writes at or below it are kept, writes past it are fenced.
    pub after_seq: u64,
    /// The epoch the takeover created.
    pub epoch: u64,
    /// The region that took over.
    pub to: RegionId,
}

impl Fence {
    /// True when a write of `origin` at `seq` to `collection`, made under
    /// `write_epoch`, falls behind this fence.
    pub fn covers(&self, collection: &str, origin: RegionId, seq: u64, write_epoch: u64) -> bool {
        self.collection == collection
            && self.region == origin
            && seq > self.after_seq
            && write_epoch < self.epoch
    }
}

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
    /// Per collection, regions whose keys (by the rule) were taken over, and by whom.
    #[serde(default)]
    reassigned: BTreeMap<String, BTreeMap<RegionId, RegionId>>,
    /// Every fence set by a takeover, oldest first.
    #[serde(default)]
    fences: Vec<Fence>,
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

    /// The collections the map has a rule for, in order.
    pub fn collections(&self) -> impl Iterator<Item = &str> + '_ {
        self.rules.keys().map(String::as_str)
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
        self.owner_or(collection, key, None)
    }

    /// The home region of `key` in `collection`, with `default` as the
    /// collection's rule when the map has none (a rule from configuration).
    ///
    /// A key moved by [`OwnershipMap::move_keys`] belongs to the region it
    /// was moved to. Any other key is resolved by the rule, and if the rule's
    /// region was taken over ([`OwnershipMap::take_over`]), by the region
    /// that took it over.
    pub fn owner_or(
        &self,
        collection: &str,
        key: &[u8],
        default: Option<&Rule>,
    ) -> Result<RegionId, OwnershipError> {
        let rule = self.rules.get(collection).or(default).ok_or_else(|| {
            OwnershipError::UnknownCollection {
                collection: collection.to_owned(),
            }
        })?;
        if let Some(region) = self.override_of(collection, key) {
            return Ok(region);
        }
        let by_rule = rule.owner(key)?;
        Ok(self
            .reassigned
            .get(collection)
            .and_then(|r| r.get(&by_rule))
            .copied()
            .unwrap_or(by_rule))
    }

    /// Inserts `rule` for `collection` if the map has none, without bumping
    /// the epoch. Only for use right before a change that bumps it (so the
    /// rule travels with that change); returns true when it inserted.
    pub fn ensure_rule(&mut self, collection: &str, rule: &Rule) -> Result<bool, OwnershipError> {
        if self.rules.contains_key(collection) {
            return Ok(false);
        }
        rule.validate()?;
        self.rules.insert(collection.to_owned(), rule.clone());
        Ok(true)
    }

    /// Every fence set by a takeover, oldest first.
    pub fn fences(&self) -> &[Fence] {
        &self.fences
    }

    /// The fence that a write of `origin` at `seq` to `collection` under
    /// `write_epoch` falls behind, if any (see [`Fence::covers`]).
    pub fn fence_for(
        &self,
        collection: &str,
        origin: RegionId,
        seq: u64,
        write_epoch: u64,
    ) -> Option<&Fence> {
        self.fences
            .iter()
            .find(|f| f.covers(collection, origin, seq, write_epoch))
    }

    /// Forced takeover: `to` becomes the owner of every key of `from` in
    /// each of `collections`, and `from` is fenced after `after_seq` (the
    /// highest seq of `from` the new owner has applied). One epoch bump for
    /// the whole change; returns the new epoch.
    ///
    /// Keys moved to `from` explicitly move to `to`, and regions taken over
    /// by `from` earlier now belong to `to`. A region cannot take over from
    /// itself, and `collections` must not be empty.
    ///
    /// ```
    /// use concord_crdt::RegionId;
    /// use concord_ownership::{OwnershipMap, Rule};
    ///
    /// let (a, b) = (RegionId::new(0), RegionId::new(1));
    /// let mut map = OwnershipMap::new();
    /// map.set_rule("users", Rule::modulo(vec![a, b])?)?;
    /// let epoch = map.take_over(["users".to_string()], a, b, 17)?;
    /// assert_eq!(map.owner("users", b"42")?, b);
    /// // A write of `a` past seq 17 under the old epoch is fenced.
    /// assert!(map.fence_for("users", a, 18, epoch - 1).is_some());
    /// assert!(map.fence_for("users", a, 17, epoch - 1).is_none());
    /// assert!(map.fence_for("users", a, 18, epoch).is_none());
    /// # Ok::<(), concord_ownership::OwnershipError>(())
    /// ```
    pub fn take_over(
        &mut self,
        collections: impl IntoIterator<Item = String>,
        from: RegionId,
        to: RegionId,
        after_seq: u64,
    ) -> Result<u64, OwnershipError> {
        let collections: Vec<String> = collections.into_iter().collect();
        if from == to {
            return Err(OwnershipError::SelfTakeover { region: from });
        }
        if collections.is_empty() {
            return Err(OwnershipError::NothingToTakeOver);
        }
        let epoch = self.next_epoch()?;
        for collection in collections {
            if let Some(keys) = self.overrides.get_mut(&collection) {
                for owner in keys.values_mut() {
                    if *owner == from {
                        *owner = to;
                    }
                }
            }
            let reassigned = self.reassigned.entry(collection.clone()).or_default();
            for owner in reassigned.values_mut() {
                if *owner == from {
                    *owner = to;
                }
            }
            reassigned.insert(from, to);
            self.fences.push(Fence {
                collection,
                region: from,
                after_seq,
                epoch,
                to,
            });
        }
        self.epoch = epoch;
        Ok(epoch)
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
