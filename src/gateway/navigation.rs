//! Whether a request is a person navigating (who can be sent to log in) or code in a page or
//! an API client (who must get a 401 it can handle, and no login state piling up).

use http::header::{ACCEPT, HeaderMap};
use http::{HeaderName, Method};

const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
const X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");

/// A top-level navigation: `Sec-Fetch-Mode: navigate`, or, from browsers that send no
/// Fetch Metadata, a GET or HEAD that asks for HTML and does not say it is XHR.
pub(crate) fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    // A WebSocket handshake is never a page to redirect.
    if method != Method::GET && method != Method::HEAD
        || headers.contains_key(http::header::UPGRADE)
    {
        return false;
    }
    if let Some(mode) = headers.get(&SEC_FETCH_MODE) {
        return mode.as_bytes().eq_ignore_ascii_case(b"navigate");
    }
    if headers.contains_key(&X_REQUESTED_WITH) {
        return false;
    }
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    v.parse().expect("value"),
                )
            })
            .collect()
    }

    #[test]
    fn navigation_table() {
        let html = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
        type Case<'a> = (Method, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case<'_>] = &[
            (Method::GET, &[("sec-fetch-mode", "navigate"), html], true),
            (Method::GET, &[("sec-fetch-mode", "cors"), html], false),
            (Method::GET, &[("sec-fetch-mode", "no-cors")], false),
            (Method::GET, &[html], true),
            (Method::HEAD, &[html], true),
            (
                Method::GET,
                &[html, ("x-requested-with", "XMLHttpRequest")],
                false,
            ),
            (Method::GET, &[("accept", "application/json")], false),
            (Method::GET, &[], false),
            (Method::POST, &[("sec-fetch-mode", "navigate"), html], false),
            (Method::DELETE, &[html], false),
        ];
        for (method, pairs, expected) in cases {
            assert_eq!(
                is_navigation(method, &headers(pairs)),
                *expected,
                "{method} {pairs:?}"
            );
        }
    }
}
