//! The Concord region node.
//!
//! One node runs per region. It keeps its region's entities in a sled
//! database, takes client writes over gRPC (the `Concord` service of
//! `proto/concord.proto`), tags each write, and exchanges tagged writes with
//! the other regions' nodes over one bidirectional gRPC stream per pair (the
//! `Peer` service). The replication logic is `concord-core`'s engine; this
//! crate gives it a thread, a disk, sockets and a configuration:
//!
//! - [`node::Node`]: start a node from a [`config::NodeConfig`], stop it
//!   with a flush;
//! - [`client::Client`]: a Rust client;
//! - [`driver`]: the engine thread and its group commit;
//! - [`service`] and [`peer`]: the two gRPC services;
//! - [`tls`], [`auth`], [`limits`] and [`certs`]: mutual TLS between
//!   regions, client tokens and permissions, limits, and certificates for
//!   local use;
//! - [`metrics`]: Prometheus text on an HTTP port;
//! - [`demo`] and [`bench`](mod@bench): the `concord demo` and `concord bench` commands.

pub mod auth;
pub mod bench;
pub mod certs;
pub mod client;
pub mod config;
pub mod convert;
pub mod demo;
pub mod driver;
mod error;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod service;
pub mod status;
pub mod tls;

pub use error::NodeError;

/// Types and gRPC stubs generated from `proto/concord.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("concord.v1");

    /// The encoded descriptor set of `concord.proto` (for gRPC reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/concord_descriptor.bin"));
}
