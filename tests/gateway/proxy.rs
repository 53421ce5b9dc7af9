//! Requests and responses pass through intact; failures of the upstream get clear answers.

use http::{Method, Request, StatusCode};

use crate::common::{self, Echo, full, send};

const PUBLIC: &str = "[access]\npublic_paths = [\"/\"]\n";

#[tokio::test]
async fn methods_and_status_codes_pass_through() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(upstream.addr, PUBLIC)).await;
    let client = common::client();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(gateway.url("/echo/m"))
            .body(full(""))
            .expect("request");
        let (status, _, body) = send(&client, request).await;
        assert_eq!(status, StatusCode::OK, "{method}");
        assert_eq!(Echo::parse(&body).0["method"], method);
    }
    let head = Request::head(gateway.url("/echo/h"))
        .body(full(""))
        .expect("request");
    let (status, headers, body) = send(&client, head).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-upstream"], "yes");
    assert!(body.is_empty());
    for code in [201, 204, 301, 304, 400, 403, 404, 418, 500, 503] {
        let (status, headers, _) = common::get(&gateway.url(&format!("/status/{code}"))).await;
        assert_eq!(status.as_u16(), code);
        assert_eq!(
            headers["x-upstream"], "yes",
            "{code} came from the upstream"
        );
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn headers_query_and_body_arrive_intact() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(upstream.addr, PUBLIC)).await;
    let request = Request::post(gateway.url("/echo/path%20with/%E2%9C%93?a=1&b=two%20words&a=3"))
        .header("host", "app.example.com")
        .header("x-custom", "one")
        .header("x-custom", "two")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", "a=1; b=2")
        .body(full("field=value&other=%F0%9F%98%80"))
        .expect("request");
    let (status, headers, body) = send(&common::client(), request).await;
    assert_eq!(status, StatusCode::OK);
    let echo = Echo::parse(&body);
    assert_eq!(echo.0["path"], "/echo/path%20with/%E2%9C%93");
    assert_eq!(echo.0["query"], "a=1&b=two%20words&a=3");
    assert_eq!(echo.0["body"], "field=value&other=%F0%9F%98%80");
    assert_eq!(echo.header("x-custom"), vec!["one", "two"]);
    assert_eq!(
        echo.header("host"),
        vec!["app.example.com"],
        "Host is preserved by default"
    );
    assert_eq!(echo.header("cookie"), vec!["a=1; b=2"]);
    assert_eq!(
        echo.header("content-type"),
        vec!["application/x-www-form-urlencoded"]
    );
    // The upstream's hop-by-hop headers stop at the gateway; its own headers pass.
    assert_eq!(headers["x-upstream"], "yes");
    assert!(!headers.contains_key("x-upstream-hop"));
    assert!(!headers.contains_key("keep-alive"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_do_not_reach_the_upstream() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(upstream.addr, PUBLIC)).await;
    let request = Request::get(gateway.url("/echo"))
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic eDp5")
        .header("proxy-connection", "keep-alive")
        .header("upgrade", "h2c")
        .header("x-keep-me", "1")
        .body(full(""))
        .expect("request");
    let (_, _, body) = send(&common::client(), request).await;
    let echo = Echo::parse(&body);
    for gone in [
        "x-drop-me",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(echo.header(gone).is_empty(), "{gone} reached the upstream");
    }
    assert_eq!(echo.header("x-keep-me"), vec!["1"]);
    gateway.shutdown().await;
}

#[tokio::test]
async fn forwarding_headers_are_set_and_only_trusted_peers_extend_them() {
    let upstream = common::upstream().await;
    let untrusted = common::start(common::config(upstream.addr, PUBLIC)).await;
    let spoofed = |url: String| {
        Request::get(url)
            .header("host", "app.example.com")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "evil.example")
            .header("forwarded", "for=6.6.6.6")
            .header("x-real-ip", "6.6.6.6")
            .body(full(""))
            .expect("request")
    };
    let (_, _, body) = send(&common::client(), spoofed(untrusted.url("/echo"))).await;
    let echo = Echo::parse(&body);
    assert_eq!(echo.header("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(echo.header("x-forwarded-proto"), vec!["http"]);
    assert_eq!(echo.header("x-forwarded-host"), vec!["app.example.com"]);
    assert_eq!(echo.header("x-real-ip"), vec!["127.0.0.1"]);
    assert!(echo.header("forwarded").is_empty());
    untrusted.shutdown().await;

    let trusting =
        "[access]\npublic_paths = [\"/\"]\n[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n";
    let trusted = common::start(common::config(upstream.addr, trusting)).await;
    let (_, _, body) = send(&common::client(), spoofed(trusted.url("/echo"))).await;
    let echo = Echo::parse(&body);
    assert_eq!(echo.header("x-forwarded-for"), vec!["6.6.6.6, 127.0.0.1"]);
    assert_eq!(echo.header("x-forwarded-proto"), vec!["https"]);
    assert_eq!(echo.header("x-forwarded-host"), vec!["evil.example"]);
    assert_eq!(echo.header("x-real-ip"), vec!["6.6.6.6"]);
    trusted.shutdown().await;
}

#[tokio::test]
async fn host_can_be_rewritten_to_the_upstream_and_a_base_path_prefixed() {
    let upstream = common::upstream().await;
    let mut config = common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/\"]\n[upstream]\npreserve_host = false\n",
    );
    config.upstream.url = format!("http://{}/echo/base/", upstream.addr)
        .parse()
        .expect("url");
    let gateway = common::start(config).await;
    let request = Request::get(gateway.url("/page?x=1"))
        .header("host", "app.example.com")
        .body(full(""))
        .expect("request");
    let (_, _, body) = send(&common::client(), request).await;
    let echo = Echo::parse(&body);
    assert_eq!(echo.0["path"], "/echo/base/page");
    assert_eq!(echo.0["query"], "x=1");
    assert_eq!(echo.header("host"), vec![upstream.addr.to_string()]);
    assert_eq!(echo.header("x-forwarded-host"), vec!["app.example.com"]);
    gateway.shutdown().await;
}

#[tokio::test]
async fn http2_clients_are_served_and_forwarded_as_http11() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(upstream.addr, PUBLIC)).await;
    let request = Request::post(gateway.url("/echo/h2"))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(full("over h2"))
        .expect("request");
    let response = common::h2_client()
        .request(request)
        .await
        .expect("h2 request");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    use http_body_util::BodyExt;
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let echo = Echo::parse(&body);
    assert_eq!(echo.0["version"], "HTTP/1.1");
    assert_eq!(echo.0["body"], "over h2");
    assert_eq!(
        echo.header("cookie"),
        vec!["a=1; b=2"],
        "split h2 cookies are joined"
    );
    assert_eq!(
        echo.header("host"),
        vec![gateway.addr.to_string()],
        "h2 :authority becomes Host"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn an_upstream_that_is_down_answers_502_in_the_format_asked_for() {
    // Bind and drop, so the port is (very likely) closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let gateway = common::start(common::config(closed, PUBLIC)).await;
    let json = Request::get(gateway.url("/x"))
        .header("accept", "application/json")
        .body(full(""))
        .expect("request");
    let (status, headers, body) = send(&common::client(), json).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["content-type"], "application/json");
    let parsed: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(parsed["error"], "upstream_unavailable");

    let html = Request::get(gateway.url("/x"))
        .header("accept", "text/html")
        .body(full(""))
        .expect("request");
    let (status, headers, body) = send(&common::client(), html).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(String::from_utf8_lossy(&body).contains("<h1>Bad Gateway</h1>"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_slow_upstream_answers_504_without_hanging() {
    let upstream = common::upstream().await;
    let config = common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/\"]\n[upstream]\nresponse_timeout = \"300ms\"\n",
    );
    let gateway = common::start(config).await;
    let started = tokio::time::Instant::now();
    let (status, _, body) = common::get(&gateway.url("/slow/10000")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&body).contains("did not answer in time"));
    let (status, _, _) = common::get(&gateway.url("/slow/10")).await;
    assert_eq!(status, StatusCode::OK, "a fast answer still passes");
    gateway.shutdown().await;
}

#[tokio::test]
async fn protected_paths_are_not_served_without_a_session() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/static/\"]\napi_paths = [\"/api/\"]\n",
    ))
    .await;
    // This gateway's identity provider is unreachable, so nothing protected can be served.
    for path in ["/", "/private", "/api/orders", "/statics"] {
        let (status, headers, _) = common::get(&gateway.url(path)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            !headers.contains_key("x-upstream"),
            "{path} must not reach the upstream"
        );
    }
    let (status, headers, _) = common::get(&gateway.url("/static/echo")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-upstream"], "yes");
    gateway.shutdown().await;
}

#[tokio::test]
async fn ambiguous_paths_and_the_gateway_prefix_never_reach_the_upstream() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/static/\"]\n",
    ))
    .await;
    for path in [
        "/static/../admin",
        "/static/..;/admin",
        "/static/%2e%2e/admin",
        "/static/..%2fadmin",
    ] {
        let (status, headers, _) = common::get(&gateway.url(path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(!headers.contains_key("x-upstream"), "{path}");
    }
    let (status, headers, _) = common::get(&gateway.url("/oauth2/anything")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!headers.contains_key("x-upstream"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn an_upstream_that_never_accepts_answers_504_after_the_connect_timeout() {
    // A listener whose accept queue is full: further SYNs go unanswered, so connecting hangs.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    let listener = socket.listen(0).expect("listen");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(stream);
        }
    }
    let config = common::config(
        addr,
        "[access]\npublic_paths = [\"/\"]\n[upstream]\nconnect_timeout = \"300ms\"\n",
    );
    let gateway = common::start(config).await;
    let started = tokio::time::Instant::now();
    let (status, _, body) = common::get(&gateway.url("/x")).await;
    assert_eq!(
        status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop((listener, fillers));
    gateway.shutdown().await;
}

#[tokio::test]
async fn connect_requests_are_refused() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(upstream.addr, PUBLIC)).await;
    let request =
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n";
    let response = common::raw(gateway.addr, request).await;
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn h2c_upgrade_requests_are_forwarded_as_plain_requests() {
    // A relayed h2c upgrade would let the client talk to the upstream directly, past every
    // check the gateway makes ("h2c smuggling").
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(upstream.addr, PUBLIC)).await;
    let request = "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
                   Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    let response = common::raw(gateway.addr, request).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let echo = Echo::parse(common::raw_body(&response).as_bytes());
    assert!(echo.header("upgrade").is_empty());
    assert!(echo.header("http2-settings").is_empty());
    gateway.shutdown().await;
}
