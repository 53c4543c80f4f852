//! The engine's in-memory entity states, keyed by collection then key.

use std::sync::Arc;

use foldhash::HashMap;
use foldhash::fast::RandomState;

use crate::{Collection, Entity, EntityKey};

/// One shard of a collection's entities. `hashbrown`'s map, for
/// `entry_ref`: a write finds (or makes) its slot with one lookup, and
/// copies the key only when the entity is new.
type Shard = hashbrown::HashMap<Vec<u8>, Slot, RandomState>;

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

    fn insert(&mut self, key: Vec<u8>, slot: Slot) {
        self.shard_mut(&key).insert(key, slot);
    }

    fn remove(&mut self, key: &[u8]) {
        self.shard_mut(key).remove(key);
    }

    fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Slot)> + '_ {
        self.shards.iter().flat_map(|s| s.iter())
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
}

impl Slot {
    /// The state, to change (cloned first if a checkpoint still holds it).
    pub(crate) fn entity_mut(&mut self) -> &mut Entity {
        Arc::make_mut(&mut self.entity)
    }
}

/// Entities by collection, then by key. Two levels so a write finds its
/// entity by borrowing its collection and key, without building an owned
/// key. The dirty flag lives beside the state, and the keys that turned
/// dirty are listed, so a checkpoint visits only them, not every entity.
#[derive(Debug, Default)]
pub(crate) struct EntityMap {
    collections: HashMap<Collection, Keys>,
    /// Keys whose slot turned dirty since the last [`EntityMap::take_dirty`]
    /// (each once; a key removed since may still be listed).
    dirty: Vec<EntityKey>,
}

impl EntityMap {
    pub(crate) fn from_checkpoint(entities: Vec<(EntityKey, Entity)>) -> Self {
        let mut map = Self::default();
        for (k, entity) in entities {
            map.collections.entry(k.collection).or_default().insert(
                k.key,
                Slot {
                    entity: Arc::new(entity),
                    dirty: false,
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

    /// The slot of the entity, created empty if it does not exist yet.
    pub(crate) fn slot(&mut self, collection: &Collection, key: &[u8]) -> &mut Slot {
        if !self.collections.contains_key(collection) {
            self.collections.insert(collection.clone(), Keys::default());
        }
        let Some(keys) = self.collections.get_mut(collection) else {
            unreachable!("inserted above");
        };
        keys.shard_mut(key).entry_ref(key).or_default()
    }

    /// Lists a key whose slot the caller just turned dirty (from clean).
    pub(crate) fn note_dirty(&mut self, key: EntityKey) {
        self.dirty.push(key);
    }

    pub(crate) fn remove(&mut self, collection: &Collection, key: &[u8]) {
        if let Some(keys) = self.collections.get_mut(collection) {
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
                .map(move |(k, s)| (EntityKey::new(c.clone(), k.clone()), &*s.entity))
        })
    }

    /// The entities of one collection, with their keys.
    pub(crate) fn in_collection<'a>(
        &'a self,
        collection: &Collection,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Entity)> + 'a {
        self.collections
            .get(collection)
            .into_iter()
            .flat_map(|keys| keys.iter().map(|(k, s)| (k, &*s.entity)))
    }

    /// The entities changed since the last call, and forget that they
    /// changed. The states are shared, not copied (see [`Slot`]).
    pub(crate) fn take_dirty(&mut self) -> Vec<(EntityKey, Arc<Entity>)> {
        let listed = std::mem::take(&mut self.dirty);
        let mut out = Vec::with_capacity(listed.len());
        for key in listed {
            let Some(slot) = self
                .collections
                .get_mut(&key.collection)
                .and_then(|m| m.get_mut(&key.key))
            else {
                continue; // removed since
            };
            if std::mem::replace(&mut slot.dirty, false) {
                let entity = Arc::clone(&slot.entity);
                out.push((key, entity));
            }
        }
        out
    }
}
