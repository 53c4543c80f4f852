//! Client ops, commits, checkpoints and reopens on sled and memory engines, against a model.
//!
//! The body is `concord_fuzz_targets::store_ops::run`: see its docs for the input
//! format and what must hold. The main workspace's `cargo test` replays the
//! corpus and the kept crashes through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| concord_fuzz_targets::store_ops::run(data));
