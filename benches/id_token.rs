//! ID token validation per login (and, later, per refresh): the signature with each key
//! family the providers in the fixtures use, and the claim checks, next to a baseline
//! measured in the same run — decoding the same token's payload without verifying anything —
//! so figures read as ratios.
//!
//! `cargo bench --bench id_token`

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Map, Value, json};
use sessiongate::oidc::id_token::{self, Expected};

const NOW: u64 = 1_900_000_000;

fn key(file: &str, alg: Algorithm) -> (EncodingKey, DecodingKey) {
    let pem = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/keys")
            .join(file),
    )
    .expect("test key");
    let encoding = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .expect("key");
    let jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
    let decoding = DecodingKey::from_jwk(&jwk).expect("decoding key");
    (encoding, decoding)
}

/// A token shaped like Keycloak's: the usual claims and a few groups.
fn token(alg: Algorithm, encoding: &EncodingKey) -> String {
    let claims = json!({
        "iss": "https://idp.example/realms/main", "aud": "legacy-app", "azp": "legacy-app",
        "sub": "3f1c2d4e-5a6b-7c8d-9e0f-112233445566", "exp": NOW + 300, "iat": NOW, "auth_time": NOW,
        "nonce": "n-0S6_WzA2Mj", "sid": "a1b2c3d4-e5f6", "email": "alice@example.com",
        "preferred_username": "alice", "name": "Alice Example", "groups": ["staff", "admins", "finance"],
    });
    let mut header = Header::new(alg);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(&header, &claims, encoding).expect("sign")
}

fn expected() -> Expected<'static> {
    Expected {
        issuer: "https://idp.example/realms/main",
        client_id: "legacy-app",
        nonce: Some("n-0S6_WzA2Mj"),
        now: NOW,
        skew: 60,
    }
}

/// What reading the claims costs without any check: split, base64url-decode, parse JSON.
fn unverified_claims(token: &str) -> Map<String, Value> {
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json")
}

fn id_token(c: &mut Criterion) {
    let mut group = c.benchmark_group("id_token");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (name, file, alg) in [
        ("RS256", "rsa-1.pem", Algorithm::RS256),
        ("ES256", "ec-1.pem", Algorithm::ES256),
    ] {
        let (encoding, decoding) = key(file, alg);
        let token = token(alg, &encoding);
        assert!(
            id_token::validate(&token, alg, &decoding, &expected()).is_ok(),
            "the bench token is valid"
        );
        group.bench_function(
            format!("baseline: decode claims unverified ({name} token)"),
            |b| b.iter(|| unverified_claims(black_box(&token))),
        );
        group.bench_function(format!("validate {name}"), |b| {
            b.iter(|| id_token::validate(black_box(&token), alg, &decoding, &expected()))
        });
    }
    group.finish();
}

criterion_group!(benches, id_token);
criterion_main!(benches);
