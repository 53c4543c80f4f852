//! Shared setup of the kill -9 crash test and its child process.

use std::sync::Arc;

use concord_clock::{ManualClock, WallTime};
use concord_core::{
    ClientOp, ClientWrite, Collection, CollectionConfig, Engine, EngineConfig, MemoryStorage,
    Policy, TaggedWrite,
};
use concord_crdt::RegionId;

/// The key region 0 increments locally.
pub const LOCAL: &[u8] = b"local";
/// The key region 1's replicated increments land on.
pub const REMOTE: &[u8] = b"remote";
/// How many replicated writes region 1 has made in all.
pub const REMOTE_WRITES: usize = 200_000;

/// The counter collection both keys live in.
pub fn collection() -> Collection {
    Collection::new("stock").unwrap_or_else(|_| unreachable!("a valid name"))
}

/// The engine configuration of region `region` (peer: the other one).
pub fn config(region: u16) -> EngineConfig {
    let mut cfg = EngineConfig::new(
        RegionId::new(region),
        vec![RegionId::new(1 - region)],
        vec![(collection(), CollectionConfig::new(Policy::Counter))],
    );
    cfg.checkpoint_every = 500;
    cfg
}

/// Region 1's writes: each adds 1 to `REMOTE`, so write `s` carries total `s`.
/// The same every time (a fixed clock), so every run of the child agrees.
pub fn remote_writes() -> Vec<TaggedWrite> {
    let clock = Arc::new(ManualClock::new(WallTime::from_micros(
        1_795_435_200_000_000,
    )));
    let mut source = match Engine::open(config(1), MemoryStorage::new(), clock) {
        Ok(e) => e,
        Err(e) => panic!("source engine: {e}"),
    };
    for _ in 0..REMOTE_WRITES {
        if let Err(e) = source.write(ClientWrite {
            collection: collection(),
            key: REMOTE.to_vec(),
            op: ClientOp::Add(1),
            context: None,
        }) {
            panic!("source write: {e}");
        }
    }
    if let Err(e) = source.commit() {
        panic!("source commit: {e}");
    }
    match concord_core::Storage::read_log(source.storage(), RegionId::new(1), 1, REMOTE_WRITES) {
        Ok(w) => w,
        Err(e) => panic!("source log: {e}"),
    }
}
