//! Nothing typed is lost: a form post that arrives after the session ended is kept while the
//! user logs in again, then reaches the application once, byte for byte.

use std::time::Duration;

use http::StatusCode;

use crate::common::browser::{Browser, Reply};
use crate::common::op;
use crate::common::{Echo, full};
use crate::login::{World, log_in, world};

const URLENCODED: &str = "application/x-www-form-urlencoded";

/// Posts `body` as a top-level form navigation would.
async fn submit(
    browser: &mut Browser,
    world: &World,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    browser
        .request(
            "POST",
            &world.gateway.url(path),
            &[
                ("content-type", content_type),
                ("accept", "text/html,application/xhtml+xml"),
                ("sec-fetch-mode", "navigate"),
            ],
            full(body),
        )
        .await
}

/// The hidden field of a replay page, and its form's action.
fn replay_form(page: &str) -> (String, String) {
    let field = |name: &str| {
        let start = page.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        page[start..start + page[start..].find('"').expect("quote")].to_string()
    };
    (field("action").replace("&amp;", "&"), field("value"))
}

/// Lets the session go idle, posts, logs in at the provider; returns the replay page.
async fn post_after_idle(
    browser: &mut Browser,
    world: &World,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    let sent = submit(browser, world, path, content_type, body).await;
    assert_eq!(
        sent.status,
        StatusCode::FOUND,
        "to the provider: {}",
        sent.text()
    );
    let callback = op::approve(&sent.location()).await;
    browser.navigate(&callback).await
}

/// What the replay page's form does: post the marker to the original URL.
async fn replay(browser: &mut Browser, world: &World, page: &Reply) -> Reply {
    let (action, token) = replay_form(&page.text());
    let body = format!("__sessiongate_replay={token}");
    submit(browser, world, &action, URLENCODED, body.into_bytes()).await
}

async fn expired_session(world: &World) -> Browser {
    let mut browser = Browser::new();
    log_in(&mut browser, world, "/").await;
    world.clock.advance(Duration::from_secs(2 * 3600));
    browser
}

#[tokio::test]
async fn an_urlencoded_post_after_the_idle_timeout_reaches_the_application_once() {
    let world = world("").await;
    let mut browser = expired_session(&world).await;
    let form = b"name=Ann+Smith&comment=two+hours+of+typing&__VIEWSTATE=%2FwEPDwUK".to_vec();
    let page = post_after_idle(
        &mut browser,
        &world,
        "/echo/edit.aspx?id=7",
        URLENCODED,
        form.clone(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(
        page.text().contains("Continue"),
        "a button for browsers without JavaScript"
    );
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("nonce-")
    );
    let (action, _) = replay_form(&page.text());
    assert_eq!(action, "/echo/edit.aspx?id=7", "back to the original URL");

    let sent = replay(&mut browser, &world, &page).await;
    assert_eq!(sent.status, StatusCode::OK);
    let echo = Echo::parse(&sent.body);
    assert_eq!(echo.0["method"], "POST");
    assert_eq!(echo.0["path"], "/echo/edit.aspx");
    assert_eq!(echo.0["query"], "id=7");
    assert_eq!(echo.0["body"].as_str().unwrap().as_bytes(), form.as_slice());
    assert_eq!(echo.header("content-type"), vec![URLENCODED]);
    assert_eq!(echo.header("x-forwarded-user"), vec!["alice"]);

    let again = replay(&mut browser, &world, &page).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "never twice");
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_multipart_post_with_a_file_arrives_byte_for_byte() {
    let world = world("").await;
    let mut browser = expired_session(&world).await;
    let content_type = "multipart/form-data; boundary=----sg7";
    let mut form =
        b"------sg7\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nQ3 report\r\n\
------sg7\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q3.bin\"\r\n\
Content-Type: application/octet-stream\r\n\r\n"
            .to_vec();
    form.extend((0..=255u8).cycle().take(20_000));
    form.extend_from_slice(b"\r\n------sg7--\r\n");
    let page = post_after_idle(&mut browser, &world, "/upload", content_type, form.clone()).await;
    assert_eq!(page.status, StatusCode::OK);
    let sent = replay(&mut browser, &world, &page).await;
    assert_eq!(sent.status, StatusCode::OK);
    assert_eq!(
        sent.text(),
        form.len().to_string(),
        "every byte of the file"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_post_over_the_limit_gets_a_plain_login() {
    let world = world("[session]\npreserve_post_max = 1000\n").await;
    let mut browser = expired_session(&world).await;
    let after = post_after_idle(
        &mut browser,
        &world,
        "/echo/big",
        URLENCODED,
        vec![b'a'; 5000],
    )
    .await;
    assert_eq!(
        after.status,
        StatusCode::FOUND,
        "no replay page: back to the page"
    );
    assert_eq!(after.location(), "/echo/big");
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn another_browser_cannot_replay_a_kept_post() {
    let world = world("").await;
    let mut alice = expired_session(&world).await;
    let page = post_after_idle(
        &mut alice,
        &world,
        "/echo/form",
        URLENCODED,
        b"secret=1".to_vec(),
    )
    .await;
    let mut other = Browser::new();
    log_in(&mut other, &world, "/").await;
    let stolen = replay(&mut other, &world, &page).await;
    assert_eq!(
        stolen.status,
        StatusCode::CONFLICT,
        "kept for another session"
    );
    let own = replay(&mut alice, &world, &page).await;
    assert_eq!(own.status, StatusCode::OK, "the owner still can");
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn after_a_failed_login_nothing_is_replayed() {
    let world = world("").await;
    let mut browser = expired_session(&world).await;
    let sent = submit(
        &mut browser,
        &world,
        "/echo/form",
        URLENCODED,
        b"a=1".to_vec(),
    )
    .await;
    assert_eq!(sent.status, StatusCode::FOUND);
    // The provider refuses: the callback carries an error, no code.
    let authorize = url::Url::parse(&sent.location()).expect("authorization URL");
    let params: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    let failed = browser
        .navigate(&format!(
            "{}?error=access_denied&state={}",
            world.gateway.url("/oauth2/callback"),
            params["state"]
        ))
        .await;
    assert_ne!(failed.status, StatusCode::OK);
    assert!(
        !failed.text().contains("__sessiongate_replay"),
        "no replay page"
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn two_tabs_posting_while_expired_each_get_their_form_through() {
    let world = world("").await;
    let mut browser = expired_session(&world).await;
    let first = submit(
        &mut browser,
        &world,
        "/echo/one",
        URLENCODED,
        b"tab=1".to_vec(),
    )
    .await;
    let second = submit(
        &mut browser,
        &world,
        "/echo/two",
        URLENCODED,
        b"tab=2".to_vec(),
    )
    .await;
    for (sent, path, body) in [
        (first, "/echo/one", "tab=1"),
        (second, "/echo/two", "tab=2"),
    ] {
        let callback = op::approve(&sent.location()).await;
        let page = browser.navigate(&callback).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let replayed = replay(&mut browser, &world, &page).await;
        let echo = Echo::parse(&replayed.body);
        assert_eq!(echo.0["path"], path);
        assert_eq!(echo.0["body"], body);
    }
    world.gateway.shutdown().await;
}
