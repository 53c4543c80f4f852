//! The engine's in-memory entity states, keyed by collection then key.

use std::collections::VecDeque;
use std::sync::Arc;

use foldhash::HashMap;
use foldhash::fast::RandomState;

use crate::{Collection, CoreError, Effect, Entity, EntityKey, TaggedWrite};

/// A key as the map holds it: up to [`INLINE_KEY`] bytes in the map's own
/// table, longer ones on the heap. A lookup compares the key it finds with
/// the one it is given; a key on the heap is one more cache miss on every
/// write (with a million random keys, most of them miss), and one more
/// allocation per entity. At 16 bytes inline the key takes the 24 bytes a
/// `Vec` does.
type MapKey = smallvec::SmallVec<[u8; INLINE_KEY]>;

/// The longest key kept inline (see [`MapKey`]).
const INLINE_KEY: usize = 16;

/// One shard of a collection's entities. `hashbrown`'s map, for
/// `entry_ref`: a write finds (or makes) its slot with one lookup, and
/// copies the key only when the entity is new.
type Shard = hashbrown::HashMap<MapKey, Slot, RandomState>;

/// How many entities [`EntityMap::warm`] reads ahead at a time: a few
/// cache lines each, well within the core's cache until they are used.
pub(crate) const WARM_GROUP: usize = 256;

/// How many shards a collection's entities are spread over.
const SHARDS: usize = 64;

/// One collection's entities by key, in [`SHARDS`] maps chosen by a hash of
/// the key (with a seed of its own, independent of the maps').
///
/// A hash map grows by moving every entry to a table twice the size, all at
/// once: one map of a million entities would stall the engine's thread (and
/// every write behind it) while it moves them all. Shards grow one at a
/// time, each moving about 1/64 of the entries.
#[derive(Debug)]
struct Keys {
    shards: Vec<Shard>,
    pick: RandomState,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            pick: RandomState::default(),
        }
    }
}

impl Keys {
    fn index(&self, key: &[u8]) -> usize {
        use std::hash::BuildHasher;
        // The top bits: the hash's best mixed.
        usize::try_from(self.pick.hash_one(key) >> 58).unwrap_or(0) % SHARDS
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        &self.shards[self.index(key)]
    }

    fn shard_mut(&mut self, key: &[u8]) -> &mut Shard {
        let i = self.index(key);
        &mut self.shards[i]
    }

    fn get(&self, key: &[u8]) -> Option<&Slot> {
        self.shard(key).get(key)
    }

    fn get_mut(&mut self, key: &[u8]) -> Option<&mut Slot> {
        self.shard_mut(key).get_mut(key)
    }

    fn insert(&mut self, key: &[u8], slot: Slot) {
        self.shard_mut(key).insert(MapKey::from_slice(key), slot);
    }

    fn remove(&mut self, key: &[u8]) {
        self.shard_mut(key).remove(key);
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &Slot)> + '_ {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, slot)| (&k[..], slot)))
    }
}

/// One entity's state and whether it changed since the last checkpoint.
///
/// The state is shared with the checkpoint that took it (copy on write): a
/// checkpoint takes a reference, not a copy, and a write clones the state
/// only while a checkpoint still holds it.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) entity: Arc<Entity>,
    pub(crate) dirty: bool,
    /// The take it turned dirty in (see [`EntityMap::begin_take`]): dirty
    /// in an earlier take than the map's current one means the take in
    /// progress still has to collect it.
    epoch: u64,
}

impl Slot {
    /// Applies `write` to the state: in place, or, if a checkpoint still
    /// holds the state, to a copy that replaces it here (see
    /// [`Entity::applied`]).
    pub(crate) fn apply(&mut self, write: &TaggedWrite) -> Result<Effect, CoreError> {
        if let Some(entity) = Arc::get_mut(&mut self.entity) {
            return entity.apply(write);
        }
        let (entity, effect) = self.entity.applied(write)?;
        self.entity = Arc::new(entity);
        Ok(effect)
    }
}

/// Entities by collection, then by key. Two levels so a write finds its
/// entity by borrowing its collection and key, without building an owned
/// key. The dirty flag lives beside the state, and the keys that turned
/// dirty are listed, so a checkpoint visits only them, not every entity.
///
/// Taking the changed entities for a checkpoint visits each of them (a hash
/// lookup, a reference count: with a million entities, mostly cache
/// misses), so it can be spread out: [`EntityMap::begin_take`] starts a
/// take in O(1), [`EntityMap::collect`] visits some of the listed keys at a
/// time, and in between, a write to an entity the take has not collected
/// yet collects it first (in [`EntityMap::slot`]), so the take still holds
/// every entity as it was when the take began.
#[derive(Debug, Default)]
pub(crate) struct EntityMap {
    collections: HashMap<Collection, Keys>,
    /// Keys whose slot turned dirty since the current take began (each
    /// once; a key removed since may still be listed).
    dirty: Vec<EntityKey>,
    /// The current take: slots dirty in an earlier one are the take in
    /// progress's to collect.
    epoch: u64,
    /// The keys the take in progress has still to visit, in the order they
    /// turned dirty in (a queue: draining a step's keys from the front of a
    /// vector moved every key left after each step, quadratic in a large
    /// take).
    pending: VecDeque<EntityKey>,
    /// What the take in progress collected so far.
    collected: Vec<(EntityKey, Arc<Entity>)>,
    /// The copy of a collection's name the keys listed since the take
    /// began name it with (see [`EntityMap::note_dirty`]).
    dirty_name: Option<Collection>,
    /// The same for the keys the take in progress collects at a write.
    collected_name: Option<Collection>,
}

/// The copy of `collection`'s name in `cache` (see [`EntityMap::note_dirty`]),
/// made if `cache` holds another collection's or none.
fn take_name(cache: &mut Option<Collection>, collection: &Collection) -> Collection {
    match cache {
        Some(name) if name.as_str() == collection.as_str() => name.clone(),
        _ => cache.insert(collection.unshared()).clone(),
    }
}

impl EntityMap {
    pub(crate) fn from_checkpoint(entities: Vec<(EntityKey, Entity)>) -> Self {
        let mut map = Self::default();
        for (k, entity) in entities {
            map.collections.entry(k.collection).or_default().insert(
                &k.key,
                Slot {
                    entity: Arc::new(entity),
                    dirty: false,
                    epoch: 0,
                },
            );
        }
        map
    }

    pub(crate) fn get(&self, collection: &Collection, key: &[u8]) -> Option<&Entity> {
        self.collections
            .get(collection)
            .and_then(|m| m.get(key))
            .map(|s| &*s.entity)
    }

    /// Reads the map's lines of these entities into the cache, ahead of
    /// the writes to them.
    ///
    /// With a million entities a write's lookup misses the cache two or
    /// three times in a row (the table's control bytes, its bucket, the
    /// state), and a write does too much else between lookups for the
    /// processor to overlap one write's misses with the next's. This loop
    /// does nothing but the lookups, each independent of the one before, so
    /// their misses overlap; the writes that follow (a batch's worth, whose
    /// lines stay in the cache) then find their entities there.
    pub(crate) fn warm<'a>(&self, keys: impl IntoIterator<Item = (&'a Collection, &'a [u8])>) {
        let mut last: Option<(&Collection, &Keys)> = None;
        let mut seen = 0usize;
        for (collection, key) in keys {
            let keys = match last {
                Some((name, keys)) if name == collection => keys,
                _ => {
                    let Some(keys) = self.collections.get(collection) else {
                        continue;
                    };
                    last = Some((collection, keys));
                    keys
                }
            };
            if let Some(slot) = keys.get(key) {
                seen = seen
                    .wrapping_add(Arc::strong_count(&slot.entity))
                    .wrapping_add(slot.entity.states().len());
            }
        }
        std::hint::black_box(seen);
    }

    /// The slot of the entity, created empty if it does not exist yet.
    ///
    /// The caller may change the state and mark the slot dirty: if the take
    /// in progress has not collected this entity yet, it is collected first,
    /// as it is (see [`EntityMap`]).
    pub(crate) fn slot(&mut self, collection: &Collection, key: &[u8]) -> &mut Slot {
        if !self.collections.contains_key(collection) {
            self.collections.insert(collection.clone(), Keys::default());
        }
        let Some(keys) = self.collections.get_mut(collection) else {
            unreachable!("inserted above");
        };
        let slot = keys.shard_mut(key).entry_ref(key).or_default();
        if slot.dirty && slot.epoch != self.epoch {
            let name = take_name(&mut self.collected_name, collection);
            self.collected
                .push((EntityKey::new(name, key.to_vec()), Arc::clone(&slot.entity)));
            slot.dirty = false;
        }
        if !slot.dirty {
            slot.epoch = self.epoch;
        }
        slot
    }

    /// Lists the key of a slot the caller just turned dirty (from clean).
    ///
    /// The listed keys name their collection with this take's own copy of
    /// the name (see [`Collection::unshared`]): the checkpoint writer drops
    /// the keys of the take before while the engine lists these, and with
    /// one shared name every listing and every drop raised or lowered the
    /// same count.
    pub(crate) fn note_dirty(&mut self, collection: &Collection, key: &[u8]) {
        let name = take_name(&mut self.dirty_name, collection);
        self.dirty.push(EntityKey::new(name, key.to_vec()));
    }

    pub(crate) fn remove(&mut self, collection: &Collection, key: &[u8]) {
        if let Some(keys) = self.collections.get_mut(collection) {
            if let Some(slot) = keys.get_mut(key)
                && slot.dirty
                && slot.epoch != self.epoch
            {
                // The take in progress holds it as it was.
                self.collected.push((
                    EntityKey::new(collection.clone(), key.to_vec()),
                    Arc::clone(&slot.entity),
                ));
            }
            keys.remove(key);
        }
    }

    /// Sets an entity's state and marks it changed.
    pub(crate) fn insert(&mut self, key: EntityKey, entity: Entity) {
        let slot = self.slot(&key.collection, &key.key);
        slot.entity = Arc::new(entity);
        if !std::mem::replace(&mut slot.dirty, true) {
            self.dirty.push(key);
        }
    }

    /// Every entity with its key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (EntityKey, &Entity)> + '_ {
        self.collections.iter().flat_map(|(c, keys)| {
            keys.iter()
                .map(move |(k, s)| (EntityKey::new(c.clone(), k.to_vec()), &*s.entity))
        })
    }

    /// The entities of one collection, with their keys.
    pub(crate) fn in_collection<'a>(
        &'a self,
        collection: &Collection,
    ) -> impl Iterator<Item = (&'a [u8], &'a Entity)> + 'a {
        self.collections
            .get(collection)
            .into_iter()
            .flat_map(|keys| keys.iter().map(|(k, s)| (k, &*s.entity)))
    }

    /// Whether a take is in progress (begun, not yet finished by
    /// [`EntityMap::finish_take`]), as far as it shows: one that has
    /// nothing to collect needs no finishing.
    fn taking(&self) -> bool {
        !self.pending.is_empty() || !self.collected.is_empty()
    }

    /// Starts a take of the entities changed since the last one, as they
    /// are now: O(1). A take in progress must be finished first.
    pub(crate) fn begin_take(&mut self) {
        debug_assert!(!self.taking(), "a take is already in progress");
        // The emptied queue's room is the next dirty list's (a take lists
        // about as many keys as the one before); both conversions keep
        // their buffer and move nothing (the queue is empty).
        let emptied = Vec::from(std::mem::take(&mut self.pending));
        self.pending = VecDeque::from(std::mem::replace(&mut self.dirty, emptied));
        self.dirty_name = None;
        self.collected_name = None;
        self.collected.reserve(self.pending.len());
        self.epoch += 1;
    }

    /// Visits up to `max` of the keys the take in progress has still to
    /// collect; true once none is left.
    pub(crate) fn collect(&mut self, max: usize) -> bool {
        // In the order entities turned dirty in, which the delta keeps; each
        // group's entities read into the cache first (see `warm`).
        let mut left = max;
        while left > 0 && !self.pending.is_empty() {
            let group = left.min(WARM_GROUP);
            self.warm(
                self.pending
                    .iter()
                    .take(group)
                    .map(|k| (&k.collection, &k.key[..])),
            );
            self.collect_warmed(group);
            left -= group;
        }
        self.pending.is_empty()
    }

    /// Visits up to `max` of the keys the take in progress has still to
    /// collect.
    fn collect_warmed(&mut self, max: usize) {
        for _ in 0..max {
            let Some(key) = self.pending.pop_front() else {
                break;
            };
            let Some(slot) = self
                .collections
                .get_mut(&key.collection)
                .and_then(|m| m.get_mut(&key.key))
            else {
                continue; // removed since
            };
            // Dirty in this take's epoch: collected at a write already.
            if slot.dirty && slot.epoch != self.epoch {
                slot.dirty = false;
                let entity = Arc::clone(&slot.entity);
                self.collected.push((key, entity));
            }
        }
    }

    /// The take in progress, once [`EntityMap::collect`] has visited every
    /// key.
    pub(crate) fn finish_take(&mut self) -> Vec<(EntityKey, Arc<Entity>)> {
        debug_assert!(self.pending.is_empty(), "keys left to collect");
        std::mem::take(&mut self.collected)
    }
}
