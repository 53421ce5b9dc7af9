//! From text to a validated [`Config`], collecting every problem on the way.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;
use url::{Host, Url};

use super::duration::{self, Human};
use super::raw::Raw;
use super::schema::{self, SECRET_FILES};
use super::*;

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    /// Records `key: message`.
    fn at(&mut self, key: &str, message: impl Display) {
        self.0.push(Problem {
            key: key.to_string(),
            message: format!("{key}: {message}"),
        });
    }

    /// Records a message that already names its key.
    fn whole(&mut self, key: &str, message: String) {
        self.0.push(Problem {
            key: key.to_string(),
            message,
        });
    }
}

pub(super) fn load(text: &str, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    let mut problems = Problems::default();
    let mut table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            // The error's own rendering quotes the offending line, which may hold a secret:
            // say where it is instead.
            let place = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(" at line {line}, column {column}")
            });
            let message = e.message().trim_end();
            problems.at(
                "file",
                format!("not valid TOML{}: {message}", place.unwrap_or_default()),
            );
            return Err(ConfigError {
                problems: problems.0,
            });
        }
    };
    for (key, message) in schema::check_shape(&table) {
        problems.at(&key, message);
    }
    for (var, message) in schema::apply_env(&mut table, env) {
        problems.at(&var, message);
    }
    read_secret_files(&mut table, env, &mut problems);
    if !problems.0.is_empty() {
        return Err(ConfigError {
            problems: problems.0,
        });
    }
    let raw: Raw = match table.try_into() {
        Ok(raw) => raw,
        Err(e) => {
            problems.at("file", e.to_string().trim_end());
            return Err(ConfigError {
                problems: problems.0,
            });
        }
    };
    let config = validate(raw, &mut problems);
    if problems.0.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            problems: problems.0,
        })
    }
}

fn get<'t>(table: &'t toml::Table, path: &str) -> Option<&'t toml::Value> {
    let (section, key) = path.split_once('.')?;
    table.get(section)?.as_table()?.get(key)
}

fn remove(table: &mut toml::Table, path: &str) {
    if let Some((section, key)) = path.split_once('.') {
        if let Some(section) = table.get_mut(section).and_then(toml::Value::as_table_mut) {
            section.remove(key);
        }
    }
}

/// Replaces each `<key>_file` with the file's content under `<key>`. A secret given in the
/// environment (either form) wins over both forms in the file.
fn read_secret_files(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
    problems: &mut Problems,
) {
    for (secret, file) in SECRET_FILES {
        let in_env = |path: &str| env.contains_key(&schema::env_name(path));
        match (in_env(secret), in_env(file)) {
            (true, false) => remove(table, file),
            (false, true) => remove(table, secret),
            _ => {}
        }
        let Some(path) = get(table, file)
            .and_then(toml::Value::as_str)
            .map(str::to_string)
        else {
            continue;
        };
        remove(table, file);
        if get(table, secret).is_some() {
            problems.at(
                secret,
                format!("is set twice: give either {secret} or {file}, not both"),
            );
            continue;
        }
        let content = match std::fs::read_to_string(&path) {
            Ok(content) => content,
            Err(e) => {
                problems.at(file, format!("cannot read {path}: {e}"));
                continue;
            }
        };
        let value = if schema::lookup(secret).map(|k| k.kind) == Some(schema::Kind::List) {
            toml::Value::Array(
                content
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| toml::Value::String(l.to_string()))
                    .collect(),
            )
        } else {
            toml::Value::String(content.trim().to_string())
        };
        let (section, key) = secret.split_once('.').unwrap_or((secret, ""));
        if let Some(section) = table.get_mut(section).and_then(toml::Value::as_table_mut) {
            section.insert(key.to_string(), value);
        }
    }
}

fn validate(raw: Raw, p: &mut Problems) -> Config {
    let server = server(raw.server, p);
    let upstream = upstream(raw.upstream, p);
    let oidc = oidc(raw.oidc, p);
    let session = session(raw.session, p);
    // Browsers drop prefixed cookies that are not Secure, and a plain-http origin gets none:
    // said here, with the other problems, rather than only when the gateway starts.
    let prefixed = ["__Host-", "__Secure-"]
        .iter()
        .any(|prefix| session.cookie_name.starts_with(prefix));
    if prefixed && server.public_url.scheme() == "http" {
        p.at(
            "session.cookie_name",
            format!(
                "\"{}\" has a __Host-/__Secure- prefix, which needs an https server.public_url (on https the gateway adds __Host- by itself)",
                session.cookie_name
            ),
        );
    }
    let headers = headers(raw.headers, p);
    let access = access(raw.access, p);
    let logout = LogoutConfig {
        rp_initiated: raw.logout.rp_initiated.unwrap_or(false),
    };
    let log = log(raw.log, p);
    Config {
        server,
        upstream,
        oidc,
        session,
        headers,
        access,
        logout,
        log,
    }
}

fn default_of(path: &str) -> &'static str {
    schema::lookup(path).map_or("", |k| k.default)
}

fn duration(p: &mut Problems, path: &str, value: Option<String>) -> Duration {
    let text = value.unwrap_or_else(|| default_of(path).to_string());
    duration::parse(&text).unwrap_or_else(|e| {
        p.at(path, e);
        Duration::ZERO
    })
}

fn socket_addr(p: &mut Problems, path: &str, value: &str) -> SocketAddr {
    value.parse().unwrap_or_else(|_| {
        p.at(
            path,
            format!(
                "\"{value}\" is not an address; write host:port with an IP, like \"0.0.0.0:4180\""
            ),
        );
        SocketAddr::from(([0, 0, 0, 0], 0))
    })
}

fn required(p: &mut Problems, path: &str, value: Option<String>) -> Option<String> {
    match value {
        Some(v) if !v.trim().is_empty() => Some(v),
        _ => {
            p.at(
                path,
                format!("is required (or set {})", schema::env_name(path)),
            );
            None
        }
    }
}

/// A placeholder for values that failed validation; never used, as `load` then returns errors.
fn placeholder_url() -> Url {
    Url::parse("http://invalid.invalid/").expect("static URL parses")
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An https URL, or http for a loopback host (local development and tests).
fn https_url(p: &mut Problems, path: &str, value: Option<String>) -> Url {
    let Some(value) = required(p, path, value) else {
        return placeholder_url();
    };
    let url = match Url::parse(&value) {
        Ok(url) => url,
        Err(e) => {
            p.at(path, format!("\"{value}\" is not a URL ({e})"));
            return placeholder_url();
        }
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => p.at(
            path,
            "must be an https URL (http is allowed only for loopback hosts)",
        ),
    }
    if url.query().is_some() || url.fragment().is_some() {
        p.at(path, "must not have a query or a fragment");
    }
    url
}

fn server(raw: raw::Server, p: &mut Problems) -> ServerConfig {
    let listen = socket_addr(
        p,
        "server.listen",
        raw.listen.as_deref().unwrap_or(default_of("server.listen")),
    );
    let public_url = https_url(p, "server.public_url", raw.public_url);
    if public_url.path() != "/" {
        p.at(
            "server.public_url",
            "must be an origin without a path, like \"https://app.example.com\"",
        );
    }
    let auth_prefix = raw
        .auth_prefix
        .unwrap_or_else(|| default_of("server.auth_prefix").to_string());
    let prefix_ok = auth_prefix.len() > 1
        && auth_prefix.starts_with('/')
        && !auth_prefix.ends_with('/')
        && auth_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    if !prefix_ok {
        p.at("server.auth_prefix", format!("\"{auth_prefix}\" must be a path like \"/oauth2\": a leading `/`, no trailing `/`, letters, digits, `-`, `_`, `.`"));
    }
    let admin_listen = raw
        .admin_listen
        .map(|a| socket_addr(p, "server.admin_listen", &a));
    if admin_listen == Some(listen) && listen.port() != 0 {
        p.at("server.admin_listen", "must differ from server.listen");
    }
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let parsed = entry
                .parse::<IpNet>()
                .ok()
                .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from));
            if parsed.is_none() {
                p.at(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("\"{entry}\" is not an IP address or CIDR like \"10.0.0.0/8\""),
                );
            }
            parsed
        })
        .collect();
    let max_header_bytes = int_in(
        p,
        "server.max_header_bytes",
        raw.max_header_bytes,
        8192..=1 << 20,
    );
    let max_headers = int_in(p, "server.max_headers", raw.max_headers, 8..=1000);
    let watch_interval = positive(p, "server.tls_watch_interval", raw.tls_watch_interval);
    let tls = match (
        raw.tls_cert.filter(|c| !c.is_empty()),
        raw.tls_key.filter(|k| !k.is_empty()),
    ) {
        (Some(cert), Some(key)) => {
            for (path, file) in [("server.tls_cert", &cert), ("server.tls_key", &key)] {
                if let Err(e) = std::fs::metadata(file) {
                    p.at(path, format!("cannot read {file}: {e}"));
                }
            }
            Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
                watch_interval,
            })
        }
        (None, None) => None,
        (Some(_), None) => {
            p.at("server.tls_key", "is required with server.tls_cert");
            None
        }
        (None, Some(_)) => {
            p.at("server.tls_cert", "is required with server.tls_key");
            None
        }
    };
    let allowed_origins = raw
        .allowed_origins
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, text)| match Url::parse(text) {
            Ok(url) if url.has_host() && url.path() == "/" && url.query().is_none() => {
                Some(url.origin().ascii_serialization())
            }
            _ => {
                p.at(
                    &format!("server.allowed_origins[{i}]"),
                    format!("\"{text}\" is not an origin like \"https://other.example.com\""),
                );
                None
            }
        })
        .collect();
    ServerConfig {
        allowed_origins,
        tls,
        watch_config: raw.watch_config.unwrap_or(false),
        listen,
        public_url,
        auth_prefix,
        admin_listen,
        admin_token: raw.admin_token.filter(|t| !t.is_empty()).map(Secret::new),
        shutdown_grace: duration(p, "server.shutdown_grace", raw.shutdown_grace),
        trusted_proxies,
        header_read_timeout: positive(p, "server.header_read_timeout", raw.header_read_timeout),
        max_header_bytes,
        max_headers,
    }
}

fn int_in(
    p: &mut Problems,
    path: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<usize>,
) -> usize {
    let default: usize = default_of(path).parse().unwrap_or(*range.start());
    let Some(value) = value else { return default };
    match usize::try_from(value) {
        Ok(v) if range.contains(&v) => v,
        _ => {
            p.at(
                path,
                format!(
                    "{value} is out of range: use {} to {}",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
    }
}

fn positive(p: &mut Problems, path: &str, value: Option<String>) -> Duration {
    let d = duration(p, path, value);
    if d.is_zero() && !p.0.iter().any(|x| x.key == path) {
        p.at(path, "must be longer than 0s");
    }
    d
}

fn upstream(raw: raw::Upstream, p: &mut Problems) -> UpstreamConfig {
    let path = "upstream.url";
    let url = match required(p, path, raw.url) {
        None => placeholder_url(),
        Some(value) => match Url::parse(&value) {
            Err(e) => {
                p.at(path, format!("\"{value}\" is not a URL ({e})"));
                placeholder_url()
            }
            Ok(url) => {
                if url.scheme() != "http" && url.scheme() != "https" {
                    p.at(
                        path,
                        format!(
                            "scheme \"{}\" is not supported: use http://host:port or https://host:port",
                            url.scheme()
                        ),
                    );
                }
                if url.host().is_none() {
                    p.at(path, "needs a host");
                }
                if url.query().is_some() || url.fragment().is_some() {
                    p.at(path, "must not have a query or a fragment");
                }
                url
            }
        },
    };
    UpstreamConfig {
        url,
        preserve_host: raw.preserve_host.unwrap_or(true),
        connect_timeout: positive(p, "upstream.connect_timeout", raw.connect_timeout),
        response_timeout: positive(p, "upstream.response_timeout", raw.response_timeout),
        pool_idle_timeout: duration(p, "upstream.pool_idle_timeout", raw.pool_idle_timeout),
        ca_file: raw.ca_file.filter(|f| !f.is_empty()).map(|file| {
            if let Err(e) = std::fs::metadata(&file) {
                p.at("upstream.ca_file", format!("cannot read {file}: {e}"));
            }
            file.into()
        }),
    }
}

/// The JWS algorithms sessiongate verifies. `none` is deliberately absent.
pub(crate) const SUPPORTED_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
];

/// Parameters the gateway sets itself; letting configuration override them would break
/// the flow's security (state, nonce, PKCE) or its routing.
const RESERVED_AUTH_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

fn oidc(raw: raw::Oidc, p: &mut Problems) -> OidcConfig {
    let issuer = https_url(p, "oidc.issuer", raw.issuer.clone());
    let issuer = if p.0.iter().any(|x| x.key == "oidc.issuer") {
        issuer.to_string()
    } else {
        raw.issuer.unwrap_or_default().trim().to_string()
    };
    let discovery_url = raw
        .discovery_url
        .filter(|u| !u.is_empty())
        .map(|u| https_url(p, "oidc.discovery_url", Some(u)));
    let client_id = required(p, "oidc.client_id", raw.client_id).unwrap_or_default();
    let client_secret = raw.client_secret.filter(|s| !s.is_empty()).map(Secret::new);
    let mut scopes = raw.scopes.unwrap_or_else(|| {
        vec![
            "openid".to_string(),
            "email".to_string(),
            "profile".to_string(),
        ]
    });
    for (i, scope) in scopes.iter().enumerate() {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            p.at(
                &format!("oidc.scopes[{i}]"),
                format!("\"{scope}\" must be one scope, without spaces"),
            );
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_string());
    }
    let extra_auth_params = raw.extra_auth_params.unwrap_or_default();
    for name in extra_auth_params.keys() {
        if RESERVED_AUTH_PARAMS.contains(&name.as_str()) {
            p.at(
                &format!("oidc.extra_auth_params.{name}"),
                "is set by the gateway itself and cannot be overridden",
            );
        }
    }
    let id_token_signing_algs = raw.id_token_signing_algs.unwrap_or_default();
    for (i, alg) in id_token_signing_algs.iter().enumerate() {
        if !SUPPORTED_ALGS.contains(&alg.as_str()) {
            let hint = if alg.eq_ignore_ascii_case("none") {
                "unsigned tokens are never accepted".to_string()
            } else {
                format!("use one of {}", SUPPORTED_ALGS.join(", "))
            };
            p.at(
                &format!("oidc.id_token_signing_algs[{i}]"),
                format!("\"{alg}\" is not supported: {hint}"),
            );
        }
    }
    if id_token_signing_algs.iter().any(|a| a == "HS256") && client_secret.is_none() {
        p.at(
            "oidc.id_token_signing_algs",
            "HS256 needs oidc.client_secret: it is the HMAC key",
        );
    }
    let client_auth = match raw
        .token_endpoint_auth
        .as_deref()
        .unwrap_or("client_secret_basic")
    {
        "client_secret_basic" => ClientAuth::Basic,
        "client_secret_post" => ClientAuth::Post,
        other => {
            p.at(
                "oidc.token_endpoint_auth",
                format!("\"{other}\" is not supported: use \"client_secret_basic\" or \"client_secret_post\""),
            );
            ClientAuth::Basic
        }
    };
    OidcConfig {
        issuer,
        discovery_url,
        client_id,
        client_secret,
        scopes,
        extra_auth_params,
        id_token_signing_algs,
        client_auth,
        clock_skew: duration(p, "oidc.clock_skew", raw.clock_skew),
        jwks_min_refresh: duration(p, "oidc.jwks_min_refresh", raw.jwks_min_refresh),
        metadata_refresh: positive(p, "oidc.metadata_refresh", raw.metadata_refresh),
        http_timeout: positive(p, "oidc.http_timeout", raw.http_timeout),
        refresh_timeout: positive(p, "oidc.refresh_timeout", raw.refresh_timeout),
    }
}

fn decode_key(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .ok()
}

fn session(raw: raw::Session, p: &mut Problems) -> SessionConfig {
    let store = match raw.store.as_deref().unwrap_or("cookie") {
        "cookie" => StoreKind::Cookie,
        "redis" => StoreKind::Redis,
        other => {
            p.at(
                "session.store",
                format!("\"{other}\" is not a store: use \"cookie\" or \"redis\""),
            );
            StoreKind::Cookie
        }
    };
    let secrets_text = raw.secrets.unwrap_or_default();
    if secrets_text.is_empty() {
        p.at(
            "session.secrets",
            "is required: add one with `sessiongate gen-secret` (or set session.secrets_file)",
        );
    }
    let secrets = secrets_text
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let key = decode_key(text).and_then(KeyMaterial::new);
            if key.as_ref().is_some_and(looks_made_up) {
                p.at(&format!("session.secrets[{i}]"), "is not random (the example's placeholder?); make one with `sessiongate gen-secret`");
                return None;
            }
            if key.is_none() {
                // Never echo the value: it is (meant to be) a secret.
                p.at(&format!("session.secrets[{i}]"), format!("must be base64 of at least {} random bytes; make one with `sessiongate gen-secret`", KeyMaterial::MIN_LEN));
            }
            key
        })
        .collect();
    let cookie_name = raw
        .cookie_name
        .unwrap_or_else(|| default_of("session.cookie_name").to_string());
    if cookie_name.is_empty() || !cookie_name.bytes().all(is_cookie_name_byte) {
        p.at(
            "session.cookie_name",
            format!("\"{cookie_name}\" must be letters, digits and !#$%&'*+-.^_`|~ only"),
        );
    }
    let idle_timeout = positive(p, "session.idle_timeout", raw.idle_timeout);
    let absolute_timeout = positive(p, "session.absolute_timeout", raw.absolute_timeout);
    if idle_timeout > absolute_timeout {
        p.whole(
            "session.idle_timeout",
            format!(
                "session.idle_timeout ({}) must not exceed session.absolute_timeout ({})",
                Human(idle_timeout),
                Human(absolute_timeout)
            ),
        );
    }
    let touch_interval = duration(p, "session.touch_interval", raw.touch_interval);
    if !idle_timeout.is_zero() && touch_interval >= idle_timeout {
        p.whole(
            "session.touch_interval",
            format!(
                "session.touch_interval ({}) must be shorter than session.idle_timeout ({}), or active users would be logged out",
                Human(touch_interval),
                Human(idle_timeout)
            ),
        );
    }
    let on_token_expiry = match raw.on_token_expiry.as_deref().unwrap_or("ignore") {
        "ignore" => OnTokenExpiry::Ignore,
        "reauthenticate" => OnTokenExpiry::Reauthenticate,
        other => {
            p.at(
                "session.on_token_expiry",
                format!("\"{other}\" is not an option: use \"ignore\" or \"reauthenticate\""),
            );
            OnTokenExpiry::Ignore
        }
    };
    let redis_url = raw.redis_url.filter(|u| !u.is_empty());
    const REDIS_SCHEMES: [&str; 6] = [
        "redis",
        "rediss",
        "redis-cluster",
        "rediss-cluster",
        "redis-sentinel",
        "rediss-sentinel",
    ];
    if let Some(url) = &redis_url {
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        if !REDIS_SCHEMES.contains(&scheme) {
            p.at(
                "session.redis_url",
                "is not a Redis URL: use redis://, rediss://, redis-cluster:// or redis-sentinel://",
            );
        } else if let Err(e) = fred::types::config::Config::from_url(url) {
            // Never echo the URL: it may carry a password.
            p.at(
                "session.redis_url",
                format!("is not a Redis URL ({}): use redis://, rediss://, redis-cluster:// or redis-sentinel://", e.details()),
            );
        }
    } else if store == StoreKind::Redis {
        p.at(
            "session.redis_url",
            "is required when session.store = \"redis\"",
        );
    }
    let max_pending_logins = int_in(
        p,
        "session.max_pending_logins",
        raw.max_pending_logins,
        1..=20,
    );
    let max_stale = raw
        .max_stale
        .map(|text| duration(p, "session.max_stale", Some(text)));
    SessionConfig {
        max_stale,
        max_pending_logins,
        inject_warning: raw.inject_warning.unwrap_or(false),
        warning_before: positive(p, "session.warning_before", raw.warning_before),
        preserve_post_max: int_in(
            p,
            "session.preserve_post_max",
            raw.preserve_post_max,
            0..=16 * 1024 * 1024,
        ),
        store,
        secrets,
        cookie_name,
        idle_timeout,
        absolute_timeout,
        touch_interval,
        refresh_before_expiry: duration(
            p,
            "session.refresh_before_expiry",
            raw.refresh_before_expiry,
        ),
        on_token_expiry,
        redis_url: redis_url.map(Secret::new),
        redis_prefix: raw
            .redis_prefix
            .unwrap_or_else(|| default_of("session.redis_prefix").to_string()),
        redis_timeout: positive(p, "session.redis_timeout", raw.redis_timeout),
        websocket_activity: raw.websocket_activity.unwrap_or(false),
    }
}

/// Random keys of 32 bytes have about 30 distinct byte values; a key with fewer than 8 is a
/// placeholder (like the example file's zeros) or typed by hand.
fn looks_made_up(key: &KeyMaterial) -> bool {
    let mut seen = [false; 256];
    key.expose()
        .iter()
        .for_each(|&b| seen[usize::from(b)] = true);
    seen.iter().filter(|&&s| s).count() < 8
}

/// RFC 6265 §4.1.1: a cookie name is an RFC 2616 token.
pub(crate) fn is_cookie_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Headers the gateway manages itself; configuring one as an identity header would let a
/// claim overwrite routing or forwarding facts.
const NOT_IDENTITY_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "set-cookie",
    "authorization",
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
];

fn header_name(p: &mut Problems, path: &str, name: &str) -> Option<http::HeaderName> {
    match http::HeaderName::from_bytes(name.as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            p.at(path, format!("\"{name}\" is not a valid header name"));
            None
        }
    }
}

fn headers(raw: raw::Headers, p: &mut Problems) -> HeadersConfig {
    let claims_raw = raw.claims.unwrap_or_else(|| {
        [
            ("X-Forwarded-User", "sub"),
            ("X-Forwarded-Email", "email"),
            ("X-Forwarded-Preferred-Username", "preferred_username"),
            ("X-Forwarded-Groups", "groups"),
        ]
        .into_iter()
        .map(|(h, c)| (h.to_string(), c.to_string()))
        .collect()
    });
    let mut claims: Vec<(http::HeaderName, String)> = Vec::new();
    for (name, claim) in claims_raw {
        let path = format!("headers.claims.{name}");
        let Some(header) = header_name(p, &path, &name) else {
            continue;
        };
        if NOT_IDENTITY_HEADERS.contains(&header.as_str()) {
            p.at(&path, "is managed by the gateway and cannot carry a claim");
        } else if claims.iter().any(|(h, _)| h == header) {
            p.at(&path, "is configured twice (header names ignore case)");
        }
        if claim.trim().is_empty() {
            p.at(&path, "needs a claim name, like \"email\"");
        }
        claims.push((header, claim));
    }
    let strip = raw
        .strip
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, name)| header_name(p, &format!("headers.strip[{i}]"), name))
        .collect();
    let assertion = raw
        .assertion
        .filter(|name| !name.is_empty())
        .and_then(|name| header_name(p, "headers.assertion", &name));
    if let Some(name) = &assertion {
        if NOT_IDENTITY_HEADERS.contains(&name.as_str()) || claims.iter().any(|(h, _)| h == name) {
            p.at(
                "headers.assertion",
                "must be a header of its own, not a managed or claim header",
            );
        }
    }
    HeadersConfig {
        claims,
        strip,
        assertion,
        assertion_audience: raw.assertion_audience.filter(|a| !a.is_empty()),
        assertion_lifetime: positive(p, "headers.assertion_lifetime", raw.assertion_lifetime),
    }
}

fn paths(p: &mut Problems, path: &str, values: Option<Vec<String>>) -> Vec<String> {
    let values = values.unwrap_or_default();
    for (i, v) in values.iter().enumerate() {
        if !v.starts_with('/') {
            p.at(
                &format!("{path}[{i}]"),
                format!("\"{v}\" must be a path starting with `/`"),
            );
        }
    }
    values
}

fn access(raw: raw::Access, p: &mut Problems) -> AccessConfig {
    let bearer_audiences = raw.bearer.audiences.unwrap_or_default();
    for (i, audience) in bearer_audiences.iter().enumerate() {
        if audience.trim().is_empty() {
            p.at(
                &format!("access.bearer.audiences[{i}]"),
                "must not be empty",
            );
        }
    }
    let requirements = requirements(
        p,
        "access",
        raw.allowed_email_domains,
        raw.allowed_emails,
        raw.allowed_groups,
        raw.required_claims,
    );
    let rules: Vec<AccessRule> = raw
        .rule
        .into_iter()
        .enumerate()
        .filter_map(|(index, rule)| access_rule(p, index, rule))
        .collect();
    for (later, rule) in rules.iter().enumerate() {
        if let Some(earlier) = rules[..later].iter().find(|e| shadows(e, rule)) {
            p.at(
                &format!("access.rule[{later}]"),
                format!(
                    "can never match: {} before it covers every request it would",
                    earlier.name
                ),
            );
        }
    }
    let cache = duration(
        p,
        "access.bearer.introspection_cache",
        raw.bearer.introspection_cache,
    );
    let bearer_introspection = raw.bearer.introspection.unwrap_or(false).then_some(cache);
    if bearer_introspection.is_some() && bearer_audiences.is_empty() {
        p.at(
            "access.bearer.introspection",
            "needs access.bearer.audiences: the audiences an introspected token may be for",
        );
    }
    AccessConfig {
        public_paths: paths(p, "access.public_paths", raw.public_paths),
        api_paths: paths(p, "access.api_paths", raw.api_paths),
        bearer_audiences,
        bearer_introspection,
        requirements,
        groups_claim: raw
            .groups_claim
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "groups".to_string()),
        rules,
    }
}

fn requirements(
    p: &mut Problems,
    at: &str,
    domains: Option<Vec<String>>,
    emails: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    claims: Option<BTreeMap<String, String>>,
) -> Requirements {
    let required_claims: Vec<(String, String)> = claims.unwrap_or_default().into_iter().collect();
    for (claim, _) in &required_claims {
        if claim.is_empty() || claim.split('.').any(str::is_empty) {
            p.at(
                &format!("{at}.required_claims"),
                format!("\"{claim}\" is not a claim name or dotted path"),
            );
        }
    }
    Requirements {
        allowed_email_domains: domains
            .unwrap_or_default()
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .collect(),
        allowed_emails: emails
            .unwrap_or_default()
            .iter()
            .map(|e| e.trim().to_ascii_lowercase())
            .collect(),
        allowed_groups: groups.unwrap_or_default(),
        required_claims,
    }
}

fn access_rule(p: &mut Problems, index: usize, raw: raw::Rule) -> Option<AccessRule> {
    let at = format!("access.rule[{index}]");
    let name = raw.name.clone().unwrap_or_else(|| at.clone());
    let path = match (raw.path, raw.path_regex) {
        (Some(path), None) if path.starts_with('/') => PathMatch::Prefix(path),
        (Some(path), None) => {
            p.at(
                &format!("{at}.path"),
                format!("\"{path}\" must be a path starting with `/`"),
            );
            return None;
        }
        (None, Some(pattern)) => match regex_lite::Regex::new(&pattern) {
            Ok(regex) => PathMatch::Regex(regex),
            Err(e) => {
                p.at(
                    &format!("{at}.path_regex"),
                    format!("is not a regular expression: {e}"),
                );
                return None;
            }
        },
        (Some(_), Some(_)) => {
            p.at(&at, "give `path` or `path_regex`, not both");
            return None;
        }
        (None, None) => {
            p.at(&at, "needs a `path` or a `path_regex`");
            return None;
        }
    };
    let mut methods = Vec::new();
    for (i, method) in raw.methods.unwrap_or_default().iter().enumerate() {
        match http::Method::from_bytes(method.trim().to_ascii_uppercase().as_bytes()) {
            Ok(method) => methods.push(method),
            Err(_) => p.at(
                &format!("{at}.methods[{i}]"),
                format!("\"{method}\" is not an HTTP method"),
            ),
        }
    }
    let requirements = requirements(
        p,
        &at,
        raw.allowed_email_domains,
        raw.allowed_emails,
        raw.allowed_groups,
        raw.required_claims,
    );
    let allow = match raw.allow.as_deref() {
        Some("public") | Some("authenticated") if !requirements.is_empty() => {
            p.at(
                &format!("{at}.allow"),
                "takes no requirements: leave `allow` out to require them",
            );
            return None;
        }
        Some("public") => Allow::Public,
        Some("authenticated") => Allow::Authenticated,
        None if requirements.is_empty() => {
            p.at(
                &at,
                "says nothing: set `allow = \"public\"` or `\"authenticated\"`, or requirements",
            );
            return None;
        }
        None => Allow::Only(requirements),
        Some(other) => {
            p.at(
                &format!("{at}.allow"),
                format!("\"{other}\" is not an option: use \"public\" or \"authenticated\", or leave it out with requirements"),
            );
            return None;
        }
    };
    Some(AccessRule {
        name,
        path,
        methods,
        allow,
    })
}

/// Whether `earlier` matches every request `later` would (so `later` never decides).
fn shadows(earlier: &AccessRule, later: &AccessRule) -> bool {
    let methods = earlier.methods.is_empty()
        || (!later.methods.is_empty() && later.methods.iter().all(|m| earlier.methods.contains(m)));
    methods && path_covers(&earlier.path, &later.path)
}

/// Whether every path `inner` matches is matched by `outer`; `false` when unknown (regexes).
fn path_covers(outer: &PathMatch, inner: &PathMatch) -> bool {
    match (outer, inner) {
        (PathMatch::Prefix(outer), PathMatch::Prefix(inner)) => {
            if outer.ends_with('/') {
                inner.starts_with(outer.as_str())
            } else {
                inner
                    .strip_prefix(outer.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
        (PathMatch::Regex(outer), PathMatch::Regex(inner)) => outer.as_str() == inner.as_str(),
        _ => false,
    }
}

/// Rules an earlier rule takes some (not all) requests from: legal, but worth a look.
pub(crate) fn rule_overlaps(rules: &[AccessRule]) -> Vec<String> {
    let mut overlaps = Vec::new();
    for (later, rule) in rules.iter().enumerate() {
        for earlier in &rules[..later] {
            let same_paths = path_covers(&earlier.path, &rule.path);
            let some_methods = earlier.methods.is_empty()
                || rule.methods.is_empty()
                || rule.methods.iter().any(|m| earlier.methods.contains(m));
            if same_paths && some_methods && !shadows(earlier, rule) {
                overlaps.push(format!(
                    "access.rule[{later}] ({}) gets only the methods {} leaves: {} decides the others",
                    rule.name, earlier.name, earlier.name
                ));
            }
        }
    }
    overlaps
}

fn log(raw: raw::Log, p: &mut Problems) -> LogConfig {
    let format = match raw.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            p.at(
                "log.format",
                format!("\"{other}\" is not a format: use \"text\" or \"json\""),
            );
            LogFormat::Text
        }
    };
    let level = raw.level.unwrap_or_else(|| "info".to_string());
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        p.at(
            "log.level",
            format!("\"{level}\" is not a log filter ({e}); try \"info\" or \"sessiongate=debug\""),
        );
    }
    LogConfig { format, level }
}
