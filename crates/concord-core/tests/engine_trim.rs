//! Logs are trimmed once every peer holds their writes durably, and a peer
//! behind the trim point is rebuilt from a state snapshot.

mod common;

use common::*;
use concord_core::{ClientOp, ReadValue, Storage};

fn first_held(net: &Net, i: usize, origin: u16) -> Option<u64> {
    net.nodes[i]
        .engine
        .storage()
        .log_bounds()
        .expect("bounds")
        .into_iter()
        .find(|(o, _)| *o == r(origin))
        .map(|(_, b)| b.first)
}

#[test]
fn logs_are_trimmed_once_every_peer_holds_the_writes_and_state_survives_a_restart() {
    let mut net = Net::with(3, |c| c.checkpoint_every = 10);
    for k in 0..60u8 {
        net.write(usize::from(k % 3), "counter", "c", ClientOp::Add(1));
        net.write(0, "hlc", &format!("k{k}"), ClientOp::Put(vec![k]));
    }
    net.settle();
    net.settle();
    for i in 0..3 {
        let first = first_held(&net, i, 0);
        assert!(
            first.is_none_or(|f| f > 1),
            "node {i} trimmed region 0's log: {first:?}"
        );
    }
    let before = net.states();
    net.crash_and_restart(1);
    assert_eq!(
        net.states()[1],
        before[1],
        "checkpoint + trimmed log restore the state"
    );
    net.write(1, "counter", "c", ClientOp::Add(1));
    net.settle();
    for i in 0..3 {
        assert_eq!(net.read(i, "counter", "c"), ReadValue::Counter(61));
    }
}

#[test]
fn a_region_that_lost_its_disk_is_rebuilt_from_a_snapshot() {
    let mut net = Net::with(2, |c| c.checkpoint_every = 5);
    for k in 0..40u8 {
        net.write(0, "hlc", &format!("k{k}"), ClientOp::Put(vec![k]));
        net.write(0, "counter", "c", ClientOp::Add(2));
        net.write(0, "mv", "cart", ClientOp::Put(vec![k]));
    }
    net.settle();
    net.settle();
    assert!(
        first_held(&net, 0, 0).is_none_or(|f| f > 1),
        "node 0 trimmed its log"
    );
    net.wipe_and_restart(1);
    assert_eq!(net.read(1, "counter", "c"), ReadValue::Missing);
    net.settle();
    assert_eq!(net.node(0).stats().snapshots_sent, 1);
    assert_eq!(net.node(1).stats().snapshots_received, 1);
    assert_eq!(net.read(1, "counter", "c"), ReadValue::Counter(80));
    assert_eq!(net.states()[0], net.states()[1]);
    // Replication goes on after the snapshot, both ways.
    net.write(0, "counter", "c", ClientOp::Add(1));
    net.write(1, "counter", "c", ClientOp::Add(1));
    net.settle();
    assert_eq!(net.read(0, "counter", "c"), ReadValue::Counter(82));
    assert_eq!(net.read(1, "counter", "c"), ReadValue::Counter(82));
}

#[test]
fn a_region_that_lost_its_own_writes_refuses_writes_until_a_snapshot_restores_them() {
    let mut net = Net::new(2);
    for _ in 0..10 {
        net.write(1, "counter", "c", ClientOp::Add(1));
    }
    net.settle();
    net.wipe_and_restart(1);
    // Node 1's hello exchange tells it node 0 holds its writes 1..=10.
    net.settle();
    assert_eq!(
        net.node(0).stats().snapshots_sent,
        1,
        "node 1 asked for one"
    );
    assert_eq!(net.node(1).cursor(r(1)), 10, "its own writes are back");
    assert_eq!(net.read(1, "counter", "c"), ReadValue::Counter(10));
    // Its next write continues after them, so node 0 takes it as new.
    let w = net.write(1, "counter", "c", ClientOp::Add(1));
    assert_eq!(w.write.seq, 11);
    net.settle();
    assert_eq!(net.read(0, "counter", "c"), ReadValue::Counter(11));
}

#[test]
fn writes_are_refused_while_own_writes_are_missing() {
    let mut net = Net::new(2);
    net.write(1, "counter", "c", ClientOp::Add(1));
    net.settle();
    net.wipe_and_restart(1);
    // Deliver only node 0's hello to node 1: it learns it is behind.
    let hello = net
        .wire
        .iter()
        .position(|(from, to, _)| *from == r(0) && *to == r(1))
        .expect("a hello to node 1");
    let (_, _, msg) = net.wire.remove(hello).expect("hello");
    net.node(1).receive(r(0), msg).expect("receive");
    let err = net
        .node(1)
        .write(concord_core::ClientWrite {
            collection: col("counter"),
            key: b"c".to_vec(),
            op: ClientOp::Add(1),
            context: None,
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            concord_core::CoreError::Rebuilding {
                peers_hold: 1,
                holds: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_snapshot_logs_the_lww_values_it_overwrites() {
    let mut net = Net::with(2, |c| c.checkpoint_every = 5);
    for k in 0..20u8 {
        net.write(0, "wall", "profile", ClientOp::Put(vec![b'a', k]));
    }
    net.settle();
    net.settle();
    net.wipe_and_restart(1);
    // Before it hears from node 0, node 1 writes the same key, an hour behind.
    net.wire.clear();
    net.nodes[1]
        .clock
        .set(concord_clock::WallTime::from_micros(NOON - 3_600_000_000));
    net.write(1, "wall", "profile", ClientOp::Put(b"stale".to_vec()));
    net.connect_all();
    net.settle();
    assert_eq!(net.node(1).stats().snapshots_received, 1);
    let logged: Vec<Vec<u8>> = net
        .node(1)
        .losers()
        .filter_map(|l| l.loser.value.clone())
        .collect();
    assert!(
        logged.contains(&b"stale".to_vec()),
        "the overwritten value is in the loser log: {logged:?}"
    );
    assert_eq!(net.states()[0], net.states()[1]);
}
