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

#[tokio::test]
async fn a_bearer_token_and_a_cookie_session_of_the_same_user_give_the_same_identity_headers() {
    let world = world(BEARER).await;
    let mut browser = crate::common::browser::Browser::new();
    crate::login::log_in(&mut browser, &world, "/").await;
    let by_cookie = Echo::parse(
        &browser
            .navigate(&world.gateway.url("/api/orders"))
            .await
            .body,
    );
    let user = json!({
        "sub": "alice", "email": "alice@example.com", "preferred_username": "alice",
        "groups": ["staff", "admins"],
    });
    let bearer = format!("Bearer {}", token(&world, user, Signing::Normal));
    let (status, _, body) = call(&world, &bearer).await;
    assert_eq!(status, StatusCode::OK);
    let by_bearer = Echo::parse(&body);
    let identity = |echo: &Echo| {
        let mut headers: Vec<(String, Vec<String>)> = echo
            .header_names()
            .into_iter()
            .filter(|name| {
                name.starts_with("x-forwarded-")
                    && !["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]
                        .contains(&name.as_str())
            })
            .map(|name| (name.clone(), echo.header(&name)))
            .collect();
        headers.sort();
        headers
    };
    assert!(
        identity(&by_cookie).len() >= 4,
        "user, email, username and groups: {:?}",
        identity(&by_cookie)
    );
    assert_eq!(identity(&by_bearer), identity(&by_cookie));
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn opaque_tokens_are_introspected_with_a_short_cache() {
    let world = world(&format!(
        "{BEARER}introspection = true\nintrospection_cache = \"60s\"\n"
    ))
    .await;
    let now = world.clock.now();
    world.op.with(|s| {
        s.introspection.insert(
            "opaque-active".into(),
            json!({"active": true, "sub": "job-7", "email": "job7@example.com",
                   "aud": "api://legacy", "exp": now + 3600}),
        );
        s.introspection.insert(
            "opaque-other-api".into(),
            json!({"active": true, "sub": "job-8", "aud": "api://other"}),
        );
    });
    let calls = || world.op.with(|s| s.introspection_calls);

    let (status, _, body) = call(&world, "Bearer opaque-active").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Echo::parse(&body).header("x-forwarded-user"), vec!["job-7"]);
    assert_eq!(call(&world, "Bearer opaque-active").await.0, StatusCode::OK);
    assert_eq!(calls(), 1, "the second request is answered from the cache");

    let (status, headers, _) = call(&world, "Bearer opaque-revoked").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("not active"),
        "{headers:?}"
    );
    assert_eq!(
        call(&world, "Bearer opaque-other-api").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(calls(), 3);

    // A JWT is still checked locally.
    let jwt = format!("Bearer {}", token(&world, json!({}), Signing::Normal));
    assert_eq!(call(&world, &jwt).await.0, StatusCode::OK);
    assert_eq!(calls(), 3);

    // Revoked at the provider: believed once the cached answer is older than the cache time.
    world.op.with(|s| {
        s.introspection.remove("opaque-active");
    });
    assert_eq!(call(&world, "Bearer opaque-active").await.0, StatusCode::OK);
    world.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(
        call(&world, "Bearer opaque-active").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(calls(), 4);

    // A provider that cannot be asked is no reason to call the client's token invalid.
    world
        .op
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        call(&world, "Bearer opaque-new").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    world.gateway.shutdown().await;
}

/// An API client that calls a few times a day: after two hours away its old token gets a
/// clear 401, and its new token is served at once, with nothing fetched on the way (the
/// provider's keys are kept warm by the background refresh, not fetched on demand).
/// `cargo test --test gateway idle_api_client -- --nocapture` prints the latencies.
#[tokio::test]
async fn an_idle_api_client_gets_a_clear_401_then_a_fast_first_request() {
    let world = world(BEARER).await;
    let jwks_before = world.op.jwks_hits.load(std::sync::atomic::Ordering::SeqCst);
    let first = format!("Bearer {}", token(&world, json!({}), Signing::Normal));
    let started = tokio::time::Instant::now();
    assert_eq!(call(&world, &first).await.0, StatusCode::OK);
    let after_start = started.elapsed();

    world
        .clock
        .advance(std::time::Duration::from_secs(2 * 3600));
    let (status, headers, _) = call(&world, &first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("invalid_token") && challenge.contains("expired"),
        "{challenge}"
    );
    let fresh = format!("Bearer {}", token(&world, json!({}), Signing::Normal));
    let started = tokio::time::Instant::now();
    assert_eq!(call(&world, &fresh).await.0, StatusCode::OK);
    let after_idle = started.elapsed();
    assert_eq!(
        world.op.jwks_hits.load(std::sync::atomic::Ordering::SeqCst),
        jwks_before,
        "no key fetch on an API client's request"
    );
    eprintln!(
        "idle API client: first request after start {after_start:?}, first after 2 h idle {after_idle:?}"
    );
    world.gateway.shutdown().await;
}
