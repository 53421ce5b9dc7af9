//! Logout tokens, OpenID Connect Back-Channel Logout 1.0 §2.4 and §2.6: the provider telling
//! the gateway that a user's session (`sid`) or every session of a user (`sub`) has ended.

use serde_json::{Map, Value};

use super::id_token::{IdTokenError, number};

/// The event a logout token must carry (§2.4).
const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Logout tokens older than this are refused: they are meant to be delivered at once, and
/// accepting old ones would make the `jti` replay set unbounded.
pub(crate) const MAX_AGE: u64 = 600;

/// What a valid logout token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogoutClaims {
    pub(crate) sid: Option<String>,
    pub(crate) sub: Option<String>,
    pub(crate) jti: String,
    pub(crate) iat: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum LogoutTokenError {
    #[error("{0}")]
    Token(#[source] IdTokenError),
    #[error("the claim {0} is missing or malformed")]
    MissingClaim(&'static str),
    #[error("issuer {0:?} is not the provider's")]
    WrongIssuer(String),
    #[error("the token is not for this client")]
    WrongAudience,
    #[error("the token is too old or issued in the future")]
    Stale,
    #[error("the token has expired")]
    Expired,
    #[error("the events claim has no back-channel logout event")]
    NotALogoutEvent,
    #[error("the token names neither sid nor sub")]
    NoSubject,
    #[error("a logout token must not contain a nonce")]
    HasNonce,
}

/// §2.6 steps 3-6 and 9 (the signature is checked before).
pub(crate) fn check(
    claims: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
    now: u64,
    skew: u64,
) -> Result<LogoutClaims, LogoutTokenError> {
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == issuer => {}
        Some(iss) => return Err(LogoutTokenError::WrongIssuer(iss.to_string())),
        None => return Err(LogoutTokenError::MissingClaim("iss")),
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => return Err(LogoutTokenError::MissingClaim("aud")),
    };
    if !audience_ok {
        return Err(LogoutTokenError::WrongAudience);
    }
    let iat = number(claims, "iat")
        .map_err(|_| LogoutTokenError::MissingClaim("iat"))?
        .ok_or(LogoutTokenError::MissingClaim("iat"))?;
    if iat > now.saturating_add(skew) || iat.saturating_add(MAX_AGE + skew) < now {
        return Err(LogoutTokenError::Stale);
    }
    if let Some(exp) = number(claims, "exp").map_err(|_| LogoutTokenError::MissingClaim("exp"))? {
        if now >= exp.saturating_add(skew) {
            return Err(LogoutTokenError::Expired);
        }
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or(LogoutTokenError::MissingClaim("jti"))?;
    let is_logout_event = claims
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|events| {
            events
                .get(BACKCHANNEL_LOGOUT_EVENT)
                .is_some_and(Value::is_object)
        });
    if !is_logout_event {
        return Err(LogoutTokenError::NotALogoutEvent);
    }
    let sid = claims
        .get("sid")
        .and_then(Value::as_str)
        .map(str::to_string);
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string);
    if sid.is_none() && sub.is_none() {
        return Err(LogoutTokenError::NoSubject);
    }
    if claims.contains_key("nonce") {
        return Err(LogoutTokenError::HasNonce);
    }
    Ok(LogoutClaims {
        sid,
        sub,
        jti: jti.to_string(),
        iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_900_000_000;

    fn claims(overrides: Value) -> Map<String, Value> {
        crate::test_support::overlay(
            json!({
                "iss": "https://idp.example", "aud": "app", "iat": NOW, "jti": "j-1",
                "sid": "s-1", "sub": "alice",
                "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
            }),
            &overrides,
        )
    }

    #[test]
    fn logout_token_table() {
        let ok = |sid: Option<&str>, sub: Option<&str>| {
            Ok(LogoutClaims {
                sid: sid.map(Into::into),
                sub: sub.map(Into::into),
                jti: "j-1".into(),
                iat: NOW,
            })
        };
        let cases: Vec<(Value, Result<LogoutClaims, LogoutTokenError>)> = vec![
            (json!({}), ok(Some("s-1"), Some("alice"))),
            (json!({"sub": null}), ok(Some("s-1"), None)),
            (json!({"sid": null}), ok(None, Some("alice"))),
            (
                json!({"sid": null, "sub": null}),
                Err(LogoutTokenError::NoSubject),
            ),
            (json!({"nonce": "n"}), Err(LogoutTokenError::HasNonce)),
            (
                json!({"events": null}),
                Err(LogoutTokenError::NotALogoutEvent),
            ),
            (
                json!({"events": {"http://other/event": {}}}),
                Err(LogoutTokenError::NotALogoutEvent),
            ),
            (
                json!({"aud": "other"}),
                Err(LogoutTokenError::WrongAudience),
            ),
            (
                json!({"iss": "https://evil"}),
                Err(LogoutTokenError::WrongIssuer("https://evil".into())),
            ),
            (
                json!({"jti": null}),
                Err(LogoutTokenError::MissingClaim("jti")),
            ),
            (json!({"iat": NOW + 3600}), Err(LogoutTokenError::Stale)),
            (json!({"iat": NOW - 3600}), Err(LogoutTokenError::Stale)),
            (json!({"exp": NOW - 120}), Err(LogoutTokenError::Expired)),
        ];
        for (overrides, expected) in cases {
            assert_eq!(
                check(
                    &claims(overrides.clone()),
                    "https://idp.example",
                    "app",
                    NOW,
                    60
                ),
                expected,
                "{overrides}"
            );
        }
    }
}
