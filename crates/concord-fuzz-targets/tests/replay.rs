//! Replays every checked-in fuzz input through its target, on the stable
//! toolchain: the seed corpora (`fuzz/corpus/<target>/`) and every input that
//! ever crashed a target (`tests/regressions/<target>/`).

use std::path::{Path, PathBuf};

use concord_fuzz_targets::TARGETS;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            // libFuzzer's own bookkeeping files start with a dot.
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

fn replay(root: &Path, min_per_target: usize) {
    for (name, body) in TARGETS {
        let inputs = files(&root.join(name));
        assert!(
            inputs.len() >= min_per_target,
            "{}: {} inputs, expected at least {min_per_target}",
            root.join(name).display(),
            inputs.len()
        );
        for input in inputs {
            let bytes = std::fs::read(&input).expect("a corpus file reads");
            eprintln!("{name}: {}", input.display());
            body(&bytes);
        }
    }
}

#[test]
fn seed_corpora_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    replay(&root, 1);
}

#[test]
fn regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    replay(&root, 0);
}
