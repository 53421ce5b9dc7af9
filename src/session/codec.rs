//! The bytes of a [`Session`] inside the sealed envelope: a versioned, compact binary layout,
//! and a decoder that turns any bad input into a [`DecodeError`], never a panic.
//!
//! Why binary rather than JSON: tokens are most of a session, and they are base64url text.
//! Stored as text they are base64-encoded twice (once by the IdP, once by the cookie), so each
//! dot-separated base64url segment is stored decoded instead, which takes a quarter off every
//! token. Sealed cookie characters on the fixtures (refresh + ID token + header claims,
//! `tests/session_cookie_sizes.rs`), against serde_json with one-letter field names:
//! Azure AD B2C 3686 → 2730, Keycloak 2960 → 2223, Entra ID 7644 → 6048.
//! Deflate on top would take Keycloak to about 1400 and Entra ID to about 4050 (zlib
//! estimate), but it adds a dependency and inflate work to every request without changing any
//! chunk count, so it is left out; the version byte leaves room for it.
//!
//! Layout, version 1 (`varint` is unsigned LEB128, `str` and `bytes` are a varint length and
//! that many bytes):
//!
//! ```text
//! version u8 | id [16] | created_at varint | last_seen varint | present u8 (bit flags)
//! | subject str | idp_sid str? | tokens_expire_at varint? | refresh token? | id token?
//! | access token? | claims bytes (a JSON object)
//! token = segment count varint, then per segment: varint (length << 1 | decoded) and bytes
//! ```
//!
//! This module knows the session's fields and nothing of encryption, cookies or HTTP.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::model::{Claims, Session, SessionId};
use crate::secret::Secret;

/// The layout written by [`encode`].
pub const PAYLOAD_VERSION: u8 = 1;

const HAS_IDP_SID: u8 = 1 << 0;
const HAS_TOKENS_EXPIRE_AT: u8 = 1 << 1;
const HAS_REFRESH_TOKEN: u8 = 1 << 2;
const HAS_ID_TOKEN: u8 = 1 << 3;
const HAS_ACCESS_TOKEN: u8 = 1 << 4;
const KNOWN_FLAGS: u8 = (1 << 5) - 1;

/// JWS has 3 segments and JWE 5; a token with more is stored as one text segment.
const MAX_TOKEN_SEGMENTS: usize = 8;

/// Why bytes are not a session payload. Sealed payloads are authenticated, so this means a
/// bug or a layout from another version, not an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported session payload version {0}")]
    UnsupportedVersion(u8),
    #[error("session payload ends early")]
    Truncated,
    #[error("session payload has bytes after its end")]
    TrailingBytes,
    #[error("session payload is invalid: {0}")]
    Invalid(&'static str),
}

/// The payload of `session`.
pub fn encode(session: &Session) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len_estimate(session));
    out.push(PAYLOAD_VERSION);
    out.extend_from_slice(session.id.as_bytes());
    put_varint(&mut out, session.created_at);
    put_varint(&mut out, session.last_seen);

    let tokens = [
        (HAS_REFRESH_TOKEN, &session.refresh_token),
        (HAS_ID_TOKEN, &session.id_token),
        (HAS_ACCESS_TOKEN, &session.access_token),
    ];
    let mut present = 0;
    if session.idp_sid.is_some() {
        present |= HAS_IDP_SID;
    }
    if session.tokens_expire_at.is_some() {
        present |= HAS_TOKENS_EXPIRE_AT;
    }
    for (flag, token) in tokens {
        if token.is_some() {
            present |= flag;
        }
    }
    out.push(present);

    put_bytes(&mut out, session.subject.as_bytes());
    if let Some(sid) = &session.idp_sid {
        put_bytes(&mut out, sid.as_bytes());
    }
    if let Some(at) = session.tokens_expire_at {
        put_varint(&mut out, at);
    }
    for token in tokens.iter().filter_map(|(_, token)| token.as_ref()) {
        put_token(&mut out, token.expose());
    }
    let claims = serde_json::to_vec(&session.claims).expect("a map of JSON values serializes");
    put_bytes(&mut out, &claims);
    out
}

/// The session in `bytes`, or why not.
pub fn decode(bytes: &[u8]) -> Result<Session, DecodeError> {
    let mut r = Reader { rest: bytes };
    let version = r.byte()?;
    if version != PAYLOAD_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let id = SessionId::from_bytes(r.array()?);
    let created_at = r.varint()?;
    let last_seen = r.varint()?;
    let present = r.byte()?;
    if present & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::Invalid("unknown field flags"));
    }
    let has = |flag| present & flag != 0;

    let subject = r.string()?;
    let idp_sid = has(HAS_IDP_SID).then(|| r.string()).transpose()?;
    let tokens_expire_at = has(HAS_TOKENS_EXPIRE_AT).then(|| r.varint()).transpose()?;
    let mut token = |flag| has(flag).then(|| r.token().map(Secret::new)).transpose();
    let refresh_token = token(HAS_REFRESH_TOKEN)?;
    let id_token = token(HAS_ID_TOKEN)?;
    let access_token = token(HAS_ACCESS_TOKEN)?;
    let claims: Claims = serde_json::from_slice(r.bytes()?)
        .map_err(|_| DecodeError::Invalid("claims are not a JSON object"))?;
    if !r.rest.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(Session {
        id,
        subject,
        claims,
        idp_sid,
        created_at,
        last_seen,
        refresh_token,
        id_token,
        access_token,
        tokens_expire_at,
    })
}

/// An upper bound close enough to spare reallocations.
fn encoded_len_estimate(session: &Session) -> usize {
    let token_len = |t: &Option<Secret>| t.as_ref().map_or(0, |t| t.expose().len() + 16);
    64 + session.subject.len()
        + session.idp_sid.as_ref().map_or(0, String::len)
        + token_len(&session.refresh_token)
        + token_len(&session.id_token)
        + token_len(&session.access_token)
        + session.claims.len() * 48
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Each dot-separated segment that is canonical base64url is stored decoded (decoding it
/// again gives back exactly the same text); any other segment is stored as it is.
fn put_token(out: &mut Vec<u8>, token: &str) {
    let segments: Vec<&str> = token.split('.').collect();
    if segments.len() > MAX_TOKEN_SEGMENTS {
        put_varint(out, 1);
        put_segment(out, token.as_bytes(), false);
        return;
    }
    put_varint(out, segments.len() as u64);
    for segment in segments {
        match URL_SAFE_NO_PAD.decode(segment) {
            Ok(decoded) => put_segment(out, &decoded, true),
            Err(_) => put_segment(out, segment.as_bytes(), false),
        }
    }
}

fn put_segment(out: &mut Vec<u8>, bytes: &[u8], decoded: bool) {
    put_varint(out, ((bytes.len() as u64) << 1) | u64::from(decoded));
    out.extend_from_slice(bytes);
}

/// Reads from the front of a byte slice; every read checks what is left first.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError::Invalid("varint overflows 64 bits"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid("varint longer than 10 bytes"))
    }

    /// A length that cannot exceed what is left, so no allocation is sized by a bad varint.
    fn len(&mut self) -> Result<usize, DecodeError> {
        let len = self.varint()?;
        usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.rest.len())
            .ok_or(DecodeError::Truncated)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.len()?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid("text is not UTF-8"))
    }

    fn token(&mut self) -> Result<String, DecodeError> {
        let count = self.varint()?;
        if count == 0 || count > MAX_TOKEN_SEGMENTS as u64 {
            return Err(DecodeError::Invalid("token segment count"));
        }
        let mut token = String::new();
        for i in 0..count {
            if i > 0 {
                token.push('.');
            }
            let header = self.varint()?;
            let len = usize::try_from(header >> 1).map_err(|_| DecodeError::Truncated)?;
            let bytes = self.take(len)?;
            if header & 1 == 1 {
                URL_SAFE_NO_PAD.encode_string(bytes, &mut token);
            } else {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| DecodeError::Invalid("token text is not UTF-8"))?;
                token.push_str(text);
            }
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Random as _, SeededRandom};
    use serde_json::json;

    fn full_session() -> Session {
        let mut s = Session::start(&SeededRandom::new(3), "1aa0b971-92dd".into(), 1_796_000_000);
        s.last_seen = 1_796_003_000;
        s.idp_sid = Some("2fe81809".into());
        s.tokens_expire_at = Some(1_796_000_300);
        s.claims.insert("email".into(), json!("bob@example.com"));
        s.claims
            .insert("groups".into(), json!(["/staff", "/staff/finance"]));
        s.claims
            .insert("realm_access".into(), json!({"roles": ["editor"]}));
        s.refresh_token = Some(Secret::new("eyJhbGciOiJIUzUxMiJ9.eyJleHAiOjB9.c2ln".into()));
        s.id_token = Some(Secret::new(
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl".into(),
        ));
        s.access_token = Some(Secret::new("1.Ak-yp+/not~base64==.x..".into()));
        s
    }

    #[test]
    fn round_trips() {
        let full = full_session();
        assert_eq!(decode(&encode(&full)).unwrap(), full);
        let bare = Session::start(&SeededRandom::new(4), String::new(), 0);
        assert_eq!(decode(&encode(&bare)).unwrap(), bare);
        let mut extremes = bare.clone();
        extremes.created_at = u64::MAX;
        extremes.last_seen = u64::MAX;
        extremes.tokens_expire_at = Some(u64::MAX);
        assert_eq!(decode(&encode(&extremes)).unwrap(), extremes);
    }

    #[test]
    fn tokens_of_any_shape_come_back_exactly() {
        let shapes = [
            "",
            ".",
            "..",
            "a",
            "ab",
            "abc",
            "abcd",
            "ab=",
            "AB", // non-canonical trailing bits: stored as text
            "a.b.c.d.e.f.g.h.i.j",
            "opaque+token/with=padding==",
            "üñí.çødé",
            "eyJhbGciOiJSUzI1NiJ9..sig",
        ];
        for shape in shapes {
            let mut s = Session::start(&SeededRandom::new(5), "s".into(), 1);
            s.refresh_token = Some(Secret::new(shape.into()));
            let back = decode(&encode(&s)).unwrap();
            assert_eq!(back.refresh_token.unwrap().expose(), shape);
        }
    }

    #[test]
    fn base64url_segments_shrink_by_a_quarter() {
        let mut s = Session::start(&SeededRandom::new(5), "s".into(), 1);
        let before = encode(&s).len();
        let segment = "A".repeat(1200);
        s.id_token = Some(Secret::new(format!("{segment}.{segment}.{segment}")));
        let added = encode(&s).len() - before;
        assert!(added < 3 * 900 + 16, "{added}");
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        let bytes = encode(&full_session());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn altered_bytes_never_panic() {
        let bytes = encode(&full_session());
        for at in 0..bytes.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff, bytes[at] ^ 0x40] {
                let mut altered = bytes.clone();
                altered[at] = value;
                let _ = decode(&altered);
            }
        }
        let random = SeededRandom::new(9);
        for len in 0..300 {
            let mut garbage = vec![0; len];
            random.fill(&mut garbage);
            if let Some(first) = garbage.first_mut() {
                *first = PAYLOAD_VERSION;
            }
            let _ = decode(&garbage);
        }
    }

    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        let mut bytes = vec![PAYLOAD_VERSION];
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&[0, 0, 0]); // created_at, last_seen, flags
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(decode(&bytes), Err(DecodeError::Truncated));

        let mut overlong = vec![PAYLOAD_VERSION];
        overlong.extend_from_slice(&[0; 16]);
        overlong.extend_from_slice(&[0xff; 11]);
        assert!(matches!(decode(&overlong), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn other_versions_and_flags_are_refused() {
        let mut bytes = encode(&full_session());
        bytes[0] = 2;
        assert_eq!(decode(&bytes), Err(DecodeError::UnsupportedVersion(2)));

        let bare = Session::start(&SeededRandom::new(4), String::new(), 0);
        let mut bytes = encode(&bare);
        let flags_at = 1 + 16 + 1 + 1;
        bytes[flags_at] = 0x80;
        assert!(matches!(decode(&bytes), Err(DecodeError::Invalid(_))));
    }
}
