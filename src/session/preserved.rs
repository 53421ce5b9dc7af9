//! A form post kept while its user signs in again, so a postback after the idle timeout
//! loses nothing. The record is sealed with a key of its own that only the browser holds
//! (in its login-state cookie, then in the replay page), kept for as long as the login may
//! take, bound to the new session when the login succeeds, and given out once.

use super::{hex, seal};
use crate::clock::Random;

/// What the application would have received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreservedPost {
    /// Path and query, as the form posted them.
    pub target: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// How the browser names its kept post: the record's id and the key it is sealed with.
#[derive(Clone, PartialEq, Eq)]
pub struct PostToken {
    pub id: [u8; 16],
    key: [u8; 32],
}

impl std::fmt::Debug for PostToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostToken([redacted])")
    }
}

impl PostToken {
    pub fn new(random: &dyn Random) -> Self {
        let mut id = [0; 16];
        let mut key = [0; 32];
        random.fill(&mut id);
        random.fill(&mut key);
        Self { id, key }
    }

    /// 96 hex characters: safe in a cookie, a form field and a Redis key.
    pub fn encode(&self) -> String {
        hex(&self.id) + &hex(&self.key)
    }

    pub fn decode(text: &str) -> Option<Self> {
        if text.len() != 96 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let bytes: Vec<u8> = (0..48)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<_>>()?;
        Some(Self {
            id: bytes[..16].try_into().ok()?,
            key: bytes[16..].try_into().ok()?,
        })
    }

    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }

    pub fn seal(&self, post: &PreservedPost, random: &dyn Random) -> Vec<u8> {
        let mut plain =
            Vec::with_capacity(8 + post.target.len() + post.content_type.len() + post.body.len());
        for field in [post.target.as_bytes(), post.content_type.as_bytes()] {
            plain.extend_from_slice(&(field.len() as u32).to_be_bytes());
            plain.extend_from_slice(field);
        }
        plain.extend_from_slice(&post.body);
        seal::seal_with_key(&self.key, &self.aad(), &plain, random)
    }

    pub fn open(&self, sealed: &[u8]) -> Option<PreservedPost> {
        let plain = seal::open_with_key(&self.key, &self.aad(), sealed).ok()?;
        let mut rest = plain.as_slice();
        let mut field = || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = u32::from_be_bytes(*len) as usize;
            let (value, tail) = (tail.get(..len)?, tail.get(len..)?);
            rest = tail;
            String::from_utf8(value.to_vec()).ok()
        };
        let target = field()?;
        let content_type = field()?;
        Some(PreservedPost {
            target,
            content_type,
            body: rest.to_vec(),
        })
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = b"sessiongate/v1/preserved-post/".to_vec();
        aad.extend_from_slice(&self.id);
        aad
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededRandom;

    #[test]
    fn a_post_round_trips_only_with_its_own_token() {
        let random = SeededRandom::new(5);
        let post = PreservedPost {
            target: "/orders/edit.aspx?id=7".into(),
            content_type: "multipart/form-data; boundary=x".into(),
            body: b"--x\r\ncontent\r\n--x--".to_vec(),
        };
        let token = PostToken::new(&random);
        let sealed = token.seal(&post, &random);
        assert_eq!(token.open(&sealed), Some(post.clone()));
        assert_eq!(PostToken::new(&random).open(&sealed), None);
        let decoded = PostToken::decode(&token.encode()).expect("decodes");
        assert_eq!(decoded, token);
        assert_eq!(PostToken::decode("zz"), None);
        assert!(!sealed.windows(6).any(|w| w == b"orders"), "sealed");
    }
}
