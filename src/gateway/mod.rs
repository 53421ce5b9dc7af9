//! The request path, as named phases: strip identity headers → route (the gateway's own
//! endpoints under `auth_prefix`, or the application) → load the session → decide → forward
//! (sliding the session) → log.
//!
//! The gateway owns the policy; `proxy` owns the bytes on the wire, `oidc` the provider and
//! `session` the cookie format.

pub(crate) mod access;
mod assertion;
mod authorize;
mod endpoints;
pub(crate) mod identity;
mod inject;
mod login;
mod navigation;
mod preserve;
mod refresh;
pub(crate) mod response;
pub(crate) mod return_url;
pub(crate) mod sockets;
mod unread;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::header::{HeaderMap, HeaderValue, LOCATION, SET_COOKIE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use ipnet::IpNet;
use tokio::time::Instant;

use crate::Deps;
use crate::config::{AccessConfig, Config, OnTokenExpiry, Requirements};
use crate::oidc::Provider;
use crate::proxy::headers::{self, Peer};
use crate::proxy::{Ending, Forward, Tunnels, Upstream};
use crate::session::model::{self as sessions, Session, SessionPolicy};
use crate::session::seal::KeyRing;
use crate::session::store::{Handle, Lookup, SessionStore};
use access::Route;
use identity::IdentityHeaders;
use login::{Login, LoginSetup};
use refresh::Refresher;

/// Everything the request path needs, built once from the configuration.
pub(crate) struct Gateway {
    identity: IdentityHeaders,
    claims: Vec<(http::HeaderName, String)>,
    access: AccessConfig,
    auth_prefix: String,
    trusted_proxies: Vec<IpNet>,
    upstream: Upstream,
    login: Login,
    store: Arc<SessionStore>,
    policy: SessionPolicy,
    refresher: Arc<Refresher>,
    max_stale: Option<Duration>,
    on_token_expiry: OnTokenExpiry,
    rp_initiated_logout: bool,
    /// How clients reach this listener, for `X-Forwarded-Proto`.
    proto: &'static str,
    /// The WebSockets each session opened.
    sockets: Arc<sockets::Sockets>,
    /// `session.websocket_activity`: client frames slide the session.
    websocket_activity: bool,
    /// `session.preserve_post_max`: form posts up to this size survive a login.
    preserve_post_max: usize,
    /// The expiry notice script, ready to serve.
    session_js: bytes::Bytes,
    /// With `session.inject_warning`: the tag inserted into HTML pages.
    inject_tag: Option<bytes::Bytes>,
    /// Origins whose pages may open WebSockets: `public_url`'s and `server.allowed_origins`.
    websocket_origins: Vec<String>,
    /// The signed identity assertion, when `headers.assertion` is set.
    assertion: Option<assertion::Assertion>,
    /// Answers about opaque bearer tokens, when they are introspected.
    introspection: Option<crate::oidc::IntrospectionCache>,
    /// `public_url` without its trailing `/`, for post-logout redirects.
    origin: String,
    client_id: String,
    deps: Deps,
}

/// The outcome of authenticating a request.
pub(super) enum Auth {
    /// A valid session or bearer token: the identity headers to assert, and the cookies to
    /// send back (a slid or refreshed session).
    Identified {
        identity: HeaderMap,
        cookies: Vec<HeaderValue>,
        /// `Err(reason)` when the user is authenticated but not allowed in.
        verdict: Result<(), &'static str>,
        /// The session, when the identity came from one (not from a bearer token).
        session: Option<Box<(Session, Handle)>>,
    },
    /// A bearer token that failed validation, and why.
    BadBearer(String),
    /// A session whose tokens expired with no refresh token, under `reauthenticate`.
    Reauthenticate { cookies: Vec<HeaderValue> },
    /// Nobody: the cookies clear a broken or ended session.
    Anonymous {
        cookies: Vec<HeaderValue>,
        reason: &'static str,
    },
    /// The session store cannot be asked (Redis away): nobody can be told apart.
    StoreUnavailable(String),
    /// A bearer token the provider must vouch for, and the provider cannot be asked.
    ProviderUnavailable(String),
}

/// What happened to a request, for its log line.
pub(crate) struct Outcome {
    route: &'static str,
    upstream_latency: Option<Duration>,
    /// A short reason when the gateway answered instead of the upstream.
    reason: Option<String>,
}

impl Outcome {
    /// What became of the request, for the metrics.
    fn kind(&self, status: u16) -> &'static str {
        let login = self
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("login: "));
        match status {
            _ if self.upstream_latency.is_some() => "proxied",
            302 if login => "login_redirect",
            401 => "unauthenticated",
            403 => "forbidden",
            500.. => "error",
            _ => "answered",
        }
    }

    fn answered(route: &'static str, reason: impl Into<String>) -> Self {
        Self {
            route,
            upstream_latency: None,
            reason: Some(reason.into()),
        }
    }
}

/// A `302 Found` to `location` that no cache keeps.
fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    with_cookies(response, cookies)
}

fn with_cookies(mut response: Response<Body>, cookies: Vec<HeaderValue>) -> Response<Body> {
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

impl Gateway {
    pub(crate) fn new(
        config: &Config,
        tunnels: Tunnels,
        provider: Arc<Provider>,
        store: Arc<SessionStore>,
        sockets: Arc<sockets::Sockets>,
        deps: Deps,
    ) -> Result<Self, String> {
        let keys = Arc::new(
            KeyRing::new(&config.session.secrets).map_err(|e| format!("session.secrets: {e}"))?,
        );
        let secure = config.server.public_url.scheme() == "https";
        let redirect_uri = format!(
            "{}{}/callback",
            config.server.public_url.as_str().trim_end_matches('/'),
            config.server.auth_prefix
        );
        let mut header_claims: Vec<String> = config
            .headers
            .claims
            .iter()
            .map(|(_, claim)| claim.clone())
            .collect();
        // The session keeps the claims the access rules and the assertion read too.
        let assertion_claims = config.headers.assertion.as_ref().map_or(Vec::new(), |_| {
            let groups = config
                .access
                .groups_claim
                .split('.')
                .next()
                .unwrap_or("groups");
            assertion::CLAIMS
                .iter()
                .map(|c| c.to_string())
                .chain([groups.to_string()])
                .collect()
        });
        for claim in authorize::claims_needed(&config.access)
            .into_iter()
            .chain(assertion_claims)
        {
            if !header_claims.contains(&claim) {
                header_claims.push(claim);
            }
        }
        let refresher = Arc::new(Refresher::new(
            provider.clone(),
            store.clone(),
            deps.random.clone(),
            refresh::Timing {
                wait: config.oidc.refresh_timeout,
                before_expiry: config.session.refresh_before_expiry,
                // A refresh is one token request and perhaps a JWKS fetch, each bounded.
                lock_hold: config.oidc.http_timeout * 2 + Duration::from_secs(1),
            },
            header_claims.clone(),
        ));
        let login = Login::new(LoginSetup {
            provider,
            keys,
            clock: deps.clock.clone(),
            random: deps.random.clone(),
            redirect_uri,
            cookie_name: config.session.cookie_name.clone(),
            secure,
            max_pending: config.session.max_pending_logins,
            header_claims,
        });
        Ok(Self {
            identity: IdentityHeaders::new(&config.headers),
            claims: config.headers.claims.clone(),
            access: config.access.clone(),
            auth_prefix: config.server.auth_prefix.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            upstream: Upstream::new(&config.upstream, tunnels)?,
            login,
            store,
            policy: SessionPolicy::from(&config.session),
            refresher,
            max_stale: config.session.max_stale,
            on_token_expiry: config.session.on_token_expiry,
            rp_initiated_logout: config.logout.rp_initiated,
            sockets,
            websocket_activity: config.session.websocket_activity,
            preserve_post_max: config.session.preserve_post_max,
            session_js: bytes::Bytes::from(
                include_str!("assets/session.js")
                    .replace("{PREFIX}", &config.server.auth_prefix)
                    .replace(
                        "{WARN_BEFORE}",
                        &config.session.warning_before.as_secs().to_string(),
                    ),
            ),
            inject_tag: config.session.inject_warning.then(|| {
                bytes::Bytes::from(format!(
                    "<script src=\"{}/session.js\" defer></script>",
                    config.server.auth_prefix
                ))
            }),
            websocket_origins: std::iter::once(
                config.server.public_url.origin().ascii_serialization(),
            )
            .chain(config.server.allowed_origins.iter().cloned())
            .collect(),
            proto: if config.server.tls.is_some() {
                "https"
            } else {
                "http"
            },
            introspection: config
                .access
                .bearer_introspection
                .map(crate::oidc::IntrospectionCache::new),
            assertion: config.headers.assertion.clone().map(|header| {
                assertion::Assertion::new(
                    header,
                    config
                        .server
                        .public_url
                        .as_str()
                        .trim_end_matches('/')
                        .to_string(),
                    config
                        .headers
                        .assertion_audience
                        .clone()
                        .unwrap_or_else(|| config.upstream.url.origin().ascii_serialization()),
                    config.headers.assertion_lifetime,
                    config.access.groups_claim.clone(),
                    &config.session.secrets,
                )
            }),
            origin: config
                .server
                .public_url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            client_id: config.oidc.client_id.clone(),
            deps,
        })
    }

    /// The session store, shared with the admin listener (revocation, readiness).
    pub(crate) fn store(&self) -> Arc<SessionStore> {
        self.store.clone()
    }

    fn own_endpoint<'p>(&self, path: &'p str) -> Option<&'p str> {
        path.strip_prefix(self.auth_prefix.as_str())
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Serves one request from a client connected from `peer`.
    pub(crate) async fn handle(
        &self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = Instant::now();
        let _in_flight = crate::ops::metrics::InFlight::start();
        // Before anything else reads the request: no path may see a forged identity.
        self.identity.strip(request.headers_mut());
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let peer = Peer::new(peer.ip(), &self.trusted_proxies);
        let client_ip = headers::client_ip(request.headers(), peer, &self.trusted_proxies);

        let (request, unread) = unread::Unread::watch(request);
        let (mut response, outcome) = self.route(request, peer, client_ip).await;
        unread.settle(&mut response).await;

        let status = response.status().as_u16();
        crate::ops::metrics::request(outcome.route, outcome.kind(status), status);
        if let Some(latency) = outcome.upstream_latency {
            crate::ops::metrics::upstream_duration(latency);
        }
        let latency_ms = millis(started.elapsed());
        let upstream_ms = outcome.upstream_latency.map(millis);
        tracing::info!(
            target: "sessiongate::request",
            %method,
            path,
            status,
            route = outcome.route,
            latency_ms,
            upstream_ms,
            client = %client_ip,
            reason = outcome.reason,
            "request"
        );
        response
    }

    async fn route(
        &self,
        request: Request<Body>,
        peer: Peer,
        client_ip: IpAddr,
    ) -> (Response<Body>, Outcome) {
        let html = response::wants_html(request.headers());
        let path = request.uri().path();
        if access::is_ambiguous(path) {
            let reason = "ambiguous path (dot segments or encoded separators)";
            let body = response::error(
                StatusCode::BAD_REQUEST,
                "bad_path",
                "The request path is not allowed.",
                html,
            );
            return (body, Outcome::answered("rejected", reason));
        }
        if request.method() == http::Method::CONNECT {
            let body = response::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This is not a forward proxy.",
                html,
            );
            return (body, Outcome::answered("rejected", "CONNECT"));
        }
        if let Some(endpoint) = self.own_endpoint(path) {
            let endpoint = endpoint.to_string();
            // The gateway's own endpoints are rare next to proxied requests, and their
            // futures large: boxed, they cost the proxied path nothing.
            return Box::pin(self.endpoint(&endpoint, request, peer, html)).await;
        }
        let upgrade = headers::is_upgrade_request(request.headers());
        if upgrade && !self.is_allowed_origin(request.headers()) {
            // Cross-site WebSocket hijacking: another site's page riding the user's cookie.
            let body = response::error(
                StatusCode::FORBIDDEN,
                "bad_origin",
                "WebSockets may be opened only from this site.",
                false,
            );
            return (
                body,
                Outcome::answered("rejected", "WebSocket from a foreign origin"),
            );
        }
        let decision = access::decide(path, request.method(), &self.access);
        let route = decision.route;
        let Some(requirements) = decision.requirements else {
            return self
                .forward(
                    request,
                    peer,
                    client_ip,
                    route,
                    HeaderMap::new(),
                    Vec::new(),
                    None,
                    html,
                )
                .await;
        };

        // The post of a replay page: sent on with the form kept across the login.
        let (request, replay) = self.replay_marker(request).await;
        let now = self.deps.clock.now();
        match self
            .authenticate(request.headers(), now, requirements)
            .await
        {
            Auth::Identified {
                cookies,
                verdict: Err(reason),
                ..
            } => {
                let rule = decision.rule_name();
                tracing::info!(target: "sessiongate::access", rule, reason, "access denied");
                let reason = format!("{reason} (rule {rule})");
                let body = response::error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "You are signed in, but not allowed here.",
                    html,
                );
                (
                    with_cookies(body, cookies),
                    Outcome::answered(route.label(), reason),
                )
            }
            Auth::Identified {
                identity,
                cookies,
                verdict: Ok(()),
                session,
            } => {
                tracing::debug!(target: "sessiongate::access", rule = decision.rule_name(), "access granted");
                let request = match (&replay, &session) {
                    (Some(token), Some(owner)) => {
                        match Box::pin(self.with_kept_post(request, token, &owner.0, html)).await {
                            Ok(request) => request,
                            Err(refused) => return refused,
                        }
                    }
                    _ => request,
                };
                // A WebSocket lives as long as the session that opened it.
                let ending = session.filter(|_| upgrade).map(|owner| {
                    let count_activity = self.websocket_activity;
                    self.sockets.register(&owner.0, &owner.1, count_activity)
                });
                self.forward(
                    request, peer, client_ip, route, identity, cookies, ending, html,
                )
                .await
            }
            Auth::BadBearer(reason) => (
                invalid_token(&reason),
                Outcome::answered(route.label(), format!("bearer: {reason}")),
            ),
            Auth::Reauthenticate { cookies } => {
                let navigation = route != Route::Api
                    && navigation::is_navigation(request.method(), request.headers());
                if !navigation {
                    let reason = "tokens expired: reauthentication needed";
                    return self.unauthenticated(&request, Route::Api, cookies, reason, html);
                }
                let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
                let return_to = return_url::safe_return_path(target);
                let reason = "tokens expired: silent reauthentication";
                self.start_login(
                    request.headers(),
                    &return_to,
                    true,
                    cookies,
                    route.label(),
                    reason,
                )
            }
            Auth::Anonymous { cookies, reason }
                if route != Route::Api && self.is_preservable(&request) =>
            {
                Box::pin(self.login_keeping_post(request, route.label(), cookies, reason)).await
            }
            Auth::Anonymous { cookies, reason } => {
                self.unauthenticated(&request, route, cookies, reason, html)
            }
            Auth::StoreUnavailable(reason) => (
                store_unavailable(html),
                Outcome::answered(route.label(), reason),
            ),
            Auth::ProviderUnavailable(reason) => (
                response::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "idp_unavailable",
                    "The identity provider cannot check the token now. Try again in a moment.",
                    html,
                ),
                Outcome::answered(route.label(), reason),
            ),
        }
    }

    /// Who the request is: a bearer token's or a session's identity (refreshing and sliding
    /// the session on the way), or nobody, with the cookies the response must carry.
    pub(super) async fn authenticate(
        &self,
        headers: &HeaderMap,
        now: u64,
        requirements: &Requirements,
    ) -> Auth {
        if !self.access.bearer_audiences.is_empty() {
            if let Some(token) = bearer_token(headers) {
                let token = token.to_string();
                return match Box::pin(self.bearer_claims(&token, now)).await {
                    Ok(claims) => {
                        let subject = claims
                            .get("sub")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or_default();
                        let identity = self.identity_headers(subject, |name| claims.get(name), now);
                        let verdict =
                            authorize::authorize(requirements, &self.access.groups_claim, |name| {
                                claims.get(name)
                            });
                        Auth::Identified {
                            identity,
                            cookies: Vec::new(),
                            verdict,
                            session: None,
                        }
                    }
                    Err(e @ crate::oidc::BearerError::Unavailable) => {
                        Auth::ProviderUnavailable(e.to_string())
                    }
                    Err(e) => Auth::BadBearer(e.to_string()),
                };
            }
        }
        let (mut session, handle) = match self.load(headers, now).await {
            Ok(Ok(found)) => found,
            Ok(Err((cookies, reason))) => return Auth::Anonymous { cookies, reason },
            Err(e) => return Auth::StoreUnavailable(e),
        };
        let mut cookies = Vec::new();
        if self.needs_reauthentication(&session, now) {
            return Auth::Reauthenticate { cookies };
        }
        let mut changed = false;
        if self.refresher.is_due(&session, now) {
            // Boxed, as every rare branch with a large future: inline, it would make every
            // request's future as large (see `route`).
            match Box::pin(self.refresher.refresh(&session, &handle, now)).await {
                refresh::Outcome::Renewed(renewed) => {
                    self.refresher.apply(&mut session, &renewed);
                    changed = true;
                }
                refresh::Outcome::Stored(stored) => {
                    // Refreshed and written to the shared store (here or by another replica).
                    session = *stored;
                }
                refresh::Outcome::Ended(reason) => {
                    crate::ops::metrics::session_ended(reason);
                    self.sockets.end(&session, reason);
                    return Auth::Anonymous {
                        cookies: Box::pin(self.end_quietly(&session, &handle, now)).await,
                        reason,
                    };
                }
                refresh::Outcome::Unavailable if self.is_too_stale(&session, now) => {
                    crate::ops::metrics::session_ended("stale");
                    self.sockets.end(&session, "stale");
                    let reason = "tokens stale past session.max_stale";
                    return Auth::Anonymous {
                        cookies: Box::pin(self.end_quietly(&session, &handle, now)).await,
                        reason,
                    };
                }
                refresh::Outcome::Unavailable => {}
            }
        }
        changed |= sessions::touch(&mut session, now, &self.policy);
        if changed {
            self.sockets.seen(&session);
            match self
                .store
                .save(&session, &handle, now, self.deps.random.as_ref())
                .await
            {
                Ok(written) => cookies.extend(written),
                // The request goes on: the session is still valid, only its slide is lost.
                Err(e) => {
                    crate::ops::metrics::store_error("save");
                    tracing::warn!(error = %e, "the session could not be written back");
                }
            }
        }
        let verdict = authorize::authorize(requirements, &self.access.groups_claim, |name| {
            session.claims.get(name)
        });
        Auth::Identified {
            identity: self.identity_headers(&session.subject, |name| session.claims.get(name), now),
            cookies,
            verdict,
            session: Some(Box::new((session, handle))),
        }
    }

    /// The headers that tell the application who this is: one per configured claim, and the
    /// signed assertion when configured.
    fn identity_headers<'c>(
        &self,
        subject: &str,
        get: impl Fn(&str) -> Option<&'c serde_json::Value> + Copy,
        now: u64,
    ) -> HeaderMap {
        let mut headers = identity::assert_claims(subject, get, &self.claims);
        if let Some(assertion) = &self.assertion {
            if let Some(value) = assertion.sign(subject, get, now) {
                headers.insert(assertion.header().clone(), value);
            }
        }
        headers
    }

    /// Whether a WebSocket handshake comes from a page allowed to open one. Clients that are
    /// not browsers send no `Origin`, and are not the ones a foreign page could ride.
    fn is_allowed_origin(&self, headers: &HeaderMap) -> bool {
        match headers.get(http::header::ORIGIN).map(HeaderValue::to_str) {
            None => true,
            Some(Ok(origin)) => self
                .websocket_origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin.trim_end_matches('/'))),
            Some(Err(_)) => false,
        }
    }

    /// The WebSockets of every session, shared with the admin listener and the sweeper.
    pub(crate) fn sockets(&self) -> Arc<sockets::Sockets> {
        self.sockets.clone()
    }

    /// A bearer token's claims: a JWT checked here, an opaque token (no JWT shape) asked
    /// about at the provider when introspection is on, through the cache.
    async fn bearer_claims(
        &self,
        token: &str,
        now: u64,
    ) -> Result<serde_json::Map<String, serde_json::Value>, crate::oidc::BearerError> {
        let audiences = &self.access.bearer_audiences;
        let provider = &self.login.provider;
        let is_jwt = token.split('.').count() == 3;
        match &self.introspection {
            Some(cache) if !is_jwt => {
                if let Some(answer) = cache.get(token, now) {
                    return answer;
                }
                let answer = provider.introspect(token, audiences, now).await;
                cache.put(token, &answer, now);
                answer
            }
            _ => provider.validate_bearer(token, audiences, now).await,
        }
    }

    /// The request's session when it has a valid one, or the cookies to send back (clearing
    /// a broken or ended one) and why there is none. `Err` when the store cannot be asked.
    async fn load(
        &self,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<Result<(Session, Handle), (Vec<HeaderValue>, &'static str)>, String> {
        match self.store.load(headers, now).await {
            Ok(Lookup::Found(session, handle)) => Ok(Ok((session, handle))),
            Ok(Lookup::Missing { clear, reason }) => {
                match reason {
                    "idle timeout" => crate::ops::metrics::session_ended("idle"),
                    "absolute timeout" => crate::ops::metrics::session_ended("absolute"),
                    "revoked" => crate::ops::metrics::session_ended("revoked"),
                    "unreadable session cookie" => crate::ops::metrics::session_cookie_rejected(),
                    _ => {}
                }
                Ok(Err((clear, reason)))
            }
            Err(e) => {
                crate::ops::metrics::store_error("load");
                tracing::warn!(error = %e, "the session store is unavailable");
                Err(e.to_string())
            }
        }
    }

    /// Ends a session the gateway gave up on (refresh refused, stale), clearing its cookies.
    async fn end_quietly(&self, session: &Session, handle: &Handle, now: u64) -> Vec<HeaderValue> {
        self.store
            .end(session, handle, now)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not delete an ended session; it expires by itself");
                self.store.clear(handle.carried)
            })
    }

    /// `on_token_expiry = "reauthenticate"`: a session without a refresh token whose tokens
    /// have expired goes back to the provider, silently first.
    fn needs_reauthentication(&self, session: &Session, now: u64) -> bool {
        self.on_token_expiry == OnTokenExpiry::Reauthenticate
            && session.refresh_token.is_none()
            && session
                .tokens_expire_at
                .is_some_and(|expires_at| now >= expires_at)
    }

    /// Whether refreshes have failed for longer than `session.max_stale` past token expiry.
    fn is_too_stale(&self, session: &Session, now: u64) -> bool {
        match (self.max_stale, session.tokens_expire_at) {
            (Some(max_stale), Some(expires_at)) => {
                now > expires_at.saturating_add(max_stale.as_secs())
            }
            _ => false,
        }
    }

    /// No valid session: people navigating are sent to log in; everything else gets a 401
    /// and no login state.
    fn unauthenticated(
        &self,
        request: &Request<Body>,
        route: Route,
        cookies: Vec<HeaderValue>,
        reason: &'static str,
        html: bool,
    ) -> (Response<Body>, Outcome) {
        if !self.login.provider.is_ready() {
            let body = response::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "idp_unavailable",
                "The identity provider is unavailable. Try again in a moment.",
                html,
            );
            return (
                with_cookies(body, cookies),
                Outcome::answered(route.label(), "identity provider unavailable"),
            );
        }
        let navigation =
            route != Route::Api && navigation::is_navigation(request.method(), request.headers());
        if !navigation {
            let mut body = response::error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication is required.",
                false,
            );
            body.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            return (
                with_cookies(body, cookies),
                Outcome::answered(route.label(), reason),
            );
        }
        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        self.start_login(
            request.headers(),
            &return_url::safe_return_path(target),
            false,
            cookies,
            route.label(),
            reason,
        )
    }

    fn start_login(
        &self,
        headers: &HeaderMap,
        return_to: &str,
        silent: bool,
        cookies: Vec<HeaderValue>,
        route: &'static str,
        reason: &str,
    ) -> (Response<Body>, Outcome) {
        self.start_login_keeping(headers, return_to, silent, None, cookies, route, reason)
    }

    /// As [`Gateway::start_login`], for a login that carries a kept form post.
    #[allow(clippy::too_many_arguments)]
    fn start_login_keeping(
        &self,
        headers: &HeaderMap,
        return_to: &str,
        silent: bool,
        preserved: Option<&crate::session::preserved::PostToken>,
        mut cookies: Vec<HeaderValue>,
        route: &'static str,
        reason: &str,
    ) -> (Response<Body>, Outcome) {
        let html = response::wants_html(headers);
        match self.login.start(headers, return_to, silent, preserved) {
            Ok((url, login_cookies)) => {
                crate::ops::metrics::login("started");
                cookies.extend(login_cookies);
                (
                    redirect(&url, cookies),
                    Outcome::answered(route, format!("login: {reason}")),
                )
            }
            Err(e) => {
                let body = response::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "idp_unavailable",
                    "The identity provider is unavailable. Try again in a moment.",
                    html,
                );
                (
                    with_cookies(body, cookies),
                    Outcome::answered(route, e.to_string()),
                )
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        mut request: Request<Body>,
        peer: Peer,
        client_ip: IpAddr,
        route: Route,
        identity: HeaderMap,
        cookies: Vec<HeaderValue>,
        ending: Option<Ending>,
        html: bool,
    ) -> (Response<Body>, Outcome) {
        // The gateway's own cookies are none of the application's business, and can be
        // kilobytes (IIS refuses request heads over 16 KB by default).
        strip_own_cookies(
            request.headers_mut(),
            self.store.cookie_name(),
            self.login.cookie_prefix(),
        );
        let forward = Forward {
            peer,
            client_ip,
            proto: self.proto,
            identity,
            ending,
        };
        let authenticated = !forward.identity.is_empty();
        match self.upstream.forward(request, forward).await {
            Ok(mut forwarded) => {
                if let Some(tag) = self.inject_tag.as_ref().filter(|_| authenticated) {
                    if inject::applies(forwarded.response.headers()) {
                        let (mut parts, body) = forwarded.response.into_parts();
                        let body = inject::into(&mut parts.headers, body, tag.clone());
                        forwarded.response = Response::from_parts(parts, body);
                    }
                }
                (
                    with_cookies(forwarded.response, cookies),
                    Outcome {
                        route: route.label(),
                        upstream_latency: Some(forwarded.upstream_latency),
                        reason: None,
                    },
                )
            }
            Err(e) => {
                let status = e.status();
                let message = match status {
                    StatusCode::GATEWAY_TIMEOUT => "The application did not answer in time.",
                    StatusCode::BAD_REQUEST => "The request target cannot be forwarded.",
                    _ => "The application is not reachable.",
                };
                let code = if status == StatusCode::BAD_REQUEST {
                    "bad_target"
                } else {
                    "upstream_unavailable"
                };
                let reason = crate::error_chain(&e);
                tracing::warn!(target: "sessiongate::upstream", error = %reason, "upstream request failed");
                (
                    with_cookies(response::error(status, code, message, html), cookies),
                    Outcome::answered(route.label(), reason),
                )
            }
        }
    }
}

/// 503 while the session store (Redis) is away: the request is fine, try again soon.
pub(super) fn store_unavailable(html: bool) -> Response<Body> {
    let mut response = response::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "session_store_unavailable",
        "Sessions are unavailable for a moment. Try again shortly.",
        html,
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

/// Removes the session cookie (every chunk) and login-state cookies from `Cookie`, keeping
/// the application's own cookies as they were.
pub(crate) fn strip_own_cookies(headers: &mut HeaderMap, session: &str, login_prefix: &str) {
    let is_own = |name: &str| {
        name == session
            || name
                .strip_prefix(session)
                .is_some_and(|rest| rest.starts_with('.'))
            || name.starts_with(login_prefix)
    };
    let values: Vec<HeaderValue> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .cloned()
        .collect();
    if values.is_empty() {
        return;
    }
    let kept: Vec<String> = values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        // Trimmed as the session cookie's reader trims it: `name =value` is that cookie too.
        .filter(|pair| !is_own(pair.split_once('=').map_or(*pair, |(name, _)| name.trim())))
        .map(str::to_string)
        .collect();
    headers.remove(http::header::COOKIE);
    if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
        if !kept.is_empty() {
            headers.insert(http::header::COOKIE, value);
        }
    }
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// RFC 6750 §3: 401 with `WWW-Authenticate: Bearer error="invalid_token"` and a JSON body.
pub(super) fn invalid_token(description: &str) -> Response<Body> {
    let mut response = response::error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        description,
        false,
    );
    let description = description.replace(['"', '\\'], "'");
    if let Ok(value) = HeaderValue::from_str(&format!(
        "Bearer error=\"invalid_token\", error_description=\"{description}\""
    )) {
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Milliseconds with microsecond precision, for log lines.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{ChunkedCookie, Scheme};

    /// Found by `fuzz/fuzz_targets/cookie_header.rs`: a space before `=` hid the session
    /// cookie from the stripping, while the session reader (which trims names) read it.
    #[test]
    fn a_spaced_session_cookie_name_is_stripped_too() {
        let session = ChunkedCookie::new("sessiongate", Scheme::Https).expect("name");
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_static(
                ";; __Host-sessiongate =c= dsessiongongate=QUJD ;__Host-ost-se=; =c= d",
            ),
        );
        assert!(!session.collect(&headers).carried.is_empty());

        strip_own_cookies(&mut headers, session.name(), "__Host-sessiongate-login-");
        assert!(session.collect(&headers).carried.is_empty());
        assert_eq!(headers[http::header::COOKIE], "__Host-ost-se=; =c= d");
    }
}
