//! The signed identity assertion: a short-lived JWT the gateway signs for each forwarded
//! request (`headers.assertion`), so an application that can verify a JWT does not have to
//! trust plain headers at all — a request that reached it some other way carries none.
//!
//! The keys are Ed25519 (`EdDSA`), derived from `session.secrets` with HKDF under a label of
//! their own: every replica signs with the same key, rotating the secrets rotates it, and the
//! public halves of all of them are published at `/oauth2/jwks`, so a verifier keeps
//! accepting the previous key while the new one takes over.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey};
use hkdf::Hkdf;
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::secret::KeyMaterial;

struct Key {
    kid: String,
    signing: SigningKey,
}

impl Key {
    fn derive(secret: &KeyMaterial) -> Self {
        let mut seed = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"sessiongate"), secret.expose())
            .expand(b"sessiongate/v1/assertion-key", &mut seed)
            .expect("HKDF-SHA256 can expand 32 bytes");
        let signing = SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12]);
        Self { kid, signing }
    }
}

pub(crate) struct Assertion {
    header: HeaderName,
    issuer: String,
    audience: String,
    lifetime: u64,
    groups_claim: String,
    /// The first signs; all are published.
    keys: Vec<Key>,
}

/// The claims an assertion carries besides `sub`, when the user has them.
pub(crate) const CLAIMS: &[&str] = &["email", "preferred_username", "name"];

impl Assertion {
    pub(crate) fn new(
        header: HeaderName,
        issuer: String,
        audience: String,
        lifetime: std::time::Duration,
        groups_claim: String,
        secrets: &[KeyMaterial],
    ) -> Self {
        Self {
            header,
            issuer,
            audience,
            lifetime: lifetime.as_secs(),
            groups_claim,
            keys: secrets.iter().map(Key::derive).collect(),
        }
    }

    pub(crate) fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The assertion for `subject`, whose other claims `get` looks up.
    pub(crate) fn sign<'c>(
        &self,
        subject: &str,
        get: impl Fn(&str) -> Option<&'c Value>,
        now: u64,
    ) -> Option<HeaderValue> {
        let key = self.keys.first()?;
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("aud".into(), json!(self.audience));
        claims.insert("sub".into(), json!(subject));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now.saturating_add(self.lifetime)));
        for name in CLAIMS {
            if let Some(value) = get(name) {
                claims.insert((*name).into(), value.clone());
            }
        }
        if let Some(groups) = super::authorize::claim_at(&get, &self.groups_claim) {
            claims.insert("groups".into(), groups.clone());
        }
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
        );
        let signature = key.signing.sign(signing_input.as_bytes());
        let token = format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        );
        HeaderValue::from_str(&token).ok()
    }

    /// The public keys as a JWK Set (RFC 7517, OKP keys per RFC 8037).
    pub(crate) fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|key| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(key.signing.verifying_key().to_bytes()),
                    "kid": key.kid,
                    "use": "sig",
                    "alg": "EdDSA",
                })
            })
            .collect();
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assertion(secrets: &[u8]) -> Assertion {
        let secrets: Vec<KeyMaterial> = secrets
            .iter()
            .map(|&b| KeyMaterial::new(vec![b; 32]).expect("32 bytes"))
            .collect();
        Assertion::new(
            HeaderName::from_static("x-sessiongate-assertion"),
            "https://app.example.com".into(),
            "http://127.0.0.1:8080".into(),
            std::time::Duration::from_secs(60),
            "realm_access.roles".into(),
            &secrets,
        )
    }

    #[test]
    fn an_assertion_verifies_with_the_published_key_and_carries_the_identity() {
        let assertion = assertion(&[1, 2]);
        let claims = json!({"email": "alice@example.com", "realm_access": {"roles": ["admin"]}});
        let token = assertion
            .sign("alice", |name| claims.get(name), 1_900_000_000)
            .expect("a header value");
        let jwks = assertion.jwks();
        assert_eq!(
            jwks["keys"].as_array().map(Vec::len),
            Some(2),
            "every secret's key"
        );
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(jwks["keys"][0].clone()).expect("a JWK");
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("a key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_audience(&["http://127.0.0.1:8080"]);
        validation.set_issuer(&["https://app.example.com"]);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<Value>(token.to_str().unwrap(), &key, &validation)
            .expect("verifies");
        assert_eq!(decoded.claims["sub"], "alice");
        assert_eq!(decoded.claims["email"], "alice@example.com");
        assert_eq!(decoded.claims["groups"], json!(["admin"]));
        assert_eq!(decoded.claims["exp"], 1_900_000_060);
        assert_eq!(
            decoded.header.kid.as_deref(),
            jwks["keys"][0]["kid"].as_str()
        );

        let other = jsonwebtoken::DecodingKey::from_jwk(
            &serde_json::from_value(jwks["keys"][1].clone()).expect("a JWK"),
        )
        .expect("a key");
        assert!(
            jsonwebtoken::decode::<Value>(token.to_str().unwrap(), &other, &validation).is_err(),
            "only the first key signs"
        );
    }

    #[test]
    fn replicas_with_the_same_secrets_sign_with_the_same_key() {
        assert_eq!(assertion(&[7]).jwks(), assertion(&[7]).jwks());
        assert_ne!(assertion(&[7]).jwks(), assertion(&[8]).jwks());
    }
}
