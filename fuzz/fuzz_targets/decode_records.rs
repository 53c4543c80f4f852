//! Every record type Concord stores, decoded from arbitrary bytes.
//!
//! The body is `concord_fuzz_targets::decode_records::run`: see its docs for the input
//! format and what must hold. The main workspace's `cargo test` replays the
//! corpus and the kept crashes through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| concord_fuzz_targets::decode_records::run(data));
