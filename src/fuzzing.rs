//! Entry points for the coverage-guided fuzz targets in `fuzz/` (built with the `fuzzing`
//! feature only). Each takes the fuzzer's bytes and hands them to the function the request
//! path itself calls; the private modules stay private, this module is the one door.
//!
//! Every entry point shares one [`Fixture`]: a configuration, a provider that is already
//! discovered and holds a fixed key set, an in-memory session store and a gateway, so no
//! input ever waits for the network or a clock. Each entry point asserts what must hold for
//! any input: a panic is a finding.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::FutureExt as _;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};

use crate::clock::{ManualClock, SeededRandom};
use crate::config::{Config, Environment, OidcConfig};
use crate::gateway::return_url::safe_return_path;
use crate::gateway::{Gateway, strip_own_cookies};
use crate::oidc::{IdTokenError, Provider};
use crate::proxy::headers::join_cookies;
use crate::session::store::{Lookup, SessionStore};
use crate::session::{ChunkedCookie, KeyRing, Purpose, Scheme, SessionCookies, codec};

/// The fixture's wall-clock time, Unix seconds; the seed tokens are valid at it.
const NOW: u64 = 1_900_000_000;
const ISSUER: &str = "https://idp.example.com/realms/main";
/// The nonce of the login the seed ID tokens answer.
const NONCE: &str = "n-0S6_WzA2Mj";

/// HS256 is allowed so that the fuzzer's claims can be signed with the client secret; the
/// key id refetch interval is long enough never to fall due during a run.
const CONFIG: &str = r#"
[server]
public_url = "https://app.example.com"
[upstream]
url = "http://127.0.0.1:8080"
[oidc]
issuer = "https://idp.example.com/realms/main"
client_id = "legacy-app"
client_secret = "fuzzing-client-secret"
id_token_signing_algs = ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"]
jwks_min_refresh = "36500d"
[session]
secrets = ["c2Vzc2lvbmdhdGUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ=="]
"#;

/// The public halves of `tests/keys/rsa-1.pem` and `tests/keys/ec-1.pem`, which sign the
/// seed tokens in `fuzz/corpus`.
const JWKS: &str = r#"{"keys": [
{"alg":"RS256","kid":"rsa-1","kty":"RSA","n":"nwtRgfGsD-hV3xOdkndnmLepaLZVdyFqY-0Lbe6USV3S8M5WpOKfTmKFjyCy6Pc_-G47cmJ_2vZ2NQOz7iLJa2_uiKP3SX6rX5K8ujVWXx6h3Gwq1TWTNGVFwiRyAZWtxALF0WLIdNEPnOttwLqqPwHZ06cCBALT8auvtOtgdFB_a1_2kumzNCtfd1HeheQU4G-qUYnZhUO0a9MF00iah9niFeGBIxh4FItgB0ZEPEShvG-7bMBO8UClLW-s9PnKwNQNuBLdOEgzLrxoVh1M3BDKJrcgoj3zM5wJ8diDklApP4ZF1y9sKqkpe-QUqN0nlhcmXHdtrZOaM_xr7iWTQQ","e":"AQAB"},
{"alg":"ES256","kid":"ec-1","kty":"EC","crv":"P-256","x":"sqn8Zr3TZp8FIeQUOUwbmY2kLMaGKFlGpdYy93f60-o","y":"LDqY_MllU8zvNI_WTCpw_Vl5cUCVkOUathZIBZIKRTc"}
]}"#;

/// The login-state cookie prefix the gateway derives from the fixture's cookie name.
const LOGIN_PREFIX: &str = "__Host-sessiongate-login-";

struct Fixture {
    /// Validates tokens against [`JWKS`].
    provider: Arc<Provider>,
    /// Validates [`Fixture::probes`] against whatever JWKS the input was.
    probe: Arc<Provider>,
    /// Unsigned tokens naming each kind of key: a key is selected and decoded before any
    /// signature is checked, so these exercise a fuzzed JWKS without a matching private key.
    probes: Vec<String>,
    hmac: EncodingKey,
    store: Arc<SessionStore>,
    cookies: SessionCookies,
    chunked: ChunkedCookie,
    ring: KeyRing,
    gateway: Gateway,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = Config::parse(CONFIG, &Environment::default()).expect("fixture config");
        let keys = serde_json::from_str(JWKS).expect("fixture JWKS");
        let provider = discovered(&config.oidc, keys);
        let scheme = Scheme::of(&config.server.public_url);
        let store = Arc::new(SessionStore::new(&config.session, scheme).expect("cookie store"));
        let deps = crate::Deps {
            clock: Arc::new(ManualClock::new(NOW)),
            random: Arc::new(SeededRandom::new(1)),
        };
        let gateway = Gateway::new(
            &config,
            Default::default(),
            provider.clone(),
            store.clone(),
            Default::default(),
            deps,
        )
        .expect("fixture gateway");
        let probes = [
            ("RS256", Some("rsa-1")),
            ("PS256", None),
            ("ES256", Some("ec-1")),
            ("ES384", None),
            ("EdDSA", Some("ed-1")),
        ]
        .iter()
        .map(|(alg, kid)| {
            let header = json!({"alg": alg, "kid": kid});
            format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header.to_string()))
        })
        .collect();
        let secret = config.oidc.client_secret.as_ref().expect("client secret");
        Fixture {
            probe: discovered(&config.oidc, JwkSet { keys: Vec::new() }),
            provider,
            probes,
            hmac: EncodingKey::from_secret(secret.expose().as_bytes()).expect("HMAC key"),
            store,
            cookies: SessionCookies::new(&config.session, scheme).expect("session cookies"),
            chunked: ChunkedCookie::new(&config.session.cookie_name, scheme).expect("cookie"),
            ring: KeyRing::new(&config.session.secrets).expect("key ring"),
            gateway,
        }
    })
}

/// A provider as discovery leaves it, holding `keys`.
fn discovered(config: &OidcConfig, keys: JwkSet) -> Arc<Provider> {
    let provider = Provider::new(config);
    let metadata = serde_json::from_value(json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/auth"),
        "token_endpoint": format!("{ISSUER}/token"),
        "jwks_uri": format!("{ISSUER}/certs"),
    }))
    .expect("fixture metadata");
    *provider.metadata.write().expect("fresh lock") = Some(Arc::new(metadata));
    install_keys(&provider, keys);
    // As if a refetch had just happened: a token naming an unknown key is refused at once
    // instead of sending the fuzzer's input to the network.
    *provider.jwks.refetched.try_lock().expect("fresh lock") = Some(tokio::time::Instant::now());
    provider
}

fn install_keys(provider: &Provider, keys: JwkSet) {
    *provider.jwks.keys.write().expect("no panic holds it") = Arc::new(keys);
}

/// Runs a request-path future to completion. With the keys loaded and the store in memory
/// nothing in it waits, so pending here would mean the fixture leaks to the network.
fn ready<T>(future: impl Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("nothing in the fixture waits for I/O")
}

/// `payload` as the claims of a token signed with the client secret: the fuzzer cannot forge
/// a signature, so this is how its claims get past verification into the claim checks.
fn signed(payload: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &fixture().hmac, Algorithm::HS256)
            .expect("HMAC signs anything");
    format!("{message}.{signature}")
}

/// One `Cookie` field per line of input (HTTP/2 clients may split the header); lines that
/// are not valid header values are dropped, as the server would refuse them.
fn cookie_fields(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, value);
        }
    }
    headers
}

/// The session cookie: as a request's `Cookie` fields (chunks reassembled, opened, decoded
/// and checked, exactly as a request loads its session), and as the plaintext of a cookie
/// sealed here, which is the only way past the AEAD tag to the payload decoder.
pub fn session_cookie(data: &[u8]) {
    let f = fixture();
    let lookup = ready(f.store.load(&cookie_fields(data), NOW)).expect("the cookie store");
    if let Lookup::Missing { clear, reason } = lookup {
        // A cookie that does not yield a session is deleted, so the browser stops sending it.
        assert!(
            reason == "no session" || !clear.is_empty(),
            "{reason} not cleared"
        );
    }

    let sealed = f.ring.seal(
        Purpose::Session,
        f.cookies.cookie_name(),
        data,
        &SeededRandom::new(0),
    );
    if let Ok(session) = f.cookies.open(&sealed) {
        assert_eq!(
            codec::decode(&codec::encode(&session)).as_ref(),
            Ok(&session)
        );
    }
}

/// The `Cookie` parsers of the request path: the session cookie's chunk reader, and the
/// stripping of the gateway's own cookies before the request goes upstream. Whatever the
/// reader would take for the session cookie must not reach the application.
pub fn cookie_header(data: &[u8]) {
    let f = fixture();
    let headers = cookie_fields(data);
    let _ = f.chunked.collect(&headers);

    let mut forwarded = headers;
    strip_own_cookies(&mut forwarded, f.chunked.name(), LOGIN_PREFIX);
    join_cookies(&mut forwarded);
    let leaked = f.chunked.collect(&forwarded).carried;
    assert!(
        leaked.is_empty(),
        "the session cookie is forwarded: {forwarded:?}"
    );
}

/// The return-URL validator, given the input as `rd` arrives: percent-decoded into
/// (lossy) UTF-8. Whatever it answers keeps the browser on this origin.
pub fn return_url(data: &[u8]) {
    let requested = String::from_utf8_lossy(data);
    let safe = safe_return_path(&requested);
    assert!(
        safe == requested || safe == "/",
        "{requested:?} became {safe:?}"
    );
    let bytes = safe.as_bytes();
    assert_eq!(bytes.first(), Some(&b'/'), "{safe:?}");
    assert!(!matches!(bytes.get(1), Some(b'/' | b'\\')), "{safe:?}");
    let origin = url::Url::parse("https://app.example.com/").expect("origin");
    let landed = origin.join(&safe).expect("a safe path resolves");
    assert_eq!(landed.origin(), origin.origin(), "{safe:?}");
}

/// The configuration loader on TOML text, with no environment. A configuration that
/// validates must also set up the session cookie, as the gateway does when it starts.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text, &Environment::default()) {
        let _ = config.summary();
        let scheme = Scheme::of(&config.server.public_url);
        if let Err(e) = SessionCookies::new(&config.session, scheme) {
            panic!("validated, yet the session cookie cannot be set up: {e}");
        }
    }
}

/// ID token validation, three ways: the input as a token against the fixed keys; as the
/// provider's JWKS document (parsed as a refresh parses it), searched for each probe token's
/// key; and as the claims of a validly signed token, through every claim check.
pub fn jwt_jwks(data: &[u8]) {
    let f = fixture();
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = id_token(&f.provider, token);
    }
    if let Ok(keys) = serde_json::from_slice::<JwkSet>(data) {
        install_keys(&f.probe, keys);
        for token in &f.probes {
            let _ = id_token(&f.probe, token);
        }
    }
    if let Ok(claims) = id_token(&f.provider, &signed(data)) {
        // The session is keyed by `sub` and bound to this issuer.
        assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER));
        let sub = claims.get("sub").and_then(Value::as_str);
        assert!(sub.is_some_and(|s| !s.is_empty()), "{claims:?}");
    }
}

fn id_token(provider: &Provider, token: &str) -> Result<Map<String, Value>, IdTokenError> {
    ready(provider.validate_id_token(token, Some(NONCE), NOW))
}

/// The back-channel logout handler: the input as the form body the provider POSTs, and as
/// the claims of a validly signed logout token in such a body.
pub fn logout_token(data: &[u8]) {
    backchannel_logout(data.to_vec());
    backchannel_logout(format!("logout_token={}", signed(data)).into_bytes());
}

fn backchannel_logout(body: Vec<u8>) {
    let request = Request::post("/auth/backchannel_logout")
        .body(Body::from(body))
        .expect("a request");
    let (response, _) = ready(fixture().gateway.backchannel_logout(request));
    // Accepted or refused; never a server error, since the store is in memory.
    let status = response.status();
    assert!(
        matches!(status, StatusCode::OK | StatusCode::BAD_REQUEST),
        "{status}"
    );
}
