//! Sessions: what one is and when it ends ([`model`]), its bytes ([`codec`]), their
//! encryption ([`seal`]) and the cookies that carry them ([`cookies`]). [`SessionCookies`]
//! puts the four together for the cookie store: a `Session` in, `Set-Cookie` values out, and
//! back from a request's `Cookie` headers.
//!
//! The session layer knows nothing of HTTP routing or OIDC: it never decides whether a
//! request may pass, never talks to the IdP, and reads no clock or random source itself.
//! Callers pass `now` and a [`Random`](crate::clock::Random).

pub mod codec;
pub mod cookies;
pub mod model;
pub mod preserved;
pub mod redis;
pub mod revocation;
pub mod seal;
pub mod store;

use http::{HeaderMap, HeaderValue};

use crate::clock::Random;
use crate::config::SessionConfig;

pub use codec::DecodeError;
pub use cookies::{Carried, ChunkError, ChunkedCookie, CookieNameError, Scheme, ValueError};
pub use model::{
    Claims, Session, SessionId, SessionPolicy, Validity, absolute_deadline, check, idle_deadline,
    touch,
};
pub use seal::{KeyRing, KeyRingError, OpenError, Purpose};

/// Lower-case hexadecimal, for ids in store keys and tokens.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Why the session cookie cannot be set up from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("session.secrets: {0}")]
    KeyRing(#[from] KeyRingError),
    #[error("session.cookie_name: {0}")]
    CookieName(#[from] CookieNameError),
}

/// Why a request's session cookie was thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("session cookie chunks: {0}")]
    Chunks(#[source] ChunkError),
    #[error("session cookie: {0}")]
    Seal(#[source] OpenError),
    #[error("session cookie payload: {0}")]
    Payload(#[source] DecodeError),
}

/// What a request carried.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// No session cookie.
    Absent,
    Opened(Session),
    /// A session cookie that is not (or no longer) ours: the request has no session.
    Rejected(Rejection),
}

/// The outcome of [`SessionCookies::read`]. Nothing here is an error for the client to see.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub loaded: Loaded,
    /// The cookie names the request carried; pass them to the next `write` or `clear`.
    pub carried: Carried,
    /// `Set-Cookie` values the response must carry whatever the request goes on to do: they
    /// delete a rejected cookie (or orphaned chunks), so the browser stops sending it.
    pub clear: Vec<HeaderValue>,
}

impl ReadResult {
    pub fn session(&self) -> Option<&Session> {
        match &self.loaded {
            Loaded::Opened(session) => Some(session),
            Loaded::Absent | Loaded::Rejected(_) => None,
        }
    }
}

/// The cookie store's session codec: sealing, chunking and cookie attributes in one place.
#[derive(Debug)]
pub struct SessionCookies {
    ring: KeyRing,
    cookie: ChunkedCookie,
    policy: SessionPolicy,
}

impl SessionCookies {
    pub fn new(config: &SessionConfig, scheme: Scheme) -> Result<Self, SetupError> {
        Ok(Self {
            ring: KeyRing::new(&config.secrets)?,
            cookie: ChunkedCookie::new(&config.cookie_name, scheme)?,
            policy: SessionPolicy::from(config),
        })
    }

    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// The base cookie's name as sent to browsers (`__Host-` prefix included).
    pub fn cookie_name(&self) -> &str {
        self.cookie.name()
    }

    /// `Set-Cookie` values that store `session`, expiring in the browser at its absolute
    /// deadline, and clearing chunks from `previous` that are no longer used.
    pub fn write(
        &self,
        session: &Session,
        now: u64,
        previous: Carried,
        random: &dyn Random,
    ) -> Result<Vec<HeaderValue>, ValueError> {
        let sealed = self.seal(session, random);
        let max_age = absolute_deadline(session, &self.policy).saturating_sub(now);
        self.cookie.set(&sealed, max_age, previous)
    }

    /// The session a request's cookies hold. A cookie that does not reassemble, open or
    /// decode is treated as absent and cleared.
    pub fn read(&self, headers: &HeaderMap) -> ReadResult {
        let collected = self.cookie.collect(headers);
        let carried = collected.carried;
        let loaded = match collected.value {
            Ok(None) => Loaded::Absent,
            Ok(Some(sealed)) => match self.open(&sealed) {
                Ok(session) => Loaded::Opened(session),
                Err(rejection) => Loaded::Rejected(rejection),
            },
            Err(chunks) => Loaded::Rejected(Rejection::Chunks(chunks)),
        };
        let clear = match loaded {
            Loaded::Rejected(_) => self.clear(carried),
            // Chunks without their base cookie: left over from a session that is gone.
            Loaded::Absent if !carried.is_empty() => self.clear(carried),
            Loaded::Absent | Loaded::Opened(_) => Vec::new(),
        };
        ReadResult {
            loaded,
            carried,
            clear,
        }
    }

    /// `Set-Cookie` values that end the session in the browser (sign-out, expiry).
    pub fn clear(&self, previous: Carried) -> Vec<HeaderValue> {
        self.cookie.clear(previous)
    }

    /// The cookie value for `session`, before chunking.
    pub fn seal(&self, session: &Session, random: &dyn Random) -> String {
        let payload = codec::encode(session);
        self.ring
            .seal(Purpose::Session, self.cookie.name(), &payload, random)
    }

    /// The session in a reassembled cookie value.
    pub fn open(&self, sealed: &str) -> Result<Session, Rejection> {
        let payload = self
            .ring
            .open(Purpose::Session, self.cookie.name(), sealed)
            .map_err(Rejection::Seal)?;
        codec::decode(&payload).map_err(Rejection::Payload)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
