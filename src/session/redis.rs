//! The Redis store: sessions shared by every replica. The cookie carries a [`Ticket`] (the
//! session id and a random key of the session's own); Redis holds the session sealed with that
//! key, so a dump of Redis alone reveals no token. The entry's TTL is the time left to the
//! idle deadline, so Redis forgets sessions nobody uses; deleting the entry ends the session.
//!
//! Keys, under the configured prefix:
//!
//! ```text
//! s:<id>         the sealed session                         TTL: idle deadline
//! sid:<sha256>   set of session ids of one provider session TTL: absolute timeout
//! sub:<sha256>   sorted set: session id → created_at        TTL: absolute timeout
//! lock:<id>      a replica is refreshing this session        TTL: a refresh's longest time
//! jti:<sha256>   a logout token already used                 TTL: until too old anyway
//! ```
//!
//! Every command names one key, so Cluster routes each on its own. Updates are `SET XX`: a
//! replica that loaded a session just before it was revoked cannot bring it back.

use std::fmt;
use std::time::Duration;

use fred::prelude::*;
use fred::types::sorted_sets::{ZRange, ZRangeBound, ZRangeKind};
use fred::types::{Expiration, SetOptions};
use sha2::{Digest, Sha256};

use super::codec;
use super::model::{Session, SessionId};
use super::{hex, seal};
use crate::clock::Random;

/// What the cookie carries in the Redis store.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: SessionId,
    key: [u8; 32],
}

const TICKET_LEN: usize = 16 + 32;

impl Ticket {
    pub fn new(id: SessionId, random: &dyn Random) -> Self {
        let mut key = [0; 32];
        random.fill(&mut key);
        Self { id, key }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(TICKET_LEN);
        bytes.extend_from_slice(self.id.as_bytes());
        bytes.extend_from_slice(&self.key);
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != TICKET_LEN {
            return None;
        }
        let (id, key) = bytes.split_at(16);
        Some(Self {
            id: SessionId::from_bytes(id.try_into().ok()?),
            key: key.try_into().ok()?,
        })
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ticket({:?}, key redacted)", self.id)
    }
}

/// Redis could not be asked, or answered nonsense. Never the client's fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("session store (Redis): {0}")]
pub struct StoreError(String);

impl StoreError {
    /// A limit of the store reached (not an outage).
    pub fn full(what: &str) -> Self {
        Self(what.to_string())
    }
}

impl From<fred::error::Error> for StoreError {
    fn from(e: fred::error::Error) -> Self {
        // fred's messages name the command and the failure, never the URL or password.
        Self(format!("{:?}: {}", e.kind(), e.details()))
    }
}

/// How a write treats an entry that is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A new session: the entry must not exist yet.
    Create,
    /// An existing session: an entry that is gone (revoked, expired) stays gone.
    Update,
}

pub struct RedisStore {
    pool: Pool,
    prefix: String,
    /// How long an index lives after its last addition: no session it names outlives it.
    keep: i64,
}

/// The refresh lock, held by this replica until released or expired.
pub struct RefreshLock {
    key: String,
}

impl RedisStore {
    /// Connects in the background: the gateway starts (and says it is not ready) while Redis
    /// is away, and reconnects by itself whenever the connection drops.
    pub fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
        absolute_timeout: Duration,
    ) -> Result<Self, String> {
        let config = Config::from_url(url).map_err(|e| {
            // The URL may hold a password: name the problem, not the value.
            format!("session.redis_url is not a Redis URL ({})", e.details())
        })?;
        let pool = Builder::from_config(config)
            .with_performance_config(|performance| {
                performance.default_command_timeout = timeout;
            })
            .with_connection_config(|connection| {
                connection.connection_timeout = timeout;
                connection.internal_command_timeout = timeout;
                // A command that timed out is not resent: the request has given up on it.
                connection.max_command_attempts = 1;
                // A Redis that stops answering (frozen, partitioned) gets its connection
                // closed and reopened, rather than every command waiting for it.
                connection.unresponsive = fred::types::config::UnresponsiveConfig {
                    max_timeout: Some(timeout),
                    interval: (timeout / 4).max(Duration::from_millis(10)),
                };
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build_pool(4)
            .map_err(|e| format!("session.redis_url: {}", e.details()))?;
        drop(pool.connect_pool());
        Ok(Self {
            pool,
            prefix: prefix.to_string(),
            keep: i64::try_from(absolute_timeout.as_secs()).unwrap_or(i64::MAX),
        })
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    fn session_key(&self, id: &SessionId) -> String {
        self.key("s", &hex(id.as_bytes()))
    }

    /// Index keys name a hash, not the user: a dump of Redis shows no identities.
    fn hashed_key(&self, kind: &str, value: &str) -> String {
        self.key(kind, &hex(&Sha256::digest(value.as_bytes())))
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.pool.ping(None).await?;
        Ok(())
    }

    /// The session a ticket names; `None` when it ended (deleted, expired) or the entry does
    /// not open with the ticket's key.
    pub async fn load(&self, ticket: &Ticket) -> Result<Option<Session>, StoreError> {
        let sealed: Option<Vec<u8>> = self.pool.get(self.session_key(&ticket.id)).await?;
        Ok(sealed.and_then(|sealed| open_entry(ticket, &sealed)))
    }

    /// Stores `session` for `ttl` seconds; `false` when `Update` found it gone, or `Create`
    /// found it there.
    pub async fn save(
        &self,
        ticket: &Ticket,
        session: &Session,
        ttl: u64,
        write: Write,
        random: &dyn Random,
    ) -> Result<bool, StoreError> {
        let sealed = seal_entry(ticket, session, random);
        let ttl = i64::try_from(ttl.max(1)).unwrap_or(i64::MAX);
        let condition = match write {
            Write::Create => SetOptions::NX,
            Write::Update => SetOptions::XX,
        };
        let id = hex(session.id.as_bytes());
        let pipeline = self.pool.next().pipeline();
        let () = pipeline
            .set(
                self.session_key(&session.id),
                sealed,
                Some(Expiration::EX(ttl)),
                Some(condition),
                false,
            )
            .await?;
        // The indices let the provider's or the operator's logout find the session.
        if let Some(sid) = &session.idp_sid {
            let index = self.hashed_key("sid", sid);
            let () = pipeline.sadd(&index, id.as_str()).await?;
            let () = pipeline.expire(&index, self.keep, None).await?;
        }
        let index = self.hashed_key("sub", &session.subject);
        let created = session.created_at as f64;
        let () = pipeline
            .zadd(&index, None, None, false, false, (created, id.as_str()))
            .await?;
        let () = pipeline.expire(&index, self.keep, None).await?;
        let results: Vec<Value> = pipeline.all().await?;
        Ok(results.first().is_some_and(|set| !set.is_null()))
    }

    /// Which of these sessions still have their entries, in one pipelined round trip.
    pub async fn exist(&self, ids: &[SessionId]) -> Result<Vec<bool>, StoreError> {
        let pipeline = self.pool.next().pipeline();
        for id in ids {
            let () = pipeline.exists(self.session_key(id)).await?;
        }
        let counts: Vec<i64> = pipeline.all().await?;
        Ok(counts.into_iter().map(|n| n > 0).collect())
    }

    /// Keeps a sealed form post for `ttl` seconds.
    pub async fn keep_post(&self, id: &str, sealed: Vec<u8>, ttl: u64) -> Result<(), StoreError> {
        let ttl = i64::try_from(ttl.max(1)).unwrap_or(i64::MAX);
        let () = self
            .pool
            .set(
                self.key("post", id),
                sealed,
                Some(Expiration::EX(ttl)),
                None,
                false,
            )
            .await?;
        Ok(())
    }

    /// Gives the kept post to `session` (the login succeeded), for `ttl` more seconds.
    pub async fn bind_post(&self, id: &str, session: &str, ttl: u64) -> Result<bool, StoreError> {
        let ttl = i64::try_from(ttl.max(1)).unwrap_or(i64::MAX);
        let exists: i64 = self.pool.exists(self.key("post", id)).await?;
        if exists == 0 {
            return Ok(false);
        }
        let key = self.key("postfor", &format!("{id}:{session}"));
        let () = self
            .pool
            .set(key, "1", Some(Expiration::EX(ttl)), None, false)
            .await?;
        let _: bool = self.pool.expire(self.key("post", id), ttl, None).await?;
        Ok(true)
    }

    /// The kept post, once, and only for the session it was given to.
    pub async fn take_post(&self, id: &str, session: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // Deleting the binding is the once-only step: a second replay, or another session,
        // deletes nothing.
        let bound: i64 = self
            .pool
            .del(self.key("postfor", &format!("{id}:{session}")))
            .await?;
        if bound == 0 {
            return Ok(None);
        }
        let sealed: Option<Vec<u8>> = self.pool.getdel(self.key("post", id)).await?;
        Ok(sealed)
    }

    /// Ends one session.
    pub async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let _: i64 = self.pool.del(self.session_key(id)).await?;
        Ok(())
    }

    /// Ends every session of the provider's session `sid`; how many there were.
    pub async fn revoke_idp_session(&self, sid: &str) -> Result<usize, StoreError> {
        let index = self.hashed_key("sid", sid);
        let ids: Vec<String> = self.pool.smembers(&index).await?;
        self.delete_all(&ids, &index).await?;
        Ok(ids.len())
    }

    /// Ends every session of `subject` created before `before`; how many there were.
    pub async fn revoke_subject(&self, subject: &str, before: u64) -> Result<usize, StoreError> {
        let index = self.hashed_key("sub", subject);
        let before = || ZRange {
            kind: ZRangeKind::Exclusive,
            range: ZRangeBound::Score(before as f64),
        };
        let ids: Vec<String> = self
            .pool
            .zrangebyscore(&index, "-inf", before(), false, None)
            .await?;
        let pipeline = self.pool.next().pipeline();
        for id in &ids {
            let () = pipeline.del(self.key("s", id)).await?;
        }
        let () = pipeline.zremrangebyscore(&index, "-inf", before()).await?;
        let _: Vec<Value> = pipeline.all().await?;
        Ok(ids.len())
    }

    async fn delete_all(&self, ids: &[String], index: &str) -> Result<(), StoreError> {
        let pipeline = self.pool.next().pipeline();
        for id in ids {
            let () = pipeline.del(self.key("s", id)).await?;
        }
        let () = pipeline.del(index).await?;
        let _: Vec<Value> = pipeline.all().await?;
        Ok(())
    }

    /// Records a logout token's `jti`; `false` when some replica already saw it.
    pub async fn first_use_of_logout_token(
        &self,
        jti: &str,
        keep: u64,
    ) -> Result<bool, StoreError> {
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        let set: Option<String> = self
            .pool
            .set(
                self.hashed_key("jti", jti),
                "1",
                Some(Expiration::EX(keep)),
                Some(SetOptions::NX),
                false,
            )
            .await?;
        Ok(set.is_some())
    }

    /// Takes the refresh lock of a session for `hold`; `None` while another replica has it.
    pub async fn lock_refresh(
        &self,
        id: &SessionId,
        hold: Duration,
    ) -> Result<Option<RefreshLock>, StoreError> {
        let key = self.key("lock", &hex(id.as_bytes()));
        let hold = i64::try_from(hold.as_millis().max(1)).unwrap_or(i64::MAX);
        let set: Option<String> = self
            .pool
            .set(
                &key,
                "1",
                Some(Expiration::PX(hold)),
                Some(SetOptions::NX),
                false,
            )
            .await?;
        Ok(set.map(|_| RefreshLock { key }))
    }

    /// Lets the next replica refresh. The lock expires by itself if this never runs.
    pub async fn unlock_refresh(&self, lock: RefreshLock) {
        let deleted: Result<i64, _> = self.pool.del(lock.key).await;
        if let Err(e) = deleted {
            tracing::warn!(error = %StoreError::from(e), "could not release a refresh lock; it expires by itself");
        }
    }
}

/// The associated data of an entry: its format and the session id, so an entry moved to
/// another session's key does not open.
fn entry_aad(id: &SessionId) -> Vec<u8> {
    let mut aad = b"sessiongate/v1/entry/".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad
}

fn seal_entry(ticket: &Ticket, session: &Session, random: &dyn Random) -> Vec<u8> {
    seal::seal_with_key(
        &ticket.key,
        &entry_aad(&session.id),
        &codec::encode(session),
        random,
    )
}

fn open_entry(ticket: &Ticket, sealed: &[u8]) -> Option<Session> {
    let payload = seal::open_with_key(&ticket.key, &entry_aad(&ticket.id), sealed).ok()?;
    let session = codec::decode(&payload).ok()?;
    (session.id == ticket.id).then_some(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededRandom;

    #[test]
    fn an_entry_opens_only_with_its_own_ticket() {
        let random = SeededRandom::new(3);
        let session = Session::start(&random, "alice".into(), 100);
        let ticket = Ticket::new(session.id, &random);
        let sealed = seal_entry(&ticket, &session, &random);
        assert_eq!(open_entry(&ticket, &sealed), Some(session.clone()));

        let other_key = Ticket::new(session.id, &random);
        assert_eq!(open_entry(&other_key, &sealed), None);
        let other_id = Ticket {
            id: SessionId::random(&random),
            key: ticket.key,
        };
        assert_eq!(open_entry(&other_id, &sealed), None, "moved to another id");
        assert!(
            !sealed.windows(5).any(|w| w == b"alice"),
            "the entry is encrypted"
        );
    }

    #[test]
    fn tickets_round_trip_and_refuse_other_lengths() {
        let random = SeededRandom::new(4);
        let ticket = Ticket::new(SessionId::random(&random), &random);
        assert_eq!(Ticket::decode(&ticket.encode()), Some(ticket.clone()));
        assert_eq!(Ticket::decode(&ticket.encode()[..47]), None);
        assert!(!format!("{ticket:?}").contains(&hex(&ticket.key)));
    }
}
