//! The sample legacy application behind the demo gateway. Like the applications sessiongate is
//! for, it knows nothing of OpenID Connect: it trusts the identity headers it receives. Its
//! page shows who the gateway says the user is, the request exactly as it arrived (send
//! `X-Forwarded-User: admin` yourself and watch it disappear), and, through a small inline
//! script, the session's idle and absolute deadlines counting down.
//!
//! It also serves `/static/demo.css` and `/favicon.ico`, the demo's public paths, which the
//! gateway forwards without a session.

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::web::{self, Body, escape};

/// Serves the application on `listener` until the task is dropped. `auth_prefix` is where the
/// gateway's own endpoints live (`/oauth2`).
pub(crate) async fn serve(listener: TcpListener, auth_prefix: String) {
    web::serve(listener, move |request| {
        let response = respond(&request, &auth_prefix);
        async move { response }
    })
    .await;
}

fn respond(request: &Request<Incoming>, auth_prefix: &str) -> Response<Body> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/static/demo.css") => web::text(StatusCode::OK, "text/css", web::STYLE),
        (_, "/favicon.ico") => web::text(StatusCode::NO_CONTENT, "text/plain", ""),
        _ => web::html(StatusCode::OK, page(request, auth_prefix)),
    }
}

/// The identity headers the demo configuration sets (the defaults of `[headers.claims]`),
/// with the claim each one carries.
const IDENTITY_HEADERS: [(&str, &str); 4] = [
    ("x-forwarded-user", "sub"),
    ("x-forwarded-preferred-username", "preferred_username"),
    ("x-forwarded-email", "email"),
    ("x-forwarded-groups", "groups"),
];

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?;
    Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
}

fn page(request: &Request<Incoming>, auth_prefix: &str) -> String {
    let headers = request.headers();
    let identity = match header_text(headers, "x-forwarded-user") {
        Some(_) => {
            let rows: String = IDENTITY_HEADERS
                .iter()
                .map(|(name, claim)| {
                    let value = header_text(headers, name).unwrap_or_default();
                    format!(
                        "<tr><th>{name}</th><td>{}</td><td>claim <code>{claim}</code></td></tr>\n",
                        escape(&value)
                    )
                })
                .collect();
            format!(
                "<p>The gateway says you are <strong>{}</strong>.</p>\n<table>{rows}</table>",
                escape(&header_text(headers, "x-forwarded-preferred-username").unwrap_or_default())
            )
        }
        None => "<p>No identity headers: the gateway forwarded this request without a session \
                 (a public path).</p>"
            .to_owned(),
    };
    let received: String = headers
        .iter()
        .map(|(name, value)| {
            format!(
                "<tr><th>{name}</th><td>{}</td></tr>\n",
                escape(&String::from_utf8_lossy(value.as_bytes()))
            )
        })
        .collect();
    let prefix = escape(auth_prefix);
    // Sign-out ends the session here and, with `logout.rp_initiated`, at the provider.
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>sessiongate demo app</title><link rel=\"stylesheet\" href=\"/static/demo.css\"></head>\n\
         <body data-auth-prefix=\"{prefix}\">\n\
         <p class=\"warning\"><strong>sessiongate demo — development only.</strong> A sample \
         legacy application behind the gateway, signed in through the demo's development \
         identity provider.</p>\n\
         <h1>Who you are</h1>\n{identity}\n\
         <h2>Your session</h2>\n<p id=\"status\">Asking the gateway…</p>\n\
         <table>\n<tr><th>idle deadline</th><td class=\"deadline\" id=\"idle\">–</td></tr>\n\
         <tr><th>absolute deadline</th><td class=\"deadline\" id=\"absolute\">–</td></tr>\n</table>\n\
         <p>Loading a page of the application counts as activity and slides the idle deadline \
         (the gateway rewrites the session at most once per <code>touch_interval</code>). \
         Reading <code>{prefix}/session</code>, as this page does every few seconds, does not. \
         Leave the page alone past the idle deadline and the next load goes to the login form; \
         no activity keeps a session past its absolute deadline.</p>\n\
         <p><a href=\"/\">Reload (slides the session)</a> · \
         <a href=\"{prefix}/userinfo\">{prefix}/userinfo</a> · \
         <a href=\"{prefix}/sign_out\">Sign out</a></p>\n\
         <h2>The request as the application received it</h2>\n\
         <p><code>{method} {target}</code></p>\n<table>{received}</table>\n\
         <script>{SCRIPT}</script>\n</body></html>\n",
        method = request.method(),
        target = escape(&request.uri().to_string()),
    )
}

/// Polls the gateway's session status (which does not slide the session) every 5 seconds
/// and counts the deadlines down every second. Deadlines are Unix seconds on the gateway's
/// clock; `offset` corrects for a browser clock that disagrees with it.
const SCRIPT: &str = r#"
"use strict";
const endpoint = document.body.dataset.authPrefix + "/session";
const status = document.getElementById("status");
const cells = { idle: document.getElementById("idle"), absolute: document.getElementById("absolute") };
let session = null;
let offset = 0;

function gatewayNow() { return Date.now() / 1000 + offset; }

function show(cell, deadline) {
  const left = Math.max(0, Math.round(deadline - gatewayNow()));
  const at = new Date((deadline - offset) * 1000).toLocaleTimeString();
  const mmss = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
  cell.textContent = mmss + " left (at " + at + ")";
}

function render() {
  if (session === null) return;
  show(cells.idle, session.idle_deadline);
  show(cells.absolute, session.absolute_deadline);
  if (Math.min(session.idle_deadline, session.absolute_deadline) <= gatewayNow()) {
    status.textContent = "The session has ended: the next page load signs you in again.";
  }
}

function clear(message) {
  session = null;
  status.textContent = message;
  cells.idle.textContent = cells.absolute.textContent = "–";
}

async function poll() {
  let response;
  try {
    response = await fetch(endpoint, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
  } catch (error) {
    return clear("Cannot reach the gateway: " + error);
  }
  if (!response.ok) return clear("The gateway answered " + response.status + " for " + endpoint + ".");
  const body = await response.json();
  if (typeof body.now === "number") offset = body.now - Date.now() / 1000;
  if (!body.authenticated) return clear("No session: the next page load signs you in again.");
  session = body;
  status.textContent = "Session of " + body.sub + ", as the gateway sees it:";
  render();
}

poll();
setInterval(poll, 5000);
setInterval(render, 1000);
"#;
