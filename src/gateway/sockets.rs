//! The WebSockets each session opened, so that ending the session ends them too.
//!
//! A socket is authenticated once, at its handshake, and may then live for hours; without
//! this, signing out would leave every open socket working. Ending events this replica sees
//! (sign-out, a refused refresh) close the session's sockets at once; everything else — the
//! absolute and idle deadlines, back-channel and operator revocation, and, with the Redis
//! store, revocation on another replica — is found by a sweep that asks the store whether
//! each session with open sockets is still valid: every second, and at once after a
//! revocation here. With Redis that is one pipelined `EXISTS` per sweep, whatever the number
//! of events, with nothing to miss while a subscription reconnects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Random;
use crate::proxy::Ending;
use crate::session::model::{self, Session};
use crate::session::store::{Handle, SessionStore};

/// How often sessions with open sockets are checked.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct Owned {
    /// The session as it was last seen on this replica (its deadlines, its provider session).
    session: Session,
    handle: Handle,
    /// Cancelling it closes every socket of the session.
    token: CancellationToken,
    /// One per open socket; gone when the socket closed by itself.
    alive: Vec<Weak<()>>,
    /// Set by the sockets when the client sent a frame (`session.websocket_activity`).
    activity: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Why the session ended, for the sockets' metrics.
    reason: Arc<std::sync::OnceLock<&'static str>>,
}

#[derive(Default)]
pub(crate) struct Sockets {
    by_session: Mutex<HashMap<[u8; 16], Owned>>,
    wake: Notify,
}

impl Sockets {
    fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Owned>> {
        self.by_session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new socket of `session`: what will close it when the session ends. With
    /// `count_activity`, the client's frames slide the session.
    pub(crate) fn register(
        &self,
        session: &Session,
        handle: &Handle,
        count_activity: bool,
    ) -> Ending {
        let alive = Arc::new(());
        let mut owned = self.owned();
        let entry = owned
            .entry(*session.id.as_bytes())
            .or_insert_with(|| Owned {
                session: session.clone(),
                handle: handle.clone(),
                token: CancellationToken::new(),
                alive: Vec::new(),
                activity: None,
                reason: Arc::default(),
            });
        entry.session = session.clone();
        entry.alive.push(Arc::downgrade(&alive));
        if count_activity {
            entry.activity.get_or_insert_with(Default::default);
        }
        Ending {
            token: entry.token.clone(),
            alive,
            activity: entry.activity.clone(),
            reason: entry.reason.clone(),
        }
    }

    /// The session slid or was refreshed on this replica: its sockets go by the new state.
    pub(crate) fn seen(&self, session: &Session) {
        if let Some(entry) = self.owned().get_mut(session.id.as_bytes()) {
            entry.session = session.clone();
        }
    }

    /// Closes every socket of the session now.
    pub(crate) fn end(&self, session: &Session, reason: &'static str) {
        if let Some(entry) = self.owned().remove(session.id.as_bytes()) {
            tracing::info!(target: "sessiongate::websocket", reason, sockets = entry.alive.len(), "session ended: closing its WebSockets");
            let _ = entry.reason.set(reason);
            entry.token.cancel();
        }
    }

    /// Asks for a sweep now (after a revocation).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Slides the sessions whose sockets saw client frames, then closes the sockets of
    /// sessions the store no longer holds valid at `now`.
    pub(crate) async fn sweep(&self, store: &SessionStore, now: u64, random: &dyn Random) {
        let (sessions, active) = {
            let mut owned = self.owned();
            owned.retain(|_, entry| {
                entry.alive.retain(|socket| socket.strong_count() > 0);
                !entry.alive.is_empty()
            });
            let mut active = Vec::new();
            for entry in owned.values_mut() {
                let seen = entry
                    .activity
                    .as_ref()
                    .is_some_and(|a| a.swap(false, std::sync::atomic::Ordering::Relaxed));
                if seen && model::touch(&mut entry.session, now, store.policy()) {
                    active.push((entry.session.id, entry.handle.clone()));
                }
            }
            let sessions: Vec<(Session, Handle)> = owned
                .values()
                .map(|entry| (entry.session.clone(), entry.handle.clone()))
                .collect();
            (sessions, active)
        };
        for (id, handle) in active {
            self.slide_stored(store, id, &handle, now, random).await;
        }
        if sessions.is_empty() {
            return;
        }
        let verdicts = match store.still_valid(&sessions, now).await {
            Ok(verdicts) => verdicts,
            // The store being away is no proof of anything: the sockets stay.
            Err(e) => {
                tracing::debug!(error = %e, "cannot check the sessions of open WebSockets");
                return;
            }
        };
        for ((session, _), verdict) in sessions.iter().zip(verdicts) {
            if let Err(reason) = verdict {
                self.end(session, reason);
            }
        }
    }

    /// Socket activity slides the stored session too (Redis: the entry others read; a
    /// cookie cannot be re-issued over a socket, so there only the socket's view moves).
    async fn slide_stored(
        &self,
        store: &SessionStore,
        id: crate::session::SessionId,
        handle: &Handle,
        now: u64,
        random: &dyn Random,
    ) {
        let Ok(Some(mut stored)) = store.reload(handle).await else {
            return;
        };
        if stored.id == id && model::touch(&mut stored, now, store.policy()) {
            if let Err(e) = store.save(&stored, handle, now, random).await {
                tracing::debug!(error = %e, "WebSocket activity could not slide the session");
            }
        }
    }

    /// Sweeps every [`SWEEP_EVERY`] and whenever woken, until `stop`.
    pub(crate) async fn keep_sweeping(
        self: Arc<Self>,
        store: impl Fn() -> Arc<SessionStore> + Send,
        deps: crate::Deps,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(SWEEP_EVERY) => {}
                () = self.wake.notified() => {}
            }
            self.sweep(&store(), deps.clock.now(), deps.random.as_ref())
                .await;
        }
    }
}
