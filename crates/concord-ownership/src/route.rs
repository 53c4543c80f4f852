//! Routing and fencing decisions on top of an [`OwnershipMap`].

use concord_crdt::RegionId;

use crate::{OwnershipError, OwnershipMap};

/// Where a write to a key should be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The local region owns the key: apply the write here.
    Local,
    /// Another region owns the key: forward the write to it.
    Forward(RegionId),
}

/// Decides whether region `local` applies a write to `key` of `collection` or forwards it.
///
/// ```
/// use concord_crdt::RegionId;
/// use concord_ownership::{OwnershipMap, Route, Rule, route};
///
/// let (a, b) = (RegionId::new(0), RegionId::new(1));
/// let mut map = OwnershipMap::new();
/// map.set_rule("users", Rule::modulo(vec![a, b])?)?;
/// assert_eq!(route(&map, a, "users", b"42")?, Route::Local);
/// assert_eq!(route(&map, a, "users", b"43")?, Route::Forward(b));
/// # Ok::<(), concord_ownership::OwnershipError>(())
/// ```
pub fn route(
    map: &OwnershipMap,
    local: RegionId,
    collection: &str,
    key: &[u8],
) -> Result<Route, OwnershipError> {
    let owner = map.owner(collection, key)?;
    Ok(if owner == local {
        Route::Local
    } else {
        Route::Forward(owner)
    })
}

/// Fences a write made under ownership epoch `write_epoch`.
///
/// A write made under an older epoch than the map's may have been routed by
/// an ownership that has since changed, so it is rejected with
/// [`OwnershipError::Fenced`]. A write under the current epoch passes. A
/// write under a newer epoch also passes: it proves only that this map is
/// behind, which the caller fixes by merging the newer map, not by dropping
/// the write.
///
/// ```
/// use concord_crdt::RegionId;
/// use concord_ownership::{OwnershipError, OwnershipMap, Rule, check_epoch};
///
/// let mut map = OwnershipMap::new();
/// map.set_rule("users", Rule::modulo(vec![RegionId::new(0)])?)?;
/// map.set_rule("users", Rule::modulo(vec![RegionId::new(1)])?)?;
/// assert_eq!(check_epoch(&map, 2), Ok(()));
/// assert_eq!(
///     check_epoch(&map, 1),
///     Err(OwnershipError::Fenced { write_epoch: 1, current: 2 })
/// );
/// # Ok::<(), OwnershipError>(())
/// ```
pub fn check_epoch(map: &OwnershipMap, write_epoch: u64) -> Result<(), OwnershipError> {
    let current = map.epoch();
    if write_epoch < current {
        Err(OwnershipError::Fenced {
            write_epoch,
            current,
        })
    } else {
        Ok(())
    }
}
