//! The conformance suite every [`crate::Storage`] implementation passes.
//!
//! An implementation provides a [`StoreHarness`] — how to make a fresh store
//! and how to crash one and open its data again — and runs [`test_all`] from
//! a test. Each check is also a public function, so a failing one can be run
//! alone. The checks panic with a message naming the check and what differed:
//! this module is a test harness, compiled into the library so that every
//! storage crate runs the very same checks.
//!
//! The suite pins what the engine relies on:
//!
//! - the log: appends are all or nothing, continue each origin's log, read
//!   back in order from any seq (also the middle of a stored batch), trim
//!   whole records only, and report [`CoreError::LogGap`] below the first
//!   held seq;
//! - durability: what [`Storage::sync`] covered survives a crash, and so does
//!   every checkpoint; a store that models power cuts
//!   ([`StoreHarness::loses_unsynced`]) also drops every unsynced append;
//! - checkpoints: the loaded state is exactly the deltas applied in order
//!   (cursors replaced, entities and queue items upserted, queue items and
//!   loser records purged, metadata replaced).
//!
//! The order of the vectors in a [`Checkpoint`] and of [`Storage::log_bounds`]
//! is not part of the contract: the suite compares them sorted.
//!
//! ```no_run
//! use concord_core::MemoryStorage;
//! use concord_core::storage_conformance::{StoreHarness, test_all};
//!
//! struct Memory;
//!
//! impl StoreHarness for Memory {
//!     type Store = MemoryStorage;
//!     fn fresh(&mut self) -> MemoryStorage {
//!         MemoryStorage::new()
//!     }
//!     fn crash_and_reopen(&mut self, store: MemoryStorage) -> MemoryStorage {
//!         store.crash();
//!         store
//!     }
//!     fn loses_unsynced(&self) -> bool {
//!         true
//!     }
//! }
//!
//! test_all(&mut Memory);
//! ```

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use concord_clock::{HlcTime, WallTime};
use concord_crdt::{Dot, PnTotals, RegionId, VersionVector};

use crate::{
    Checkpoint, CheckpointDelta, Collection, CollectionConfig, CollectionEntry, ConflictItem,
    ConflictReason, CoreError, EngineMeta, Entity, EntityKey, ItemStatus, LogBounds, LoserRecord,
    Op, Policy, Replication, SkewAction, Storage, TaggedWrite, Version, WriteBatch, WriteRef,
};

/// How the suite makes, crashes and reopens stores of one implementation.
pub trait StoreHarness {
    /// The storage under test.
    type Store: Storage;

    /// A new, empty store (independent of every other store it made).
    fn fresh(&mut self) -> Self::Store;

    /// Simulates a crash of the process that owns `store` — drop it without
    /// any further call — and opens the same data again, as a restarted node
    /// would.
    fn crash_and_reopen(&mut self, store: Self::Store) -> Self::Store;

    /// True when a crash loses every append not yet synced (a power cut, as
    /// [`crate::MemoryStorage::crash`] models it). A real disk store may keep
    /// some of them; it answers `false` and the suite checks only that synced
    /// data survives.
    fn loses_unsynced(&self) -> bool {
        false
    }
}

/// One check of the suite.
pub struct Check<H> {
    /// Its name (the name of its function).
    pub name: &'static str,
    /// Runs it; panics when the store does not conform.
    pub run: fn(&mut H),
}

impl<H> std::fmt::Debug for Check<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

/// Every check of the suite, in the order [`test_all`] runs them.
pub fn checks<H: StoreHarness>() -> Vec<Check<H>> {
    macro_rules! check {
        ($($f:ident),* $(,)?) => {
            vec![$(Check { name: stringify!($f), run: $f }),*]
        };
    }
    check![
        empty_store,
        append_then_read_in_order,
        append_refuses_bad_batches_whole,
        log_bounds_per_origin,
        trim_drops_whole_records,
        synced_appends_survive_a_crash,
        checkpoint_round_trips,
        checkpoints_survive_a_crash,
    ]
}

/// Runs every check, each on fresh stores, and panics at the end naming
/// every check that failed (each failure's own message is printed as it
/// happens).
pub fn test_all<H: StoreHarness>(harness: &mut H) {
    let mut failed = Vec::new();
    for check in checks::<H>() {
        if catch_unwind(AssertUnwindSafe(|| (check.run)(harness))).is_err() {
            failed.push(check.name);
        }
    }
    assert!(
        failed.is_empty(),
        "storage conformance: {} check(s) failed: {}",
        failed.len(),
        failed.join(", ")
    );
}

// ---------------------------------------------------------------------------
// Sample records
// ---------------------------------------------------------------------------

const A: RegionId = RegionId::new(1);
const B: RegionId = RegionId::new(2);
const C: RegionId = RegionId::new(0x0103);

/// 2026-11-22T00:00:00Z, in milliseconds.
const BASE_MS: i64 = 1_795_392_000_000;

fn collection(name: &str) -> Collection {
    Collection::new(name).expect("sample collection names are valid")
}

fn offset_ms(seq: u64) -> i64 {
    i64::try_from(seq % (1 << 40)).expect("a value below 2^40 fits an i64")
}

fn wall_at(seq: u64) -> WallTime {
    WallTime::from_micros((BASE_MS + offset_ms(seq)) * 1000)
}

fn hlc_at(seq: u64) -> HlcTime {
    HlcTime::from_parts(BASE_MS + offset_ms(seq), seq % 16).expect("sample HLC times are in range")
}

/// The parts of a sample write that vary with its purpose.
struct WriteSpec<'a> {
    origin: RegionId,
    seq: u64,
    collection: &'a str,
    key: &'a [u8],
    policy: Policy,
    op: Op,
    dot: Option<Dot>,
}

fn build_write(spec: WriteSpec<'_>) -> TaggedWrite {
    let WriteSpec {
        origin,
        seq,
        collection: name,
        key,
        policy,
        op,
        dot,
    } = spec;
    let wall = wall_at(seq);
    TaggedWrite {
        id: TaggedWrite::make_id(origin, seq, wall),
        origin,
        seq,
        hlc: hlc_at(seq),
        wall,
        collection: collection(name),
        key: key.to_vec(),
        context: dot.map_or_else(VersionVector::new, |d| {
            VersionVector::from_entries([(d.region, d.counter.saturating_sub(1))])
        }),
        epoch: seq % 3,
        policy,
        dot,
        op,
    }
}

/// Write `seq` of `origin`, with real field values; the kind of op cycles
/// with `seq` so that a log holds every kind.
pub fn sample_write(origin: RegionId, seq: u64) -> TaggedWrite {
    let key = format!("key-{}", seq % 4);
    let dot = Some(Dot::new(origin, seq));
    let (collection, policy, op, dot) = match seq % 5 {
        0 => (
            "profiles",
            Policy::LwwHlc,
            Op::Set(format!("value {seq} of {origin}").into_bytes()),
            None,
        ),
        1 => ("profiles", Policy::LwwWall, Op::Delete, None),
        2 => (
            "stock",
            Policy::Counter,
            Op::Counter(PnTotals {
                incremented: seq.saturating_mul(3),
                decremented: seq,
            }),
            None,
        ),
        3 => (
            "tickets",
            Policy::Queue,
            Op::Resolve {
                value: Some(vec![0, 1, 2, 0xff]),
                resolves: vec![WriteRef {
                    origin,
                    seq: seq.saturating_sub(1),
                }],
            },
            dot,
        ),
        _ => (
            "carts",
            Policy::Mv,
            Op::Configure(
                CollectionConfig::new(Policy::Mv)
                    .with_replication(Replication::Regions(vec![A, B])),
            ),
            dot,
        ),
    };
    build_write(WriteSpec {
        origin,
        seq,
        collection,
        key: key.as_bytes(),
        policy,
        op,
        dot,
    })
}

/// A batch of the sample writes `seqs` of `origin`.
pub fn sample_batch(origin: RegionId, seqs: RangeInclusive<u64>) -> WriteBatch {
    WriteBatch {
        origin,
        writes: seqs.map(|seq| sample_write(origin, seq)).collect(),
    }
}

fn writes_of(origin: RegionId, seqs: RangeInclusive<u64>) -> Vec<TaggedWrite> {
    sample_batch(origin, seqs).writes
}

fn set_write(
    origin: RegionId,
    seq: u64,
    entity: (&str, &[u8]),
    policy: Policy,
    dot: Option<Dot>,
) -> TaggedWrite {
    build_write(WriteSpec {
        origin,
        seq,
        collection: entity.0,
        key: entity.1,
        policy,
        op: Op::Set(format!("{origin} wrote {seq}").into_bytes()),
        dot,
    })
}

fn entity_from(writes: &[TaggedWrite]) -> (EntityKey, Arc<Entity>) {
    let mut entity = Entity::new();
    for w in writes {
        entity
            .apply(w)
            .expect("sample writes apply to their entity");
    }
    let key = writes
        .first()
        .expect("an entity is built from at least one write")
        .entity();
    (key, Arc::new(entity))
}

/// Entities under every policy, with awkward keys (empty, non-UTF-8, a zero
/// byte, and a collection whose name is a prefix of another's).
fn sample_entities() -> Vec<(EntityKey, Arc<Entity>)> {
    let lww_hlc = [
        set_write(A, 10, ("profiles", b"alice"), Policy::LwwHlc, None),
        set_write(B, 12, ("profiles", b"alice"), Policy::LwwHlc, None),
    ];
    let tombstone = [build_write(WriteSpec {
        origin: A,
        seq: 11,
        collection: "profiles",
        key: b"bob",
        policy: Policy::LwwWall,
        op: Op::Delete,
        dot: None,
    })];
    let mv = [
        set_write(A, 13, ("carts", b"c1"), Policy::Mv, Some(Dot::new(A, 1))),
        set_write(B, 14, ("carts", b"c1"), Policy::Mv, Some(Dot::new(B, 1))),
    ];
    let queue = [
        set_write(
            A,
            15,
            ("tickets", b"t1"),
            Policy::Queue,
            Some(Dot::new(A, 1)),
        ),
        set_write(
            C,
            16,
            ("tickets", b"t1"),
            Policy::Queue,
            Some(Dot::new(C, 1)),
        ),
    ];
    let counter = [A, B].map(|origin| {
        build_write(WriteSpec {
            origin,
            seq: 17,
            collection: "stock",
            key: b"sku-9",
            policy: Policy::Counter,
            op: Op::Counter(PnTotals {
                incremented: 40,
                decremented: 3,
            }),
            dot: None,
        })
    });
    let two_policies = [
        set_write(A, 18, ("profiles", b"carol"), Policy::LwwHlc, None),
        set_write(
            A,
            19,
            ("profiles", b"carol"),
            Policy::Mv,
            Some(Dot::new(A, 1)),
        ),
    ];
    let odd_key = [set_write(
        B,
        20,
        ("profiles", &[0xff, 0x00, 0x01]),
        Policy::LwwWall,
        None,
    )];
    let empty_key = [set_write(A, 21, ("profiles", b""), Policy::LwwHlc, None)];
    let prefix_collection = [set_write(A, 22, ("p", b"rofiles"), Policy::LwwHlc, None)];
    vec![
        entity_from(&lww_hlc),
        entity_from(&tombstone),
        entity_from(&mv),
        entity_from(&queue),
        entity_from(&counter),
        entity_from(&two_policies),
        entity_from(&odd_key),
        entity_from(&empty_key),
        entity_from(&prefix_collection),
    ]
}

fn sample_version(origin: RegionId, seq: u64, value: Option<&[u8]>) -> Version {
    Version {
        value: value.map(<[u8]>::to_vec),
        write: WriteRef { origin, seq },
        hlc: hlc_at(seq),
        wall: wall_at(seq),
    }
}

fn sample_item(id: u64, reason: ConflictReason, status: ItemStatus) -> ConflictItem {
    ConflictItem {
        id,
        position: id * 10,
        entity: EntityKey::new(collection("tickets"), format!("t{id}")),
        reason,
        versions: vec![
            sample_version(A, id, Some(b"left")),
            sample_version(B, id + 1, None),
        ],
        opened: wall_at(id),
        status,
    }
}

fn sample_items() -> Vec<ConflictItem> {
    vec![
        sample_item(1, ConflictReason::Concurrent, ItemStatus::Open),
        sample_item(
            2,
            ConflictReason::SiblingCap { max: 16 },
            ItemStatus::Resolved {
                by: WriteRef { origin: C, seq: 99 },
                at: wall_at(99),
            },
        ),
        sample_item(
            3,
            ConflictReason::FutureTimestamp {
                ahead_micros: 5_000_000,
            },
            ItemStatus::Released { at: wall_at(42) },
        ),
    ]
}

fn sample_loser(id: u64) -> LoserRecord {
    LoserRecord {
        id,
        entity: EntityKey::new(collection("profiles"), format!("user-{id}")),
        loser: sample_version(A, id, Some(b"lost")),
        winner: WriteRef {
            origin: B,
            seq: id + 100,
        },
        at: wall_at(id + 200),
    }
}

fn sample_meta(generation: u64) -> EngineMeta {
    let mut config = CollectionConfig::new(Policy::Mv);
    config.max_siblings = 4;
    config.skew_action = SkewAction::Refuse;
    EngineMeta {
        collections: vec![
            CollectionEntry {
                collection: collection("carts"),
                config,
                set_by: Some((hlc_at(generation), WriteRef { origin: A, seq: 4 })),
            },
            CollectionEntry {
                collection: collection("tickets"),
                config: CollectionConfig::new(Policy::Queue)
                    .with_replication(Replication::LocalOnly),
                set_by: None,
            },
        ],
        next_item_id: 4 + generation,
        queue_position: 30 + generation,
        next_loser_id: 4 + generation,
        ownership: None,
        failovers: Vec::new(),
        handoffs: Vec::new(),
        applied_walls: vec![(
            A,
            WallTime::from_micros(1_000 + i64::try_from(generation).unwrap_or(0)),
        )],
    }
}

// ---------------------------------------------------------------------------
// The model a checkpointed store must match
// ---------------------------------------------------------------------------

/// What a store holds after a sequence of checkpoint deltas.
#[derive(Default)]
struct Model {
    cursors: BTreeMap<RegionId, u64>,
    entities: BTreeMap<EntityKey, Entity>,
    queue: BTreeMap<u64, ConflictItem>,
    losers: BTreeMap<u64, LoserRecord>,
    meta: EngineMeta,
}

impl Model {
    fn apply(&mut self, delta: &CheckpointDelta) {
        self.cursors = delta.cursors.iter().copied().collect();
        for (k, e) in &delta.entities {
            self.entities.insert(k.clone(), Entity::clone(e));
        }
        for item in &delta.queue {
            self.queue.insert(item.id, item.clone());
        }
        for id in &delta.queue_removed {
            self.queue.remove(id);
        }
        for l in &delta.losers {
            self.losers.insert(l.id, l.clone());
        }
        if let Some(through) = delta.losers_purged_through {
            self.losers.retain(|id, _| *id > through);
        }
        self.meta = delta.meta.clone();
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            cursors: self.cursors.iter().map(|(r, s)| (*r, *s)).collect(),
            entities: self
                .entities
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
            queue: self.queue.values().cloned().collect(),
            losers: self.losers.values().cloned().collect(),
            meta: self.meta.clone(),
        }
    }
}

/// The checkpoint with every vector sorted (order is not part of the contract).
fn sorted(mut c: Checkpoint) -> Checkpoint {
    c.cursors.sort();
    c.entities.sort_by(|a, b| a.0.cmp(&b.0));
    c.queue.sort_by_key(|i| i.id);
    c.losers.sort_by_key(|l| l.id);
    c
}

// ---------------------------------------------------------------------------
// Helpers that call the store and name the check on failure
// ---------------------------------------------------------------------------

fn append_ok<S: Storage>(store: &mut S, batches: &[WriteBatch], check: &str) {
    if let Err(e) = store.append(batches.to_vec()) {
        panic!("{check}: append of a valid call was refused: {e}");
    }
}

fn sync_ok<S: Storage>(store: &mut S, check: &str) {
    if let Err(e) = store.sync() {
        panic!("{check}: sync failed: {e}");
    }
}

fn read_ok<S: Storage>(
    store: &S,
    origin: RegionId,
    from: u64,
    limit: usize,
    check: &str,
) -> Vec<TaggedWrite> {
    match store.read_log(origin, from, limit) {
        Ok(w) => w,
        Err(e) => panic!("{check}: read_log({origin}, from {from}, limit {limit}) failed: {e}"),
    }
}

fn assert_reads<S: Storage>(
    store: &S,
    (origin, from, limit): (RegionId, u64, usize),
    expected: &[TaggedWrite],
    check: &str,
) {
    let got = read_ok(store, origin, from, limit, check);
    let seqs = |w: &[TaggedWrite]| w.iter().map(|w| w.seq).collect::<Vec<_>>();
    assert!(
        got == expected,
        "{check}: read_log({origin}, from {from}, limit {limit}) returned seqs {:?}, expected {:?} (or the writes differ)",
        seqs(&got),
        seqs(expected),
    );
}

fn bounds_ok<S: Storage>(store: &S, check: &str) -> Vec<(RegionId, LogBounds)> {
    match store.log_bounds() {
        Ok(mut b) => {
            b.sort_by_key(|(r, _)| *r);
            b
        }
        Err(e) => panic!("{check}: log_bounds failed: {e}"),
    }
}

fn bounds(list: &[(RegionId, u64, u64)]) -> Vec<(RegionId, LogBounds)> {
    list.iter()
        .map(|&(r, first, last)| (r, LogBounds { first, last }))
        .collect()
}

fn trim_ok<S: Storage>(store: &mut S, origin: RegionId, through: u64, check: &str) {
    if let Err(e) = store.trim_log(origin, through) {
        panic!("{check}: trim_log({origin}, through {through}) failed: {e}");
    }
}

fn checkpoint_ok<S: Storage>(store: &mut S, delta: &CheckpointDelta, check: &str) {
    if let Err(e) = store.checkpoint(delta.clone()) {
        panic!("{check}: checkpoint failed: {e}");
    }
}

fn load_ok<S: Storage>(store: &S, check: &str) -> Checkpoint {
    match store.load_checkpoint() {
        Ok(c) => sorted(c),
        Err(e) => panic!("{check}: load_checkpoint failed: {e}"),
    }
}

fn assert_refused<S: Storage>(
    store: &mut S,
    batches: &[WriteBatch],
    why: &str,
    check: &str,
) -> CoreError {
    match store.append(batches.to_vec()) {
        Ok(()) => panic!("{check}: append accepted {why}"),
        Err(e) => e,
    }
}

fn assert_gap_error(e: &CoreError, origin: RegionId, seq: u64, check: &str) {
    assert!(
        matches!(e, CoreError::LogGap { origin: o, seq: s, .. } if *o == origin && *s == seq),
        "{check}: expected LogGap for {origin} at seq {seq}, got {e}"
    );
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

/// A new store loads an empty checkpoint, has no log bounds and reads
/// nothing.
pub fn empty_store<H: StoreHarness>(h: &mut H) {
    const CHECK: &str = "empty_store";
    let mut store = h.fresh();
    assert_eq!(
        load_ok(&store, CHECK),
        Checkpoint::default(),
        "{CHECK}: a new store must load an empty checkpoint"
    );
    assert_eq!(bounds_ok(&store, CHECK), bounds(&[]), "{CHECK}: bounds");
    assert_reads(&store, (A, 1, 10), &[], CHECK);
    sync_ok(&mut store, CHECK);
    let store = h.crash_and_reopen(store);
    assert_eq!(
        load_ok(&store, CHECK),
        Checkpoint::default(),
        "{CHECK}: a reopened empty store must load an empty checkpoint"
    );
    assert_eq!(bounds_ok(&store, CHECK), bounds(&[]), "{CHECK}: bounds");
}

/// Appends of several batches and origins read back in order, before and
/// after sync, with the limit respected, from any seq (also inside a stored
/// batch), and nothing past the end.
pub fn append_then_read_in_order<H: StoreHarness>(h: &mut H) {
    const CHECK: &str = "append_then_read_in_order";
    let mut store = h.fresh();
    append_ok(
        &mut store,
        &[sample_batch(A, 1..=3), sample_batch(B, 1..=2)],
        CHECK,
    );
    append_ok(&mut store, &[sample_batch(A, 4..=5)], CHECK);
    // Two consecutive batches of one origin in one call, and an empty batch.
    append_ok(
        &mut store,
        &[
            sample_batch(A, 6..=6),
            WriteBatch {
                origin: C,
                writes: Vec::new(),
            },
            sample_batch(A, 7..=9),
        ],
        CHECK,
    );
    // Appends are readable before they are synced.
    assert_reads(&store, (A, 1, 100), &writes_of(A, 1..=9), CHECK);
    sync_ok(&mut store, CHECK);
    // A new origin's log may start past 1 (its start was trimmed at the peer).
    append_ok(&mut store, &[sample_batch(C, 40..=41)], CHECK);
    sync_ok(&mut store, CHECK);

    assert_reads(&store, (A, 1, 100), &writes_of(A, 1..=9), CHECK);
    assert_reads(&store, (B, 1, 100), &writes_of(B, 1..=2), CHECK);
    assert_reads(&store, (C, 40, 100), &writes_of(C, 40..=41), CHECK);
    // The limit.
    assert_reads(&store, (A, 1, 2), &writes_of(A, 1..=2), CHECK);
    assert_reads(&store, (A, 1, 0), &[], CHECK);
    assert_reads(&store, (A, 4, 2), &writes_of(A, 4..=5), CHECK);
    // From the middle of a stored batch, and across batch boundaries.
    assert_reads(&store, (A, 2, 100), &writes_of(A, 2..=9), CHECK);
    assert_reads(&store, (A, 3, 2), &writes_of(A, 3..=4), CHECK);
    assert_reads(&store, (A, 8, 1), &writes_of(A, 8..=8), CHECK);
    assert_reads(&store, (C, 41, 5), &writes_of(C, 41..=41), CHECK);
    // Past the end, and an origin with no log.
    assert_reads(&store, (A, 10, 100), &[], CHECK);
    assert_reads(&store, (A, u64::MAX, 100), &[], CHECK);
    assert_reads(&store, (RegionId::new(9), 1, 100), &[], CHECK);
    // The log continues after the reads.
    append_ok(&mut store, &[sample_batch(B, 3..=3)], CHECK);
    assert_reads(&store, (B, 2, 100), &writes_of(B, 2..=3), CHECK);
}

/// An append that does not continue its origin's log, or whose batch is not
/// well formed, is refused whole: nothing of that call is appended.
pub fn append_refuses_bad_batches_whole<H: StoreHarness>(h: &mut H) {
    const CHECK: &str = "append_refuses_bad_batches_whole";
    let mut store = h.fresh();
    append_ok(&mut store, &[sample_batch(A, 1..=3)], CHECK);
    sync_ok(&mut store, CHECK);
    let before = bounds(&[(A, 1, 3)]);

    let gap = assert_refused(&mut store, &[sample_batch(A, 5..=6)], "a gap", CHECK);
    assert_gap_error(&gap, A, 5, CHECK);
    let overlap = assert_refused(&mut store, &[sample_batch(A, 3..=4)], "an overlap", CHECK);
    assert_gap_error(&overlap, A, 3, CHECK);
    let restart = assert_refused(&mut store, &[sample_batch(A, 1..=1)], "a restart", CHECK);
    assert_gap_error(&restart, A, 1, CHECK);

    let mut foreign = sample_batch(A, 4..=5);
    foreign.writes[1] = sample_write(B, 5);
    assert_refused(&mut store, &[foreign], "a write of another origin", CHECK);
    let mut holey = sample_batch(A, 4..=6);
    holey.writes.remove(1);
    assert_refused(&mut store, &[holey], "non-consecutive seqs", CHECK);
    let mut reversed = sample_batch(A, 4..=5);
    reversed.writes.reverse();
    assert_refused(&mut store, &[reversed], "seqs in reverse order", CHECK);

    // Good batches before a bad one in the same call are not appended.
    let gap_last = [
        sample_batch(B, 1..=2),
        sample_batch(A, 4..=5),
        sample_batch(A, 7..=8),
    ];
    assert_refused(&mut store, &gap_last, "a gap after good batches", CHECK);
    let mut bad_write = sample_batch(C, 3..=4);
    bad_write.writes[0].origin = A;
    let malformed_last = [sample_batch(B, 1..=2), sample_batch(A, 4..=4), bad_write];
    assert_refused(
        &mut store,
        &malformed_last,
        "a malformed batch after good ones",
        CHECK,
    );
    // Two batches of one origin in one call that overlap each other.
    let self_overlap = [sample_batch(A, 4..=6), sample_batch(A, 6..=7)];
    assert_refused(
        &mut store,
        &self_overlap,
        "batches overlapping each other",
        CHECK,
    );

    assert_eq!(
        bounds_ok(&store, CHECK),
        before,
        "{CHECK}: a refused append changed the logs"
    );
    assert_reads(&store, (B, 1, 100), &[], CHECK);
    assert_reads(&store, (A, 1, 100), &writes_of(A, 1..=3), CHECK);
    sync_ok(&mut store, CHECK);
    let mut store = h.crash_and_reopen(store);
    assert_eq!(
        bounds_ok(&store, CHECK),
        before,
        "{CHECK}: a refused append reached the disk"
    );

    // The logs still continue exactly where they were.
    append_ok(
        &mut store,
        &[sample_batch(A, 4..=5), sample_batch(B, 1..=1)],
        CHECK,
    );
    assert_reads(&store, (A, 1, 100), &writes_of(A, 1..=5), CHECK);
    assert_reads(&store, (B, 1, 100), &writes_of(B, 1..=1), CHECK);
}

/// `log_bounds` gives each origin with a non-empty log its first and last
/// seq, whether synced or not.
pub fn log_bounds_per_origin<H: StoreHarness>(h: &mut H) {
    const CHECK: &str = "log_bounds_per_origin";
    let mut store = h.fresh();
    append_ok(
        &mut store,
        &[
            sample_batch(A, 1..=2),
            sample_batch(B, 10..=12),
            sample_batch(A, 3..=5),
        ],
        CHECK,
    );
    assert_eq!(
        bounds_ok(&store, CHECK),
        bounds(&[(A, 1, 5), (B, 10, 12)]),
        "{CHECK}: bounds of unsynced appends"
    );
    sync_ok(&mut store, CHECK);
    append_ok(&mut store, &[sample_batch(C, 7..=7)], CHECK);
    sync_ok(&mut store, CHECK);
    assert_eq!(
        bounds_ok(&store, CHECK),
        bounds(&[(A, 1, 5), (B, 10, 12), (C, 7, 7)]),
        "{CHECK}: bounds"
    );
    let store = h.crash_and_reopen(store);
    assert_eq!(
        bounds_ok(&store, CHECK),
        bounds(&[(A, 1, 5), (B, 10, 12), (C, 7, 7)]),
        "{CHECK}: bounds after reopening"
    );
}

/// `trim_log` drops the whole records at or below `through`, keeps a record
/// that straddles it, and reading below the first held seq is a `LogGap`.
pub fn trim_drops_whole_records<H: StoreHarness>(h: &mut H) {
    const CHECK: &str = "trim_drops_whole_records";
    let mut store = h.fresh();
    append_ok(
        &mut store,
        &[
            sample_batch(A, 1..=3),
            sample_batch(A, 4..=6),
            sample_batch(B, 1..=2),
        ],
        CHECK,
    );
    append_ok(&mut store, &[sample_batch(A, 7..=9)], CHECK);
    sync_ok(&mut store, CHECK);

    trim_ok(&mut store, A, 0, CHECK);
    assert_eq!(
        bounds_ok(&store, CHECK),
        bounds(&[(A, 1, 9), (B, 1, 2)]),
        "{CHECK}: trimming through 0 changed the log"
    );

    // Record 4..=6 straddles 5: it stays.
    trim_ok(&mut store, A, 5, CHECK);
    assert_eq!(
        bounds_ok(&store, CHECK),
        bounds(&[(A, 4, 9), (B, 1, 2)]),
        "{CHECK}: bounds after trimming through 5"
    );
    assert_reads(&store, (A, 4, 100), &writes_of(A, 4..=9), CHECK);
    assert_reads(&store, (A, 5, 2), &writes_of(A, 5..=6), CHECK);
    match store.read_log(A, 3, 100) {
        Err(CoreError::LogGap {
            origin,
            seq,
            first,
            last,
        }) => assert_eq!(
            (origin, seq, first, last),
            (A, 3, 4, 9),
            "{CHECK}: the LogGap of a trimmed read"
        ),
        Err(e) => panic!("{CHECK}: reading a trimmed seq failed with {e}, expected LogGap"),
        Ok(w) => panic!(
            "{CHECK}: reading a trimmed seq returned {} writes, expected LogGap",
            w.len()
        ),
    }
    assert!(
        matches!(store.read_log(A, 1, 100), Err(CoreError::LogGap { .. })),
        "{CHECK}: reading from seq 1 after a trim must be a LogGap"
    );
    // Another origin is untouched.
    assert_reads(&store, (B, 1, 100), &writes_of(B, 1..=2), CHECK);

    // Through the exact end of a record.
    trim_ok(&mut store, A, 6, CHECK);
    assert_eq!(
        bounds_ok(&store, CHECK),
        bounds(&[(A, 7, 9), (B, 1, 2)]),
        "{CHECK}: bounds after trimming through 6"
    );
    assert_reads(&store, (A, 7, 100), &writes_of(A, 7..=9), CHECK);

    // The log goes on after a trim.
    append_ok(&mut store, &[sample_batch(A, 10..=11)], CHECK);
    let gap = assert_refused(&mut store, &[sample_batch(A, 13..=13)], "a gap", CHECK);
    assert_gap_error(&gap, A, 13, CHECK);
    sync_ok(&mut store, CHECK);
    assert_reads(&store, (A, 8, 100), &writes_of(A, 8..=11), CHECK);

    // Trimming everything empties the origin's log; a trim of an origin
    // without a log does nothing.
    trim_ok(&mut store, A, 100, CHECK);
    trim_ok(&mut store, C, 100, CHECK);
    assert_eq!(
        bounds_ok(&store, CHECK),
        bounds(&[(B, 1, 2)]),
        "{CHECK}: bounds after trimming all of A"
    );
    assert_reads(&store, (A, 1, 100), &[], CHECK);
    assert_reads(&store, (A, 12, 100), &[], CHECK);
    assert_reads(&store, (B, 1, 100), &writes_of(B, 1..=2), CHECK);
}

/// What `sync` covered survives a crash, the reopened store continues each
/// log where it ends, and a store that models power cuts drops exactly the
/// unsynced appends.
pub fn synced_appends_survive_a_crash<H: StoreHarness>(h: &mut H) {
    const CHECK: &str = "synced_appends_survive_a_crash";
    let mut store = h.fresh();
    append_ok(&mut store, &[sample_batch(A, 1..=3)], CHECK);
    append_ok(&mut store, &[sample_batch(B, 1..=1)], CHECK);
    sync_ok(&mut store, CHECK);
    append_ok(&mut store, &[sample_batch(A, 4..=5)], CHECK);
    sync_ok(&mut store, CHECK);
    // Not synced.
    append_ok(
        &mut store,
        &[sample_batch(A, 6..=7), sample_batch(C, 1..=2)],
        CHECK,
    );

    let mut store = h.crash_and_reopen(store);
    let a = read_ok(&store, A, 1, 100, CHECK);
    let c = read_ok(&store, C, 1, 100, CHECK);
    assert_reads(&store, (B, 1, 100), &writes_of(B, 1..=1), CHECK);
    if h.loses_unsynced() {
        assert!(
            a == writes_of(A, 1..=5) && c.is_empty(),
            "{CHECK}: after a power cut the log must hold exactly the synced writes (A has {} writes, C has {})",
            a.len(),
            c.len()
        );
    } else {
        // Unsynced appends may survive, but only as whole calls.
        let all_lost = a == writes_of(A, 1..=5) && c.is_empty();
        let all_kept = a == writes_of(A, 1..=7) && c == writes_of(C, 1..=2);
        assert!(
            all_lost || all_kept,
            "{CHECK}: after a crash the logs must hold the synced writes and the unsynced call whole or not at all (A has {} writes, C has {})",
            a.len(),
            c.len()
        );
    }
    let last_a = a.last().map_or(0, |w| w.seq);
    let expected_bounds = if c.is_empty() {
        bounds(&[(A, 1, last_a), (B, 1, 1)])
    } else {
        bounds(&[(A, 1, last_a), (B, 1, 1), (C, 1, 2)])
    };
    assert_eq!(
        bounds_ok(&store, CHECK),
        expected_bounds,
        "{CHECK}: bounds after reopening"
    );

    // The reopened store still enforces continuity, from where the log ends.
    let overlap = assert_refused(
        &mut store,
        &[sample_batch(A, 2..=3)],
        "an overlap after reopening",
        CHECK,
    );
    assert_gap_error(&overlap, A, 2, CHECK);
    let next = last_a + 1;
    append_ok(&mut store, &[sample_batch(A, next..=next + 1)], CHECK);
    sync_ok(&mut store, CHECK);
    let store = h.crash_and_reopen(store);
    assert_reads(&store, (A, 1, 100), &writes_of(A, 1..=next + 1), CHECK);
}

/// A checkpoint delta with real records in every part: entities under every
/// policy (with awkward keys), queue items of every reason and status, loser
/// records, cursors and metadata.
pub fn sample_delta() -> CheckpointDelta {
    CheckpointDelta {
        cursors: vec![(A, 5), (B, 2), (C, 0)],
        entities: sample_entities(),
        queue: sample_items(),
        queue_removed: Vec::new(),
        losers: (1..=3).map(sample_loser).collect(),
        losers_purged_through: None,
        meta: sample_meta(0),
    }
}

fn second_delta() -> CheckpointDelta {
    let entities = sample_entities();
    let (alice, _) = entities[0].clone();
    let (_, mv_state) = entities[2].clone();
    let mut changed = sample_items()[1].clone();
    changed.status = ItemStatus::Open;
    changed.position = 77;
    CheckpointDelta {
        // The full set: B is gone.
        cursors: vec![(C, 3), (A, 9)],
        entities: vec![
            // An upsert replaces the state.
            (alice, mv_state),
            entity_from(&[set_write(
                C,
                30,
                ("profiles", b"dave"),
                Policy::LwwWall,
                None,
            )]),
        ],
        queue: vec![
            changed,
            sample_item(4, ConflictReason::Concurrent, ItemStatus::Open),
            // Upserted and removed in one delta: removed.
            sample_item(5, ConflictReason::Concurrent, ItemStatus::Open),
        ],
        queue_removed: vec![1, 5, 1000],
        losers: (4..=5).map(sample_loser).collect(),
        losers_purged_through: Some(2),
        meta: sample_meta(1),
    }
}

fn third_delta() -> CheckpointDelta {
    CheckpointDelta {
        cursors: vec![(A, 12)],
        entities: Vec::new(),
        queue: Vec::new(),
        queue_removed: vec![2],
        // New records at or below the purge point are purged too.
        losers: vec![sample_loser(6), sample_loser(7)],
        losers_purged_through: Some(6),
        meta: EngineMeta::default(),
    }
}

/// A checkpoint loads back exactly: cursors replaced, entities and queue
/// items upserted, queue items removed, loser records appended and purged,
/// metadata replaced; the log is not touched.
pub fn checkpoint_round_trips<H: StoreHarness>(h: &mut H) {
    const CHECK: &str = "checkpoint_round_trips";
    let mut store = h.fresh();
    append_ok(&mut store, &[sample_batch(A, 1..=3)], CHECK);
    sync_ok(&mut store, CHECK);
    let mut model = Model::default();
    for (n, delta) in [sample_delta(), second_delta(), third_delta()]
        .iter()
        .enumerate()
    {
        checkpoint_ok(&mut store, delta, CHECK);
        model.apply(delta);
        assert_eq!(
            load_ok(&store, CHECK),
            model.checkpoint(),
            "{CHECK}: the checkpoint loaded after delta {} differs",
            n + 1
        );
    }
    // An empty delta (but for cursors and metadata) keeps everything else.
    let quiet = CheckpointDelta {
        cursors: vec![(B, 1)],
        meta: sample_meta(9),
        ..CheckpointDelta::default()
    };
    checkpoint_ok(&mut store, &quiet, CHECK);
    model.apply(&quiet);
    assert_eq!(
        load_ok(&store, CHECK),
        model.checkpoint(),
        "{CHECK}: the checkpoint loaded after an empty delta differs"
    );
    assert_reads(&store, (A, 1, 100), &writes_of(A, 1..=3), CHECK);
    assert_eq!(
        bounds_ok(&store, CHECK),
        bounds(&[(A, 1, 3)]),
        "{CHECK}: a checkpoint changed the log"
    );
}

/// Every checkpoint is durable when `checkpoint` returns, even with appends
/// left unsynced around it.
pub fn checkpoints_survive_a_crash<H: StoreHarness>(h: &mut H) {
    const CHECK: &str = "checkpoints_survive_a_crash";
    let mut store = h.fresh();
    let mut model = Model::default();
    let first = sample_delta();
    checkpoint_ok(&mut store, &first, CHECK);
    model.apply(&first);
    let store = h.crash_and_reopen(store);
    assert_eq!(
        load_ok(&store, CHECK),
        model.checkpoint(),
        "{CHECK}: the checkpoint loaded after a crash differs"
    );

    let mut store = store;
    append_ok(&mut store, &[sample_batch(A, 1..=2)], CHECK);
    let second = second_delta();
    checkpoint_ok(&mut store, &second, CHECK);
    model.apply(&second);
    let store = h.crash_and_reopen(store);
    assert_eq!(
        load_ok(&store, CHECK),
        model.checkpoint(),
        "{CHECK}: the second checkpoint loaded after a crash differs"
    );
    // A checkpoint may or may not make earlier appends durable, but never
    // part of one.
    let a = read_ok(&store, A, 1, 100, CHECK);
    assert!(
        a.is_empty() || a == writes_of(A, 1..=2),
        "{CHECK}: an unsynced append came back partly ({} writes)",
        a.len()
    );
}
