//! `cargo run --example demo`: sessiongate's whole login story on one machine, in a browser,
//! within a minute. Three servers in one process:
//!
//! - a development OpenID Provider (`op.rs`) on <http://127.0.0.1:4181> (`DEMO_OP_ADDR`
//!   moves it, and the issuer with it), with a login form and two users: alice / alice
//!   (groups staff, admins) and bob / bob (staff);
//! - a sample legacy application (`app.rs`) on a free loopback port, whose page shows the
//!   identity headers it receives and the session's idle and absolute deadlines counting down;
//! - the gateway in front of the application on <http://127.0.0.1:4180>, run with
//!   `config/demo.toml` (idle timeout 2 minutes, absolute 10), filling in the application's
//!   address, the provider's issuer and a fresh session secret. Any other key can be overridden
//!   with `SESSIONGATE_<SECTION>_<KEY>`.
//!
//! DEVELOPMENT ONLY. The provider's signing key is committed to the repository and its
//! passwords are printed on its login page. All of this is a cargo example: none of it is
//! compiled into the `sessiongate` binary.

mod app;
mod op;
mod web;

use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;

/// The demo configuration; `main` fills in what only exists at run time.
const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");
/// Where the development provider listens unless `DEMO_OP_ADDR` says otherwise.
const DEFAULT_OP_ADDR: &str = "127.0.0.1:4181";

fn fresh_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::main]
async fn main() -> ExitCode {
    match demo().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let op_addr = std::env::var("DEMO_OP_ADDR").unwrap_or_else(|_| DEFAULT_OP_ADDR.to_owned());
    let op_listener = TcpListener::bind(&op_addr)
        .await
        .map_err(|e| format!("the development provider cannot listen on {op_addr}: {e}"))?;
    // The issuer is whatever address the provider really got, so DEMO_OP_ADDR=127.0.0.1:0 works.
    let issuer = format!("http://{}", op_listener.local_addr()?);
    let app_listener = TcpListener::bind("127.0.0.1:0").await?;

    let env = sessiongate::Environment::from_process()
        .with(
            "SESSIONGATE_UPSTREAM_URL",
            &format!("http://{}", app_listener.local_addr()?),
        )
        .with("SESSIONGATE_OIDC_ISSUER", &issuer)
        .with("SESSIONGATE_SESSION_SECRETS", &fresh_secret());
    let config = sessiongate::Config::parse(DEMO_CONFIG, &env)
        .map_err(|e| format!("config/demo.toml: {e}"))?;
    sessiongate::ops::logging::init(&config.log);

    // The provider is serving before the gateway starts, as a real one would be.
    let client = op::Client::registered_for(&config)?;
    let provider = Arc::new(op::Provider::new(issuer.clone(), client)?);
    tokio::spawn(provider.serve(op_listener));
    tokio::spawn(app::serve(app_listener, config.server.auth_prefix.clone()));

    let listeners = sessiongate::Listeners::bind(&config).await.map_err(|e| {
        format!(
            "the gateway cannot listen on {} (or its admin address): {e}",
            config.server.listen
        )
    })?;
    let users: Vec<String> = op::USERS
        .iter()
        .map(|u| format!("{} / {} ({})", u.username, u.password, u.groups.join(", ")))
        .collect();
    println!(
        "\nsessiongate demo — DEVELOPMENT ONLY, not for production\n\
         \n  open      http://{gateway}/\
         \n  sign in   {users}\
         \n  provider  {issuer}  (development OpenID Provider: committed signing key, in-memory state)\
         \n  session   idle timeout {idle}s, absolute {absolute}s, slides at most every {touch}s\
         \n\nCtrl-C stops.\n",
        gateway = listeners.main.local_addr()?,
        users = users.join("   "),
        idle = config.session.idle_timeout.as_secs(),
        absolute = config.session.absolute_timeout.as_secs(),
        touch = config.session.touch_interval.as_secs(),
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    sessiongate::run(listeners, config, sessiongate::Deps::system(), shutdown).await?;
    Ok(())
}
