//! Bearer tokens from API clients (RFC 6750): JWT access tokens issued by the same provider
//! (RFC 9068 shapes them; most providers issue something close), checked against the
//! configured audiences. The signature is checked before, like an ID token's.

use serde_json::{Map, Value};

use super::id_token::number;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BearerError {
    #[error("the token is not a valid JWT from the identity provider")]
    Unverified,
    /// RFC 7662 §2.2: `active: false` (revoked, expired, or never issued).
    #[error("the token is not active")]
    Inactive,
    /// The introspection endpoint could not be asked: not the client's fault.
    #[error("the identity provider cannot check the token now")]
    Unavailable,
    #[error("the token is from another issuer")]
    WrongIssuer,
    #[error("the token is not for this API")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lacks the {0} claim")]
    MissingClaim(&'static str),
}

pub(crate) fn check(
    claims: &Map<String, Value>,
    issuer: &str,
    audiences: &[String],
    now: u64,
    skew: u64,
) -> Result<(), BearerError> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(BearerError::WrongIssuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => audiences.contains(aud),
        Some(Value::Array(auds)) => auds
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.iter().any(|x| x == a)),
        _ => false,
    };
    if !audience_ok {
        return Err(BearerError::WrongAudience);
    }
    let exp = number(claims, "exp")
        .ok()
        .flatten()
        .ok_or(BearerError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(skew) {
        return Err(BearerError::Expired);
    }
    if let Some(nbf) = number(claims, "nbf").map_err(|_| BearerError::MissingClaim("nbf"))? {
        if nbf > now.saturating_add(skew) {
            return Err(BearerError::NotYetValid);
        }
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => Ok(()),
        _ => Err(BearerError::MissingClaim("sub")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_900_000_000;

    #[test]
    fn bearer_table() {
        let audiences = vec!["api://app".to_string()];
        let base =
            json!({"iss": "https://idp", "aud": "api://app", "sub": "client-1", "exp": NOW + 60});
        let with = |k: &str, v: Value| crate::test_support::overlay(base.clone(), &json!({ k: v }));
        let cases = [
            (with("x", Value::Null), Ok(())),
            (with("aud", json!(["other", "api://app"])), Ok(())),
            (with("aud", json!("other")), Err(BearerError::WrongAudience)),
            (with("aud", Value::Null), Err(BearerError::WrongAudience)),
            (
                with("iss", json!("https://evil")),
                Err(BearerError::WrongIssuer),
            ),
            (with("exp", json!(NOW - 120)), Err(BearerError::Expired)),
            (
                with("exp", Value::Null),
                Err(BearerError::MissingClaim("exp")),
            ),
            (
                with("nbf", json!(NOW + 3600)),
                Err(BearerError::NotYetValid),
            ),
            (
                with("sub", Value::Null),
                Err(BearerError::MissingClaim("sub")),
            ),
        ];
        for (claims, expected) in cases {
            assert_eq!(
                check(&claims, "https://idp", &audiences, NOW, 60),
                expected,
                "{claims:?}"
            );
        }
    }
}
