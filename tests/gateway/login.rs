//! Logging in through a real (in-process) OpenID Provider, over real sockets: the
//! authorization request, the callback's checks, every ID token defect, key rotation, several
//! tabs, and what requests without a session get.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use sessiongate::clock::{Clock, ManualClock, SeededRandom, SystemClock};

use crate::common::browser::{Browser, Reply};
use crate::common::op::{self, Op, Signing, SigningKey};
use crate::common::{self, Echo, Gateway};

pub(crate) struct World {
    pub(crate) upstream: common::Upstream,
    pub(crate) op: Op,
    pub(crate) gateway: Gateway,
    pub(crate) clock: ManualClock,
}

/// An upstream, a provider and a gateway in front, with a manual clock starting now.
pub(crate) async fn world(extra: &str) -> World {
    let upstream = common::upstream().await;
    let clock = ManualClock::new(SystemClock.now());
    let op = op::start_with_clock(Some(clock.clone())).await;
    let text = format!(
        "{}\n[access]\npublic_paths = [\"/static/\"]\napi_paths = [\"/api/\"]\n---\n{extra}",
        op.oidc_toml()
    );
    let config = common::config(upstream.addr, &text);
    let deps = sessiongate::Deps {
        clock: std::sync::Arc::new(clock.clone()),
        random: std::sync::Arc::new(SeededRandom::new(7)),
    };
    let gateway = common::start_with(config, deps).await;
    wait_ready(&gateway).await;
    World {
        upstream,
        op,
        gateway,
        clock,
    }
}

/// Waits (bounded) until the gateway has discovered the provider.
pub(crate) async fn wait_ready(gateway: &Gateway) {
    for _ in 0..100 {
        let reply = Browser::new().navigate(&gateway.url("/private")).await;
        if reply.status != StatusCode::SERVICE_UNAVAILABLE {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway never discovered the provider");
}

/// Navigates to `path`, is sent to the provider, approves, follows the callback; returns the
/// callback's reply.
pub(crate) async fn log_in(browser: &mut Browser, world: &World, path: &str) -> Reply {
    let start = browser.navigate(&world.gateway.url(path)).await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.text());
    let callback = op::approve(&start.location()).await;
    browser.navigate(&callback).await
}

fn session_cookie(browser: &Browser) -> Option<&String> {
    browser.jar.get("sessiongate")
}

#[tokio::test]
async fn a_full_login_lands_on_the_deep_link_with_identity_headers() {
    let world = world("[oidc]\nextra_auth_params = { p = \"B2C_1_signin\" }\n").await;
    let mut browser = Browser::new();
    let start = browser
        .navigate(&world.gateway.url("/private/page?x=1&y=%2F"))
        .await;
    assert_eq!(start.status, StatusCode::FOUND);
    let authorize = url::Url::parse(&start.location()).expect("authorization URL");
    assert_eq!(authorize.origin().ascii_serialization(), world.op.issuer());
    let params: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], op::CLIENT_ID);
    assert_eq!(
        params["redirect_uri"],
        world.gateway.url("/oauth2/callback")
    );
    assert!(params["scope"].split(' ').any(|s| s == "openid"));
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(
        params["p"], "B2C_1_signin",
        "extra_auth_params reach the provider"
    );
    assert!(
        params["state"].len() >= 43 && params["nonce"].len() >= 43,
        "256-bit state and nonce"
    );
    assert_ne!(params["state"], params["nonce"]);
    assert_eq!(browser.jar.len(), 1, "one login-state cookie");

    let callback = op::approve(authorize.as_str()).await;
    let done = browser.navigate(&callback).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.text());
    assert_eq!(done.location(), "/private/page?x=1&y=%2F");
    assert!(session_cookie(&browser).is_some());
    assert!(
        browser.jar.keys().all(|k| !k.contains("-login-")),
        "the login-state cookie is cleared"
    );
    let set_cookie = done.set_cookies().join("\n");
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Path=/")
    );

    let page = browser.navigate(&world.gateway.url("/echo/private")).await;
    assert_eq!(page.status, StatusCode::OK);
    let echo = Echo::parse(&page.body);
    assert_eq!(echo.header("x-forwarded-user"), vec!["alice"]);
    assert_eq!(echo.header("x-forwarded-email"), vec!["alice@example.com"]);
    assert_eq!(echo.header("x-forwarded-preferred-username"), vec!["alice"]);
    assert_eq!(echo.header("x-forwarded-groups"), vec!["staff,admins"]);
    assert!(
        echo.header("cookie").is_empty(),
        "the gateway's cookies are not forwarded"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn the_application_keeps_its_own_cookies_but_never_sees_the_gateways() {
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    browser
        .jar
        .insert("ASP.NET_SessionId".into(), "app-1".into());
    browser
        .jar
        .insert("sessiongate-other".into(), "app-2".into());
    let reply = browser.navigate(&world.gateway.url("/echo")).await;
    let echo = Echo::parse(&reply.body);
    assert_eq!(
        echo.header("cookie"),
        vec!["ASP.NET_SessionId=app-1; sessiongate-other=app-2"]
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_forged_identity_header_never_survives_next_to_a_session() {
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    let reply = browser
        .request(
            "GET",
            &world.gateway.url("/echo"),
            &[
                ("x-forwarded-user", "admin"),
                ("x_forwarded_email", "boss@example.com"),
            ],
            common::full(""),
        )
        .await;
    let echo = Echo::parse(&reply.body);
    assert_eq!(echo.header("x-forwarded-user"), vec!["alice"]);
    assert_eq!(echo.header("x-forwarded-email"), vec!["alice@example.com"]);
    assert!(echo.header("x_forwarded_email").is_empty());
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn two_tabs_log_in_at_once() {
    let world = world("").await;
    let mut browser = Browser::new();
    let first = browser.navigate(&world.gateway.url("/tab/one")).await;
    let second = browser.navigate(&world.gateway.url("/tab/two")).await;
    assert_eq!(browser.jar.len(), 2, "one login-state cookie per tab");
    let first_callback = op::approve(&first.location()).await;
    let second_callback = op::approve(&second.location()).await;
    // The second tab finishes first; the first still works afterwards.
    assert_eq!(
        browser.navigate(&second_callback).await.location(),
        "/tab/two"
    );
    assert_eq!(
        browser.navigate(&first_callback).await.location(),
        "/tab/one"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn pending_logins_are_capped() {
    let world = world("[session]\nmax_pending_logins = 3\n").await;
    let mut browser = Browser::new();
    for i in 0..6 {
        browser
            .navigate(&world.gateway.url(&format!("/tab/{i}")))
            .await;
        assert!(
            browser.jar.len() <= 3,
            "{} login cookies after {} tabs",
            browser.jar.len(),
            i + 1
        );
    }
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn background_requests_get_401_and_no_login_state() {
    let world = world("").await;
    let mut browser = Browser::new();
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case<'_>> = vec![
        ("GET", "/private", vec![("accept", "application/json")]),
        (
            "GET",
            "/private",
            vec![("accept", "text/html"), ("sec-fetch-mode", "cors")],
        ),
        (
            "GET",
            "/private",
            vec![
                ("accept", "text/html"),
                ("x-requested-with", "XMLHttpRequest"),
            ],
        ),
        ("POST", "/private", vec![("accept", "text/html")]),
        (
            "GET",
            "/api/orders",
            vec![("accept", "text/html"), ("sec-fetch-mode", "navigate")],
        ),
    ];
    for (method, path, headers) in cases {
        let reply = browser
            .request(method, &world.gateway.url(path), &headers, common::full(""))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} {headers:?}"
        );
        assert_eq!(reply.headers["content-type"], "application/json");
        assert!(
            reply.set_cookies().is_empty(),
            "{method} {path}: no cookie for a background request"
        );
    }
    assert!(browser.jar.is_empty());
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn the_callback_requires_its_own_unused_state() {
    let world = world("").await;
    // No state at all.
    let mut browser = Browser::new();
    let reply = browser
        .navigate(&world.gateway.url("/oauth2/callback?code=x"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.text().contains("Try again"),
        "a page with a retry link, not a redirect"
    );

    // A state that belongs to no login cookie of this browser.
    let start = browser.navigate(&world.gateway.url("/a")).await;
    let callback = op::approve(&start.location()).await;
    let mut stranger = Browser::new();
    assert_eq!(
        stranger.navigate(&callback).await.status,
        StatusCode::BAD_REQUEST
    );
    let forged = callback.replace("state=", "state=x");
    assert_eq!(
        browser.clone().navigate(&forged).await.status,
        StatusCode::BAD_REQUEST
    );

    // Replayed: the same callback with a copy of the login cookie, after it was used.
    let mut copy = browser.clone();
    assert_eq!(browser.navigate(&callback).await.status, StatusCode::FOUND);
    let replay = copy.navigate(&callback).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(session_cookie(&copy).is_none());

    // An error from the provider is a page, never a loop.
    let mut browser = Browser::new();
    let reply = browser
        .navigate(
            &world
                .gateway
                .url("/oauth2/callback?error=access_denied&state=abc"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("did not sign you in"));
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn every_id_token_defect_is_refused() {
    let world = world("").await;
    let far = SystemClock.now() + 3600;
    let cases: Vec<(&str, Signing, serde_json::Value)> = vec![
        ("bad signature", Signing::ForeignKey, json!({})),
        ("alg none", Signing::None, json!({})),
        (
            "HS256 keyed with the public key",
            Signing::Hs256WithPublicKey,
            json!({}),
        ),
        (
            "HS256 not enabled",
            Signing::Hs256WithClientSecret,
            json!({}),
        ),
        (
            "wrong iss",
            Signing::Normal,
            json!({"iss": "https://evil.example"}),
        ),
        ("wrong aud", Signing::Normal, json!({"aud": "someone-else"})),
        (
            "several aud without azp",
            Signing::Normal,
            json!({"aud": [op::CLIENT_ID, "other"]}),
        ),
        (
            "azp of another client",
            Signing::Normal,
            json!({"aud": [op::CLIENT_ID, "other"], "azp": "other"}),
        ),
        (
            "expired",
            Signing::Normal,
            json!({"exp": SystemClock.now() - 3600}),
        ),
        ("iat in the future", Signing::Normal, json!({"iat": far})),
        ("missing sub", Signing::Normal, json!({"sub": null})),
        ("missing nonce", Signing::Normal, json!({"nonce": null})),
        (
            "wrong nonce",
            Signing::Normal,
            json!({"nonce": "not-the-one"}),
        ),
        (
            "unknown kid",
            Signing::Key(SigningKey::rsa("unpublished", "rsa-2.pem")),
            json!({}),
        ),
    ];
    for (name, signing, claims) in cases {
        world.op.with(|s| {
            s.next_signing = signing;
            s.next_claims = claims;
        });
        let mut browser = Browser::new();
        let reply = log_in(&mut browser, &world, "/private").await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            reply.text()
        );
        assert!(session_cookie(&browser).is_none(), "{name}: no session");
    }
    // And a good one still works after all that.
    let mut browser = Browser::new();
    assert_eq!(
        log_in(&mut browser, &world, "/private").await.status,
        StatusCode::FOUND
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn hs256_works_only_when_enabled_and_only_with_the_client_secret() {
    let world = world("[oidc]\nid_token_signing_algs = [\"RS256\", \"HS256\"]\n").await;
    world
        .op
        .with(|s| s.next_signing = Signing::Hs256WithClientSecret);
    let mut browser = Browser::new();
    assert_eq!(
        log_in(&mut browser, &world, "/").await.status,
        StatusCode::FOUND
    );
    world
        .op
        .with(|s| s.next_signing = Signing::Hs256WithPublicKey);
    let mut browser = Browser::new();
    assert_eq!(
        log_in(&mut browser, &world, "/").await.status,
        StatusCode::BAD_REQUEST
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_an_unknown_kid_storm_stays_bounded() {
    let world = world("").await;
    let hits_before = world.op.jwks_hits.load(Ordering::SeqCst);
    // The provider rotates to a new key: the first token with the new kid refetches the JWKS.
    world.op.with(|s| {
        let new = SigningKey::ec("ec-1", "ec-1.pem");
        s.published.push(new.clone());
        s.signing = new;
    });
    let mut browser = Browser::new();
    assert_eq!(
        log_in(&mut browser, &world, "/").await.status,
        StatusCode::FOUND
    );
    assert_eq!(world.op.jwks_hits.load(Ordering::SeqCst), hits_before + 1);

    // Twenty logins whose tokens name a kid the provider never publishes: one refetch at most
    // (jwks_min_refresh is 30 s), not twenty.
    let hits_before = world.op.jwks_hits.load(Ordering::SeqCst);
    for _ in 0..20 {
        world
            .op
            .with(|s| s.next_signing = Signing::Key(SigningKey::rsa("ghost", "rsa-2.pem")));
        let mut browser = Browser::new();
        assert_eq!(
            log_in(&mut browser, &world, "/").await.status,
            StatusCode::BAD_REQUEST
        );
    }
    assert!(
        world.op.jwks_hits.load(Ordering::SeqCst) <= hits_before + 1,
        "JWKS fetched {} times",
        world.op.jwks_hits.load(Ordering::SeqCst) - hits_before
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn hostile_return_urls_land_on_the_root() {
    let world = world("").await;
    for rd in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/%2f%2fevil.example",
        "javascript:alert(1)",
    ] {
        let mut browser = Browser::new();
        let start_url = format!(
            "{}?rd={}",
            world.gateway.url("/oauth2/start"),
            url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        );
        let start = browser.navigate(&start_url).await;
        assert_eq!(start.status, StatusCode::FOUND);
        let callback = op::approve(&start.location()).await;
        assert_eq!(browser.navigate(&callback).await.location(), "/", "{rd}");
    }
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn userinfo_and_session_report_without_sliding() {
    let world = world("").await;
    let mut browser = Browser::new();
    let unauthenticated = browser.fetch(&world.gateway.url("/oauth2/userinfo")).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    let status = browser.fetch(&world.gateway.url("/oauth2/session")).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&status.body).expect("json")["authenticated"],
        false
    );

    log_in(&mut browser, &world, "/").await;
    let info: serde_json::Value = serde_json::from_slice(
        &browser
            .fetch(&world.gateway.url("/oauth2/userinfo"))
            .await
            .body,
    )
    .expect("json");
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["email"], "alice@example.com");

    let before: serde_json::Value = serde_json::from_slice(
        &browser
            .fetch(&world.gateway.url("/oauth2/session"))
            .await
            .body,
    )
    .expect("json");
    world.clock.advance(Duration::from_secs(600));
    let reply = browser.fetch(&world.gateway.url("/oauth2/session")).await;
    assert!(
        reply.set_cookies().is_empty(),
        "reading the session does not rewrite it"
    );
    let after: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
    assert_eq!(
        before["idle_deadline"], after["idle_deadline"],
        "reading the session does not slide it"
    );
    assert_eq!(after["authenticated"], true);
    assert_eq!(
        after["expires_in"].as_u64(),
        before["expires_in"].as_u64().map(|e| e - 600)
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn the_gateway_starts_while_the_provider_is_down_and_recovers() {
    let upstream = common::upstream().await;
    let op = op::start().await;
    op.down.store(true, Ordering::SeqCst);
    let text = format!(
        "{}\n[access]\npublic_paths = [\"/static/\"]\n[server]\nadmin_listen = \"127.0.0.1:0\"\n",
        op.oidc_toml()
    );
    let gateway = common::start(common::config(upstream.addr, &text)).await;
    let admin = gateway.admin.expect("admin");
    let mut browser = Browser::new();
    let reply = browser.navigate(&gateway.url("/private")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.text().contains("identity provider is unavailable"));
    let reply = browser.fetch(&gateway.url("/private")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&reply.body).expect("json")["error"],
        "idp_unavailable"
    );
    assert_eq!(
        browser.navigate(&gateway.url("/static/echo")).await.status,
        StatusCode::OK,
        "public paths are served"
    );
    assert_eq!(
        common::get(&format!("http://{admin}/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    op.down.store(false, Ordering::SeqCst);
    wait_ready(&gateway).await;
    assert_eq!(
        common::get(&format!("http://{admin}/readyz")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        browser.navigate(&gateway.url("/private")).await.status,
        StatusCode::FOUND
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_discovery_url_apart_from_the_issuer_is_used_as_configured() {
    // Azure AD B2C: the issuer is https://tenant.b2clogin.com/<tenant id>/v2.0/ while the
    // discovery document lives under the user flow's path.
    let upstream = common::upstream().await;
    let op = op::start().await;
    let issuer = format!("{}/tenant-id/v2.0/", op.issuer());
    op.with(|s| s.issuer = issuer.clone());
    let text = format!(
        "[oidc]\nissuer = \"{issuer}\"\ndiscovery_url = \"{}/custom/.well-known/openid-configuration\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
        op.issuer(),
        op::CLIENT_ID,
        op::CLIENT_SECRET
    );
    let gateway = common::start(common::config(upstream.addr, &text)).await;
    wait_ready(&gateway).await;
    let mut browser = Browser::new();
    let start = browser.navigate(&gateway.url("/private")).await;
    let callback = op::approve(&start.location()).await;
    assert_eq!(browser.navigate(&callback).await.location(), "/private");
    gateway.shutdown().await;
}
