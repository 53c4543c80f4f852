//! A resolver that sums counter-like deltas: the inventory case.

use concord_core::ConflictItem;

use crate::{Decision, QueueError, Resolver};

/// Resolves by summing every version's value, read as a signed decimal integer.
///
/// For collections whose writes are adjustments ("-2" sold here, "+5"
/// restocked there): concurrent adjustments all count, so the resolution is
/// their sum, written back as a decimal. A deleted version counts as 0. A
/// value that is not a decimal `i64` is an error naming the version; the item
/// stays open.
///
/// ```
/// # use concord_queue::{Decision, Resolver, SumDeltas};
/// # let item = concord_queue::testing::item(&[Some("-2"), Some("+5"), Some("-1")]);
/// assert_eq!(SumDeltas.decide(&item)?, Decision::Resolve(b"2".to_vec()));
/// # Ok::<(), concord_queue::QueueError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SumDeltas;

impl Resolver for SumDeltas {
    fn name(&self) -> &'static str {
        "sum-deltas"
    }

    fn decide(&self, item: &ConflictItem) -> Result<Decision, QueueError> {
        let mut sum: i64 = 0;
        for v in &item.versions {
            let Some(bytes) = &v.value else { continue };
            let unreadable = |reason: String| QueueError::Unreadable {
                item: item.id,
                write: v.write.to_string(),
                resolver: "sum-deltas",
                reason,
            };
            let text = std::str::from_utf8(bytes).map_err(|e| unreadable(e.to_string()))?;
            let n: i64 = text
                .trim()
                .trim_start_matches('+')
                .parse()
                .map_err(|e: std::num::ParseIntError| unreadable(format!("{text:?}: {e}")))?;
            sum = sum
                .checked_add(n)
                .ok_or(QueueError::Overflow { item: item.id })?;
        }
        Ok(Decision::Resolve(sum.to_string().into_bytes()))
    }
}
