//! The few HTTP helpers the demo's provider and application share: a serve loop, form
//! parameters, and response builders. Deliberately tiny, so that `op.rs` and `app.rs` read as
//! what they do rather than how HTTP is spelled.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Every demo response has a small body that is fully known up front.
pub(crate) type Body = Full<Bytes>;

/// Serves `handler` on `listener` (HTTP/1.1 and HTTP/2) until the task is dropped.
pub(crate) async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, say: wait a moment rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The request body, or `None` when it is over `limit` bytes or the client went away.
pub(crate) async fn read_body(request: Request<Incoming>, limit: usize) -> Option<Bytes> {
    let collected = Limited::new(request.into_body(), limit).collect().await;
    collected.ok().map(|body| body.to_bytes())
}

/// `application/x-www-form-urlencoded` parameters, from a query string or a form body, with
/// the two rules of RFC 6749 §3.1: a parameter without a value counts as absent, and no
/// parameter may appear twice.
pub(crate) struct Params(BTreeMap<String, String>);

impl Params {
    /// The parameters, or the name of one that appears twice.
    pub(crate) fn parse(encoded: &[u8]) -> Result<Self, String> {
        let mut params = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(encoded) {
            if value.is_empty() {
                continue;
            }
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(name.into_owned());
            }
        }
        Ok(Self(params))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Text made safe to put inside HTML elements and quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Everything here is about one user at one moment: never cache it (RFC 6749 §5.1 requires
    // this of token responses).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An HTML page that no other site may frame (no clickjacking of the login form).
pub(crate) fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut response = respond(status, "text/html; charset=utf-8", page);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    response
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    respond(status, "application/json", format!("{value:#}\n"))
}

pub(crate) fn text(status: StatusCode, content_type: &'static str, body: &str) -> Response<Body> {
    respond(status, content_type, body.to_owned())
}

/// `303 See Other`: the browser follows with a GET, whichever method brought it here.
pub(crate) fn redirect(location: &url::Url) -> Response<Body> {
    let mut response = respond(StatusCode::SEE_OTHER, "text/plain", String::new());
    // A serialized URL is ASCII with every control character and space percent-encoded, so it
    // is always a valid header value.
    let location = HeaderValue::from_str(location.as_str()).expect("a URL is a valid header value");
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// The style both the provider's and the application's pages use.
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;line-height:1.4}\
th{text-align:left;padding-right:1rem;vertical-align:top}td{font-family:monospace;word-break:break-all}\
.warning{background:#fff3cd;border:2px solid #d39e00;padding:.6rem 1rem}.error{color:#a00;font-weight:bold}\
label{display:block;margin:.5rem 0}input{font-size:1rem;padding:.2rem}button{font-size:1rem;padding:.3rem 1rem}\
.deadline{font-size:1.4rem;font-family:monospace}";
