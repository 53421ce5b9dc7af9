//! Nothing typed is lost: a form post that arrives after its session ended is kept while the
//! user logs in again, then sent on to the application, once.
//!
//! The post waits in the session store (memory for one replica, Redis when shared), sealed
//! with a key only the browser holds, named in the login attempt's cookie. When the login
//! succeeds the callback binds it to the new session and answers a small page whose form
//! posts a one-field marker to the original URL — by script at once, or by its "Continue"
//! button without JavaScript. That POST, from that session, gets the kept bytes and content
//! type swapped in: the application receives exactly what the user sent, at the URL the
//! browser shows, so relative links in its answer keep working. A second replay, another
//! browser's, or one after a failed login finds nothing to take.

use axum::body::Body;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;

use super::{Gateway, Outcome, response, return_url};
use crate::session::preserved::{PostToken, PreservedPost};

/// The form field of the replay page.
const MARKER: &str = "__sessiongate_replay";

/// How long the replay page's post may take to come back after the login.
pub(super) const REPLAY_TTL: u64 = 300;

/// A body this short may be a replay marker (the field name and a 96-character token).
const MARKER_MAX: u64 = 160;

/// `application/x-www-form-urlencoded` or `multipart/form-data`, as sent.
fn form_content_type(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or("").trim();
    (essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        || essence.eq_ignore_ascii_case("multipart/form-data"))
    .then_some(value)
}

/// A top-level form submission: `Sec-Fetch-Mode: navigate`, or, from browsers that send no
/// Sec-Fetch headers, a POST that asks for HTML.
fn is_form_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::POST {
        return false;
    }
    match headers.get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes().eq_ignore_ascii_case(b"navigate"),
        None => headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|accept| accept.contains("text/html")),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Gateway {
    /// Whether a request without a session is a form post worth keeping.
    pub(super) fn is_preservable(&self, request: &Request<Body>) -> bool {
        self.preserve_post_max > 0
            && is_form_navigation(request.method(), request.headers())
            && form_content_type(request.headers()).is_some()
            && self.login.provider.is_ready()
    }

    /// Keeps the post and sends the browser to log in; a post too large (or a store that
    /// cannot keep it) gets the plain login redirect, and a log line saying why.
    pub(super) async fn login_keeping_post(
        &self,
        request: Request<Body>,
        route: &'static str,
        cookies: Vec<HeaderValue>,
        reason: &'static str,
    ) -> (Response<Body>, Outcome) {
        let (parts, body) = request.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let return_to = return_url::safe_return_path(target);
        let content_type = form_content_type(&parts.headers).unwrap_or("").to_string();
        let limit = self.preserve_post_max;
        let too_large = declared_length(&parts.headers).is_some_and(|n| n > limit as u64);
        let body = if too_large {
            None
        } else {
            http_body_util::Limited::new(body, limit)
                .collect()
                .await
                .ok()
                .map(|b| b.to_bytes())
        };
        let Some(body) = body else {
            tracing::info!(target: "sessiongate::login", limit, "form post over session.preserve_post_max: not kept");
            return self.start_login(&parts.headers, &return_to, false, cookies, route, reason);
        };
        let post = PreservedPost {
            target: return_to.clone(),
            content_type,
            body: body.to_vec(),
        };
        let now = self.deps.clock.now();
        let ttl = super::login::LOGIN_TTL;
        match self
            .store
            .keep_post(&post, ttl, now, self.deps.random.as_ref())
            .await
        {
            Ok(token) => {
                tracing::info!(target: "sessiongate::login", bytes = post.body.len(), "form post kept while the user logs in");
                let reason = "session ended: form post kept";
                let headers = &parts.headers;
                self.start_login_keeping(
                    headers,
                    &return_to,
                    false,
                    Some(&token),
                    cookies,
                    route,
                    reason,
                )
            }
            Err(e) => {
                tracing::warn!(target: "sessiongate::login", error = %e, "form post not kept");
                self.start_login(&parts.headers, &return_to, false, cookies, route, reason)
            }
        }
    }

    /// After the login: the page that posts the kept form on, once bound to the new session.
    pub(super) fn replay_page(&self, target: &str, token: &PostToken) -> Response<Body> {
        let target = escape(target);
        let token = token.encode();
        let nonce = crate::clock::random_token(self.deps.random.as_ref(), 16);
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sending your form</title></head>\
             <body><form method=\"post\" action=\"{target}\" enctype=\"application/x-www-form-urlencoded\">\
             <input type=\"hidden\" name=\"{MARKER}\" value=\"{token}\">\
             <p>You are signed in again. Your form was kept while you signed in.</p>\
             <button type=\"submit\">Continue</button></form>\
             <script nonce=\"{nonce}\">document.forms[0].submit();</script></body></html>\n"
        );
        let mut response = Response::new(Body::from(page));
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        if let Ok(csp) = HeaderValue::from_str(&format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; form-action 'self'"
        )) {
            headers.insert(http::header::CONTENT_SECURITY_POLICY, csp);
        }
        response
    }

    /// Splits off a replay marker: a short urlencoded POST whose only field is the marker.
    /// Any other request comes back as it was (a short body read into memory).
    pub(super) async fn replay_marker(
        &self,
        request: Request<Body>,
    ) -> (Request<Body>, Option<PostToken>) {
        let short_form_post = self.preserve_post_max > 0
            && request.method() == Method::POST
            && form_content_type(request.headers())
                .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
            && declared_length(request.headers()).is_some_and(|n| n <= MARKER_MAX);
        if !short_form_post {
            return (request, None);
        }
        let (parts, body) = request.into_parts();
        let bytes = match http_body_util::Limited::new(body, MARKER_MAX as usize)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            // Shorter than it said, or longer: the application gets to see that itself.
            Err(_) => bytes::Bytes::new(),
        };
        let token = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.strip_prefix(MARKER)?.strip_prefix('='))
            .and_then(PostToken::decode);
        (Request::from_parts(parts, Body::from(bytes)), token)
    }

    /// The request with the kept post's body and content type, when `session` may have it;
    /// the refusal otherwise.
    pub(super) async fn with_kept_post(
        &self,
        mut request: Request<Body>,
        token: &PostToken,
        session: &crate::session::model::Session,
        html: bool,
    ) -> Result<Request<Body>, (Response<Body>, Outcome)> {
        let now = self.deps.clock.now();
        let refused = |reason: &str| {
            let body = response::error(
                StatusCode::CONFLICT,
                "form_not_kept",
                "This form was already sent, or was kept for someone else.",
                html,
            );
            (body, Outcome::answered("protected", reason.to_string()))
        };
        let post = match self.store.take_post(token, session, now).await {
            Ok(Some(post)) => post,
            Ok(None) => return Err(refused("replay of a form post not kept for this session")),
            Err(e) => {
                tracing::warn!(error = %e, "a kept form post could not be read");
                return Err((
                    super::store_unavailable(html),
                    Outcome::answered("protected", e.to_string()),
                ));
            }
        };
        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        if target != post.target {
            return Err(refused("replay to another URL than the kept post's"));
        }
        let headers = request.headers_mut();
        if let Ok(content_type) = HeaderValue::from_str(&post.content_type) {
            headers.insert(CONTENT_TYPE, content_type);
        }
        headers.insert(CONTENT_LENGTH, HeaderValue::from(post.body.len()));
        tracing::info!(target: "sessiongate::login", bytes = post.body.len(), "kept form post sent on after the login");
        *request.body_mut() = Body::from(post.body);
        Ok(request)
    }
}
