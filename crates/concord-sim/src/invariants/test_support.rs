//! Builders of doctored states for the invariant checkers' tests.

use concord_clock::{HlcTime, WallTime};
use concord_core::{Collection, Entity, EntityKey, Op, Policy, TaggedWrite, WriteRef};
use concord_crdt::{Dot, PnTotals, RegionId, VersionVector};

use crate::{Logged, NodeView, OracleWrite, Request};

const NOON_MS: i64 = 1_795_435_200_000;

pub(crate) fn r(id: u16) -> RegionId {
    RegionId::new(id)
}

pub(crate) fn key(collection: &str, key: &str) -> EntityKey {
    EntityKey::new(Collection::new(collection).expect("valid name"), key)
}

pub(crate) fn wref(origin: u16, seq: u64) -> WriteRef {
    WriteRef {
        origin: r(origin),
        seq,
    }
}

/// A write as its origin would log it; later `seq`s get later stamps.
pub(crate) fn tagged(
    origin: u16,
    seq: u64,
    entity: &EntityKey,
    policy: Policy,
    op: Op,
    dot: Option<Dot>,
    context: VersionVector,
) -> TaggedWrite {
    let ms = NOON_MS + i64::try_from(seq).expect("small") * 10 + i64::from(origin);
    TaggedWrite {
        id: TaggedWrite::make_id(r(origin), seq, WallTime::from_micros(ms * 1000)),
        origin: r(origin),
        seq,
        hlc: HlcTime::from_parts(ms, 0).expect("in range"),
        wall: WallTime::from_micros(ms * 1000),
        collection: entity.collection.clone(),
        key: entity.key.clone(),
        context,
        epoch: 0,
        policy,
        dot,
        op,
    }
}

/// The entity after applying `writes` in order.
pub(crate) fn entity_of(writes: &[&TaggedWrite]) -> Entity {
    let mut e = Entity::new();
    for w in writes {
        e.apply(w).expect("applies");
    }
    e
}

/// The oracle's record of `w`, acknowledged, as the client asked for it.
pub(crate) fn acked(w: &TaggedWrite, request: Request, totals: Option<PnTotals>) -> OracleWrite {
    OracleWrite {
        write: w.write_ref(),
        entity: w.entity(),
        policy: w.policy,
        request,
        client_context: Some(w.context.clone()),
        // Later writes (by seq, then origin) were made later, each from a
        // fresh read.
        accepted_at: w.seq * 10 + u64::from(w.origin.get()),
        context_at: w.seq * 10 + u64::from(w.origin.get()),
        seen: None,
        totals,
        acked: true,
        logged: Some(Logged {
            dot: w.dot,
            context: w.context.clone(),
            hlc: w.hlc,
            wall: w.wall,
        }),
    }
}

/// A node holding exactly `entities`.
pub(crate) fn view(region: u16, entities: Vec<(EntityKey, Entity)>) -> NodeView {
    let mut v = NodeView::empty(r(region));
    v.entities = entities.into_iter().collect();
    v
}
