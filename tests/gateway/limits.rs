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

/// Sends `head` and `body_len` bytes of body on a kept-alive connection, reads the answer,
/// then sends a second request on the same connection; both answers, as the gateway sent
/// them until it closed.
async fn upload_then_get(addr: std::net::SocketAddr, head: &str, body_len: usize) -> String {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = head.to_string();
    // Written while the answer is read: a gateway that stopped reading would stall the write.
    let uploading = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(&vec![b'x'; body_len]).await?;
        writer.flush().await?;
        Ok::<_, std::io::Error>(writer)
    });
    let mut received = Vec::new();
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = complete_response(&received) {
                return end;
            }
            let n = reader
                .read(&mut chunk)
                .await
                .expect("no broken connection while reading");
            assert!(n > 0, "closed before the first answer was complete");
            received.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the first answer within 10 s");
    let mut writer = uploading
        .await
        .expect("writer task")
        .expect("no broken connection while uploading");
    writer
        .write_all(b"GET /favicon.ico HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .expect("the connection is still open for a second request");
    tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut received))
        .await
        .expect("the second answer within 10 s")
        .expect("no broken connection while reading the second answer");
    assert!(received.len() > first, "no second answer");
    String::from_utf8_lossy(&received).into_owned()
}

/// Where the first response in `bytes` ends, once it is all there (it has a Content-Length).
fn complete_response(bytes: &[u8]) -> Option<usize> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    (bytes.len() >= head_end + length).then_some(head_end + length)
}

#[tokio::test]
async fn an_upload_the_gateway_refuses_itself_is_answered_and_the_connection_kept() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(upstream.addr, "")).await;
    // Two MiB the gateway has no use for: no session, and the provider (nobody listens at
    // the test issuer) cannot be asked, so the gateway answers 503 itself.
    let len = 2 << 20;
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: a\r\nX-Requested-With: XMLHttpRequest\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    );
    let answers = upload_then_get(gateway.addr, &head, len).await;
    let statuses: Vec<&str> = answers
        .lines()
        .filter(|line| line.starts_with("HTTP/1.1 "))
        .collect();
    // The second answer (to a plain GET, also without a session) is the point: the
    // connection outlived the upload nobody read.
    assert_eq!(
        statuses, ["HTTP/1.1 503 Service Unavailable"; 2],
        "{answers}"
    );
    assert!(answers.contains("idp_unavailable"), "{answers}");
}

#[tokio::test]
async fn an_upload_to_an_upstream_that_is_down_gets_its_502() {
    // A port nobody listens on: the gateway answers 502 itself, the body never read.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let config = common::config(addr, "[access]\npublic_paths = [\"/\"]\n");
    let gateway = common::start(config).await;
    let len = 1 << 20;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\n\r\n"
    );
    let answers = upload_then_get(gateway.addr, &head, len).await;
    let statuses: Vec<&str> = answers
        .lines()
        .filter(|line| line.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(statuses, ["HTTP/1.1 502 Bad Gateway"; 2], "{answers}");
}
