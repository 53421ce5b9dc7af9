//! Access rules after authentication: allowed email domains and groups, 403 otherwise.

use http::StatusCode;

use crate::common::browser::Browser;
use crate::login::{log_in, world};

#[tokio::test]
async fn members_of_an_allowed_group_get_in() {
    let world = world("[access]\nallowed_groups = [\"admins\"]\n").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    assert_eq!(
        browser.navigate(&world.gateway.url("/echo")).await.status,
        StatusCode::OK
    );
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_user_outside_the_rules_gets_403_not_a_login_loop() {
    let world = world("[access]\nallowed_email_domains = [\"other.example\"]\n").await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    let page = browser.navigate(&world.gateway.url("/echo")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.text().contains("not allowed here"), "{}", page.text());
    assert!(!page.headers.contains_key("location"));
    let api = browser.fetch(&world.gateway.url("/echo")).await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert_eq!(api.headers["content-type"], "application/json");
    world.gateway.shutdown().await;
}
