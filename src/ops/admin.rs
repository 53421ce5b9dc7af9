//! The admin listener's routes: `/healthz` (the process is alive), `/readyz` (it should
//! get traffic) and `/metrics` (Prometheus). Kept off the main listener so health checks never reach the application
//! and the application's users never reach these.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};

use crate::clock::Clock;
use crate::secret::Secret;
use crate::session::revocation::Revocations;
use http::StatusCode;

/// Whether the gateway wants traffic: its dependencies are there (the identity provider
/// discovered), and it is not shutting down — it stops wanting traffic as soon as shutdown
/// begins, so a load balancer drains it while in-flight requests finish.
pub(crate) struct Readiness {
    draining: AtomicBool,
    dependencies: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Readiness {
    pub(crate) fn new(dependencies: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self {
            draining: AtomicBool::new(false),
            dependencies: Box::new(dependencies),
        }
    }

    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    fn state(&self) -> Result<(), &'static str> {
        if self.draining.load(Ordering::Relaxed) {
            Err("shutting down\n")
        } else if !(self.dependencies)() {
            Err("identity provider unavailable\n")
        } else {
            Ok(())
        }
    }
}

/// The operator's "log this user out everywhere" switch.
#[derive(Clone)]
pub(crate) struct Revoker {
    pub(crate) revocations: Arc<Revocations>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Required as `Authorization: Bearer <token>` when set.
    pub(crate) token: Option<Secret>,
}

pub(crate) fn router(readiness: Arc<Readiness>, revoker: Revoker) -> Router {
    let revoke = Router::new()
        .route("/sessions/revoke", post(revoke))
        .with_state(revoker);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(|| async { super::metrics::render() }))
        .with_state(readiness)
        .merge(revoke)
}

/// `POST /sessions/revoke` with `sub=` (every session of that user created before now) or
/// `sid=` (the provider's session id), as a form body or query string.
async fn revoke(
    State(revoker): State<Revoker>,
    request: axum::extract::Request,
) -> (StatusCode, String) {
    use http_body_util::BodyExt as _;
    if let Some(token) = &revoker.token {
        let presented = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let matches =
            crate::secret::constant_time_eq(presented.as_bytes(), token.expose().as_bytes());
        if !matches {
            return (
                StatusCode::UNAUTHORIZED,
                "a valid admin token is required\n".into(),
            );
        }
    }
    let query = request.uri().query().unwrap_or("").to_string();
    let body = match http_body_util::Limited::new(request.into_body(), 16 * 1024)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return (StatusCode::BAD_REQUEST, "unreadable body\n".into()),
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .chain(url::form_urlencoded::parse(&body).into_owned())
        .collect();
    let find = |name: &str| {
        params
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let now = revoker.clock.now();
    match (find("sub"), find("sid")) {
        (Some(sub), _) => {
            // Sessions created in this very second are included: the operator means "now".
            revoker.revocations.revoke_subject(&sub, now + 1, now);
            tracing::info!(target: "sessiongate::revoke", "sessions of a subject revoked by the operator");
            (
                StatusCode::OK,
                "revoked every session of that subject\n".into(),
            )
        }
        (None, Some(sid)) => {
            revoker.revocations.revoke_idp_session(&sid, now);
            tracing::info!(target: "sessiongate::revoke", "sessions of a provider session revoked by the operator");
            (
                StatusCode::OK,
                "revoked the sessions of that provider session\n".into(),
            )
        }
        (None, None) => (StatusCode::BAD_REQUEST, "give sub= or sid=\n".into()),
    }
}

async fn ready(State(readiness): State<Arc<Readiness>>) -> (StatusCode, &'static str) {
    match readiness.state() {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
