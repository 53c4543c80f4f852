//! Concord's replication engine, pure and sans-IO.
//!
//! The engine takes inputs — a client write, a message from a peer, a tick of
//! time — and returns outputs — messages to send, acknowledgements to give —
//! while persisting through the [`Storage`] trait. It never touches sockets,
//! threads or the real clock, so the deterministic simulator and the real node
//! run exactly the same code.

mod collection;
mod conflict;
mod conflict_queue;
mod engine;
mod engine_config;
mod entity;
mod entity_codec;
mod entity_map;
mod error;
mod lag;
mod loser_log;
mod memory_storage;
mod ownership;
mod peer_message;
mod peer_view;
mod policy;
mod replication;
mod serde_bytes;
mod snapshot;
mod stats;
mod storage;
mod tagged_write;
mod tagged_write_codec;

pub use collection::{Collection, EntityKey, MAX_COLLECTION_LEN};
pub use conflict::{ConflictItem, ConflictReason, ItemStatus};
pub use engine::{Accepted, ClientOp, ClientWrite, CommitReport, Engine, Outgoing, ReadValue};
pub use engine_config::EngineConfig;
pub use entity::{Effect, Entity, PolicyState, Value, Version, superseded};
pub use error::CoreError;
pub use lag::{ChannelStatus, LagThresholds, OriginLag};
pub use memory_storage::MemoryStorage;
pub use ownership::{FailoverEvent, Handoff, HandoffStatus, OriginRpo, OwnershipState};
pub use peer_message::{Cursors, Head, PeerMessage};
pub use policy::{
    CollectionConfig, OwnershipConfig, Policy, Replication, SkewAction, UnknownPolicy,
};
pub use stats::Stats;
pub use storage::{
    Checkpoint, CheckpointDelta, CollectionEntry, EngineMeta, LogBounds, LoserRecord, Storage,
    WriteBatch,
};
pub use tagged_write::{Op, TaggedWrite, WriteRef};

pub mod storage_conformance;
