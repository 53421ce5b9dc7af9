//! Which requests need a session: a pure function of the path and the access policy.

use crate::config::AccessConfig;

/// How a path is treated before any session is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Served without a session.
    Public,
    /// Needs a session; browsers are sent to log in.
    Protected,
    /// Needs a session or a bearer token; answers 401, never a redirect.
    Api,
}

impl Route {
    /// A fixed label for logs and metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Route::Public => "public",
            Route::Protected => "protected",
            Route::Api => "api",
        }
    }
}

/// Whether `path` falls under a configured entry. An entry ending in `/` is a prefix
/// (`/static/` covers `/static/app.js`); any other entry covers itself and what lies below
/// it (`/favicon.ico`, `/health` and `/health/live`, but not `/healthz`).
fn covers(entry: &str, path: &str) -> bool {
    if entry.ends_with('/') {
        path.starts_with(entry)
    } else {
        path.strip_prefix(entry)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Classifies a request path (never its query string). API paths win over public ones, so
/// a public prefix cannot open an API below it by accident.
///
/// Matching is on the path with percent-encoded unreserved characters decoded (RFC 3986
/// §6.2.2.2), as the application will read it: `/st%61tic/app.js` is `/static/app.js`. Paths
/// with dot segments or encoded separators never get here (see [`is_ambiguous`]).
pub(crate) fn classify(path: &str, access: &AccessConfig) -> Route {
    let path = decode_unreserved(path);
    let path = path.as_ref();
    if access.api_paths.iter().any(|e| covers(e, path)) {
        Route::Api
    } else if access.public_paths.iter().any(|e| covers(e, path)) {
        Route::Public
    } else {
        Route::Protected
    }
}

fn decode_unreserved(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains('%') {
        return std::borrow::Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| path.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b));
        match decoded {
            Some(b) => {
                out.push(char::from(b));
                i += 3;
            }
            None => {
                // Not an unreserved escape: keep the byte as it came.
                let next = path[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&path[i..i + next]);
                i += next;
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Paths that upstream servers may read differently from us: dot segments (also
/// percent-encoded, or Tomcat's `..;`), encoded slashes and backslashes, backslashes and
/// NUL. `/static/..;/admin` matches a public `/static/` prefix here while Tomcat serves
/// `/admin`, so such paths are refused before any rule is applied. Browsers never send them:
/// they resolve dot segments themselves.
pub(crate) fn is_ambiguous(path: &str) -> bool {
    // Almost every path has none of the three bytes any ambiguity needs.
    if !path.bytes().any(|b| matches!(b, b'%' | b'.' | b'\\')) {
        return false;
    }
    if path.contains('\\') {
        return true;
    }
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%00"].iter().any(|bad| lower.contains(bad)) {
        return true;
    }
    lower.split('/').any(|segment| {
        let segment = segment.split(';').next().unwrap_or("");
        let decoded = segment.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessConfig {
        AccessConfig {
            public_paths: vec!["/static/".into(), "/favicon.ico".into(), "/health".into()],
            api_paths: vec!["/api/".into(), "/static/api/".into()],
            bearer_audiences: Vec::new(),
            allowed_email_domains: Vec::new(),
            allowed_emails: Vec::new(),
            allowed_groups: Vec::new(),
            groups_claim: "groups".into(),
        }
    }

    #[test]
    fn classification_table() {
        let cases = [
            ("/", Route::Protected),
            ("/static/app.js", Route::Public),
            ("/static", Route::Protected),
            ("/favicon.ico", Route::Public),
            ("/favicon.ico.php", Route::Protected),
            ("/health", Route::Public),
            ("/health/live", Route::Public),
            ("/healthz", Route::Protected),
            ("/api/orders", Route::Api),
            ("/static/api/x", Route::Api),
            ("/private", Route::Protected),
            ("/st%61tic/app.js", Route::Public),
            ("/%61pi/orders", Route::Api),
            ("/static%2Fx", Route::Protected),
            ("/%E2%9C%93", Route::Protected),
        ];
        for (path, expected) in cases {
            assert_eq!(classify(path, &policy()), expected, "{path}");
        }
    }

    #[test]
    fn ambiguous_paths_are_recognised() {
        for path in [
            "/static/../admin",
            "/static/..;/admin",
            "/static/%2e%2e/admin",
            "/static/%2E./admin",
            "/static/.%2e;x=1/admin",
            "/static%2f..%2fadmin",
            "/static/..%5cadmin",
            "/static\\..\\admin",
            "/a/./b",
            "/a/.",
            "/x%00",
        ] {
            assert!(is_ambiguous(path), "{path}");
        }
        for path in [
            "/",
            "/static/app.js",
            "/a/b.c",
            "/...",
            "/a..b/",
            "/.well-known/x",
            "/a;jsessionid=1",
        ] {
            assert!(!is_ambiguous(path), "{path}");
        }
    }
}
