//! What the integration tests share: a real upstream HTTP server with a few behaviours, the
//! gateway itself started in-process on port 0, and an HTTP client.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sessiongate::{Config, Environment, Listeners};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub type BoxBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(bytes: impl Into<Bytes>) -> BoxBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body of `len` bytes made of repeated 64 KiB chunks, generated as it is read.
pub fn generated(len: u64) -> BoxBody {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let stream = futures_util::stream::unfold(len, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(chunk.len() as u64);
            Some((
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(
                    chunk.slice(..n as usize),
                )),
                left - n,
            ))
        }
    });
    StreamBody::new(stream).boxed()
}

/// The upstream application the gateway forwards to.
///
/// - `/echo...`: JSON with the method, path and query, every header, and the body.
/// - `/status/N`: answers status N.
/// - `/slow/MS`: answers after MS milliseconds.
/// - `/download/N`: a generated body of N bytes.
/// - `/upload`: reads the body and answers with its length.
/// - `/ws`: a WebSocket echo server.
pub struct Upstream {
    pub addr: SocketAddr,
}

pub async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req| async move {
                    Ok::<_, Infallible>(upstream_answer(req).await)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Upstream { addr }
}

async fn upstream_answer(mut req: Request<Incoming>) -> Response<BoxBody> {
    let path = req.uri().path().to_string();
    let reply = |status: u16, body: BoxBody| {
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::from_u16(status).expect("status");
        response
    };
    if let Some(code) = path.strip_prefix("/status/") {
        let mut response = reply(code.parse().unwrap_or(500), full(format!("status {code}")));
        response
            .headers_mut()
            .insert("x-upstream", "yes".parse().expect("value"));
        return response;
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        return reply(200, full("slow"));
    }
    if let Some(n) = path.strip_prefix("/download/") {
        return reply(200, generated(n.parse().unwrap_or(0)));
    }
    if let Some(kind) = path.strip_prefix("/page") {
        const PAGE: &str = "<!doctype html><html><body><h1>Orders</h1></body></html>";
        let (body, encoding) = match kind {
            // Split so that `</body>` spans two frames.
            "-split" => {
                let frames = ["<html><body><p>a</p></bo", "dy></html>"].map(|f| {
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from(f)))
                });
                (
                    StreamBody::new(futures_util::stream::iter(frames)).boxed(),
                    None,
                )
            }
            "-gzip" => (full(PAGE), Some("gzip")),
            _ => (full(PAGE), None),
        };
        let mut response = reply(200, body);
        let headers = response.headers_mut();
        headers.insert(
            "content-type",
            "text/html; charset=utf-8".parse().expect("value"),
        );
        if let Some(encoding) = encoding {
            headers.insert("content-encoding", encoding.parse().expect("value"));
        }
        return response;
    }
    if path == "/upload" {
        let mut body = req.into_body();
        let mut total: u64 = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => total += frame.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => return reply(400, full("broken body")),
            }
        }
        return reply(200, full(total.to_string()));
    }
    if path == "/ws" {
        return websocket_echo(&mut req);
    }
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let version = format!("{:?}", req.version());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::json!({
        "method": method,
        "path": path,
        "query": query,
        "version": version,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut response = reply(200, full(json.to_string()));
    let headers = response.headers_mut();
    headers.insert("content-type", "application/json".parse().expect("value"));
    headers.insert("x-upstream", "yes".parse().expect("value"));
    // Hop-by-hop headers the gateway must not pass on to the client.
    headers.insert("connection", "x-upstream-hop".parse().expect("value"));
    headers.insert("x-upstream-hop", "must-not-pass".parse().expect("value"));
    headers.insert("keep-alive", "timeout=5".parse().expect("value"));
    response
}

/// Close codes the WebSocket echo server received, by the `id` of `/ws?id=...`.
pub fn websocket_close_received(id: &str) -> Option<u16> {
    websocket_closes().lock().expect("closes").get(id).copied()
}

fn websocket_closes() -> &'static std::sync::Mutex<std::collections::HashMap<String, u16>> {
    static CLOSES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, u16>>> =
        std::sync::OnceLock::new();
    CLOSES.get_or_init(Default::default)
}

fn websocket_echo(req: &mut Request<Incoming>) -> Response<BoxBody> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return Response::builder()
            .status(400)
            .body(full("not a websocket"))
            .expect("response");
    };
    let accept = derive_accept_key(key.as_bytes());
    let id = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.into_owned());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        use futures_util::{SinkExt, StreamExt};
        while let Some(Ok(message)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = &message {
                if let (Some(id), Some(frame)) = (&id, frame) {
                    websocket_closes()
                        .lock()
                        .expect("closes")
                        .insert(id.clone(), u16::from(frame.code));
                }
                break;
            }
            if ws.send(message).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(full(""))
        .expect("response")
}

pub mod browser;
pub mod op;
pub mod redis;

/// A configuration for tests. `extra_toml` is merged in, key by key; parts separated by a
/// `---` line are merged one after the other, so each may repeat a section.
pub fn config(upstream: SocketAddr, extra_toml: &str) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:4180"
shutdown_grace = "5s"
{extra_server}

[upstream]
url = "http://{upstream}"

[oidc]
issuer = "http://127.0.0.1:1/"
client_id = "test"

[session]
secrets = ["{secret}"]
"#,
        extra_server = "",
        secret = "c2Vzc2lvbmdhdGUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ=="
    );
    let text = extra_toml
        .split("\n---\n")
        .fold(text, |text, part| merge(&text, part));
    Config::parse(&text, &Environment::default())
        .unwrap_or_else(|e| panic!("test config is valid: {e}"))
}

/// Adds the keys of `extra` to `base` (tables merged one level deep).
fn merge(base: &str, extra: &str) -> String {
    let mut base: toml::Table = base.parse().expect("base TOML");
    let extra: toml::Table = extra.parse().expect("extra TOML");
    for (section, value) in extra {
        match (
            base.get_mut(&section).and_then(toml::Value::as_table_mut),
            value,
        ) {
            (Some(existing), toml::Value::Table(more)) => existing.extend(more),
            (_, value) => {
                base.insert(section, value);
            }
        }
    }
    base.to_string()
}

/// A gateway running in-process; dropping `stop` (or sending on it) shuts it down.
pub struct Gateway {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<()>,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.done)
            .await
            .expect("the gateway stops within its grace")
            .expect("run did not panic");
    }
}

pub async fn start(config: Config) -> Gateway {
    start_with(config, sessiongate::Deps::system()).await
}

pub async fn start_with(config: Config, deps: sessiongate::Deps) -> Gateway {
    start_inner(config, deps, true).await
}

/// As [`start_with`], keeping the configured `public_url` (a proxy in front answers there).
pub async fn start_behind(config: Config, deps: sessiongate::Deps) -> Gateway {
    start_inner(config, deps, false).await
}

async fn start_inner(mut config: Config, deps: sessiongate::Deps, own_url: bool) -> Gateway {
    let main = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind gateway");
    let addr = main.local_addr().expect("gateway addr");
    if own_url {
        // The browser must come back to this very gateway after login.
        config.server.public_url = format!("http://{addr}").parse().expect("url");
    }
    let admin_listener = match config.server.admin_listen {
        Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind admin")),
        None => None,
    };
    let admin = admin_listener
        .as_ref()
        .map(|l| l.local_addr().expect("admin addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        let listeners = Listeners {
            main,
            admin: admin_listener,
        };
        sessiongate::run(listeners, config, deps, async {
            let _ = stopped.await;
        })
        .await
        .expect("gateway runs");
    });
    Gateway {
        addr,
        admin,
        stop: Some(stop),
        done,
    }
}

pub fn client() -> Client<HttpConnector, BoxBody> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub fn h2_client() -> Client<HttpConnector, BoxBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// Sends a request and reads the whole answer.
pub async fn send(
    client: &Client<HttpConnector, BoxBody>,
    request: Request<BoxBody>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let response = client
        .request(request)
        .await
        .expect("request reaches the gateway");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body arrives").to_bytes();
    (parts.status, parts.headers, body)
}

pub async fn get(url: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    let request = Request::get(url).body(full("")).expect("request");
    send(&client(), request).await
}

/// Sends raw request bytes (exactly the spelling given) and returns everything the server
/// sent until it closed the connection, or for 10 s at most.
pub async fn raw(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// The body of a raw HTTP/1.1 response (no chunked encoding expected).
pub fn raw_body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// The upstream's `/echo` answer, parsed.
pub struct Echo(pub serde_json::Value);

impl Echo {
    pub fn parse(body: &[u8]) -> Self {
        Self(serde_json::from_slice(body).expect("echo JSON"))
    }

    /// Every value the upstream received for `name` (lower case).
    pub fn header(&self, name: &str) -> Vec<String> {
        self.0["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str().expect("value").to_string())
            .collect()
    }

    pub fn header_names(&self) -> Vec<String> {
        self.0["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|p| p[0].as_str().expect("name").to_string())
            .collect()
    }
}
