//! Where the browser goes after login or logout: a path on this origin, never anywhere else.
//!
//! Open redirects are the most common advisory against gateways of this kind (`/\evil`,
//! `//evil`, encoded whitespace, schemes). Rather than parse a URL and hope the browser
//! agrees, accept only a narrow shape and fall back to `/` for everything else.

/// The safe target for a requested return URL: the request itself when it is a plain
/// same-origin path (with query), otherwise `/`.
pub(crate) fn safe_return_path(requested: &str) -> String {
    if is_safe(requested) {
        requested.to_string()
    } else {
        "/".to_string()
    }
}

fn is_safe(target: &str) -> bool {
    let bytes = target.as_bytes();
    // Exactly one leading slash: `//host` and `/\host` are network paths to browsers.
    if bytes.first() != Some(&b'/') || matches!(bytes.get(1), Some(b'/' | b'\\')) {
        return false;
    }
    // Printable ASCII only: no control characters, spaces, tabs or backslashes, which
    // browsers strip or turn into `/` before resolving.
    if !bytes
        .iter()
        .all(|&b| (0x21..0x7f).contains(&b) && b != b'\\')
    {
        return false;
    }
    // Percent-encoded separators and controls in the path could decode into any of the
    // above; in the query or fragment they are data.
    let path = target.split(['?', '#']).next().unwrap_or("");
    let lower = path.to_ascii_lowercase();
    let decodes_badly = ["%2f", "%5c", "%09", "%0a", "%0d", "%00", "%20"]
        .iter()
        .any(|bad| lower.contains(bad));
    !decodes_badly
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_kept() {
        for ok in [
            "/",
            "/app",
            "/app/page.aspx?id=1&x=%C3%A9",
            "/a/b/c#section",
            "/search?q=a%26b",
            "/~user/",
            "/page?next=%2Fother&tab=%09",
        ] {
            assert_eq!(safe_return_path(ok), ok);
        }
    }

    #[test]
    fn hostile_targets_fall_back_to_root() {
        let hostile = [
            "",
            "https://evil.example/",
            "http://evil.example",
            "//evil.example",
            "//evil.example/path",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "/\\/evil.example",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "evil.example",
            "/%2f%2fevil.example",
            "/%2F/evil.example",
            "/%5cevil.example",
            "/%5C%5Cevil.example",
            "/\tevil",
            "/\t/evil.example",
            "/%09/evil.example",
            "/\n/evil.example",
            "/%0d%0aSet-Cookie:x=1",
            "/\r\nLocation: https://evil.example",
            "/ /evil.example",
            "/%20/evil.example",
            "/\u{0}evil",
            "/%00evil",
            "/\u{2028}evil",
            "/caf\u{e9}",
            "?rd=//evil",
            "#//evil",
            " /app",
        ];
        assert!(hostile.len() >= 25);
        for target in hostile {
            assert_eq!(safe_return_path(target), "/", "{target:?}");
        }
    }

    use proptest::prelude::*;

    fn requested() -> impl Strategy<Value = String> {
        prop_oneof![
            // The characters redirect tricks are made of.
            proptest::string::string_regex("[/\\\\a-zA-Z0-9%.:@?#&=;~ \t-]{0,40}").unwrap(),
            proptest::collection::vec(any::<char>(), 0..30)
                .prop_map(|chars| chars.into_iter().collect::<String>()),
        ]
    }

    proptest! {
        /// Whatever was asked for, the browser ends up on this very origin: the answer is
        /// the request itself or `/`, and resolving it against the origin never leaves it.
        #[test]
        fn no_requested_target_leaves_the_origin(requested in requested()) {
            let safe = safe_return_path(&requested);
            prop_assert!(safe == requested || safe == "/");
            let origin = url::Url::parse("https://app.example.com/").unwrap();
            let landed = origin.join(&safe).expect("a safe path resolves");
            prop_assert_eq!(landed.origin(), origin.origin(), "{:?} -> {:?}", requested, safe);
        }
    }
}
