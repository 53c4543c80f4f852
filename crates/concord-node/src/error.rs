//! The node's error type.

use std::path::PathBuf;

use concord_core::CoreError;

/// What can go wrong starting, running or talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid: `field` names the offending setting.
    #[error("config: {field}: {reason}")]
    Config {
        /// The setting's path in the TOML file, e.g. `collections[2].policy`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A message from a client or a peer is malformed: `field` names the part.
    #[error("malformed {field}: {reason}")]
    Malformed {
        /// The offending field, e.g. `batch.writes[3].seq`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A write concern asks for more regions than the collection replicates to.
    #[error(
        "write concern wants {wanted} other regions, but collection {collection} replicates to {possible}"
    )]
    Concern {
        /// The collection.
        collection: String,
        /// The regions asked for.
        wanted: usize,
        /// The regions the collection's writes go to.
        possible: usize,
    },
    /// One write of a group was refused, so none was made.
    #[error("writes[{index}]: {source}")]
    Item {
        /// Its position in the group.
        index: usize,
        /// Why.
        #[source]
        source: Box<NodeError>,
    },
    /// TLS material (a certificate, a key, a CA) cannot be used: `field`
    /// names the setting it came from, e.g. `tls.cert`.
    #[error("tls: {field}: {reason}")]
    Tls {
        /// The setting, e.g. `tls.key`, or the file's role.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate or key could not be generated.
    #[error("cannot generate {what}: {reason}")]
    CertGen {
        /// What was being made, e.g. `the certificate of eu-west`.
        what: String,
        /// The generator's error.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The engine or the store refused.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A gRPC connection failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Serve(#[source] tonic::transport::Error),
    /// A call returned an error status.
    #[error("{:?}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The node's engine thread has stopped (the node is shutting down or failed).
    #[error("the node has stopped")]
    Stopped,
    /// A node did not converge within the time allowed.
    #[error("not converged after {seconds} s: {detail}")]
    NotConverged {
        /// How long it waited.
        seconds: u64,
        /// What still differed.
        detail: String,
    },
}
