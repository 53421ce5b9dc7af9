//! The demo application behind `sessiongate demo`: a page that shows the request as the
//! application receives it, so a first-time user sees which headers the gateway adds and
//! which it removes.

use std::convert::Infallible;

use axum::body::Body;
use http::{Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Serves the demo application on `listener` until the task is dropped.
pub async fn serve_app(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                Ok::<_, Infallible>(page(&request))
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn page(request: &Request<Incoming>) -> Response<Body> {
    let mut rows = String::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes())
            .replace('&', "&amp;")
            .replace('<', "&lt;");
        rows.push_str(&format!("<tr><th>{name}</th><td>{value}</td></tr>\n"));
    }
    let target = request
        .uri()
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;");
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sessiongate demo app</title>\
         <style>body{{font-family:sans-serif;margin:2rem}}th{{text-align:left;padding-right:1rem}}</style></head>\
         <body><h1>The application received</h1><p><code>{} {target}</code></p><table>{rows}</table></body></html>\n",
        request.method()
    );
    let mut response = Response::new(Body::from(html));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
