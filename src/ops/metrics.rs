//! Prometheus metrics, rendered by the admin listener's `/metrics`. Labels take a few fixed
//! values only — never a path, a user or a session id — so the series stay few.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder on first use (every gateway in a process shares it).
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "metrics are unavailable");
                None
            }
        })
        .as_ref()
}

/// Makes sure the recorder exists before the first event is counted.
pub(crate) fn install() {
    let _ = handle();
}

/// The text exposition format.
pub(crate) fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// A request answered, by route kind and status class.
pub(crate) fn request(route: &'static str, status: u16) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("sessiongate_requests_total", "route" => route, "status" => class)
        .increment(1);
}

/// A login attempt finished: `completed`, or the reason it failed.
pub(crate) fn login(outcome: &'static str) {
    metrics::counter!("sessiongate_logins_total", "outcome" => outcome).increment(1);
}

/// The session store (Redis) failed an operation: `load`, `save`, `create`, `end`, `revoke`.
pub(crate) fn store_error(operation: &'static str) {
    metrics::counter!("sessiongate_session_store_errors_total", "operation" => operation)
        .increment(1);
}

/// A token refresh finished: `ok`, `shared` (another replica's, read from the store),
/// `invalid_grant`, `subject_changed`, `invalid_id_token`, `unavailable` or `timeout`.
pub(crate) fn refresh(outcome: &'static str) {
    metrics::counter!("sessiongate_refreshes_total", "outcome" => outcome).increment(1);
}

/// A session ended: `idle`, `absolute`, `invalid_grant`, `reauthenticate`, `stale`...
pub(crate) fn session_ended(reason: &'static str) {
    metrics::counter!("sessiongate_sessions_ended_total", "reason" => reason).increment(1);
}
