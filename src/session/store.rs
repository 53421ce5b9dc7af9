//! Where sessions live: in the cookie itself (one replica, nothing to run), or in Redis
//! (several replicas). [`SessionStore`] gives the gateway one interface to both: load a
//! request's session, create, save and end one, and revoke by the provider's session or by
//! user. The rules of validity (idle, absolute, revoked) are applied here, once, for both.
//!
//! Every Redis call is boxed: the client's command futures are kilobytes, and inline they
//! would make every request's future as large, cookie store included, copied on each request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue};

use super::model::{self, Session, SessionPolicy, Validity};
use super::preserved::{PostToken, PreservedPost};
use super::redis::{RedisStore, StoreError, Ticket, Write};
use super::revocation::Revocations;
use super::{Carried, Loaded, Purpose, Scheme, SessionCookies};
use crate::clock::Random;
use crate::config::{SessionConfig, StoreKind};

/// A kept form post in memory: sealed, for whom (none yet), until when.
type KeptPost = (Vec<u8>, Option<String>, u64);

/// Most form posts one replica keeps in memory at once.
const MAX_KEPT_POSTS: usize = 1000;

/// Built once and kept behind an `Arc`: the size of its variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    /// The session is the cookie; what was revoked is remembered here, for this replica.
    Cookie {
        revocations: Revocations,
        /// Logout tokens already used (`jti`) → when the entry may go.
        used_logout_tokens: Mutex<HashMap<String, u64>>,
        /// Form posts kept across a login: id → (sealed post, the session it is for, until).
        posts: Mutex<HashMap<String, KeptPost>>,
    },
    Redis(RedisStore),
}

pub struct SessionStore {
    cookies: SessionCookies,
    /// Shared with the store a configuration reload makes, when the backend stays the same:
    /// revocations and sessions in flight carry over.
    backend: Arc<Backend>,
    /// What the backend was made from, to tell whether a reload can keep it.
    backend_settings: (StoreKind, Option<String>, String, std::time::Duration),
}

/// Where a loaded session came from, to write it back or end it.
#[derive(Debug, Clone)]
pub struct Handle {
    pub carried: Carried,
    ticket: Option<Ticket>,
}

/// The outcome of [`SessionStore::load`]. Made once per request and taken apart at once, so
/// boxing the session would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Lookup {
    Found(Session, Handle),
    /// No session: the cookies clear a broken or ended one, and why there is none.
    Missing {
        clear: Vec<HeaderValue>,
        reason: &'static str,
    },
}

impl SessionStore {
    pub fn new(config: &SessionConfig, scheme: Scheme) -> Result<Self, String> {
        Self::build(config, scheme, None)
    }

    /// The store for a reloaded configuration: new cookie settings and deadlines, the same
    /// backend (and so the same revocations and Redis connections) when its settings did not
    /// change.
    pub fn reconfigured(&self, config: &SessionConfig, scheme: Scheme) -> Result<Self, String> {
        Self::build(config, scheme, Some(self))
    }

    fn build(
        config: &SessionConfig,
        scheme: Scheme,
        previous: Option<&SessionStore>,
    ) -> Result<Self, String> {
        let cookies = SessionCookies::new(config, scheme).map_err(|e| e.to_string())?;
        let backend_settings = (
            config.store,
            config.redis_url.as_ref().map(|u| u.expose().to_string()),
            config.redis_prefix.clone(),
            config.redis_timeout,
        );
        if let Some(previous) = previous.filter(|p| p.backend_settings == backend_settings) {
            return Ok(Self {
                cookies,
                backend: previous.backend.clone(),
                backend_settings,
            });
        }
        let backend = match config.store {
            StoreKind::Cookie => Backend::Cookie {
                revocations: Revocations::new(config.absolute_timeout),
                used_logout_tokens: Mutex::default(),
                posts: Mutex::default(),
            },
            StoreKind::Redis => {
                let url = config
                    .redis_url
                    .as_ref()
                    .ok_or("session.redis_url is required when session.store = \"redis\"")?;
                Backend::Redis(RedisStore::connect(
                    url.expose(),
                    &config.redis_prefix,
                    config.redis_timeout,
                    config.absolute_timeout,
                )?)
            }
        };
        Ok(Self {
            cookies,
            backend: Arc::new(backend),
            backend_settings,
        })
    }

    pub fn cookie_name(&self) -> &str {
        self.cookies.cookie_name()
    }

    pub fn policy(&self) -> &SessionPolicy {
        self.cookies.policy()
    }

    /// The shared store, when sessions live in Redis.
    pub fn redis(&self) -> Option<&RedisStore> {
        match self.backend.as_ref() {
            Backend::Redis(redis) => Some(redis),
            Backend::Cookie { .. } => None,
        }
    }

    /// The session cookie names a request carries, to replace or clear them all.
    pub fn carried(&self, headers: &HeaderMap) -> Carried {
        self.cookies.cookie.collect(headers).carried
    }

    /// Whether the store can serve sessions now.
    pub async fn check(&self) -> Result<(), StoreError> {
        match self.backend.as_ref() {
            Backend::Cookie { .. } => Ok(()),
            Backend::Redis(redis) => Box::pin(redis.ping()).await,
        }
    }

    /// The request's session if it has a valid one. An error means the store could not be
    /// asked; everything wrong with the request itself is a `Missing`.
    pub async fn load(&self, headers: &HeaderMap, now: u64) -> Result<Lookup, StoreError> {
        let (session, handle) = match self.backend.as_ref() {
            Backend::Cookie { .. } => {
                let read = self.cookies.read(headers);
                let handle = Handle {
                    carried: read.carried,
                    ticket: None,
                };
                match read.loaded {
                    Loaded::Opened(session) => (session, handle),
                    Loaded::Absent if read.clear.is_empty() => {
                        return Ok(missing(read.clear, "no session"));
                    }
                    Loaded::Absent => return Ok(missing(read.clear, "unreadable session cookie")),
                    Loaded::Rejected(why) => {
                        tracing::debug!(reason = %why, "session cookie rejected");
                        return Ok(missing(read.clear, "unreadable session cookie"));
                    }
                }
            }
            Backend::Redis(redis) => {
                let collected = self.cookies.cookie.collect(headers);
                let carried = collected.carried;
                let ticket = match collected.value {
                    Ok(None) if carried.is_empty() => return Ok(missing(Vec::new(), "no session")),
                    Ok(Some(sealed)) => self
                        .cookies
                        .ring
                        .open(Purpose::Ticket, self.cookie_name(), &sealed)
                        .ok()
                        .and_then(|bytes| Ticket::decode(&bytes)),
                    Ok(None) | Err(_) => None,
                };
                let Some(ticket) = ticket else {
                    let clear = self.cookies.clear(carried);
                    return Ok(missing(clear, "unreadable session cookie"));
                };
                let Some(session) = Box::pin(redis.load(&ticket)).await? else {
                    let clear = self.cookies.clear(carried);
                    return Ok(missing(clear, "session ended"));
                };
                let handle = Handle {
                    carried,
                    ticket: Some(ticket),
                };
                (session, handle)
            }
        };
        let ended = match model::check(&session, now, self.policy()) {
            Validity::Valid if self.is_revoked(&session, now) => "revoked",
            Validity::Valid => return Ok(Lookup::Found(session, handle)),
            Validity::IdleExpired => "idle timeout",
            Validity::AbsoluteExpired => "absolute timeout",
        };
        if let Backend::Redis(redis) = self.backend.as_ref() {
            Box::pin(redis.delete(&session.id)).await?;
        }
        Ok(missing(self.cookies.clear(handle.carried), ended))
    }

    fn is_revoked(&self, session: &Session, now: u64) -> bool {
        match self.backend.as_ref() {
            Backend::Cookie { revocations, .. } => revocations.is_revoked(session, now),
            // Revoking deletes the entry: a session that loaded is not revoked.
            Backend::Redis(_) => false,
        }
    }

    /// Whether each session is still valid at `now`, and if not why: `absolute`, `idle`,
    /// `revoked`, or, with Redis, `ended` (deleted by a logout, or expired idle, on any
    /// replica). For open WebSockets, whose sessions are not presented again.
    pub async fn still_valid(
        &self,
        sessions: &[(Session, Handle)],
        now: u64,
    ) -> Result<Vec<Result<(), &'static str>>, StoreError> {
        let policy = self.policy();
        match self.backend.as_ref() {
            Backend::Cookie { revocations, .. } => Ok(sessions
                .iter()
                .map(|(session, _)| match model::check(session, now, policy) {
                    Validity::Valid if revocations.is_revoked(session, now) => Err("revoked"),
                    Validity::Valid => Ok(()),
                    Validity::IdleExpired => Err("idle"),
                    Validity::AbsoluteExpired => Err("absolute"),
                })
                .collect()),
            Backend::Redis(redis) => {
                let ids: Vec<_> = sessions.iter().map(|(session, _)| session.id).collect();
                let present = Box::pin(redis.exist(&ids)).await?;
                // Other replicas slide the session: only the entry knows its idle deadline.
                Ok(sessions
                    .iter()
                    .zip(present)
                    .map(|((session, _), present)| {
                        if now >= model::absolute_deadline(session, policy) {
                            Err("absolute")
                        } else if !present {
                            Err("ended")
                        } else {
                            Ok(())
                        }
                    })
                    .collect())
            }
        }
    }

    /// Stores a new session; the cookies that carry it, replacing chunks of `previous`.
    pub async fn create(
        &self,
        session: &Session,
        previous: Carried,
        now: u64,
        random: &dyn Random,
    ) -> Result<Vec<HeaderValue>, StoreError> {
        match self.backend.as_ref() {
            Backend::Cookie { .. } => Ok(self.write_cookie(session, now, previous, random)),
            Backend::Redis(redis) => {
                let ticket = Ticket::new(session.id, random);
                let ttl = self.ttl(session, now);
                Box::pin(redis.save(&ticket, session, ttl, Write::Create, random)).await?;
                Ok(self.write_ticket(&ticket, session, now, previous, random))
            }
        }
    }

    /// Writes back a loaded session that changed (slid, refreshed); the cookies to send.
    pub async fn save(
        &self,
        session: &Session,
        handle: &Handle,
        now: u64,
        random: &dyn Random,
    ) -> Result<Vec<HeaderValue>, StoreError> {
        match (self.backend.as_ref(), &handle.ticket) {
            (Backend::Redis(redis), Some(ticket)) => {
                let ttl = self.ttl(session, now);
                // Gone meanwhile (revoked on another replica): it stays gone.
                Box::pin(redis.save(ticket, session, ttl, Write::Update, random)).await?;
                Ok(Vec::new())
            }
            _ => Ok(self.write_cookie(session, now, handle.carried, random)),
        }
    }

    /// The session as the store has it now (another replica may have refreshed it).
    pub async fn reload(&self, handle: &Handle) -> Result<Option<Session>, StoreError> {
        match (self.backend.as_ref(), &handle.ticket) {
            (Backend::Redis(redis), Some(ticket)) => Box::pin(redis.load(ticket)).await,
            _ => Ok(None),
        }
    }

    /// Ends one session everywhere (sign-out): the cookies that clear it in the browser.
    pub async fn end(
        &self,
        session: &Session,
        handle: &Handle,
        now: u64,
    ) -> Result<Vec<HeaderValue>, StoreError> {
        match self.backend.as_ref() {
            Backend::Cookie { revocations, .. } => revocations.revoke_session(&session.id, now),
            Backend::Redis(redis) => Box::pin(redis.delete(&session.id)).await?,
        }
        Ok(self.clear(handle.carried))
    }

    /// `Set-Cookie` values that delete the session cookie (every chunk carried).
    pub fn clear(&self, carried: Carried) -> Vec<HeaderValue> {
        self.cookies.clear(carried)
    }

    /// Ends every session of the provider's session `sid`.
    pub async fn revoke_idp_session(&self, sid: &str, now: u64) -> Result<(), StoreError> {
        match self.backend.as_ref() {
            Backend::Cookie { revocations, .. } => revocations.revoke_idp_session(sid, now),
            Backend::Redis(redis) => {
                Box::pin(redis.revoke_idp_session(sid)).await?;
            }
        }
        Ok(())
    }

    /// Ends every session of `subject` created before `before`.
    pub async fn revoke_subject(
        &self,
        subject: &str,
        before: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        match self.backend.as_ref() {
            Backend::Cookie { revocations, .. } => revocations.revoke_subject(subject, before, now),
            Backend::Redis(redis) => {
                Box::pin(redis.revoke_subject(subject, before)).await?;
            }
        }
        Ok(())
    }

    /// Records a logout token's `jti` for `keep` seconds; `false` when it was seen before
    /// (a replay), on this replica or, with Redis, on any.
    pub async fn first_use_of_logout_token(
        &self,
        jti: &str,
        now: u64,
        keep: u64,
    ) -> Result<bool, StoreError> {
        match self.backend.as_ref() {
            Backend::Cookie {
                used_logout_tokens, ..
            } => {
                let mut used = used_logout_tokens
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                used.retain(|_, until| *until > now);
                Ok(used.insert(jti.to_string(), now + keep).is_none())
            }
            Backend::Redis(redis) => Box::pin(redis.first_use_of_logout_token(jti, keep)).await,
        }
    }

    /// Keeps a form post while its user logs in (for `ttl` seconds); the token that names it.
    pub async fn keep_post(
        &self,
        post: &PreservedPost,
        ttl: u64,
        now: u64,
        random: &dyn Random,
    ) -> Result<PostToken, StoreError> {
        let token = PostToken::new(random);
        let sealed = token.seal(post, random);
        match self.backend.as_ref() {
            Backend::Cookie { posts, .. } => {
                let mut posts = posts.lock().unwrap_or_else(|p| p.into_inner());
                posts.retain(|_, (_, _, until)| *until > now);
                if posts.len() >= MAX_KEPT_POSTS {
                    return Err(StoreError::full("too many form posts kept at once"));
                }
                posts.insert(token.id_hex(), (sealed, None, now + ttl));
            }
            Backend::Redis(redis) => {
                Box::pin(redis.keep_post(&token.id_hex(), sealed, ttl)).await?
            }
        }
        Ok(token)
    }

    /// The login for a kept post succeeded: the post now belongs to `session`, for `ttl`.
    pub async fn bind_post(
        &self,
        token: &PostToken,
        session: &Session,
        ttl: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let owner = hex_id(session);
        match self.backend.as_ref() {
            Backend::Cookie { posts, .. } => {
                let mut posts = posts.lock().unwrap_or_else(|p| p.into_inner());
                Ok(match posts.get_mut(&token.id_hex()) {
                    Some(kept) if kept.2 > now => {
                        *kept = (std::mem::take(&mut kept.0), Some(owner), now + ttl);
                        true
                    }
                    _ => false,
                })
            }
            Backend::Redis(redis) => Box::pin(redis.bind_post(&token.id_hex(), &owner, ttl)).await,
        }
    }

    /// The kept post, once, and only for the session its login made.
    pub async fn take_post(
        &self,
        token: &PostToken,
        session: &Session,
        now: u64,
    ) -> Result<Option<PreservedPost>, StoreError> {
        let owner = hex_id(session);
        let sealed = match self.backend.as_ref() {
            Backend::Cookie { posts, .. } => {
                let mut posts = posts.lock().unwrap_or_else(|p| p.into_inner());
                let id = token.id_hex();
                match posts.get(&id) {
                    Some((_, Some(bound), until)) if *bound == owner && *until > now => {
                        posts.remove(&id).map(|(sealed, _, _)| sealed)
                    }
                    _ => None,
                }
            }
            Backend::Redis(redis) => Box::pin(redis.take_post(&token.id_hex(), &owner)).await?,
        };
        Ok(sealed.and_then(|sealed| token.open(&sealed)))
    }

    /// Seconds until the session's nearer deadline: the Redis entry's TTL.
    fn ttl(&self, session: &Session, now: u64) -> u64 {
        let policy = self.policy();
        model::idle_deadline(session, policy)
            .min(model::absolute_deadline(session, policy))
            .saturating_sub(now)
    }

    fn write_cookie(
        &self,
        session: &Session,
        now: u64,
        previous: Carried,
        random: &dyn Random,
    ) -> Vec<HeaderValue> {
        match self.cookies.write(session, now, previous, random) {
            Ok(cookies) => cookies,
            Err(e) => {
                tracing::warn!(error = %e, "the session does not fit in cookies");
                Vec::new()
            }
        }
    }

    /// The ticket cookie lives until the absolute deadline; Redis decides about idleness.
    fn write_ticket(
        &self,
        ticket: &Ticket,
        session: &Session,
        now: u64,
        previous: Carried,
        random: &dyn Random,
    ) -> Vec<HeaderValue> {
        let sealed = self.cookies.ring.seal(
            Purpose::Ticket,
            self.cookie_name(),
            &ticket.encode(),
            random,
        );
        let max_age = model::absolute_deadline(session, self.policy()).saturating_sub(now);
        self.cookies
            .cookie
            .set(&sealed, max_age, previous)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the session ticket cookie cannot be written");
                Vec::new()
            })
    }
}

fn hex_id(session: &Session) -> String {
    super::hex(session.id.as_bytes())
}

fn missing(clear: Vec<HeaderValue>, reason: &'static str) -> Lookup {
    Lookup::Missing { clear, reason }
}
