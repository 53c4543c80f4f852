//! The client workload: random writes over a few keys of one collection per
//! policy, with contexts read at the node or blind.

use concord_core::{
    ClientOp, ClientWrite, Collection, CollectionConfig, CoreError, Engine, EntityKey, Policy,
    ReadValue, Storage,
};

use concord_crdt::VersionVector;

use crate::{Oracle, Request, SimRng};

/// The collections every node configures: one per policy.
pub const COLLECTIONS: [(&str, Policy); 5] = [
    ("wall", Policy::LwwWall),
    ("hlc", Policy::LwwHlc),
    ("mv", Policy::Mv),
    ("counter", Policy::Counter),
    ("queue", Policy::Queue),
];

/// Keys written per collection.
pub const KEYS: u64 = 3;

/// The collection configuration of a run; `mv` entities past `max_siblings`
/// siblings go to the conflict queue.
pub(crate) fn collections(
    max_siblings: u32,
) -> Result<Vec<(Collection, CollectionConfig)>, CoreError> {
    COLLECTIONS
        .iter()
        .map(|(name, policy)| {
            let mut config = CollectionConfig::new(*policy);
            if *policy == Policy::Mv {
                config.max_siblings = max_siblings;
            }
            Ok((Collection::new(name)?, config))
        })
        .collect()
}

/// One client write to make, and what the oracle records of it.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub(crate) write: ClientWrite,
    pub(crate) request: Request,
    pub(crate) policy: Policy,
    /// The client operation its context was read at.
    pub(crate) context_op: u64,
}

/// Contexts clients remember from earlier reads (a client may write later,
/// and at another node than the one it read from).
const REMEMBERED: usize = 32;

/// Draws client writes.
#[derive(Debug)]
pub(crate) struct Workload {
    rng: SimRng,
    collections: Vec<(Collection, Policy)>,
    next_value: u64,
    remembered: Vec<(Collection, Vec<u8>, VersionVector, u64)>,
}

impl Workload {
    pub(crate) fn new(rng: SimRng) -> Result<Self, CoreError> {
        let collections = COLLECTIONS
            .iter()
            .map(|(name, policy)| Ok((Collection::new(name)?, *policy)))
            .collect::<Result<_, CoreError>>()?;
        Ok(Self {
            rng,
            collections,
            next_value: 0,
            remembered: Vec::new(),
        })
    }

    /// A fresh value, unique in the run.
    pub(crate) fn value(&mut self, tag: &str) -> Vec<u8> {
        self.next_value += 1;
        format!("{tag}-v{}", self.next_value).into_bytes()
    }

    /// The random generator (for choices the simulator makes about writes).
    pub(crate) fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    fn remember(&mut self, collection: &Collection, key: &[u8], context: &VersionVector, op: u64) {
        if self.remembered.len() >= REMEMBERED {
            let i = self.rng.index(self.remembered.len());
            self.remembered.swap_remove(i);
        }
        self.remembered
            .push((collection.clone(), key.to_vec(), context.clone(), op));
    }

    /// The next client write at `engine`, client operation number `op`.
    ///
    /// A context read here is remembered for later writes (at any node)
    /// only when `oracle` says every write of this node to the entity is
    /// acknowledged, unless `dirty` (see [`crate::SimConfig::dirty_contexts`]).
    pub(crate) fn next<S: Storage>(
        &mut self,
        engine: &Engine<S>,
        op: u64,
        oracle: &Oracle,
        dirty: bool,
    ) -> Result<Planned, CoreError> {
        let mut context_op = op;
        let i = self.rng.index(self.collections.len());
        let (collection, policy) = self.collections[i].clone();
        let key = format!("k{}", self.rng.below(KEYS)).into_bytes();
        let tag = engine.region().to_string();
        let (op, request, context) = match policy {
            Policy::Counter => {
                let delta = self.rng.range_i64(-100, 100);
                (ClientOp::Add(delta), Request::Add(delta), None)
            }
            Policy::LwwWall | Policy::LwwHlc => {
                if self.rng.chance(0.15) {
                    (ClientOp::Delete, Request::Delete, None)
                } else {
                    let v = self.value(&tag);
                    (ClientOp::Put(v.clone()), Request::Put(v), None)
                }
            }
            Policy::Mv | Policy::Queue => {
                let mode = self.rng.below(100);
                let context = if mode < 45 {
                    // Read here, then write what was read over.
                    match engine.read(&collection, &key)? {
                        ReadValue::Siblings { context, .. } => {
                            let entity = EntityKey::new(collection.clone(), key.clone());
                            if dirty || !oracle.unacked_on(engine.region(), &entity) {
                                self.remember(&collection, &key, &context, op);
                            }
                            Some(context)
                        }
                        _ => None,
                    }
                } else if mode < 60 {
                    // A context read earlier, possibly at another node.
                    let earlier: Vec<&(Collection, Vec<u8>, VersionVector, u64)> = self
                        .remembered
                        .iter()
                        .filter(|(c, k, _, _)| *c == collection && *k == key)
                        .collect();
                    let i = self.rng.index(earlier.len());
                    earlier.get(i).map(|(_, _, v, at)| {
                        context_op = *at;
                        v.clone()
                    })
                } else {
                    None
                };
                if self.rng.chance(0.2) {
                    (ClientOp::Delete, Request::Delete, context)
                } else {
                    let v = self.value(&tag);
                    (ClientOp::Put(v.clone()), Request::Put(v), context)
                }
            }
        };
        Ok(Planned {
            write: ClientWrite {
                collection,
                key,
                op,
                context,
            },
            request,
            policy,
            context_op,
        })
    }
}
