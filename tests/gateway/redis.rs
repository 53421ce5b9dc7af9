//! The Redis store: two replicas sharing sessions through the real Redis (each test under a
//! key prefix of its own), logout of every kind reaching both, one refresh across replicas,
//! Redis frozen mid-test, and a three-node Cluster.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use sessiongate::clock::{Clock, ManualClock, SeededRandom, SystemClock};

use crate::common::browser::{Browser, Reply};
use crate::common::op::{self, Op, RefreshBehaviour, Signing};
use crate::common::redis::{self, RedisCluster, RedisSentinel, RedisServer};
use crate::common::{self, Echo, Gateway, full};
use crate::login::wait_ready;

/// One provider, one upstream and several gateways sharing one Redis.
struct Replicas {
    _upstream: common::Upstream,
    op: Op,
    clock: ManualClock,
    gateways: Vec<Gateway>,
    prefix: String,
}

impl Replicas {
    fn url(&self, replica: usize, path: &str) -> String {
        self.gateways[replica].url(path)
    }

    async fn shutdown(self) {
        for gateway in self.gateways {
            gateway.shutdown().await;
        }
    }
}

async fn replicas(count: usize, redis_url: &str, test: &str, extra: &str) -> Replicas {
    let upstream = common::upstream().await;
    let clock = ManualClock::new(SystemClock.now());
    let op = op::start_with_clock(Some(clock.clone())).await;
    let prefix = redis::unique_prefix(test);
    let text = format!(
        "{}\n[access]\npublic_paths = [\"/static/\"]\n\
         [session]\nstore = \"redis\"\nredis_url = \"{redis_url}\"\nredis_prefix = \"{prefix}\"\n\
         redis_timeout = \"300ms\"\n[server]\nadmin_listen = \"127.0.0.1:0\"\n---\n{extra}",
        op.oidc_toml()
    );
    let mut gateways = Vec::new();
    for replica in 0..count {
        let deps = sessiongate::Deps {
            clock: std::sync::Arc::new(clock.clone()),
            // Replicas draw different randomness, as real ones do.
            random: std::sync::Arc::new(SeededRandom::new(100 + replica as u64)),
        };
        let gateway = common::start_with(common::config(upstream.addr, &text), deps).await;
        wait_ready(&gateway).await;
        gateways.push(gateway);
    }
    Replicas {
        _upstream: upstream,
        op,
        clock,
        gateways,
        prefix,
    }
}

async fn log_in_at(browser: &mut Browser, replicas: &Replicas, replica: usize) -> Reply {
    let start = browser.navigate(&replicas.url(replica, "/")).await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.text());
    let callback = op::approve(&start.location()).await;
    let landed = browser.navigate(&callback).await;
    assert_eq!(landed.status, StatusCode::FOUND, "{}", landed.text());
    landed
}

async fn user_at(browser: &mut Browser, replicas: &Replicas, replica: usize) -> Option<String> {
    let reply = browser.fetch(&replicas.url(replica, "/echo")).await;
    (reply.status == StatusCode::OK).then(|| {
        Echo::parse(&reply.body)
            .header("x-forwarded-user")
            .join(",")
    })
}

async fn backchannel(replicas: &Replicas, replica: usize, token: &str) -> StatusCode {
    let body = format!(
        "logout_token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    let request = http::Request::post(replicas.url(replica, "/oauth2/backchannel_logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(body))
        .expect("request");
    let (status, _, body) = common::send(&common::client(), request).await;
    eprintln!("backchannel: {status} {}", String::from_utf8_lossy(&body));
    status
}

async fn admin_revoke(replicas: &Replicas, replica: usize, form: &str) -> StatusCode {
    let admin = replicas.gateways[replica].admin.expect("admin listener");
    let request = http::Request::post(format!("http://{admin}/sessions/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(form.to_string()))
        .expect("request");
    let (status, _, body) = common::send(&common::client(), request).await;
    eprintln!("admin: {status} {}", String::from_utf8_lossy(&body));
    status
}

async fn readyz(replicas: &Replicas, replica: usize) -> (StatusCode, String) {
    let admin = replicas.gateways[replica].admin.expect("admin listener");
    let (status, _, body) = common::get(&format!("http://{admin}/readyz")).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

const SHARED_PORT: u16 = 6379;

#[tokio::test]
async fn a_session_made_on_one_replica_works_on_the_other_and_redis_holds_no_token() {
    let replicas = replicas(2, redis::SHARED, "shared", "").await;
    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    let cookie = browser
        .jar
        .get("sessiongate")
        .expect("session cookie")
        .clone();
    assert!(
        cookie.len() < 200,
        "the cookie carries a ticket, not the session ({} bytes)",
        cookie.len()
    );
    assert_eq!(
        user_at(&mut browser, &replicas, 1).await.as_deref(),
        Some("alice")
    );
    assert_eq!(
        user_at(&mut browser, &replicas, 0).await.as_deref(),
        Some("alice")
    );

    let keys = redis::keys(SHARED_PORT, &replicas.prefix);
    let entry = keys
        .iter()
        .find(|k| k.starts_with(&format!("{}s:", replicas.prefix)))
        .expect("a session entry");
    let stored = redis::cli(SHARED_PORT, &["GET", entry]);
    for secret in ["alice", "refresh-", "eyJ"] {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} is in the Redis entry in the clear"
        );
    }
    assert!(
        keys.iter().all(|k| !k.contains("alice")),
        "index keys name no user: {keys:?}"
    );
    // The entry lives until the idle deadline (1h by default), no longer.
    let ttl: u64 = redis::cli_text(SHARED_PORT, &["TTL", entry])
        .parse()
        .expect("TTL");
    assert!((3500..=3600).contains(&ttl), "TTL {ttl}");
    replicas.shutdown().await;
}

#[tokio::test]
async fn sign_out_on_one_replica_ends_the_session_on_the_other() {
    let replicas = replicas(2, redis::SHARED, "sign-out", "").await;
    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    let mut copy = browser.clone();
    let reply = browser.navigate(&replicas.url(1, "/oauth2/sign_out")).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(
        user_at(&mut copy, &replicas, 0).await,
        None,
        "a copied cookie is dead"
    );
    assert_eq!(user_at(&mut copy, &replicas, 1).await, None);
    assert!(
        redis::keys(SHARED_PORT, &format!("{}s:", replicas.prefix)).is_empty(),
        "the entry is deleted"
    );
    replicas.shutdown().await;
}

#[tokio::test]
async fn back_channel_logout_by_sid_and_by_sub_reaches_every_replica_and_a_jti_works_once() {
    let replicas = replicas(2, redis::SHARED, "backchannel", "").await;
    let mut by_sid = Browser::new();
    log_in_at(&mut by_sid, &replicas, 0).await;
    let token = replicas
        .op
        .logout_token(json!({"sub": null}), Signing::Normal);
    assert_eq!(backchannel(&replicas, 1, &token).await, StatusCode::OK);
    assert_eq!(user_at(&mut by_sid, &replicas, 0).await, None);
    assert_eq!(
        backchannel(&replicas, 0, &token).await,
        StatusCode::BAD_REQUEST,
        "the same jti on the other replica is a replay"
    );

    replicas.op.with(|s| s.next_claims = json!({"sid": null}));
    let mut first = Browser::new();
    log_in_at(&mut first, &replicas, 0).await;
    replicas.op.with(|s| s.next_claims = json!({"sid": null}));
    let mut second = Browser::new();
    log_in_at(&mut second, &replicas, 1).await;
    replicas.clock.advance(Duration::from_secs(5));
    let token = replicas
        .op
        .logout_token(json!({"sid": null, "sub": "alice"}), Signing::Normal);
    assert_eq!(backchannel(&replicas, 1, &token).await, StatusCode::OK);
    assert_eq!(user_at(&mut first, &replicas, 1).await, None);
    assert_eq!(user_at(&mut second, &replicas, 0).await, None);

    // A session made after the logout token is not touched by it.
    let mut later = Browser::new();
    log_in_at(&mut later, &replicas, 0).await;
    assert_eq!(
        user_at(&mut later, &replicas, 1).await.as_deref(),
        Some("alice")
    );
    replicas.shutdown().await;
}

#[tokio::test]
async fn operator_revocation_on_one_replica_and_from_the_cli_reaches_the_other() {
    let replicas = replicas(2, redis::SHARED, "operator", "").await;
    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    assert_eq!(
        admin_revoke(&replicas, 0, "sub=alice").await,
        StatusCode::OK
    );
    assert_eq!(user_at(&mut browser, &replicas, 1).await, None);

    // The CLI, straight in Redis, with the replicas' own configuration.
    let mut again = Browser::new();
    log_in_at(&mut again, &replicas, 1).await;
    assert_eq!(
        user_at(&mut again, &replicas, 0).await.as_deref(),
        Some("alice")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sessiongate.toml");
    let secret = "c2Vzc2lvbmdhdGUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ==";
    std::fs::write(
        &path,
        format!(
            "[server]\npublic_url = \"http://127.0.0.1:4180\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n\
             [oidc]\nissuer = \"http://127.0.0.1:1/\"\nclient_id = \"x\"\n\
             [session]\nsecrets = [\"{secret}\"]\nstore = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{}\"\n",
            redis::SHARED,
            replicas.prefix
        ),
    )
    .expect("write config");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sessiongate"))
            .args(["revoke", "--sub", "alice", "--config"])
            .arg(&path)
            .output()
            .expect("the binary runs")
    })
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(user_at(&mut again, &replicas, 0).await, None);
    replicas.shutdown().await;
}

#[tokio::test]
async fn fifty_requests_on_two_replicas_at_token_expiry_share_one_refresh() {
    let replicas = replicas(2, redis::SHARED, "refresh", "").await;
    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    replicas
        .op
        .with(|s| s.refresh = RefreshBehaviour::Slow(Duration::from_millis(300)));
    replicas.clock.advance(Duration::from_secs(250));
    let mut tasks = Vec::new();
    for request in 0..50 {
        let mut tab = browser.clone();
        let url = replicas.url(request % 2, "/echo");
        tasks.push(tokio::spawn(async move { tab.fetch(&url).await.status }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), StatusCode::OK);
    }
    assert_eq!(
        replicas.op.refresh_calls.load(Ordering::SeqCst),
        1,
        "one token-endpoint call across both replicas"
    );
    // Both replicas go on with the rotated token, without refreshing again.
    replicas.clock.advance(Duration::from_secs(30));
    assert_eq!(
        user_at(&mut browser, &replicas, 0).await.as_deref(),
        Some("alice")
    );
    assert_eq!(
        user_at(&mut browser, &replicas, 1).await.as_deref(),
        Some("alice")
    );
    assert_eq!(replicas.op.refresh_calls.load(Ordering::SeqCst), 1);
    replicas.shutdown().await;
}

#[tokio::test]
async fn idle_sessions_end_and_activity_extends_the_entry() {
    let replicas = replicas(
        1,
        redis::SHARED,
        "idle",
        "[session]\nidle_timeout = \"10m\"\ntouch_interval = \"1m\"\n",
    )
    .await;
    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    for _ in 0..3 {
        replicas.clock.advance(Duration::from_secs(8 * 60));
        assert_eq!(
            user_at(&mut browser, &replicas, 0).await.as_deref(),
            Some("alice")
        );
    }
    replicas.clock.advance(Duration::from_secs(11 * 60));
    assert_eq!(
        user_at(&mut browser, &replicas, 0).await,
        None,
        "idle past 10m"
    );
    replicas.shutdown().await;
}

#[tokio::test]
async fn redis_frozen_mid_test_gives_503_on_protected_paths_and_then_recovers() {
    let server = RedisServer::start();
    let replicas = replicas(1, &server.url(), "frozen", "").await;
    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    assert_eq!(readyz(&replicas, 0).await.0, StatusCode::OK);

    server.pause();
    let protected = browser.fetch(&replicas.url(0, "/echo")).await;
    assert_eq!(protected.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        protected.text().contains("session_store_unavailable"),
        "{}",
        protected.text()
    );
    assert!(
        protected.set_cookies().is_empty(),
        "the session cookie is kept"
    );
    let public = browser.fetch(&replicas.url(0, "/static/app.css")).await;
    assert_eq!(public.status, StatusCode::OK, "public paths need no store");
    let (status, why) = readyz(&replicas, 0).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(why.contains("session store"), "{why}");
    let admin = replicas.gateways[0].admin.expect("admin listener");
    let (_, _, metrics) = common::get(&format!("http://{admin}/metrics")).await;
    assert!(
        String::from_utf8_lossy(&metrics)
            .contains("sessiongate_session_store_errors_total{operation=\"load\"}"),
        "the failure is counted"
    );

    server.resume();
    let mut recovered = false;
    for _ in 0..100 {
        if user_at(&mut browser, &replicas, 0).await.as_deref() == Some("alice") {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recovered,
        "the same session is valid again, without a restart"
    );
    assert_eq!(readyz(&replicas, 0).await.0, StatusCode::OK);
    replicas.shutdown().await;
}

/// Two replicas on `redis_url`, a login on the first, and the session used on the second.
async fn logged_in_on_two_replicas(redis_url: &str, test: &str) -> (Replicas, Browser) {
    let replicas = replicas(2, redis_url, test, "").await;
    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    assert_eq!(
        user_at(&mut browser, &replicas, 1).await.as_deref(),
        Some("alice")
    );
    (replicas, browser)
}

#[tokio::test]
async fn a_three_node_cluster_shares_sessions_and_revocations() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .expect("join");
    let (replicas, mut browser) = logged_in_on_two_replicas(&cluster.url(), "cluster").await;
    assert!(
        !cluster.keys(&replicas.prefix).is_empty(),
        "the session lives in the cluster"
    );
    let mut copy = browser.clone();
    browser.navigate(&replicas.url(1, "/oauth2/sign_out")).await;
    assert_eq!(user_at(&mut copy, &replicas, 0).await, None);

    let mut other = Browser::new();
    log_in_at(&mut other, &replicas, 1).await;
    assert_eq!(
        admin_revoke(&replicas, 0, "sub=alice").await,
        StatusCode::OK
    );
    assert_eq!(user_at(&mut other, &replicas, 0).await, None);
    replicas.shutdown().await;
}

#[tokio::test]
async fn a_sentinel_url_finds_the_master() {
    let sentinel = tokio::task::spawn_blocking(RedisSentinel::start)
        .await
        .expect("join");
    let (replicas, _browser) = logged_in_on_two_replicas(&sentinel.url(), "sentinel").await;
    assert!(
        !redis::keys(sentinel.master.port, &replicas.prefix).is_empty(),
        "the session lives on the master the sentinel named"
    );
    replicas.shutdown().await;
}

/// Opens a WebSocket on `replica` with the browser's session.
async fn websocket_on(replicas: &Replicas, replica: usize, browser: &Browser) -> WebSocket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/ws", replicas.gateways[replica].addr)
        .into_client_request()
        .expect("request");
    let headers = request.headers_mut();
    headers.insert("origin", replicas.url(replica, "").parse().expect("origin"));
    headers.insert("cookie", browser.cookie_header().parse().expect("cookie"));
    tokio_tungstenite::connect_async(request)
        .await
        .expect("handshake")
        .0
}

type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The close code the gateway sent, waiting at most 2 s.
async fn closed_within_2s(socket: &mut WebSocket) -> Option<u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("closed within 2 s")
}

#[tokio::test]
async fn ending_a_session_on_one_replica_closes_its_websocket_on_the_other() {
    let (replicas, mut browser) = logged_in_on_two_replicas(redis::SHARED, "websocket").await;
    let mut socket = websocket_on(&replicas, 0, &browser).await;
    browser.navigate(&replicas.url(1, "/oauth2/sign_out")).await;
    assert_eq!(closed_within_2s(&mut socket).await, Some(1008), "sign-out");

    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    let mut socket = websocket_on(&replicas, 0, &browser).await;
    let token = replicas
        .op
        .logout_token(json!({"sub": null}), Signing::Normal);
    assert_eq!(backchannel(&replicas, 1, &token).await, StatusCode::OK);
    assert_eq!(
        closed_within_2s(&mut socket).await,
        Some(1008),
        "back-channel"
    );

    replicas
        .op
        .with(|s| s.next_claims = json!({"sid": "op-session-2"}));
    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    let mut socket = websocket_on(&replicas, 0, &browser).await;
    assert_eq!(
        admin_revoke(&replicas, 1, "sub=alice").await,
        StatusCode::OK
    );
    assert_eq!(closed_within_2s(&mut socket).await, Some(1008), "operator");
    replicas.shutdown().await;
}

#[tokio::test]
async fn with_websocket_activity_a_busy_socket_keeps_its_session_alive() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let replicas = replicas(
        1,
        redis::SHARED,
        "ws-activity",
        "[session]\nidle_timeout = \"10m\"\nwebsocket_activity = true\n",
    )
    .await;
    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    let mut socket = websocket_on(&replicas, 0, &browser).await;
    // Three rounds of six minutes: past the idle timeout, but never idle for ten minutes.
    for round in 0..3 {
        replicas.clock.advance(Duration::from_secs(6 * 60));
        socket.send(Message::text("busy")).await.expect("send");
        let echoed = socket.next().await.expect("open").expect("frame");
        assert_eq!(echoed, Message::text("busy"), "round {round}");
        // Let a sweep slide the stored session.
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
    assert_eq!(
        user_at(&mut browser, &replicas, 0).await.as_deref(),
        Some("alice"),
        "the socket's activity kept the session"
    );
    replicas.shutdown().await;
}

#[tokio::test]
async fn a_form_post_kept_on_one_replica_is_sent_on_from_the_other() {
    let replicas = replicas(2, redis::SHARED, "preserve", "").await;
    let mut browser = Browser::new();
    log_in_at(&mut browser, &replicas, 0).await;
    replicas.clock.advance(Duration::from_secs(2 * 3600));
    let form_headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "text/html"),
        ("sec-fetch-mode", "navigate"),
    ];
    let sent = browser
        .request(
            "POST",
            &replicas.url(0, "/echo/form"),
            &form_headers,
            full("field=kept+in+redis"),
        )
        .await;
    assert_eq!(sent.status, StatusCode::FOUND);
    let kept = redis::keys(SHARED_PORT, &format!("{}post:", replicas.prefix));
    assert_eq!(kept.len(), 1, "kept in the shared store");
    let stored = redis::cli(SHARED_PORT, &["GET", &kept[0]]);
    assert!(
        !stored.windows(4).any(|w| w == b"kept"),
        "sealed: the form is not readable in Redis"
    );
    let page = browser.navigate(&op::approve(&sent.location()).await).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    let start = text.find("value=\"").expect("token") + 7;
    let token = &text[start..start + 96];
    let replayed = browser
        .request(
            "POST",
            &replicas.url(1, "/echo/form"),
            &form_headers,
            full(format!("__sessiongate_replay={token}")),
        )
        .await;
    assert_eq!(replayed.status, StatusCode::OK, "{}", replayed.text());
    assert_eq!(Echo::parse(&replayed.body).0["body"], "field=kept+in+redis");
    replicas.shutdown().await;
}
