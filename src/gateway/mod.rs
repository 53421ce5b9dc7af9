//! The request path, as named phases: strip identity headers → route (the gateway's own
//! endpoints under `auth_prefix`, or the application) → decide → forward → log.
//!
//! The gateway owns the policy; `proxy` owns the bytes on the wire.

pub(crate) mod access;
pub(crate) mod identity;
pub(crate) mod response;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use ipnet::IpNet;
use tokio::time::Instant;

use crate::config::{AccessConfig, Config};
use crate::proxy::headers::{self, Peer};
use crate::proxy::{Forward, Tunnels, Upstream};
use access::Route;
use identity::IdentityHeaders;

/// Everything the request path needs, built once from the configuration.
pub(crate) struct Gateway {
    identity: IdentityHeaders,
    access: AccessConfig,
    auth_prefix: String,
    trusted_proxies: Vec<IpNet>,
    upstream: Upstream,
}

/// What happened to a request, for its log line.
struct Outcome {
    route: &'static str,
    upstream_latency: Option<Duration>,
    /// A short reason when the gateway answered instead of the upstream.
    reason: Option<String>,
}

impl Outcome {
    fn answered(route: &'static str, reason: impl Into<String>) -> Self {
        Self {
            route,
            upstream_latency: None,
            reason: Some(reason.into()),
        }
    }
}

impl Gateway {
    pub(crate) fn new(config: &Config, tunnels: Tunnels) -> Result<Self, String> {
        Ok(Self {
            identity: IdentityHeaders::new(&config.headers),
            access: config.access.clone(),
            auth_prefix: config.server.auth_prefix.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            upstream: Upstream::new(&config.upstream, tunnels)?,
        })
    }

    fn is_own_endpoint(&self, path: &str) -> bool {
        path.strip_prefix(self.auth_prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Serves one request from a client connected from `peer`.
    pub(crate) async fn handle(
        &self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = Instant::now();
        // Before anything else reads the request: no path may see a forged identity.
        self.identity.strip(request.headers_mut());
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let peer = Peer::new(peer.ip(), &self.trusted_proxies);
        let client_ip = headers::client_ip(request.headers(), peer, &self.trusted_proxies);

        let (response, outcome) = self.route(request.map(Body::new), peer, client_ip).await;

        let status = response.status().as_u16();
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
            return (
                response::error(
                    StatusCode::BAD_REQUEST,
                    "bad_path",
                    "The request path is not allowed.",
                    html,
                ),
                Outcome::answered("rejected", reason),
            );
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
        if self.is_own_endpoint(path) {
            let body = response::error(
                StatusCode::NOT_FOUND,
                "not_found",
                "No such gateway endpoint.",
                html,
            );
            return (body, Outcome::answered("endpoint", "unknown endpoint"));
        }
        let route = access::classify(path, &self.access);
        match route {
            Route::Public => self.forward(request, peer, client_ip, route, html).await,
            // Sessions arrive with the login issue; until then nothing protected is served.
            Route::Protected | Route::Api => (
                response::error(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Authentication is required.",
                    html,
                ),
                Outcome::answered(route.label(), "no session"),
            ),
        }
    }

    async fn forward(
        &self,
        request: Request<Body>,
        peer: Peer,
        client_ip: IpAddr,
        route: Route,
        html: bool,
    ) -> (Response<Body>, Outcome) {
        let forward = Forward {
            peer,
            client_ip,
            proto: "http",
            identity: http::HeaderMap::new(),
        };
        match self.upstream.forward(request, forward).await {
            Ok(forwarded) => (
                forwarded.response,
                Outcome {
                    route: route.label(),
                    upstream_latency: Some(forwarded.upstream_latency),
                    reason: None,
                },
            ),
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
                let reason = error_chain(&e);
                tracing::warn!(target: "sessiongate::upstream", error = %reason, "upstream request failed");
                (
                    response::error(status, code, message, html),
                    Outcome::answered(route.label(), reason),
                )
            }
        }
    }
}

/// Milliseconds with microsecond precision, for log lines.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// `error: cause: cause`, for log lines.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
