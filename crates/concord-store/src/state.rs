//! The checkpointed state: entities, conflict queue, loser log, cursors and
//! engine metadata, each in its own tree.
//!
//! A checkpoint writes all four trees in one sled transaction, which sled
//! recovers whole or not at all. Separate trees (rather than one tree with
//! key prefixes and one `Batch`) keep each kind of record in its own key
//! space: a scan of the entities never walks the queue, a tree's name says
//! what a corrupt record was, and a kind can be dropped or rebuilt alone.
//! A transaction cannot scan, so the loser records to purge are listed
//! before it; the store has one writer (`&mut self`), so none can appear in
//! between.

use std::collections::BTreeMap;
use std::convert::Infallible;

use concord_core::{Checkpoint, CheckpointDelta, ConflictItem, CoreError, EngineMeta, LoserRecord};
use concord_crdt::RegionId;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Batch, Db, Tree};

use crate::layout::{
    ENTITIES, LOSERS, META, META_CURSORS, META_ENGINE, QUEUE, entity_key, id_key, parse_entity_key,
    parse_id_key,
};
use crate::record::{backend, corrupt, decode, encode};

const ENTITY: &str = "entity";
const ITEM: &str = "conflict item";
const LOSER: &str = "loser record";
const CURSORS: &str = "checkpoint cursors";
const ENGINE: &str = "engine metadata";

/// The trees a checkpoint writes.
pub(crate) struct State {
    entities: Tree,
    queue: Tree,
    losers: Tree,
    meta: Tree,
}

impl State {
    /// Opens (or creates) the trees in `db`.
    pub(crate) fn open(db: &Db) -> Result<Self, CoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        Ok(Self {
            entities: tree(ENTITIES)?,
            queue: tree(QUEUE)?,
            losers: tree(LOSERS)?,
            meta: tree(META)?,
        })
    }

    /// Applies `delta` atomically. Not flushed: the caller flushes.
    pub(crate) fn apply(&self, delta: &CheckpointDelta) -> Result<(), CoreError> {
        let mut entities = Batch::default();
        for (key, entity) in &delta.entities {
            entities.insert(entity_key(key), encode(ENTITY, entity)?);
        }

        // A batch keeps the last operation on each key: removals win over
        // upserts of the same delta.
        let mut queue = Batch::default();
        for item in &delta.queue {
            queue.insert(&id_key(item.id)[..], encode(ITEM, item)?);
        }
        for id in &delta.queue_removed {
            queue.remove(&id_key(*id)[..]);
        }

        let mut losers = Batch::default();
        let through = delta.losers_purged_through;
        for loser in &delta.losers {
            if through.is_none_or(|t| loser.id > t) {
                losers.insert(&id_key(loser.id)[..], encode(LOSER, loser)?);
            }
        }
        if let Some(through) = through {
            for entry in self.losers.range(..=id_key(through)) {
                let (key, _) = entry.map_err(backend)?;
                losers.remove(key);
            }
        }

        let cursors: BTreeMap<RegionId, u64> = delta.cursors.iter().copied().collect();
        let cursors: Vec<(RegionId, u64)> = cursors.into_iter().collect();
        let mut meta = Batch::default();
        meta.insert(META_CURSORS, encode(CURSORS, &cursors)?);
        meta.insert(META_ENGINE, encode(ENGINE, &delta.meta)?);

        (&self.entities, &self.queue, &self.losers, &self.meta)
            .transaction(|(e, q, l, m)| {
                e.apply_batch(&entities)?;
                q.apply_batch(&queue)?;
                l.apply_batch(&losers)?;
                m.apply_batch(&meta)?;
                Ok::<(), ConflictableTransactionError<Infallible>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => backend(e),
                TransactionError::Abort(never) => match never {},
            })
    }

    /// Reads the whole checkpoint (empty when none was taken).
    pub(crate) fn load(&self) -> Result<Checkpoint, CoreError> {
        let cursors = match self.meta.get(META_CURSORS).map_err(backend)? {
            Some(bytes) => decode(CURSORS, META, META_CURSORS, &bytes)?,
            None => Vec::new(),
        };
        let meta: EngineMeta = match self.meta.get(META_ENGINE).map_err(backend)? {
            Some(bytes) => decode(ENGINE, META, META_ENGINE, &bytes)?,
            None => EngineMeta::default(),
        };

        let mut entities = Vec::new();
        for entry in &self.entities {
            let (key, value) = entry.map_err(backend)?;
            let entity_key =
                parse_entity_key(&key).map_err(|reason| corrupt(ENTITY, ENTITIES, &key, reason))?;
            entities.push((entity_key, decode(ENTITY, ENTITIES, &key, &value)?));
        }

        let queue = load_by_id(&self.queue, QUEUE, ITEM, |i: &ConflictItem| i.id)?;
        let losers = load_by_id(&self.losers, LOSERS, LOSER, |l: &LoserRecord| l.id)?;
        Ok(Checkpoint {
            cursors,
            entities,
            queue,
            losers,
            meta,
        })
    }
}

/// Every record of a tree keyed by id, checking each key against its record.
fn load_by_id<T: serde::de::DeserializeOwned>(
    tree: &Tree,
    name: &str,
    what: &'static str,
    id_of: impl Fn(&T) -> u64,
) -> Result<Vec<T>, CoreError> {
    let mut out = Vec::new();
    for entry in tree {
        let (key, value) = entry.map_err(backend)?;
        let id = parse_id_key(&key)
            .ok_or_else(|| corrupt(what, name, &key, "the key is not 8 bytes".to_owned()))?;
        let record: T = decode(what, name, &key, &value)?;
        if id_of(&record) != id {
            return Err(corrupt(
                what,
                name,
                &key,
                format!("the key says id {id}, the record {}", id_of(&record)),
            ));
        }
        out.push(record);
    }
    Ok(out)
}
