//! Owned collections: refusal at a non-owner, planned handoff, forced
//! takeover with fencing, rejoin, failover events and the RPO report.

mod common;

use std::time::Duration;

use common::{Net, col, r};
use concord_core::{
    ChannelStatus, ClientOp, ClientWrite, CollectionConfig, ConflictReason, CoreError,
    EngineConfig, HandoffStatus, OwnershipConfig, PeerMessage, Policy, ReadValue,
};
use concord_ownership::Rule;

/// `users` (lww-hlc) and `points` (counter) owned by modulo: even ids at
/// r0, odd ids at r1; `queue_owned` (queue) the same.
fn owned(config: &mut EngineConfig) {
    let rule = Rule::modulo(vec![r(0), r(1)]).expect("valid rule");
    for (name, policy) in [
        ("users", Policy::LwwHlc),
        ("points", Policy::Counter),
        ("queue_owned", Policy::Queue),
    ] {
        config.collections.push((
            col(name),
            CollectionConfig::new(policy).owned(OwnershipConfig::new(rule.clone()).forwarding()),
        ));
    }
}

fn put(net: &mut Net, i: usize, collection: &str, key: &str, value: &str) -> Result<(), CoreError> {
    net.node(i)
        .write(ClientWrite {
            collection: col(collection),
            key: key.as_bytes().to_vec(),
            op: ClientOp::Put(value.as_bytes().to_vec()),
            context: None,
        })
        .map(|_| ())
}

fn add(net: &mut Net, i: usize, key: &str, delta: i64) -> Result<(), CoreError> {
    net.node(i)
        .write(ClientWrite {
            collection: col("points"),
            key: key.as_bytes().to_vec(),
            op: ClientOp::Add(delta),
            context: None,
        })
        .map(|_| ())
}

fn value(net: &Net, i: usize, collection: &str, key: &str) -> Option<String> {
    match net.read(i, collection, key) {
        ReadValue::Value(v) => v.value.map(|b| String::from_utf8_lossy(&b).into_owned()),
        ReadValue::Missing => None,
        other => panic!("unexpected read {other:?}"),
    }
}

fn counter(net: &Net, i: usize, key: &str) -> i128 {
    match net.read(i, "points", key) {
        ReadValue::Counter(n) => n,
        ReadValue::Missing => 0,
        other => panic!("unexpected read {other:?}"),
    }
}

fn cut(net: &mut Net, i: u16) {
    for j in 0..u16::try_from(net.nodes.len()).expect("few nodes") {
        if j != i {
            net.cut.push((r(i), r(j)));
            net.node(usize::from(i))
                .disconnect(r(j))
                .expect("disconnect");
            net.node(usize::from(j))
                .disconnect(r(i))
                .expect("disconnect");
        }
    }
}

fn heal(net: &mut Net) {
    net.cut.clear();
    net.connect_all();
}

/// Fenced items open at node `i`: (key, value, origin seq), sorted.
fn fenced_items(net: &Net, i: usize) -> Vec<(String, Option<String>, u64)> {
    let mut items: Vec<_> = net.nodes[i]
        .engine
        .conflicts()
        .filter(|c| c.status.is_open() && matches!(c.reason, ConflictReason::Fenced { .. }))
        .flat_map(|c| {
            c.versions.iter().map(|v| {
                (
                    String::from_utf8_lossy(&c.entity.key).into_owned(),
                    v.value
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned()),
                    v.write.seq,
                )
            })
        })
        .collect();
    items.sort();
    items
}

#[test]
fn a_write_at_a_non_owner_is_refused_naming_the_owner() {
    let mut net = Net::with(3, owned);
    match put(&mut net, 0, "users", "7", "x") {
        Err(CoreError::NotOwner {
            owner,
            epoch,
            forward,
            collection,
            key,
        }) => {
            assert_eq!((owner, epoch, forward), (r(1), 0, true));
            assert_eq!((collection, key), (col("users"), b"7".to_vec()));
        }
        other => panic!("expected NotOwner, got {other:?}"),
    }
    // A third region owns nothing.
    assert!(matches!(
        put(&mut net, 2, "users", "8", "x"),
        Err(CoreError::NotOwner { owner, .. }) if owner == r(0)
    ));
    // The rule cannot place a key that is not an integer.
    assert!(matches!(
        put(&mut net, 0, "users", "alice", "x"),
        Err(CoreError::Ownership(_))
    ));
    // Refused before anything was tagged: no seq was used.
    assert_eq!(net.node(0).cursor(r(0)), 0);
    // `check` says the same without writing.
    let req = ClientWrite {
        collection: col("users"),
        key: b"7".to_vec(),
        op: ClientOp::Put(b"x".to_vec()),
        context: None,
    };
    assert!(matches!(
        net.node(0).check(&req),
        Err(CoreError::NotOwner { .. })
    ));
    // The owner accepts; the write carries the epoch and replicates.
    put(&mut net, 1, "users", "7", "by-owner").expect("owner accepts");
    put(&mut net, 0, "users", "8", "by-r0").expect("owner accepts");
    net.settle();
    for i in 0..3 {
        assert_eq!(value(&net, i, "users", "7").as_deref(), Some("by-owner"));
        assert_eq!(value(&net, i, "users", "8").as_deref(), Some("by-r0"));
    }
    // Collections that are not owned accept writes anywhere.
    net.write(2, "hlc", "k", ClientOp::Put(b"v".to_vec()));
    assert_eq!(net.node(0).owner(&col("hlc"), b"k").expect("lookup"), None);
}

#[test]
fn inside_the_owner_the_inner_policy_applies() {
    let mut net = Net::with(2, owned);
    add(&mut net, 0, "2", 5).expect("owner");
    add(&mut net, 0, "2", -2).expect("owner");
    add(&mut net, 1, "3", 10).expect("owner");
    assert!(matches!(
        put(&mut net, 0, "points", "2", "x"),
        Err(CoreError::WrongOpKind { .. })
    ));
    net.settle();
    for i in 0..2 {
        assert_eq!(counter(&net, i, "2"), 3);
        assert_eq!(counter(&net, i, "3"), 10);
    }
}

#[test]
fn a_planned_handoff_drains_then_moves_and_loses_nothing() {
    let mut net = Net::with(3, owned);
    // r0 owns counter 4 and writes to it; some of it is not even durable yet.
    for _ in 0..5 {
        add(&mut net, 0, "4", 1).expect("owner");
    }
    net.settle();
    for _ in 0..3 {
        add(&mut net, 0, "4", 10).expect("owner");
    }
    let id = net
        .node(0)
        .hand_off(&col("points"), vec![b"4".to_vec()], r(1))
        .expect("handoff starts");
    // 1. The old owner stops accepting writes for the moving key.
    assert!(matches!(
        add(&mut net, 0, "4", 100),
        Err(CoreError::HandoffInProgress { to, handoff, .. }) if to == r(1) && handoff == id
    ));
    // Other keys still go on.
    add(&mut net, 0, "6", 1).expect("not moving");
    // The new owner does not accept before the map moves.
    assert!(matches!(
        add(&mut net, 1, "4", 100),
        Err(CoreError::NotOwner { owner, .. }) if owner == r(0)
    ));
    // 2. It drains: nothing moves while r1 has not acknowledged r0's writes.
    net.node(0).tick().expect("tick");
    assert_eq!(net.node(0).handoffs()[0].status, HandoffStatus::Draining);
    // 3. Once r1 holds them, the map moves (epoch 1) and every region learns it.
    net.settle();
    assert!(matches!(
        net.node(0).handoffs()[0].status,
        HandoffStatus::Completed { epoch: 1, .. }
    ));
    for i in 0..3 {
        assert_eq!(net.node(i).ownership_epoch(), 1);
        assert_eq!(
            net.node(i).owner(&col("points"), b"4").expect("lookup"),
            Some(r(1))
        );
    }
    add(&mut net, 1, "4", 1000).expect("the new owner accepts");
    assert!(matches!(
        add(&mut net, 0, "4", 1),
        Err(CoreError::NotOwner { owner, epoch: 1, .. }) if owner == r(1)
    ));
    net.settle();
    // Zero writes lost: every add before and after the move is counted everywhere.
    for i in 0..3 {
        assert_eq!(counter(&net, i, "4"), 5 + 30 + 1000, "node {i}");
        assert_eq!(net.node(i).stats().fenced, 0);
    }
    // The map survives a restart.
    net.crash_and_restart(2);
    assert_eq!(net.node(2).ownership_epoch(), 1);
    assert_eq!(
        net.node(2).owner(&col("points"), b"4").expect("lookup"),
        Some(r(1))
    );
}

#[test]
fn a_handoff_can_be_cancelled_and_only_the_owner_hands_off() {
    let mut net = Net::with(2, owned);
    assert!(matches!(
        net.node(1)
            .hand_off(&col("users"), vec![b"2".to_vec()], r(0)),
        Err(CoreError::NotOwner { .. })
    ));
    let id = net
        .node(0)
        .hand_off(&col("users"), vec![b"2".to_vec()], r(1))
        .expect("starts");
    net.node(0).cancel_handoff(id).expect("cancel");
    put(&mut net, 0, "users", "2", "still-mine").expect("accepted again");
    net.settle();
    assert_eq!(net.node(0).ownership_epoch(), 0);
    assert!(matches!(
        net.node(0).cancel_handoff(id),
        Err(CoreError::UnknownHandoff(_))
    ));
}

/// r0 owns even keys. r1 has applied its first write to `users/0` and
/// only heard of its next two from a heartbeat when r0 is cut off.
fn partitioned_takeover() -> Net {
    let mut net = Net::with(3, owned);
    put(&mut net, 0, "users", "0", "a1").expect("owner");
    net.settle();
    net.advance(Duration::from_millis(300));
    put(&mut net, 0, "users", "0", "a2").expect("owner");
    net.advance(Duration::from_millis(300));
    put(&mut net, 0, "users", "2", "a3").expect("owner");
    net.node(0).commit().expect("commit");
    net.advance(Duration::from_secs(1));
    // r0's heartbeat reaches r1, then r0 is cut off before its batches do.
    let heartbeat = net
        .node(0)
        .tick()
        .expect("tick")
        .into_iter()
        .find(|o| o.to == r(1) && matches!(o.message, PeerMessage::Heartbeat { .. }))
        .expect("an idle peer gets a heartbeat");
    cut(&mut net, 0);
    net.node(1)
        .receive(r(0), heartbeat.message)
        .expect("heartbeat");
    net
}

#[test]
fn a_takeover_reports_the_data_at_risk_and_fences_the_old_owner() {
    let mut net = partitioned_takeover();
    let rpo = net
        .node(1)
        .rpo()
        .into_iter()
        .find(|o| o.origin == r(0))
        .expect("r0 reported");
    assert_eq!(
        (rpo.applied_seq, rpo.known_seq, rpo.unapplied_writes),
        (1, 3, 2)
    );
    assert_eq!(rpo.span_micros, 600_000, "a3 was made 0.6 s after a1");
    assert!(!rpo.oldest_exact);
    assert!(rpo.oldest_unapplied_micros >= 1_600_000);

    let (event, out) = net
        .node(1)
        .take_over(r(0), "r0 unreachable")
        .expect("takeover");
    assert!(out.iter().all(|o| o.to != r(1)));
    assert_eq!((event.from, event.to, event.epoch), (r(0), r(1), 1));
    assert_eq!((event.at_risk_writes, event.at_risk_micros), (2, 600_000));
    assert_eq!(event.fenced_after_seq, 1);
    assert!(event.completed.is_some());
    assert_eq!(net.node(1).failover_events(), std::slice::from_ref(&event));

    // The new owner accepts r0's keys now; r2 learns the epoch from r1.
    put(&mut net, 1, "users", "0", "b1").expect("new owner");
    net.settle();
    assert_eq!(net.node(2).ownership_epoch(), 1);
    assert!(matches!(
        put(&mut net, 2, "users", "0", "x"),
        Err(CoreError::NotOwner { owner, epoch: 1, .. }) if owner == r(1)
    ));
    // Meanwhile r0, cut off, still believes it owns the key.
    put(&mut net, 0, "users", "0", "a4").expect("r0 does not know yet");

    // Heal: r0 learns the epoch and stops accepting; its writes past the
    // fence are refused everywhere and queued, none discarded.
    heal(&mut net);
    net.settle();
    assert_eq!(net.node(0).ownership_epoch(), 1);
    assert!(matches!(
        put(&mut net, 0, "users", "0", "x"),
        Err(CoreError::NotOwner { owner, .. }) if owner == r(1)
    ));
    let expected = vec![
        ("0".to_string(), Some("a2".to_string()), 2),
        ("0".to_string(), Some("a4".to_string()), 4),
        ("2".to_string(), Some("a3".to_string()), 3),
    ];
    for i in 0..3 {
        assert_eq!(fenced_items(&net, i), expected, "node {i}");
    }
    assert_eq!(net.node(1).stats().fenced, 3);
    assert_eq!(net.node(2).stats().fenced, 3);
    // r0 applied its own writes before it knew: it found them on learning.
    assert_eq!(net.node(0).stats().fenced_found_applied, 3);
    for i in 1..3 {
        assert_eq!(value(&net, i, "users", "0").as_deref(), Some("b1"));
        assert_eq!(value(&net, i, "users", "2"), None);
    }
    // The application resolves them at the new owner; then every region agrees.
    let ids: Vec<(u64, String)> = net.nodes[1]
        .engine
        .conflicts()
        .filter(|c| c.status.is_open())
        .map(|c| (c.id, String::from_utf8_lossy(&c.entity.key).into_owned()))
        .collect();
    for (id, key) in ids {
        let keep = if key == "2" {
            Some(b"a3".to_vec())
        } else {
            None
        };
        if keep.is_some() || key == "0" {
            let value = keep.or_else(|| Some(b"b1-final".to_vec()));
            net.node(1).resolve(id, value).expect("owner resolves");
        }
    }
    net.settle();
    for i in 0..3 {
        assert_eq!(fenced_items(&net, i), vec![], "node {i}");
        assert_eq!(value(&net, i, "users", "2").as_deref(), Some("a3"));
        assert_eq!(value(&net, i, "users", "0").as_deref(), Some("b1-final"));
    }
    let states = net.states();
    assert!(states.windows(2).all(|p| p[0] == p[1]), "replicas converge");
}

#[test]
fn fencing_survives_a_restart_and_so_do_failover_events() {
    let mut net = partitioned_takeover();
    let (event, _) = net
        .node(1)
        .take_over(r(0), "r0 unreachable")
        .expect("takeover");
    heal(&mut net);
    net.settle();
    let before: Vec<_> = (0..3).map(|i| fenced_items(&net, i)).collect();
    let states = net.states();
    for i in 0..3 {
        net.crash_and_restart(i);
    }
    net.settle();
    assert_eq!(net.node(1).failover_events(), std::slice::from_ref(&event));
    for (i, items) in before.iter().enumerate() {
        assert_eq!(net.node(i).ownership_epoch(), 1);
        assert_eq!(&fenced_items(&net, i), items, "node {i}");
    }
    assert_eq!(net.states(), states, "replay decides the same way");
}

#[test]
fn a_mv_fenced_write_is_replaced_by_its_resolution_where_it_was_applied() {
    let mut net = Net::with(2, owned);
    let write = |net: &mut Net, i: usize, v: &str| {
        net.node(i).write(ClientWrite {
            collection: col("queue_owned"),
            key: b"0".to_vec(),
            op: ClientOp::Put(v.as_bytes().to_vec()),
            context: None,
        })
    };
    write(&mut net, 0, "a1").expect("owner");
    net.settle();
    cut(&mut net, 0);
    write(&mut net, 0, "a2").expect("r0 does not know yet");
    net.node(1).take_over(r(0), "test").expect("takeover");
    write(&mut net, 1, "b1").expect("new owner");
    heal(&mut net);
    net.settle();
    let id = net.nodes[1]
        .engine
        .conflicts()
        .find(|c| c.status.is_open() && matches!(c.reason, ConflictReason::Fenced { .. }))
        .map(|c| c.id)
        .expect("fenced item at the new owner");
    net.node(1)
        .resolve(id, Some(b"merged".to_vec()))
        .expect("resolve");
    net.settle();
    let siblings = |net: &Net, i: usize| match net.read(i, "queue_owned", "0") {
        ReadValue::Siblings { versions, .. } => {
            let mut v: Vec<String> = versions
                .iter()
                .filter_map(|v| v.value.as_ref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect();
            v.sort();
            v
        }
        other => panic!("unexpected read {other:?}"),
    };
    // a2 is gone where it was applied (r0) too: the resolution covered its dot.
    assert_eq!(siblings(&net, 0), siblings(&net, 1));
    assert!(!siblings(&net, 0).contains(&"a2".to_string()));
}

#[test]
fn a_rejoining_region_goes_from_rebuilding_to_active() {
    let mut net = Net::with(2, owned);
    put(&mut net, 1, "users", "1", "b0").expect("owner");
    net.settle();
    cut(&mut net, 1);
    net.node(0)
        .take_over(r(1), "r1 unreachable")
        .expect("takeover");
    // r1 goes on writing for 10 s of its own history, which r0 does not have.
    for s in 0..10 {
        put(&mut net, 1, "users", "3", &format!("b{s}")).expect("r1 does not know");
        net.advance(Duration::from_secs(1));
    }
    net.node(1).commit().expect("commit");
    // Reconnect: the hellos, then r1's heartbeat tell r0 how far behind it is.
    heal(&mut net);
    while let Some((from, to, msg)) = net.wire.pop_front() {
        net.node(usize::from(to.get()))
            .receive(from, msg)
            .expect("hello");
    }
    let heartbeat = net
        .node(1)
        .tick()
        .expect("tick")
        .into_iter()
        .find(|o| o.to == r(0) && matches!(o.message, PeerMessage::Heartbeat { .. }))
        .expect("heartbeat");
    net.node(0)
        .receive(r(1), heartbeat.message)
        .expect("heartbeat");
    let status = |net: &mut Net| {
        net.node(0).tick().expect("tick");
        net.node(0)
            .channels()
            .into_iter()
            .find(|(p, _)| *p == r(1))
            .map(|(_, s)| s)
    };
    assert_eq!(status(&mut net), Some(ChannelStatus::Rebuilding));
    let rpo = net.node(0).rpo();
    assert_eq!(rpo[0].unapplied_writes, 10);
    net.settle();
    assert_eq!(status(&mut net), Some(ChannelStatus::Active));
    assert_eq!(net.node(0).rpo()[0].unapplied_writes, 0);
    // r1 learned the epoch and stopped accepting; its writes went to the queue.
    assert_eq!(net.node(1).ownership_epoch(), 1);
    assert!(put(&mut net, 1, "users", "3", "late").is_err());
    assert_eq!(net.node(0).stats().fenced, 10);
}
