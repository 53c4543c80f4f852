//! What a node that runs the engine needs to see of its peers and state.

use concord_crdt::RegionId;

use crate::{CoreError, Engine, EntityKey, Entity, PeerMessage, Storage};

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
        })
    }
}
