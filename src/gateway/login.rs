//! The login flow's HTTP side: starting a login (a login-state cookie and a redirect to the
//! provider) and finishing it at the callback (state, code exchange, ID token, new session).
//!
//! Each attempt has its own cookie, named after its state, so several tabs can log in at
//! once; a cap on pending attempts drops the oldest. States are single-use: the cookie is
//! cleared at the callback, and used states are remembered until they would have expired
//! anyway, so a replayed callback with a copied cookie fails too.

use crate::session::preserved::PostToken;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cookie::{Cookie, SameSite};
use http::HeaderValue;
use http::header::{COOKIE, HeaderMap};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, Random, random_token};
use crate::oidc::{Attempt, IdTokenError, Provider, TokenError};
use crate::secret::Secret;
use crate::session::model::Session;
use crate::session::seal::{KeyRing, Purpose};

/// How long a login attempt may take, from redirect to callback.
pub(crate) const LOGIN_TTL: u64 = 600;

/// Bytes of randomness in state, nonce and PKCE verifier: 256 bits each.
const RANDOM_BYTES: usize = 32;

/// What one attempt must remember, sealed into its cookie.
#[derive(Serialize, Deserialize)]
struct LoginState {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    created_at: u64,
    /// Sent with `prompt=none`: if the provider needs the user, log in interactively.
    #[serde(default)]
    silent: bool,
    /// A form post kept while the user logs in (its token).
    #[serde(default)]
    preserved: Option<String>,
}

/// Errors by which a provider says a silent attempt needs the user (Core §3.1.2.6).
const NEEDS_INTERACTION: &[&str] = &[
    "login_required",
    "interaction_required",
    "consent_required",
    "account_selection_required",
];

/// Why a callback did not produce a session. Every variant is the client's or the provider's
/// doing, logged with its reason; the body tells the user little.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoginError {
    #[error("the provider reported {error}")]
    Provider {
        error: String,
        description: Option<String>,
    },
    #[error("the callback has no {0}")]
    Missing(&'static str),
    #[error("no login is under way for this state (cookie missing, expired or already used)")]
    UnknownState,
    #[error("the login took longer than {LOGIN_TTL} s")]
    Expired,
    #[error("the code exchange failed")]
    Exchange(#[source] TokenError),
    #[error("the token response has no ID token")]
    NoIdToken,
    #[error("the ID token is invalid")]
    IdToken(#[source] IdTokenError),
    #[error("the identity provider is not available")]
    Unavailable,
    #[error("the provider needs the user ({error}): logging in interactively")]
    NeedsInteraction {
        error: String,
        return_to: String,
        clear: HeaderValue,
    },
}

impl LoginError {
    /// A fixed label for metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            LoginError::Provider { .. } => "provider_error",
            LoginError::Missing(_) => "missing_parameter",
            LoginError::UnknownState => "unknown_state",
            LoginError::Expired => "expired",
            LoginError::Exchange(_) => "exchange_failed",
            LoginError::NoIdToken => "no_id_token",
            LoginError::IdToken(_) => "invalid_id_token",
            LoginError::Unavailable => "provider_unavailable",
            LoginError::NeedsInteraction { .. } => "needs_interaction",
        }
    }

    /// Whether the provider (rather than the client) failed: answered with 502.
    pub(crate) fn is_provider_failure(&self) -> bool {
        matches!(
            self,
            LoginError::Unavailable
                | LoginError::Exchange(
                    TokenError::Http(_) | TokenError::Unexpected { .. } | TokenError::Json(_)
                )
        )
    }
}

/// A finished login.
pub(crate) struct LoggedIn {
    pub(crate) session: Session,
    pub(crate) return_to: String,
    /// Clears the attempt's cookie.
    pub(crate) clear: HeaderValue,
    /// The attempt renewed an existing session silently (`prompt=none`).
    pub(crate) silent: bool,
    /// The form post this login was started for.
    pub(crate) preserved: Option<PostToken>,
}

pub(crate) struct Login {
    pub(crate) provider: Arc<Provider>,
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    redirect_uri: String,
    /// `__Host-<cookie_name>-login-` over https, `<cookie_name>-login-` otherwise.
    cookie_prefix: String,
    secure: bool,
    max_pending: usize,
    /// The claims that identity headers read, kept in the session.
    header_claims: Vec<String>,
    /// States already redeemed, until their cookies would have expired.
    used: Mutex<HashMap<String, u64>>,
}

pub(crate) struct LoginSetup {
    pub(crate) provider: Arc<Provider>,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<dyn Random>,
    pub(crate) redirect_uri: String,
    pub(crate) cookie_name: String,
    pub(crate) secure: bool,
    pub(crate) max_pending: usize,
    pub(crate) header_claims: Vec<String>,
}

impl Login {
    pub(crate) fn new(setup: LoginSetup) -> Self {
        let host = if setup.secure { "__Host-" } else { "" };
        Self {
            provider: setup.provider,
            keys: setup.keys,
            clock: setup.clock,
            random: setup.random,
            redirect_uri: setup.redirect_uri,
            cookie_prefix: format!("{host}{}-login-", setup.cookie_name),
            secure: setup.secure,
            max_pending: setup.max_pending,
            header_claims: setup.header_claims,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// The prefix every login-state cookie's name starts with.
    pub(crate) fn cookie_prefix(&self) -> &str {
        &self.cookie_prefix
    }

    fn cookie_name(&self, state: &str) -> String {
        // 16 characters of a 256-bit random state are 96 bits: unique among one browser's
        // few attempts, and short enough to keep the Cookie header small.
        format!("{}{}", self.cookie_prefix, state.get(..16).unwrap_or(state))
    }

    fn cookie(&self, name: String, value: String, max_age: i64) -> Option<HeaderValue> {
        let cookie = Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build();
        HeaderValue::from_str(&cookie.encoded().to_string()).ok()
    }

    /// This request's login-state cookies: name and value.
    fn pending<'h>(&self, headers: &'h HeaderMap) -> Vec<(&'h str, &'h str)> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| name.starts_with(&self.cookie_prefix))
            .collect()
    }

    /// Starts an attempt that returns to `return_to` (already a safe path): the provider's
    /// authorization URL and the cookies to set (the new attempt's, and the clearing of
    /// attempts beyond the cap, oldest first).
    pub(crate) fn start(
        &self,
        headers: &HeaderMap,
        return_to: &str,
        silent: bool,
        preserved: Option<&PostToken>,
    ) -> Result<(String, Vec<HeaderValue>), LoginError> {
        let now = self.clock.now();
        let state = random_token(self.random.as_ref(), RANDOM_BYTES);
        let nonce = random_token(self.random.as_ref(), RANDOM_BYTES);
        let verifier = random_token(self.random.as_ref(), RANDOM_BYTES);
        let attempt = Attempt {
            state: &state,
            nonce: &nonce,
            verifier: &verifier,
            silent,
        };
        let url = self
            .provider
            .authorization_url(&self.redirect_uri, &attempt)
            .ok_or(LoginError::Unavailable)?;

        let mut cookies = Vec::new();
        let mut pending: Vec<(u64, &str)> = self
            .pending(headers)
            .into_iter()
            .map(|(name, value)| (self.open(name, value).map_or(0, |s| s.created_at), name))
            .collect();
        if pending.len() >= self.max_pending {
            pending.sort_unstable();
            let excess = pending.len() + 1 - self.max_pending;
            for (_, name) in pending.iter().take(excess) {
                cookies.extend(self.cookie((*name).to_string(), String::new(), 0));
            }
        }
        let login = LoginState {
            state: state.clone(),
            nonce,
            verifier,
            return_to: return_to.to_string(),
            created_at: now,
            silent,
            preserved: preserved.map(PostToken::encode),
        };
        let name = self.cookie_name(&state);
        let plaintext = serde_json::to_vec(&login).map_err(|_| LoginError::Unavailable)?;
        let sealed = self
            .keys
            .seal(Purpose::LoginState, &name, &plaintext, self.random.as_ref());
        cookies.extend(self.cookie(name, sealed, LOGIN_TTL as i64));
        Ok((url.to_string(), cookies))
    }

    fn open(&self, name: &str, value: &str) -> Option<LoginState> {
        let plaintext = self.keys.open(Purpose::LoginState, name, value).ok()?;
        serde_json::from_slice(&plaintext).ok()
    }

    /// Finishes an attempt from the callback's query string.
    pub(crate) async fn callback(
        &self,
        query: &str,
        headers: &HeaderMap,
    ) -> Result<LoggedIn, LoginError> {
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let state = params.get("state").filter(|s| !s.is_empty());
        let name = state.map(|state| self.cookie_name(state));
        let login = state.zip(name.as_ref()).and_then(|(state, name)| {
            self.pending(headers)
                .into_iter()
                .find(|(n, _)| n == name)
                .and_then(|(n, v)| self.open(n, v))
                .filter(|login| {
                    crate::secret::constant_time_eq(login.state.as_bytes(), state.as_bytes())
                })
        });
        if let Some(error) = params.get("error") {
            if let (Some(login), Some(name)) = (&login, name) {
                if login.silent && NEEDS_INTERACTION.contains(&error.as_str()) {
                    let clear = self
                        .cookie(name, String::new(), 0)
                        .ok_or(LoginError::UnknownState)?;
                    return Err(LoginError::NeedsInteraction {
                        error: error.clone(),
                        return_to: login.return_to.clone(),
                        clear,
                    });
                }
            }
            return Err(LoginError::Provider {
                error: error.clone(),
                description: params.get("error_description").cloned(),
            });
        }
        let (Some(name), Some(login)) = (name, login) else {
            return Err(if state.is_none() {
                LoginError::Missing("state")
            } else {
                LoginError::UnknownState
            });
        };
        let code = params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or(LoginError::Missing("code"))?;
        let now = self.clock.now();
        if now >= login.created_at.saturating_add(LOGIN_TTL) {
            return Err(LoginError::Expired);
        }
        self.redeem(&login.state, now)?;
        let clear = self
            .cookie(name, String::new(), 0)
            .ok_or(LoginError::UnknownState)?;

        let tokens = self
            .provider
            .exchange_code(code, &login.verifier, &self.redirect_uri)
            .await
            .map_err(LoginError::Exchange)?;
        let id_token = tokens.id_token.ok_or(LoginError::NoIdToken)?;
        let claims = self
            .provider
            .validate_id_token(&id_token, Some(&login.nonce), self.clock.now())
            .await
            .map_err(LoginError::IdToken)?;

        let subject = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        // A new id on every login: a session id planted before login is worth nothing.
        let mut session = Session::start(self.random.as_ref(), subject, now);
        session.idp_sid = claims
            .get("sid")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        for name in &self.header_claims {
            if let Some(value) = claims.get(name) {
                session.claims.insert(name.clone(), value.clone());
            }
        }
        session.refresh_token = tokens.refresh_token;
        session.id_token = Some(Secret::new(id_token));
        let id_exp = claims.get("exp").and_then(serde_json::Value::as_u64);
        session.tokens_expire_at = tokens.expires_in.map(|s| now.saturating_add(s)).or(id_exp);
        Ok(LoggedIn {
            session,
            return_to: login.return_to,
            clear,
            silent: login.silent,
            preserved: login.preserved.as_deref().and_then(PostToken::decode),
        })
    }

    /// Marks a state used; refuses one used before.
    fn redeem(&self, state: &str, now: u64) -> Result<(), LoginError> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.retain(|_, expires| *expires > now);
        if used.insert(state.to_string(), now + LOGIN_TTL).is_some() {
            return Err(LoginError::UnknownState);
        }
        Ok(())
    }
}
