//! The gateway's own endpoints under `auth_prefix`: `/start`, `/callback`, `/userinfo` and
//! `/session`. None of them is ever forwarded to the application.

use axum::body::Body;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::login::LoginError;
use super::{Auth, invalid_token, store_unavailable};
use super::{Gateway, Outcome, redirect, response, return_url, with_cookies};
use super::{access, navigation};
use crate::proxy::headers::Peer;
use crate::session::model as sessions;
use crate::session::store::Lookup;

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
        peer: Peer,
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
            "/userinfo" => self.userinfo(request.headers(), html).await,
            "/session" => self.session_status(request.headers(), html).await,
            "/session.js" => {
                let mut response = Response::new(Body::from(self.session_js.clone()));
                let headers = response.headers_mut();
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/javascript; charset=utf-8"),
                );
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                (response, Outcome::answered("endpoint", "session.js"))
            }
            "/session/touch" => self.touch(request.headers(), request.method()).await,
            "/sign_out" => {
                let rd = query_param(&request, "rd").unwrap_or_default();
                self.sign_out(request.headers(), &rd, html).await
            }
            "/backchannel_logout" => self.backchannel_logout(request).await,
            "/auth" => {
                // Proxies that hand a non-2xx answer to the browser as it is (Traefik) want
                // the login redirect itself rather than a 401.
                let redirect = query_param(&request, "login").as_deref() == Some("redirect");
                self.forward_auth(request.headers().clone(), peer, redirect)
                    .await
            }
            "/jwks" if self.assertion.is_some() => {
                let keys = self
                    .assertion
                    .as_ref()
                    .map(|a| a.jwks())
                    .unwrap_or_default();
                (
                    json(StatusCode::OK, &keys),
                    Outcome::answered("endpoint", "jwks"),
                )
            }
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
                let headers = request.headers();
                let carried = self.store.carried(headers);
                if let Ok(Lookup::Found(old, handle)) = self.store.load(headers, now).await {
                    // A silent renewal continues the user's session: its absolute deadline
                    // still counts from the first login.
                    if logged_in.silent && old.subject == logged_in.session.subject {
                        logged_in.session.created_at = old.created_at;
                    }
                    // The new session replaces the old one, whoever's it was.
                    if let Err(e) = self.store.end(&old, &handle, now).await {
                        tracing::warn!(error = %e, "could not end the replaced session; it expires by itself");
                    }
                }
                let random = self.deps.random.as_ref();
                let mut cookies = vec![logged_in.clear];
                match self
                    .store
                    .create(&logged_in.session, carried, now, random)
                    .await
                {
                    Ok(written) => cookies.extend(written),
                    Err(e) => {
                        crate::ops::metrics::store_error("create");
                        tracing::warn!(target: "sessiongate::login", error = %e, "login completed but the session cannot be stored");
                        return (
                            with_cookies(store_unavailable(html), cookies),
                            Outcome::answered("endpoint", e.to_string()),
                        );
                    }
                }
                crate::ops::metrics::login("completed");
                if let Some(token) = &logged_in.preserved {
                    let ttl = super::preserve::REPLAY_TTL;
                    match self
                        .store
                        .bind_post(token, &logged_in.session, ttl, now)
                        .await
                    {
                        Ok(true) => {
                            let page = self.replay_page(&logged_in.return_to, token);
                            return (
                                with_cookies(page, cookies),
                                Outcome::answered(
                                    "endpoint",
                                    "login completed: sending the kept form",
                                ),
                            );
                        }
                        Ok(false) => {
                            tracing::info!(target: "sessiongate::login", "the kept form post expired during the login")
                        }
                        Err(e) => {
                            tracing::warn!(target: "sessiongate::login", error = %e, "the kept form post could not be bound")
                        }
                    }
                }
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

    /// The request's valid session, without sliding it; `Err` is the response to give when
    /// the store is away.
    async fn valid_session(
        &self,
        headers: &http::HeaderMap,
        html: bool,
    ) -> Result<(Option<sessions::Session>, Vec<HeaderValue>), (Response<Body>, Outcome)> {
        let now = self.deps.clock.now();
        match self.load(headers, now).await {
            Ok(Ok((session, _))) => Ok((Some(session), Vec::new())),
            Ok(Err((cookies, _))) => Ok((None, cookies)),
            Err(reason) => Err((
                store_unavailable(html),
                Outcome::answered("endpoint", reason),
            )),
        }
    }

    async fn userinfo(&self, headers: &http::HeaderMap, html: bool) -> (Response<Body>, Outcome) {
        match self.valid_session(headers, html).await {
            Err(unavailable) => unavailable,
            Ok((Some(session), _)) => {
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
            Ok((None, cookies)) => (
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
    async fn session_status(
        &self,
        headers: &http::HeaderMap,
        html: bool,
    ) -> (Response<Body>, Outcome) {
        let now = self.deps.clock.now();
        match self.valid_session(headers, html).await {
            Err(unavailable) => unavailable,
            Ok((Some(session), _)) => {
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
            Ok((None, cookies)) => (
                with_cookies(
                    json(StatusCode::OK, &json!({"authenticated": false, "now": now})),
                    cookies,
                ),
                Outcome::answered("endpoint", "session"),
            ),
        }
    }
}

impl Gateway {
    /// "Stay signed in": one request that slides the session (POST only, so that nothing
    /// can slide it by linking or prefetching).
    async fn touch(
        &self,
        headers: &http::HeaderMap,
        method: &http::Method,
    ) -> (Response<Body>, Outcome) {
        if method != http::Method::POST {
            let body = json(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "use POST"}),
            );
            return (body, Outcome::answered("endpoint", "touch without POST"));
        }
        let now = self.deps.clock.now();
        let nothing = crate::config::Requirements::default();
        match self.authenticate(headers, now, &nothing).await {
            Auth::Identified { cookies, .. } => {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                (
                    with_cookies(response, cookies),
                    Outcome::answered("endpoint", "session touched"),
                )
            }
            Auth::StoreUnavailable(reason) | Auth::ProviderUnavailable(reason) => (
                store_unavailable(false),
                Outcome::answered("endpoint", reason),
            ),
            _ => (
                json(
                    StatusCode::UNAUTHORIZED,
                    &json!({"error": "unauthenticated"}),
                ),
                Outcome::answered("endpoint", "touch without session"),
            ),
        }
    }

    /// Forward-auth for an existing proxy (nginx `auth_request`, Traefik `forwardAuth`,
    /// Caddy `forward_auth`): 202 with the identity headers (and any Set-Cookie of a slid
    /// session) for a valid session or bearer token, 401 otherwise. The original request's
    /// path comes from `X-Forwarded-Uri` or `X-Original-URI`, believed only from
    /// `server.trusted_proxies`: from anyone else it could pick a public path at will.
    async fn forward_auth(
        &self,
        headers: http::HeaderMap,
        peer: Peer,
        login_redirect: bool,
    ) -> (Response<Body>, Outcome) {
        let target = peer
            .trusted
            .then(|| {
                ["x-forwarded-uri", "x-original-uri"]
                    .iter()
                    .find_map(|name| headers.get(*name))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .flatten();
        let original = target
            .as_deref()
            .map(|uri| uri.split(['?', '#']).next().unwrap_or("/").to_string());
        // Per-path rules may name methods: the original one, from the same trusted proxies.
        let method = peer
            .trusted
            .then(|| {
                ["x-forwarded-method", "x-original-method"]
                    .iter()
                    .find_map(|name| headers.get(*name))
                    .and_then(|v| http::Method::from_bytes(v.as_bytes()).ok())
            })
            .flatten()
            .unwrap_or(http::Method::GET);
        let decision = match &original {
            Some(path) if access::is_ambiguous(path) => {
                let body = json(StatusCode::BAD_REQUEST, &json!({"error": "bad_path"}));
                return (body, Outcome::answered("auth", "ambiguous forwarded path"));
            }
            Some(path) => Some(access::decide(path, &method, &self.access)),
            // No path to go by: the global requirements.
            None => None,
        };
        let requirements = match decision {
            Some(decision) => match decision.requirements {
                Some(requirements) => requirements,
                None => {
                    return (
                        accepted(http::HeaderMap::new(), Vec::new()),
                        Outcome::answered("auth", "public"),
                    );
                }
            },
            None => &self.access.requirements,
        };
        let rule = decision.map_or("access", |d| d.rule_name());
        let now = self.deps.clock.now();
        match self.authenticate(&headers, now, requirements).await {
            Auth::Identified {
                cookies,
                verdict: Err(reason),
                ..
            } => {
                tracing::info!(target: "sessiongate::access", rule, reason, "access denied");
                let body = json(StatusCode::FORBIDDEN, &json!({"error": "forbidden"}));
                (
                    with_cookies(body, cookies),
                    Outcome::answered("auth", format!("{reason} (rule {rule})")),
                )
            }
            Auth::Identified {
                identity,
                cookies,
                verdict: Ok(()),
                ..
            } => (
                accepted(identity, cookies),
                Outcome::answered("auth", "authenticated"),
            ),
            Auth::BadBearer(reason) => (
                invalid_token(&reason),
                Outcome::answered("auth", format!("bearer: {reason}")),
            ),
            Auth::StoreUnavailable(reason) => {
                let body = json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"error": "session_store_unavailable"}),
                );
                (body, Outcome::answered("auth", reason))
            }
            Auth::ProviderUnavailable(reason) => {
                let body = json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"error": "idp_unavailable"}),
                );
                (body, Outcome::answered("auth", reason))
            }
            Auth::Reauthenticate { cookies } | Auth::Anonymous { cookies, .. }
                if login_redirect
                    && self.login.provider.is_ready()
                    && navigation::is_navigation(&method, &headers) =>
            {
                let return_to = return_url::safe_return_path(target.as_deref().unwrap_or("/"));
                self.start_login(
                    &headers,
                    &return_to,
                    false,
                    cookies,
                    "auth",
                    "unauthenticated",
                )
            }
            Auth::Reauthenticate { cookies } | Auth::Anonymous { cookies, .. } => {
                let mut body = json(
                    StatusCode::UNAUTHORIZED,
                    &json!({"error": "unauthenticated"}),
                );
                body.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer"),
                );
                (
                    with_cookies(body, cookies),
                    Outcome::answered("auth", "unauthenticated"),
                )
            }
        }
    }

    /// Ends the session here (and, with `logout.rp_initiated`, at the provider, per
    /// RP-Initiated Logout 1.0 §2): the cookies are cleared and the session is recorded as
    /// revoked, so a copy of the cookie dies too.
    async fn sign_out(
        &self,
        headers: &http::HeaderMap,
        rd: &str,
        html: bool,
    ) -> (Response<Body>, Outcome) {
        let now = self.deps.clock.now();
        let return_to = return_url::safe_return_path(rd);
        let clear = self.store.clear(self.store.carried(headers));
        let ended = match self.store.load(headers, now).await {
            Ok(Lookup::Found(session, handle)) => {
                let ended = self.store.end(&session, &handle, now).await;
                if ended.is_ok() {
                    self.sockets.end(&session, "sign_out");
                }
                ended.map(|cookies| (cookies, Some(session)))
            }
            Ok(Lookup::Missing { .. }) => Ok((clear.clone(), None)),
            Err(e) => Err(e),
        };
        let (cookies, session) = match ended {
            Ok(ended) => ended,
            Err(e) => {
                crate::ops::metrics::store_error("end");
                // The browser forgets the session, but a copy would live on: say so.
                tracing::warn!(target: "sessiongate::logout", error = %e, "sign-out could not reach the session store");
                return (
                    with_cookies(store_unavailable(html), clear),
                    Outcome::answered("endpoint", e.to_string()),
                );
            }
        };
        let session = session.as_ref();
        if session.is_some() {
            crate::ops::metrics::session_ended("sign_out");
        }
        let end_session = self
            .rp_initiated_logout
            .then(|| self.login.provider.end_session_endpoint())
            .flatten();
        let Some(mut url) = end_session else {
            return (
                redirect(&return_to, cookies),
                Outcome::answered("endpoint", "signed out"),
            );
        };
        {
            let mut query = url.query_pairs_mut();
            if let Some(hint) = session.and_then(|s| s.id_token.as_ref()) {
                query.append_pair("id_token_hint", hint.expose());
            }
            query
                .append_pair("client_id", &self.client_id)
                .append_pair(
                    "post_logout_redirect_uri",
                    &format!("{}{return_to}", self.origin),
                )
                .append_pair(
                    "state",
                    &crate::clock::random_token(self.deps.random.as_ref(), 16),
                );
        }
        (
            redirect(url.as_str(), cookies),
            Outcome::answered("endpoint", "signed out at the provider"),
        )
    }

    /// Back-Channel Logout 1.0 §2.5-2.8: the provider POSTs a logout token; the sessions it
    /// names are revoked. 200 on success, 400 with a JSON error otherwise, never cached.
    pub(crate) async fn backchannel_logout(
        &self,
        request: Request<Body>,
    ) -> (Response<Body>, Outcome) {
        use http_body_util::BodyExt as _;
        let refuse = |description: String| {
            let body = json!({"error": "invalid_request", "error_description": description});
            (
                json(StatusCode::BAD_REQUEST, &body),
                Outcome::answered(
                    "endpoint",
                    format!("back-channel logout refused: {description}"),
                ),
            )
        };
        if request.method() != http::Method::POST {
            return refuse("use POST".into());
        }
        let body = match http_body_util::Limited::new(request.into_body(), 64 * 1024)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => return refuse("unreadable or oversized body".into()),
        };
        let Some(token) = url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
        else {
            return refuse("no logout_token".into());
        };
        let now = self.deps.clock.now();
        let claims = match self.login.provider.validate_logout_token(&token, now).await {
            Ok(claims) => claims,
            Err(e) => return refuse(e.to_string()),
        };
        let unavailable = |e: crate::session::redis::StoreError| {
            crate::ops::metrics::store_error("revoke");
            tracing::warn!(target: "sessiongate::logout", error = %e, "back-channel logout could not reach the session store");
            let body = json!({"error": "temporarily_unavailable"});
            (
                json(StatusCode::SERVICE_UNAVAILABLE, &body),
                Outcome::answered("endpoint", e.to_string()),
            )
        };
        let keep = 2 * crate::oidc::LOGOUT_TOKEN_MAX_AGE;
        match self
            .store
            .first_use_of_logout_token(&claims.jti, now, keep)
            .await
        {
            Ok(true) => {}
            Ok(false) => return refuse("the logout token was already used (jti)".into()),
            Err(e) => return unavailable(e),
        }
        let revoked = match (&claims.sid, &claims.sub) {
            (Some(sid), _) => self.store.revoke_idp_session(sid, now).await,
            (None, Some(sub)) => self.store.revoke_subject(sub, claims.iat, now).await,
            (None, None) => return refuse("no sid or sub".into()),
        };
        if let Err(e) = revoked {
            return unavailable(e);
        }
        self.sockets.wake();
        crate::ops::metrics::session_ended("backchannel_logout");
        tracing::info!(target: "sessiongate::logout", by_sid = claims.sid.is_some(), "back-channel logout");
        let mut response = json(StatusCode::OK, &json!({}));
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        (
            response,
            Outcome::answered("endpoint", "back-channel logout"),
        )
    }
}

/// `202 Accepted` carrying the identity headers for the proxy to pass on.
fn accepted(identity: http::HeaderMap, cookies: Vec<HeaderValue>) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    response.headers_mut().extend(identity);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_cookies(response, cookies)
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
