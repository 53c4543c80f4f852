//! Conversions between the engine's types and the wire types of
//! `proto/concord.proto`. Everything that comes from the wire is checked:
//! a malformed message becomes [`NodeError::Malformed`] naming the field,
//! never a panic.

use concord_clock::{HlcTime, WallTime};
use concord_core::{
    Collection, CollectionConfig, Head, Op, OwnershipConfig, PeerMessage, Policy, Replication,
    SkewAction, TaggedWrite, WriteBatch, WriteRef,
};
use concord_crdt::{Dot, PnTotals, RegionId, VersionVector};
use concord_ownership::Rule;

use crate::NodeError;
use crate::pb;

fn malformed(field: impl Into<String>, reason: impl Into<String>) -> NodeError {
    NodeError::Malformed {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A wire region id (uint32) as a [`RegionId`].
pub fn region(raw: u32, field: &str) -> Result<RegionId, NodeError> {
    region_at(raw, || field.to_owned())
}

/// [`region`], naming the field only when there is an error (per write of a
/// batch, building the name every time was a tenth of decoding it).
fn region_at(raw: u32, field: impl FnOnce() -> String) -> Result<RegionId, NodeError> {
    u16::try_from(raw)
        .map(RegionId::new)
        .map_err(|_| malformed(field(), format!("region {raw} is above 65535")))
}

/// A [`WriteRef`] on the wire.
pub fn write_ref_to_pb(w: WriteRef) -> pb::WriteRef {
    pb::WriteRef {
        origin: u32::from(w.origin.get()),
        seq: w.seq,
    }
}

/// A wire write ref, checked.
pub fn write_ref(w: &pb::WriteRef, field: &str) -> Result<WriteRef, NodeError> {
    if w.seq == 0 {
        return Err(malformed(format!("{field}.seq"), "seqs start at 1"));
    }
    Ok(WriteRef {
        origin: region(w.origin, &format!("{field}.origin"))?,
        seq: w.seq,
    })
}

/// A version vector on the wire.
pub fn vv_to_pb(vv: &VersionVector) -> pb::VersionVector {
    pb::VersionVector {
        entries: vv
            .iter()
            .map(|(r, n)| pb::VersionEntry {
                region: u32::from(r.get()),
                counter: n,
            })
            .collect(),
    }
}

/// A wire version vector, checked: sorted by region, no zero entries.
pub fn vv(v: &pb::VersionVector, field: &str) -> Result<VersionVector, NodeError> {
    vv_at(v, || field.to_owned())
}

/// [`vv`], naming the field only when there is an error.
fn vv_at(v: &pb::VersionVector, field: impl Fn() -> String) -> Result<VersionVector, NodeError> {
    let mut last: Option<u32> = None;
    let mut entries = Vec::with_capacity(v.entries.len());
    for (i, e) in v.entries.iter().enumerate() {
        if last.is_some_and(|l| l >= e.region) {
            return Err(malformed(
                format!("{}.entries[{i}]", field()),
                "entries must be sorted by region, strictly ascending",
            ));
        }
        if e.counter == 0 {
            return Err(malformed(
                format!("{}.entries[{i}].counter", field()),
                "entries are never zero",
            ));
        }
        last = Some(e.region);
        entries.push((
            region_at(e.region, || format!("{}.entries[{i}].region", field()))?,
            e.counter,
        ));
    }
    Ok(VersionVector::from_entries(entries))
}

/// A policy on the wire.
pub fn policy_to_pb(p: Policy) -> pb::Policy {
    match p {
        Policy::LwwWall => pb::Policy::LwwWall,
        Policy::LwwHlc => pb::Policy::LwwHlc,
        Policy::Mv => pb::Policy::Mv,
        Policy::Counter => pb::Policy::Counter,
        Policy::Queue => pb::Policy::Queue,
    }
}

/// A wire policy, checked.
pub fn policy(raw: i32, field: &str) -> Result<Policy, NodeError> {
    policy_at(raw, || field.to_owned())
}

/// [`policy`], naming the field only when there is an error.
fn policy_at(raw: i32, field: impl FnOnce() -> String) -> Result<Policy, NodeError> {
    match pb::Policy::try_from(raw) {
        Ok(pb::Policy::LwwWall) => Ok(Policy::LwwWall),
        Ok(pb::Policy::LwwHlc) => Ok(Policy::LwwHlc),
        Ok(pb::Policy::Mv) => Ok(Policy::Mv),
        Ok(pb::Policy::Counter) => Ok(Policy::Counter),
        Ok(pb::Policy::Queue) => Ok(Policy::Queue),
        Ok(pb::Policy::Unspecified) | Err(_) => {
            Err(malformed(field(), format!("{raw} is not a policy")))
        }
    }
}

fn settings_to_pb(c: &CollectionConfig) -> pb::CollectionSettings {
    use pb::replication_scope::{Everywhere, LocalOnly, RegionList, Scope};
    let scope = match &c.replication {
        Replication::Everywhere => Scope::Everywhere(Everywhere {}),
        Replication::LocalOnly => Scope::LocalOnly(LocalOnly {}),
        Replication::Regions(list) => Scope::Regions(RegionList {
            regions: list.iter().map(|r| u32::from(r.get())).collect(),
        }),
    };
    pb::CollectionSettings {
        owned: c.owned.as_ref().map(|o| pb::Ownership {
            rule: Some(rule_to_pb(&o.rule)),
            forward: o.forward,
        }),
        policy: policy_to_pb(c.policy).into(),
        replication: Some(pb::ReplicationScope { scope: Some(scope) }),
        max_siblings: c.max_siblings,
        skew_action: match c.skew_action {
            SkewAction::Queue => pb::SkewAction::Queue,
            SkewAction::Refuse => pb::SkewAction::Refuse,
        }
        .into(),
    }
}

fn settings(s: &pb::CollectionSettings, field: &str) -> Result<CollectionConfig, NodeError> {
    use pb::replication_scope::Scope;
    let mut c = CollectionConfig::new(policy(s.policy, &format!("{field}.policy"))?);
    c.replication = match s.replication.as_ref().and_then(|r| r.scope.as_ref()) {
        None | Some(Scope::Everywhere(_)) => Replication::Everywhere,
        Some(Scope::LocalOnly(_)) => Replication::LocalOnly,
        Some(Scope::Regions(list)) => Replication::Regions(
            list.regions
                .iter()
                .enumerate()
                .map(|(i, r)| region(*r, &format!("{field}.replication.regions[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
    };
    c.max_siblings = s.max_siblings;
    if let Some(o) = &s.owned {
        let r = o
            .rule
            .as_ref()
            .ok_or_else(|| malformed(format!("{field}.owned.rule"), "missing"))?;
        let mut owned = OwnershipConfig::new(rule(r, &format!("{field}.owned.rule"))?);
        owned.forward = o.forward;
        c.owned = Some(owned);
    }
    c.skew_action = match pb::SkewAction::try_from(s.skew_action) {
        Ok(pb::SkewAction::Refuse) => SkewAction::Refuse,
        Ok(pb::SkewAction::Queue | pb::SkewAction::Unspecified) => SkewAction::Queue,
        Err(_) => {
            return Err(malformed(
                format!("{field}.skew_action"),
                format!("{} is not a skew action", s.skew_action),
            ));
        }
    };
    Ok(c)
}

/// An ownership rule on the wire.
pub fn rule_to_pb(r: &Rule) -> pb::OwnershipRule {
    use pb::ownership_rule::{HashRanges, Modulo, Table, hash_ranges::Range, table::Entry};
    let rule = match r {
        Rule::Modulo { regions } => pb::ownership_rule::Rule::Modulo(Modulo {
            regions: regions.iter().map(|r| u32::from(r.get())).collect(),
        }),
        Rule::HashRanges { ranges } => pb::ownership_rule::Rule::HashRanges(HashRanges {
            ranges: ranges
                .iter()
                .map(|(upper, r)| Range {
                    upper: *upper,
                    region: u32::from(r.get()),
                })
                .collect(),
        }),
        Rule::Table { entries, default } => pb::ownership_rule::Rule::Table(Table {
            entries: entries
                .iter()
                .map(|(k, r)| Entry {
                    key: k.clone(),
                    region: u32::from(r.get()),
                })
                .collect(),
            default_region: default.map(|r| u32::from(r.get())),
        }),
    };
    pb::OwnershipRule { rule: Some(rule) }
}

/// A wire ownership rule, checked.
pub fn rule(r: &pb::OwnershipRule, field: &str) -> Result<Rule, NodeError> {
    use pb::ownership_rule::Rule as R;
    let invalid = |e: concord_ownership::OwnershipError| malformed(field, e.to_string());
    match &r.rule {
        Some(R::Modulo(m)) => Rule::modulo(
            m.regions
                .iter()
                .enumerate()
                .map(|(i, x)| region(*x, &format!("{field}.modulo.regions[{i}]")))
                .collect::<Result<_, _>>()?,
        )
        .map_err(invalid),
        Some(R::HashRanges(h)) => Rule::hash_ranges(
            h.ranges
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    Ok((
                        x.upper,
                        region(x.region, &format!("{field}.hash_ranges.ranges[{i}].region"))?,
                    ))
                })
                .collect::<Result<_, NodeError>>()?,
        )
        .map_err(invalid),
        Some(R::Table(t)) => {
            let mut entries = std::collections::BTreeMap::new();
            for (i, e) in t.entries.iter().enumerate() {
                entries.insert(
                    e.key.clone(),
                    region(e.region, &format!("{field}.table.entries[{i}].region"))?,
                );
            }
            let default = t
                .default_region
                .map(|d| region(d, &format!("{field}.table.default_region")))
                .transpose()?;
            Ok(Rule::table(entries, default))
        }
        None => Err(malformed(field, "missing")),
    }
}

/// A tagged write on the wire.
pub fn write_to_pb(w: &TaggedWrite) -> pb::TaggedWrite {
    write_into_pb(w.clone())
}

/// A tagged write on the wire, moving its key and value (no copy).
pub fn write_into_pb(w: TaggedWrite) -> pb::TaggedWrite {
    use pb::tagged_write::Op as PbOp;
    let op = match w.op {
        Op::Set(value) => PbOp::Set(pb::SetValue { value }),
        Op::Delete => PbOp::Delete(pb::DeleteValue {}),
        Op::Counter(t) => PbOp::Counter(pb::CounterTotals {
            incremented: t.incremented,
            decremented: t.decremented,
        }),
        Op::Resolve { value, resolves } => PbOp::Resolution(pb::Resolution {
            value,
            resolves: resolves.iter().map(|r| write_ref_to_pb(*r)).collect(),
        }),
        Op::Configure(c) => PbOp::Configure(settings_to_pb(&c)),
        Op::Withheld => PbOp::Withheld(pb::Withheld {}),
        Op::Ownership(map) => PbOp::Ownership(pb::OwnershipChange {
            epoch: map.epoch(),
            // The map is plain data; encoding it cannot fail.
            map: concord_crdt::codec::encode(&map).unwrap_or_default(),
        }),
    };
    pb::TaggedWrite {
        id: w.id.as_bytes().to_vec(),
        origin: u32::from(w.origin.get()),
        seq: w.seq,
        hlc: w.hlc.as_u64(),
        wall_micros: w.wall.as_micros(),
        collection: w.collection.as_str().to_owned(),
        key: w.key,
        context: (!w.context.is_empty()).then(|| vv_to_pb(&w.context)),
        epoch: w.epoch,
        dot: w.dot.map(|d| pb::Dot {
            region: u32::from(d.region.get()),
            counter: d.counter,
        }),
        policy: policy_to_pb(w.policy).into(),
        op: Some(op),
    }
}

/// A wire tagged write, checked field by field.
pub fn write(w: pb::TaggedWrite, field: &str) -> Result<TaggedWrite, NodeError> {
    write_with(w, &|| field.to_owned(), &mut None)
}

/// [`write`], naming the field only when there is an error, and reusing
/// `last`, the previous write's collection, when the name is the same (a
/// batch's writes are mostly of one collection).
fn write_with(
    w: pb::TaggedWrite,
    field: &dyn Fn() -> String,
    last: &mut Option<Collection>,
) -> Result<TaggedWrite, NodeError> {
    use pb::tagged_write::Op as PbOp;
    let f = |name: &str| format!("{}.{name}", field());
    let id = uuid::Uuid::from_slice(&w.id).map_err(|_| malformed(f("id"), "not 16 bytes"))?;
    if w.seq == 0 {
        return Err(malformed(f("seq"), "seqs start at 1"));
    }
    let collection = match last {
        Some(c) if c.as_str() == w.collection => c.clone(),
        _ => {
            let c = Collection::new(&w.collection)
                .map_err(|e| malformed(f("collection"), e.to_string()))?;
            *last = Some(c.clone());
            c
        }
    };
    let op = match w.op {
        Some(PbOp::Set(s)) => Op::Set(s.value),
        Some(PbOp::Delete(_)) => Op::Delete,
        Some(PbOp::Counter(t)) => Op::Counter(PnTotals {
            incremented: t.incremented,
            decremented: t.decremented,
        }),
        Some(PbOp::Resolution(r)) => Op::Resolve {
            value: r.value,
            resolves: r
                .resolves
                .iter()
                .enumerate()
                .map(|(i, x)| write_ref(x, &f(&format!("resolution.resolves[{i}]"))))
                .collect::<Result<_, _>>()?,
        },
        Some(PbOp::Configure(s)) => Op::Configure(settings(&s, &f("configure"))?),
        Some(PbOp::Withheld(_)) => Op::Withheld,
        Some(PbOp::Ownership(o)) => {
            let map: concord_ownership::OwnershipMap = concord_crdt::codec::decode(&o.map)
                .map_err(|e| malformed(f("ownership.map"), e.to_string()))?;
            if map.epoch() != o.epoch {
                return Err(malformed(
                    f("ownership.epoch"),
                    format!("{} but the map says {}", o.epoch, map.epoch()),
                ));
            }
            Op::Ownership(map)
        }
        None => return Err(malformed(f("op"), "missing")),
    };
    let dot = match w.dot {
        Some(d) if d.counter == 0 => return Err(malformed(f("dot.counter"), "dots start at 1")),
        Some(d) => Some(Dot::new(
            region_at(d.region, || f("dot.region"))?,
            d.counter,
        )),
        None => None,
    };
    Ok(TaggedWrite {
        id,
        origin: region_at(w.origin, || f("origin"))?,
        seq: w.seq,
        hlc: HlcTime::from_u64(w.hlc),
        wall: WallTime::from_micros(w.wall_micros),
        collection,
        key: w.key,
        context: match &w.context {
            Some(c) => vv_at(c, || f("context"))?,
            None => VersionVector::new(),
        },
        epoch: w.epoch,
        policy: policy_at(w.policy, || f("policy"))?,
        dot,
        op,
    })
}

/// A batch on the wire.
pub fn batch_to_pb(b: &WriteBatch) -> pb::WriteBatch {
    batch_into_pb(b.clone())
}

/// A batch on the wire, moving its writes' keys and values (no copy).
pub fn batch_into_pb(b: WriteBatch) -> pb::WriteBatch {
    pb::WriteBatch {
        origin: u32::from(b.origin.get()),
        first_seq: b.writes.first().map_or(0, |w| w.seq),
        writes: b.writes.into_iter().map(write_into_pb).collect(),
    }
}

/// A wire batch, checked: one origin, consecutive seqs from `first_seq`.
pub fn batch(b: pb::WriteBatch) -> Result<WriteBatch, NodeError> {
    let origin = region(b.origin, "batch.origin")?;
    let mut writes = Vec::with_capacity(b.writes.len());
    let mut last = None;
    for (i, w) in b.writes.into_iter().enumerate() {
        let w = write_with(w, &|| format!("batch.writes[{i}]"), &mut last)?;
        let field = || format!("batch.writes[{i}]");
        if w.origin != origin {
            return Err(malformed(
                format!("{}.origin", field()),
                format!("{} in a batch of origin {origin}", w.origin),
            ));
        }
        let want = b.first_seq.checked_add(i as u64);
        if want != Some(w.seq) {
            return Err(malformed(
                format!("{}.seq", field()),
                format!("{} where the batch's seqs say {:?}", w.seq, want),
            ));
        }
        writes.push(w);
    }
    Ok(WriteBatch { origin, writes })
}

fn cursors_to_pb(c: &[(RegionId, u64)]) -> Vec<pb::Cursor> {
    c.iter()
        .map(|(o, s)| pb::Cursor {
            origin: u32::from(o.get()),
            seq: *s,
        })
        .collect()
}

fn cursors(c: &[pb::Cursor], field: &str) -> Result<Vec<(RegionId, u64)>, NodeError> {
    c.iter()
        .enumerate()
        .map(|(i, c)| Ok((region(c.origin, &format!("{field}[{i}].origin"))?, c.seq)))
        .collect()
}

/// A peer message as a frame, except a snapshot (sent in pieces: see
/// [`crate::peer`]). `region_name` is the sender's name, for a hello.
pub fn frame_to_pb(m: &PeerMessage, region_name: &str) -> Option<pb::PeerFrame> {
    use pb::peer_frame::Frame;
    let frame = match m {
        PeerMessage::Hello { region, durable } => Frame::Hello(pb::Hello {
            region: u32::from(region.get()),
            region_name: region_name.to_owned(),
            durable: cursors_to_pb(durable),
        }),
        PeerMessage::Batch(b) => Frame::Batch(batch_to_pb(b)),
        PeerMessage::Ack {
            applied,
            durable,
            batches,
        } => Frame::Ack(pb::Ack {
            applied: cursors_to_pb(applied),
            durable: cursors_to_pb(durable),
            batches: *batches,
        }),
        PeerMessage::Rewind { origin, from } => Frame::Rewind(pb::Rewind {
            origin: u32::from(origin.get()),
            from: *from,
        }),
        PeerMessage::Heartbeat { heads, now } => Frame::Heartbeat(pb::Heartbeat {
            heads: heads
                .iter()
                .map(|h| pb::Head {
                    origin: u32::from(h.origin.get()),
                    seq: h.seq,
                    wall_micros: h.wall.as_micros(),
                })
                .collect(),
            now_micros: now.as_micros(),
        }),
        PeerMessage::SnapshotRequest => Frame::SnapshotRequest(pb::SnapshotRequest {}),
        PeerMessage::Snapshot { .. } => return None,
    };
    Some(pb::PeerFrame { frame: Some(frame) })
}

/// What a frame (other than a snapshot piece) says, checked. A hello also
/// returns the sender's region name.
pub fn frame(f: pb::PeerFrame) -> Result<(PeerMessage, Option<String>), NodeError> {
    use pb::peer_frame::Frame;
    Ok(match f.frame {
        Some(Frame::Hello(h)) => (
            PeerMessage::Hello {
                region: region(h.region, "hello.region")?,
                durable: cursors(&h.durable, "hello.durable")?,
            },
            Some(h.region_name),
        ),
        Some(Frame::Batch(b)) => (PeerMessage::Batch(batch(b)?), None),
        Some(Frame::Ack(a)) => (
            PeerMessage::Ack {
                applied: cursors(&a.applied, "ack.applied")?,
                durable: cursors(&a.durable, "ack.durable")?,
                batches: a.batches,
            },
            None,
        ),
        Some(Frame::Rewind(r)) => (
            PeerMessage::Rewind {
                origin: region(r.origin, "rewind.origin")?,
                from: r.from,
            },
            None,
        ),
        Some(Frame::Heartbeat(h)) => (
            PeerMessage::Heartbeat {
                heads: h
                    .heads
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        Ok(Head {
                            origin: region(x.origin, &format!("heartbeat.heads[{i}].origin"))?,
                            seq: x.seq,
                            wall: WallTime::from_micros(x.wall_micros),
                        })
                    })
                    .collect::<Result<_, NodeError>>()?,
                now: WallTime::from_micros(h.now_micros),
            },
            None,
        ),
        Some(Frame::SnapshotRequest(_)) => (PeerMessage::SnapshotRequest, None),
        Some(Frame::Snapshot(_)) => {
            return Err(malformed("frame", "a snapshot piece is reassembled first"));
        }
        None => return Err(malformed("frame", "empty")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::Policy;

    fn sample(op: Op, seq: u64) -> TaggedWrite {
        let origin = RegionId::new(3);
        let wall = WallTime::from_micros(1_795_435_200_000_000 + i64::try_from(seq).unwrap_or(0));
        TaggedWrite {
            id: TaggedWrite::make_id(origin, seq, wall),
            origin,
            seq,
            hlc: HlcTime::from_u64(0x1234_5678_9abc + seq),
            wall,
            collection: Collection::new("carts").expect("a valid name"),
            key: b"k1".to_vec(),
            context: VersionVector::from_entries([(RegionId::new(1), 4), (RegionId::new(3), 2)]),
            epoch: 7,
            policy: Policy::Mv,
            dot: Some(Dot::new(origin, 3)),
            op,
        }
    }

    #[test]
    fn every_op_round_trips_through_the_wire() {
        let ops = [
            Op::Set(b"v".to_vec()),
            Op::Delete,
            Op::Counter(PnTotals {
                incremented: 5,
                decremented: 2,
            }),
            Op::Resolve {
                value: Some(b"r".to_vec()),
                resolves: vec![WriteRef {
                    origin: RegionId::new(1),
                    seq: 9,
                }],
            },
            Op::Resolve {
                value: None,
                resolves: vec![],
            },
            Op::Configure(
                CollectionConfig::new(Policy::LwwHlc)
                    .with_replication(Replication::Regions(vec![RegionId::new(2)])),
            ),
            Op::Configure(
                CollectionConfig::new(Policy::Queue).with_replication(Replication::LocalOnly),
            ),
            Op::Configure(
                CollectionConfig::new(Policy::Counter).owned(
                    OwnershipConfig::new(
                        Rule::modulo(vec![RegionId::new(1), RegionId::new(2)])
                            .expect("a valid rule"),
                    )
                    .forwarding(),
                ),
            ),
            Op::Configure(
                CollectionConfig::new(Policy::LwwHlc).owned(OwnershipConfig::new(
                    Rule::hash_ranges(vec![
                        (1 << 40, RegionId::new(2)),
                        (u64::MAX, RegionId::new(1)),
                    ])
                    .expect("a valid rule"),
                )),
            ),
            Op::Configure(
                CollectionConfig::new(Policy::LwwHlc).owned(OwnershipConfig::new(Rule::table(
                    [(b"k".to_vec(), RegionId::new(3))].into_iter().collect(),
                    Some(RegionId::new(1)),
                ))),
            ),
            Op::Ownership(concord_ownership::OwnershipMap::default()),
            Op::Withheld,
        ];
        let writes: Vec<TaggedWrite> = ops
            .into_iter()
            .enumerate()
            .map(|(i, op)| sample(op, 10 + i as u64))
            .collect();
        let b = WriteBatch {
            origin: RegionId::new(3),
            writes,
        };
        let back = batch(batch_to_pb(&b)).expect("a valid batch");
        assert_eq!(back, b);
    }

    #[test]
    fn malformed_writes_name_the_field() {
        let good = batch_to_pb(&WriteBatch {
            origin: RegionId::new(3),
            writes: vec![sample(Op::Delete, 1), sample(Op::Delete, 2)],
        });
        type Mutation = Box<dyn Fn(&mut pb::WriteBatch)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|b| b.writes[1].seq = 5), "batch.writes[1].seq"),
            (
                Box::new(|b| b.writes[0].origin = 4),
                "batch.writes[0].origin",
            ),
            (
                Box::new(|b| b.writes[0].id = vec![1, 2]),
                "batch.writes[0].id",
            ),
            (
                Box::new(|b| b.writes[1].policy = 99),
                "batch.writes[1].policy",
            ),
            (Box::new(|b| b.writes[0].op = None), "batch.writes[0].op"),
            (Box::new(|b| b.origin = 70_000), "batch.origin"),
            (
                Box::new(|b| b.writes[0].collection = "no spaces".into()),
                "batch.writes[0].collection",
            ),
            (
                Box::new(|b| {
                    if let Some(c) = b.writes[0].context.as_mut() {
                        c.entries.reverse();
                    }
                }),
                "batch.writes[0].context.entries[1]",
            ),
            (
                Box::new(|b| b.writes[0].origin = 70_000),
                "batch.writes[0].origin",
            ),
            (
                Box::new(|b| {
                    if let Some(d) = b.writes[1].dot.as_mut() {
                        d.region = 70_000;
                    }
                }),
                "batch.writes[1].dot.region",
            ),
            (
                Box::new(|b| {
                    if let Some(c) = b.writes[0].context.as_mut() {
                        c.entries[0].region = 70_000;
                        c.entries[1].region = 70_001;
                    }
                }),
                "batch.writes[0].context.entries[0].region",
            ),
            (
                Box::new(|b| {
                    if let Some(c) = b.writes[1].context.as_mut() {
                        c.entries[1].counter = 0;
                    }
                }),
                "batch.writes[1].context.entries[1].counter",
            ),
        ];
        for (mutate, field) in cases {
            let mut b = good.clone();
            mutate(&mut b);
            match batch(b) {
                Err(NodeError::Malformed { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected a malformed error, got {other:?}"),
            }
        }
    }

    #[test]
    fn frames_round_trip() {
        let msgs = [
            PeerMessage::Hello {
                region: RegionId::new(2),
                durable: vec![(RegionId::new(1), 10), (RegionId::new(2), 4)],
            },
            PeerMessage::Ack {
                applied: vec![(RegionId::new(1), 11)],
                durable: vec![(RegionId::new(1), 10)],
                batches: 3,
            },
            PeerMessage::Rewind {
                origin: RegionId::new(1),
                from: 8,
            },
            PeerMessage::Heartbeat {
                heads: vec![Head {
                    origin: RegionId::new(1),
                    seq: 4,
                    wall: WallTime::from_micros(77),
                }],
                now: WallTime::from_micros(99),
            },
            PeerMessage::SnapshotRequest,
        ];
        for m in msgs {
            let f = frame_to_pb(&m, "eu").expect("not a snapshot");
            let (back, _) = frame(f).expect("a valid frame");
            assert_eq!(back, m);
        }
    }
}
