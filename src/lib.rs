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
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
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
    let (_keep, reloads) = tokio::sync::mpsc::channel(1);
    run_reloading(listeners, config, deps, shutdown, reloads).await
}

/// The parts of the gateway a reload replaces, each request taking the one in service when
/// it starts: requests in flight finish on the old configuration, connections stay open.
struct Live {
    gateway: std::sync::RwLock<Arc<gateway::Gateway>>,
    provider: std::sync::RwLock<(Arc<oidc::Provider>, CancellationToken)>,
}

impl Live {
    fn gateway(&self) -> Arc<gateway::Gateway> {
        self.gateway
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn provider(&self) -> Arc<oidc::Provider> {
        self.provider
            .read()
            .map(|p| p.0.clone())
            .unwrap_or_else(|p| p.into_inner().0.clone())
    }
}

/// How long a reload waits for a changed identity provider to be discovered.
const RELOAD_DISCOVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// As [`run`], and each configuration received on `reloads` (already validated) replaces the
/// running one without dropping connections or sessions. Listener addresses and TLS files
/// change only with a restart.
pub async fn run_reloading(
    listeners: Listeners,
    config: Config,
    deps: Deps,
    shutdown: impl Future<Output = ()> + Send,
    mut reloads: tokio::sync::mpsc::Receiver<Config>,
) -> Result<(), RunError> {
    ops::metrics::install();
    for warning in config.warnings() {
        tracing::warn!(%warning, "configuration");
    }
    let tunnels = proxy::Tunnels::default();
    let stop_background = CancellationToken::new();
    let provider = oidc::Provider::new(&config.oidc);
    let provider_stop = stop_background.child_token();
    tokio::spawn(provider.clone().maintain(provider_stop.clone()));
    let store = session::store::SessionStore::new(
        &config.session,
        session::Scheme::of(&config.server.public_url),
    )
    .map_err(RunError::Setup)?;
    let sockets = Arc::new(gateway::sockets::Sockets::default());
    let gateway = gateway::Gateway::new(
        &config,
        tunnels.clone(),
        provider.clone(),
        Arc::new(store),
        sockets.clone(),
        deps.clone(),
    )
    .map_err(RunError::Setup)?;
    let live = Arc::new(Live {
        gateway: std::sync::RwLock::new(Arc::new(gateway)),
        provider: std::sync::RwLock::new((provider, provider_stop)),
    });
    let current_store: ops::admin::CurrentStore = {
        let live = live.clone();
        Arc::new(move || live.gateway().store())
    };
    tokio::spawn(sockets.clone().keep_sweeping(
        {
            let current_store = current_store.clone();
            move || current_store()
        },
        deps.clone(),
        stop_background.clone(),
    ));
    let readiness = Arc::new(ops::admin::Readiness::new(
        {
            let live = live.clone();
            move || live.provider().is_ready()
        },
        current_store.clone(),
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
        store: current_store,
        clock: deps.clock.clone(),
        token: config.server.admin_token.clone(),
        revoked: {
            let sockets = sockets.clone();
            Arc::new(move || sockets.wake())
        },
    };
    let main = {
        let live = live.clone();
        let handler = move |request, peer| {
            let gateway = live.gateway();
            // Boxed once here: the request's future is kilobytes, and hyper and the panic
            // guard would otherwise copy it by value on every request.
            Box::pin(async move { gateway.handle(request, peer).await })
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

    let mut config = config;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(new) = reloads.recv() => {
                match reload(&live, &config, &new, &tunnels, &deps, &stop_background).await {
                    Ok(()) => {
                        tracing::info!("configuration reloaded");
                        config = new;
                    }
                    Err(e) => tracing::error!(error = %e, "configuration reload refused: the current one stays"),
                }
            }
        }
    }
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

/// Builds the gateway for `new` and puts it in service. The provider and the session
/// store's backend are kept when their settings did not change; a changed provider must be
/// discovered before it takes over.
async fn reload(
    live: &Live,
    old: &Config,
    new: &Config,
    tunnels: &proxy::Tunnels,
    deps: &Deps,
    stop_background: &CancellationToken,
) -> Result<(), String> {
    let restart_only = [
        ("server.listen", old.server.listen != new.server.listen),
        (
            "server.admin_listen",
            old.server.admin_listen != new.server.admin_listen,
        ),
        (
            "server.tls_cert, server.tls_key",
            old.server.tls.as_ref().map(|t| (&t.cert, &t.key))
                != new.server.tls.as_ref().map(|t| (&t.cert, &t.key)),
        ),
        (
            "server limits and admin token",
            old.server.header_read_timeout != new.server.header_read_timeout
                || old.server.max_header_bytes != new.server.max_header_bytes
                || old.server.max_headers != new.server.max_headers
                || old.server.admin_token != new.server.admin_token,
        ),
    ];
    for (keys, changed) in restart_only {
        if changed {
            tracing::warn!(keys, "changed, but takes effect only after a restart");
        }
    }
    for warning in new.warnings() {
        tracing::warn!(%warning, "configuration");
    }
    let replaced_provider = if new.oidc == old.oidc {
        None
    } else {
        let provider = oidc::Provider::new(&new.oidc);
        let stop = stop_background.child_token();
        tokio::spawn(provider.clone().maintain(stop.clone()));
        let discovered = async {
            while !provider.is_ready() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(RELOAD_DISCOVERY_WAIT, discovered)
            .await
            .is_err()
        {
            stop.cancel();
            return Err(format!(
                "the identity provider {} could not be discovered",
                new.oidc.issuer
            ));
        }
        Some((provider, stop))
    };
    let provider = replaced_provider
        .as_ref()
        .map_or_else(|| live.provider(), |(p, _)| p.clone());
    let store = live
        .gateway()
        .store()
        .reconfigured(&new.session, session::Scheme::of(&new.server.public_url))?;
    let gateway = gateway::Gateway::new(
        new,
        tunnels.clone(),
        provider,
        Arc::new(store),
        live.gateway().sockets(),
        deps.clone(),
    )
    .inspect_err(|_| {
        if let Some((_, stop)) = &replaced_provider {
            stop.cancel();
        }
    })?;
    *live.gateway.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(gateway);
    if let Some(replaced) = replaced_provider {
        let (_, old_stop) = std::mem::replace(
            &mut *live.provider.write().unwrap_or_else(|p| p.into_inner()),
            replaced,
        );
        old_stop.cancel();
    }
    Ok(())
}
