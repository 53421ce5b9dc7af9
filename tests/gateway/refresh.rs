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
    let world = world("[oidc]\nrefresh_timeout = \"300ms\"\n").await;
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
