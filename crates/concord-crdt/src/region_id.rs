//! Compact region identifiers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A compact, numeric region identifier.
///
/// Regions have names in configuration; merge types key their per-region
/// entries by this small number instead, so entries stay small and sorted.
/// Every node must map a region name to the same id. The order of ids is the
/// tie-breaker between equal timestamps, so it is the same on every node.
///
/// ```
/// use concord_crdt::RegionId;
/// let eu = RegionId::new(1);
/// assert_eq!(eu.get(), 1);
/// assert!(RegionId::new(0) < eu);
/// assert_eq!(eu.to_string(), "r1");
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct RegionId(u16);

impl RegionId {
    /// Wraps a numeric id.
    pub const fn new(id: u16) -> Self {
        Self(id)
    }

    /// The numeric id.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl From<u16> for RegionId {
    fn from(id: u16) -> Self {
        Self(id)
    }
}

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}
