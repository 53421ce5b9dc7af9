//! The admin listener's routes: `/healthz` (the process is alive), `/readyz` (it should
//! get traffic) and `/metrics` (Prometheus). Kept off the main listener so health checks never reach the application
//! and the application's users never reach these.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
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

pub(crate) fn router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(|| async { super::metrics::render() }))
        .with_state(readiness)
}

async fn ready(State(readiness): State<Arc<Readiness>>) -> (StatusCode, &'static str) {
    match readiness.state() {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
