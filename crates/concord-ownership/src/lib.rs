//! Home-region ownership for Concord.
//!
//! Every `(collection, key)` has exactly one home region. A collection's
//! [`Rule`] assigns it: [`Rule::Modulo`] on a decimal integer id (region A
//! owns even user ids, region B odd ones), [`Rule::HashRanges`] over the
//! stable [`key_hash`], or an explicit [`Rule::Table`]. An [`OwnershipMap`]
//! holds the rules plus per-key overrides for moved keys, and is replicated
//! state stamped with an epoch. [`route`] decides whether a region applies a
//! write or forwards it, and [`check_epoch`] fences writes made under an
//! older epoch.
//!
//! This crate is pure: no I/O, no clocks, no async.
//!
//! ```
//! use concord_crdt::RegionId;
//! use concord_ownership::{OwnershipMap, Route, Rule, check_epoch, route};
//!
//! let (eu, us) = (RegionId::new(0), RegionId::new(1));
//! let mut map = OwnershipMap::new();
//! map.set_rule("users", Rule::modulo(vec![eu, us])?)?;
//! assert_eq!(route(&map, eu, "users", b"7")?, Route::Forward(us));
//!
//! let write_epoch = map.epoch();
//! map.move_keys("users", [b"7".to_vec()], eu)?;
//! assert_eq!(route(&map, eu, "users", b"7")?, Route::Local);
//! assert!(check_epoch(&map, write_epoch).is_err());
//! # Ok::<(), concord_ownership::OwnershipError>(())
//! ```

mod error;
mod hash;
mod map;
mod route;
mod rule;

pub use error::{OwnershipError, RuleDefect};
pub use hash::key_hash;
pub use map::{Fence, MergeOutcome, OwnershipMap};
pub use route::{Route, check_epoch, route};
pub use rule::Rule;
