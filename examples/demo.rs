//! `cargo run --example demo`: the gateway in front of a built-in application whose page shows
//! the request exactly as the application receives it, so a first-time user sees which
//! headers the gateway adds and which it removes (send `X-Forwarded-User: admin` and watch it
//! disappear).
//!
//! For development only: it is an example, never part of the `sessiongate` binary. It runs
//! with `config/demo.toml`, filling in the demo application's address and a fresh session
//! secret; any key can still be overridden with `SESSIONGATE_<SECTION>_<KEY>`.

use std::convert::Infallible;

use axum::body::Body;
use http::{Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Serves the demo application on `listener` until the task is dropped.
async fn serve_app(listener: TcpListener) {
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

/// The demo configuration, with the demo application and a fresh session secret filled in.
const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

fn fresh_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = TcpListener::bind("127.0.0.1:0").await?;
    let env = sessiongate::Environment::from_process()
        .with(
            "SESSIONGATE_UPSTREAM_URL",
            &format!("http://{}", app.local_addr()?),
        )
        .with("SESSIONGATE_SESSION_SECRETS", &fresh_secret());
    let config = sessiongate::Config::parse(DEMO_CONFIG, &env)?;
    sessiongate::ops::logging::init(&config.log);
    tokio::spawn(serve_app(app));
    let listeners = sessiongate::Listeners::bind(&config).await?;
    println!(
        "sessiongate demo (development only): open http://{}/ in a browser; Ctrl-C stops",
        listeners.main.local_addr()?
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    sessiongate::run(listeners, config, sessiongate::Deps::system(), shutdown).await?;
    Ok(())
}
