//! Background token refresh: sessions outlive their tokens while the provider keeps its say.
//! The provider's tokens live 300 s and its clock is the gateway's manual clock.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::common::browser::Browser;
use crate::common::op::RefreshBehaviour;
use crate::common::{self, Echo};
use crate::login::{World, log_in, world};

/// Just inside the refresh window of a 300 s token (refresh_before_expiry is 60 s).
const ALMOST_EXPIRED: Duration = Duration::from_secs(250);

fn refreshes(world: &World) -> usize {
    world.op.refresh_calls.load(Ordering::SeqCst)
}

async fn user_seen(browser: &mut Browser, world: &World) -> (StatusCode, Vec<String>, Vec<String>) {
    let reply = browser.navigate(&world.gateway.url("/echo")).await;
    if reply.status != StatusCode::OK {
        return (reply.status, Vec::new(), Vec::new());
    }
    let echo = Echo::parse(&reply.body);
    (
        reply.status,
        echo.header("x-forwarded-user"),
        echo.header("x-forwarded-email"),
    )
}

#[tokio::test]
async fn activity_carries_a_session_through_five_token_lifetimes_with_one_refresh_each() {
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    for lifetime in 1..=5 {
        world.clock.advance(ALMOST_EXPIRED);
        for _ in 0..3 {
            let (status, user, _) = user_seen(&mut browser, &world).await;
            assert_eq!(status, StatusCode::OK, "lifetime {lifetime}");
            assert_eq!(user, vec!["alice"]);
        }
        assert_eq!(
            refreshes(&world),
            lifetime,
            "one refresh per token lifetime"
        );
    }
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn fifty_concurrent_requests_at_expiry_share_one_refresh() {
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    world
        .op
        .with(|s| s.refresh = RefreshBehaviour::Slow(Duration::from_millis(300)));
    world.clock.advance(ALMOST_EXPIRED);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let mut tab = browser.clone();
        let url = world.gateway.url("/echo");
        tasks.push(tokio::spawn(async move { tab.fetch(&url).await.status }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), StatusCode::OK);
    }
    assert_eq!(refreshes(&world), 1, "exactly one token-endpoint call");
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_late_request_with_the_old_cookie_reuses_the_rotation_instead_of_spending_the_old_token()
{
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    world.clock.advance(ALMOST_EXPIRED);
    // A request already in flight with the old cookie when the refresh happens.
    let mut late = browser.clone();
    let (status, _, _) = user_seen(&mut browser, &world).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(refreshes(&world), 1);
    let old = late.jar["sessiongate"].clone();
    assert_ne!(
        browser.jar["sessiongate"], old,
        "the refresh rewrote the cookie"
    );

    let (status, user, _) = user_seen(&mut late, &world).await;
    assert_eq!(status, StatusCode::OK, "the late request still works");
    assert_eq!(user, vec!["alice"]);
    assert_eq!(
        refreshes(&world),
        1,
        "the old refresh token was not spent again"
    );
    assert_ne!(
        late.jar["sessiongate"], old,
        "and it got the rotated session too"
    );
    // Both copies go on working on the rotated token.
    world.clock.advance(ALMOST_EXPIRED);
    assert_eq!(user_seen(&mut late, &world).await.0, StatusCode::OK);
    assert_eq!(user_seen(&mut browser, &world).await.0, StatusCode::OK);
    assert_eq!(refreshes(&world), 2);
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn invalid_grant_ends_the_session() {
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    world.op.with(|s| s.refresh = RefreshBehaviour::Revoked);
    world.clock.advance(ALMOST_EXPIRED);
    let mut api = browser.clone();
    let reply = browser.navigate(&world.gateway.url("/echo")).await;
    assert_eq!(
        reply.status,
        StatusCode::FOUND,
        "a navigation goes to log in again"
    );
    assert!(reply.location().starts_with(&world.op.issuer()));
    let reply = api.fetch(&world.gateway.url("/echo")).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "an API call gets 401"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_provider_that_is_down_or_slow_does_not_end_the_session() {
    let world =
        world("[oidc]\nrefresh_timeout = \"300ms\"\n[server]\nadmin_listen = \"127.0.0.1:0\"\n")
            .await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;

    world.op.with(|s| s.refresh = RefreshBehaviour::Unavailable);
    world.clock.advance(ALMOST_EXPIRED);
    let (status, user, _) = user_seen(&mut browser, &world).await;
    assert_eq!(
        (status, user),
        (StatusCode::OK, vec!["alice".to_string()]),
        "served with the current identity"
    );
    assert_eq!(refreshes(&world), 1);
    assert_eq!(user_seen(&mut browser, &world).await.0, StatusCode::OK);
    assert_eq!(
        refreshes(&world),
        1,
        "no retry before the backoff has passed"
    );
    let admin = world.gateway.admin.expect("admin listener");
    let (_, _, metrics) = common::get(&format!("http://{admin}/metrics")).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("sessiongate_refreshes_total{outcome=\"unavailable\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "sessiongate_requests_total{route=\"protected\",outcome=\"proxied\",status=\"2xx\"}"
        ),
        "{metrics}"
    );

    // Slow: the request does not wait past refresh_timeout.
    world
        .op
        .with(|s| s.refresh = RefreshBehaviour::Slow(Duration::from_secs(3)));
    world.clock.advance(Duration::from_secs(2));
    let started = tokio::time::Instant::now();
    assert_eq!(user_seen(&mut browser, &world).await.0, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(refreshes(&world), 2, "retried after the backoff");

    // The provider is back: the next retry succeeds.
    world.op.with(|s| s.refresh = RefreshBehaviour::Rotate);
    tokio::time::sleep(Duration::from_secs(3)).await; // let the slow refresh finish and settle
    world.clock.advance(Duration::from_secs(5));
    assert_eq!(user_seen(&mut browser, &world).await.0, StatusCode::OK);
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn max_stale_bounds_how_long_a_session_goes_on_without_refreshing() {
    let world = world("[session]\nmax_stale = \"5m\"\n").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    world.op.with(|s| s.refresh = RefreshBehaviour::Unavailable);
    world.clock.advance(Duration::from_secs(300 + 240));
    assert_eq!(
        user_seen(&mut browser, &world).await.0,
        StatusCode::OK,
        "4 min past expiry"
    );
    world.clock.advance(Duration::from_secs(120));
    assert_eq!(
        user_seen(&mut browser, &world).await.0,
        StatusCode::FOUND,
        "6 min past expiry"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_refreshed_id_token_for_another_subject_ends_the_session() {
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    world.op.with(|s| s.next_claims = json!({"sub": "mallory"}));
    world.clock.advance(ALMOST_EXPIRED);
    assert_eq!(user_seen(&mut browser, &world).await.0, StatusCode::FOUND);
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_changed_email_reaches_the_headers_after_the_refresh() {
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    assert_eq!(
        user_seen(&mut browser, &world).await.2,
        vec!["alice@example.com"]
    );
    world
        .op
        .with(|s| s.next_claims = json!({"email": "alice@new.example"}));
    world.clock.advance(ALMOST_EXPIRED);
    assert_eq!(
        user_seen(&mut browser, &world).await.2,
        vec!["alice@new.example"]
    );
    assert_eq!(
        user_seen(&mut browser, &world).await.2,
        vec!["alice@new.example"],
        "and it stays in the session"
    );
    let _ = common::full("");
    world.gateway.shutdown().await;
}

/// `on_token_expiry = "reauthenticate"` with a provider that issues no refresh tokens.
async fn reauthenticating_world() -> World {
    let world = world("[session]\non_token_expiry = \"reauthenticate\"\n").await;
    world.op.with(|s| s.issue_refresh_tokens = false);
    world
}

fn session_status(reply: &crate::common::browser::Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body).expect("session JSON")
}

#[tokio::test]
async fn without_a_refresh_token_expired_tokens_renew_silently_with_prompt_none() {
    let world = reauthenticating_world().await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    let before = session_status(&browser.fetch(&world.gateway.url("/oauth2/session")).await);
    world.clock.advance(Duration::from_secs(301));

    let xhr = browser.clone().fetch(&world.gateway.url("/echo")).await;
    assert_eq!(xhr.status, StatusCode::UNAUTHORIZED, "an XHR gets 401");

    let reply = browser.navigate(&world.gateway.url("/echo/deep?x=1")).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let authorize = url::Url::parse(&reply.location()).expect("authorization URL");
    assert!(
        authorize
            .query_pairs()
            .any(|(k, v)| k == "prompt" && v == "none"),
        "silent first"
    );
    let callback = crate::common::op::approve(authorize.as_str()).await;
    let done = browser.navigate(&callback).await;
    assert_eq!(done.location(), "/echo/deep?x=1");
    assert_eq!(user_seen(&mut browser, &world).await.0, StatusCode::OK);
    let after = session_status(&browser.fetch(&world.gateway.url("/oauth2/session")).await);
    assert_eq!(
        before["absolute_deadline"], after["absolute_deadline"],
        "a silent renewal does not move the absolute deadline"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn login_required_from_a_silent_attempt_falls_back_to_the_interactive_login() {
    let world = reauthenticating_world().await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    world.op.with(|s| s.silent_login_required = true);
    world.clock.advance(Duration::from_secs(301));

    let reply = browser.navigate(&world.gateway.url("/echo/deep")).await;
    let callback = crate::common::op::approve(&reply.location()).await;
    assert!(callback.contains("error=login_required"));
    let fallback = browser.navigate(&callback).await;
    assert_eq!(fallback.status, StatusCode::FOUND, "{}", fallback.text());
    let authorize = url::Url::parse(&fallback.location()).expect("authorization URL");
    assert!(
        !authorize.query_pairs().any(|(k, _)| k == "prompt"),
        "interactive this time"
    );
    let callback = crate::common::op::approve(authorize.as_str()).await;
    assert_eq!(
        browser.navigate(&callback).await.location(),
        "/echo/deep",
        "the return URL survived"
    );
    assert_eq!(user_seen(&mut browser, &world).await.0, StatusCode::OK);
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn ignore_keeps_a_session_without_refresh_token_past_token_expiry() {
    let world = world("").await;
    world.op.with(|s| s.issue_refresh_tokens = false);
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    world.clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(
        user_seen(&mut browser, &world).await.0,
        StatusCode::OK,
        "lives by its own deadlines"
    );
    assert_eq!(refreshes(&world), 0);
    world.gateway.shutdown().await;
}
