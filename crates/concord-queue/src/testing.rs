//! Builders for examples and tests: conflict items with given values.

use concord_clock::{HlcTime, WallTime};
use concord_core::{
    Collection, ConflictItem, ConflictReason, EntityKey, ItemStatus, Version, WriteRef,
};
use concord_crdt::RegionId;

/// An open `Concurrent` item whose versions hold `values` (`None`: deleted),
/// written by regions 0, 1, 2, ... at increasing times.
pub fn item(values: &[Option<&str>]) -> ConflictItem {
    let versions = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let n = u16::try_from(i).unwrap_or(u16::MAX);
            let millis = 1_795_435_200_000 + i64::from(n);
            Version {
                value: v.map(|s| s.as_bytes().to_vec()),
                write: WriteRef {
                    origin: RegionId::new(n),
                    seq: 1,
                },
                hlc: HlcTime::from_parts(millis, 0).unwrap_or(HlcTime::MIN),
                wall: WallTime::from_micros(millis * 1000),
            }
        })
        .collect();
    ConflictItem {
        id: 1,
        position: 1,
        entity: EntityKey::new(
            Collection::new("items").unwrap_or_else(|_| unreachable!("a valid name")),
            b"k".to_vec(),
        ),
        reason: ConflictReason::Concurrent,
        versions,
        opened: WallTime::from_micros(1_795_435_200_000_000),
        status: ItemStatus::Open,
    }
}
