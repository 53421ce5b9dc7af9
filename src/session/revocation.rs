//! Sessions ended before their deadlines: by sign-out, by the provider (back-channel
//! logout), or by an operator. A stateless cookie cannot be taken back, so the gateway
//! remembers what was revoked and checks every session against it — in memory, with no
//! network round trip, for one replica.
//!
//! Entries are kept for `absolute_timeout` after they are made: after that no session they
//! could match can still be alive, so the set stays bounded by the revocations of one
//! absolute timeout. This module knows nothing of HTTP or OIDC.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::model::{Session, SessionId};

#[derive(Default)]
struct Entries {
    /// Session id → when the entry may go.
    sessions: HashMap<[u8; 16], u64>,
    /// The provider's session id → when the entry may go.
    idp_sessions: HashMap<String, u64>,
    /// Subject → (sessions created before this time are revoked, when the entry may go).
    subjects: HashMap<String, (u64, u64)>,
}

pub struct Revocations {
    keep: u64,
    entries: Mutex<Entries>,
}

impl Revocations {
    /// Keeps each entry for `absolute_timeout`.
    pub fn new(absolute_timeout: Duration) -> Self {
        Self {
            keep: absolute_timeout.as_secs(),
            entries: Mutex::new(Entries::default()),
        }
    }

    fn entries(&self, now: u64) -> std::sync::MutexGuard<'_, Entries> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.sessions.retain(|_, until| *until > now);
        entries.idp_sessions.retain(|_, until| *until > now);
        entries.subjects.retain(|_, (_, until)| *until > now);
        entries
    }

    /// Ends one session (sign-out).
    pub fn revoke_session(&self, id: &SessionId, now: u64) {
        self.entries(now)
            .sessions
            .insert(*id.as_bytes(), now + self.keep);
    }

    /// Ends every session of the provider's session `sid` (back-channel logout).
    pub fn revoke_idp_session(&self, sid: &str, now: u64) {
        self.entries(now)
            .idp_sessions
            .insert(sid.to_string(), now + self.keep);
    }

    /// Ends every session of `subject` created before `before`.
    pub fn revoke_subject(&self, subject: &str, before: u64, now: u64) {
        let mut entries = self.entries(now);
        let entry = entries
            .subjects
            .entry(subject.to_string())
            .or_insert((before, now + self.keep));
        *entry = (entry.0.max(before), now + self.keep);
    }

    pub fn is_revoked(&self, session: &Session, now: u64) -> bool {
        let entries = self.entries(now);
        entries.sessions.contains_key(session.id.as_bytes())
            || session
                .idp_sid
                .as_ref()
                .is_some_and(|sid| entries.idp_sessions.contains_key(sid))
            || entries
                .subjects
                .get(&session.subject)
                .is_some_and(|(before, _)| session.created_at < *before)
    }

    /// How many entries are held, for tests and metrics.
    pub fn len(&self, now: u64) -> usize {
        let entries = self.entries(now);
        entries.sessions.len() + entries.idp_sessions.len() + entries.subjects.len()
    }

    pub fn is_empty(&self, now: u64) -> bool {
        self.len(now) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededRandom;

    const HOUR: u64 = 3600;

    fn session(subject: &str, sid: Option<&str>, created_at: u64, seed: u64) -> Session {
        let mut session = Session::start(&SeededRandom::new(seed), subject.into(), created_at);
        session.idp_sid = sid.map(str::to_string);
        session
    }

    #[test]
    fn each_kind_of_revocation_matches_what_it_should() {
        let revocations = Revocations::new(Duration::from_secs(12 * HOUR));
        let alice = session("alice", Some("op-1"), 100, 1);
        let alice_later = session("alice", Some("op-2"), 500, 2);
        let bob = session("bob", Some("op-3"), 100, 3);
        assert!(!revocations.is_revoked(&alice, 200));

        revocations.revoke_session(&alice.id, 200);
        assert!(revocations.is_revoked(&alice, 200));
        assert!(!revocations.is_revoked(&alice_later, 200));

        revocations.revoke_idp_session("op-3", 200);
        assert!(revocations.is_revoked(&bob, 200));

        revocations.revoke_subject("alice", 400, 400);
        let alice_other = session("alice", None, 300, 4);
        assert!(
            revocations.is_revoked(&alice_other, 400),
            "created before the revocation"
        );
        assert!(
            !revocations.is_revoked(&alice_later, 600),
            "created after it"
        );
    }

    #[test]
    fn entries_go_once_no_session_they_match_can_be_alive() {
        let revocations = Revocations::new(Duration::from_secs(HOUR));
        let alice = session("alice", Some("op-1"), 0, 1);
        revocations.revoke_session(&alice.id, 10);
        revocations.revoke_idp_session("op-1", 10);
        revocations.revoke_subject("alice", 10, 10);
        assert_eq!(revocations.len(10), 3);
        assert_eq!(revocations.len(10 + HOUR), 0);
    }
}
