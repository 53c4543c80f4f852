//! Three real `concord` processes on loopback converge after concurrent
//! writes under every policy, key by key in every region; and SIGTERM makes
//! a node flush and exit 0, so its acknowledged writes are there after a
//! restart.

mod process_support;

use std::collections::BTreeMap;
use std::time::Duration;

use concord_node::client::{Client, Read};
use process_support::{Cluster, NAMES, Spec, describe, values};

const KEYS: usize = 12;

fn key(k: usize) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

/// Region `r`'s writes: every key of every collection, all at once with
/// the other regions'. Returns nothing; panics on a refused write.
async fn write_round(mut c: Client, r: usize) {
    for k in 0..KEYS {
        let v = format!("{}-{k}", NAMES[r]);
        c.put("wall", &key(k), v.as_bytes())
            .await
            .expect("put wall");
        c.put("hlc", &key(k), v.as_bytes()).await.expect("put hlc");
        c.put("carts", &key(k), v.as_bytes())
            .await
            .expect("put carts");
        c.put("orders", &key(k), v.as_bytes())
            .await
            .expect("put orders");
        // Region r adds (r+1)*10 + k in two steps, one of them negative.
        let delta = i64::try_from((r + 1) * 10 + k).expect("small");
        c.increment("stock", &key(k), delta + 5)
            .await
            .expect("incr");
        c.increment("stock", &key(k), -5).await.expect("decr");
        // Deletes race with the other regions' puts on a few keys.
        if k % 4 == r {
            c.delete("hlc", &key(k)).await.expect("delete hlc");
        }
    }
}

fn all_keys() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for c in ["wall", "hlc", "carts", "stock", "orders"] {
        for k in 0..KEYS {
            out.push((c.to_owned(), key(k)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_converge_under_every_policy_and_sigterm_flushes() {
    let mut cluster = Cluster::new(Spec::new(3));
    cluster.start().await;
    cluster.wait_connected().await;

    // Concurrent writes: every region writes every key at once.
    let clients = cluster.clients().await;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(r, c)| tokio::spawn(write_round(c, r)))
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }

    let keys = all_keys();
    let view = cluster.wait_converged(&keys).await;
    let mut clients = cluster.clients().await;
    let written: Vec<String> = (0..3).map(|r| NAMES[r].to_owned()).collect();
    for k in 0..KEYS {
        let ks = String::from_utf8(key(k)).expect("utf8");
        // Counters: the exact sum of every region's increments.
        let sum: usize = (0..3).map(|r| (r + 1) * 10 + k).sum();
        assert_eq!(view[&format!("stock/{ks}")], sum.to_string(), "stock/{ks}");
        // Every region reads the same thing (checked by wait_converged);
        // here, what it is.
        for (i, c) in clients.iter_mut().enumerate() {
            // lww-wall: one region's value wins.
            let r = c.get("wall", &key(k)).await.expect("get");
            let Read::Value { value, .. } = &r else {
                panic!("wall/{ks} in {}: {r:?}", NAMES[i]);
            };
            let value = String::from_utf8_lossy(value);
            assert!(
                written.iter().any(|n| value == format!("{n}-{k}")),
                "wall/{ks}: {value}"
            );
            // lww-hlc: a value or, where a delete raced, possibly missing.
            let r = c.get("hlc", &key(k)).await.expect("get");
            match &r {
                Read::Missing => assert!(k % 4 < 3, "hlc/{ks} missing but never deleted"),
                Read::Value { value, .. } => {
                    let value = String::from_utf8_lossy(value);
                    assert!(
                        written.iter().any(|n| value == format!("{n}-{k}")),
                        "hlc/{ks}: {value}"
                    );
                }
                other => panic!("hlc/{ks}: {other:?}"),
            }
            // mv and queue: blind writes are concurrent, so one sibling
            // per region.
            let mut want: Vec<String> = written.iter().map(|n| format!("{n}-{k}")).collect();
            want.sort();
            for coll in ["carts", "orders"] {
                let r = c.get(coll, &key(k)).await.expect("get");
                assert!(
                    matches!(r, Read::Siblings { .. }),
                    "{coll}/{ks} in {}: {r:?}",
                    NAMES[i]
                );
                assert_eq!(values(&r), want, "{coll}/{ks} in {}", NAMES[i]);
            }
        }
    }
    // The queue collection's concurrent writes are open conflict items, in
    // every region, one per key.
    for (i, c) in clients.iter_mut().enumerate() {
        let items = c.conflicts(false).await.expect("conflicts");
        let mut keys: Vec<Vec<u8>> = items
            .iter()
            .filter(|it| it.collection == "orders")
            .map(|it| it.key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            KEYS,
            "open orders items in {}: {items:?}",
            NAMES[i]
        );
    }

    // Resolve one queue item and merge one cart in different regions;
    // both replace the siblings everywhere.
    let item = clients[0]
        .conflicts(false)
        .await
        .expect("conflicts")
        .into_iter()
        .find(|it| it.collection == "orders" && it.key == key(0))
        .expect("an item for orders/k0");
    let token = clients[0]
        .resolve(item.id, Some(b"resolved".to_vec()))
        .await
        .expect("resolve");
    let Read::Siblings { context, .. } = clients[1].get("carts", &key(0)).await.expect("get")
    else {
        panic!("carts/k0 has siblings");
    };
    let merged = clients[1]
        .put_with("carts", &key(0), b"merged", Some(context))
        .await
        .expect("merge");
    // Read-your-writes in another region with the causal tokens.
    let r = clients[2]
        .get_after("orders", &key(0), token)
        .await
        .expect("get after");
    assert_eq!(values(&r), vec!["resolved".to_owned()], "orders/k0: {r:?}");
    let r = clients[2]
        .get_after("carts", &key(0), merged)
        .await
        .expect("get after");
    assert_eq!(values(&r), vec!["merged".to_owned()], "carts/k0: {r:?}");
    let view = cluster.wait_converged(&keys).await;
    assert!(view["orders/k0"].contains("\"resolved\""), "{view:?}");
    assert!(view["carts/k0"].contains("\"merged\""), "{view:?}");
    assert_eq!(describe(&r), view["carts/k0"]);
    // The resolution closes the item in every region.
    for (i, c) in clients.iter_mut().enumerate() {
        let closed = process_support::eventually(process_support::PATIENCE, || {
            let mut c = c.clone();
            async move {
                c.conflicts(false).await.is_ok_and(|items| {
                    !items
                        .iter()
                        .any(|it| it.collection == "orders" && it.key == key(0))
                })
            }
        })
        .await;
        assert!(closed, "orders/k0 still open in {}", NAMES[i]);
    }

    // SIGTERM: a last burst of acknowledged writes in every region, then
    // every node is told to stop; each flushes and exits 0.
    let mut acked: Vec<BTreeMap<Vec<u8>, String>> = vec![BTreeMap::new(); 3];
    for (r, c) in clients.iter_mut().enumerate() {
        for n in 0..50 {
            let k = format!("term-{r}-{n}").into_bytes();
            let v = format!("v{n}");
            c.put("hlc", &k, v.as_bytes()).await.expect("put");
            acked[r].insert(k, v);
        }
        c.increment("stock", b"term", 7).await.expect("incr");
    }
    drop(clients);
    for i in (0..3).rev() {
        let status = cluster.nodes[i].sigterm(Duration::from_secs(30));
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM\n{}",
            NAMES[i],
            cluster.nodes[i].logs()
        );
    }
    // Each node alone (no peer could hand its writes back): its own
    // acknowledged writes are there.
    for i in 0..3 {
        cluster.restart(i).await;
        let mut c = cluster.client(i).await;
        for (k, v) in &acked[i] {
            let r = c.get("hlc", k).await.expect("get");
            assert_eq!(
                values(&r),
                vec![v.clone()],
                "{} lost {} after SIGTERM",
                NAMES[i],
                String::from_utf8_lossy(k)
            );
        }
        let r = c.get("stock", b"term").await.expect("get");
        match r {
            Read::Counter(n) => assert!(n >= 7, "{}: stock/term = {n}", NAMES[i]),
            other => panic!("stock/term: {other:?}"),
        }
        let status = cluster.nodes[i].sigterm(Duration::from_secs(30));
        assert!(status.success(), "{} exited with {status}", NAMES[i]);
    }
    // All together again: converged, with everyone's writes.
    for i in 0..3 {
        cluster.restart(i).await;
    }
    let mut keys = keys;
    for a in &acked {
        keys.extend(a.keys().map(|k| ("hlc".to_owned(), k.clone())));
    }
    keys.push(("stock".to_owned(), b"term".to_vec()));
    let view = cluster.wait_converged(&keys).await;
    assert_eq!(view["stock/term"], "21");
    for a in &acked {
        for (k, v) in a {
            let got = &view[&format!("hlc/{}", String::from_utf8_lossy(k))];
            assert!(got.starts_with(&format!("{v:?} @")), "{got}");
        }
    }
}
