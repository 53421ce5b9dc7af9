//! The gateway's own endpoints under `auth_prefix`: `/start`, `/callback`, `/userinfo` and
//! `/session`. None of them is ever forwarded to the application.

use axum::body::Body;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::login::LoginError;
use super::{Gateway, Outcome, redirect, response, return_url, with_cookies};
use crate::session::model as sessions;

fn json(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(format!("{body}\n")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn query_param(request: &Request<Body>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Gateway {
    pub(super) async fn endpoint(
        &self,
        endpoint: &str,
        request: Request<Body>,
        html: bool,
    ) -> (Response<Body>, Outcome) {
        match endpoint {
            "/start" => {
                let return_to =
                    return_url::safe_return_path(&query_param(&request, "rd").unwrap_or_default());
                self.start_login(
                    request.headers(),
                    &return_to,
                    false,
                    Vec::new(),
                    "endpoint",
                    "start",
                )
            }
            "/callback" => self.callback(request, html).await,
            "/userinfo" => self.userinfo(&request),
            "/session" => self.session_status(&request),
            _ => (
                response::error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "No such gateway endpoint.",
                    html,
                ),
                Outcome::answered("endpoint", "unknown endpoint"),
            ),
        }
    }

    async fn callback(&self, request: Request<Body>, html: bool) -> (Response<Body>, Outcome) {
        let query = request.uri().query().unwrap_or("").to_string();
        match self.login.callback(&query, request.headers()).await {
            Ok(mut logged_in) => {
                let now = self.deps.clock.now();
                let previous = self.cookies.read(request.headers());
                if logged_in.silent {
                    // A silent renewal continues the user's session: its absolute deadline
                    // still counts from the first login.
                    if let Some(old) = previous.session() {
                        if old.subject == logged_in.session.subject {
                            logged_in.session.created_at = old.created_at;
                        }
                    }
                }
                crate::ops::metrics::login("completed");
                let mut cookies = vec![logged_in.clear];
                cookies.extend(self.write_session(&logged_in.session, now, previous.carried));
                tracing::info!(target: "sessiongate::login", session = ?logged_in.session.id, "login completed");
                (
                    redirect(&logged_in.return_to, cookies),
                    Outcome::answered("endpoint", "login completed"),
                )
            }
            Err(LoginError::NeedsInteraction {
                error,
                return_to,
                clear,
            }) => {
                crate::ops::metrics::login("needs_interaction");
                let reason = format!("silent reauthentication refused ({error})");
                self.start_login(
                    request.headers(),
                    &return_to,
                    false,
                    vec![clear],
                    "endpoint",
                    &reason,
                )
            }
            Err(e) => {
                crate::ops::metrics::login(e.label());
                let reason = crate::error_chain(&e);
                tracing::warn!(target: "sessiongate::login", reason = %reason, "login failed");
                let status = if e.is_provider_failure() {
                    StatusCode::BAD_GATEWAY
                } else {
                    StatusCode::BAD_REQUEST
                };
                let message = match &e {
                    LoginError::Provider { .. } => "The identity provider did not sign you in.",
                    LoginError::UnknownState | LoginError::Expired => {
                        "This sign-in link has expired or was already used."
                    }
                    _ if e.is_provider_failure() => {
                        "The identity provider is unavailable. Try again in a moment."
                    }
                    _ => "Signing in failed.",
                };
                let retry = format!("{}/start?rd=%2F", self.auth_prefix);
                (
                    retry_page(status, message, &retry, html),
                    Outcome::answered("endpoint", reason),
                )
            }
        }
    }

    fn valid_session(
        &self,
        request: &Request<Body>,
    ) -> (Option<sessions::Session>, Vec<HeaderValue>) {
        let now = self.deps.clock.now();
        let (session, cookies, _) = self.load(request.headers(), now);
        (session.map(|(s, _)| s), cookies)
    }

    fn userinfo(&self, request: &Request<Body>) -> (Response<Body>, Outcome) {
        match self.valid_session(request) {
            (Some(session), _) => {
                let mut claims = serde_json::Map::new();
                claims.insert("sub".into(), Value::String(session.subject.clone()));
                for (name, value) in &session.claims {
                    claims.insert(name.clone(), value.clone());
                }
                (
                    json(StatusCode::OK, &Value::Object(claims)),
                    Outcome::answered("endpoint", "userinfo"),
                )
            }
            (None, cookies) => (
                with_cookies(
                    json(
                        StatusCode::UNAUTHORIZED,
                        &json!({"error": "unauthenticated"}),
                    ),
                    cookies,
                ),
                Outcome::answered("endpoint", "userinfo without session"),
            ),
        }
    }

    /// The session's deadlines, without sliding it: reading this must not count as activity.
    fn session_status(&self, request: &Request<Body>) -> (Response<Body>, Outcome) {
        let now = self.deps.clock.now();
        match self.valid_session(request) {
            (Some(session), _) => {
                let idle = sessions::idle_deadline(&session, &self.policy);
                let absolute = sessions::absolute_deadline(&session, &self.policy);
                let body = json!({
                    "authenticated": true,
                    "sub": session.subject,
                    "now": now,
                    "idle_deadline": idle,
                    "absolute_deadline": absolute,
                    "expires_in": idle.min(absolute).saturating_sub(now),
                });
                (
                    json(StatusCode::OK, &body),
                    Outcome::answered("endpoint", "session"),
                )
            }
            (None, cookies) => (
                with_cookies(
                    json(StatusCode::OK, &json!({"authenticated": false, "now": now})),
                    cookies,
                ),
                Outcome::answered("endpoint", "session"),
            ),
        }
    }
}

/// A failure page with a link to try again: never a redirect, so a failing provider cannot
/// cause a redirect loop.
fn retry_page(status: StatusCode, message: &str, retry: &str, html: bool) -> Response<Body> {
    if !html {
        return json(
            status,
            &json!({"error": "login_failed", "message": message, "retry": retry}),
        );
    }
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\
         <body><h1>Sign-in failed</h1><p>{message}</p><p><a href=\"{retry}\">Try again</a></p></body></html>\n"
    );
    let mut response = Response::new(Body::from(page));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
