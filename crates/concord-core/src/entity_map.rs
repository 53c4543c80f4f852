//! The engine's in-memory entity states, keyed by collection then key.

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

    fn insert(&mut self, key: &[u8], slot: Slot) {
        self.shard_mut(key).insert(MapKey::from_slice(key), slot);
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &Slot)> + '_ {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, slot)| (&k[..], slot)))
    }
}

/// One entity's state, and where the list of changed entities holds it.
///
/// The state is shared with that list and with the checkpoint that took it
/// (copy on write): listing or taking it is a reference, not a copy.
#[derive(Debug, Default)]
struct Slot {
    entity: Arc<Entity>,
    /// The take it was last listed for (see [`EntityMap::take_listed`]):
    /// the map's current one means it is in the list, at `listed_at`.
    epoch: u64,
    /// Its place in the list, while listed.
    listed_at: usize,
}

/// Applies `write` to `entity`: in place, or, if something else still
/// holds the state (a checkpoint being written), to a copy that replaces it
/// here (see [`Entity::applied`]).
fn apply_to(entity: &mut Arc<Entity>, write: &TaggedWrite) -> Result<Effect, CoreError> {
    if let Some(state) = Arc::get_mut(entity) {
        return state.apply(write);
    }
    let (state, effect) = entity.applied(write)?;
    *entity = Arc::new(state);
    Ok(effect)
}

/// Entities by collection, then by key. Two levels so a write finds its
/// entity by borrowing its collection and key, without building an owned
/// key.
///
/// The entities changed since the last checkpoint are listed, each once,
/// with their key and a reference to their current state: taking them for
/// a checkpoint ([`EntityMap::take_listed`]) is taking the list, in O(1),
/// with no lookup. Before, the list held keys only, and a checkpoint looked
/// each one up again to take its state: a second hash lookup (cache misses,
/// with a million entities) for every entity written.
///
/// A write to a listed entity lets go of the list's reference while it
/// applies, so the state changes in place, then lists the state again; a
/// state a taken checkpoint still holds is copied on write instead, so the
/// checkpoint keeps it as it was when taken.
#[derive(Debug)]
pub(crate) struct EntityMap {
    collections: HashMap<Collection, Keys>,
    /// The entities changed since the current take began, in the order
    /// they changed in, with their current states.
    listed: Vec<(EntityKey, Arc<Entity>)>,
    /// The current take (from 1: a slot of take 0 was never listed).
    epoch: u64,
    /// What the list holds of an entity while a write changes it in place.
    placeholder: Arc<Entity>,
    /// The copy of a collection's name the keys listed since the take
    /// began name it with (see [`EntityMap::list`]).
    listed_name: Option<Collection>,
}

impl Default for EntityMap {
    fn default() -> Self {
        Self {
            collections: HashMap::default(),
            listed: Vec::new(),
            epoch: 1,
            placeholder: Arc::default(),
            listed_name: None,
        }
    }
}

/// The copy of `collection`'s name in `cache` (see [`EntityMap::list`]),
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
                    epoch: 0,
                    listed_at: 0,
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

    /// Applies `write` to its entity (created if it does not exist yet) and
    /// lists the entity as changed. On error the entity is as it was, and
    /// one the write would have created does not exist.
    pub(crate) fn apply(&mut self, write: &TaggedWrite) -> Result<Effect, CoreError> {
        let (collection, key) = (&write.collection, &write.key[..]);
        if !self.collections.contains_key(collection) {
            self.collections.insert(collection.clone(), Keys::default());
        }
        let Some(keys) = self.collections.get_mut(collection) else {
            unreachable!("inserted above");
        };
        let shard = keys.shard_mut(key);
        let slot = shard.entry_ref(key).or_default();
        let listed = (slot.epoch == self.epoch)
            .then(|| self.listed.get_mut(slot.listed_at))
            .flatten();
        let Some((_, state)) = listed else {
            let result = apply_to(&mut slot.entity, write);
            if result.is_ok() {
                slot.epoch = self.epoch;
                slot.listed_at = self.listed.len();
                let name = take_name(&mut self.listed_name, collection);
                self.listed
                    .push((EntityKey::new(name, key.to_vec()), Arc::clone(&slot.entity)));
            } else if slot.entity.states().is_empty() {
                shard.remove(key);
            }
            return result;
        };
        // The list lets go while the write applies, so that the state
        // changes in place, then holds it again (changed or, on error, not).
        *state = Arc::clone(&self.placeholder);
        let result = apply_to(&mut slot.entity, write);
        *state = Arc::clone(&slot.entity);
        result
    }

    /// Sets an entity's state and lists it as changed.
    pub(crate) fn insert(&mut self, key: EntityKey, entity: Entity) {
        let slot = self
            .collections
            .entry(key.collection.clone())
            .or_default()
            .shard_mut(&key.key)
            .entry_ref(&key.key[..])
            .or_default();
        slot.entity = Arc::new(entity);
        match self.listed.get_mut(slot.listed_at) {
            Some((_, state)) if slot.epoch == self.epoch => *state = Arc::clone(&slot.entity),
            _ => {
                slot.epoch = self.epoch;
                slot.listed_at = self.listed.len();
                self.listed.push((key, Arc::clone(&slot.entity)));
            }
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

    /// Takes the entities changed since the last take, as they are now, in
    /// the order they changed in: O(1) (the list is handed over whole).
    /// Writes after it change copies of the states the take holds.
    pub(crate) fn take_listed(&mut self) -> Vec<(EntityKey, Arc<Entity>)> {
        self.epoch += 1;
        self.listed_name = None;
        // The next list is about as long as this one.
        let room = self.listed.len();
        std::mem::replace(&mut self.listed, Vec::with_capacity(room))
    }
}

#[cfg(test)]
mod tests {
    use concord_clock::{HlcTime, WallTime};
    use concord_crdt::{RegionId, VersionVector};

    use super::*;
    use crate::{Op, Policy};

    fn set(key: &str, seq: u64, value: &[u8]) -> TaggedWrite {
        let origin = RegionId::new(1);
        let wall = WallTime::from_micros(i64::try_from(seq).expect("small seq"));
        TaggedWrite {
            id: TaggedWrite::make_id(origin, seq, wall),
            origin,
            seq,
            hlc: HlcTime::from_u64(seq),
            wall,
            collection: Collection::new("c").expect("valid name"),
            key: key.as_bytes().to_vec(),
            context: VersionVector::new(),
            epoch: 0,
            policy: Policy::LwwHlc,
            dot: None,
            op: Op::Set(value.to_vec()),
        }
    }

    fn taken(map: &mut EntityMap) -> Vec<(Vec<u8>, Entity)> {
        map.take_listed()
            .into_iter()
            .map(|(k, e)| (k.key, Entity::clone(&e)))
            .collect()
    }

    fn state_of(write: &TaggedWrite) -> Entity {
        let mut e = Entity::new();
        e.apply(write).expect("applies");
        e
    }

    /// An entity written many times between takes is listed once, with its
    /// latest state; a take holds the states as they were when taken.
    #[test]
    fn a_take_lists_each_changed_entity_once_as_it_is_then() {
        let mut map = EntityMap::default();
        map.apply(&set("a", 1, b"1")).expect("applies");
        map.apply(&set("b", 2, b"2")).expect("applies");
        map.apply(&set("a", 3, b"3")).expect("applies");
        let first = map.take_listed();
        map.apply(&set("a", 4, b"4")).expect("applies");
        assert_eq!(
            first
                .iter()
                .map(|(k, e)| (k.key.clone(), Entity::clone(e)))
                .collect::<Vec<_>>(),
            vec![
                (b"a".to_vec(), state_of(&set("a", 3, b"3"))),
                (b"b".to_vec(), state_of(&set("b", 2, b"2"))),
            ],
            "in the order they changed in, as of the take"
        );
        assert_eq!(
            taken(&mut map),
            vec![(b"a".to_vec(), state_of(&set("a", 4, b"4")))]
        );
        assert!(taken(&mut map).is_empty(), "nothing changed since");
    }

    /// A write that fails leaves a listed entity listed, as it was, and
    /// creates no entity that did not exist.
    #[test]
    fn a_failed_write_changes_nothing_listed_or_not() {
        let mut map = EntityMap::default();
        map.apply(&set("a", 1, b"1")).expect("applies");
        // The same origin and seq with another value: a stamp collision.
        assert!(map.apply(&set("a", 1, b"other")).is_err());
        let mut bad_new = set("new", 2, b"x");
        bad_new.policy = Policy::Counter;
        assert!(map.apply(&bad_new).is_err());
        let c = Collection::new("c").expect("valid name");
        assert!(map.get(&c, b"new").is_none(), "not created");
        assert_eq!(
            taken(&mut map),
            vec![(b"a".to_vec(), state_of(&set("a", 1, b"1")))]
        );
        // Listed again by its next write after the take, failed or not.
        assert!(map.apply(&set("a", 1, b"other")).is_err());
        assert!(taken(&mut map).is_empty(), "a failed write lists nothing");
    }
}
