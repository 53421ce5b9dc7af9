//! What the outside world supplies and tests must control: wall-clock time and randomness.
//!
//! Session deadlines and JWT `exp`/`iat` are Unix seconds, which `tokio::time::pause` does not
//! move, so everything that needs "now" takes a [`Clock`]. Session ids, login state, PKCE
//! verifiers and AEAD nonces all come from a [`Random`], so tests can seed it. This module is
//! the only place that reads the system clock or the operating system's random source; it
//! knows nothing of what the time or the bytes are used for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Wall-clock time in Unix seconds.
pub trait Clock: Send + Sync {
    fn now(&self) -> u64;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one sanctioned reader of the system clock (clippy.toml bans it elsewhere).
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> u64 {
        // A clock set before 1970 is broken beyond what a gateway can fix; 0 makes every
        // session look expired rather than panicking.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    }
}

/// A clock that only moves when told to. Clones share one time, so a test can hand one to
/// the code under test and keep another to move it.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new(start: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(start)),
        }
    }

    /// Moves the time forward by whole seconds (sub-second parts are dropped).
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    pub fn set(&self, now: u64) {
        self.now.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// A source of random bytes.
pub trait Random: Send + Sync {
    /// Fills `dest` entirely.
    fn fill(&self, dest: &mut [u8]);
}

/// The operating system's random source.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, dest: &mut [u8]) {
        // Without randomness no session, state or nonce can be made safely; there is nothing
        // sensible to fall back to, and the panic stays within the one request.
        getrandom::fill(dest).expect("the operating system provides randomness");
    }
}

/// Deterministic bytes from a seed, for tests and benchmarks only: SHA-256 over
/// `seed | block counter`, so equal seeds give equal sequences and different seeds differ.
#[derive(Debug, Default)]
pub struct SeededRandom {
    seed: u64,
    next_block: AtomicU64,
}

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            next_block: AtomicU64::new(0),
        }
    }
}

impl Random for SeededRandom {
    fn fill(&self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            let block = self.next_block.fetch_add(1, Ordering::Relaxed);
            let digest = Sha256::new()
                .chain_update(self.seed.to_le_bytes())
                .chain_update(block.to_le_bytes())
                .finalize();
            chunk.copy_from_slice(&digest[..chunk.len()]);
        }
    }
}

/// `len` random bytes as base64url without padding: for state, nonces and PKCE verifiers.
pub fn random_token(random: &dyn Random, len: usize) -> String {
    let mut bytes = vec![0; len];
    random.fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_one_time() {
        let clock = ManualClock::new(1_000);
        let seen_by_code = clock.clone();
        clock.advance(Duration::from_secs(90));
        assert_eq!(seen_by_code.now(), 1_090);
        clock.set(5);
        assert_eq!(seen_by_code.now(), 5);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now() > 1_704_067_200);
    }

    #[test]
    fn seeded_random_repeats_per_seed_and_differs_across_seeds() {
        let draw = |seed| {
            let random = SeededRandom::new(seed);
            let mut bytes = [0u8; 70];
            random.fill(&mut bytes);
            bytes
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));

        let random = SeededRandom::new(1);
        let (mut first, mut second) = ([0u8; 16], [0u8; 16]);
        random.fill(&mut first);
        random.fill(&mut second);
        assert_ne!(first, second, "successive draws differ");
    }

    #[test]
    fn random_token_is_base64url_of_the_requested_length() {
        let token = random_token(&OsRandom, 32);
        assert_eq!(token.len(), 43);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(token, random_token(&OsRandom, 32));
    }
}
