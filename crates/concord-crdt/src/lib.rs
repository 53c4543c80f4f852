//! Pure merge types for Concord.
//!
//! Every type here is a state-based CRDT: it implements [`Merge`], a join that
//! is commutative, associative and idempotent, so replicas that exchange their
//! states in any order, with duplicates, converge. None of them loses a write
//! silently: [`Lww`] reports the loser of every merge, [`MvRegister`] keeps
//! concurrent writes as siblings, and the counters sum every region's totals.
//!
//! | type | state | merge |
//! |---|---|---|
//! | [`Lww`] | value + [`Stamp`] (time, origin, seq) | greatest stamp wins; loser reported |
//! | [`VersionVector`] | per-region event counts | pointwise max |
//! | [`MvRegister`] | siblings with [`Dot`]s + causal context | keep concurrent, drop covered |
//! | [`GCounter`] | per-region running totals | pointwise max |
//! | [`PnCounter`] | per-region (added, subtracted) totals | pointwise max |
//!
//! Every type is serde-serializable; [`codec`] gives the stable binary form
//! (a format-version byte, then bincode 2) whose bytes are pinned by golden
//! test vectors.
//!
//! The crate is pure: no I/O, threads or clocks. Timestamps are generic; the
//! `concord-clock` crate provides wall-clock and hybrid-logical-clock ones.

pub mod codec;
mod error;
mod g_counter;
mod lww;
mod merge;
mod mv_register;
mod pn_counter;
mod region_id;
mod region_map;
mod version_vector;

pub use error::CrdtError;
pub use g_counter::{GCounter, ZeroTotal};
pub use lww::{Lww, LwwMerge, LwwOutcome, Stamp, StampRepr};
pub use merge::Merge;
pub use mv_register::{InvalidMvRegister, MvApplied, MvRegister, MvRegisterRepr, Sibling};
pub use pn_counter::{PnCounter, PnTotals, ZeroPnTotals};
pub use region_id::RegionId;
pub use region_map::{INLINE_REGIONS, RegionMap};
pub use version_vector::{Causality, Dot, VersionVector, ZeroEntry};
