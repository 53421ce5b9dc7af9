//! The sample legacy application behind the demo gateway. Like the applications sessiongate is
//! for, it knows nothing of OpenID Connect: it trusts the identity headers it receives. Its
//! page shows the request exactly as it arrived (send `X-Forwarded-User: admin` yourself and
//! watch it disappear).

use http::{Request, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::web::{self, escape};

/// Serves the application on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener) {
    web::serve(listener, move |request| {
        let response = web::html(StatusCode::OK, page(&request));
        async move { response }
    })
    .await;
}

fn page(request: &Request<Incoming>) -> String {
    let received: String = request
        .headers()
        .iter()
        .map(|(name, value)| {
            format!(
                "<tr><th>{name}</th><td>{}</td></tr>\n",
                escape(&String::from_utf8_lossy(value.as_bytes()))
            )
        })
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>sessiongate demo app</title><style>{style}</style></head>\n<body>\
         <h1>The application received</h1>\n<p><code>{method} {target}</code></p>\n\
         <table>{received}</table>\n</body></html>\n",
        style = web::STYLE,
        method = request.method(),
        target = escape(&request.uri().to_string()),
    )
}
