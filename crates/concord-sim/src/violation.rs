//! What a failed run reports: the invariant, where it broke, and the seed.

use std::fmt;

use concord_core::EntityKey;
use concord_crdt::RegionId;

/// The property a run found broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// After heal, every node holds the same entities and the same open
    /// conflict-queue items.
    ReplicasEqual,
    /// Every acknowledged write is in state, among siblings, in the loser
    /// log or in the conflict queue, everywhere; counters are exact.
    AckedWrites,
    /// Every node picks the same winner for every last-write-wins entity.
    SameWinner,
    /// A write under `lww-hlc` is stamped after the version its node showed
    /// as current when it was accepted (the HLC's causality promise).
    CausalHlc,
    /// No node's durable cursor of any origin ever goes backwards, even
    /// across a crash and restart.
    CursorsMonotone,
    /// After heal the cluster reaches quiescence (every write everywhere)
    /// within the time allowed.
    Quiescence,
    /// In an owned collection, every write accepted under an ownership
    /// epoch was accepted by the key's owner at that epoch: no key is
    /// accepted by two regions once the epoch is known.
    SingleOwner,
    /// A takeover's fence: exactly the fenced region's writes past the
    /// fence are refused and queued, and the data at risk it reported is
    /// exactly what was lost.
    Fencing,
    /// An engine call failed where no error was expected.
    EngineError,
}

impl Invariant {
    /// A short, stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ReplicasEqual => "replicas-equal",
            Self::AckedWrites => "acked-writes-accounted",
            Self::SameWinner => "same-winner",
            Self::CausalHlc => "causal-hlc",
            Self::CursorsMonotone => "cursors-monotone",
            Self::Quiescence => "quiescence",
            Self::SingleOwner => "single-owner",
            Self::Fencing => "fencing",
            Self::EngineError => "engine-error",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken invariant: which, at which node and entity, and the seed that
/// replays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The seed of the run (set by the simulator).
    pub seed: u64,
    /// The invariant that broke.
    pub invariant: Invariant,
    /// The node where it was seen, when one is to blame.
    pub node: Option<RegionId>,
    /// The entity concerned, when there is one.
    pub entity: Option<EntityKey>,
    /// What exactly was wrong.
    pub detail: String,
}

impl Violation {
    /// A violation of `invariant`, described by `detail` (seed 0 until the
    /// simulator sets it).
    pub fn new(invariant: Invariant, detail: impl Into<String>) -> Self {
        Self {
            seed: 0,
            invariant,
            node: None,
            entity: None,
            detail: detail.into(),
        }
    }

    /// The same, seen at `node`.
    pub fn at(mut self, node: RegionId) -> Self {
        self.node = Some(node);
        self
    }

    /// The same, about `entity`.
    pub fn on(mut self, entity: &EntityKey) -> Self {
        self.entity = Some(entity.clone());
        self
    }

    /// The same, for the run of `seed`.
    pub fn seeded(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant {} broken", self.invariant)?;
        if let Some(node) = self.node {
            write!(f, " at node {node}")?;
        }
        if let Some(entity) = &self.entity {
            write!(f, " on entity {entity}")?;
        }
        write!(f, " (seed={}): {}", self.seed, self.detail)
    }
}

impl std::error::Error for Violation {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_invariant_node_entity_and_seed() {
        let entity = EntityKey::new(concord_core::Collection::new("mv").unwrap(), "k1");
        let v = Violation::new(Invariant::SameWinner, "r0 picks r1#3, r2 picks r2#4")
            .at(RegionId::new(2))
            .on(&entity)
            .seeded(41);
        let text = v.to_string();
        assert!(text.contains("same-winner"), "{text}");
        assert!(text.contains("mv/k1"), "{text}");
        assert!(text.contains("seed=41"), "{text}");
        assert!(text.contains(&RegionId::new(2).to_string()), "{text}");
    }
}
