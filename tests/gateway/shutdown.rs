//! Graceful shutdown: stop accepting, let in-flight requests and WebSockets finish within the
//! grace period, report not-ready meanwhile, then return.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use crate::common;

#[tokio::test]
async fn in_flight_requests_finish_and_new_connections_are_refused() {
    let upstream = common::upstream().await;
    let config = common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/\"]\n[server]\nadmin_listen = \"127.0.0.1:0\"\n",
    );
    let mut gateway = common::start(config).await;
    let admin = gateway.admin.expect("admin");
    let url = gateway.url("/slow/700");
    let in_flight = tokio::spawn(async move { common::get(&url).await });
    // Let the request reach the upstream before shutdown begins.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = gateway.stop.take().expect("stop").send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _, _) = common::get(&format!("http://{admin}/readyz")).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "draining means not ready"
    );

    let (status, _, body) = in_flight.await.expect("request task");
    assert_eq!(
        (status, body.as_ref()),
        (StatusCode::OK, b"slow".as_ref()),
        "the in-flight request finished"
    );
    tokio::time::timeout(Duration::from_secs(10), &mut gateway.done)
        .await
        .expect("run returns")
        .expect("no panic");
    assert!(
        tokio::net::TcpStream::connect(gateway.addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn open_websockets_keep_working_until_the_grace_ends_then_close() {
    let upstream = common::upstream().await;
    let config = common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/\"]\n[server]\nshutdown_grace = \"1s\"\n",
    );
    let mut gateway = common::start(config).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gateway.addr))
        .await
        .expect("handshake");
    let _ = gateway.stop.take().expect("stop").send(());
    ws.send(Message::text("still here"))
        .await
        .expect("send during the grace period");
    assert_eq!(
        ws.next().await.expect("answer").expect("frame"),
        Message::text("still here")
    );
    tokio::time::timeout(Duration::from_secs(10), &mut gateway.done)
        .await
        .expect("run returns after the grace")
        .expect("no panic");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(message)) if message.is_close() => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the tunnel was closed at the end of the grace period"
    );
}
