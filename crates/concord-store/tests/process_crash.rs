//! A process that dies mid-work (no destructor runs, so nothing more is
//! written or flushed) leaves a store holding every synced append and
//! checkpoint, and of the unsynced appends, per origin, a prefix of whole
//! calls. (Each origin's log is a file of its own: appends past the last
//! sync reach them independently, when an append writes out a large buffer.)
//!
//! The test runs this test binary again as a child process that works on
//! the store and exits abruptly; the parent then opens what it left.

use std::process::Command;

use concord_core::storage_conformance::{sample_batch, sample_delta};
use concord_core::{Checkpoint, Storage};
use concord_crdt::RegionId;
use concord_store::SledStore;

const A: RegionId = RegionId::new(1);
const B: RegionId = RegionId::new(2);

/// Set in the child's environment: the store's directory.
const CHILD_DIR: &str = "CONCORD_STORE_CRASH_CHILD_DIR";
/// The child's exit code: anything else means it failed before the crash.
const CRASHED: i32 = 86;
/// Appends synced before the crash.
const SYNCED_CALLS: u64 = 100;
/// Appends made in all by the child: enough that some unsynced ones are
/// written out before it dies.
const ALL_CALLS: u64 = 20_000;

/// Call `k` (from 0) appends two writes of A and one of B, in one call.
fn call(store: &mut SledStore, k: u64) {
    store
        .append(vec![
            sample_batch(A, 2 * k + 1..=2 * k + 2),
            sample_batch(B, k + 1..=k + 1),
        ])
        .expect("a valid append");
}

/// Does nothing in a normal run; in the child, works on the store and exits
/// without running any destructor.
#[test]
fn child_that_crashes() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let mut store = SledStore::open(&dir).unwrap();
    for k in 0..SYNCED_CALLS {
        call(&mut store, k);
    }
    store.sync().unwrap();
    store.checkpoint(sample_delta()).unwrap();
    for k in SYNCED_CALLS..ALL_CALLS {
        call(&mut store, k);
    }
    std::process::exit(CRASHED);
}

#[test]
fn a_crashed_process_leaves_synced_data_and_whole_appends_per_origin() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["child_that_crashes", "--exact", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    assert_eq!(
        child.status.code(),
        Some(CRASHED),
        "the child failed: {}\n{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );

    let store = SledStore::open(dir.path()).unwrap();
    let a = store.read_log(A, 1, usize::MAX).unwrap();
    let b = store.read_log(B, 1, usize::MAX).unwrap();
    let (a_calls, b_calls) = (a.len() as u64 / 2, b.len() as u64);
    for (origin, calls) in [(A, a_calls), (B, b_calls)] {
        assert!(
            (SYNCED_CALLS..=ALL_CALLS).contains(&calls),
            "{origin}: {calls} calls survived, {SYNCED_CALLS} were synced"
        );
    }
    assert!(
        a_calls.max(b_calls) > SYNCED_CALLS,
        "no unsynced append reached the files ({a_calls} and {b_calls} calls)"
    );
    assert_eq!(
        a,
        sample_batch(A, 1..=2 * a_calls).writes,
        "A is not whole calls"
    );
    assert_eq!(
        b,
        sample_batch(B, 1..=b_calls).writes,
        "B is not whole calls"
    );

    let mut expected = Checkpoint {
        cursors: sample_delta().cursors,
        entities: sample_delta()
            .entities
            .into_iter()
            .map(|(k, e)| (k, std::sync::Arc::unwrap_or_clone(e)))
            .collect(),
        queue: sample_delta().queue,
        losers: sample_delta().losers,
        meta: sample_delta().meta,
    };
    expected.cursors.sort();
    expected.entities.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(store.load_checkpoint().unwrap(), expected);
}
