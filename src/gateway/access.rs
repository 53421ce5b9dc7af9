//! Which requests need a session, and which rule decides who may pass: a pure function of
//! the path, the method and the access policy.

use crate::config::{AccessConfig, AccessRule, Allow, PathMatch, Requirements};

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

/// What the policy says about one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision<'a> {
    pub(crate) route: Route,
    /// The `[[access.rule]]` that matched, if any.
    pub(crate) rule: Option<&'a AccessRule>,
    /// What an authenticated user must meet; `None` for public routes.
    pub(crate) requirements: Option<&'a Requirements>,
}

impl<'a> Decision<'a> {
    /// The rule's name for logs: a configured rule, or the global policy.
    pub(crate) fn rule_name(&self) -> &'a str {
        self.rule.map_or("access", |rule| rule.name.as_str())
    }
}

/// The first `[[access.rule]]` matching the request decides; without one, `public_paths` and
/// the global requirements do. API paths win over public ones, so a public prefix cannot open
/// an API below it by accident; they also choose 401 over a login redirect under any rule.
///
/// Matching is on the path (never its query string) with percent-encoded unreserved
/// characters decoded (RFC 3986 §6.2.2.2), as the application will read it:
/// `/st%61tic/app.js` is `/static/app.js`. Paths with dot segments or encoded separators
/// never get here (see [`is_ambiguous`]).
pub(crate) fn decide<'a>(
    path: &str,
    method: &http::Method,
    access: &'a AccessConfig,
) -> Decision<'a> {
    let path = decode_unreserved(path);
    let path = path.as_ref();
    let api = access.api_paths.iter().any(|e| covers(e, path));
    let private = if api { Route::Api } else { Route::Protected };
    let rule = access.rules.iter().find(|rule| {
        (rule.methods.is_empty() || rule.methods.contains(method))
            && match &rule.path {
                PathMatch::Prefix(prefix) => covers(prefix, path),
                PathMatch::Regex(regex) => regex.is_match(path),
            }
    });
    let (route, requirements) = match rule.map(|r| &r.allow) {
        Some(Allow::Public) => (Route::Public, None),
        Some(Allow::Authenticated) => (private, Some(&NOTHING)),
        Some(Allow::Only(requirements)) => (private, Some(requirements)),
        None if !api && access.public_paths.iter().any(|e| covers(e, path)) => {
            (Route::Public, None)
        }
        None => (private, Some(&access.requirements)),
    };
    Decision {
        route,
        rule,
        requirements,
    }
}

static NOTHING: Requirements = Requirements {
    allowed_email_domains: Vec::new(),
    allowed_emails: Vec::new(),
    allowed_groups: Vec::new(),
    required_claims: Vec::new(),
};

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
            bearer_introspection: None,
            requirements: Requirements::default(),
            groups_claim: "groups".into(),
            rules: Vec::new(),
        }
    }

    fn rule(name: &str, path: PathMatch, methods: &[&str], allow: Allow) -> AccessRule {
        AccessRule {
            name: name.into(),
            path,
            methods: methods
                .iter()
                .map(|m| http::Method::from_bytes(m.as_bytes()).unwrap())
                .collect(),
            allow,
        }
    }

    #[test]
    fn the_first_matching_rule_decides_by_path_and_method() {
        let admins = Requirements {
            allowed_groups: vec!["admins".into()],
            ..Requirements::default()
        };
        let mut access = policy();
        access.requirements.allowed_email_domains = vec!["example.com".into()];
        access.rules = vec![
            rule(
                "reports-read",
                PathMatch::Prefix("/admin/reports/".into()),
                &["GET"],
                Allow::Authenticated,
            ),
            rule(
                "admin",
                PathMatch::Prefix("/admin/".into()),
                &[],
                Allow::Only(admins.clone()),
            ),
            rule(
                "versioned-api",
                PathMatch::Regex(regex_lite::Regex::new("^/v[0-9]+/docs").unwrap()),
                &[],
                Allow::Public,
            ),
            rule(
                "static-upload",
                PathMatch::Prefix("/static/upload".into()),
                &["POST"],
                Allow::Authenticated,
            ),
        ];
        let get = http::Method::GET;
        let post = http::Method::POST;
        let d = decide("/admin/reports/q1", &get, &access);
        assert_eq!((d.route, d.rule_name()), (Route::Protected, "reports-read"));
        assert_eq!(d.requirements, Some(&NOTHING));
        let d = decide("/admin/reports/q1", &post, &access);
        assert_eq!((d.rule_name(), d.requirements), ("admin", Some(&admins)));
        let d = decide("/adm%69n/users", &get, &access);
        assert_eq!(d.rule_name(), "admin", "matched on the normalized path");
        let d = decide("/v2/docs/intro", &get, &access);
        assert_eq!(
            (d.route, d.rule_name(), d.requirements),
            (Route::Public, "versioned-api", None)
        );
        assert_eq!(decide("/x/v2/docs", &get, &access).rule_name(), "access");
        let d = decide("/static/upload", &post, &access);
        assert_eq!(
            (d.route, d.rule_name()),
            (Route::Protected, "static-upload"),
            "a rule wins over public_paths"
        );
        let d = decide("/static/upload", &get, &access);
        assert_eq!((d.route, d.requirements), (Route::Public, None));
        let d = decide("/private", &get, &access);
        assert_eq!(
            (d.route, d.requirements),
            (Route::Protected, Some(&access.requirements))
        );
        let d = decide("/api/orders", &get, &access);
        assert_eq!(d.route, Route::Api);
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
        let policy = policy();
        for (path, expected) in cases {
            let decision = decide(path, &http::Method::GET, &policy);
            assert_eq!(decision.route, expected, "{path}");
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
