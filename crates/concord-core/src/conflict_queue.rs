//! The engine's in-memory view of the conflict queue.

use std::collections::{BTreeMap, BTreeSet};

use concord_clock::WallTime;

use crate::{ConflictItem, ConflictReason, EntityKey, ItemStatus, Version, WriteRef};

/// Which open item a new event belongs to: one per entity and kind, except
/// held future writes, which get one item each.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Concurrent(EntityKey),
    SiblingCap(EntityKey),
    Future(WriteRef),
    Fenced(WriteRef),
}

fn slot_of(item: &ConflictItem) -> Slot {
    let first = || {
        item.versions.first().map_or(
            WriteRef {
                origin: concord_crdt::RegionId::new(0),
                seq: 0,
            },
            |v| v.write,
        )
    };
    match &item.reason {
        ConflictReason::Fenced { .. } => Slot::Fenced(first()),
        ConflictReason::Concurrent => Slot::Concurrent(item.entity.clone()),
        ConflictReason::SiblingCap { .. } => Slot::SiblingCap(item.entity.clone()),
        ConflictReason::FutureTimestamp { .. } => Slot::Future(item.versions.first().map_or(
            WriteRef {
                origin: concord_crdt::RegionId::new(0),
                seq: 0,
            },
            |v| v.write,
        )),
    }
}

/// Items by id, the open ones indexed by slot, and what changed since the
/// last checkpoint.
#[derive(Debug, Default)]
pub(crate) struct ConflictQueue {
    items: BTreeMap<u64, ConflictItem>,
    open: BTreeMap<Slot, u64>,
    next_id: u64,
    position: u64,
    changed: BTreeSet<u64>,
    removed: Vec<u64>,
    /// Every write a fenced item (open or closed) names: each gets one item.
    fenced_writes: BTreeSet<WriteRef>,
}

impl ConflictQueue {
    pub(crate) fn new(items: Vec<ConflictItem>, next_id: u64, position: u64) -> Self {
        let mut q = Self {
            next_id,
            position,
            ..Self::default()
        };
        for item in items {
            if matches!(item.reason, ConflictReason::Fenced { .. }) {
                q.fenced_writes
                    .extend(item.versions.iter().map(|v| v.write));
            }
            if item.status.is_open() {
                q.open.insert(slot_of(&item), item.id);
            }
            q.items.insert(item.id, item);
        }
        q
    }

    fn bump(&mut self) -> u64 {
        self.position += 1;
        self.position
    }

    /// Opens an item, or updates the versions of the open one in the same slot.
    /// Returns true when a new item was opened.
    fn upsert(
        &mut self,
        slot: Slot,
        entity: &EntityKey,
        reason: ConflictReason,
        versions: Vec<Version>,
        now: WallTime,
    ) -> bool {
        let position = self.bump();
        if let Some(id) = self.open.get(&slot).copied()
            && let Some(item) = self.items.get_mut(&id)
        {
            if item.versions != versions || item.reason != reason {
                item.versions = versions;
                item.reason = reason;
                item.position = position;
                self.changed.insert(id);
            }
            return false;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.items.insert(
            id,
            ConflictItem {
                id,
                position,
                entity: entity.clone(),
                reason,
                versions,
                opened: now,
                status: ItemStatus::Open,
            },
        );
        self.open.insert(slot, id);
        self.changed.insert(id);
        true
    }

    fn close_slot(&mut self, slot: &Slot, status: ItemStatus) -> bool {
        let Some(id) = self.open.remove(slot) else {
            return false;
        };
        let position = self.bump();
        if let Some(item) = self.items.get_mut(&id) {
            item.status = status;
            item.position = position;
            self.changed.insert(id);
        }
        true
    }

    /// A `queue` entity has concurrent versions: open or update its item.
    pub(crate) fn concurrent(
        &mut self,
        entity: &EntityKey,
        versions: Vec<Version>,
        now: WallTime,
    ) -> bool {
        self.upsert(
            Slot::Concurrent(entity.clone()),
            entity,
            ConflictReason::Concurrent,
            versions,
            now,
        )
    }

    /// An `mv` entity passed its sibling cap.
    pub(crate) fn sibling_cap(
        &mut self,
        entity: &EntityKey,
        max: u32,
        versions: Vec<Version>,
        now: WallTime,
    ) -> bool {
        self.upsert(
            Slot::SiblingCap(entity.clone()),
            entity,
            ConflictReason::SiblingCap { max },
            versions,
            now,
        )
    }

    /// A remote write from the future is held.
    pub(crate) fn future(
        &mut self,
        entity: &EntityKey,
        version: Version,
        ahead_micros: i64,
        now: WallTime,
    ) -> bool {
        self.upsert(
            Slot::Future(version.write),
            entity,
            ConflictReason::FutureTimestamp { ahead_micros },
            vec![version],
            now,
        )
    }

    /// A fenced write was refused (or found applied once its fence was
    /// learned). Returns true when a new item was opened.
    pub(crate) fn fenced(
        &mut self,
        entity: &EntityKey,
        version: Version,
        reason: ConflictReason,
        now: WallTime,
    ) -> bool {
        if !self.fenced_writes.insert(version.write) {
            return false;
        }
        self.upsert(
            Slot::Fenced(version.write),
            entity,
            reason,
            vec![version],
            now,
        )
    }

    /// The entity's concurrent versions collapsed (a write covered them all).
    pub(crate) fn close_concurrent(
        &mut self,
        entity: &EntityKey,
        by: WriteRef,
        at: WallTime,
    ) -> bool {
        self.close_slot(
            &Slot::Concurrent(entity.clone()),
            ItemStatus::Resolved { by, at },
        )
    }

    /// The entity is back under its sibling cap.
    pub(crate) fn close_sibling_cap(
        &mut self,
        entity: &EntityKey,
        by: WriteRef,
        at: WallTime,
    ) -> bool {
        self.close_slot(
            &Slot::SiblingCap(entity.clone()),
            ItemStatus::Resolved { by, at },
        )
    }

    /// A held future write was applied.
    pub(crate) fn release_future(&mut self, write: WriteRef, at: WallTime) -> bool {
        self.close_slot(&Slot::Future(write), ItemStatus::Released { at })
    }

    /// A resolution write arrived: close every open item of the entity whose
    /// versions it names. Returns how many closed.
    pub(crate) fn resolve(
        &mut self,
        entity: &EntityKey,
        resolves: &[WriteRef],
        by: WriteRef,
        at: WallTime,
    ) -> usize {
        let slots: Vec<Slot> = self
            .open
            .iter()
            .filter_map(|(slot, id)| {
                let item = self.items.get(id)?;
                let named = item.versions.iter().all(|v| resolves.contains(&v.write));
                (item.entity == *entity && named).then(|| slot.clone())
            })
            .collect();
        slots
            .iter()
            .filter(|s| self.close_slot(s, ItemStatus::Resolved { by, at }))
            .count()
    }

    pub(crate) fn get(&self, id: u64) -> Option<&ConflictItem> {
        self.items.get(&id)
    }

    /// Items whose last change is after `position`, oldest change first.
    pub(crate) fn changed_after(&self, position: u64) -> Vec<&ConflictItem> {
        let mut out: Vec<&ConflictItem> = self
            .items
            .values()
            .filter(|i| i.position > position)
            .collect();
        out.sort_by_key(|i| i.position);
        out
    }

    /// Every item (open and closed, not purged), by id.
    pub(crate) fn items(&self) -> impl Iterator<Item = &ConflictItem> + '_ {
        self.items.values()
    }

    /// How many items are open: the queue depth.
    pub(crate) fn depth(&self) -> usize {
        self.open.len()
    }

    /// Drops closed items whose last change is before `before`; returns how many.
    pub(crate) fn purge_closed_before(&mut self, before: WallTime) -> usize {
        let gone: Vec<u64> = self
            .items
            .values()
            .filter(|i| match &i.status {
                ItemStatus::Open => false,
                ItemStatus::Resolved { at, .. } | ItemStatus::Released { at } => *at < before,
            })
            .map(|i| i.id)
            .collect();
        for id in &gone {
            self.items.remove(id);
            self.changed.remove(id);
        }
        self.removed.extend(&gone);
        gone.len()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }

    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Changed items and removed ids since the last checkpoint, and forget them.
    pub(crate) fn take_delta(&mut self) -> (Vec<ConflictItem>, Vec<u64>) {
        let changed = std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|id| self.items.get(&id).cloned())
            .collect();
        (changed, std::mem::take(&mut self.removed))
    }
}
