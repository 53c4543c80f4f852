//! Concord's replication engine, pure and sans-IO.
//!
//! The engine takes inputs — a client write, a message from a peer, a tick of
//! time — and returns outputs — messages to send, acknowledgements to give —
//! while persisting through the [`Storage`] trait. It never touches sockets,
//! threads or the real clock, so the deterministic simulator and the real node
//! run exactly the same code.

mod collection;
mod conflict;
mod entity;
mod error;
mod memory_storage;
mod policy;
mod storage;
mod tagged_write;

pub use collection::{Collection, EntityKey, MAX_COLLECTION_LEN};
pub use conflict::{ConflictItem, ConflictReason, ItemStatus};
pub use entity::{Effect, Entity, PolicyState, Value, Version};
pub use error::CoreError;
pub use memory_storage::MemoryStorage;
pub use policy::{CollectionConfig, Policy, Replication, SkewAction, UnknownPolicy};
pub use storage::{
    Checkpoint, CheckpointDelta, CollectionEntry, EngineMeta, LogBounds, LoserRecord, Storage,
    WriteBatch,
};
pub use tagged_write::{Op, TaggedWrite, WriteRef};

pub mod storage_conformance;
