//! sessiongate: an OpenID Connect session gateway.
//!
//! A reverse proxy in front of an application that cannot change: it strips identity
//! headers from every incoming request, decides whether the request may pass, forwards it
//! with the identity headers the application trusts, and streams the answer back.
//!
//! The parts, each depending only on those listed before it:
//!
//! - [`config`]: the TOML file, environment overrides and secret files, validated.
//! - [`secret`]: redacting newtypes for secrets.
//! - [`clock`]: wall-clock time and randomness behind traits, so tests control both.
//! - [`session`]: the session record and its deadlines, sealed into chunked cookies.
//! - `proxy`: the upstream client, header rewriting, streaming and upgrade tunnels.
//! - `gateway`: the request path: identity hygiene, routing, the access decision.
//! - `server`: accepting connections, HTTP/1.1 and HTTP/2, limits, graceful drain.
//! - [`ops`]: the admin listener and logging.
//!
//! [`run`] takes its listeners and its shutdown signal instead of binding or trapping them,
//! so tests drive the whole gateway in-process on port 0.

pub mod clock;
pub mod config;
mod gateway;
pub mod oidc;
pub mod ops;
mod proxy;
pub mod secret;
mod server;
pub mod session;
#[cfg(test)]
mod test_support;
mod tls;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, ConfigError, Environment};

/// What the gateway reads from the world besides its sockets: wall-clock time and
/// randomness. Tests pass a manual clock and seeded randomness.
#[derive(Clone)]
pub struct Deps {
    pub clock: Arc<dyn clock::Clock>,
    pub random: Arc<dyn clock::Random>,
}

impl Deps {
    /// The system clock and the operating system's randomness.
    pub fn system() -> Self {
        Self {
            clock: Arc::new(clock::SystemClock),
            random: Arc::new(clock::OsRandom),
        }
    }
}

/// The sockets the gateway serves, bound by the caller.
pub struct Listeners {
    /// Browsers and API clients.
    pub main: TcpListener,
    /// `/healthz` and `/readyz`; `None` disables them.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses the configuration names.
    pub async fn bind(config: &Config) -> std::io::Result<Self> {
        let main = TcpListener::bind(config.server.listen).await?;
        let admin = match config.server.admin_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        Ok(Self { main, admin })
    }
}

/// `error: cause: cause`, for log lines.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start: {0}")]
    Setup(String),
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests and open
/// WebSockets finish for up to `server.shutdown_grace`, and returns.
pub async fn run(
    listeners: Listeners,
    config: Config,
    deps: Deps,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    ops::metrics::install();
    for warning in config.warnings() {
        tracing::warn!(%warning, "configuration");
    }
    let tunnels = proxy::Tunnels::default();
    let provider = oidc::Provider::new(&config.oidc);
    let gateway = gateway::Gateway::new(&config, tunnels.clone(), provider.clone(), deps)
        .map_err(RunError::Setup)?;
    let gateway = Arc::new(gateway);
    let stop_background = CancellationToken::new();
    tokio::spawn(provider.clone().maintain(stop_background.clone()));
    let readiness = Arc::new(ops::admin::Readiness::new(
        move || provider.is_ready(),
        gateway.store(),
    ));
    let limits = server::Limits {
        header_read_timeout: config.server.header_read_timeout,
        max_header_bytes: config.server.max_header_bytes,
        max_headers: config.server.max_headers,
    };
    let stop = CancellationToken::new();
    let tls = match &config.server.tls {
        Some(files) => {
            let (acceptor, cert) = tls::acceptor(files).map_err(RunError::Setup)?;
            tokio::spawn(cert.watch(stop_background.clone()));
            Some(acceptor)
        }
        None => None,
    };

    let revoker = ops::admin::Revoker {
        store: gateway.store(),
        clock: gateway.clock(),
        token: config.server.admin_token.clone(),
    };
    let main = {
        let handler = move |request, peer| {
            let gateway = gateway.clone();
            async move { gateway.handle(request, peer).await }
        };
        tokio::spawn(server::serve(
            listeners.main,
            limits,
            tls,
            handler,
            stop.clone(),
        ))
    };
    let admin = listeners.admin.map(|listener| {
        let router = ops::admin::router(readiness.clone(), revoker);
        let handler = move |request: http::Request<hyper::body::Incoming>, _peer| {
            let router = router.clone();
            async move {
                use tower::ServiceExt as _;
                match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
        };
        // The admin listener keeps answering (readyz: 503) until the main one has drained.
        tokio::spawn(server::serve(
            listener,
            limits,
            None,
            handler,
            CancellationToken::new(),
        ))
    });

    shutdown.await;
    tracing::info!(grace = ?config.server.shutdown_grace, "shutting down: draining connections");
    readiness.drain();
    stop.cancel();
    let drained = async {
        let _ = main.await;
        tunnels.drained().await;
    };
    if tokio::time::timeout(config.server.shutdown_grace, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            open_tunnels = tunnels.open(),
            "shutdown grace elapsed: closing what is left"
        );
        tunnels.close_all();
    }
    stop_background.cancel();
    if let Some(admin) = admin {
        admin.abort();
    }
    tracing::info!("stopped");
    Ok(())
}
