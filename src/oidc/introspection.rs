//! Opaque bearer tokens, checked by asking the provider (OAuth 2.0 Token Introspection,
//! RFC 7662), with a short cache so an API client's burst costs one call.
//!
//! The answer is believed only when `active` is true, and then checked like a JWT's claims:
//! `exp` and `nbf` (when given) against the clock, `iss` (when given) against the provider,
//! `aud` (when given) against the configured audiences, and a `sub` to name the caller.
//! Refusals are cached too (a revoked token stays revoked), but never longer than the cache
//! time; a provider that could not be asked is not cached at all.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::bearer::{BearerError, check};

/// Most answers kept; past it the cache starts over (an attack of random tokens must not
/// grow memory).
const MAX_ENTRIES: usize = 10_000;

type Answer = Result<Map<String, Value>, BearerError>;

pub(crate) struct IntrospectionCache {
    ttl: u64,
    /// SHA-256 of the token → the checked answer and until when it stands.
    entries: Mutex<HashMap<[u8; 32], (Answer, u64)>>,
}

impl IntrospectionCache {
    pub(crate) fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl: ttl.as_secs(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Answer, u64)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, token: &str, now: u64) -> Option<Answer> {
        let entries = self.entries();
        let (answer, until) = entries.get(&Self::key(token))?;
        (*until > now).then(|| answer.clone())
    }

    /// Keeps `answer` for the cache time, and a granted one never past the token's `exp`.
    pub(crate) fn put(&self, token: &str, answer: &Answer, now: u64) {
        if matches!(answer, Err(BearerError::Unavailable)) {
            return;
        }
        let mut until = now.saturating_add(self.ttl);
        if let Ok(claims) = answer {
            if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
                until = until.min(exp);
            }
        }
        let mut entries = self.entries();
        entries.retain(|_, (_, until)| *until > now);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(Self::key(token), (answer.clone(), until));
    }
}

/// The claims of an introspection response that vouches for the token, per RFC 7662 §2.2.
pub(crate) fn check_response(
    response: &Map<String, Value>,
    issuer: &str,
    audiences: &[String],
    now: u64,
    skew: u64,
) -> Answer {
    if response.get("active").and_then(Value::as_bool) != Some(true) {
        return Err(BearerError::Inactive);
    }
    // The same checks as a JWT's, for the members the response carries.
    let mut claims = response.clone();
    claims
        .entry("iss")
        .or_insert_with(|| Value::String(issuer.to_string()));
    if !claims.contains_key("aud") {
        if let Some(first) = audiences.first() {
            claims.insert("aud".into(), Value::String(first.clone()));
        }
    }
    // Without `exp` the provider's word is all there is; the cache bounds how long it holds.
    claims
        .entry("exp")
        .or_insert_with(|| Value::from(now.saturating_add(skew).saturating_add(1)));
    check(&claims, issuer, audiences, now, skew)?;
    claims.remove("active");
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_900_000_000;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().expect("object").clone()
    }

    #[test]
    fn only_active_answers_that_pass_the_claim_checks_grant() {
        let audiences = vec!["api://app".to_string()];
        let check = |v: Value| check_response(&object(v), "https://idp", &audiences, NOW, 60);
        let granted = check(json!({"active": true, "sub": "job", "exp": NOW + 60}))
            .expect("active with a sub");
        assert_eq!(granted.get("sub"), Some(&json!("job")));
        assert!(!granted.contains_key("active"));
        assert!(
            check(json!({"active": true, "sub": "job"})).is_ok(),
            "exp is optional"
        );
        for (response, expected) in [
            (
                json!({"active": false, "sub": "job"}),
                BearerError::Inactive,
            ),
            (json!({"sub": "job"}), BearerError::Inactive),
            (
                json!({"active": "true", "sub": "job"}),
                BearerError::Inactive,
            ),
            (
                json!({"active": true, "sub": "job", "exp": NOW - 120}),
                BearerError::Expired,
            ),
            (
                json!({"active": true, "sub": "job", "iss": "https://evil"}),
                BearerError::WrongIssuer,
            ),
            (
                json!({"active": true, "sub": "job", "aud": "other"}),
                BearerError::WrongAudience,
            ),
            (json!({"active": true}), BearerError::MissingClaim("sub")),
        ] {
            assert_eq!(check(response.clone()), Err(expected), "{response}");
        }
    }

    #[test]
    fn the_cache_keeps_answers_until_the_ttl_or_the_token_s_exp_and_never_outages() {
        let cache = IntrospectionCache::new(std::time::Duration::from_secs(60));
        let short = Ok(object(json!({"sub": "job", "exp": NOW + 10})));
        cache.put("short", &short, NOW);
        assert_eq!(cache.get("short", NOW + 9), Some(short));
        assert_eq!(
            cache.get("short", NOW + 10),
            None,
            "not past the token's exp"
        );
        cache.put("revoked", &Err(BearerError::Inactive), NOW);
        assert_eq!(
            cache.get("revoked", NOW + 59),
            Some(Err(BearerError::Inactive))
        );
        assert_eq!(cache.get("revoked", NOW + 60), None);
        cache.put("outage", &Err(BearerError::Unavailable), NOW);
        assert_eq!(cache.get("outage", NOW), None);
    }
}
