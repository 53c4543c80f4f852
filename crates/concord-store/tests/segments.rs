//! Entity state in segments: later checkpoints override earlier ones,
//! compaction keeps exactly the live state, a crash at any point leaves one
//! checkpoint whole (segments and loser chunks), and a store of the older
//! one-record-per-entity layout is converted when it opens.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use concord_core::storage_conformance::sample_delta;
use concord_core::{
    Checkpoint, CheckpointDelta, Collection, EngineMeta, Entity, EntityKey, LoserRecord, Storage,
};
use concord_crdt::{RegionId, codec};
use concord_store::SledStore;
use support::open_raw;

const A: RegionId = RegionId::new(1);

/// Entity states of every policy, from the conformance suite's samples.
fn states() -> Vec<Arc<Entity>> {
    sample_delta()
        .entities
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

/// Delta `n`: `count` entities with keys drawn (with repeats) from `keys`,
/// their states depending on `n`, and cursors and metadata naming `n`.
fn delta(n: u64, count: usize, keys: u64) -> CheckpointDelta {
    let states = states();
    let collection = Collection::new("items").expect("a valid name");
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let entities = (0..count)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = EntityKey::new(collection.clone(), format!("k{:06}", x % keys));
            (key, states[(n as usize + i) % states.len()].clone())
        })
        .collect();
    CheckpointDelta {
        cursors: vec![(A, n)],
        entities,
        meta: EngineMeta {
            next_item_id: n,
            ..EngineMeta::default()
        },
        ..CheckpointDelta::default()
    }
}

/// What the store must hold after `deltas`, applied in order.
#[derive(Default)]
struct Model {
    entities: BTreeMap<EntityKey, Entity>,
    losers: BTreeMap<u64, LoserRecord>,
    last: Option<CheckpointDelta>,
}

impl Model {
    fn apply(&mut self, delta: &CheckpointDelta) {
        for (k, e) in &delta.entities {
            self.entities.insert(k.clone(), Entity::clone(e));
        }
        for l in &delta.losers {
            self.losers.insert(l.id, l.clone());
        }
        if let Some(through) = delta.losers_purged_through {
            self.losers.retain(|id, _| *id > through);
        }
        self.last = Some(delta.clone());
    }

    fn checkpoint(&self) -> Checkpoint {
        let last = self.last.clone().unwrap_or_default();
        Checkpoint {
            cursors: last.cursors,
            entities: self
                .entities
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
            queue: Vec::new(),
            losers: self.losers.values().cloned().collect(),
            meta: last.meta,
        }
    }
}

/// Stores checkpoint `n`, `d`, applies it to `model` too, and checks that
/// the store loads what the model holds.
fn checkpoint_and_check(store: &mut SledStore, model: &mut Model, d: &CheckpointDelta, n: u64) {
    store.checkpoint(d.clone()).expect("a checkpoint");
    model.apply(d);
    assert_eq!(
        store.load_checkpoint().expect("the checkpoint loads"),
        model.checkpoint(),
        "after {n}"
    );
}

/// The generations the segment files of the closed store at `path` hold,
/// and the entries in all of them.
fn generations_and_entries(path: &std::path::Path) -> (Vec<u64>, u64) {
    let files = support::segment_files(path);
    let entries = files
        .iter()
        .flat_map(|(_, segments)| segments)
        .map(|s| {
            u64::from(u32::from_be_bytes(
                s[1..5].try_into().expect("a segment header"),
            ))
        })
        .sum();
    (files.into_iter().map(|(g, _)| g).collect(), entries)
}

#[test]
fn later_segments_override_earlier_ones_in_order() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = SledStore::open(dir.path()).expect("a new store opens");
    let mut model = Model::default();
    // Small deltas over few keys: many overrides, no compaction.
    for n in 1..=12 {
        let mut d = delta(n, 60, 100);
        // The same entity twice in one delta: the later one counts.
        let again = (d.entities[0].0.clone(), states()[n as usize % 3].clone());
        d.entities.push(again);
        checkpoint_and_check(&mut store, &mut model, &d, n);
    }
    // An empty delta writes no segment and keeps everything.
    let quiet = CheckpointDelta {
        entities: Vec::new(),
        ..delta(13, 0, 100)
    };
    store.checkpoint(quiet.clone()).unwrap();
    model.apply(&quiet);
    drop(store);
    let (generations, entries) = generations_and_entries(dir.path());
    assert_eq!(generations, (1..=12).collect::<Vec<u64>>());
    let distinct: usize = (1..=12)
        .map(|n| {
            let keys: std::collections::BTreeSet<EntityKey> = delta(n, 60, 100)
                .entities
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            keys.len()
        })
        .sum();
    assert_eq!(
        entries, distinct as u64,
        "one generation per checkpoint, deduplicated"
    );
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.load_checkpoint().unwrap(), model.checkpoint());
}

/// Large deltas with each key many times over: the runs of one key cross
/// the groups a checkpoint copies its entries in, and still only the last
/// of each run is stored.
#[test]
fn every_run_of_a_key_keeps_its_last_entry_in_a_large_delta() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = SledStore::open(dir.path()).expect("a new store opens");
    let mut model = Model::default();
    let mut distinct = 0;
    for n in 1..=3 {
        let d = delta(n, 2_000, 150);
        distinct += d
            .entities
            .iter()
            .map(|(k, _)| k)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        checkpoint_and_check(&mut store, &mut model, &d, n);
    }
    drop(store);
    let (generations, entries) = generations_and_entries(dir.path());
    assert_eq!(generations, vec![1, 2, 3], "no compaction yet");
    assert_eq!(entries, distinct as u64, "one entry per key and delta");
}

#[test]
fn compaction_keeps_exactly_the_live_state() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut model = Model::default();
    let mut compactions = 0;
    for n in 1..=14u64 {
        let mut store = SledStore::open(dir.path()).expect("the store opens");
        let d = delta(n, 1500, 3000);
        checkpoint_and_check(&mut store, &mut model, &d, n);
        drop(store);
        let (generations, entries) = generations_and_entries(dir.path());
        if n > 1 && generations.len() == 1 {
            // Compacted: one generation of exactly the live entities.
            compactions += 1;
            assert_eq!(generations.len(), 1, "after compaction {n}");
            assert_eq!(entries, model.entities.len() as u64, "after compaction {n}");
        }
        // Never more than twice the live entities, plus this checkpoint's.
        assert!(entries <= 2 * model.entities.len().max(1024) as u64 + 1500);
    }
    assert!(compactions >= 3, "only {compactions} compactions");
}

/// Set in the child's environment: the store's directory.
const CHILD_DIR: &str = "CONCORD_SEGMENTS_CRASH_CHILD_DIR";
/// Set in the child's environment: milliseconds before it dies.
const CHILD_DIES_AFTER: &str = "CONCORD_SEGMENTS_CRASH_AFTER_MS";
/// The child's exit code when it died as planned.
const CRASHED: i32 = 86;
/// The checkpoints the child attempts (it dies long before).
const CHILD_CHECKPOINTS: u64 = 100_000;

/// Loser records of the crash test's checkpoints, one checkpoint's worth.
const CRASH_LOSERS: u64 = 700;

/// Checkpoint `n` of the crash test: entities, and loser records appended
/// and purged as the engine's bounded log does (a chunk straddles the
/// purge point most of the time).
fn crash_delta(n: u64) -> CheckpointDelta {
    let template = sample_delta().losers[0].clone();
    let first = (n - 1) * CRASH_LOSERS;
    let losers = (first..first + CRASH_LOSERS)
        .map(|id| LoserRecord {
            id,
            winner: concord_core::WriteRef {
                origin: A,
                seq: id + n,
            },
            ..template.clone()
        })
        .collect();
    CheckpointDelta {
        losers,
        losers_purged_through: (first + CRASH_LOSERS).checked_sub(2 * CRASH_LOSERS + 13),
        ..delta(n, 2000, 6000)
    }
}

/// Does nothing in a normal run; in the child, checkpoints over and over
/// (compacting now and then), printing each one that returned, until a
/// timer kills the process without running any destructor.
#[test]
fn child_that_crashes_mid_checkpoint() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let after: u64 = std::env::var(CHILD_DIES_AFTER)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut store = SledStore::open(&dir).unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(after));
        std::process::exit(CRASHED);
    });
    for n in 1..=CHILD_CHECKPOINTS {
        store.checkpoint(crash_delta(n)).unwrap();
        println!("done {n}");
    }
}

#[test]
fn a_crash_at_any_point_leaves_one_checkpoint_whole() {
    let mut most = 0;
    // Deaths at several points: while the new segments and loser chunks
    // are written, while the indexes are, while replaced ones are removed,
    // and during compactions.
    for after in [20, 40, 90, 150, 400, 900] {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_that_crashes_mid_checkpoint",
                "--exact",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_DIES_AFTER, after.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&child.stdout);
        assert_eq!(
            child.status.code(),
            Some(CRASHED),
            "the child failed: {stdout}\n{}",
            String::from_utf8_lossy(&child.stderr)
        );
        let done = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("done "))
            .filter_map(|n| n.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        most = most.max(done);
        eprintln!("died after {after} ms, {done} checkpoints done");

        let store = SledStore::open(dir.path()).unwrap();
        let loaded = store.load_checkpoint().unwrap();
        // Checkpoints are written in the background: when `checkpoint(n)`
        // returns, checkpoint n - 1 is durable and n is being written; a
        // crash leaves n - 1, n or (begun before "done n + 1" was printed)
        // n + 1, and always one of them whole.
        let durable = done.saturating_sub(1);
        let mut model = Model::default();
        for n in 1..=durable {
            model.apply(&crash_delta(n));
        }
        let mut candidates = vec![model.checkpoint()];
        for n in durable + 1..=done + 1 {
            model.apply(&crash_delta(n));
            candidates.push(model.checkpoint());
        }
        assert!(
            candidates.contains(&loaded),
            "after dying at {after} ms with {done} checkpoints returned, the store holds none of checkpoints {durable}..={} whole: it holds {} entities, cursors {:?}; stdout: {stdout}",
            done + 1,
            loaded.entities.len(),
            loaded.cursors,
        );
    }
    // Enough checkpoints that some compacted (every other one, at first).
    assert!(most >= 3, "the child made only {most} checkpoints");
}

#[test]
fn a_store_of_one_record_per_entity_is_converted_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected: Vec<(EntityKey, Entity)> = sample_delta()
        .entities
        .into_iter()
        .map(|(k, e)| (k, Arc::unwrap_or_clone(e)))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    {
        let db = open_raw(dir.path());
        let legacy = db.open_tree("entities").unwrap();
        for (key, entity) in &expected {
            let mut k = key.collection.as_str().as_bytes().to_vec();
            k.push(0);
            k.extend_from_slice(&key.key);
            legacy.insert(k, codec::encode(entity).unwrap()).unwrap();
        }
        db.flush().unwrap();
    }
    let mut store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.load_checkpoint().unwrap().entities, expected);
    // Checkpoints go on from there.
    let d = delta(1, 10, 10);
    store.checkpoint(d.clone()).unwrap();
    let mut model = Model::default();
    for (k, e) in &expected {
        model.entities.insert(k.clone(), e.clone());
    }
    model.apply(&d);
    assert_eq!(store.load_checkpoint().unwrap(), model.checkpoint());
    drop(store);
    let db = open_raw(dir.path());
    assert!(
        !db.tree_names().iter().any(|n| &n[..] == b"entities"),
        "the old tree is dropped"
    );
    drop(db);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.load_checkpoint().unwrap(), model.checkpoint());
}

/// A store that kept its segments in sled (the `segments` tree, keyed by
/// generation and chunk, big endian) has them moved into segment files when
/// it opens, generation by generation, as bytes; segments the index did
/// not publish are dropped with the tree. A move cut short (files of some
/// generations written, the tree still there) is redone.
#[test]
fn a_store_of_segments_in_sled_is_moved_into_files_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    {
        let mut store = SledStore::open(dir.path()).unwrap();
        for n in 1..=3 {
            let d = delta(n, 40, 100);
            store.checkpoint(d.clone()).unwrap();
            model.apply(&d);
        }
    }
    let files = support::segment_files(dir.path());
    assert_eq!(
        files.iter().map(|(g, _)| *g).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    for cut_short in [false, true] {
        // Back to the old layout: the segments in the tree, no files (or,
        // cut short, generation 1's file already written).
        {
            let db = open_raw(dir.path());
            let tree = db.open_tree("segments").unwrap();
            for (generation, segments) in &files {
                for (chunk, segment) in segments.iter().enumerate() {
                    let key = [
                        &generation.to_be_bytes()[..],
                        &(chunk as u32).to_be_bytes()[..],
                    ]
                    .concat();
                    tree.insert(key, segment.clone()).unwrap();
                }
            }
            // Unpublished: past the index's next generation.
            let junk = [&9u64.to_be_bytes()[..], &0u32.to_be_bytes()[..]].concat();
            tree.insert(junk, b"unpublished".to_vec()).unwrap();
            db.flush().unwrap();
        }
        for (generation, _) in &files {
            if !(cut_short && *generation == 1) {
                std::fs::remove_file(
                    dir.path()
                        .join("segments")
                        .join(format!("{generation:020}.seg")),
                )
                .unwrap();
            }
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.load_checkpoint().unwrap(),
            model.checkpoint(),
            "cut short: {cut_short}"
        );
        drop(store);
        assert_eq!(
            support::segment_files(dir.path()),
            files,
            "cut short: {cut_short}"
        );
        let db = open_raw(dir.path());
        assert!(
            !db.tree_names().iter().any(|n| &n[..] == b"segments"),
            "the old tree is dropped"
        );
    }
    // Checkpoints go on from there.
    let mut store = SledStore::open(dir.path()).unwrap();
    let d = delta(4, 40, 100);
    store.checkpoint(d.clone()).unwrap();
    model.apply(&d);
    assert_eq!(store.load_checkpoint().unwrap(), model.checkpoint());
}
