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
