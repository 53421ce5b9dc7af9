//! Renewing a session's tokens with its refresh token while the user works, so the session
//! outlives its tokens and the provider still gets a say (a revoked or disabled user's
//! refresh fails with `invalid_grant`, which ends the session).
//!
//! Concurrency is the hard part. All requests of one session that notice the tokens are due
//! share one refresh (single-flight), keyed by the refresh token they carry. With rotating
//! refresh tokens, a request sent with the *old* cookie can arrive after the refresh has
//! finished; spending the old token again would get `invalid_grant` and, at providers with
//! reuse detection, revoke the whole token family. So the outcome is kept for a short window
//! under the old token, and such late requests reuse it. A provider that is down or slow does
//! not end anything: the request goes on with the current identity and the refresh is retried
//! with exponential backoff.
//!
//! With the Redis store, replicas share sessions, so the single flight spans them: a short
//! Redis lock per session lets one replica refresh while the others wait for its result to
//! appear in the store, and nobody spends one refresh token twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::clock::Random;
use crate::oidc::{Provider, TokenError};
use crate::secret::Secret;
use crate::session::model::Session;
use crate::session::store::{Handle, SessionStore};

/// How long a refresh's outcome answers requests that still carry the old refresh token:
/// long enough for requests in flight when the browser got the new cookie.
const REPLAY_WINDOW: u64 = 60;

/// Retry delays after failed refreshes, per refresh token.
const BACKOFF: &[u64] = &[1, 2, 4, 8, 16, 30, 60];

/// How often a replica waiting on another's refresh looks for its result.
const POLL: Duration = Duration::from_millis(25);

/// What a successful refresh brought.
#[derive(Clone)]
pub(crate) struct Renewed {
    refresh_token: Option<Secret>,
    id_token: Option<Secret>,
    /// The new ID token's claims, already validated.
    claims: Option<Map<String, Value>>,
    expires_at: Option<u64>,
}

/// The outcome of a refresh, shared by every request that waited for it.
#[derive(Clone)]
pub(crate) enum Outcome {
    Renewed(Renewed),
    /// The provider refused the refresh token, or the new ID token is for someone else:
    /// the session is over.
    Ended(&'static str),
    /// The refreshed session is already in the shared store (written by this replica or
    /// another): use it as it is.
    Stored(Box<Session>),
    /// The provider could not be asked; the session goes on as it is.
    Unavailable,
}

/// The refresher's times.
pub(crate) struct Timing {
    /// How long a request waits for a refresh (`oidc.refresh_timeout`).
    pub(crate) wait: Duration,
    /// `session.refresh_before_expiry`.
    pub(crate) before_expiry: Duration,
    /// How long one replica's refresh lock holds at most.
    pub(crate) lock_hold: Duration,
}

/// A token's identity in the maps, without keeping the token itself around.
type TokenKey = [u8; 32];

fn key(token: &Secret) -> TokenKey {
    Sha256::digest(token.expose().as_bytes()).into()
}

type Pending = Shared<BoxFuture<'static, Outcome>>;

/// The refreshes under way and recently done, behind one lock so that "is there a recent
/// outcome?" and "start a refresh" can never interleave with a refresh finishing.
#[derive(Default)]
struct Book {
    in_flight: HashMap<TokenKey, Pending>,
    /// Finished outcomes, until the replay window closes (Unix seconds).
    recent: HashMap<TokenKey, (Outcome, u64)>,
    /// Failed refreshes: how many in a row, and when the next may be tried.
    failures: HashMap<TokenKey, (usize, u64)>,
}

pub(crate) struct Refresher {
    provider: Arc<Provider>,
    store: Arc<SessionStore>,
    random: Arc<dyn Random>,
    timeout: Duration,
    before_expiry: u64,
    lock_hold: Duration,
    /// Claims the identity headers read, copied from refreshed ID tokens.
    header_claims: Vec<String>,
    book: Mutex<Book>,
}

impl Refresher {
    pub(crate) fn new(
        provider: Arc<Provider>,
        store: Arc<SessionStore>,
        random: Arc<dyn Random>,
        timing: Timing,
        header_claims: Vec<String>,
    ) -> Self {
        Self {
            provider,
            store,
            random,
            timeout: timing.wait,
            before_expiry: timing.before_expiry.as_secs(),
            lock_hold: timing.lock_hold,
            header_claims,
            book: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `session`'s tokens should be renewed now. Each session refreshes a little
    /// earlier than `refresh_before_expiry` by a jitter drawn from its id (up to half that
    /// time, at most 30 s), so sessions created together do not all refresh together.
    pub(crate) fn is_due(&self, session: &Session, now: u64) -> bool {
        let (Some(_), Some(expires_at)) = (&session.refresh_token, session.tokens_expire_at) else {
            return false;
        };
        let spread = (self.before_expiry / 2).min(30);
        let jitter = u64::from(session.id.as_bytes()[0]) * spread / 255;
        now.saturating_add(self.before_expiry + jitter) >= expires_at
    }

    /// Renews `session`'s tokens, sharing the work with every request of the session that
    /// carries the same refresh token. Waits at most `refresh_timeout`; past it the request
    /// goes on as it is, while the refresh itself runs to its end in the background (so a
    /// rotated token is never lost with an impatient request).
    pub(crate) async fn refresh(
        self: &Arc<Self>,
        session: &Session,
        handle: &Handle,
        now: u64,
    ) -> Outcome {
        let Some(token) = &session.refresh_token else {
            return Outcome::Unavailable;
        };
        let key = key(token);
        let pending = {
            let mut book = self.book();
            book.recent.retain(|_, (_, until)| *until > now);
            if let Some((outcome, _)) = book.recent.get(&key) {
                return outcome.clone();
            }
            if book
                .failures
                .get(&key)
                .is_some_and(|(_, retry_at)| *retry_at > now)
            {
                return Outcome::Unavailable;
            }
            book.in_flight
                .entry(key)
                .or_insert_with(|| {
                    let this = self.clone();
                    let (session, handle) = (session.clone(), handle.clone());
                    let task = tokio::spawn(async move {
                        let outcome = if this.store.redis().is_some() {
                            this.refresh_shared(session, handle, now).await
                        } else {
                            match session.refresh_token.clone() {
                                Some(token) => this.ask_provider(token, session.subject, now).await,
                                None => Outcome::Unavailable,
                            }
                        };
                        this.settle(key, &outcome, now);
                        outcome
                    });
                    async move { task.await.unwrap_or(Outcome::Unavailable) }
                        .boxed()
                        .shared()
                })
                .clone()
        };
        match tokio::time::timeout(self.timeout, pending).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "token refresh is taking too long: going on with the current tokens");
                crate::ops::metrics::refresh("timeout");
                Outcome::Unavailable
            }
        }
    }

    /// Records a finished refresh: late requests with the old token reuse its outcome, and a
    /// failure pushes the next try back.
    fn settle(&self, key: TokenKey, outcome: &Outcome, now: u64) {
        let mut book = self.book();
        book.in_flight.remove(&key);
        match outcome {
            Outcome::Unavailable => {
                book.failures
                    .retain(|_, (_, retry_at)| *retry_at + 3600 > now);
                let entry = book.failures.entry(key).or_insert((0, now));
                let delay = BACKOFF[entry.0.min(BACKOFF.len() - 1)];
                *entry = (entry.0 + 1, now + delay);
                tracing::warn!(
                    failures = entry.0,
                    retry_in_s = delay,
                    "token refresh failed: the session goes on, retrying with backoff"
                );
            }
            Outcome::Renewed(_) | Outcome::Stored(_) | Outcome::Ended(_) => {
                book.failures.remove(&key);
                book.recent
                    .insert(key, (outcome.clone(), now + REPLAY_WINDOW));
            }
        }
    }

    /// The refresh across replicas: whoever takes the session's lock refreshes and writes
    /// the result to the store; everyone else waits for the stored session to change.
    async fn refresh_shared(&self, session: Session, handle: Handle, now: u64) -> Outcome {
        let (Some(redis), Some(token)) = (self.store.redis(), &session.refresh_token) else {
            return Outcome::Unavailable;
        };
        let spent = |stored: &Session| stored.refresh_token.as_ref() != Some(token);
        let give_up = tokio::time::Instant::now() + self.lock_hold;
        loop {
            let lock = match redis.lock_refresh(&session.id, self.lock_hold).await {
                Ok(lock) => lock,
                Err(e) => {
                    tracing::warn!(target: "sessiongate::refresh", error = %e, "no refresh lock: going on with the current tokens");
                    return Outcome::Unavailable;
                }
            };
            // Whether the lock is ours or not, the store may already have the result.
            let stored = match self.store.reload(&handle).await {
                Ok(Some(stored)) => stored,
                Ok(None) => {
                    if let Some(lock) = lock {
                        redis.unlock_refresh(lock).await;
                    }
                    return Outcome::Ended("revoked");
                }
                Err(e) => {
                    tracing::warn!(target: "sessiongate::refresh", error = %e, "session store unavailable during refresh");
                    if let Some(lock) = lock {
                        redis.unlock_refresh(lock).await;
                    }
                    return Outcome::Unavailable;
                }
            };
            if spent(&stored) {
                if let Some(lock) = lock {
                    redis.unlock_refresh(lock).await;
                }
                crate::ops::metrics::refresh("shared");
                return Outcome::Stored(Box::new(stored));
            }
            let Some(lock) = lock else {
                if tokio::time::Instant::now() >= give_up {
                    return Outcome::Unavailable;
                }
                tokio::time::sleep(POLL).await;
                continue;
            };
            let outcome = self
                .ask_provider(token.clone(), session.subject.clone(), now)
                .await;
            let outcome = match outcome {
                Outcome::Renewed(renewed) => {
                    let mut renewed_session = stored;
                    self.apply(&mut renewed_session, &renewed);
                    let saved = self
                        .store
                        .save(&renewed_session, &handle, now, self.random.as_ref())
                        .await;
                    match saved {
                        Ok(_) => Outcome::Stored(Box::new(renewed_session)),
                        // Not stored, but this request may still use what it got.
                        Err(e) => {
                            tracing::warn!(target: "sessiongate::refresh", error = %e, "refreshed tokens could not be stored");
                            Outcome::Renewed(renewed)
                        }
                    }
                }
                other => other,
            };
            redis.unlock_refresh(lock).await;
            return outcome;
        }
    }

    async fn ask_provider(&self, token: Secret, subject: String, now: u64) -> Outcome {
        let tokens = match self.provider.refresh(token.expose()).await {
            Ok(tokens) => tokens,
            Err(TokenError::Refused { error, .. }) if error == "invalid_grant" => {
                tracing::info!(target: "sessiongate::refresh", "the provider refused the refresh token (invalid_grant): session ended");
                crate::ops::metrics::refresh("invalid_grant");
                return Outcome::Ended("invalid_grant");
            }
            Err(e) => {
                tracing::warn!(target: "sessiongate::refresh", error = %crate::error_chain(&e), "token refresh failed");
                crate::ops::metrics::refresh("unavailable");
                return Outcome::Unavailable;
            }
        };
        let claims = match &tokens.id_token {
            None => None,
            // Core §12.2: validated like the login's, without a nonce, and for the same user.
            Some(id_token) => match self.provider.validate_id_token(id_token, None, now).await {
                Ok(claims)
                    if claims.get("sub").and_then(Value::as_str) == Some(subject.as_str()) =>
                {
                    Some(claims)
                }
                Ok(_) => {
                    tracing::warn!(target: "sessiongate::refresh", "the refreshed ID token is for another subject: session ended");
                    crate::ops::metrics::refresh("subject_changed");
                    return Outcome::Ended("subject_changed");
                }
                Err(e) => {
                    tracing::warn!(target: "sessiongate::refresh", error = %e, "the refreshed ID token is invalid: session ended");
                    crate::ops::metrics::refresh("invalid_id_token");
                    return Outcome::Ended("invalid_id_token");
                }
            },
        };
        let id_exp = claims
            .as_ref()
            .and_then(|c| c.get("exp"))
            .and_then(Value::as_u64);
        tracing::debug!(target: "sessiongate::refresh", rotated = tokens.refresh_token.is_some(), "tokens refreshed");
        crate::ops::metrics::refresh("ok");
        Outcome::Renewed(Renewed {
            refresh_token: tokens.refresh_token,
            id_token: tokens.id_token.map(Secret::new),
            claims,
            expires_at: tokens.expires_in.map(|s| now.saturating_add(s)).or(id_exp),
        })
    }

    /// Puts a refresh's results into the session.
    pub(crate) fn apply(&self, session: &mut Session, renewed: &Renewed) {
        if let Some(token) = &renewed.refresh_token {
            session.refresh_token = Some(token.clone());
        }
        if let Some(token) = &renewed.id_token {
            session.id_token = Some(token.clone());
        }
        if let Some(claims) = &renewed.claims {
            for name in &self.header_claims {
                match claims.get(name) {
                    Some(value) => session.claims.insert(name.clone(), value.clone()),
                    None => session.claims.remove(name),
                };
            }
            if let Some(sid) = claims.get("sid").and_then(Value::as_str) {
                session.idp_sid = Some(sid.to_string());
            }
        }
        if let Some(expires_at) = renewed.expires_at {
            session.tokens_expire_at = Some(expires_at);
        }
    }
}
