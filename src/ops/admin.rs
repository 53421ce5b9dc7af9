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
use crate::session::store::SessionStore;
use http::StatusCode;

/// Whether the gateway wants traffic: its dependencies are there (the identity provider
/// discovered, the session store answering), and it is not shutting down — it stops wanting
/// traffic as soon as shutdown begins, so a load balancer drains it while in-flight requests
/// finish.
pub(crate) struct Readiness {
    draining: AtomicBool,
    provider_ready: Box<dyn Fn() -> bool + Send + Sync>,
    store: CurrentStore,
}

/// The session store of the configuration in service (a reload may replace it).
pub(crate) type CurrentStore = Arc<dyn Fn() -> Arc<SessionStore> + Send + Sync>;

impl Readiness {
    pub(crate) fn new(
        provider_ready: impl Fn() -> bool + Send + Sync + 'static,
        store: CurrentStore,
    ) -> Self {
        Self {
            draining: AtomicBool::new(false),
            provider_ready: Box::new(provider_ready),
            store,
        }
    }

    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    async fn state(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Relaxed) {
            Err("shutting down\n".into())
        } else if !(self.provider_ready)() {
            Err("identity provider unavailable\n".into())
        } else if let Err(e) = (self.store)().check().await {
            Err(format!("{e}\n"))
        } else {
            Ok(())
        }
    }
}

/// The operator's "log this user out everywhere" switch.
#[derive(Clone)]
pub(crate) struct Revoker {
    pub(crate) store: CurrentStore,
    pub(crate) clock: Arc<dyn Clock>,
    /// Required as `Authorization: Bearer <token>` when set.
    pub(crate) token: Option<Secret>,
    /// Runs after a revocation (closing the revoked sessions' WebSockets).
    pub(crate) revoked: Arc<dyn Fn() + Send + Sync>,
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
    let store = (revoker.store)();
    let (revoked, done) = match (find("sub"), find("sid")) {
        // Sessions created in this very second are included: the operator means "now".
        (Some(sub), _) => (
            store.revoke_subject(&sub, now + 1, now).await,
            "revoked every session of that subject\n",
        ),
        (None, Some(sid)) => (
            store.revoke_idp_session(&sid, now).await,
            "revoked the sessions of that provider session\n",
        ),
        (None, None) => return (StatusCode::BAD_REQUEST, "give sub= or sid=\n".into()),
    };
    match revoked {
        Ok(()) => {
            (revoker.revoked)();
            tracing::info!(target: "sessiongate::revoke", "sessions revoked by the operator");
            (StatusCode::OK, done.into())
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}

async fn ready(State(readiness): State<Arc<Readiness>>) -> (StatusCode, String) {
    match readiness.state().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
