//! Protobuf peer frames fed into an engine, as a node does.
//!
//! The body is `concord_fuzz_targets::peer_frames::run`: see its docs for the input
//! format and what must hold. The main workspace's `cargo test` replays the
//! corpus and the kept crashes through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| concord_fuzz_targets::peer_frames::run(data));
