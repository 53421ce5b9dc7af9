//! How a sealed value travels in HTTP headers: the cookie's name and attributes, `Set-Cookie`
//! values to write or clear it, and reading it back out of `Cookie` headers, split into
//! numbered chunks when it is too long for one cookie.
//!
//! Chunk naming: the base cookie (`<name>`) always exists. It holds the whole value, or, when
//! the value is split into `n` parts, `n.` followed by the first part; parts 2..n are the
//! cookies `<name>.1` .. `<name>.{n-1}`. A sealed value is base64url and never contains `.`,
//! so the base cookie says unambiguously how many chunks to read: a missing chunk fails the
//! read, and a stale chunk left over from a longer value is ignored (and cleared on the next
//! write, which is told which chunks the request carried).
//!
//! This module treats the value as opaque text: it knows nothing of sealing or sessions.

use cookie::{Cookie, SameSite};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

/// The most characters one cookie's value may hold. Browsers keep at least 4096 bytes of
/// name, value and attributes per cookie; this leaves room for the rest.
pub const CHUNK_LEN: usize = 3800;

/// The most cookies one value may take. Eight chunks are about 30 KB, which many servers'
/// header limits already refuse; a value needing more is refused when written, and a request
/// naming more is refused when read.
pub const MAX_CHUNKS: usize = 8;

// The chunk count is written as one digit in front of the first part.
const _: () = assert!(MAX_CHUNKS <= 9);

/// The prefix that makes a browser insist on `Secure`, `Path=/` and no `Domain`, so neither
/// a sibling subdomain nor plain http can plant or overwrite the cookie (RFC 6265bis §4.1.3.2).
const HOST_PREFIX: &str = "__Host-";

/// Browsers cap `Max-Age` at 400 days (RFC 6265bis §5.6.2).
const MAX_AGE_CAP: u64 = 400 * 24 * 3600;

/// How the gateway is reached from the browser, from `server.public_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn of(url: &url::Url) -> Self {
        if url.scheme() == "https" {
            Scheme::Https
        } else {
            Scheme::Http
        }
    }
}

/// Why a cookie name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieNameError {
    #[error("cookie name {0:?} is not an RFC 6265 token")]
    NotAToken(String),
    #[error("cookie name {0:?} has a prefix that needs https")]
    PrefixNeedsHttps(String),
}

/// A value [`ChunkedCookie::set`] cannot store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("a {len}-character cookie value needs more than {max} cookies", max = MAX_CHUNKS)]
    TooLarge { len: usize },
    /// Only base64url is stored, which is what keeps the chunk count prefix unambiguous.
    #[error("a cookie value must be base64url")]
    NotBase64Url,
}

/// Why the cookies in a request do not add up to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("the base cookie has a bad chunk count")]
    BadCount,
    #[error("chunk {0} is missing")]
    MissingChunk(usize),
    #[error("a chunk is longer than any this gateway writes")]
    Oversized,
}

/// Which of this cookie's names a request carried: bit 0 the base cookie, bit `i` chunk `i`.
/// Passed from a read to the next write, so stale chunks get cleared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried(u16);

impl Carried {
    fn mark(&mut self, index: usize) {
        self.0 |= 1 << index;
    }

    pub fn contains(self, index: usize) -> bool {
        index < 16 && self.0 & (1 << index) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What a request's `Cookie` headers held under this cookie's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// The reassembled value; `Ok(None)` when there is no base cookie.
    pub value: Result<Option<String>, ChunkError>,
    pub carried: Carried,
}

/// One logical cookie, possibly written as several.
#[derive(Debug, Clone)]
pub struct ChunkedCookie {
    /// The base name, `__Host-` prefix included.
    name: String,
    secure: bool,
}

impl ChunkedCookie {
    /// On https the name gets the `__Host-` prefix (unless it has it already) and every
    /// cookie is `Secure`; on plain http (loopback only) it stays as configured.
    pub fn new(name: &str, scheme: Scheme) -> Result<Self, CookieNameError> {
        if name.is_empty() || !name.bytes().all(crate::config::is_cookie_name_byte) {
            return Err(CookieNameError::NotAToken(name.to_string()));
        }
        let prefixed = name.starts_with(HOST_PREFIX) || name.starts_with("__Secure-");
        match scheme {
            Scheme::Https if prefixed => Ok(Self::with(name.to_string(), true)),
            Scheme::Https => Ok(Self::with(format!("{HOST_PREFIX}{name}"), true)),
            Scheme::Http if prefixed => Err(CookieNameError::PrefixNeedsHttps(name.to_string())),
            Scheme::Http => Ok(Self::with(name.to_string(), false)),
        }
    }

    fn with(name: String, secure: bool) -> Self {
        Self { name, secure }
    }

    /// The base cookie's name, which is also what a sealed value is bound to.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn chunk_name(&self, index: usize) -> String {
        if index == 0 {
            self.name.clone()
        } else {
            format!("{}.{index}", self.name)
        }
    }

    /// `Set-Cookie` values that store `value` for `max_age` seconds, and clear every chunk
    /// the request carried that the new value no longer uses.
    pub fn set(
        &self,
        value: &str,
        max_age: u64,
        carried: Carried,
    ) -> Result<Vec<HeaderValue>, ValueError> {
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ValueError::NotBase64Url);
        }
        let parts = split(value)?;
        let count = parts.len();
        let mut headers = Vec::with_capacity(count + 1);
        for (index, part) in parts.iter().enumerate() {
            let value = if count > 1 && index == 0 {
                format!("{count}.{part}")
            } else {
                (*part).to_string()
            };
            headers.push(self.set_cookie(self.chunk_name(index), value, max_age));
        }
        for index in count..MAX_CHUNKS {
            if carried.contains(index) {
                headers.push(self.set_cookie(self.chunk_name(index), String::new(), 0));
            }
        }
        Ok(headers)
    }

    /// `Set-Cookie` values that delete the base cookie and every chunk the request carried.
    pub fn clear(&self, carried: Carried) -> Vec<HeaderValue> {
        (0..MAX_CHUNKS)
            .filter(|&index| index == 0 || carried.contains(index))
            .map(|index| self.set_cookie(self.chunk_name(index), String::new(), 0))
            .collect()
    }

    fn set_cookie(&self, name: String, value: String, max_age: u64) -> HeaderValue {
        let max_age = i64::try_from(max_age.min(MAX_AGE_CAP)).expect("capped to 400 days");
        let cookie = Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .path("/")
            .max_age(cookie::time::Duration::seconds(max_age))
            .build();
        HeaderValue::try_from(cookie.to_string())
            .expect("the name is a checked token and the value base64url")
    }

    /// Reads this cookie from every `Cookie` header, in any order. When a name occurs more
    /// than once the first occurrence wins; unparseable pairs and non-ASCII headers are
    /// skipped.
    pub fn collect(&self, headers: &HeaderMap) -> Collected {
        let mut found: [Option<&str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
        let mut carried = Carried::default();
        let pairs = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|header| header.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok);
        for pair in pairs {
            let (Some(name), Some(value)) = (pair.name_raw(), pair.value_raw()) else {
                continue;
            };
            if let Some(index) = self.index_of(name) {
                carried.mark(index);
                if found[index].is_none() {
                    found[index] = Some(value);
                }
            }
        }
        Collected {
            value: reassemble(&found),
            carried,
        }
    }

    /// 0 for the base name, `i` for `<name>.i` with `i` in 1..MAX_CHUNKS, written the way
    /// `chunk_name` writes it.
    fn index_of(&self, name: &str) -> Option<usize> {
        let rest = name.strip_prefix(self.name.as_str())?;
        if rest.is_empty() {
            return Some(0);
        }
        let digit = rest.strip_prefix('.')?;
        match digit.as_bytes() {
            [d @ b'1'..=b'9'] if usize::from(d - b'0') < MAX_CHUNKS => Some(usize::from(d - b'0')),
            _ => None,
        }
    }
}

/// The (ASCII) value cut into cookie-sized parts; the first part leaves room for the `n.`
/// count.
fn split(value: &str) -> Result<Vec<&str>, ValueError> {
    if value.len() <= CHUNK_LEN {
        return Ok(vec![value]);
    }
    let first_len = CHUNK_LEN - 2;
    let count = 1 + (value.len() - first_len).div_ceil(CHUNK_LEN);
    if count > MAX_CHUNKS {
        return Err(ValueError::TooLarge { len: value.len() });
    }
    let (first, mut rest) = value.split_at(first_len);
    let mut parts = vec![first];
    while !rest.is_empty() {
        let (part, tail) = rest.split_at(rest.len().min(CHUNK_LEN));
        parts.push(part);
        rest = tail;
    }
    Ok(parts)
}

fn reassemble(found: &[Option<&str>; MAX_CHUNKS]) -> Result<Option<String>, ChunkError> {
    let Some(base) = found[0] else {
        return Ok(None);
    };
    if base.len() > CHUNK_LEN {
        return Err(ChunkError::Oversized);
    }
    let Some((count, first)) = base.split_once('.') else {
        return Ok(Some(base.to_string()));
    };
    let count = match count.as_bytes() {
        [d @ b'2'..=b'9'] if usize::from(d - b'0') <= MAX_CHUNKS => usize::from(d - b'0'),
        _ => return Err(ChunkError::BadCount),
    };
    let mut value = String::with_capacity(count * CHUNK_LEN);
    value.push_str(first);
    for (index, part) in found.iter().enumerate().take(count).skip(1) {
        let part = part.ok_or(ChunkError::MissingChunk(index))?;
        if part.len() > CHUNK_LEN {
            return Err(ChunkError::Oversized);
        }
        value.push_str(part);
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn https() -> ChunkedCookie {
        ChunkedCookie::new("sessiongate", Scheme::Https).unwrap()
    }

    /// A base64url-looking value of `len` characters that shows where each character was.
    fn value(len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..len)
            .map(|i| char::from(ALPHABET[(i * 7 + i / 64) % 64]))
            .collect()
    }

    /// The `Cookie` header a browser would send back for these `Set-Cookie` values.
    fn pairs(set_cookies: &[HeaderValue]) -> Vec<String> {
        set_cookies
            .iter()
            .map(|h| {
                let cookie = Cookie::parse(h.to_str().unwrap().to_string()).unwrap();
                format!("{}={}", cookie.name(), cookie.value())
            })
            .collect()
    }

    fn request(cookie_headers: &[String]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for h in cookie_headers {
            headers.append(COOKIE, HeaderValue::try_from(h.as_str()).unwrap());
        }
        headers
    }

    #[test]
    fn attributes_and_prefix_follow_the_scheme() {
        let set = https().set("abc", 3600, Carried::default()).unwrap();
        assert_eq!(
            set[0],
            "__Host-sessiongate=abc; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=3600"
        );
        let plain = ChunkedCookie::new("sessiongate", Scheme::Http).unwrap();
        let set = plain.set("abc", 60, Carried::default()).unwrap();
        assert_eq!(
            set[0],
            "sessiongate=abc; HttpOnly; SameSite=Lax; Path=/; Max-Age=60"
        );
        let already = ChunkedCookie::new("__Host-sg", Scheme::Https).unwrap();
        assert_eq!(already.name(), "__Host-sg");
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "a b", "a;b", "a=b", "ü"] {
            assert!(ChunkedCookie::new(name, Scheme::Https).is_err(), "{name:?}");
        }
        assert_eq!(
            ChunkedCookie::new("__Host-sg", Scheme::Http).unwrap_err(),
            CookieNameError::PrefixNeedsHttps("__Host-sg".into())
        );
    }

    #[test]
    fn max_age_is_capped_at_400_days() {
        let set = https().set("abc", u64::MAX, Carried::default()).unwrap();
        assert!(set[0].to_str().unwrap().ends_with("Max-Age=34560000"));
    }

    #[test]
    fn round_trip_at_every_size_around_the_chunk_boundaries() {
        let jar = https();
        let sizes = [
            1,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            2 * CHUNK_LEN - 2,
            2 * CHUNK_LEN - 1,
            5 * CHUNK_LEN,
            MAX_CHUNKS * CHUNK_LEN - 2,
        ];
        for len in sizes {
            let original = value(len);
            let set = jar.set(&original, 60, Carried::default()).unwrap();
            for h in &set {
                let cookie = Cookie::parse(h.to_str().unwrap().to_string()).unwrap();
                assert!(cookie.value().len() <= CHUNK_LEN);
                assert!(h.len() < 4000, "fits a browser's per-cookie limit");
            }
            let back = jar.collect(&request(&[pairs(&set).join("; ")]));
            assert_eq!(back.value, Ok(Some(original)), "length {len}");
        }
    }

    #[test]
    fn chunk_counts() {
        let jar = https();
        let count = |len| jar.set(&value(len), 60, Carried::default()).unwrap().len();
        assert_eq!(count(CHUNK_LEN), 1);
        assert_eq!(count(CHUNK_LEN + 1), 2);
        assert_eq!(count(2 * CHUNK_LEN - 2), 2);
        assert_eq!(count(2 * CHUNK_LEN - 1), 3);
        assert_eq!(count(MAX_CHUNKS * CHUNK_LEN - 2), MAX_CHUNKS);
        assert_eq!(
            jar.set(&value(MAX_CHUNKS * CHUNK_LEN - 1), 60, Carried::default()),
            Err(ValueError::TooLarge {
                len: MAX_CHUNKS * CHUNK_LEN - 1
            })
        );
        for bad in ["a.b", "a b", "a;b", "ü", "a=b"] {
            assert_eq!(
                jar.set(bad, 60, Carried::default()),
                Err(ValueError::NotBase64Url)
            );
        }
    }

    #[test]
    fn chunks_reassemble_in_any_order_across_cookie_headers() {
        let jar = https();
        let original = value(3 * CHUNK_LEN);
        let set = jar.set(&original, 60, Carried::default()).unwrap();
        let mut cookies = pairs(&set);
        assert_eq!(cookies.len(), 4);
        cookies.reverse();
        cookies.insert(2, "other=1".into());
        cookies.swap(0, 3);
        // HTTP/2 clients may send one Cookie header per pair, or split them any way.
        let split = vec![cookies[..2].join("; "), cookies[2..].join("; ")];
        for headers in [vec![cookies.join("; ")], split, cookies.clone()] {
            let back = jar.collect(&request(&headers));
            assert_eq!(back.value, Ok(Some(original.clone())), "{headers:?}");
            assert!((0..4).all(|i| back.carried.contains(i)));
        }
    }

    #[test]
    fn a_missing_chunk_fails_and_a_stale_one_is_ignored() {
        let jar = https();
        let set = jar
            .set(&value(2 * CHUNK_LEN), 60, Carried::default())
            .unwrap();
        let cookies = pairs(&set);
        assert_eq!(cookies.len(), 3);
        let without_middle = [cookies[0].clone(), cookies[2].clone()];
        assert_eq!(
            jar.collect(&request(&[without_middle.join("; ")])).value,
            Err(ChunkError::MissingChunk(1))
        );

        let short = jar.set("short", 60, Carried::default()).unwrap();
        let mixed = [pairs(&short)[0].clone(), cookies[1].clone()].join("; ");
        let back = jar.collect(&request(&[mixed]));
        assert_eq!(back.value, Ok(Some("short".into())));
        assert!(back.carried.contains(1));
    }

    #[test]
    fn a_shrinking_value_clears_the_chunks_it_no_longer_uses() {
        let jar = https();
        let long = jar
            .set(&value(3 * CHUNK_LEN), 60, Carried::default())
            .unwrap();
        let carried = jar.collect(&request(&pairs(&long))).carried;

        let shorter = jar.set(&value(CHUNK_LEN + 10), 60, carried).unwrap();
        let shown: Vec<_> = shorter.iter().map(|h| h.to_str().unwrap()).collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert!(shown[0].starts_with("__Host-sessiongate=2."));
        assert!(shown[1].starts_with("__Host-sessiongate.1="));
        for (stale, index) in shown[2..].iter().zip(2..) {
            assert_eq!(
                *stale,
                format!(
                    "__Host-sessiongate.{index}=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0"
                )
            );
        }

        let cleared = jar.clear(carried);
        assert_eq!(cleared.len(), 4);
        assert!(
            cleared
                .iter()
                .all(|h| h.to_str().unwrap().ends_with("Max-Age=0"))
        );
        assert_eq!(
            jar.clear(Carried::default()).len(),
            1,
            "the base cookie is always cleared"
        );
    }

    #[test]
    fn hostile_cookie_headers_are_refused_or_ignored() {
        let jar = https();
        let cases: &[(&str, Result<Option<String>, ChunkError>)] = &[
            ("", Ok(None)),
            ("__Host-sessiongate.1=abc", Ok(None)),
            ("__Host-sessiongate=9.abc", Err(ChunkError::BadCount)),
            ("__Host-sessiongate=1.abc", Err(ChunkError::BadCount)),
            ("__Host-sessiongate=0.abc", Err(ChunkError::BadCount)),
            ("__Host-sessiongate=22.abc", Err(ChunkError::BadCount)),
            ("__Host-sessiongate=.abc", Err(ChunkError::BadCount)),
            ("__Host-sessiongate=2.abc", Err(ChunkError::MissingChunk(1))),
            (
                "__Host-sessiongate=2.abc; __Host-sessiongate.01=x",
                Err(ChunkError::MissingChunk(1)),
            ),
            (
                "__Host-sessiongate=2.abc; __Host-sessiongate.8=x",
                Err(ChunkError::MissingChunk(1)),
            ),
            (
                "__Host-sessiongate=first; __Host-sessiongate=second",
                Ok(Some("first".into())),
            ),
            ("sessiongate=plain-http-cookie", Ok(None)),
            ("__Host-sessiongatex=abc", Ok(None)),
            ("=; ;;; __Host-sessiongate", Ok(None)),
        ];
        for (header, expected) in cases {
            assert_eq!(
                &jar.collect(&request(&[header.to_string()])).value,
                expected,
                "{header}"
            );
        }
        let oversized = format!("__Host-sessiongate={}", "A".repeat(CHUNK_LEN + 1));
        assert_eq!(
            jar.collect(&request(&[oversized])).value,
            Err(ChunkError::Oversized)
        );
        let oversized_chunk = format!(
            "__Host-sessiongate=2.A; __Host-sessiongate.1={}",
            "A".repeat(CHUNK_LEN + 1)
        );
        assert_eq!(
            jar.collect(&request(&[oversized_chunk])).value,
            Err(ChunkError::Oversized)
        );
        let oversized_stale = format!(
            "__Host-sessiongate=A; __Host-sessiongate.1={}",
            "A".repeat(CHUNK_LEN + 1)
        );
        assert_eq!(
            jar.collect(&request(&[oversized_stale])).value,
            Ok(Some("A".into())),
            "a chunk the value does not use is not looked at"
        );

        let mut binary = HeaderMap::new();
        binary.append(
            COOKIE,
            HeaderValue::from_bytes(b"__Host-sessiongate=\xff\xfe").unwrap(),
        );
        assert_eq!(jar.collect(&binary).value, Ok(None));
    }
}
