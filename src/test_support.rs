//! Helpers for unit tests only.

use serde_json::{Map, Value};

/// `base` with `overrides` merged in, a `null` override removing the claim: the shape of
/// every claim-table test.
pub(crate) fn overlay(base: Value, overrides: &Value) -> Map<String, Value> {
    let mut merged = base.as_object().cloned().unwrap_or_default();
    for (name, value) in overrides.as_object().into_iter().flatten() {
        if value.is_null() {
            merged.remove(name);
        } else {
            merged.insert(name.clone(), value.clone());
        }
    }
    merged
}
