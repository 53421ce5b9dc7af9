//! Ending sessions: sign-out (local and RP-initiated), back-channel logout by `sid` and by
//! `sub`, and the revocation that makes a copied cookie die too.

use http::StatusCode;
use serde_json::json;

use crate::common::browser::Browser;
use crate::common::op::Signing;
use crate::common::{self, full};
use crate::login::{World, log_in, world};

async fn status(browser: &mut Browser, world: &World) -> StatusCode {
    browser.navigate(&world.gateway.url("/echo")).await.status
}

async fn backchannel(world: &World, token: &str) -> (StatusCode, http::HeaderMap, String) {
    let body = format!(
        "logout_token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    let request = http::Request::post(world.gateway.url("/oauth2/backchannel_logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(body))
        .expect("request");
    let (status, headers, body) = common::send(&common::client(), request).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn sign_out_clears_the_cookie_and_kills_its_copies() {
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    let mut copy = browser.clone();
    let reply = browser
        .navigate(&world.gateway.url("/oauth2/sign_out?rd=/goodbye"))
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.location(), "/goodbye");
    assert!(
        !browser.jar.contains_key("sessiongate"),
        "the cookie is cleared"
    );
    assert_eq!(
        status(&mut copy, &world).await,
        StatusCode::FOUND,
        "a copied cookie is dead too"
    );
    // POST works as well, and a hostile rd falls back to /.
    let mut other = Browser::new();
    log_in(&mut other, &world, "/").await;
    let reply = other
        .request(
            "POST",
            &world.gateway.url("/oauth2/sign_out?rd=//evil.example"),
            &[],
            full(""),
        )
        .await;
    assert_eq!(
        (reply.status, reply.location()),
        (StatusCode::FOUND, "/".to_string())
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn rp_initiated_logout_sends_the_browser_to_the_provider() {
    let world = world("[logout]\nrp_initiated = true\n").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    let reply = browser
        .navigate(&world.gateway.url("/oauth2/sign_out?rd=/bye"))
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let url = url::Url::parse(&reply.location()).expect("end-session URL");
    assert_eq!(url.path(), "/logout");
    let params: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(
        params["post_logout_redirect_uri"],
        world.gateway.url("/bye")
    );
    assert_eq!(params["client_id"], crate::common::op::CLIENT_ID);
    assert!(
        params["id_token_hint"].split('.').count() == 3,
        "the ID token as hint"
    );
    assert!(!params["state"].is_empty());
    assert!(!browser.jar.contains_key("sessiongate"));
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn back_channel_logout_by_sid_and_by_sub() {
    let world = world("").await;
    let mut by_sid = Browser::new();
    log_in(&mut by_sid, &world, "/").await;
    let (code, headers, _) = backchannel(
        &world,
        &world.op.logout_token(json!({"sub": null}), Signing::Normal),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(
        status(&mut by_sid, &world).await,
        StatusCode::FOUND,
        "the session with that sid ended"
    );

    // By subject: every session of alice created before the token's iat.
    world.op.with(|s| s.next_claims = json!({"sid": null}));
    let mut first = Browser::new();
    log_in(&mut first, &world, "/").await;
    world.op.with(|s| s.next_claims = json!({"sid": null}));
    let mut second = Browser::new();
    log_in(&mut second, &world, "/").await;
    world.clock.advance(std::time::Duration::from_secs(5));
    let (code, _, _) = backchannel(
        &world,
        &world
            .op
            .logout_token(json!({"sid": null, "sub": "alice"}), Signing::Normal),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status(&mut first, &world).await, StatusCode::FOUND);
    assert_eq!(status(&mut second, &world).await, StatusCode::FOUND);
    // A new login at the provider has a new provider session id.
    world
        .op
        .with(|s| s.next_claims = json!({"sid": "op-session-2"}));
    let mut later = Browser::new();
    log_in(&mut later, &world, "/").await;
    assert_eq!(
        status(&mut later, &world).await,
        StatusCode::OK,
        "a login after the logout token is fine"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn bad_logout_tokens_are_refused_with_400() {
    let world = world("").await;
    let replayed = world.op.logout_token(json!({}), Signing::Normal);
    assert_eq!(backchannel(&world, &replayed).await.0, StatusCode::OK);
    let cases = vec![
        ("replayed jti", replayed),
        (
            "bad signature",
            world.op.logout_token(json!({}), Signing::ForeignKey),
        ),
        ("alg none", world.op.logout_token(json!({}), Signing::None)),
        (
            "wrong aud",
            world
                .op
                .logout_token(json!({"aud": "someone-else"}), Signing::Normal),
        ),
        (
            "contains nonce",
            world
                .op
                .logout_token(json!({"nonce": "n"}), Signing::Normal),
        ),
        (
            "no events",
            world
                .op
                .logout_token(json!({"events": null}), Signing::Normal),
        ),
        (
            "neither sid nor sub",
            world
                .op
                .logout_token(json!({"sid": null, "sub": null}), Signing::Normal),
        ),
        ("not a JWT", "garbage".to_string()),
    ];
    for (name, token) in cases {
        let (code, headers, body) = backchannel(&world, &token).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(headers["content-type"], "application/json", "{name}");
        assert!(body.contains("invalid_request"), "{name}: {body}");
    }
    let get = common::get(&world.gateway.url("/oauth2/backchannel_logout")).await;
    assert_eq!(get.0, StatusCode::BAD_REQUEST, "GET is refused");
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn operators_revoke_every_session_of_a_user_from_the_cli() {
    let world =
        world("[server]\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"operator-token\"\n").await;
    let admin = world.gateway.admin.expect("admin listener").to_string();
    let mut first = Browser::new();
    log_in(&mut first, &world, "/").await;
    let mut second = Browser::new();
    log_in(&mut second, &world, "/").await;

    let run = |args: Vec<String>| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sessiongate"))
            .args(args)
            .env_remove("SESSIONGATE_SERVER_ADMIN_TOKEN")
            .output()
            .expect("the binary runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let without_token = tokio::task::spawn_blocking({
        let admin = admin.clone();
        move || {
            run(vec![
                "revoke".into(),
                "--sub".into(),
                "alice".into(),
                "--addr".into(),
                admin,
            ])
        }
    });
    let (code, output) = without_token.await.expect("join");
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("401"), "{output}");
    assert_eq!(
        status(&mut first, &world).await,
        StatusCode::OK,
        "nothing revoked without the token"
    );

    let with_token = tokio::task::spawn_blocking(move || {
        run(vec![
            "revoke".into(),
            "--sub".into(),
            "alice".into(),
            "--addr".into(),
            admin,
            "--token".into(),
            "operator-token".into(),
        ])
    });
    let (code, output) = with_token.await.expect("join");
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(
        status(&mut first, &world).await,
        StatusCode::FOUND,
        "every session of alice ended"
    );
    assert_eq!(status(&mut second, &world).await, StatusCode::FOUND);
    world.gateway.shutdown().await;
}
