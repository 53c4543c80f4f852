//! Directed regression tests for the engine bugs the simulator found: each
//! builds the failing situation by hand, with no randomness.

mod support;

use std::time::Duration;

use concord_core::{Collection, ReadValue};
use concord_crdt::RegionId;
use support::{Node, connect, deliver};

/// Seeds 28, 1057, 2049, 3027 (seed 77 before the workload grew): a node that resolved the conflict item of a held future write
/// could not reopen. The resolution is stamped after the held write, so its
/// HLC is beyond the drift bound of the node's own clock, and replay's
/// `hlc.update` of the newest own stamp failed with `DriftExceeded`.
#[test]
fn a_node_that_resolved_a_future_write_reopens() {
    let mut a = Node::new(0, &[1], Duration::ZERO);
    let mut b = Node::new(1, &[0], Duration::from_secs(30));
    connect(&mut a, &mut b);
    b.put("hlc", "k", "from-the-future");
    b.engine.commit().expect("engine call succeeds");
    let batches = b.engine.poll().expect("engine call succeeds");
    deliver(&b, &mut a, batches);
    assert_eq!(a.engine.stats().future_held, 1, "held, not applied");
    let item = a
        .engine
        .conflicts()
        .find(|c| c.status.is_open())
        .map(|c| c.id)
        .expect("a future-timestamp item");
    a.engine
        .resolve(item, Some(b"resolved".to_vec()))
        .expect("engine call succeeds");
    assert_eq!(
        a.engine
            .commit()
            .expect("engine call succeeds")
            .local_durable,
        1
    );
    a.crash_and_reopen().expect("the node reopens");
    match a
        .engine
        .read(&Collection::new("hlc").expect("engine call succeeds"), b"k")
        .expect("engine call succeeds")
    {
        ReadValue::Value(v) => assert_eq!(v.value.as_deref(), Some(&b"resolved"[..])),
        other => panic!("expected the resolution, got {other:?}"),
    }
}

fn open_items(node: &Node) -> Vec<String> {
    node.engine
        .conflicts()
        .filter(|c| c.status.is_open())
        .map(|c| {
            format!(
                "{:?} {:?}",
                c.reason,
                c.versions.iter().map(|v| v.write).collect::<Vec<_>>()
            )
        })
        .collect()
}

/// A node holding a future write `f` of `b`, with its item open and checkpointed.
fn held_and_checkpointed() -> (Node, Node) {
    let mut a = Node::new(0, &[1], Duration::ZERO);
    let mut b = Node::new(1, &[0], Duration::from_secs(30));
    connect(&mut a, &mut b);
    b.put("queue", "k", "from-the-future");
    b.engine.commit().expect("engine call succeeds");
    let batches = b.engine.poll().expect("engine call succeeds");
    deliver(&b, &mut a, batches);
    assert_eq!(open_items(&a).len(), 1, "the held write is queued");
    a.engine.checkpoint().expect("engine call succeeds");
    (a, b)
}

/// Seed 7 (2 nodes, 1500 steps): the future-timestamp item of a held write
/// was checkpointed open; the node crashed, lost the held write, and later
/// received it again once its clock had caught up. The write was applied
/// directly, and its item stayed open forever at that node only.
#[test]
fn a_future_item_closes_when_its_write_arrives_again_after_a_crash() {
    let (mut a, mut b) = held_and_checkpointed();
    a.crash_and_reopen().expect("engine call succeeds");
    a.clock.advance(Duration::from_secs(30));
    b.engine
        .disconnect(a.engine.region())
        .expect("engine call succeeds");
    connect(&mut a, &mut b);
    let batches = b.engine.poll().expect("engine call succeeds");
    assert!(!batches.is_empty(), "b resends the write");
    deliver(&b, &mut a, batches);
    assert!(a.engine.has_applied(concord_core::WriteRef {
        origin: RegionId::new(1),
        seq: 1
    }));
    assert_eq!(open_items(&a), Vec::<String>::new());
}

/// The same item checkpointed open, then the write released and synced,
/// then a crash: replay applies the write, and must close its item too.
#[test]
fn a_future_item_closes_when_replay_applies_its_released_write() {
    let (mut a, _b) = held_and_checkpointed();
    a.clock.advance(Duration::from_secs(30));
    a.engine.tick().expect("engine call succeeds");
    assert_eq!(open_items(&a), Vec::<String>::new(), "released");
    a.engine.commit().expect("engine call succeeds");
    a.crash_and_reopen().expect("engine call succeeds");
    assert!(a.engine.has_applied(concord_core::WriteRef {
        origin: RegionId::new(1),
        seq: 1
    }));
    assert_eq!(open_items(&a), Vec::<String>::new());
}

fn winner(node: &Node) -> String {
    match node
        .engine
        .read(&Collection::new("hlc").expect("engine call succeeds"), b"k")
        .expect("engine call succeeds")
    {
        ReadValue::Value(v) => {
            String::from_utf8_lossy(v.value.as_deref().unwrap_or(b"-")).into_owned()
        }
        other => panic!("expected a value, got {other:?}"),
    }
}

/// `a` applies `b`'s write, stamped by a clock 4 s ahead (within the 5 s
/// drift bound), and crashes; `checkpoint` says whether the write is then in
/// the checkpointed state or only in the log.
fn restart_after_applying_a_write_from_ahead(checkpoint: bool) -> Node {
    let mut a = Node::new(0, &[1], Duration::ZERO);
    let mut b = Node::new(1, &[0], Duration::from_secs(4));
    connect(&mut a, &mut b);
    b.put("hlc", "k", "from-b");
    support::pump(&mut a, &mut b);
    assert_eq!(winner(&a), "from-b");
    if checkpoint {
        a.engine.checkpoint().expect("engine call succeeds");
    }
    a.crash_and_reopen().expect("engine call succeeds");
    a
}

/// Seeds 7, 1024, 2025: after a restart the HLC only absorbed the node's own
/// newest replayed write, so a write made after reading a remote value
/// stamped ahead of the local clock lost to it under `lww-hlc`: the HLC's
/// promise (a region that has seen a write stamps its next write later)
/// broke across the restart.
#[test]
fn after_a_restart_a_write_still_beats_what_its_node_had_applied() {
    for checkpoint in [false, true] {
        let mut a = restart_after_applying_a_write_from_ahead(checkpoint);
        a.put("hlc", "k", "a-after-reading-b");
        assert_eq!(winner(&a), "a-after-reading-b", "checkpoint: {checkpoint}");
    }
}

/// Seed 38: one stamp beyond the drift bound (a resolution of a held future
/// write) made replay skip the HLC update altogether, so every other stamp
/// went unabsorbed too.
#[test]
fn a_stamp_beyond_the_drift_bound_does_not_stop_the_others_being_absorbed() {
    let mut a = Node::new(0, &[1, 2], Duration::ZERO);
    let mut b = Node::new(1, &[0], Duration::from_secs(4));
    let mut future = Node::new(2, &[0], Duration::from_secs(30));
    connect(&mut a, &mut b);
    connect(&mut a, &mut future);
    future.put("queue", "q", "from-the-future");
    future.engine.commit().expect("engine call succeeds");
    let batches = future.engine.poll().expect("engine call succeeds");
    deliver(&future, &mut a, batches);
    let item = a
        .engine
        .conflicts()
        .find(|c| c.status.is_open())
        .map(|c| c.id)
        .expect("held future write queued");
    a.engine
        .resolve(item, Some(b"resolved".to_vec()))
        .expect("engine call succeeds");
    b.put("hlc", "k", "from-b");
    support::pump(&mut a, &mut b);
    assert_eq!(winner(&a), "from-b");
    a.crash_and_reopen().expect("engine call succeeds");
    a.put("hlc", "k", "a-after-reading-b");
    assert_eq!(winner(&a), "a-after-reading-b");
}
