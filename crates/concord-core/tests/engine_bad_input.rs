//! Bad input gets a typed decision, is counted, and loses nothing.

mod common;

use common::*;
use concord_core::{
    ClientOp, ClientWrite, CoreError, Op, PeerMessage, Policy, ReadValue, WriteBatch,
};
use concord_crdt::PnTotals;

#[test]
fn local_writes_that_do_not_fit_are_refused_with_typed_errors() {
    let mut net = Net::new(2);
    let e = net.node(0);
    let write = |collection: &str, key: &[u8], op| ClientWrite {
        collection: col(collection),
        key: key.to_vec(),
        op,
        context: None,
    };
    assert!(matches!(
        e.write(write("nope", b"k", ClientOp::Put(vec![1]))),
        Err(CoreError::UnknownCollection(_))
    ));
    assert!(matches!(
        e.write(write("hlc", b"k", ClientOp::Add(1))),
        Err(CoreError::WrongOpKind {
            policy: Policy::LwwHlc,
            ..
        })
    ));
    assert!(matches!(
        e.write(write("counter", b"k", ClientOp::Put(vec![1]))),
        Err(CoreError::WrongOpKind {
            policy: Policy::Counter,
            ..
        })
    ));
    assert!(matches!(
        e.write(write("hlc", &vec![0u8; 5000], ClientOp::Put(vec![1]))),
        Err(CoreError::TooLarge { what: "key", .. })
    ));
    assert!(matches!(
        e.write(write("hlc", b"k", ClientOp::Put(vec![0u8; 2 << 20]))),
        Err(CoreError::TooLarge { what: "value", .. })
    ));
    e.write(write("counter", b"k", ClientOp::Add(i64::MAX)))
        .expect("fits");
    e.write(write("counter", b"k", ClientOp::Add(i64::MAX)))
        .expect("fits");
    e.write(write("counter", b"k", ClientOp::Add(1)))
        .expect("fits: u64 totals reach u64::MAX");
    assert!(matches!(
        e.write(write("counter", b"k", ClientOp::Add(i64::MAX))),
        Err(CoreError::CounterOverflow)
    ));
    // Nothing refused was accepted: only the three increments exist.
    assert_eq!(e.stats().local_writes, 3);
    assert_eq!(e.cursor(r(0)), 3);
}

/// Takes region 0's next write and lets the test doctor it before region 1 gets it.
fn doctored(net: &mut Net, doctor: impl Fn(&mut concord_core::TaggedWrite)) -> PeerMessage {
    net.node(0).commit().expect("commit");
    let mut out = net.node(0).poll().expect("poll");
    let PeerMessage::Batch(mut batch) = out.remove(0).message else {
        panic!("expected a batch");
    };
    doctor(&mut batch.writes[0]);
    PeerMessage::Batch(batch)
}

#[test]
fn a_remote_op_of_the_wrong_kind_is_logged_counted_and_never_applied() {
    let mut net = Net::new(2);
    net.settle();
    net.write(0, "hlc", "k", ClientOp::Put(b"v".to_vec()));
    let msg = doctored(&mut net, |w| {
        w.op = Op::Counter(PnTotals {
            incremented: 5,
            decremented: 0,
        })
    });
    net.node(1)
        .receive(r(0), msg)
        .expect("a bad write is a decision, not an error");
    assert_eq!(net.node(1).stats().wrong_op_kind, 1);
    assert_eq!(net.read(1, "hlc", "k"), ReadValue::Missing);
    assert_eq!(net.node(1).cursor(r(0)), 1, "the stream goes on");
}

#[test]
fn a_remote_write_to_an_unknown_collection_is_applied_under_its_policy_and_counted() {
    let mut net = Net::new(2);
    net.settle();
    net.write(0, "hlc", "k", ClientOp::Put(b"v".to_vec()));
    let msg = doctored(&mut net, |w| w.collection = col("elsewhere"));
    net.node(1).receive(r(0), msg).expect("receive");
    assert_eq!(net.node(1).stats().unknown_collection, 1);
    assert!(
        net.node(1)
            .entities()
            .any(|(k, _)| k.collection == col("elsewhere")),
        "not lost"
    );
}

#[test]
fn a_batch_mixing_origins_or_skipping_seqs_is_refused_whole() {
    let mut net = Net::new(3);
    net.settle();
    net.write(0, "hlc", "a", ClientOp::Put(b"1".to_vec()));
    net.write(0, "hlc", "b", ClientOp::Put(b"2".to_vec()));
    let PeerMessage::Batch(b) = doctored(&mut net, |_| {}) else {
        panic!("batch")
    };
    let mut mixed = b.clone();
    mixed.writes[0].origin = r(2);
    assert!(matches!(
        net.node(1).receive(r(0), PeerMessage::Batch(mixed)),
        Err(CoreError::PeerViolation { .. })
    ));
    let mut skipping = b.clone();
    skipping.writes.swap(0, 1);
    assert!(matches!(
        net.node(1).receive(r(0), PeerMessage::Batch(skipping)),
        Err(CoreError::PeerViolation { .. })
    ));
    assert_eq!(net.node(1).stats().batches_refused, 2);
    assert_eq!(net.node(1).cursor(r(0)), 0, "nothing of them was applied");
    // The honest batch still goes through.
    net.node(1)
        .receive(
            r(0),
            PeerMessage::Batch(WriteBatch {
                origin: b.origin,
                writes: b.writes,
            }),
        )
        .expect("receive");
    assert_eq!(net.node(1).cursor(r(0)), 2);
}

#[test]
fn a_hello_claiming_another_region_is_refused() {
    let mut net = Net::new(3);
    let err = net
        .node(1)
        .receive(
            r(0),
            PeerMessage::Hello {
                region: r(2),
                durable: Vec::new(),
            },
        )
        .unwrap_err();
    assert!(matches!(err, CoreError::PeerViolation { .. }), "{err}");
}

#[test]
fn messages_from_unknown_regions_are_refused() {
    let mut net = Net::new(2);
    let err = net
        .node(1)
        .receive(
            r(9),
            PeerMessage::Hello {
                region: r(9),
                durable: Vec::new(),
            },
        )
        .unwrap_err();
    assert!(matches!(err, CoreError::UnknownRegion(_)));
}

#[test]
fn resolving_unknown_or_closed_items_is_refused() {
    let mut net = Net::new(2);
    assert!(matches!(
        net.node(0).resolve(42, None),
        Err(CoreError::UnknownConflict(42))
    ));
    net.write(0, "queue", "k", ClientOp::Put(b"a".to_vec()));
    net.write(1, "queue", "k", ClientOp::Put(b"b".to_vec()));
    net.settle();
    let id = net.node(0).conflicts().next().expect("item").id;
    net.node(0)
        .resolve(id, Some(b"c".to_vec()))
        .expect("resolve");
    assert!(matches!(
        net.node(0).resolve(id, None),
        Err(CoreError::ConflictClosed(_))
    ));
}
