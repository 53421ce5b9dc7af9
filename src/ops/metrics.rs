//! Prometheus metrics, rendered by the admin listener's `/metrics`. Labels take a few fixed
//! values only — never a path, a user or a session id — so the series stay few.

use std::cell::RefCell;
use std::sync::{LazyLock, OnceLock};

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder on first use (every gateway in a process shares it).
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(UPSTREAM_DURATION.to_string()),
                    UPSTREAM_BUCKETS,
                )
                .and_then(PrometheusBuilder::install_recorder);
            match built {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics are unavailable");
                    None
                }
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

const UPSTREAM_DURATION: &str = "sessiongate_upstream_duration_seconds";

/// From a fast local application to one that is about to time out.
const UPSTREAM_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A request answered, by route kind (`public`, `protected`, `api`, `endpoint`, `auth`...),
/// outcome (`proxied`, `login_redirect`, `unauthenticated`, `forbidden`, `error`,
/// `answered`) and status class.
pub(crate) fn request(route: &'static str, outcome: &'static str, status: u16) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    // The registry hashes the name and labels on every lookup: each thread keeps the few
    // handles it has used, found again by comparing three short static strings.
    thread_local! {
        static REQUESTS: RefCell<Vec<(RequestLabels, Counter)>> = const { RefCell::new(Vec::new()) };
    }
    let labels = (route, outcome, class);
    REQUESTS.with_borrow_mut(|known| {
        if let Some((_, counter)) = known.iter().find(|(seen, _)| *seen == labels) {
            counter.increment(1);
            return;
        }
        install();
        let counter = metrics::counter!(
            "sessiongate_requests_total",
            "route" => route,
            "outcome" => outcome,
            "status" => class
        );
        counter.increment(1);
        known.push((labels, counter));
    });
}

type RequestLabels = (&'static str, &'static str, &'static str);

/// How long the application took to answer (until its response head arrived).
pub(crate) fn upstream_duration(duration: std::time::Duration) {
    static HANDLE: LazyLock<Histogram> = LazyLock::new(|| {
        install();
        metrics::histogram!(UPSTREAM_DURATION)
    });
    HANDLE.record(duration.as_secs_f64());
}

fn in_flight() -> &'static Gauge {
    static HANDLE: LazyLock<Gauge> = LazyLock::new(|| {
        install();
        metrics::gauge!("sessiongate_requests_in_flight")
    });
    &HANDLE
}

/// Counts a request as in flight until the guard drops (answered, failed or cancelled).
pub(crate) struct InFlight(());

impl InFlight {
    pub(crate) fn start() -> Self {
        in_flight().increment(1.0);
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight().decrement(1.0);
    }
}

/// A WebSocket relayed from now on.
pub(crate) fn websocket_opened() {
    metrics::gauge!("sessiongate_websockets_open").increment(1.0);
}

/// A relayed WebSocket ended: `closed` (by one of its ends), `shutdown`, or why its session
/// ended (`sign_out`, `revoked`, `ended`, `idle`, `absolute`, `invalid_grant`, ...).
pub(crate) fn websocket_closed(reason: &'static str) {
    metrics::gauge!("sessiongate_websockets_open").decrement(1.0);
    metrics::counter!("sessiongate_websockets_closed_total", "reason" => reason).increment(1);
}

/// A session cookie that was there but not usable (forged, from other secrets, broken).
pub(crate) fn session_cookie_rejected() {
    metrics::counter!("sessiongate_session_cookies_rejected_total").increment(1);
}

/// A fetch of the provider's discovery document or keys: `ok` or `error`.
pub(crate) fn idp_fetch(document: &'static str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!("sessiongate_idp_fetches_total", "document" => document, "outcome" => outcome)
        .increment(1);
}

/// A login attempt: `started`, `completed`, or the reason it failed.
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
