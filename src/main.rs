//! The `sessiongate` command line: parse arguments, read the configuration, set up logging,
//! bind, and hand over to [`sessiongate::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use clap::{Parser, Subcommand};
use sessiongate::{Config, Environment, Listeners};

// Requests allocate many small, short-lived buffers (headers, cookies, tokens); mimalloc
// serves them with thread-local free lists where glibc's malloc took a noticeable share of
// each request's time (see the benchmarks in the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An OpenID Connect session gateway: logs users in, keeps a sliding encrypted session,
/// and forwards requests to your application with identity headers it can trust.
#[derive(Parser)]
#[command(
    version,
    propagate_version = true,
    after_help = "Start here:\n  sessiongate gen-secret                   a value for session.secrets\n  sessiongate check --config FILE          validate a configuration\n  sessiongate run --config FILE            serve\n\nEvery configuration key can also be set as SESSIONGATE_<SECTION>_<KEY>."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the configuration, print a summary, and exit 1 on any problem.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print a fresh random secret for `session.secrets`.
    GenSecret,
    /// End sessions: every session of a user (`--sub`), or those of one provider session
    /// (`--sid`). Through a running gateway's admin listener (`--addr`), or, with the Redis
    /// store, straight in Redis (`--config`), reaching every replica either way.
    Revoke {
        /// The user's `sub`: every session of theirs created before now ends.
        #[arg(long, conflicts_with = "sid", required_unless_present = "sid")]
        sub: Option<String>,
        /// The provider's session id.
        #[arg(long)]
        sid: Option<String>,
        /// The admin listener's address (default 127.0.0.1:9090).
        #[arg(long, conflicts_with = "config")]
        addr: Option<std::net::SocketAddr>,
        /// The admin token (server.admin_token), if the gateway requires one.
        #[arg(long, env = "SESSIONGATE_SERVER_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A configuration with `session.store = "redis"`: revoke in Redis directly.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the admin listener's /healthz answers 200 (for container health checks).
    Healthcheck {
        /// The admin listener's address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        addr: std::net::SocketAddr,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "SESSIONGATE_CONFIG",
        default_value = "config/sessiongate.toml"
    )]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config: arg } => match load(&arg.config, &Environment::from_process()) {
            Some(config) => serve(config, arg.config),
            None => ExitCode::FAILURE,
        },
        Command::Check { config } => match load(&config.config, &Environment::from_process()) {
            Some(loaded) => {
                println!("{}: ok\n{}", config.config.display(), loaded.summary());
                ExitCode::SUCCESS
            }
            None => ExitCode::FAILURE,
        },
        Command::GenSecret => {
            println!("{}", new_secret());
            ExitCode::SUCCESS
        }
        Command::Revoke {
            sub,
            sid,
            addr,
            token,
            config,
        } => {
            let target = match (&sub, &sid) {
                (Some(sub), _) => Revocation::Subject(sub.clone()),
                (None, Some(sid)) => Revocation::IdpSession(sid.clone()),
                (None, None) => unreachable!("clap requires one"),
            };
            if let Some(path) = config {
                return match load(&path, &Environment::from_process()) {
                    Some(config) => revoke_in_redis(&config, &target),
                    None => ExitCode::FAILURE,
                };
            }
            let addr = addr.unwrap_or(([127, 0, 0, 1], 9090).into());
            let (name, value) = match &target {
                Revocation::Subject(sub) => ("sub", sub.as_str()),
                Revocation::IdpSession(sid) => ("sid", sid.as_str()),
            };
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair(name, value)
                .finish();
            match admin_request(addr, "POST /sessions/revoke", &body, token.as_deref()) {
                Ok((200, text)) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Ok((status, text)) => {
                    eprint!("the gateway answered {status}: {text}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("cannot reach the admin listener at {addr}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Healthcheck { addr } => match healthcheck(addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

enum Revocation {
    Subject(String),
    IdpSession(String),
}

/// `revoke --config`: straight in the shared store, so no gateway needs to be reachable.
fn revoke_in_redis(config: &Config, target: &Revocation) -> ExitCode {
    use sessiongate::clock::Clock as _;
    if config.session.store != sessiongate::config::StoreKind::Redis {
        eprintln!(
            "with session.store = \"cookie\", revocations live in each running gateway: use --addr"
        );
        return ExitCode::FAILURE;
    }
    runtime().block_on(async {
        let scheme = sessiongate::session::Scheme::of(&config.server.public_url);
        let store = match sessiongate::session::store::SessionStore::new(&config.session, scheme) {
            Ok(store) => store,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let now = sessiongate::clock::SystemClock.now();
        let (revoked, done) = match target {
            // Sessions created in this very second are included: the operator means "now".
            Revocation::Subject(sub) => (
                store.revoke_subject(sub, now + 1, now).await,
                "revoked every session of that subject",
            ),
            Revocation::IdpSession(sid) => (
                store.revoke_idp_session(sid, now).await,
                "revoked the sessions of that provider session",
            ),
        };
        match revoked {
            Ok(()) => {
                println!("{done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// One request to the admin listener; returns the status and the body.
fn admin_request(
    addr: std::net::SocketAddr,
    method_and_path: &str,
    body: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method_and_path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{authorization}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let text = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, text))
}

/// One plain HTTP/1.1 request with short timeouts: the image has no shell or curl.
fn healthcheck(addr: std::net::SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    use std::time::Duration;
    let timeout = Duration::from_secs(3);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    if head.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "/healthz answered {}",
            String::from_utf8_lossy(&head)
        )))
    }
}

fn load(path: &std::path::Path, env: &Environment) -> Option<Config> {
    match Config::load(path, env) {
        Ok(config) => Some(config),
        Err(e) => {
            eprint!("{}: {e}", path.display());
            None
        }
    }
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

/// Binds, runs until SIGTERM or Ctrl-C (reloading `path` on SIGHUP), and reports.
fn serve(config: Config, path: PathBuf) -> ExitCode {
    sessiongate::ops::logging::init(&config.log);
    runtime().block_on(async move {
        let (reload, reloads) = tokio::sync::mpsc::channel(4);
        tokio::spawn(reload_on_signal(path.clone(), reload.clone()));
        if config.server.watch_config {
            tokio::spawn(reload_on_change(path, reload));
        }
        let listeners = match Listeners::bind(&config).await {
            Ok(listeners) => listeners,
            Err(e) => {
                tracing::error!(listen = %config.server.listen, error = %e, "cannot bind");
                return ExitCode::FAILURE;
            }
        };
        let bound =
            |l: &tokio::net::TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            listen = bound(&listeners.main),
            admin = listeners.admin.as_ref().map(bound),
            upstream = %config.upstream.url,
            "sessiongate started"
        );
        match sessiongate::run_reloading(
            listeners,
            config,
            sessiongate::Deps::system(),
            shutdown_signal(),
            reloads,
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "sessiongate failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// Reads and validates the file again; a bad one is logged, as `check` would print it.
async fn reread(path: &std::path::Path, reload: &tokio::sync::mpsc::Sender<Config>) {
    match Config::load(path, &Environment::from_process()) {
        Ok(config) => {
            let _ = reload.send(config).await;
        }
        Err(e) => {
            tracing::error!(config = %path.display(), problems = %e, "configuration reload refused: the current one stays");
        }
    }
}

async fn reload_on_signal(path: PathBuf, reload: tokio::sync::mpsc::Sender<Config>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
            reread(&path, &reload).await;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, reload);
}

/// `server.watch_config`: the file is looked at every second, and reread when it changed.
async fn reload_on_change(path: PathBuf, reload: tokio::sync::mpsc::Sender<Config>) {
    let stamp = |path: &std::path::Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let mut seen = stamp(&path);
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = stamp(&path);
        if now.is_some() && now != seen {
            seen = now;
            tracing::info!(config = %path.display(), "the configuration file changed: reloading");
            reread(&path, &reload).await;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
