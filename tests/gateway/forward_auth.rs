//! Forward-auth at /oauth2/auth for proxies that stay in front (nginx auth_request, Traefik
//! forwardAuth): 202 with identity headers, 401 otherwise; the forwarded URI is believed only
//! from trusted proxies.

use http::StatusCode;

use crate::common::browser::Browser;
use crate::common::{self, full};
use crate::login::{log_in, world};

#[tokio::test]
async fn a_session_gets_202_with_identity_headers_and_nobody_gets_401() {
    let world = world("[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n").await;
    let mut browser = Browser::new();
    let anonymous = browser
        .request(
            "GET",
            &world.gateway.url("/oauth2/auth"),
            &[("x-forwarded-uri", "/private")],
            full(""),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let public = browser
        .request(
            "GET",
            &world.gateway.url("/oauth2/auth"),
            &[("x-forwarded-uri", "/static/app.js?v=1")],
            full(""),
        )
        .await;
    assert_eq!(
        public.status,
        StatusCode::ACCEPTED,
        "a public path needs no session"
    );

    log_in(&mut browser, &world, "/").await;
    let reply = browser
        .request(
            "GET",
            &world.gateway.url("/oauth2/auth"),
            &[
                ("x-forwarded-uri", "/private"),
                ("x-forwarded-user", "forged"),
            ],
            full(""),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.headers["x-forwarded-user"], "alice");
    assert_eq!(reply.headers["x-forwarded-groups"], "staff,admins");
    let ambiguous = browser
        .request(
            "GET",
            &world.gateway.url("/oauth2/auth"),
            &[("x-forwarded-uri", "/static/../admin")],
            full(""),
        )
        .await;
    assert_eq!(ambiguous.status, StatusCode::BAD_REQUEST);
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_spoofed_forwarded_uri_from_an_untrusted_peer_cannot_pick_a_public_path() {
    let world = world("").await;
    let reply = Browser::new()
        .request(
            "GET",
            &world.gateway.url("/oauth2/auth"),
            &[("x-forwarded-uri", "/static/app.js")],
            full(""),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = common::get(&world.gateway.url("/oauth2/auth")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn per_path_rules_apply_to_the_forwarded_path_and_method() {
    let world = world(
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n\
         [[access.rule]]\nname = \"read\"\npath = \"/reports/\"\nmethods = [\"GET\"]\nallow = \"authenticated\"\n\
         [[access.rule]]\nname = \"write\"\npath = \"/reports/\"\nallowed_groups = [\"finance\"]\n\
         [[access.rule]]\npath = \"/open/\"\nallow = \"public\"\n",
    )
    .await;
    let mut browser = Browser::new();
    let open = browser
        .request(
            "GET",
            &world.gateway.url("/oauth2/auth"),
            &[("x-forwarded-uri", "/open/page")],
            full(""),
        )
        .await;
    assert_eq!(open.status, StatusCode::ACCEPTED, "public by rule");
    log_in(&mut browser, &world, "/").await;
    let mut ask = async |method: &str| {
        browser
            .request(
                "GET",
                &world.gateway.url("/oauth2/auth"),
                &[
                    ("x-forwarded-uri", "/reports/q1"),
                    ("x-forwarded-method", method),
                ],
                full(""),
            )
            .await
            .status
    };
    assert_eq!(ask("GET").await, StatusCode::ACCEPTED);
    assert_eq!(
        ask("POST").await,
        StatusCode::FORBIDDEN,
        "alice is not in finance"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn with_login_redirect_a_navigation_is_sent_to_log_in_and_comes_back() {
    let world = world("[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n").await;
    let mut browser = Browser::new();
    let auth = world.gateway.url("/oauth2/auth?login=redirect");
    let forwarded = [
        ("x-forwarded-uri", "/reports/q1?year=2026"),
        ("x-forwarded-method", "GET"),
    ];
    let api = browser.request("GET", &auth, &forwarded, full("")).await;
    assert_eq!(
        api.status,
        StatusCode::UNAUTHORIZED,
        "not a navigation: 401"
    );
    let mut navigation = forwarded.to_vec();
    navigation.push(("accept", "text/html"));
    let start = browser.request("GET", &auth, &navigation, full("")).await;
    assert_eq!(start.status, StatusCode::FOUND);
    assert!(
        start.location().starts_with(&world.op.issuer()),
        "{}",
        start.location()
    );
    let callback = crate::common::op::approve(&start.location()).await;
    let landed = browser.navigate(&callback).await;
    assert_eq!(landed.location(), "/reports/q1?year=2026");
    let allowed = browser.request("GET", &auth, &navigation, full("")).await;
    assert_eq!(allowed.status, StatusCode::ACCEPTED);
    world.gateway.shutdown().await;
}
