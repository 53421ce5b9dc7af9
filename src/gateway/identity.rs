//! Identity-header hygiene: no client may send a header the gateway could assert.
//!
//! The application trusts these headers because only the gateway sets them, so every
//! incoming copy is removed before anything else looks at the request, on every path.
//! CGI, PHP and IIS map `X-Forwarded-User` and `X_Forwarded_User` to the same variable,
//! so both spellings are removed (oauth2-proxy's CVE-2025-64484 was exactly this).

use http::HeaderMap;
use http::header::HeaderName;

use crate::config::HeadersConfig;

/// Header names removed from every incoming request, besides the configured ones.
pub(crate) const ALWAYS_STRIPPED: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-access-token",
    "x-remote-user",
    "remote-user",
];

/// The names to strip, lower case with `_` folded to `-`.
#[derive(Debug, Clone)]
pub(crate) struct IdentityHeaders {
    folded: Vec<String>,
}

/// `X_Forwarded_User` and `x-forwarded-user` fold to the same name.
fn fold(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Compares a received (already lower-case) name with a folded one without allocating.
fn same_folded(received: &str, folded: &str) -> bool {
    received.len() == folded.len()
        && received
            .bytes()
            .zip(folded.bytes())
            .all(|(r, f)| r == f || (r == b'_' && f == b'-'))
}

impl IdentityHeaders {
    pub(crate) fn new(config: &HeadersConfig) -> Self {
        let mut folded: Vec<String> = ALWAYS_STRIPPED.iter().map(|n| fold(n)).collect();
        let configured = config
            .claims
            .iter()
            .map(|(name, _)| name)
            .chain(&config.strip)
            .chain(&config.assertion);
        folded.extend(configured.map(|name| fold(name.as_str())));
        folded.sort();
        folded.dedup();
        Self { folded }
    }

    /// Whether a received header name is one the gateway asserts.
    pub(crate) fn is_identity(&self, name: &HeaderName) -> bool {
        let name = name.as_str();
        self.folded.iter().any(|f| same_folded(name, f))
    }

    /// Removes every value of every identity header, in any spelling. Returns how many
    /// names were removed.
    pub(crate) fn strip(&self, headers: &mut HeaderMap) -> usize {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| self.is_identity(name))
            .cloned()
            .collect();
        for name in &doomed {
            headers.remove(name);
        }
        doomed.len()
    }
}

/// The identity headers for a subject whose claims `get` looks up (a session's, or a
/// bearer token's): one per configured claim the user has. Arrays are joined with `,`; a
/// missing claim leaves its header out; a value that cannot be a header (control
/// characters) is left out and logged, never sent mangled.
pub(crate) fn assert_claims<'c>(
    subject: &str,
    get: impl Fn(&str) -> Option<&'c serde_json::Value>,
    claims: &[(HeaderName, String)],
) -> HeaderMap {
    use serde_json::Value;
    let mut headers = HeaderMap::new();
    for (header, claim) in claims {
        let value = if claim == "sub" {
            Some(subject.to_string())
        } else {
            match get(claim) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                Some(Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            }
        };
        let Some(value) = value else { continue };
        match http::HeaderValue::from_bytes(value.as_bytes()) {
            Ok(value) => {
                headers.insert(header.clone(), value);
            }
            Err(_) => {
                tracing::warn!(header = %header, claim, "claim value cannot be sent as a header")
            }
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn identity(claims: &[&str], strip: &[&str]) -> IdentityHeaders {
        let name = |n: &&str| HeaderName::from_bytes(n.as_bytes()).expect("valid name");
        IdentityHeaders::new(&HeadersConfig {
            claims: claims
                .iter()
                .map(|n| (name(n), "sub".to_string()))
                .collect(),
            strip: strip.iter().map(name).collect(),
            assertion: None,
            assertion_audience: None,
            assertion_lifetime: std::time::Duration::from_secs(60),
        })
    }

    #[test]
    fn every_spelling_and_every_duplicate_goes() {
        let ids = identity(&["X-App-User"], &["X-Legacy-Role"]);
        let mut headers = HeaderMap::new();
        for name in [
            "x-forwarded-user",
            "x_forwarded_user",
            "x-forwarded_user",
            "x-app-user",
            "x_app_user",
            "x-legacy-role",
            "remote_user",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("valid name");
            headers.append(name.clone(), HeaderValue::from_static("attacker"));
            headers.append(name, HeaderValue::from_static("attacker-again"));
        }
        headers.append("accept", HeaderValue::from_static("text/html"));
        headers.append("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        assert_eq!(ids.strip(&mut headers), 7);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["accept", "x-forwarded-for"]);
    }

    #[test]
    fn identity_headers_come_from_the_session_claims() {
        use crate::clock::SeededRandom;
        use crate::session::model::Session;
        let mut session = Session::start(&SeededRandom::new(1), "user-1".into(), 0);
        session
            .claims
            .insert("email".into(), serde_json::json!("a@example.com"));
        session
            .claims
            .insert("groups".into(), serde_json::json!(["staff", "admins"]));
        session.claims.insert("level".into(), serde_json::json!(3));
        session
            .claims
            .insert("evil".into(), serde_json::json!("x\r\nSet-Cookie: y=1"));
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).expect("valid");
        let claims = [
            (name("x-user"), "sub".to_string()),
            (name("x-email"), "email".to_string()),
            (name("x-groups"), "groups".to_string()),
            (name("x-level"), "level".to_string()),
            (name("x-missing"), "nickname".to_string()),
            (name("x-evil"), "evil".to_string()),
        ];
        let headers = assert_claims(&session.subject, |name| session.claims.get(name), &claims);
        assert_eq!(headers["x-user"], "user-1");
        assert_eq!(headers["x-email"], "a@example.com");
        assert_eq!(headers["x-groups"], "staff,admins");
        assert_eq!(headers["x-level"], "3");
        assert!(
            !headers.contains_key("x-missing"),
            "a missing claim leaves its header out"
        );
        assert!(
            !headers.contains_key("x-evil"),
            "a value with CR/LF is never sent"
        );
    }

    #[test]
    fn similar_names_survive() {
        let ids = identity(&[], &[]);
        for name in [
            "x-forwarded-users",
            "x-forwarded-use",
            "x-remote-user2",
            "remote-user-agent",
        ] {
            assert!(
                !ids.is_identity(&HeaderName::from_bytes(name.as_bytes()).expect("valid")),
                "{name}"
            );
        }
    }
}
