//! Dots of writes a crash lost are never handed out in a read's context, so
//! a remembered context cannot silently drop a later write that reuses the
//! dot. (Found by the simulator: seed 27 with dirty contexts.)

mod support;

use std::time::Duration;

use concord_core::{Collection, ReadValue};
use concord_sim::{Sim, SimConfig};
use support::{Node, connect, pump};

fn siblings(node: &Node) -> Vec<String> {
    match node
        .engine
        .read(&Collection::new("mv").expect("engine call succeeds"), b"k")
        .expect("engine call succeeds")
    {
        ReadValue::Siblings { versions, .. } => versions
            .iter()
            .map(|v| String::from_utf8_lossy(v.value.as_deref().unwrap_or(b"-")).into_owned())
            .collect(),
        other => panic!("expected siblings, got {other:?}"),
    }
}

/// A read at the origin returns a context that covers the dot of a local
/// write not yet durable. A crash loses that write, and the origin hands the
/// same dot to its next write on the entity. A client that kept the context
/// writes elsewhere with it: that write "covers" the reused dot, so the new,
/// acknowledged write is dropped on arrival (`AlreadySeen`) or replaced, at
/// every node, with no loser record or conflict item.
#[test]

fn an_acknowledged_write_is_not_dropped_by_a_context_that_saw_a_lost_write() {
    let mut b = Node::new(1, &[2], Duration::ZERO);
    let mut c = Node::new(2, &[1], Duration::ZERO);
    connect(&mut b, &mut c);
    b.put("mv", "k", "first");
    pump(&mut b, &mut c);
    b.put("mv", "k", "lost"); // dot r1:2, never committed
    let ReadValue::Siblings { context, .. } = b
        .engine
        .read(&Collection::new("mv").expect("engine call succeeds"), b"k")
        .expect("engine call succeeds")
    else {
        panic!("siblings expected");
    };
    b.crash_and_reopen().expect("engine call succeeds");
    c.engine
        .disconnect(b.engine.region())
        .expect("engine call succeeds");
    connect(&mut b, &mut c);
    c.put_with("mv", "k", "from-c", Some(context));
    let acked = b.put("mv", "k", "acknowledged"); // gets dot r1:2 again
    assert_eq!(
        b.engine
            .commit()
            .expect("engine call succeeds")
            .local_durable,
        acked.seq
    );
    pump(&mut b, &mut c);
    for node in [&b, &c] {
        let values = siblings(node);
        assert!(
            values.contains(&"acknowledged".to_owned()),
            "{}: the acknowledged blind write, concurrent with from-c, was dropped: {values:?}",
            node.engine.region()
        );
    }
}

/// The same bug found by the simulator: seed 27 with clients that remember
/// contexts of reads that showed not-yet-durable writes.
#[test]

fn seed_27_with_dirty_contexts() {
    let config = SimConfig::new(27).with_dirty_contexts(true);
    if let Err(v) = Sim::new(config).and_then(Sim::run) {
        panic!("FAILED seed=27 with dirty contexts: {v}");
    }
}
