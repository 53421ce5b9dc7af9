//! The list of every configuration key: its path, its kind, its default and what it is for.
//!
//! This table is the single description of the file format. Loading checks the user's file
//! against it (unknown keys with a did-you-mean, wrong kinds), environment overrides are
//! typed by it, and tests use it to prove that the example file and the README document
//! every key. It knows nothing about what the keys mean once loaded.

use std::collections::BTreeMap;

/// The TOML shape a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Bool,
    Int,
    List,
    /// A table of string values, e.g. `[headers.claims]`.
    Map,
    /// A list of tables, e.g. `[[access.rule]]`; its keys are listed below its path.
    Tables,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Bool => "true or false",
            Kind::Int => "a whole number",
            Kind::List => "a list of strings",
            Kind::Map => "a table of strings",
            Kind::Tables => "a list of tables, like `[[access.rule]]`",
        }
    }
}

/// One configuration key.
#[derive(Debug)]
pub(crate) struct Key {
    /// `section.key`, as written in the file.
    pub(crate) path: &'static str,
    pub(crate) kind: Kind,
    /// The default as shown to users; empty when the key is required or optional with no default.
    pub(crate) default: &'static str,
    /// One line for the reference table.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) doc: &'static str,
}

const fn key(path: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> Key {
    Key {
        path,
        kind,
        default,
        doc,
    }
}

use Kind::*;

/// Every key the file may contain. Secrets have a `<key>_file` sibling listed right after them.
pub(crate) const KEYS: &[Key] = &[
    key(
        "server.listen",
        Str,
        "0.0.0.0:4180",
        "Address browsers and API clients connect to.",
    ),
    key(
        "server.public_url",
        Str,
        "",
        "External origin of the gateway (required); the OIDC redirect URI is derived from it.",
    ),
    key(
        "server.auth_prefix",
        Str,
        "/oauth2",
        "Path prefix of the gateway's own endpoints; never proxied.",
    ),
    key(
        "server.admin_listen",
        Str,
        "",
        "Address of /healthz, /readyz and /metrics; omit to disable.",
    ),
    key(
        "server.admin_token",
        Str,
        "",
        "Bearer token the admin listener's POST /sessions/revoke requires; unset: not required (keep the listener private).",
    ),
    key(
        "server.admin_token_file",
        Str,
        "",
        "File holding the admin token.",
    ),
    key(
        "server.shutdown_grace",
        Str,
        "10s",
        "How long in-flight requests and WebSockets may finish after SIGTERM.",
    ),
    key(
        "server.trusted_proxies",
        List,
        "[]",
        "IPs or CIDRs whose X-Forwarded-For/-Proto/-Host are believed.",
    ),
    key(
        "server.allowed_origins",
        List,
        "[]",
        "Origins besides `public_url`'s whose pages may open WebSockets through the gateway; any other `Origin` gets 403.",
    ),
    key(
        "server.header_read_timeout",
        Str,
        "10s",
        "A client must send its request headers within this time; an idle kept-alive connection is closed after it too (behind a load balancer, set it above the balancer's idle timeout, e.g. 65s for AWS ALB's 60s).",
    ),
    key(
        "server.max_header_bytes",
        Int,
        "16384",
        "Largest request head (request line and headers) accepted; larger gets 431.",
    ),
    key(
        "server.max_headers",
        Int,
        "100",
        "Most request headers accepted; more gets 431.",
    ),
    key(
        "server.watch_config",
        Bool,
        "false",
        "Reload when the configuration file changes, as on SIGHUP: validated first, a bad one is refused and the current one stays.",
    ),
    key(
        "server.tls_cert",
        Str,
        "",
        "PEM certificate chain for TLS on `listen` (with `tls_key`); HTTP/2 by ALPN. Unset: plain HTTP (TLS ends at a load balancer).",
    ),
    key(
        "server.tls_key",
        Str,
        "",
        "PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).",
    ),
    key(
        "server.tls_watch_interval",
        Str,
        "10s",
        "How often the certificate files are checked; a changed pair is loaded without a restart.",
    ),
    key(
        "upstream.url",
        Str,
        "",
        "The application (required): http://host:port, optionally with a base path.",
    ),
    key(
        "upstream.preserve_host",
        Bool,
        "true",
        "Forward the client's Host; false sends the upstream's own host.",
    ),
    key(
        "upstream.connect_timeout",
        Str,
        "5s",
        "Connecting to the upstream longer than this answers 504.",
    ),
    key(
        "upstream.response_timeout",
        Str,
        "60s",
        "Waiting longer than this for the upstream's response headers answers 504.",
    ),
    key(
        "upstream.pool_idle_timeout",
        Str,
        "90s",
        "Idle upstream connections are closed after this.",
    ),
    key(
        "upstream.ca_file",
        Str,
        "",
        "PEM CA certificates an https upstream may chain to, besides the public roots.",
    ),
    key(
        "oidc.issuer",
        Str,
        "",
        "Issuer URL of the identity provider (required); https, or http for loopback hosts.",
    ),
    key(
        "oidc.discovery_url",
        Str,
        "",
        "Where the discovery document is, when not at the issuer's well-known URL (Azure AD B2C: it names the policy).",
    ),
    key(
        "oidc.client_id",
        Str,
        "",
        "Client id registered at the identity provider (required).",
    ),
    key(
        "oidc.client_secret",
        Str,
        "",
        "Client secret; omit for a public client.",
    ),
    key(
        "oidc.client_secret_file",
        Str,
        "",
        "File holding the client secret (Docker/Kubernetes secrets).",
    ),
    key(
        "oidc.scopes",
        List,
        "[\"openid\", \"email\", \"profile\"]",
        "Scopes requested at login; `openid` is always added.",
    ),
    key(
        "oidc.extra_auth_params",
        Map,
        "{}",
        "Extra authorization-request parameters, e.g. `{ p = \"B2C_1_signin\" }`.",
    ),
    key(
        "oidc.id_token_signing_algs",
        List,
        "[]",
        "Accepted ID token algorithms; empty = what discovery advertises and sessiongate supports. HS256 only when listed.",
    ),
    key(
        "oidc.token_endpoint_auth",
        Str,
        "client_secret_basic",
        "How the client authenticates at the token endpoint: `client_secret_basic` or `client_secret_post`.",
    ),
    key(
        "oidc.clock_skew",
        Str,
        "60s",
        "Leeway for the `exp`, `iat` and `nbf` of tokens.",
    ),
    key(
        "oidc.jwks_min_refresh",
        Str,
        "30s",
        "An unknown key id refetches the JWKS at most this often.",
    ),
    key(
        "oidc.metadata_refresh",
        Str,
        "1h",
        "Discovery and JWKS are refetched this often.",
    ),
    key(
        "oidc.refresh_timeout",
        Str,
        "10s",
        "Requests wait at most this long for a token refresh, then go on with the current identity.",
    ),
    key(
        "oidc.http_timeout",
        Str,
        "10s",
        "Time limit of each request to the identity provider.",
    ),
    key(
        "session.store",
        Str,
        "cookie",
        "`cookie` (stateless, default) or `redis`.",
    ),
    key(
        "session.secrets",
        List,
        "",
        "Session keys, base64 of 32+ random bytes (required); the first encrypts, all decrypt. `sessiongate gen-secret` makes one.",
    ),
    key(
        "session.secrets_file",
        Str,
        "",
        "File holding the session keys, one per line.",
    ),
    key(
        "session.cookie_name",
        Str,
        "sessiongate",
        "Name of the session cookie; over https it gets the `__Host-` prefix, and a long session continues in `<name>.1`, `<name>.2`...",
    ),
    key(
        "session.idle_timeout",
        Str,
        "1h",
        "A session unused this long ends.",
    ),
    key(
        "session.absolute_timeout",
        Str,
        "12h",
        "No session lives longer than this, however active.",
    ),
    key(
        "session.touch_interval",
        Str,
        "60s",
        "The session is rewritten at most this often while it slides.",
    ),
    key(
        "session.refresh_before_expiry",
        Str,
        "60s",
        "Tokens are refreshed this long before they expire.",
    ),
    key(
        "session.max_stale",
        Str,
        "",
        "How long past token expiry a session may go on while refreshes fail (IdP down); unset: until its own deadlines.",
    ),
    key(
        "session.on_token_expiry",
        Str,
        "ignore",
        "Without a refresh token: `ignore` or `reauthenticate`.",
    ),
    key(
        "session.max_pending_logins",
        Int,
        "5",
        "Most login attempts (tabs) one browser may have under way; older ones are dropped.",
    ),
    key(
        "session.preserve_post_max",
        Int,
        "262144",
        "A form post (urlencoded or multipart) up to this many bytes that arrives without a session is kept, and re-sent once after the login; 0: off.",
    ),
    key(
        "session.inject_warning",
        Bool,
        "false",
        "Insert `<script src=\"/oauth2/session.js\">` before `</body>` of the application's (uncompressed) HTML: a notice before the idle deadline.",
    ),
    key(
        "session.warning_before",
        Str,
        "2m",
        "How long before the idle deadline the notice of `/oauth2/session.js` shows.",
    ),
    key(
        "session.redis_url",
        Str,
        "",
        "Redis URL for `store = \"redis\"`: `redis://`, `rediss://` (TLS), `redis-cluster://host:port?node=host:port`, `redis-sentinel://host:port?sentinelServiceName=name`.",
    ),
    key(
        "session.redis_url_file",
        Str,
        "",
        "File holding the Redis URL (it may carry a password).",
    ),
    key(
        "session.redis_prefix",
        Str,
        "sessiongate:",
        "Prefix of every Redis key, so deployments can share one Redis.",
    ),
    key(
        "session.redis_timeout",
        Str,
        "2s",
        "Time limit of each Redis command; past it protected paths answer 503.",
    ),
    key(
        "session.websocket_activity",
        Bool,
        "false",
        "Frames from the client on a WebSocket count as activity (slide the session); off: an open dashboard does not keep its user signed in.",
    ),
    key(
        "headers.claims",
        Map,
        "sub, email, preferred_username, groups",
        "Identity headers to set: header name = claim name; arrays are joined with `,`.",
    ),
    key(
        "headers.strip",
        List,
        "[]",
        "More header names to remove from every incoming request.",
    ),
    key(
        "headers.assertion",
        Str,
        "",
        "Also send a short-lived JWT signed by the gateway (EdDSA, keys at `/oauth2/jwks`) in this header, e.g. `X-Sessiongate-Assertion`; empty: not sent.",
    ),
    key(
        "headers.assertion_audience",
        Str,
        "",
        "The assertion's `aud`; default: the upstream's origin.",
    ),
    key(
        "headers.assertion_lifetime",
        Str,
        "60s",
        "How long an assertion is valid after it is made.",
    ),
    key(
        "access.public_paths",
        List,
        "[]",
        "Paths served without a session (headers are still stripped).",
    ),
    key(
        "access.bearer.audiences",
        List,
        "[]",
        "Accept `Authorization: Bearer` JWTs from the provider whose `aud` names one of these; empty: bearer tokens are not accepted.",
    ),
    key(
        "access.bearer.introspection",
        Bool,
        "false",
        "Check opaque (non-JWT) bearer tokens at the provider's introspection endpoint (RFC 7662).",
    ),
    key(
        "access.bearer.introspection_cache",
        Str,
        "60s",
        "How long an introspection answer is reused (never past the token's `exp`).",
    ),
    key(
        "access.api_paths",
        List,
        "[]",
        "Paths that answer 401 instead of a login redirect.",
    ),
    key(
        "access.allowed_email_domains",
        List,
        "[]",
        "Only users whose `email` is in one of these domains get in (403 otherwise); empty: any.",
    ),
    key(
        "access.allowed_emails",
        List,
        "[]",
        "Only these users (by `email`) get in, besides allowed domains; empty: any.",
    ),
    key(
        "access.allowed_groups",
        List,
        "[]",
        "Only members of one of these groups get in; empty: any.",
    ),
    key(
        "access.groups_claim",
        Str,
        "groups",
        "The claim holding the groups; a dotted path reads nested claims (`realm_access.roles`).",
    ),
    key(
        "access.required_claims",
        Map,
        "",
        "Claims (dotted paths) that must have these values, or contain them when lists, e.g. `{ tid = \"...\" }`.",
    ),
    key(
        "access.rule",
        Tables,
        "",
        "Per-path rules, `[[access.rule]]`, tried in order: the first whose path (and method) matches decides.",
    ),
    key(
        "access.rule.name",
        Str,
        "",
        "How logs name the rule; default `access.rule[<index>]`.",
    ),
    key(
        "access.rule.path",
        Str,
        "",
        "Path the rule covers: ending in `/`, a prefix; otherwise itself and below. Or give `path_regex`.",
    ),
    key(
        "access.rule.path_regex",
        Str,
        "",
        "A regular expression the (normalized) path must match, instead of `path`; anchor it with `^`.",
    ),
    key(
        "access.rule.methods",
        List,
        "[]",
        "Only these methods; empty: all.",
    ),
    key(
        "access.rule.allow",
        Str,
        "",
        "`public` (no session), `authenticated` (any user), or unset with requirements below.",
    ),
    key(
        "access.rule.allowed_email_domains",
        List,
        "[]",
        "As `access.allowed_email_domains`, for this rule (instead of the global requirements).",
    ),
    key(
        "access.rule.allowed_emails",
        List,
        "[]",
        "As `access.allowed_emails`, for this rule.",
    ),
    key(
        "access.rule.allowed_groups",
        List,
        "[]",
        "As `access.allowed_groups`, for this rule.",
    ),
    key(
        "access.rule.required_claims",
        Map,
        "",
        "As `access.required_claims`, for this rule.",
    ),
    key(
        "logout.rp_initiated",
        Bool,
        "false",
        "Sign-out also ends the provider's session (RP-Initiated Logout), when discovery has an end_session_endpoint.",
    ),
    key("log.format", Str, "text", "`text` or `json`."),
    key(
        "log.level",
        Str,
        "info",
        "Log filter, e.g. `info` or `sessiongate=debug`; RUST_LOG wins when set.",
    ),
];

/// The keys whose values are secrets, with the sibling key that names a file holding them.
pub(crate) const SECRET_FILES: &[(&str, &str)] = &[
    ("server.admin_token", "server.admin_token_file"),
    ("oidc.client_secret", "oidc.client_secret_file"),
    ("session.secrets", "session.secrets_file"),
    ("session.redis_url", "session.redis_url_file"),
];

pub(crate) fn lookup(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

fn sections() -> impl Iterator<Item = &'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    for k in KEYS {
        let section = k.path.split_once('.').map_or(k.path, |(s, _)| s);
        if !seen.contains(&section) {
            seen.push(section);
        }
    }
    seen.into_iter()
}

/// A problem found while checking the file's shape.
pub(crate) type ShapeProblem = (String, String);

/// Checks every key of the parsed file against [`KEYS`], returning every unknown key and
/// every value of the wrong kind.
pub(crate) fn check_shape(table: &toml::Table) -> Vec<ShapeProblem> {
    let mut problems = Vec::new();
    for (section, value) in table {
        let Some(inner) = value.as_table() else {
            if sections().any(|s| s == section) {
                problems.push((
                    section.clone(),
                    "must be a table, like `[section]`".to_string(),
                ));
            } else {
                problems.push((section.clone(), unknown(section, sections())));
            }
            continue;
        };
        if !sections().any(|s| s == section) {
            problems.push((section.clone(), unknown(section, sections())));
            continue;
        }
        check_table(section, inner, &mut problems);
    }
    problems
}

/// Whether some key lives below `prefix` (a sub-table like `[access.bearer]`).
fn is_table_path(prefix: &str) -> bool {
    KEYS.iter().any(|k| {
        k.path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Checks the keys of the table at `prefix`, descending into sub-tables the schema has.
fn check_table(prefix: &str, table: &toml::Table, problems: &mut Vec<ShapeProblem>) {
    check_table_as(prefix, prefix, table, problems);
}

/// As [`check_table`], naming problems under `shown` (`access.rule[2]`) while looking keys up
/// under `prefix` (`access.rule`).
fn check_table_as(
    prefix: &str,
    shown: &str,
    table: &toml::Table,
    problems: &mut Vec<ShapeProblem>,
) {
    for (name, value) in table {
        let path = format!("{prefix}.{name}");
        let shown_path = format!("{shown}.{name}");
        match (lookup(&path), value.as_table()) {
            (Some(key), _) if key.kind == Tables => match value.as_array() {
                Some(items) => {
                    for (index, item) in items.iter().enumerate() {
                        let shown_item = format!("{shown_path}[{index}]");
                        match item.as_table() {
                            Some(inner) => check_table_as(&path, &shown_item, inner, problems),
                            None => problems.push((
                                shown_item,
                                format!("must be a table, found {}", item.type_str()),
                            )),
                        }
                    }
                }
                None => problems.push((
                    shown_path,
                    format!("must be {}, found {}", Tables.describe(), value.type_str()),
                )),
            },
            (None, Some(inner)) if is_table_path(&path) => {
                check_table_as(&path, &shown_path, inner, problems)
            }
            (None, _) => {
                let siblings = KEYS.iter().filter_map(|k| {
                    let rest = k.path.strip_prefix(prefix)?.strip_prefix('.')?;
                    Some(rest.split('.').next().unwrap_or(rest))
                });
                problems.push((shown_path, unknown(name, siblings)));
            }
            (Some(key), _) => {
                if let Some(message) = kind_mismatch(key.kind, value) {
                    problems.push((shown_path, message));
                }
            }
        }
    }
}

fn kind_mismatch(kind: Kind, value: &toml::Value) -> Option<String> {
    let fits = match kind {
        Str => value.is_str(),
        Bool => value.is_bool(),
        Int => value.is_integer(),
        List => value
            .as_array()
            .is_some_and(|a| a.iter().all(toml::Value::is_str)),
        Map => value
            .as_table()
            .is_some_and(|t| t.values().all(toml::Value::is_str)),
        Tables => value
            .as_array()
            .is_some_and(|a| a.iter().all(toml::Value::is_table)),
    };
    (!fits).then(|| format!("must be {}, found {}", kind.describe(), value.type_str()))
}

fn unknown<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    match did_you_mean(name, candidates) {
        Some(best) => format!("unknown key (did you mean `{best}`?)"),
        None => "unknown key".to_string(),
    }
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The environment prefix of overrides: `SESSIONGATE_<SECTION>_<KEY>`.
pub(crate) const ENV_PREFIX: &str = "SESSIONGATE_";

/// Variables with the prefix that are not configuration keys.
const ENV_RESERVED: &[&str] = &["SESSIONGATE_CONFIG"];

/// Writes environment overrides into the parsed file, typed by the key's kind.
/// Lists are comma-separated. Returns a problem for every variable that names no key or
/// holds a value of the wrong kind.
pub(crate) fn apply_env(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
) -> Vec<ShapeProblem> {
    let mut problems = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ENV_RESERVED.contains(&var.as_str()) {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        let Some(key) = KEYS.iter().find(|k| k.path.replace('.', "_") == rest) else {
            let names = KEYS.iter().map(|k| k.path);
            let wanted = rest.replacen('_', ".", 1);
            let hint = did_you_mean(&wanted, names)
                .map(|p| format!(" (did you mean {}?)", env_name(p)))
                .unwrap_or_default();
            problems.push((var.clone(), format!("names no configuration key{hint}")));
            continue;
        };
        if key.kind == Map || key.kind == Tables || in_list_of_tables(key) {
            problems.push((
                var.clone(),
                format!("{} is a table and can only be set in the file", key.path),
            ));
            continue;
        }
        let value = match key.kind {
            Str | Map | Tables => toml::Value::String(raw.clone()),
            Bool => match raw.trim() {
                "true" => toml::Value::Boolean(true),
                "false" => toml::Value::Boolean(false),
                _ => {
                    problems.push((var.clone(), "must be true or false".to_string()));
                    continue;
                }
            },
            Int => match raw.trim().parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => {
                    problems.push((var.clone(), "must be a whole number".to_string()));
                    continue;
                }
            },
            List => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
        };
        let parts: Vec<&str> = key.path.split('.').collect();
        insert_path(table, &parts, value);
    }
    problems
}

/// Whether `key` belongs to the tables of a list (`access.rule.path`).
fn in_list_of_tables(key: &Key) -> bool {
    KEYS.iter().any(|list| {
        list.kind == Tables
            && key
                .path
                .strip_prefix(list.path)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Puts `value` at `parts` (`["access", "bearer", "audiences"]`), making tables on the way.
fn insert_path(table: &mut toml::Table, parts: &[&str], value: toml::Value) {
    match parts {
        [] => {}
        [last] => {
            table.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry((*first).to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(inner) = entry.as_table_mut() {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// The environment variable that overrides a key.
pub(crate) fn env_name(path: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        path.replace('.', "_").to_ascii_uppercase()
    )
}

/// The README's configuration reference, generated so it cannot drift from [`KEYS`].
#[cfg(test)]
pub(crate) fn reference_table() -> String {
    let mut table = String::from("| key | default | env | meaning |\n|---|---|---|---|\n");
    for k in KEYS {
        let default = if k.default.is_empty() {
            String::new()
        } else {
            format!("`{}`", k.default)
        };
        let env = if k.kind == Map || k.kind == Tables || in_list_of_tables(k) {
            String::new()
        } else {
            format!("`{}`", env_name(k.path))
        };
        table.push_str(&format!(
            "| `{}` | {default} | {env} | {} |\n",
            k.path,
            k.doc.replace('|', "\\|")
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> toml::Table {
        text.parse().expect("test TOML parses")
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let problems = check_shape(&parse("[session]\nidle_timout = \"1h\"\n[sesion]\n"));
        assert!(problems.contains(&(
            "session.idle_timout".to_string(),
            "unknown key (did you mean `idle_timeout`?)".to_string()
        )));
        assert!(problems.contains(&(
            "sesion".to_string(),
            "unknown key (did you mean `session`?)".to_string()
        )));
    }

    #[test]
    fn wrong_kinds_are_named() {
        let problems = check_shape(&parse(
            "[upstream]\npreserve_host = \"yes\"\n[oidc]\nscopes = \"openid\"\n",
        ));
        assert_eq!(
            problems,
            vec![
                (
                    "oidc.scopes".to_string(),
                    "must be a list of strings, found string".to_string()
                ),
                (
                    "upstream.preserve_host".to_string(),
                    "must be true or false, found string".to_string()
                ),
            ]
        );
    }

    #[test]
    fn env_overrides_are_typed_by_kind() {
        let mut table = toml::Table::new();
        let env: BTreeMap<String, String> = [
            ("SESSIONGATE_SERVER_LISTEN", "127.0.0.1:1"),
            ("SESSIONGATE_UPSTREAM_PRESERVE_HOST", "false"),
            ("SESSIONGATE_OIDC_SCOPES", "openid, email"),
            ("SESSIONGATE_OIDC_CLIENT_SECRET_FILE", "/run/secrets/x"),
            ("SESSIONGATE_CONFIG", "ignored.toml"),
            ("OTHER", "ignored"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert!(apply_env(&mut table, &env).is_empty());
        assert_eq!(table["server"]["listen"].as_str(), Some("127.0.0.1:1"));
        assert_eq!(table["upstream"]["preserve_host"].as_bool(), Some(false));
        assert_eq!(table["oidc"]["scopes"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            table["oidc"]["client_secret_file"].as_str(),
            Some("/run/secrets/x")
        );
    }

    #[test]
    fn unknown_env_variables_are_reported() {
        let env = BTreeMap::from([("SESSIONGATE_SERVER_LISTN".to_string(), "x".to_string())]);
        let problems = apply_env(&mut toml::Table::new(), &env);
        assert_eq!(
            problems,
            vec![(
                "SESSIONGATE_SERVER_LISTN".to_string(),
                "names no configuration key (did you mean SESSIONGATE_SERVER_LISTEN?)".to_string()
            )]
        );
    }

    #[test]
    fn sub_tables_are_checked_and_set_from_the_environment() {
        let problems = check_shape(&parse("[access.bearer]\naudience = [\"x\"]\n"));
        assert_eq!(
            problems,
            vec![(
                "access.bearer.audience".to_string(),
                "unknown key (did you mean `audiences`?)".to_string()
            )]
        );
        let mut table = toml::Table::new();
        let env = BTreeMap::from([(
            "SESSIONGATE_ACCESS_BEARER_AUDIENCES".to_string(),
            "api://a, api://b".to_string(),
        )]);
        assert!(apply_env(&mut table, &env).is_empty());
        assert_eq!(
            table["access"]["bearer"]["audiences"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert!(check_shape(&table).is_empty());
    }

    #[test]
    fn every_secret_has_a_file_sibling_in_the_schema() {
        for (secret, file) in SECRET_FILES {
            assert!(lookup(secret).is_some(), "{secret}");
            assert_eq!(lookup(file).map(|k| k.kind), Some(Str), "{file}");
        }
    }
}
