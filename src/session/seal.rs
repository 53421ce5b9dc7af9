//! Sealing bytes into a cookie value and opening them again: the [`KeyRing`] of secrets, the
//! keys derived per purpose, and the versioned envelope
//!
//! ```text
//! base64url( version (1) | key id (4) | nonce (24) | XChaCha20-Poly1305 ciphertext + tag (16) )
//! ```
//!
//! The associated data binds the version, the key id, the [`Purpose`] and the cookie name, so a
//! value opens only where it was sealed for. The first secret seals, every secret opens, and
//! the key id picks the one secret to try, so secrets rotate without logging anyone out.
//!
//! This module sees opaque bytes: it knows nothing of what a session holds, of chunking or of
//! HTTP.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::clock::Random;
use crate::secret::KeyMaterial;

/// The envelope layout written by this code. A new layout gets a new number, and the old one
/// keeps opening for as long as its cookies can still be alive.
pub const FORMAT_VERSION: u8 = 1;

const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// The shortest envelope: an empty plaintext.
const MIN_SEALED_BYTES: usize = HEADER_LEN + TAG_LEN;

/// The longest sealed value `open` looks at, in base64url characters: more than eight full
/// cookie chunks, so nothing legitimate is refused, and small enough that a hostile value
/// costs little to reject.
pub const MAX_SEALED_LEN: usize = 32 * 1024;

/// What a sealed value is for. Each purpose gets its own key from every secret, so a value
/// sealed for one can never be opened as the other, even under the same cookie name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Session,
    LoginState,
    /// The Redis store's cookie: a session id and the key of its entry.
    Ticket,
}

impl Purpose {
    const ALL: [Purpose; 3] = [Purpose::Session, Purpose::LoginState, Purpose::Ticket];

    fn label(self) -> &'static str {
        match self {
            Purpose::Session => "session",
            Purpose::LoginState => "login-state",
            Purpose::Ticket => "ticket",
        }
    }

    fn index(self) -> usize {
        match self {
            Purpose::Session => 0,
            Purpose::LoginState => 1,
            Purpose::Ticket => 2,
        }
    }
}

/// Why a ring could not be built from the configured secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("no secret to seal with")]
    Empty,
    #[error("secrets {first} and {second} derive the same key id; replace one of them")]
    KeyIdCollision { first: usize, second: usize },
}

/// Why a value did not open. None of them is the server's fault: the caller treats the
/// cookie as absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not something this code could have written: bad length or not base64url.
    #[error("malformed sealed value: {0}")]
    Malformed(&'static str),
    /// Written by a newer (or much older) gateway.
    #[error("unsupported sealed-value version {0}")]
    UnsupportedVersion(u8),
    /// Sealed with a secret no longer (or never) in the ring.
    #[error("sealed with an unknown key")]
    UnknownKey,
    /// The tag does not match: altered, truncated, or moved to another cookie or purpose.
    #[error("sealed value fails authentication")]
    Forged,
}

/// The secrets, each turned into a key id and one AEAD key per purpose.
pub struct KeyRing {
    /// In configured order: the first seals.
    keys: Vec<RingKey>,
}

struct RingKey {
    id: [u8; KEY_ID_LEN],
    /// Indexed by [`Purpose::index`].
    ciphers: [XChaCha20Poly1305; Purpose::ALL.len()],
}

impl RingKey {
    fn derive(secret: &KeyMaterial) -> Self {
        // The secrets are at least 32 random bytes (config checks), so HKDF-Extract only
        // needs a fixed salt for domain separation.
        let hkdf = Hkdf::<Sha256>::new(Some(b"sessiongate"), secret.expose());
        let mut id = [0; KEY_ID_LEN];
        expand(&hkdf, &[b"sessiongate/v1/key-id"], &mut id);
        let ciphers = Purpose::ALL.map(|purpose| {
            let mut key = [0; 32];
            expand(
                &hkdf,
                &[b"sessiongate/v1/seal/", purpose.label().as_bytes()],
                &mut key,
            );
            XChaCha20Poly1305::new(&key.into())
        });
        Self { id, ciphers }
    }
}

fn expand(hkdf: &Hkdf<Sha256>, info: &[&[u8]], out: &mut [u8]) {
    hkdf.expand_multi_info(info, out)
        .expect("HKDF-SHA256 can expand 32 bytes");
}

impl KeyRing {
    /// Derives the keys. A secret listed twice is the same key and is kept once.
    pub fn new(secrets: &[KeyMaterial]) -> Result<Self, KeyRingError> {
        let mut keys: Vec<RingKey> = Vec::with_capacity(secrets.len());
        let mut seen: Vec<&KeyMaterial> = Vec::with_capacity(secrets.len());
        for (index, secret) in secrets.iter().enumerate() {
            let key = RingKey::derive(secret);
            if let Some(first) = keys.iter().position(|k| k.id == key.id) {
                if seen[first] == secret {
                    continue;
                }
                return Err(KeyRingError::KeyIdCollision {
                    first,
                    second: index,
                });
            }
            keys.push(key);
            seen.push(secret);
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(Self { keys })
    }

    /// Encrypts `plaintext` for `purpose` under `cookie_name` with the first secret.
    pub fn seal(
        &self,
        purpose: Purpose,
        cookie_name: &str,
        plaintext: &[u8],
        random: &dyn Random,
    ) -> String {
        let key = &self.keys[0];
        let mut envelope = Vec::with_capacity(MIN_SEALED_BYTES + plaintext.len());
        envelope.push(FORMAT_VERSION);
        envelope.extend_from_slice(&key.id);
        let mut nonce = [0; NONCE_LEN];
        random.fill(&mut nonce);
        envelope.extend_from_slice(&nonce);
        envelope.extend_from_slice(plaintext);

        let aad = associated_data(FORMAT_VERSION, &key.id, purpose, cookie_name);
        let tag = key.ciphers[purpose.index()]
            .encrypt_inout_detached(
                &XNonce::from(nonce),
                &aad,
                envelope[HEADER_LEN..].as_mut().into(),
            )
            .expect("XChaCha20-Poly1305 seals any cookie-sized plaintext");
        envelope.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(envelope)
    }

    /// Decrypts a value sealed by [`KeyRing::seal`] with the same purpose and cookie name.
    /// Every length is checked before anything is decoded or decrypted; no input panics.
    pub fn open(
        &self,
        purpose: Purpose,
        cookie_name: &str,
        sealed: &str,
    ) -> Result<Vec<u8>, OpenError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(OpenError::Malformed("too long"));
        }
        if sealed.len() < base64_len(MIN_SEALED_BYTES) {
            return Err(OpenError::Malformed("too short"));
        }
        let mut envelope = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| OpenError::Malformed("not base64url"))?;
        if envelope.len() < MIN_SEALED_BYTES {
            return Err(OpenError::Malformed("too short"));
        }

        let version = envelope[0];
        if version != FORMAT_VERSION {
            return Err(OpenError::UnsupportedVersion(version));
        }
        let id: [u8; KEY_ID_LEN] = envelope[1..1 + KEY_ID_LEN]
            .try_into()
            .expect("the length was checked");
        let key = self
            .keys
            .iter()
            .find(|key| key.id == id)
            .ok_or(OpenError::UnknownKey)?;
        let nonce = XNonce::try_from(&envelope[1 + KEY_ID_LEN..HEADER_LEN])
            .expect("the length was checked");
        let tag_at = envelope.len() - TAG_LEN;
        let tag = Tag::try_from(&envelope[tag_at..]).expect("the length was checked");

        let aad = associated_data(version, &id, purpose, cookie_name);
        key.ciphers[purpose.index()]
            .decrypt_inout_detached(
                &nonce,
                &aad,
                envelope[HEADER_LEN..tag_at].as_mut().into(),
                &tag,
            )
            .map_err(|_| OpenError::Forged)?;
        envelope.truncate(tag_at);
        envelope.drain(..HEADER_LEN);
        Ok(envelope)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRing({} keys, [redacted])", self.keys.len())
    }
}

/// Encrypts `plaintext` under a one-off 256-bit `key` (a Redis entry's), bound to `aad`:
/// `nonce (24) | ciphertext | tag (16)`.
pub fn seal_with_key(key: &[u8; 32], aad: &[u8], plaintext: &[u8], random: &dyn Random) -> Vec<u8> {
    let mut nonce = [0; NONCE_LEN];
    random.fill(&mut nonce);
    let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    let tag = XChaCha20Poly1305::new(key.into())
        .encrypt_inout_detached(
            &XNonce::from(nonce),
            aad,
            sealed[NONCE_LEN..].as_mut().into(),
        )
        .expect("XChaCha20-Poly1305 seals any session-sized plaintext");
    sealed.extend_from_slice(&tag);
    sealed
}

/// Decrypts what [`seal_with_key`] wrote with the same key and `aad`.
pub fn open_with_key(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed("too short"));
    }
    let nonce = XNonce::try_from(&sealed[..NONCE_LEN]).expect("the length was checked");
    let tag_at = sealed.len() - TAG_LEN;
    let tag = Tag::try_from(&sealed[tag_at..]).expect("the length was checked");
    let mut plaintext = sealed[NONCE_LEN..tag_at].to_vec();
    XChaCha20Poly1305::new(key.into())
        .decrypt_inout_detached(&nonce, aad, plaintext.as_mut_slice().into(), &tag)
        .map_err(|_| OpenError::Forged)?;
    Ok(plaintext)
}

/// `version | key id | purpose length | purpose | cookie name`. The purpose has a length
/// prefix so no purpose and cookie name can run into another pair.
fn associated_data(version: u8, id: &[u8; KEY_ID_LEN], purpose: Purpose, name: &str) -> Vec<u8> {
    let label = purpose.label().as_bytes();
    let mut aad = Vec::with_capacity(1 + KEY_ID_LEN + 1 + label.len() + name.len());
    aad.push(version);
    aad.extend_from_slice(id);
    aad.push(label.len() as u8);
    aad.extend_from_slice(label);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Characters of unpadded base64 for `bytes` bytes.
const fn base64_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededRandom;

    fn secret(byte: u8) -> KeyMaterial {
        KeyMaterial::new(vec![byte; 32]).expect("32 bytes")
    }

    fn ring(bytes: &[u8]) -> KeyRing {
        let secrets: Vec<_> = bytes.iter().map(|&b| secret(b)).collect();
        KeyRing::new(&secrets).expect("distinct secrets")
    }

    const NAME: &str = "__Host-sessiongate";

    fn sealed(ring: &KeyRing, plaintext: &[u8]) -> String {
        ring.seal(Purpose::Session, NAME, plaintext, &SeededRandom::new(7))
    }

    #[test]
    fn round_trip_including_empty_plaintext() {
        let ring = ring(&[1]);
        for plaintext in [&b""[..], b"x", &[0xff; 5000]] {
            let value = sealed(&ring, plaintext);
            assert_eq!(
                ring.open(Purpose::Session, NAME, &value).unwrap(),
                plaintext
            );
        }
    }

    #[test]
    fn layout_is_version_key_id_nonce_ciphertext_tag() {
        let value = sealed(&ring(&[1]), b"hello");
        let bytes = URL_SAFE_NO_PAD.decode(&value).unwrap();
        assert_eq!(bytes.len(), MIN_SEALED_BYTES + 5);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(&bytes[1..5], &RingKey::derive(&secret(1)).id);
        assert_ne!(
            &bytes[1..5],
            &[1; 4],
            "the id is derived, not the key itself"
        );
        assert!(!value.contains('='), "no padding");
    }

    #[test]
    fn nonces_differ_between_seals() {
        let ring = ring(&[1]);
        let random = SeededRandom::new(1);
        let a = ring.seal(Purpose::Session, NAME, b"same", &random);
        let b = ring.seal(Purpose::Session, NAME, b"same", &random);
        assert_ne!(a, b);
    }

    #[test]
    fn rotation_opens_old_values_and_seals_with_the_new_secret() {
        let old = ring(&[1]);
        let value = sealed(&old, b"payload");
        let rotated = ring(&[2, 1]);
        assert_eq!(
            rotated.open(Purpose::Session, NAME, &value).unwrap(),
            b"payload"
        );
        let fresh = sealed(&rotated, b"payload");
        assert_eq!(
            old.open(Purpose::Session, NAME, &fresh),
            Err(OpenError::UnknownKey)
        );
        assert_eq!(
            ring(&[3]).open(Purpose::Session, NAME, &value),
            Err(OpenError::UnknownKey)
        );
    }

    #[test]
    fn an_unrelated_secret_with_the_same_key_id_still_fails() {
        // Forge the key id of secret 1 onto a value sealed with secret 3: picked by id, the
        // wrong key is tried and the tag fails.
        let value = sealed(&ring(&[3]), b"payload");
        let mut bytes = URL_SAFE_NO_PAD.decode(&value).unwrap();
        bytes[1..5].copy_from_slice(&RingKey::derive(&secret(1)).id);
        let moved = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            ring(&[1]).open(Purpose::Session, NAME, &moved),
            Err(OpenError::Forged)
        );
    }

    #[test]
    fn a_value_moved_to_another_cookie_name_or_purpose_fails() {
        let ring = ring(&[1]);
        let value = sealed(&ring, b"payload");
        assert_eq!(
            ring.open(Purpose::Session, "sessiongate", &value),
            Err(OpenError::Forged)
        );
        assert_eq!(
            ring.open(Purpose::LoginState, NAME, &value),
            Err(OpenError::Forged)
        );
    }

    #[test]
    fn every_flipped_byte_and_bit_is_refused() {
        let ring = ring(&[1]);
        let value = sealed(&ring, b"a small session payload");
        // Every bit of the envelope.
        let bytes = URL_SAFE_NO_PAD.decode(&value).unwrap();
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut altered = bytes.clone();
                altered[at] ^= 1 << bit;
                let text = URL_SAFE_NO_PAD.encode(&altered);
                assert!(
                    ring.open(Purpose::Session, NAME, &text).is_err(),
                    "byte {at} bit {bit}"
                );
            }
        }
        // Every character of the cookie text, replaced by every other byte value.
        for at in 0..value.len() {
            for replacement in 0..=255u8 {
                let mut altered = value.clone().into_bytes();
                if altered[at] == replacement {
                    continue;
                }
                altered[at] = replacement;
                let text = String::from_utf8_lossy(&altered);
                assert!(
                    ring.open(Purpose::Session, NAME, &text).is_err(),
                    "char {at} -> {replacement}"
                );
            }
        }
    }

    #[test]
    fn truncations_and_garbage_are_refused() {
        let ring = ring(&[1]);
        let value = sealed(&ring, b"payload");
        for len in 0..value.len() {
            assert!(ring.open(Purpose::Session, NAME, &value[..len]).is_err());
        }
        let huge = "A".repeat(MAX_SEALED_LEN + 1);
        let malformed = [
            "",
            "not base64 at all, not at all, not at all, not at all, not at all!",
            &format!("{value}="),
            &format!("{value}A"),
            &value.replace('-', "+").replace('_', "/"),
            &"A".repeat(MAX_SEALED_LEN),
            &huge,
            "\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}\u{1F36A}",
        ];
        for input in malformed {
            assert!(
                ring.open(Purpose::Session, NAME, input).is_err(),
                "{}",
                &input[..input.len().min(40)]
            );
        }
        assert_eq!(
            ring.open(Purpose::Session, NAME, &huge),
            Err(OpenError::Malformed("too long"))
        );
    }

    #[test]
    fn another_version_is_reported_as_such() {
        let ring = ring(&[1]);
        let mut bytes = URL_SAFE_NO_PAD.decode(sealed(&ring, b"p")).unwrap();
        bytes[0] = 2;
        assert_eq!(
            ring.open(Purpose::Session, NAME, &URL_SAFE_NO_PAD.encode(bytes)),
            Err(OpenError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn ring_setup() {
        assert_eq!(KeyRing::new(&[]).err(), Some(KeyRingError::Empty));
        let twice = KeyRing::new(&[secret(1), secret(1), secret(2)]).unwrap();
        assert_eq!(twice.keys.len(), 2, "a repeated secret is kept once");
        let shown = format!("{twice:?}");
        assert_eq!(shown, "KeyRing(2 keys, [redacted])");
    }
}
