//! WebSocket (HTTP/1.1 Upgrade) passes through in both directions.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common;

#[tokio::test]
async fn websocket_echo_through_the_gateway() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/\"]\n",
    ))
    .await;
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gateway.addr))
        .await
        .expect("handshake through the gateway");
    assert_eq!(response.status(), 101);
    for i in 0..20 {
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).await.expect("send");
        let echoed = ws.next().await.expect("an answer").expect("a frame");
        assert_eq!(echoed, Message::text(text));
    }
    let big = vec![7u8; 1 << 20];
    ws.send(Message::binary(big.clone()))
        .await
        .expect("send binary");
    let echoed = ws.next().await.expect("an answer").expect("a frame");
    assert_eq!(echoed.into_data().as_ref(), big.as_slice());
    ws.close(None).await.expect("close");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_refused_upgrade_is_an_ordinary_response() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/\"]\n",
    ))
    .await;
    // The upstream answers /echo with 200, not 101: the client gets that answer.
    let result = tokio_tungstenite::connect_async(format!("ws://{}/echo", gateway.addr)).await;
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 200)
        }
        other => panic!("expected an HTTP answer, got {other:?}"),
    }
    gateway.shutdown().await;
}

mod session_bound {
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use http::StatusCode;
    use serde_json::json;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use crate::common::browser::Browser;
    use crate::common::op::Signing;
    use crate::common::{self, full};
    use crate::login::{World, log_in, world};

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    /// Opens `/ws?id=<id>` with the browser's cookies and `origin`.
    async fn open(
        world: &World,
        browser: &Browser,
        id: &str,
        origin: &str,
    ) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://{}/ws?id={id}", world.gateway.addr);
        let mut request = url.into_client_request().expect("request");
        let headers = request.headers_mut();
        headers.insert("origin", origin.parse().expect("origin"));
        if !browser.jar.is_empty() {
            headers.insert("cookie", browser.cookie_header().parse().expect("cookie"));
        }
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(socket, _)| socket)
    }

    async fn echoes(socket: &mut Socket) -> bool {
        if socket.send(Message::text("ping")).await.is_err() {
            return false;
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(2), socket.next()).await,
            Ok(Some(Ok(Message::Text(text)))) if text.as_str() == "ping"
        )
    }

    /// Waits (at most 2 s, the promise) for the gateway's close frame.
    async fn closed_by_gateway(socket: &mut Socket) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    assert_eq!(frame.code, CloseCode::Policy, "1008");
                    assert_eq!(frame.reason.as_str(), "session ended");
                    return;
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("no close frame within 2 s: {other:?}"),
            }
        }
    }

    fn unique(name: &str) -> String {
        use sessiongate::clock::Random as _;
        let mut bytes = [0u8; 6];
        sessiongate::clock::OsRandom.fill(&mut bytes);
        format!(
            "{name}-{}",
            u64::from_le_bytes([
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], 0, 0
            ])
        )
    }

    async fn logged_in(world: &World) -> Browser {
        let mut browser = Browser::new();
        log_in(&mut browser, world, "/").await;
        browser
    }

    #[tokio::test]
    async fn the_handshake_needs_a_session_and_the_gateway_s_own_origin() {
        let world = world("").await;
        let origin = world.gateway.url("");
        let anonymous = open(&world, &Browser::new(), "anon", &origin).await;
        match anonymous {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "401, never a redirect"
                )
            }
            other => panic!("expected 401, got {other:?}"),
        }
        let browser = logged_in(&world).await;
        match open(&world, &browser, "foreign", "https://evil.example").await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::FORBIDDEN)
            }
            other => panic!("expected 403, got {other:?}"),
        }
        let mut socket = open(&world, &browser, "own", &origin)
            .await
            .expect("handshake");
        assert!(echoes(&mut socket).await);
        // A valid session is never disturbed: several sweeps later it still echoes.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(echoes(&mut socket).await);
        world.gateway.shutdown().await;
    }

    #[tokio::test]
    async fn sign_out_from_another_tab_closes_the_socket_at_both_ends() {
        let world = world("[server]\nadmin_listen = \"127.0.0.1:0\"\n").await;
        let mut browser = logged_in(&world).await;
        let id = unique("sign-out");
        let mut socket = open(&world, &browser, &id, &world.gateway.url(""))
            .await
            .expect("handshake");
        assert!(echoes(&mut socket).await);
        browser
            .navigate(&world.gateway.url("/oauth2/sign_out"))
            .await;
        closed_by_gateway(&mut socket).await;
        for _ in 0..40 {
            if common::websocket_close_received(&id).is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            common::websocket_close_received(&id),
            Some(1008),
            "the upstream is told too"
        );
        let admin = world.gateway.admin.expect("admin listener");
        let (_, _, metrics) = common::get(&format!("http://{admin}/metrics")).await;
        let metrics = String::from_utf8_lossy(&metrics);
        assert!(
            metrics.contains("sessiongate_websockets_closed_total{reason=\"sign_out\"}"),
            "{metrics}"
        );
        assert!(metrics.contains("sessiongate_websockets_open"), "{metrics}");
        world.gateway.shutdown().await;
    }

    #[tokio::test]
    async fn back_channel_logout_and_operator_revocation_close_sockets() {
        let world = world("[server]\nadmin_listen = \"127.0.0.1:0\"\n").await;
        let origin = world.gateway.url("");
        let first = logged_in(&world).await;
        let mut socket = open(&world, &first, &unique("bcl"), &origin)
            .await
            .expect("handshake");
        let token = world.op.logout_token(json!({"sub": null}), Signing::Normal);
        let body = format!(
            "logout_token={}",
            url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
        );
        let request = http::Request::post(world.gateway.url("/oauth2/backchannel_logout"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(full(body))
            .expect("request");
        assert_eq!(
            common::send(&common::client(), request).await.0,
            StatusCode::OK
        );
        closed_by_gateway(&mut socket).await;

        world
            .op
            .with(|s| s.next_claims = json!({"sid": "op-session-2"}));
        let second = logged_in(&world).await;
        let mut socket = open(&world, &second, &unique("operator"), &origin)
            .await
            .expect("handshake");
        assert!(echoes(&mut socket).await);
        let admin = world.gateway.admin.expect("admin listener");
        let request = http::Request::post(format!("http://{admin}/sessions/revoke?sub=alice"))
            .body(full(""))
            .expect("request");
        assert_eq!(
            common::send(&common::client(), request).await.0,
            StatusCode::OK
        );
        closed_by_gateway(&mut socket).await;
        world.gateway.shutdown().await;
    }

    #[tokio::test]
    async fn the_absolute_and_idle_deadlines_close_sockets() {
        let world = world("[session]\nidle_timeout = \"10m\"\nabsolute_timeout = \"1h\"\n").await;
        let origin = world.gateway.url("");
        let mut active = logged_in(&world).await;
        let mut socket = open(&world, &active, &unique("absolute"), &origin)
            .await
            .expect("handshake");
        // The user keeps working in pages: the idle deadline moves, the absolute one does not.
        for _ in 0..7 {
            world.clock.advance(Duration::from_secs(8 * 60));
            assert_eq!(
                active.navigate(&world.gateway.url("/echo")).await.status,
                StatusCode::OK
            );
        }
        assert!(
            echoes(&mut socket).await,
            "56 minutes in, the session is valid"
        );
        world.clock.advance(Duration::from_secs(5 * 60));
        closed_by_gateway(&mut socket).await;

        let idle = logged_in(&world).await;
        let mut socket = open(&world, &idle, &unique("idle"), &origin)
            .await
            .expect("handshake");
        assert!(
            echoes(&mut socket).await,
            "socket frames do not slide the session, but it is valid"
        );
        world.clock.advance(Duration::from_secs(11 * 60));
        closed_by_gateway(&mut socket).await;
        world.gateway.shutdown().await;
    }

    #[tokio::test]
    async fn a_refresh_refused_with_invalid_grant_closes_the_socket() {
        let world = world("").await;
        let mut browser = logged_in(&world).await;
        let mut socket = open(&world, &browser, &unique("grant"), &world.gateway.url(""))
            .await
            .expect("handshake");
        world
            .op
            .with(|s| s.refresh = crate::common::op::RefreshBehaviour::Revoked);
        world.clock.advance(Duration::from_secs(250));
        browser.navigate(&world.gateway.url("/echo")).await;
        closed_by_gateway(&mut socket).await;
        world.gateway.shutdown().await;
    }
}
