//! API clients with bearer tokens (RFC 6750): a valid JWT from the provider for a configured
//! audience gets the identity headers without a cookie; anything else gets 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"`.

use http::StatusCode;
use serde_json::{Value, json};
use sessiongate::clock::Clock;

use crate::common::op::{self, Signing};
use crate::common::{self, Echo};
use crate::login::{World, world};

fn token(world: &World, overrides: Value, signing: Signing) -> String {
    let now = world.clock.now();
    let mut claims = json!({
        "iss": world.op.issuer(), "aud": "api://legacy", "sub": "reporting-job",
        "exp": now + 300, "iat": now, "email": "jobs@example.com",
    });
    op::overlay(&mut claims, &overrides);
    let current = world.op.with(|s| s.signing.clone());
    op::sign(&claims, &signing, &current)
}

async fn call(world: &World, authorization: &str) -> (StatusCode, http::HeaderMap, bytes::Bytes) {
    let request = http::Request::get(world.gateway.url("/api/orders"))
        .header("authorization", authorization)
        .header("x-forwarded-user", "forged")
        .body(common::full(""))
        .expect("request");
    common::send(&common::client(), request).await
}

const BEARER: &str = "[access.bearer]\naudiences = [\"api://legacy\"]\n";

#[tokio::test]
async fn a_valid_bearer_token_gets_the_identity_headers_without_a_cookie() {
    let world = world(BEARER).await;
    let (status, headers, body) = call(
        &world,
        &format!("Bearer {}", token(&world, json!({}), Signing::Normal)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !headers.contains_key("set-cookie"),
        "no session for an API client"
    );
    let echo = Echo::parse(&body);
    assert_eq!(echo.header("x-forwarded-user"), vec!["reporting-job"]);
    assert_eq!(echo.header("x-forwarded-email"), vec!["jobs@example.com"]);
    // The scheme is case-insensitive, and several audiences may include ours.
    let lower = format!(
        "bearer {}",
        token(
            &world,
            json!({"aud": ["other", "api://legacy"]}),
            Signing::Normal
        )
    );
    assert_eq!(call(&world, &lower).await.0, StatusCode::OK);
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn invalid_bearer_tokens_get_401_invalid_token() {
    let world = world(BEARER).await;
    let now = world.clock.now();
    let cases = vec![
        (
            "expired",
            token(&world, json!({"exp": now - 3600}), Signing::Normal),
        ),
        (
            "wrong audience",
            token(&world, json!({"aud": "api://other"}), Signing::Normal),
        ),
        (
            "wrong issuer",
            token(
                &world,
                json!({"iss": "https://evil.example"}),
                Signing::Normal,
            ),
        ),
        (
            "bad signature",
            token(&world, json!({}), Signing::ForeignKey),
        ),
        ("alg none", token(&world, json!({}), Signing::None)),
        (
            "HS256 with the public key",
            token(&world, json!({}), Signing::Hs256WithPublicKey),
        ),
        (
            "no sub",
            token(&world, json!({"sub": null}), Signing::Normal),
        ),
        ("not a JWT", "not-a-jwt".to_string()),
    ];
    for (name, token) in cases {
        let (status, headers, body) = call(&world, &format!("Bearer {token}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
        let challenge = headers["www-authenticate"].to_str().expect("ascii");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
            "{name}: {challenge}"
        );
        assert!(!String::from_utf8_lossy(&body).contains("forged"), "{name}");
    }
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn without_configured_audiences_bearer_tokens_are_not_accepted() {
    let world = world("").await;
    let (status, headers, _) = call(
        &world,
        &format!("Bearer {}", token(&world, json!({}), Signing::Normal)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    world.gateway.shutdown().await;
}
