//! ID token validation, OpenID Connect Core 1.0 §3.1.3.7 (and §12.2 for refreshed tokens).
//!
//! jsonwebtoken verifies the signature against the algorithm we allow; every claim is checked
//! here, against a `now` the caller passes in, so tests choose the time and each failure has
//! its own reason for the log line.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// What a token must match.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce sent in the authorization request; `None` for refreshed tokens (§12.2).
    pub nonce: Option<&'a str>,
    /// Unix seconds.
    pub now: u64,
    /// Leeway for `exp`, `iat` and `nbf`, in seconds.
    pub skew: u64,
}

/// Why a token was refused. The names are the reasons logged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("the token is not a signed JWT")]
    Malformed,
    #[error("algorithm {0:?} is not accepted")]
    AlgorithmNotAllowed(String),
    #[error("no key to verify the token: {0}")]
    NoKey(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("issuer {0:?} is not the provider's")]
    WrongIssuer(String),
    #[error("the token is not issued to this client")]
    WrongAudience,
    #[error("several audiences and no azp naming this client")]
    MissingAzp,
    #[error("azp {0:?} is not this client")]
    WrongAzp(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is issued in the future")]
    IssuedInFuture,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the claim {0} is missing or malformed")]
    MissingClaim(&'static str),
    #[error("the nonce does not match the login's")]
    NonceMismatch,
}

/// The algorithm named in the token's header, as written (`none` included), read before
/// anything trusts the token.
pub fn header_alg_and_kid(token: &str) -> Result<(String, Option<String>), IdTokenError> {
    let header = token.split('.').next().ok_or(IdTokenError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| IdTokenError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| IdTokenError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(IdTokenError::Malformed)?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((alg.to_string(), kid))
}

/// Checks the signature with `key` (for `alg`, already allow-listed) and then the claims.
pub fn validate(
    token: &str,
    alg: Algorithm,
    key: &DecodingKey,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, IdTokenError> {
    let claims = verify(token, alg, key)?;
    check(&claims, expected)?;
    Ok(claims)
}

/// Checks only the signature, and returns the claims for the caller to check.
pub(crate) fn verify(
    token: &str,
    alg: Algorithm,
    key: &DecodingKey,
) -> Result<Map<String, Value>, IdTokenError> {
    let mut validation = Validation::new(alg);
    // Claims are checked below against the injected clock, not the library's system time.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => IdTokenError::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                IdTokenError::AlgorithmNotAllowed(format!("{alg:?}"))
            }
            _ => IdTokenError::Malformed,
        })?
        .claims;
    Ok(claims)
}

pub(crate) fn number(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, IdTokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or(IdTokenError::MissingClaim(name)),
    }
}

/// Checks an ID token's claims (Core §3.1.3.7 steps 2-11).
pub(crate) fn check(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
) -> Result<(), IdTokenError> {
    // (2) iss must match exactly.
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == expected.issuer => {}
        Some(iss) => return Err(IdTokenError::WrongIssuer(iss.to_string())),
        None => return Err(IdTokenError::MissingClaim("iss")),
    }
    // (3) aud must contain our client id; (4)-(5) azp.
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => return Err(IdTokenError::MissingClaim("aud")),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(IdTokenError::WrongAudience);
    }
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != expected.client_id => {
            return Err(IdTokenError::WrongAzp(azp.to_string()));
        }
        None if audiences.len() > 1 => return Err(IdTokenError::MissingAzp),
        _ => {}
    }
    // (9)-(10) exp and iat, with leeway for clock skew.
    let exp = number(claims, "exp")?.ok_or(IdTokenError::MissingClaim("exp"))?;
    if expected.now >= exp.saturating_add(expected.skew) {
        return Err(IdTokenError::Expired);
    }
    let iat = number(claims, "iat")?.ok_or(IdTokenError::MissingClaim("iat"))?;
    if iat > expected.now.saturating_add(expected.skew) {
        return Err(IdTokenError::IssuedInFuture);
    }
    if let Some(nbf) = number(claims, "nbf")? {
        if nbf > expected.now.saturating_add(expected.skew) {
            return Err(IdTokenError::NotYetValid);
        }
    }
    // (11) nonce, when one was sent.
    if let Some(nonce) = expected.nonce {
        match claims.get("nonce").and_then(Value::as_str) {
            Some(found) if crate::secret::constant_time_eq(found.as_bytes(), nonce.as_bytes()) => {}
            Some(_) => return Err(IdTokenError::NonceMismatch),
            None => return Err(IdTokenError::MissingClaim("nonce")),
        }
    }
    // §2: sub is REQUIRED, and the session is keyed by it.
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => Ok(()),
        _ => Err(IdTokenError::MissingClaim("sub")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn expected(nonce: Option<&str>) -> Expected<'_> {
        Expected {
            issuer: "https://idp.example",
            client_id: "app",
            nonce,
            now: NOW,
            skew: 60,
        }
    }

    fn claims(overrides: Value) -> Map<String, Value> {
        crate::test_support::overlay(
            json!({
                "iss": "https://idp.example", "aud": "app", "sub": "user-1",
                "exp": NOW + 300, "iat": NOW - 10, "nonce": "n-1"
            }),
            &overrides,
        )
    }

    #[test]
    fn claim_checks_table() {
        let cases: Vec<(Value, Result<(), IdTokenError>)> = vec![
            (json!({}), Ok(())),
            (
                json!({"iss": "https://evil.example"}),
                Err(IdTokenError::WrongIssuer("https://evil.example".into())),
            ),
            (json!({"iss": null}), Err(IdTokenError::MissingClaim("iss"))),
            (json!({"aud": "other"}), Err(IdTokenError::WrongAudience)),
            (
                json!({"aud": ["other", "app"]}),
                Err(IdTokenError::MissingAzp),
            ),
            (json!({"aud": ["other", "app"], "azp": "app"}), Ok(())),
            (
                json!({"aud": ["other", "app"], "azp": "other"}),
                Err(IdTokenError::WrongAzp("other".into())),
            ),
            (json!({"exp": NOW - 61}), Err(IdTokenError::Expired)),
            (json!({"exp": NOW - 30}), Ok(())),
            (json!({"exp": null}), Err(IdTokenError::MissingClaim("exp"))),
            (
                json!({"exp": "soon"}),
                Err(IdTokenError::MissingClaim("exp")),
            ),
            (
                json!({"iat": NOW + 3600}),
                Err(IdTokenError::IssuedInFuture),
            ),
            (json!({"iat": null}), Err(IdTokenError::MissingClaim("iat"))),
            (json!({"nbf": NOW + 3600}), Err(IdTokenError::NotYetValid)),
            (json!({"nonce": "n-2"}), Err(IdTokenError::NonceMismatch)),
            (
                json!({"nonce": null}),
                Err(IdTokenError::MissingClaim("nonce")),
            ),
            (json!({"sub": null}), Err(IdTokenError::MissingClaim("sub"))),
            (json!({"sub": ""}), Err(IdTokenError::MissingClaim("sub"))),
        ];
        for (overrides, result) in cases {
            assert_eq!(
                check(&claims(overrides.clone()), &expected(Some("n-1"))),
                result,
                "{overrides}"
            );
        }
    }

    #[test]
    fn refreshed_tokens_need_no_nonce() {
        assert_eq!(
            check(&claims(json!({"nonce": null})), &expected(None)),
            Ok(())
        );
    }

    #[test]
    fn headers_are_read_before_anything_is_trusted() {
        let header =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k"}"#);
        assert_eq!(
            header_alg_and_kid(&format!("{header}.e30.")),
            Ok(("none".into(), Some("k".into())))
        );
        assert_eq!(header_alg_and_kid("garbage"), Err(IdTokenError::Malformed));
        assert_eq!(header_alg_and_kid(""), Err(IdTokenError::Malformed));
    }
}
