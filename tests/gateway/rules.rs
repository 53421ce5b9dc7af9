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

const RULES: &str = r#"
[access]
allowed_email_domains = ["example.com"]

[[access.rule]]
name = "docs"
path_regex = "^/v[0-9]+/docs/"
allow = "public"

[[access.rule]]
name = "reports-read"
path = "/reports/"
methods = ["GET"]
allow = "authenticated"

[[access.rule]]
name = "reports-write"
path = "/reports/"
allowed_groups = ["finance"]

[[access.rule]]
name = "staff-only"
path = "/staff/"
required_claims = { preferred_username = "alice", groups = "staff" }
"#;

#[tokio::test]
async fn per_path_rules_decide_by_path_and_method_first_match_wins() {
    let world = world(RULES).await;
    // Public by rule: no session needed, and no login.
    let docs = Browser::new()
        .navigate(&world.gateway.url("/v2/docs/intro"))
        .await;
    assert_eq!(docs.status, StatusCode::OK);
    let not_docs = Browser::new()
        .navigate(&world.gateway.url("/x/v2/docs/intro"))
        .await;
    assert_eq!(not_docs.status, StatusCode::FOUND, "the regex is anchored");

    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/").await;
    let read = browser.navigate(&world.gateway.url("/reports/q1")).await;
    assert_eq!(read.status, StatusCode::OK, "GET: any authenticated user");
    let write = browser
        .request(
            "POST",
            &world.gateway.url("/reports/q1"),
            &[("accept", "application/json")],
            crate::common::full("x"),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN, "POST: finance only");
    let staff = browser.navigate(&world.gateway.url("/staff/board")).await;
    assert_eq!(staff.status, StatusCode::OK, "required claims met");
    // The query never picks a rule.
    let queried = Browser::new()
        .navigate(&world.gateway.url("/private?x=/v2/docs/"))
        .await;
    assert_eq!(queried.status, StatusCode::FOUND);
    world.gateway.shutdown().await;
}

#[tokio::test]
async fn a_rule_s_requirements_replace_the_global_ones() {
    let world = world(
        "[access]\nallowed_email_domains = [\"other.example\"]\n\
         [[access.rule]]\npath = \"/open/\"\nallow = \"authenticated\"\n\
         [[access.rule]]\npath = \"/claims/\"\nrequired_claims = { preferred_username = \"bob\" }\n",
    )
    .await;
    let mut browser = Browser::new();
    log_in(&mut browser, &world, "/open/").await;
    assert_eq!(
        browser.navigate(&world.gateway.url("/open/x")).await.status,
        StatusCode::OK,
        "authenticated is enough here"
    );
    assert_eq!(
        browser.navigate(&world.gateway.url("/other")).await.status,
        StatusCode::FORBIDDEN,
        "elsewhere the global domain rule applies"
    );
    assert_eq!(
        browser
            .navigate(&world.gateway.url("/claims/x"))
            .await
            .status,
        StatusCode::FORBIDDEN,
        "preferred_username is alice, not bob"
    );
    world.gateway.shutdown().await;
}
