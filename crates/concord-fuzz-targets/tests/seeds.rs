//! The seed corpora's builder: every seed runs through its target, and with
//! `CONCORD_FUZZ_WRITE_SEEDS=1` the seeds are written to `fuzz/corpus/`.

use std::path::Path;

use concord_fuzz_targets::{seeds, target};

#[test]
fn every_seed_runs_clean() {
    let all = seeds::all();
    for s in &all {
        let body = target(s.target).expect("a seed names a target");
        eprintln!("{}: {} ({} bytes)", s.target, s.name, s.bytes.len());
        body(&s.bytes);
    }
    if std::env::var_os("CONCORD_FUZZ_WRITE_SEEDS").is_some() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        seeds::write(&root, &all).expect("the seeds are written");
    }
}
