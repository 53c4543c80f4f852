//! The conflict queue end to end on two engines: resolvers, watching,
//! listing, purging.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on error, as the tests do"
)]

use std::sync::Arc;
use std::time::Duration;

use concord_clock::{Clock, ManualClock, WallTime};
use concord_core::{
    ClientOp, ClientWrite, Collection, CollectionConfig, Engine, EngineConfig, ItemStatus,
    MemoryStorage, Policy, ReadValue,
};
use concord_crdt::RegionId;
use concord_queue::{
    Binding, ListFilter, PickByField, Prefer, Retention, RunOn, SumDeltas, Watch, depth, list,
    purge, run_resolvers,
};

const NOON: i64 = 1_795_435_200_000_000;

fn col(s: &str) -> Collection {
    Collection::new(s).unwrap()
}

struct Pair {
    engines: Vec<Engine<MemoryStorage>>,
    clock: Arc<ManualClock>,
}

impl Pair {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(WallTime::from_micros(NOON)));
        let collections = vec![
            (col("stock"), CollectionConfig::new(Policy::Queue)),
            (col("orders"), CollectionConfig::new(Policy::Queue)),
        ];
        let engines = (0..2u16)
            .map(|i| {
                let cfg = EngineConfig::new(
                    RegionId::new(i),
                    vec![RegionId::new(1 - i)],
                    collections.clone(),
                );
                Engine::open(cfg, MemoryStorage::new(), clock.clone()).unwrap()
            })
            .collect();
        let mut pair = Self { engines, clock };
        // Both ends come up, then each hello crosses the connection.
        let hellos: Vec<_> = (0..2)
            .map(|i| {
                pair.engines[i]
                    .connect(RegionId::new(1 - i as u16))
                    .unwrap()
            })
            .collect();
        for (i, out) in hellos.into_iter().enumerate() {
            for o in out {
                pair.engines[1 - i]
                    .receive(RegionId::new(i as u16), o.message)
                    .unwrap();
            }
        }
        pair
    }

    fn put(&mut self, i: usize, collection: &str, value: &str) {
        self.engines[i]
            .write(ClientWrite {
                collection: col(collection),
                key: b"sku-1".to_vec(),
                op: ClientOp::Put(value.as_bytes().to_vec()),
                context: None,
            })
            .unwrap();
    }

    fn settle(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            for i in 0..2 {
                let mut out = self.engines[i].commit().unwrap().outgoing;
                out.extend(self.engines[i].poll().unwrap());
                for o in out {
                    moved = true;
                    let back = self.engines[1 - i]
                        .receive(RegionId::new(i as u16), o.message)
                        .unwrap();
                    for b in back {
                        self.engines[i]
                            .receive(RegionId::new(1 - i as u16), b.message)
                            .unwrap();
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("did not settle");
    }
}

#[test]
fn a_resolver_on_one_region_resolves_for_all() {
    let mut p = Pair::new();
    p.put(0, "stock", "-2");
    p.put(1, "stock", "+5");
    p.settle();
    assert_eq!(depth(&p.engines[0]), 1);
    assert_eq!(depth(&p.engines[1]), 1);
    let bindings = vec![Binding {
        collection: col("stock"),
        resolver: Box::new(SumDeltas),
        run_on: RunOn::Region(RegionId::new(0)),
    }];
    // Region 1 runs the same bindings but is not the resolver's region.
    let r1 = run_resolvers(&mut p.engines[1], &bindings).unwrap();
    assert!(r1.resolved.is_empty());
    let r0 = run_resolvers(&mut p.engines[0], &bindings).unwrap();
    assert_eq!(r0.resolved.len(), 1);
    p.settle();
    for e in &p.engines {
        assert_eq!(depth(e), 0);
        match e.read(&col("stock"), b"sku-1").unwrap() {
            ReadValue::Siblings { versions, .. } => {
                assert_eq!(versions.len(), 1);
                assert_eq!(versions[0].value.as_deref(), Some(&b"3"[..]));
            }
            other => panic!("expected the resolved value, got {other:?}"),
        }
    }
}

#[test]
fn pick_by_field_resolves_to_the_newest_version_field() {
    let mut p = Pair::new();
    p.put(0, "orders", r#"{"status":"paid","rev":3}"#);
    p.put(1, "orders", r#"{"status":"shipped","rev":4}"#);
    p.settle();
    let bindings = vec![Binding {
        collection: col("orders"),
        resolver: Box::new(PickByField::new("rev", Prefer::Max)),
        run_on: RunOn::Anywhere,
    }];
    let report = run_resolvers(&mut p.engines[1], &bindings).unwrap();
    assert_eq!(report.resolved.len(), 1);
    p.settle();
    match p.engines[0].read(&col("orders"), b"sku-1").unwrap() {
        ReadValue::Siblings { versions, .. } => {
            assert_eq!(
                versions[0].value.as_deref(),
                Some(&br#"{"status":"shipped","rev":4}"#[..])
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unreadable_version_leaves_the_item_open_and_says_why() {
    let mut p = Pair::new();
    p.put(0, "stock", "-2");
    p.put(1, "stock", "lots");
    p.settle();
    let bindings = vec![Binding {
        collection: col("stock"),
        resolver: Box::new(SumDeltas),
        run_on: RunOn::Anywhere,
    }];
    let report = run_resolvers(&mut p.engines[0], &bindings).unwrap();
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.to_string().contains("lots"));
    assert_eq!(depth(&p.engines[0]), 1);
}

#[test]
fn watch_sees_each_change_once_in_order() {
    let mut p = Pair::new();
    let mut watch = Watch::from(0);
    assert!(watch.poll(&p.engines[0]).is_empty());
    p.put(0, "stock", "1");
    p.put(1, "stock", "2");
    p.settle();
    let opened = watch.poll(&p.engines[0]);
    assert_eq!(opened.len(), 1);
    assert!(opened[0].status.is_open());
    assert!(watch.poll(&p.engines[0]).is_empty(), "nothing new");
    let id = opened[0].id;
    concord_queue::resolve(&mut p.engines[0], id, Some(b"3".to_vec())).unwrap();
    let closed = watch.poll(&p.engines[0]);
    assert_eq!(closed.len(), 1);
    assert!(matches!(closed[0].status, ItemStatus::Resolved { .. }));
    assert!(closed[0].position > opened[0].position);
    // A watcher restarted from a saved position sees only what came after.
    let mut again = Watch::from(opened[0].position);
    assert_eq!(again.poll(&p.engines[0]).len(), 1);
}

#[test]
fn list_filters_and_purge_keeps_open_items() {
    let mut p = Pair::new();
    p.put(0, "stock", "1");
    p.put(1, "stock", "2");
    p.put(0, "orders", "{}");
    p.put(1, "orders", "[]");
    p.settle();
    let all = list(&p.engines[0], &ListFilter::default());
    assert_eq!(all.len(), 2);
    let stock = list(
        &p.engines[0],
        &ListFilter {
            collection: Some(col("stock")),
            ..ListFilter::default()
        },
    );
    assert_eq!(stock.len(), 1);
    concord_queue::resolve(&mut p.engines[0], stock[0].id, Some(b"3".to_vec())).unwrap();
    let open = list(
        &p.engines[0],
        &ListFilter {
            open_only: true,
            ..ListFilter::default()
        },
    );
    assert_eq!(open.len(), 1);
    let paged = list(
        &p.engines[0],
        &ListFilter {
            after_id: Some(all[0].id),
            limit: 5,
            ..ListFilter::default()
        },
    );
    assert_eq!(paged.len(), 1);

    let retention = Retention {
        keep_for: Duration::from_secs(60),
    };
    let now = p.clock.now();
    assert_eq!(
        purge(&mut p.engines[0], &retention, now).items,
        0,
        "too recent"
    );
    p.clock.advance(Duration::from_secs(120));
    let purged = purge(&mut p.engines[0], &retention, p.clock.now());
    assert_eq!(purged.items, 1, "the closed one");
    assert_eq!(
        list(&p.engines[0], &ListFilter::default()).len(),
        1,
        "the open one stays"
    );
}
