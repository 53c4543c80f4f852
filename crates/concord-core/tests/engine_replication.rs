//! Engines exchanging writes converge under every policy, and every decision
//! on bad or out-of-order input is the documented one.

mod common;

use std::time::Duration;

use common::*;
use concord_core::{ClientOp, ConflictReason, ItemStatus, ReadValue};

fn value(v: &ReadValue) -> Option<Vec<u8>> {
    match v {
        ReadValue::Value(version) => version.value.clone(),
        _ => None,
    }
}

#[test]
fn concurrent_writes_under_every_policy_converge() {
    let mut net = Net::new(3);
    for i in 0..3 {
        net.advance(Duration::from_millis(1));
        let tag = format!("from-{i}").into_bytes();
        net.write(i, "wall", "k", ClientOp::Put(tag.clone()));
        net.write(i, "hlc", "k", ClientOp::Put(tag.clone()));
        net.write(i, "mv", "k", ClientOp::Put(tag.clone()));
        net.write(i, "queue", "k", ClientOp::Put(tag));
        net.write(i, "counter", "k", ClientOp::Add(10 * (i as i64 + 1)));
        net.write(i, "counter", "k", ClientOp::Add(-1));
    }
    net.settle();
    let states = net.states();
    assert_eq!(states[0], states[1]);
    assert_eq!(states[1], states[2]);
    for i in 0..3 {
        assert_eq!(net.read(i, "counter", "k"), ReadValue::Counter(60 - 3));
        assert_eq!(value(&net.read(i, "wall", "k")), Some(b"from-2".to_vec()));
        match net.read(i, "mv", "k") {
            ReadValue::Siblings { versions, .. } => assert_eq!(versions.len(), 3),
            other => panic!("expected siblings, got {other:?}"),
        }
        // Each region logged the two LWW losers of each LWW collection.
        assert_eq!(net.node(i).losers().len(), 4);
        // The queue collection's conflict is open in every region.
        let open: Vec<_> = net
            .node(i)
            .conflicts()
            .filter(|c| c.status.is_open())
            .cloned()
            .collect();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].reason, ConflictReason::Concurrent);
        assert_eq!(open[0].versions.len(), 3);
    }
}

#[test]
fn a_region_overwriting_its_own_write_logs_no_loser_anywhere() {
    let mut net = Net::new(3);
    for v in ["v1", "v2", "v3"] {
        net.advance(Duration::from_millis(1));
        net.write(0, "wall", "k", ClientOp::Put(v.as_bytes().to_vec()));
        net.write(0, "hlc", "k", ClientOp::Put(v.as_bytes().to_vec()));
    }
    net.settle();
    for i in 0..3 {
        assert_eq!(value(&net.read(i, "wall", "k")), Some(b"v3".to_vec()));
        // Updates in region 0's own order: not conflicts.
        assert_eq!(net.node(i).losers().len(), 0, "region {i}");
        assert_eq!(net.node(i).stats().lww_losers, 0, "region {i}");
    }
    // Another region's write over them is a conflict everywhere.
    net.advance(Duration::from_millis(1));
    net.write(1, "wall", "k", ClientOp::Put(b"from-1".to_vec()));
    net.settle();
    for i in 0..3 {
        assert_eq!(value(&net.read(i, "wall", "k")), Some(b"from-1".to_vec()));
        let losers: Vec<_> = net
            .node(i)
            .losers()
            .map(|l| l.loser.value.clone())
            .collect();
        assert_eq!(losers, vec![Some(b"v3".to_vec())], "region {i}");
    }
}

#[test]
fn a_resolution_closes_the_item_in_every_region() {
    let mut net = Net::new(3);
    net.write(0, "queue", "order-7", ClientOp::Put(b"paid".to_vec()));
    net.write(1, "queue", "order-7", ClientOp::Put(b"cancelled".to_vec()));
    net.settle();
    let item = net.node(2).conflicts().next().expect("an item").id;
    net.node(2)
        .resolve(item, Some(b"refund".to_vec()))
        .expect("resolve");
    net.settle();
    for i in 0..3 {
        assert!(
            net.node(i).conflicts().all(|c| !c.status.is_open()),
            "region {i} closed its item"
        );
        match net.read(i, "queue", "order-7") {
            ReadValue::Siblings { versions, .. } => {
                assert_eq!(versions.len(), 1);
                assert_eq!(versions[0].value.as_deref(), Some(&b"refund"[..]));
            }
            other => panic!("expected one version, got {other:?}"),
        }
    }
    assert_eq!(net.states()[0], net.states()[2]);
}

#[test]
fn duplicates_and_reordering_are_harmless() {
    let mut net = Net::new(2);
    net.settle(); // hellos: node 0 streams only once it knows node 1's cursors
    for k in 0..20 {
        net.write(0, "counter", "c", ClientOp::Add(1));
        net.write(0, "hlc", &format!("k{k}"), ClientOp::Put(vec![k]));
    }
    net.node(0).commit().expect("commit");
    let batches = net.node(0).poll().expect("poll");
    assert!(batches.len() > 2, "several batches");
    // Deliver in reverse order, each twice.
    for o in batches.iter().rev().chain(batches.iter()) {
        let replies = net
            .node(1)
            .receive(r(0), o.message.clone())
            .expect("receive");
        // The acks go back on the same connection, as they would over gRPC.
        for reply in replies {
            net.node(0).receive(r(1), reply.message).expect("ack");
        }
    }
    net.settle();
    assert_eq!(net.read(1, "counter", "c"), ReadValue::Counter(20));
    assert_eq!(net.states()[0], net.states()[1]);
    let stats = net.node(1).stats().clone();
    assert!(stats.duplicates > 0, "duplicates counted: {stats:?}");
    assert!(stats.gaps_held > 0, "gaps held: {stats:?}");
}

#[test]
fn synced_writes_survive_a_crash_and_unsynced_ones_were_never_acknowledged() {
    let mut net = Net::new(2);
    net.write(0, "hlc", "a", ClientOp::Put(b"1".to_vec()));
    net.write(0, "counter", "c", ClientOp::Add(5));
    let report = net.node(0).commit().expect("commit");
    assert_eq!(report.local_durable, 2);
    net.write(0, "hlc", "b", ClientOp::Put(b"lost".to_vec()));
    net.crash_and_restart(0);
    assert_eq!(value(&net.read(0, "hlc", "a")), Some(b"1".to_vec()));
    assert_eq!(net.read(0, "counter", "c"), ReadValue::Counter(5));
    assert_eq!(net.read(0, "hlc", "b"), ReadValue::Missing);
    // The seq of the lost write is reused by the next write, which is fine:
    // it was never durable, acknowledged or sent.
    net.write(0, "hlc", "b", ClientOp::Put(b"again".to_vec()));
    net.settle();
    assert_eq!(value(&net.read(1, "hlc", "b")), Some(b"again".to_vec()));
    assert_eq!(net.states()[0], net.states()[1]);
}

#[test]
fn a_checkpoint_and_the_log_after_it_restore_state() {
    let mut net = Net::new(2);
    net.write(0, "mv", "m", ClientOp::Put(b"x".to_vec()));
    net.settle();
    net.node(0).checkpoint().expect("checkpoint");
    net.write(1, "mv", "m", ClientOp::Put(b"y".to_vec()));
    net.write(0, "counter", "c", ClientOp::Add(3));
    net.settle();
    let before = net.states()[0].clone();
    net.crash_and_restart(0);
    assert_eq!(net.states()[0], before);
    net.settle();
    assert_eq!(net.states()[0], net.states()[1]);
}

#[test]
fn a_write_from_the_future_is_held_queued_and_released() {
    let mut net = Net::new(2);
    // Region 0's clock runs 30 s ahead; the max skew is 5 s.
    net.nodes[0].clock.advance(Duration::from_secs(30));
    let w = net.write(0, "hlc", "k", ClientOp::Put(b"future".to_vec()));
    net.settle();
    assert_eq!(
        net.read(1, "hlc", "k"),
        ReadValue::Missing,
        "not applied silently"
    );
    assert_eq!(net.node(1).stats().future_held, 1);
    let item = net.node(1).conflicts().next().cloned().expect("queued");
    assert!(
        matches!(item.reason, ConflictReason::FutureTimestamp { ahead_micros } if ahead_micros >= 25_000_000)
    );
    assert!(!net.node(1).has_applied(w.write));
    // Region 1's clock catches up: the write is released and applied.
    net.nodes[1].clock.advance(Duration::from_secs(26));
    net.settle();
    assert_eq!(value(&net.read(1, "hlc", "k")), Some(b"future".to_vec()));
    assert!(matches!(
        net.node(1).conflict(item.id).expect("kept").status,
        ItemStatus::Released { .. }
    ));
    assert_eq!(net.states()[0], net.states()[1]);
}

#[test]
fn residency_keeps_writes_out_of_other_regions_and_cursors_moving() {
    let mut net = Net::new(3);
    net.write(0, "eu_only", "citizen", ClientOp::Put(b"data".to_vec()));
    net.write(0, "local", "scratch", ClientOp::Put(b"mine".to_vec()));
    let last = net.write(0, "hlc", "public", ClientOp::Put(b"ok".to_vec()));
    net.settle();
    assert_eq!(
        value(&net.read(1, "eu_only", "citizen")),
        Some(b"data".to_vec())
    );
    assert_eq!(net.read(2, "eu_only", "citizen"), ReadValue::Missing);
    assert_eq!(net.read(1, "local", "scratch"), ReadValue::Missing);
    assert_eq!(net.read(2, "local", "scratch"), ReadValue::Missing);
    assert_eq!(value(&net.read(2, "hlc", "public")), Some(b"ok".to_vec()));
    assert!(
        net.node(2).has_applied(last.write),
        "the stream went on past withheld writes"
    );
    assert!(net.node(0).stats().withheld >= 3);
}

#[test]
fn residency_data_is_not_relayed_through_a_region_that_may_not_see_it() {
    let mut net = Net::new(3);
    // 0 cannot reach 1 directly; 2 may relay, but 2 may not see eu_only data.
    net.cut.push((r(0), r(1)));
    net.write(0, "eu_only", "citizen", ClientOp::Put(b"data".to_vec()));
    net.write(0, "hlc", "public", ClientOp::Put(b"ok".to_vec()));
    net.settle();
    assert_eq!(
        net.read(1, "eu_only", "citizen"),
        ReadValue::Missing,
        "not through 2"
    );
    assert_eq!(
        net.read(1, "hlc", "public"),
        ReadValue::Missing,
        "the stream waits for the origin"
    );
    net.cut.clear();
    net.connect_all();
    net.settle();
    assert_eq!(
        value(&net.read(1, "eu_only", "citizen")),
        Some(b"data".to_vec())
    );
    assert_eq!(value(&net.read(1, "hlc", "public")), Some(b"ok".to_vec()));
}

#[test]
fn relays_carry_writes_around_a_cut_link() {
    let mut net = Net::new(3);
    net.cut.push((r(0), r(1)));
    net.write(0, "counter", "c", ClientOp::Add(7));
    net.write(1, "counter", "c", ClientOp::Add(1));
    net.settle();
    for i in 0..3 {
        assert_eq!(net.read(i, "counter", "c"), ReadValue::Counter(8));
    }
}

#[test]
fn a_policy_change_replicates() {
    let mut net = Net::new(2);
    let mut cfg = concord_core::CollectionConfig::new(concord_core::Policy::Mv);
    cfg.max_siblings = 2;
    net.node(0)
        .configure(col("hlc"), cfg.clone())
        .expect("configure");
    net.settle();
    assert_eq!(net.node(1).collection(&col("hlc")), Some(&cfg));
}

#[test]
fn channels_fail_when_a_peer_goes_silent_and_recover_when_it_speaks() {
    use concord_core::ChannelStatus;
    let mut net = Net::new(2);
    net.settle();
    assert_eq!(net.node(0).channels(), vec![(r(1), ChannelStatus::Active)]);
    // Node 1 is cut off: node 0 hears nothing for longer than failed_after.
    net.cut.push((r(0), r(1)));
    net.advance(Duration::from_secs(11));
    net.settle();
    assert_eq!(net.node(0).channels(), vec![(r(1), ChannelStatus::Failed)]);
    net.cut.clear();
    net.advance(Duration::from_secs(1)); // the next heartbeat is due
    net.settle();
    assert_eq!(net.node(0).channels(), vec![(r(1), ChannelStatus::Active)]);
}
