//! What the targets share: the engine's configuration, its clock, and a
//! reader of input bytes.

use std::sync::Arc;

use concord_clock::{ManualClock, WallTime};
use concord_core::{Collection, CollectionConfig, EngineConfig, Policy};
use concord_crdt::RegionId;

/// The region of the engine under test.
pub const HERE: RegionId = RegionId::new(1);
/// Its peers: input frames come from these.
pub const PEERS: [RegionId; 2] = [RegionId::new(2), RegionId::new(3)];
/// The wall time every target's clock starts at.
pub const START_MICROS: i64 = 1_795_435_200_000_000;

/// One collection per policy, named after it.
pub const COLLECTIONS: [(&str, Policy); 5] = [
    ("lww-wall", Policy::LwwWall),
    ("lww-hlc", Policy::LwwHlc),
    ("mv", Policy::Mv),
    ("counter", Policy::Counter),
    ("queue", Policy::Queue),
];

/// The collection named `name`.
pub fn collection(name: &str) -> Collection {
    Collection::new(name).expect("the fixture's collection names are valid")
}

/// The engine configuration of `region`: the other fixture regions are its
/// peers, and every policy has a collection (a `mv` one with a small sibling
/// cap, so the queue sees sibling-cap items too).
pub fn config(region: RegionId) -> EngineConfig {
    let mut peers: Vec<RegionId> = PEERS.to_vec();
    peers.push(HERE);
    peers.retain(|p| *p != region);
    let collections = COLLECTIONS
        .iter()
        .map(|(name, policy)| {
            let mut cfg = CollectionConfig::new(*policy);
            cfg.max_siblings = 3;
            (collection(name), cfg)
        })
        .collect();
    let mut config = EngineConfig::new(region, peers, collections);
    // Small enough that a fuzz input reaches them.
    config.max_batch_writes = 8;
    config.max_held_per_origin = 16;
    config.loser_log_capacity = 16;
    config.checkpoint_every = 32;
    config
}

/// A manual clock at [`START_MICROS`].
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(WallTime::from_micros(START_MICROS)))
}

/// A temporary directory for a sled store: in `/dev/shm` when there is one
/// (a fuzz target opens thousands of stores a second), else the default.
pub fn tempdir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("concord-fuzz-")
            .tempdir_in(shm)
    {
        return dir;
    }
    tempfile::Builder::new()
        .prefix("concord-fuzz-")
        .tempdir()
        .expect("a temporary directory")
}

/// Reads an input from the front: fixed-size numbers and length-prefixed
/// byte strings. Running out of input reads as `None`, which ends a target.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// True once every byte was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// The next `u16`, little endian.
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    /// A byte string prefixed by its length as a `u16` (little endian); a
    /// length past the end takes what is left.
    pub fn block(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.u16()?);
        let len = len.min(self.rest.len());
        self.take(len)
    }
}

/// Writes what [`Reader`] reads: for building seeds.
#[derive(Debug, Default)]
pub struct Writer {
    /// The bytes so far.
    pub bytes: Vec<u8>,
}

impl Writer {
    /// Appends a byte.
    pub fn u8(&mut self, b: u8) -> &mut Self {
        self.bytes.push(b);
        self
    }

    /// Appends a `u16`, little endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a length-prefixed byte string (at most 65535 bytes: longer
    /// ones are an error of the seed builder).
    pub fn block(&mut self, b: &[u8]) -> &mut Self {
        let len = u16::try_from(b.len()).expect("a seed block fits a u16 length");
        self.u16(len);
        self.bytes.extend_from_slice(b);
        self
    }
}
