//! `session.inject_warning`: the expiry notice's `<script>` tag, inserted before `</body>`
//! of the application's HTML as it streams by. Compressed bodies are passed on untouched (the
//! gateway does not decompress what it forwards); the notice can then be added by the
//! application with the same tag.

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};

const CLOSING: &[u8] = b"</body";

/// Whether a response can take the tag: HTML, not compressed.
pub(super) fn applies(headers: &HeaderMap) -> bool {
    let html = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let plain = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|e| e.trim().eq_ignore_ascii_case("identity"));
    html && plain
}

/// The body with `tag` before the first `</body` (in any case); the length changes, so the
/// response goes out chunked.
pub(super) fn into(headers: &mut HeaderMap, body: Body, tag: Bytes) -> Body {
    headers.remove(CONTENT_LENGTH);
    let state = (body.into_data_stream(), Vec::<u8>::new(), Some(tag));
    let stream =
        futures_util::stream::unfold(state, |(mut inner, mut carry, mut tag)| async move {
            loop {
                match inner.next().await {
                    Some(Ok(chunk)) => {
                        let Some(pending) = tag.take() else {
                            return Some((Ok(chunk), (inner, carry, None)));
                        };
                        carry.extend_from_slice(&chunk);
                        if let Some(at) = find(&carry) {
                            let mut out = Vec::with_capacity(carry.len() + pending.len());
                            out.extend_from_slice(&carry[..at]);
                            out.extend_from_slice(&pending);
                            out.extend_from_slice(&carry[at..]);
                            return Some((Ok(Bytes::from(out)), (inner, Vec::new(), None)));
                        }
                        // Keep what could be the start of `</body`, send the rest on.
                        let keep = carry.len().min(CLOSING.len() - 1);
                        let rest = carry.split_off(carry.len() - keep);
                        let out = std::mem::replace(&mut carry, rest);
                        tag = Some(pending);
                        if !out.is_empty() {
                            return Some((Ok(Bytes::from(out)), (inner, carry, tag)));
                        }
                    }
                    Some(Err(e)) => return Some((Err(e), (inner, carry, None))),
                    // No `</body>`: the page goes out as it was.
                    None if !carry.is_empty() => {
                        let out = std::mem::take(&mut carry);
                        return Some((Ok(Bytes::from(out)), (inner, carry, None)));
                    }
                    None => return None,
                }
            }
        });
    Body::from_stream(stream)
}

fn find(haystack: &[u8]) -> Option<usize> {
    haystack
        .windows(CLOSING.len())
        .position(|w| w.eq_ignore_ascii_case(CLOSING))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    async fn run(chunks: Vec<&'static str>) -> String {
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        let mut headers = HeaderMap::new();
        let body = into(&mut headers, Body::from_stream(stream), Bytes::from("<s/>"));
        let bytes = body.collect().await.expect("body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn the_tag_lands_before_the_closing_body_wherever_the_chunks_split() {
        assert_eq!(
            run(vec!["<p>x</p></body></html>"]).await,
            "<p>x</p><s/></body></html>"
        );
        assert_eq!(
            run(vec!["<p>x</p></bo", "dy></html>"]).await,
            "<p>x</p><s/></body></html>"
        );
        assert_eq!(run(vec!["<", "/", "B", "ODY>"]).await, "<s/></BODY>");
        assert_eq!(run(vec!["no body tag", " here"]).await, "no body tag here");
        assert_eq!(
            run(vec!["</body>", "</body>"]).await,
            "<s/></body></body>",
            "once"
        );
    }

    #[test]
    fn only_uncompressed_html_takes_it() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            map
        };
        assert!(applies(&headers(&[(
            "content-type",
            "text/html; charset=utf-8"
        )])));
        assert!(!applies(&headers(&[("content-type", "application/json")])));
        assert!(!applies(&headers(&[
            ("content-type", "text/html"),
            ("content-encoding", "gzip")
        ])));
    }
}
