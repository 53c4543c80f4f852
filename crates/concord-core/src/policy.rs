//! Collection policies and the per-collection configuration.

use std::fmt;
use std::str::FromStr;

use concord_crdt::RegionId;
use concord_ownership::Rule;
use serde::{Deserialize, Serialize};

/// How a collection resolves concurrent writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Policy {
    /// Last write wins by origin wall clock, then origin, then seq; losers logged.
    LwwWall,
    /// Last write wins by hybrid logical clock, then origin, then seq; losers logged.
    LwwHlc,
    /// Multi-value: concurrent writes are kept as siblings.
    Mv,
    /// Counter: per-region running totals, summed.
    Counter,
    /// Concurrent writes go to the durable conflict queue for the application.
    Queue,
}

impl Policy {
    /// The policy's configuration name (`lww-wall`, `lww-hlc`, `mv`, `counter`, `queue`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::LwwWall => "lww-wall",
            Self::LwwHlc => "lww-hlc",
            Self::Mv => "mv",
            Self::Counter => "counter",
            Self::Queue => "queue",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name that is not one of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy {0:?}: expected lww-wall, lww-hlc, mv, counter or queue")]
pub struct UnknownPolicy(pub String);

impl FromStr for Policy {
    type Err = UnknownPolicy;

    /// ```
    /// use concord_core::Policy;
    /// assert_eq!("lww-hlc".parse::<Policy>(), Ok(Policy::LwwHlc));
    /// assert!("lww".parse::<Policy>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "lww-wall" => Self::LwwWall,
            "lww-hlc" => Self::LwwHlc,
            "mv" => Self::Mv,
            "counter" => Self::Counter,
            "queue" => Self::Queue,
            other => return Err(UnknownPolicy(other.to_owned())),
        })
    }
}

/// Where a collection's writes are replicated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Replication {
    /// To every region (the default).
    #[default]
    Everywhere,
    /// Nowhere: writes stay in the region that accepted them.
    LocalOnly,
    /// Only to these regions (data residency). Writes accepted elsewhere stay local.
    Regions(Vec<RegionId>),
}

impl Replication {
    /// True when a write of this collection may be sent to `region`.
    pub fn allows(&self, region: RegionId) -> bool {
        match self {
            Self::Everywhere => true,
            Self::LocalOnly => false,
            Self::Regions(list) => list.contains(&region),
        }
    }
}

/// What to do with a remote write whose wall timestamp is beyond the max skew.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SkewAction {
    /// Put it in the conflict queue for the application (the default).
    #[default]
    Queue,
    /// Refuse to apply it: it stays in the log and is counted, never applied.
    Refuse,
}

/// The `owned` mode of a collection: every key has one home region, the only
/// region that accepts writes to it. Inside the owner, the collection's
/// policy applies as usual.
///
/// `rule` is the collection's base rule: the replicated ownership map (see
/// [`crate::Engine::ownership`]) refines it with keys moved by a handoff and
/// regions taken over, and replaces it if the map carries a rule of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OwnershipConfig {
    /// Which region owns which key.
    pub rule: Rule,
    /// A write at a non-owner should be forwarded to the owner by the node
    /// (`true`) rather than refused. The engine refuses it either way with
    /// [`crate::CoreError::NotOwner`], which carries this flag.
    pub forward: bool,
}

impl OwnershipConfig {
    /// Owned by `rule`; writes at a non-owner are refused, not forwarded.
    pub fn new(rule: Rule) -> Self {
        Self {
            rule,
            forward: false,
        }
    }

    /// The same, forwarding writes at a non-owner to the owner.
    pub fn forwarding(mut self) -> Self {
        self.forward = true;
        self
    }
}

/// The configuration of one collection.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// How concurrent writes are resolved.
    pub policy: Policy,
    /// Where writes are replicated.
    pub replication: Replication,
    /// For `mv`: past this many siblings the entity goes to the conflict
    /// queue (at least 1: a cap of 0 counts as 1).
    pub max_siblings: u32,
    /// What to do with a remote write too far in the future.
    pub skew_action: SkewAction,
    /// `Some`: the collection is owned (one home region per key); `None`
    /// (the default): every region accepts writes to every key.
    #[serde(default)]
    pub owned: Option<OwnershipConfig>,
}

impl CollectionConfig {
    /// A collection with `policy`, replicated everywhere, default limits.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            replication: Replication::Everywhere,
            max_siblings: 16,
            skew_action: SkewAction::Queue,
            owned: None,
        }
    }

    /// The same, in `owned` mode.
    ///
    /// ```
    /// use concord_core::{CollectionConfig, OwnershipConfig, Policy};
    /// use concord_crdt::RegionId;
    /// use concord_ownership::Rule;
    ///
    /// let rule = Rule::modulo(vec![RegionId::new(0), RegionId::new(1)])?;
    /// let config = CollectionConfig::new(Policy::LwwHlc).owned(OwnershipConfig::new(rule));
    /// assert!(config.owned.is_some());
    /// # Ok::<(), concord_ownership::OwnershipError>(())
    /// ```
    pub fn owned(mut self, ownership: OwnershipConfig) -> Self {
        self.owned = Some(ownership);
        self
    }

    /// The same, with the given replication.
    pub fn with_replication(mut self, replication: Replication) -> Self {
        self.replication = replication;
        self
    }
}
