//! The expiry notice: `/oauth2/session.js`, its tag injected into the application's HTML
//! (and only there), and "stay signed in" sliding the session while reading it does not.

use std::time::Duration;

use http::StatusCode;

use crate::common::browser::Browser;
use crate::common::{self, full};
use crate::login::{log_in, world};

const TAG: &str = "<script src=\"/oauth2/session.js\" defer></script>";

#[tokio::test]
async fn the_tag_goes_into_html_only_and_compressed_pages_are_left_alone() {
    let world =
        world("[session]\ninject_warning = true\n[access]\npublic_paths = [\"/page-public\"]\n")
            .await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    let page = browser.navigate(&world.gateway.url("/page")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text().contains(&format!("{TAG}</body>")),
        "{}",
        page.text()
    );
    if let Some(length) = page.headers.get("content-length") {
        assert_eq!(length.to_str().unwrap(), page.body.len().to_string());
    }
    let split = browser.navigate(&world.gateway.url("/page-split")).await;
    assert_eq!(
        split.text(),
        format!("<html><body><p>a</p>{TAG}</body></html>")
    );
    let gzip = browser.navigate(&world.gateway.url("/page-gzip")).await;
    assert!(!gzip.text().contains(TAG), "compressed: untouched");
    let json = browser.navigate(&world.gateway.url("/echo")).await;
    assert!(!json.text().contains("session.js"), "JSON: untouched");
    // Public pages are no one's session.
    let public = Browser::new()
        .navigate(&world.gateway.url("/static/page"))
        .await;
    assert!(!public.text().contains(TAG));
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn without_inject_warning_pages_are_untouched_and_the_script_is_served() {
    let world = world("[session]\nwarning_before = \"3m\"\n").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    assert!(
        !browser
            .navigate(&world.gateway.url("/page"))
            .await
            .text()
            .contains(TAG)
    );
    let (status, headers, script) = common::get(&world.gateway.url("/oauth2/session.js")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let script = String::from_utf8_lossy(&script);
    assert!(script.contains("var prefix = \"/oauth2\";"), "{script}");
    assert!(script.contains("var warnBefore = 180;"));
    assert!(!script.contains("{PREFIX}"));
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn stay_signed_in_slides_the_session_and_reading_it_does_not() {
    let world = world("").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    world.clock.advance(Duration::from_secs(5 * 60));
    let read = browser.fetch(&world.gateway.url("/oauth2/session")).await;
    assert!(read.set_cookies().is_empty(), "reading does not slide");
    let get = browser
        .fetch(&world.gateway.url("/oauth2/session/touch"))
        .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    let touch = browser
        .request(
            "POST",
            &world.gateway.url("/oauth2/session/touch"),
            &[],
            full(""),
        )
        .await;
    assert_eq!(touch.status, StatusCode::NO_CONTENT);
    assert!(
        touch
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("sessiongate=")),
        "slid"
    );
    let anonymous = Browser::new()
        .request(
            "POST",
            &world.gateway.url("/oauth2/session/touch"),
            &[],
            full(""),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    world.gateway.shutdown().await;
}
