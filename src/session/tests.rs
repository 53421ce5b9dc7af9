use http::header::COOKIE;
use serde_json::json;

use super::*;
use crate::clock::SeededRandom;
use crate::secret::{KeyMaterial, Secret};

const T0: u64 = 1_796_000_000;

/// The defaults (from the schema, as a user would get them), with these secrets and name.
fn config(secrets: &[u8], cookie_name: &str) -> SessionConfig {
    let text = "[server]\npublic_url = \"https://app.example.com\"\n\
                [upstream]\nurl = \"http://127.0.0.1:8080\"\n\
                [oidc]\nissuer = \"https://idp.example.com\"\nclient_id = \"app\"\n\
                [session]\nsecrets = [\"c2Vzc2lvbmdhdGUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ==\"]\n";
    let mut config = crate::Config::parse(text, &crate::Environment::default())
        .expect("a minimal configuration")
        .session;
    config.secrets = secrets
        .iter()
        .map(|&b| KeyMaterial::new(vec![b; 32]).expect("32 bytes"))
        .collect();
    config.cookie_name = cookie_name.to_string();
    config
}

fn cookies(secrets: &[u8]) -> SessionCookies {
    SessionCookies::new(&config(secrets, "sessiongate"), Scheme::Https).expect("valid config")
}

fn session(token_len: usize) -> Session {
    let random = SeededRandom::new(11);
    let mut s = Session::start(&random, "21745a1c-d971".into(), T0);
    s.claims.insert("email".into(), json!("alice@example.com"));
    s.idp_sid = Some("sid-1".into());
    s.refresh_token = Some(Secret::new(crate::clock::random_token(&random, token_len)));
    s
}

/// What a browser sends back after these `Set-Cookie` values, one pair per `Cookie` header
/// (as HTTP/2 clients may), deleted cookies left out.
fn browser_sends(set_cookies: &[HeaderValue]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in set_cookies {
        let cookie = cookie::Cookie::parse(value.to_str().unwrap().to_string()).unwrap();
        if cookie.max_age() != Some(cookie::time::Duration::ZERO) {
            let pair = format!("{}={}", cookie.name(), cookie.value());
            headers.append(COOKIE, HeaderValue::try_from(pair).unwrap());
        }
    }
    headers
}

fn cookie_header(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.append(COOKIE, HeaderValue::try_from(value).unwrap());
    headers
}

#[test]
fn write_then_read_round_trips() {
    let jar = cookies(&[1]);
    let s = session(100);
    let set = jar
        .write(&s, T0 + 600, Carried::default(), &SeededRandom::new(1))
        .unwrap();
    assert_eq!(set.len(), 1);
    let text = set[0].to_str().unwrap();
    assert!(text.starts_with("__Host-sessiongate="), "{text}");
    assert!(
        text.ends_with(&format!("; Max-Age={}", 12 * 3600 - 600)),
        "Max-Age runs to the absolute deadline: {text}"
    );

    let read = jar.read(&browser_sends(&set));
    assert_eq!(read.loaded, Loaded::Opened(s.clone()));
    assert_eq!(read.session(), Some(&s));
    assert!(read.clear.is_empty());
    assert!(read.carried.contains(0));
}

#[test]
fn no_cookie_is_no_session_and_nothing_to_clear() {
    let read = cookies(&[1]).read(&cookie_header("unrelated=1; other=2"));
    assert_eq!(read.loaded, Loaded::Absent);
    assert!(read.clear.is_empty());
    assert!(cookies(&[1]).read(&HeaderMap::new()).clear.is_empty());
}

#[test]
fn a_bad_cookie_is_no_session_and_is_cleared() {
    let jar = cookies(&[1]);
    for value in ["garbage", "", "2.abc", "AAAA"] {
        let read = jar.read(&cookie_header(&format!("__Host-sessiongate={value}")));
        assert!(matches!(read.loaded, Loaded::Rejected(_)), "{value:?}");
        assert_eq!(read.clear.len(), 1);
        assert!(
            read.clear[0]
                .to_str()
                .unwrap()
                .starts_with("__Host-sessiongate=; ")
        );
        assert!(read.clear[0].to_str().unwrap().ends_with("Max-Age=0"));
    }
}

#[test]
fn rotation_keeps_sessions_and_an_unrelated_secret_rejects_them() {
    let s = session(100);
    let old = cookies(&[1])
        .write(&s, T0, Carried::default(), &SeededRandom::new(1))
        .unwrap();
    let rotated = cookies(&[2, 1]);
    assert_eq!(rotated.read(&browser_sends(&old)).session(), Some(&s));

    let read = cookies(&[3]).read(&browser_sends(&old));
    assert_eq!(
        read.loaded,
        Loaded::Rejected(Rejection::Seal(OpenError::UnknownKey))
    );
    assert_eq!(read.clear.len(), 1);
}

#[test]
fn a_value_moved_to_another_cookie_name_is_rejected() {
    let s = session(100);
    let a = SessionCookies::new(&config(&[1], "app_a"), Scheme::Https).unwrap();
    let b = SessionCookies::new(&config(&[1], "app_b"), Scheme::Https).unwrap();
    let set = a
        .write(&s, T0, Carried::default(), &SeededRandom::new(1))
        .unwrap();
    let value = set[0].to_str().unwrap().split(';').next().unwrap();
    let moved = value.replace("__Host-app_a=", "__Host-app_b=");
    assert_eq!(
        b.read(&cookie_header(&moved)).loaded,
        Loaded::Rejected(Rejection::Seal(OpenError::Forged))
    );
}

#[test]
fn a_big_session_is_chunked_and_a_shrunk_one_clears_its_stale_chunks() {
    let jar = cookies(&[1]);
    let big = session(6000);
    let set = jar
        .write(&big, T0, Carried::default(), &SeededRandom::new(1))
        .unwrap();
    assert_eq!(
        set.len(),
        3,
        "6000 random bytes are about 8100 cookie characters"
    );

    let read = jar.read(&browser_sends(&set));
    assert_eq!(read.session(), Some(&big));

    let small = session(100);
    let rewrite = jar
        .write(&small, T0 + 60, read.carried, &SeededRandom::new(2))
        .unwrap();
    let stale: Vec<_> = rewrite[1..]
        .iter()
        .map(|h| h.to_str().unwrap().split(';').next().unwrap())
        .collect();
    assert_eq!(stale, ["__Host-sessiongate.1=", "__Host-sessiongate.2="]);
    assert_eq!(jar.read(&browser_sends(&rewrite)).session(), Some(&small));

    let sign_out = jar.clear(read.carried);
    assert_eq!(sign_out.len(), 3);
}

#[test]
fn orphaned_chunks_are_cleared() {
    let read = cookies(&[1]).read(&cookie_header("__Host-sessiongate.1=abc"));
    assert_eq!(read.loaded, Loaded::Absent);
    let cleared: Vec<_> = read
        .clear
        .iter()
        .map(|h| h.to_str().unwrap().split(';').next().unwrap())
        .collect();
    assert_eq!(cleared, ["__Host-sessiongate=", "__Host-sessiongate.1="]);
}

#[test]
fn plain_http_has_neither_secure_nor_the_host_prefix() {
    let jar = SessionCookies::new(&config(&[1], "sessiongate"), Scheme::Http).unwrap();
    let set = jar
        .write(&session(10), T0, Carried::default(), &SeededRandom::new(1))
        .unwrap();
    let text = set[0].to_str().unwrap();
    assert!(text.starts_with("sessiongate="), "{text}");
    assert!(!text.contains("Secure"), "{text}");
    assert!(text.contains("HttpOnly; SameSite=Lax; Path=/"), "{text}");
    assert_eq!(jar.read(&browser_sends(&set)).session(), Some(&session(10)));
}

#[test]
fn an_expired_session_gets_max_age_zero() {
    let jar = cookies(&[1]);
    let set = jar
        .write(
            &session(10),
            T0 + 13 * 3600,
            Carried::default(),
            &SeededRandom::new(1),
        )
        .unwrap();
    assert!(set[0].to_str().unwrap().ends_with("Max-Age=0"));
}

#[test]
fn setup_errors_name_their_key() {
    let err = SessionCookies::new(&config(&[], "sessiongate"), Scheme::Https).unwrap_err();
    assert_eq!(err.to_string(), "session.secrets: no secret to seal with");
    let err = SessionCookies::new(&config(&[1], "bad name"), Scheme::Https).unwrap_err();
    assert!(err.to_string().starts_with("session.cookie_name:"), "{err}");
}
