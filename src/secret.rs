//! Values that must never reach a log line. Their `Debug` prints `[redacted]`, and none of
//! them implements `Display`, so a secret cannot be formatted into a message by accident.

use std::fmt;

/// A textual secret: a client secret, a Redis URL with a password in it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that sends it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Key material for sealing sessions: at least 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(Vec<u8>);

impl KeyMaterial {
    /// The smallest key accepted, in bytes.
    pub const MIN_LEN: usize = 32;

    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= Self::MIN_LEN).then_some(Self(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial([redacted])")
    }
}

/// Compares two secrets without an early exit, so the time taken says nothing about where
/// they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2-client-secret".to_string());
        let key = KeyMaterial::new(vec![7; 32]).expect("32 bytes is enough");
        let shown = format!("{secret:?} {key:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains('7'), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(KeyMaterial::new(vec![0; 31]).is_none());
    }
}
