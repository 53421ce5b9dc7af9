//! Every header the gateway can assert is removed from every incoming request: in any case,
//! with `_` for `-`, every duplicate. Sent as raw bytes so the spelling on the wire is exactly
//! what an attacker would send.

use crate::common::{self, Echo};

const ALWAYS_STRIPPED: &[&str] = &[
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Access-Token",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Preferred-Username",
    "X-Auth-Request-Access-Token",
    "X-Remote-User",
    "Remote-User",
];

const CONFIGURED: &str = r#"
[access]
public_paths = ["/"]
[headers]
strip = ["X-Legacy-Role"]
[headers.claims]
"X-App-Tenant" = "tid"
"X-Forwarded-User" = "sub"
"#;

fn spellings(name: &str) -> Vec<String> {
    let lower = name.to_ascii_lowercase();
    vec![
        name.to_string(),
        name.to_ascii_uppercase(),
        lower.clone(),
        name.replace('-', "_"),
        lower.replace('-', "_"),
        // Mixed: only the first separator swapped.
        name.replacen('-', "_", 1),
    ]
}

#[tokio::test]
async fn every_identity_header_is_stripped_in_every_spelling() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(upstream.addr, CONFIGURED)).await;
    let names: Vec<&str> = ALWAYS_STRIPPED
        .iter()
        .copied()
        .chain(["X-App-Tenant", "X-Legacy-Role"])
        .collect();
    for name in names {
        let mut request =
            String::from("GET /echo HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n");
        for spelling in spellings(name) {
            // Every spelling twice: a duplicate must go too.
            request.push_str(&format!(
                "{spelling}: forged\r\n{spelling}: forged-again\r\n"
            ));
        }
        request.push_str("X-Innocent: kept\r\n\r\n");
        let response = common::raw(gateway.addr, &request).await;
        let body = common::raw_body(&response);
        let echo = Echo::parse(body.as_bytes());
        let folded = name.to_ascii_lowercase();
        for received in echo.header_names() {
            assert_ne!(
                received.replace('_', "-"),
                folded,
                "{name} reached the upstream as {received}"
            );
        }
        assert!(
            !body.contains("forged"),
            "{name}: a forged value reached the upstream"
        );
        assert_eq!(echo.header("x-innocent"), vec!["kept"], "{name}");
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn stripping_happens_on_paths_that_never_reach_the_upstream_too() {
    // On the gateway's own endpoints and on refused paths, a forged header must not change
    // the answer: the same request with and without it gets the same status.
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/static/\"]\n",
    ))
    .await;
    for path in ["/oauth2/userinfo", "/private"] {
        let plain = common::raw(
            gateway.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let forged = common::raw(
            gateway.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: a\r\nX-Forwarded-User: admin\r\nRemote_User: admin\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(plain.lines().next(), forged.lines().next(), "{path}");
        assert!(
            !forged.contains("admin"),
            "{path}: a forged identity was echoed"
        );
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_signed_assertion_verifies_with_the_published_keys_and_cannot_be_forged() {
    let world = crate::login::world("[headers]\nassertion = \"X-Sessiongate-Assertion\"\n").await;
    let mut browser = crate::common::browser::Browser::new();
    crate::login::log_in(&mut browser, &world, "/").await;
    let reply = browser.navigate(&world.gateway.url("/echo")).await;
    let echo = Echo::parse(&reply.body);
    let token = echo.header("x-sessiongate-assertion");
    assert_eq!(token.len(), 1, "one assertion per request");

    let (status, _, jwks) = common::get(&world.gateway.url("/oauth2/jwks")).await;
    assert_eq!(status, http::StatusCode::OK);
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks).expect("a JWK set");
    let header = jsonwebtoken::decode_header(&token[0]).expect("a JWT header");
    let jwk = jwks
        .find(header.kid.as_deref().expect("a kid"))
        .expect("the signing key is published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&[format!("http://{}", world.upstream.addr)]);
    validation.set_issuer(&[world.gateway.url("")]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token[0],
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("a key"),
        &validation,
    )
    .expect("the assertion verifies")
    .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["groups"], serde_json::json!(["staff", "admins"]));

    // A client's own copy never reaches the application, on any path.
    let forged = browser
        .request(
            "GET",
            &world.gateway.url("/static/x"),
            &[
                ("x-sessiongate-assertion", "forged"),
                ("x_sessiongate_assertion", "forged"),
            ],
            common::full(""),
        )
        .await;
    let echo = Echo::parse(&forged.body);
    assert!(
        echo.header_names()
            .iter()
            .all(|n| !n.contains("sessiongate-assertion") && !n.contains("sessiongate_assertion")),
        "{:?}",
        echo.header_names()
    );
    world.gateway.shutdown().await;
}
