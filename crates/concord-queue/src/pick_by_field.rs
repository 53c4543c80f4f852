//! A resolver that picks the version with the largest (or smallest) field.

use std::cmp::Ordering;

use concord_core::{ConflictItem, Version};
use serde_json::Value;

use crate::{Decision, QueueError, Resolver};

/// Which end of the field's order wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefer {
    /// The largest value wins.
    Max,
    /// The smallest value wins.
    Min,
}

/// Resolves by picking one version: the one whose JSON value has the largest
/// (or smallest) `field`.
///
/// Values are JSON objects. Numbers compare as numbers, strings as strings;
/// a version without the field, or whose value is not a JSON object, is not
/// a candidate (deleted versions neither). Ties are broken by the versions'
/// `(hlc, origin, seq)`, so every region picks the same one. With no
/// candidate the item is left to the application.
///
/// ```
/// # use concord_queue::{Decision, PickByField, Prefer, Resolver};
/// # let item = concord_queue::testing::item(&[
/// #     Some(r#"{"status":"paid","version":3}"#),
/// #     Some(r#"{"status":"cancelled","version":5}"#),
/// # ]);
/// let pick = PickByField::new("version", Prefer::Max);
/// assert_eq!(pick.decide(&item)?, Decision::Resolve(br#"{"status":"cancelled","version":5}"#.to_vec()));
/// # Ok::<(), concord_queue::QueueError>(())
/// ```
#[derive(Clone, Debug)]
pub struct PickByField {
    field: String,
    prefer: Prefer,
}

impl PickByField {
    /// Picks by `field`, preferring its `prefer` end.
    pub fn new(field: impl Into<String>, prefer: Prefer) -> Self {
        Self {
            field: field.into(),
            prefer,
        }
    }
}

/// Orders two field values: numbers by value, strings lexically; mixed kinds
/// order numbers before strings. Other kinds are not comparable.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Number(_), Value::String(_)) => Some(Ordering::Less),
        (Value::String(_), Value::Number(_)) => Some(Ordering::Greater),
        _ => None,
    }
}

impl Resolver for PickByField {
    fn name(&self) -> &'static str {
        "pick-by-field"
    }

    fn decide(&self, item: &ConflictItem) -> Result<Decision, QueueError> {
        let mut best: Option<(&Version, Value)> = None;
        for v in &item.versions {
            let Some(bytes) = &v.value else { continue };
            let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(bytes) else {
                continue;
            };
            let Some(field) = obj.remove(&self.field) else {
                continue;
            };
            if !matches!(field, Value::Number(_) | Value::String(_)) {
                continue;
            }
            let better = match &best {
                None => true,
                Some((b, bf)) => {
                    let by_field = compare(&field, bf).unwrap_or(Ordering::Equal);
                    let by_field = match self.prefer {
                        Prefer::Max => by_field,
                        Prefer::Min => by_field.reverse(),
                    };
                    by_field
                        .then_with(|| (v.hlc, v.write).cmp(&(b.hlc, b.write)))
                        .is_gt()
                }
            };
            if better {
                best = Some((v, field));
            }
        }
        Ok(match best {
            Some((v, _)) => Decision::Resolve(v.value.clone().unwrap_or_default()),
            None => Decision::Skip,
        })
    }
}
