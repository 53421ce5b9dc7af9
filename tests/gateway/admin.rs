//! The admin listener: liveness and readiness, apart from the main listener.

use http::StatusCode;

use crate::common;

#[tokio::test]
async fn healthz_and_readyz_answer_on_the_admin_listener_only() {
    let upstream = common::upstream().await;
    let op = common::op::start().await;
    let text = format!(
        "{}\n[server]\nadmin_listen = \"127.0.0.1:0\"\n",
        op.oidc_toml()
    );
    let gateway = common::start(common::config(upstream.addr, &text)).await;
    crate::login::wait_ready(&gateway).await;
    let admin = gateway.admin.expect("admin listener");
    let (status, _, body) = common::get(&format!("http://{admin}/healthz")).await;
    assert_eq!((status, body.as_ref()), (StatusCode::OK, b"ok\n".as_ref()));
    let (status, _, body) = common::get(&format!("http://{admin}/readyz")).await;
    assert_eq!(
        (status, body.as_ref()),
        (StatusCode::OK, b"ready\n".as_ref())
    );
    // The main listener does not serve them: /healthz there is the application's (protected) path.
    let (status, headers, _) = common::get(&gateway.url("/healthz")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!headers.contains_key("x-upstream"));
    gateway.shutdown().await;
}

/// One sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// The exposition format, line by line: `# HELP`/`# TYPE` comments and
/// `name{label="value",...} number` samples. Returns the samples.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let words: Vec<&str> = comment.split_whitespace().collect();
            assert!(
                matches!(words.first(), Some(&"HELP") | Some(&"TYPE")),
                "comment: {line}"
            );
            if words[0] == "TYPE" {
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&words[2]),
                    "type: {line}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("labels: {line}"));
                let labels = body
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once('=')
                            .unwrap_or_else(|| panic!("label: {line}"));
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or_else(|| panic!("quoted label: {line}"));
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, Vec::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "name: {line}"
        );
        samples.push((name.to_string(), labels, value));
    }
    samples
}

/// The sum of the samples of `name` that carry every label in `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test]
async fn metrics_parse_and_each_counter_moves_with_its_event() {
    use crate::common::browser::Browser;
    let world = crate::login::world(
        "[server]\nadmin_listen = \"127.0.0.1:0\"\n[[access.rule]]\npath = \"/finance/\"\nallowed_groups = [\"finance\"]\n",
    )
    .await;
    let admin = world.gateway.admin.expect("admin listener");
    let scrape = || async move {
        let (status, headers, body) = common::get(&format!("http://{admin}/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        parse_exposition(&String::from_utf8_lossy(&body))
    };
    let before = scrape().await;
    assert!(
        total(
            &before,
            "sessiongate_idp_fetches_total",
            &[("document", "discovery"), ("outcome", "ok")]
        ) >= 1.0,
        "discovery at start is counted"
    );
    assert!(
        total(
            &before,
            "sessiongate_idp_fetches_total",
            &[("document", "jwks")]
        ) >= 1.0
    );

    let mut browser = Browser::new();
    crate::login::log_in(&mut browser, &world, "/").await;
    browser.navigate(&world.gateway.url("/echo")).await;
    browser.navigate(&world.gateway.url("/finance/q1")).await;
    Browser::new()
        .fetch(&world.gateway.url("/api/orders"))
        .await;
    let mut forged = Browser::new();
    forged
        .jar
        .insert("sessiongate".into(), "not-a-session".into());
    forged.fetch(&world.gateway.url("/echo")).await;
    world.clock.advance(std::time::Duration::from_secs(250));
    browser.navigate(&world.gateway.url("/echo")).await;
    browser
        .navigate(&world.gateway.url("/oauth2/sign_out"))
        .await;
    // Revoked by the operator; idle past the timeout.
    let mut revoked = Browser::new();
    crate::login::log_in(&mut revoked, &world, "/").await;
    let request = http::Request::post(format!("http://{admin}/sessions/revoke?sub=alice"))
        .body(common::full(""))
        .expect("request");
    assert_eq!(
        common::send(&common::client(), request).await.0,
        StatusCode::OK
    );
    revoked.navigate(&world.gateway.url("/echo")).await;
    world
        .op
        .with(|s| s.next_claims = serde_json::json!({"sub": "bob"}));
    let mut bob = Browser::new();
    crate::login::log_in(&mut bob, &world, "/").await;
    world
        .clock
        .advance(std::time::Duration::from_secs(2 * 3600));
    bob.navigate(&world.gateway.url("/echo")).await;

    let after = scrape().await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        total(&after, name, labels) - total(&before, name, labels)
    };
    for (name, labels) in [
        ("sessiongate_logins_total", vec![("outcome", "started")]),
        ("sessiongate_logins_total", vec![("outcome", "completed")]),
        ("sessiongate_requests_total", vec![("outcome", "proxied")]),
        (
            "sessiongate_requests_total",
            vec![("outcome", "login_redirect")],
        ),
        (
            "sessiongate_requests_total",
            vec![("outcome", "unauthenticated")],
        ),
        ("sessiongate_requests_total", vec![("outcome", "forbidden")]),
        ("sessiongate_refreshes_total", vec![("outcome", "ok")]),
        (
            "sessiongate_sessions_ended_total",
            vec![("reason", "sign_out")],
        ),
        (
            "sessiongate_sessions_ended_total",
            vec![("reason", "revoked")],
        ),
        ("sessiongate_sessions_ended_total", vec![("reason", "idle")]),
        ("sessiongate_session_cookies_rejected_total", vec![]),
        ("sessiongate_upstream_duration_seconds_count", vec![]),
    ] {
        assert!(
            moved(name, &labels) >= 1.0,
            "{name} {labels:?} did not move"
        );
    }
    assert!(
        after.iter().any(
            |(n, l, _)| n == "sessiongate_upstream_duration_seconds_bucket"
                && l.iter().any(|(k, v)| k == "le" && v == "0.005")
        ),
        "a histogram with buckets"
    );
    assert!(
        after
            .iter()
            .any(|(n, _, _)| n == "sessiongate_requests_in_flight"),
        "the in-flight gauge"
    );
    world.gateway.shutdown().await;
}
