//! The sliding session over real sockets, with the gateway's clock moved by hand: activity
//! carries a session far past the idle timeout, inactivity ends it, the absolute timeout ends
//! it despite activity, broken cookies are no session (never a 5xx), and secrets rotate
//! without logging anyone out.

use std::time::Duration;

use http::StatusCode;
use sessiongate::clock::{Clock, ManualClock, SeededRandom, SystemClock};

use crate::common::browser::Browser;
use crate::common::{self, op};
use crate::login::{World, log_in, wait_ready, world};

const MINUTE: Duration = Duration::from_secs(60);

async fn page(browser: &mut Browser, world: &World) -> StatusCode {
    browser
        .navigate(&world.gateway.url("/echo/work"))
        .await
        .status
}

#[tokio::test]
async fn activity_carries_the_session_far_past_the_idle_timeout() {
    let world = world("[session]\nidle_timeout = \"30m\"\nabsolute_timeout = \"12h\"\n").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    let first_cookie = browser.jar["sessiongate"].clone();
    // A request every 20 minutes for 5 hours: ten idle timeouts' worth.
    for _ in 0..15 {
        world.clock.advance(20 * MINUTE);
        assert_eq!(page(&mut browser, &world).await, StatusCode::OK);
    }
    assert_ne!(
        browser.jar["sessiongate"], first_cookie,
        "the cookie was rewritten as it slid"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn the_cookie_is_rewritten_only_after_the_touch_interval() {
    let world = world("[session]\ntouch_interval = \"60s\"\n").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    world.clock.advance(Duration::from_secs(30));
    let reply = browser.navigate(&world.gateway.url("/echo")).await;
    assert!(
        reply.set_cookies().is_empty(),
        "30 s after the last write: no rewrite"
    );
    world.clock.advance(Duration::from_secs(31));
    let reply = browser.navigate(&world.gateway.url("/echo")).await;
    assert!(
        reply
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("sessiongate=")),
        "61 s: rewritten"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn inactivity_past_the_idle_timeout_ends_the_session() {
    let world = world("[session]\nidle_timeout = \"30m\"\n").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    world.clock.advance(29 * MINUTE);
    assert_eq!(page(&mut browser, &world).await, StatusCode::OK);
    world.clock.advance(31 * MINUTE);
    let reply = browser.navigate(&world.gateway.url("/echo/work")).await;
    assert_eq!(reply.status, StatusCode::FOUND, "sent to log in again");
    assert!(reply.location().starts_with(&world.op.issuer()));
    assert!(
        !browser.jar.contains_key("sessiongate"),
        "the expired cookie is cleared"
    );
    let xhr = browser.fetch(&world.gateway.url("/echo/work")).await;
    assert_eq!(xhr.status, StatusCode::UNAUTHORIZED);
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn the_absolute_timeout_ends_even_an_active_session() {
    let world = world("[session]\nidle_timeout = \"1h\"\nabsolute_timeout = \"4h\"\n").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    for _ in 0..7 {
        world.clock.advance(30 * MINUTE);
        assert_eq!(page(&mut browser, &world).await, StatusCode::OK);
    }
    world.clock.advance(31 * MINUTE);
    assert_eq!(
        page(&mut browser, &world).await,
        StatusCode::FOUND,
        "4 h after login, however active"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn every_flipped_byte_of_the_cookie_is_no_session_and_never_a_5xx() {
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    let cookie = browser.jar["sessiongate"].clone();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let client = common::client();
    for i in 0..cookie.len() {
        let mut bytes = cookie.clone().into_bytes();
        let position = alphabet.iter().position(|&c| c == bytes[i]).unwrap_or(0);
        bytes[i] = alphabet[(position + 1) % alphabet.len()];
        let flipped = String::from_utf8(bytes).expect("ascii");
        let request = http::Request::get(world.gateway.url("/echo"))
            .header("accept", "application/json")
            .header("cookie", format!("sessiongate={flipped}"))
            .body(common::full(""))
            .expect("request");
        let (status, headers, _) = common::send(&client, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "byte {i}");
        let cleared = headers.get_all("set-cookie").iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.starts_with("sessiongate=;") || v.contains("Max-Age=0"))
        });
        assert!(cleared, "byte {i}: the broken cookie is cleared");
    }
    for garbage in ["", "x", "%%%", "....", &"A".repeat(5000)] {
        let request = http::Request::get(world.gateway.url("/echo"))
            .header("accept", "application/json")
            .header("cookie", format!("sessiongate={garbage}"))
            .body(common::full(""))
            .expect("request");
        assert_eq!(
            common::send(&client, request).await.0,
            StatusCode::UNAUTHORIZED,
            "{garbage:?}"
        );
    }
    world.gateway.shutdown().await;
}

/// A second gateway in front of the same provider and upstream, with other secrets.
async fn gateway_with_secrets(world: &World, secrets: &[&str]) -> common::Gateway {
    let list = secrets
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!("{}\n[session]\nsecrets = [{list}]\n", world.op.oidc_toml());
    let config = common::config(world.upstream.addr, &text);
    let deps = sessiongate::Deps {
        clock: std::sync::Arc::new(ManualClock::new(SystemClock.now())),
        random: std::sync::Arc::new(SeededRandom::new(9)),
    };
    let gateway = common::start_with(config, deps).await;
    wait_ready(&gateway).await;
    gateway
}

const SECRET_A: &str = "c2Vzc2lvbmdhdGUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ==";
const SECRET_B: &str = "YW5vdGhlci1zZWNyZXQtZm9yLXJvdGF0aW9uLXRlc3RzIQ==";

#[tokio::test]
async fn secrets_rotate_without_logouts_and_foreign_cookies_do_not_open() {
    // `world` seals with the test config's secret, SECRET_A.
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;

    let rotated = gateway_with_secrets(&world, &[SECRET_B, SECRET_A]).await;
    let reply = browser.navigate(&rotated.url("/echo")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a cookie sealed with the old secret still opens"
    );

    let stranger = gateway_with_secrets(&world, &[SECRET_B]).await;
    let reply = browser.navigate(&stranger.url("/echo")).await;
    assert_eq!(
        reply.status,
        StatusCode::FOUND,
        "a cookie from another secret is no session"
    );
    let _ = op::CLIENT_ID;
    rotated.shutdown().await;
    stranger.shutdown().await;
    world.gateway.shutdown().await;
}

/// A request whose session was valid when it arrived runs to its end: a 1 GiB upload that
/// spans the token expiry, a refresh by another request, and the idle deadline arrives whole,
/// and its end is not counted as activity again.
#[tokio::test]
async fn a_long_upload_that_started_valid_finishes_past_expiry_refresh_and_idle() {
    use http_body_util::BodyExt as _;
    let world = crate::login::world("[session]\nidle_timeout = \"10m\"\n").await;
    let mut browser = crate::common::browser::Browser::new();
    crate::login::log_in(&mut browser, &world, "/").await;

    let (chunks, receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| {
            (
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(chunk)),
                receiver,
            )
        })
    });
    let body = http_body_util::StreamBody::new(stream).boxed();
    let request = http::Request::post(world.gateway.url("/upload"))
        .header("cookie", browser.cookie_header())
        .header("accept", "application/json")
        .body(body)
        .expect("request");
    let upload =
        tokio::spawn(async move { crate::common::send(&crate::common::client(), request).await });
    // More than the socket buffers hold: once these are taken, the gateway has accepted the
    // request and is streaming it to the upstream.
    const MIB: usize = 1 << 20;
    let chunk = bytes::Bytes::from(vec![b'a'; MIB]);
    for _ in 0..16 {
        chunks.send(chunk.clone()).await.expect("chunk");
    }
    // Tokens expire and another request refreshes them; then the session goes idle.
    world.clock.advance(std::time::Duration::from_secs(280));
    let refreshes = world
        .op
        .refresh_calls
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        browser.navigate(&world.gateway.url("/echo")).await.status,
        http::StatusCode::OK
    );
    assert!(
        world
            .op
            .refresh_calls
            .load(std::sync::atomic::Ordering::SeqCst)
            > refreshes
    );
    // Half a gibibyte before the idle deadline, half after: 1 GiB in all.
    for _ in 16..512 {
        chunks.send(chunk.clone()).await.expect("chunk");
    }
    world.clock.advance(std::time::Duration::from_secs(11 * 60));
    for _ in 512..1024 {
        chunks.send(chunk.clone()).await.expect("chunk");
    }
    drop(chunks);

    let (status, headers, body) = upload.await.expect("join");
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(
        String::from_utf8_lossy(&body),
        (1024 * MIB).to_string(),
        "every byte arrived"
    );
    assert!(
        !headers.contains_key("set-cookie"),
        "finishing is not activity: the session slid only when the upload began: {headers:?}"
    );
    assert_eq!(
        browser.navigate(&world.gateway.url("/echo")).await.status,
        http::StatusCode::FOUND,
        "the session itself did go idle"
    );
    world.gateway.shutdown().await;
}
