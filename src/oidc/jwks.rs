//! The provider's signing keys (RFC 7517), cached, refreshed periodically, and refetched when
//! a token names a key id we do not know — at most once per `jwks_min_refresh`, however many
//! requests carry unknown ids, so a flood of forged tokens cannot turn into a flood of
//! requests to the provider.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;
use url::Url;

use super::http::{HttpError, IdpClient};

pub(crate) struct Jwks {
    pub(crate) keys: RwLock<Arc<JwkSet>>,
    /// When a token with an unknown key id last caused a refetch; the lock also makes
    /// concurrent refetches queue behind one another instead of all going out. Periodic
    /// refreshes do not count: a key rotated just after one must still be found.
    pub(crate) refetched: tokio::sync::Mutex<Option<Instant>>,
    min_refresh: Duration,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("no key {kid:?} for {alg:?} in the provider's JWKS")]
    Unknown { kid: Option<String>, alg: Algorithm },
    #[error("the JWKS key {kid:?} cannot be used")]
    Unusable { kid: Option<String> },
    #[error("fetching the JWKS failed")]
    Fetch(#[from] HttpError),
}

/// Whether `jwk` can verify `alg`: same family (and curve), not marked for encryption, and
/// its own `alg`, when it states one, is `alg`.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return false;
    }
    if let Some(stated) = &jwk.common.key_algorithm {
        if stated.to_string() != format!("{alg:?}") {
            return false;
        }
    }
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512) => {
            true
        }
        (AlgorithmParameters::RSA(_), Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512) => {
            true
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        // Symmetric keys are never taken from a JWKS: HS256 is keyed by the client secret.
        _ => false,
    }
}

/// The key for a token: by `kid` when it has one, else the only key that fits.
fn select<'a>(set: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    let mut fitting = set.keys.iter().filter(|k| fits(k, alg));
    match kid {
        Some(kid) => fitting.find(|k| k.common.key_id.as_deref() == Some(kid)),
        None => match (fitting.next(), fitting.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        },
    }
}

impl Jwks {
    pub(crate) fn new(min_refresh: Duration) -> Self {
        Self {
            keys: RwLock::new(Arc::new(JwkSet { keys: Vec::new() })),
            refetched: tokio::sync::Mutex::new(None),
            min_refresh,
        }
    }

    fn current(&self) -> Arc<JwkSet> {
        self.keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn decoding_key(jwk: &Jwk) -> Result<DecodingKey, KeyError> {
        let unusable = || KeyError::Unusable {
            kid: jwk.common.key_id.clone(),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|_| unusable())?;
        // jsonwebtoken 12 cuts an Ed25519 key to its first 32 bytes without checking its
        // length, so a shorter `x` panicked in verification: only 32 bytes is a key.
        let is_okp = matches!(jwk.algorithm, AlgorithmParameters::OctetKeyPair(_));
        if is_okp && !key.try_get_as_bytes().is_ok_and(|x| x.len() == 32) {
            return Err(unusable());
        }
        Ok(key)
    }

    /// Fetches the set now (periodic refresh and startup).
    pub(crate) async fn refresh(&self, client: &IdpClient, uri: &Url) -> Result<(), HttpError> {
        let set: Result<JwkSet, HttpError> = client.get_json(uri).await;
        crate::ops::metrics::idp_fetch("jwks", set.is_ok());
        let set = set?;
        tracing::debug!(keys = set.keys.len(), "JWKS fetched");
        let set = Arc::new(set);
        match self.keys.write() {
            Ok(mut keys) => *keys = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(())
    }

    /// The key that verifies a token signed with `alg` under `kid`.
    pub(crate) async fn key(
        &self,
        client: &IdpClient,
        uri: &Url,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, KeyError> {
        if let Some(jwk) = select(&self.current(), kid, alg) {
            return Self::decoding_key(jwk);
        }
        let mut refetched = self.refetched.lock().await;
        // Another request may have refetched while this one waited.
        if let Some(jwk) = select(&self.current(), kid, alg) {
            return Self::decoding_key(jwk);
        }
        let due = refetched.is_none_or(|at| at.elapsed() >= self.min_refresh);
        if due {
            *refetched = Some(Instant::now());
            self.refresh(client, uri).await?;
            if let Some(jwk) = select(&self.current(), kid, alg) {
                return Self::decoding_key(jwk);
            }
        }
        Err(KeyError::Unknown {
            kid: kid.map(str::to_string),
            alg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(json: serde_json::Value) -> JwkSet {
        serde_json::from_value(json).expect("JWKS")
    }

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn keys_are_chosen_by_kid_and_family() {
        let keys = set(serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": N, "e": "AQAB"},
            {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"}
        ]}));
        assert!(select(&keys, Some("r1"), Algorithm::RS256).is_some());
        assert!(
            select(&keys, Some("r1"), Algorithm::RS512).is_none(),
            "the key states RS256"
        );
        assert!(select(&keys, Some("r1"), Algorithm::ES256).is_none());
        assert!(
            select(&keys, Some("enc"), Algorithm::RS256).is_none(),
            "encryption keys never verify"
        );
        assert!(
            select(&keys, Some("h1"), Algorithm::HS256).is_none(),
            "symmetric keys never come from a JWKS"
        );
        assert!(
            select(&keys, None, Algorithm::RS256).is_some(),
            "one fitting key without kid"
        );
        assert!(select(&keys, Some("nope"), Algorithm::RS256).is_none());
    }

    /// Found by `fuzz/fuzz_targets/jwt_jwks.rs`: an Ed25519 key of 18 bytes was accepted,
    /// and verifying any EdDSA token naming it panicked inside jsonwebtoken.
    #[test]
    fn a_short_ed25519_key_is_unusable() {
        let keys: JwkSet = serde_json::from_str(
            r#"{
  "keys": [
    {
      "alg": "EdDSA",
      "crv": "Ed25519",
      "kid": "ed-1",
      "kty": "OKP",
      "x": "11qYAYKxCrfVS_7TyWQHOgAA"
    }
  ]
}"#,
        )
        .expect("JWKS");
        let jwk = select(&keys, Some("ed-1"), Algorithm::EdDSA).expect("the key fits");
        assert!(matches!(
            Jwks::decoding_key(jwk),
            Err(KeyError::Unusable { kid: Some(kid) }) if kid == "ed-1"
        ));

        // RFC 8037 A.2's public key: 32 bytes, usable.
        let good = set(serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "kid": "ed-1",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        }]}));
        let jwk = select(&good, Some("ed-1"), Algorithm::EdDSA).expect("the key fits");
        assert!(Jwks::decoding_key(jwk).is_ok());
    }
}
