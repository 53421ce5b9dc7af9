//! What a session is and when it ends: the [`Session`] record, the [`SessionPolicy`] built
//! from the configuration, and pure functions over both (`check`, `touch`, the deadlines).
//!
//! Everything here is a plain function of its arguments and `now`: no clock, no cookies, no
//! encryption, no HTTP, no OIDC. Callers read the time and decide what to do with the answer.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::clock::Random;
use crate::config::SessionConfig;
use crate::secret::Secret;

/// The claims kept for identity headers, by claim name. The caller picks which ones; `sub`
/// is not repeated here, it is [`Session::subject`].
pub type Claims = BTreeMap<String, serde_json::Value>;

/// Our own 128-bit random session id, the handle revocation works on.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    pub fn random(random: &dyn Random) -> Self {
        let mut bytes = [0; 16];
        random.fill(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    /// The first four bytes only: enough to tell sessions apart in a log without writing the
    /// whole handle down.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, ..] = self.0;
        write!(f, "SessionId({a:02x}{b:02x}{c:02x}{d:02x}…)")
    }
}

/// One logged-in user agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: SessionId,
    /// The IdP's `sub`: the one claim every session has.
    pub subject: String,
    /// The other claims identity headers need.
    pub claims: Claims,
    /// The IdP's `sid`, which back-channel logout names.
    pub idp_sid: Option<String>,
    /// Unix seconds; the absolute deadline counts from here.
    pub created_at: u64,
    /// Unix seconds of the last request that slid the session; the idle deadline counts from
    /// here.
    pub last_seen: u64,
    /// Renews the other tokens without sending the user to the IdP.
    pub refresh_token: Option<Secret>,
    /// Kept for RP-initiated logout's `id_token_hint`.
    pub id_token: Option<Secret>,
    /// Kept only when a feature forwards it upstream.
    pub access_token: Option<Secret>,
    /// Unix seconds at which the ID/access tokens expire and a refresh is due.
    pub tokens_expire_at: Option<u64>,
}

impl Session {
    /// A session that starts now, with a fresh id and nothing but its subject.
    pub fn start(random: &dyn Random, subject: String, now: u64) -> Self {
        Self {
            id: SessionId::random(random),
            subject,
            claims: Claims::new(),
            idp_sid: None,
            created_at: now,
            last_seen: now,
            refresh_token: None,
            id_token: None,
            access_token: None,
            tokens_expire_at: None,
        }
    }
}

/// How long sessions live, from `[session]` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Inactivity that ends a session.
    pub idle_timeout: Duration,
    /// Age that ends a session, however active.
    pub absolute_timeout: Duration,
    /// The smallest step by which `last_seen` moves, so the cookie is not rewritten on every
    /// request.
    pub touch_interval: Duration,
}

impl From<&SessionConfig> for SessionPolicy {
    fn from(config: &SessionConfig) -> Self {
        Self {
            idle_timeout: config.idle_timeout,
            absolute_timeout: config.absolute_timeout,
            touch_interval: config.touch_interval,
        }
    }
}

/// Whether a session may still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Valid,
    IdleExpired,
    AbsoluteExpired,
}

/// The Unix second at which inactivity ends the session.
pub fn idle_deadline(session: &Session, policy: &SessionPolicy) -> u64 {
    session
        .last_seen
        .saturating_add(policy.idle_timeout.as_secs())
}

/// The Unix second at which age ends the session.
pub fn absolute_deadline(session: &Session, policy: &SessionPolicy) -> u64 {
    session
        .created_at
        .saturating_add(policy.absolute_timeout.as_secs())
}

/// Whether `session` is still usable at `now`. A deadline is exclusive: at the deadline the
/// session has ended. When both have passed the absolute one is reported, since activity
/// could not have saved the session.
pub fn check(session: &Session, now: u64, policy: &SessionPolicy) -> Validity {
    if now >= absolute_deadline(session, policy) {
        Validity::AbsoluteExpired
    } else if now >= idle_deadline(session, policy) {
        Validity::IdleExpired
    } else {
        Validity::Valid
    }
}

/// Slides the session for a request allowed at `now`. `last_seen` moves only when it is at
/// least `touch_interval` old, and then the answer is `true`: the cookie (or store entry) must
/// be rewritten. Otherwise nothing changes, so the session stays equal to what was stored.
///
/// A `last_seen` in the future (another replica's clock runs ahead) is left alone.
pub fn touch(session: &mut Session, now: u64, policy: &SessionPolicy) -> bool {
    let since = now.saturating_sub(session.last_seen);
    if now > session.last_seen && since >= policy.touch_interval.as_secs() {
        session.last_seen = now;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededRandom;

    const HOUR: u64 = 3600;

    fn policy() -> SessionPolicy {
        SessionPolicy {
            idle_timeout: Duration::from_secs(HOUR),
            absolute_timeout: Duration::from_secs(12 * HOUR),
            touch_interval: Duration::from_secs(60),
        }
    }

    fn session(created_at: u64, last_seen: u64) -> Session {
        let mut session = Session::start(&SeededRandom::new(1), "alice".into(), created_at);
        session.last_seen = last_seen;
        session
    }

    #[test]
    fn check_against_both_deadlines() {
        let t0 = 1_796_000_000;
        use Validity::*;
        // (created_at, last_seen, now, expected)
        let table = [
            (t0, t0, t0, Valid),
            (t0, t0, t0 + HOUR - 1, Valid),
            (t0, t0, t0 + HOUR, IdleExpired),
            (t0, t0, t0 + HOUR + 1, IdleExpired),
            // Active all along: only the absolute deadline ends it, exactly at 12 h.
            (t0, t0 + 11 * HOUR + 30 * 60, t0 + 12 * HOUR - 1, Valid),
            (
                t0,
                t0 + 11 * HOUR + 30 * 60,
                t0 + 12 * HOUR,
                AbsoluteExpired,
            ),
            // Both passed: the absolute deadline is the one reported.
            (t0, t0, t0 + 13 * HOUR, AbsoluteExpired),
            // A clock behind the one that wrote the session.
            (t0, t0 + 10, t0, Valid),
            // Far-future values saturate instead of overflowing.
            (u64::MAX - 5, u64::MAX - 5, u64::MAX - 1, Valid),
        ];
        for (created_at, last_seen, now, expected) in table {
            let got = check(&session(created_at, last_seen), now, &policy());
            assert_eq!(
                got, expected,
                "created {created_at} seen {last_seen} now {now}"
            );
        }
    }

    #[test]
    fn deadlines() {
        let s = session(1_000, 2_000);
        assert_eq!(idle_deadline(&s, &policy()), 2_000 + HOUR);
        assert_eq!(absolute_deadline(&s, &policy()), 1_000 + 12 * HOUR);
    }

    #[test]
    fn touch_moves_last_seen_only_every_touch_interval() {
        let t0 = 1_796_000_000;
        // (last_seen, now, rewrite, last_seen after)
        let table = [
            (t0, t0, false, t0),
            (t0, t0 + 59, false, t0),
            (t0, t0 + 60, true, t0 + 60),
            (t0, t0 + 3000, true, t0 + 3000),
            (t0 + 100, t0, false, t0 + 100),
        ];
        for (last_seen, now, rewrite, after) in table {
            let mut s = session(t0, last_seen);
            assert_eq!(
                touch(&mut s, now, &policy()),
                rewrite,
                "seen {last_seen} now {now}"
            );
            assert_eq!(s.last_seen, after);
        }
    }

    #[test]
    fn zero_touch_interval_rewrites_on_every_new_second() {
        let zero = SessionPolicy {
            touch_interval: Duration::ZERO,
            ..policy()
        };
        let mut s = session(10, 10);
        assert!(!touch(&mut s, 10, &zero), "same second: nothing to write");
        assert!(touch(&mut s, 11, &zero));
    }

    #[test]
    fn a_sliding_session_lives_until_the_absolute_deadline() {
        let t0 = 1_796_000_000;
        let mut s = session(t0, t0);
        let mut now = t0;
        while check(&s, now, &policy()) == Validity::Valid {
            touch(&mut s, now, &policy());
            now += 50 * 60;
        }
        assert_eq!(check(&s, now, &policy()), Validity::AbsoluteExpired);
        assert!(now >= t0 + 12 * HOUR && now < t0 + 12 * HOUR + 50 * 60);
    }

    #[test]
    fn session_id_debug_shows_a_prefix_only() {
        let id = SessionId::from_bytes([0xab; 16]);
        let shown = format!("{id:?}");
        assert_eq!(shown, "SessionId(abababab…)");
    }

    #[test]
    fn session_debug_redacts_tokens() {
        let mut s = session(1, 1);
        s.refresh_token = Some(Secret::new("rt-very-secret".into()));
        let shown = format!("{s:?}");
        assert!(!shown.contains("rt-very-secret"), "{shown}");
    }
}
