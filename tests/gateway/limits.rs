//! Limits on request heads: size, count, and the time a client may take to send them.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common;

async fn status_line(addr: std::net::SocketAddr, request: &str) -> String {
    let response = common::raw(addr, request).await;
    response.lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn oversized_heads_and_too_many_headers_get_431() {
    let upstream = common::upstream().await;
    let config = common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/\"]\n[server]\nmax_header_bytes = 8192\nmax_headers = 20\n",
    );
    let gateway = common::start(config).await;

    let big = format!(
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(10_000)
    );
    assert_eq!(
        status_line(gateway.addr, &big).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );

    let mut many = String::from("GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
    for i in 0..30 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(
        status_line(gateway.addr, &many).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );

    let fine = "GET /echo HTTP/1.1\r\nHost: a\r\nX-Small: v\r\nConnection: close\r\n\r\n";
    assert_eq!(status_line(gateway.addr, fine).await, "HTTP/1.1 200 OK");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_client_sending_headers_too_slowly_is_cut_off() {
    let upstream = common::upstream().await;
    let config = common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/\"]\n[server]\nheader_read_timeout = \"300ms\"\n",
    );
    let gateway = common::start(config).await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .expect("write");
    // The head never completes: the gateway must close the connection by itself.
    let mut buffer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buffer)).await;
    assert!(
        closed.is_ok(),
        "the connection stayed open past the header timeout"
    );
    let text = String::from_utf8_lossy(&buffer);
    assert!(!text.contains("200 OK"), "{text}");
    gateway.shutdown().await;
}
