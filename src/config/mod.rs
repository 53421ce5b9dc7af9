//! Configuration: one TOML file, overridden by `SESSIONGATE_<SECTION>_<KEY>` variables, with
//! secrets optionally read from `<key>_file` files.
//!
//! Loading has two stages, as in ripgrep: what the user wrote (`raw`, a serde mirror checked
//! key by key against `schema`) and what the program uses (`Config`, typed and validated).
//! Every problem is collected and reported at once, each with its key path. This module
//! knows nothing of HTTP serving or OIDC; it only describes them.

mod duration;
mod raw;
pub(crate) mod schema;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use crate::secret::{KeyMaterial, Secret};

pub(crate) use duration::Human;
pub(crate) use validate::is_cookie_name_byte;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub oidc: OidcConfig,
    pub session: SessionConfig,
    pub headers: HeadersConfig,
    pub access: AccessConfig,
    pub logout: LogoutConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone)]
pub struct LogoutConfig {
    /// Sign-out also redirects to the provider's `end_session_endpoint`.
    pub rp_initiated: bool,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// External origin, without a path: `https://app.example.com`.
    pub public_url: Url,
    /// Starts with `/`, never ends with one.
    pub auth_prefix: String,
    pub admin_listen: Option<SocketAddr>,
    /// Required as a bearer token by the admin listener's revocation endpoint.
    pub admin_token: Option<Secret>,
    pub shutdown_grace: Duration,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins besides `public_url`'s whose pages may open WebSockets (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// TLS on the main listener, when both files are given.
    pub tls: Option<TlsFiles>,
    /// Reload when the configuration file changes (SIGHUP always reloads).
    pub watch_config: bool,
}

/// A certificate chain and its private key, PEM files watched for changes.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// How often the files are checked for a new certificate.
    pub watch_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `http://host:port` plus an optional base path, never ending in `/` unless it is `/`.
    pub url: Url,
    pub preserve_host: bool,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    /// More CA certificates (PEM) an https upstream's certificate may chain to.
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// RFC 6749 §2.3.1 HTTP Basic, the default every provider supports.
    Basic,
    /// Credentials in the form body.
    Post,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    /// Exactly as configured: discovery must return this very string.
    pub issuer: String,
    /// Overrides `<issuer>/.well-known/openid-configuration`.
    pub discovery_url: Option<Url>,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// Always contains `openid`.
    pub scopes: Vec<String>,
    pub extra_auth_params: BTreeMap<String, String>,
    /// Upper-case JWS names (`RS256`...); empty means discovery ∩ supported.
    pub id_token_signing_algs: Vec<String>,
    pub client_auth: ClientAuth,
    pub clock_skew: Duration,
    pub jwks_min_refresh: Duration,
    pub metadata_refresh: Duration,
    pub http_timeout: Duration,
    /// How long requests wait for a shared refresh before going on without it.
    pub refresh_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Cookie,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTokenExpiry {
    Ignore,
    Reauthenticate,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub store: StoreKind,
    /// The first seals, all open.
    pub secrets: Vec<KeyMaterial>,
    pub cookie_name: String,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub touch_interval: Duration,
    pub refresh_before_expiry: Duration,
    pub on_token_expiry: OnTokenExpiry,
    /// How long past token expiry a session may go on while refreshes fail; `None`: until
    /// its own deadlines.
    pub max_stale: Option<Duration>,
    pub max_pending_logins: usize,
    /// Form posts up to this many bytes survive a login; 0: none do.
    pub preserve_post_max: usize,
    /// Insert the expiry notice's script into the application's HTML pages.
    pub inject_warning: bool,
    /// How long before the idle deadline the notice shows.
    pub warning_before: Duration,
    pub redis_url: Option<Secret>,
    /// Prepended to every Redis key, so several deployments can share one Redis.
    pub redis_prefix: String,
    /// Time limit of each Redis command and connection attempt.
    pub redis_timeout: Duration,
    /// Frames from the client on a WebSocket count as activity.
    pub websocket_activity: bool,
}

#[derive(Debug, Clone)]
pub struct HeadersConfig {
    /// Header name (as configured) and the claim that fills it.
    pub claims: Vec<(http::HeaderName, String)>,
    /// Extra names removed from every incoming request.
    pub strip: Vec<http::HeaderName>,
    /// The header carrying the gateway's signed identity assertion; `None`: not sent.
    pub assertion: Option<http::HeaderName>,
    /// The assertion's `aud`; `None`: the upstream's origin.
    pub assertion_audience: Option<String>,
    pub assertion_lifetime: Duration,
}

#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub public_paths: Vec<String>,
    pub api_paths: Vec<String>,
    /// Audiences a bearer JWT may name; empty: bearer tokens are not accepted.
    pub bearer_audiences: Vec<String>,
    /// Opaque bearer tokens are introspected (RFC 7662), answers cached this long.
    pub bearer_introspection: Option<Duration>,
    /// What every authenticated user must satisfy where no rule says otherwise.
    pub requirements: Requirements,
    /// Dotted path into the claims.
    pub groups_claim: String,
    /// `[[access.rule]]`, in order: the first that matches decides.
    pub rules: Vec<AccessRule>,
}

/// Who may get in once authenticated. Empty lists require nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    /// Lower case, without a leading `@`.
    pub allowed_email_domains: Vec<String>,
    /// Lower case.
    pub allowed_emails: Vec<String>,
    pub allowed_groups: Vec<String>,
    /// Dotted claim path → the value it must have (or contain, for a list).
    pub required_claims: Vec<(String, String)>,
}

impl Requirements {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// One `[[access.rule]]`.
#[derive(Debug, Clone)]
pub struct AccessRule {
    /// `name`, or `access.rule[<index>]`: how logs name the rule.
    pub name: String,
    pub path: PathMatch,
    /// Empty: every method.
    pub methods: Vec<http::Method>,
    pub allow: Allow,
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    /// Like `public_paths` entries: ending in `/`, a prefix; otherwise itself and below.
    Prefix(String),
    Regex(regex_lite::Regex),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Allow {
    /// Served without a session.
    Public,
    /// Any authenticated user, whatever the global requirements.
    Authenticated,
    /// Authenticated users meeting these (instead of the global ones).
    Only(Requirements),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// One thing wrong with the configuration. Its text starts with the key path (or the
/// environment variable) it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `session.idle_timeout`, `SESSIONGATE_SERVER_LISTN`, or `file` for the file as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every problem found, in file order where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "the configuration has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Where configuration comes from. Tests pass their own environment instead of the process's.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Only `SESSIONGATE_*` variables matter.
    pub vars: BTreeMap<String, String>,
}

impl Environment {
    /// The process environment's `SESSIONGATE_*` variables.
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(schema::ENV_PREFIX))
            .collect();
        Self { vars }
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }
}

impl Config {
    /// Reads, merges and validates the file at `path`.
    pub fn load(path: &Path, env: &Environment) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![Problem {
                key: "file".to_string(),
                message: format!("cannot read {}: {e}", path.display()),
            }],
        })?;
        Self::parse(&text, env)
    }

    /// Merges and validates configuration text.
    pub fn parse(text: &str, env: &Environment) -> Result<Config, ConfigError> {
        validate::load(text, &env.vars)
    }

    /// A few lines for `sessiongate check`, with no secret in them.
    pub fn summary(&self) -> String {
        let mut lines = vec![
            format!("listen        {}", self.server.listen),
            format!("public url    {}", self.server.public_url),
            format!("upstream      {}", self.upstream.url),
            format!("issuer        {}", self.oidc.issuer),
            format!("client id     {}", self.oidc.client_id),
            format!(
                "session       {} store, idle {}, absolute {}, {} key(s)",
                match self.session.store {
                    StoreKind::Cookie => "cookie",
                    StoreKind::Redis => "redis",
                },
                Human(self.session.idle_timeout),
                Human(self.session.absolute_timeout),
                self.session.secrets.len()
            ),
        ];
        lines.push(match self.server.admin_listen {
            Some(addr) => format!("admin         {addr}"),
            None => "admin         disabled".to_string(),
        });
        for (index, rule) in self.access.rules.iter().enumerate() {
            let path = match &rule.path {
                PathMatch::Prefix(prefix) => prefix.clone(),
                PathMatch::Regex(regex) => format!("~ {}", regex.as_str()),
            };
            let methods = if rule.methods.is_empty() {
                "any method".to_string()
            } else {
                rule.methods
                    .iter()
                    .map(http::Method::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let allow = match &rule.allow {
                Allow::Public => "public",
                Allow::Authenticated => "authenticated",
                Allow::Only(_) => "requirements",
            };
            let label = if index == 0 { "rules" } else { "" };
            lines.push(format!(
                "{label:<14}{}: {path}, {methods} -> {allow}",
                rule.name
            ));
        }
        lines.extend(self.warnings().into_iter().map(|w| format!("warning: {w}")));
        lines.join("\n")
    }

    /// What is legal but probably not meant: printed by `check`, logged at start.
    pub fn warnings(&self) -> Vec<String> {
        validate::rule_overlaps(&self.access.rules)
    }
}

#[cfg(test)]
mod tests;
