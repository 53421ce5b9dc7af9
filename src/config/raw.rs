//! A plain serde mirror of the file, exactly as the user wrote it (after environment
//! overrides and `_file` secrets are merged in, so the `_file` keys are gone). Nothing here is validated: see `validate`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    #[serde(default)]
    pub(crate) server: Server,
    #[serde(default)]
    pub(crate) upstream: Upstream,
    #[serde(default)]
    pub(crate) oidc: Oidc,
    #[serde(default)]
    pub(crate) session: Session,
    #[serde(default)]
    pub(crate) headers: Headers,
    #[serde(default)]
    pub(crate) access: Access,
    #[serde(default)]
    pub(crate) logout: Logout,
    #[serde(default)]
    pub(crate) log: Log,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Logout {
    pub(crate) rp_initiated: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Server {
    pub(crate) listen: Option<String>,
    pub(crate) public_url: Option<String>,
    pub(crate) auth_prefix: Option<String>,
    pub(crate) admin_listen: Option<String>,
    pub(crate) admin_token: Option<String>,
    pub(crate) shutdown_grace: Option<String>,
    pub(crate) trusted_proxies: Option<Vec<String>>,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) header_read_timeout: Option<String>,
    pub(crate) max_header_bytes: Option<i64>,
    pub(crate) max_headers: Option<i64>,
    pub(crate) tls_cert: Option<String>,
    pub(crate) tls_key: Option<String>,
    pub(crate) tls_watch_interval: Option<String>,
    pub(crate) watch_config: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Upstream {
    pub(crate) url: Option<String>,
    pub(crate) preserve_host: Option<bool>,
    pub(crate) connect_timeout: Option<String>,
    pub(crate) response_timeout: Option<String>,
    pub(crate) pool_idle_timeout: Option<String>,
    pub(crate) ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Oidc {
    pub(crate) issuer: Option<String>,
    pub(crate) discovery_url: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<String>,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) extra_auth_params: Option<BTreeMap<String, String>>,
    pub(crate) id_token_signing_algs: Option<Vec<String>>,
    pub(crate) token_endpoint_auth: Option<String>,
    pub(crate) clock_skew: Option<String>,
    pub(crate) jwks_min_refresh: Option<String>,
    pub(crate) metadata_refresh: Option<String>,
    pub(crate) http_timeout: Option<String>,
    pub(crate) refresh_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Session {
    pub(crate) store: Option<String>,
    pub(crate) secrets: Option<Vec<String>>,
    pub(crate) cookie_name: Option<String>,
    pub(crate) idle_timeout: Option<String>,
    pub(crate) absolute_timeout: Option<String>,
    pub(crate) touch_interval: Option<String>,
    pub(crate) refresh_before_expiry: Option<String>,
    pub(crate) on_token_expiry: Option<String>,
    pub(crate) max_stale: Option<String>,
    pub(crate) max_pending_logins: Option<i64>,
    pub(crate) preserve_post_max: Option<i64>,
    pub(crate) inject_warning: Option<bool>,
    pub(crate) warning_before: Option<String>,
    pub(crate) redis_url: Option<String>,
    pub(crate) redis_prefix: Option<String>,
    pub(crate) redis_timeout: Option<String>,
    pub(crate) websocket_activity: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Headers {
    pub(crate) claims: Option<BTreeMap<String, String>>,
    pub(crate) strip: Option<Vec<String>>,
    pub(crate) assertion: Option<String>,
    pub(crate) assertion_audience: Option<String>,
    pub(crate) assertion_lifetime: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Access {
    pub(crate) public_paths: Option<Vec<String>>,
    pub(crate) api_paths: Option<Vec<String>>,
    pub(crate) allowed_email_domains: Option<Vec<String>>,
    pub(crate) allowed_emails: Option<Vec<String>>,
    pub(crate) allowed_groups: Option<Vec<String>>,
    pub(crate) groups_claim: Option<String>,
    pub(crate) required_claims: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(crate) bearer: Bearer,
    #[serde(default)]
    pub(crate) rule: Vec<Rule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rule {
    pub(crate) name: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) path_regex: Option<String>,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) allow: Option<String>,
    pub(crate) allowed_email_domains: Option<Vec<String>>,
    pub(crate) allowed_emails: Option<Vec<String>>,
    pub(crate) allowed_groups: Option<Vec<String>>,
    pub(crate) required_claims: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bearer {
    pub(crate) audiences: Option<Vec<String>>,
    pub(crate) introspection: Option<bool>,
    pub(crate) introspection_cache: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Log {
    pub(crate) format: Option<String>,
    pub(crate) level: Option<String>,
}
