//! The bodies of Concord's fuzz targets.
//!
//! Each target is a plain function from bytes to `()` that panics when it
//! finds a bug. The cargo-fuzz binaries of `fuzz/` call them, and so does
//! this crate's replay test on the stable toolchain: every file of the
//! checked-in seed corpora (`fuzz/corpus/<target>/`) and of the kept
//! crashing inputs (`tests/regressions/<target>/`) runs through the same
//! function on every `cargo test --workspace`.
//!
//! | target | what it feeds | what must hold |
//! |---|---|---|
//! | [`decode_records::run`] | bytes as every stored record type | a value or an error; values round-trip |
//! | [`store_records::run`] | raw records in every tree of a sled store, raw bytes in its log files | opening and reading it errs, never panics |
//! | [`peer_frames::run`] | protobuf peer frames into an engine | no panic; cursors never decrease; no store failure |
//! | [`store_ops::run`] | client ops, commits, checkpoints, reopens | sled and memory engines agree with a model |
//! | [`crdt_laws::run`] | states of every merge type | merge is commutative, associative, idempotent |
//!
//! [`seeds`] builds the seed corpora; [`TARGETS`] names every target.

pub mod crdt_laws;
pub mod decode_records;
pub mod fixture;
pub mod peer_frames;
pub mod seeds;
pub mod store_ops;
pub mod store_records;

/// A fuzz target: its name (the cargo-fuzz binary and corpus directory) and
/// its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("decode_records", decode_records::run),
    ("store_records", store_records::run),
    ("peer_frames", peer_frames::run),
    ("store_ops", store_ops::run),
    ("crdt_laws", crdt_laws::run),
];

/// The body of the target called `name`, if there is one.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
