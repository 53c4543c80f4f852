//! The Concord region node.

/// Types and gRPC stubs generated from `proto/concord.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("concord.v1");

    /// The encoded descriptor set of `concord.proto` (for gRPC reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/concord_descriptor.bin"));
}
