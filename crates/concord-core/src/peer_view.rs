//! What a node that runs the engine needs to see of its peers and state.

use concord_crdt::RegionId;

use crate::{CoreError, Engine, Entity, EntityKey, PeerMessage, Storage};

impl<S: Storage> Engine<S> {
    /// The peers with a connection up now.
    pub fn connected_peers(&self) -> Vec<RegionId> {
        self.peers
            .iter()
            .filter(|(_, l)| l.connected)
            .map(|(p, _)| *p)
            .collect()
    }

    /// This node's durable state as one snapshot message (state transfer on
    /// request, e.g. for a tool or a new node): commits first, so the
    /// snapshot holds only durable writes.
    pub fn snapshot_message(&mut self) -> Result<PeerMessage, CoreError> {
        self.commit()?;
        let entities: Vec<(EntityKey, Entity)> =
            self.entities.iter().map(|(k, e)| (k, e.clone())).collect();
        Ok(PeerMessage::Snapshot {
            cursors: self.durable_cursors(),
            entities,
            collections: self
                .collections
                .values()
                .filter(|e| e.set_by.is_some())
                .cloned()
                .collect(),
            ownership: self
                .ownership
                .set_by
                .is_some()
                .then(|| self.ownership.clone()),
        })
    }
}

impl<S: Storage> Engine<S> {
    /// Checks a client write without making it: the collection exists, the
    /// op suits its policy, the key and value are within the limits, and in
    /// an owned collection this region owns the key and is not handing it
    /// over ([`CoreError::NotOwner`], [`CoreError::HandoffInProgress`]).
    /// [`Engine::write`] makes the same checks; this lets a caller refuse a
    /// group of writes before making any of them.
    pub fn check(&self, req: &crate::ClientWrite) -> Result<(), CoreError> {
        use crate::{ClientOp, Policy};
        let too_large = |what: &'static str, len: usize, max: usize| {
            (len > max).then_some(CoreError::TooLarge { what, len, max })
        };
        if let Some(e) = too_large("key", req.key.len(), self.config.max_key_bytes) {
            return Err(e);
        }
        if let ClientOp::Put(v) = &req.op
            && let Some(e) = too_large("value", v.len(), self.config.max_value_bytes)
        {
            return Err(e);
        }
        let policy = self
            .collections
            .get(&req.collection)
            .map(|e| e.config.policy)
            .ok_or_else(|| CoreError::UnknownCollection(req.collection.clone()))?;
        let fits = match req.op {
            ClientOp::Put(_) | ClientOp::Delete => policy != Policy::Counter,
            ClientOp::Add(_) => policy == Policy::Counter,
        };
        if !fits {
            return Err(CoreError::WrongOpKind {
                collection: req.collection.clone(),
                policy,
                op: match req.op {
                    ClientOp::Put(_) => "put",
                    ClientOp::Delete => "delete",
                    ClientOp::Add(_) => "increment",
                },
            });
        }
        self.check_local_owner(&req.collection, &req.key)?;
        Ok(())
    }
}

impl<S: Storage> Engine<S> {
    /// For a node that limits siblings: refuses a blind write (no context)
    /// to an `mv` entity that already holds its collection's cap of
    /// siblings — it would only add one more version that no rule may
    /// merge. A write with a context (a merge) is never refused. The engine
    /// itself accepts such writes (and queues the entity past its cap).
    pub fn check_sibling_limit(&self, req: &crate::ClientWrite) -> Result<(), CoreError> {
        if req.context.is_some() || matches!(req.op, crate::ClientOp::Add(_)) {
            return Ok(());
        }
        let Some(config) = self.collections.get(&req.collection).map(|e| &e.config) else {
            return Ok(());
        };
        if config.policy != crate::Policy::Mv {
            return Ok(());
        }
        let max = config.max_siblings.max(1);
        let Some(entity) = self.entities.get(&req.collection, &req.key) else {
            return Ok(());
        };
        let siblings = entity
            .versions(crate::Policy::Mv)
            .iter()
            .filter(|v| v.value.is_some())
            .count();
        if siblings >= usize::try_from(max).unwrap_or(usize::MAX) {
            return Err(CoreError::SiblingLimit {
                collection: req.collection.clone(),
                key: req.key.clone(),
                siblings,
                max,
            });
        }
        Ok(())
    }
}
