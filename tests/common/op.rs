//! A small in-process OpenID Provider for tests: discovery, JWKS, an authorization endpoint
//! that approves at once (the user is chosen by the test), and a token endpoint that checks
//! the client, the code and the PKCE verifier and returns really signed tokens. Tests tweak
//! the next ID token to exercise each validation rule, rotate keys, or take the provider down.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use super::{BoxBody, full};

pub const CLIENT_ID: &str = "gateway";
pub const CLIENT_SECRET: &str = "gateway-secret";

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/keys")
            .join(name),
    )
    .expect("test key")
}

/// A signing key the provider can publish and sign with.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
}

impl SigningKey {
    pub fn rsa(kid: &str, file: &str) -> Self {
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(&key_file(file)).expect("RSA key"),
        }
    }

    pub fn ec(kid: &str, file: &str) -> Self {
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(&key_file(file)).expect("EC key"),
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("public JWK");
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }
}

/// How the next ID token is made wrong, if at all.
#[derive(Clone, Default)]
pub enum Signing {
    /// With the current key, as a real provider would.
    #[default]
    Normal,
    /// With a key that is not published, under the current key's kid.
    ForeignKey,
    /// `alg: none`, no signature.
    None,
    /// HS256 with the provider's public RSA key as the HMAC secret (algorithm confusion).
    Hs256WithPublicKey,
    /// HS256 with the client secret (valid only where HS256 is allowed).
    Hs256WithClientSecret,
    /// With this key, published or not.
    Key(SigningKey),
}

pub struct State {
    /// Keys in the JWKS.
    pub published: Vec<SigningKey>,
    /// The key tokens are signed with.
    pub signing: SigningKey,
    /// The next ID token's signing defect.
    pub next_signing: Signing,
    /// Claims merged into (null removes) the next ID token's claims.
    pub next_claims: Value,
    /// The user the authorization endpoint logs in.
    pub user: Value,
    /// The issuer written in discovery and in tokens.
    pub issuer: String,
    /// Discovery's id_token_signing_alg_values_supported.
    pub algs_supported: Vec<String>,
    /// `expires_in` of issued tokens, and the lifetime of ID tokens, in seconds.
    pub token_lifetime: u64,
    /// How the token endpoint answers the next refresh grants.
    pub refresh: RefreshBehaviour,
    /// Whether token responses carry a refresh token.
    pub issue_refresh_tokens: bool,
    /// Whether `prompt=none` fails with `login_required` (no session at the provider).
    pub silent_login_required: bool,
    /// The `prompt` of the last authorization request.
    pub last_prompt: Option<String>,
    /// The provider's clock: the gateway's manual clock, so token times move with it.
    pub clock: Option<sessiongate::clock::ManualClock>,
    /// What the introspection endpoint (RFC 7662) answers per token; others are inactive.
    pub introspection: HashMap<String, Value>,
    /// How many introspection requests arrived.
    pub introspection_calls: usize,
    codes: HashMap<String, Grant>,
    /// Live refresh tokens (rotated on every use) and whom they belong to.
    refresh_tokens: HashMap<String, Value>,
    counter: usize,
}

/// How the token endpoint treats refresh grants.
#[derive(Clone, Default, PartialEq)]
pub enum RefreshBehaviour {
    /// Rotate: a new refresh token each time, the old one dead.
    #[default]
    Rotate,
    /// Answer 503, as a provider that is down.
    Unavailable,
    /// Answer after this long.
    Slow(std::time::Duration),
    /// Refuse every refresh token, as after the user was disabled.
    Revoked,
}

struct Grant {
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    user: Value,
}

pub struct Op {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    pub down: Arc<AtomicBool>,
    pub jwks_hits: Arc<AtomicUsize>,
    pub token_calls: Arc<AtomicUsize>,
    pub discovery_hits: Arc<AtomicUsize>,
    pub refresh_calls: Arc<AtomicUsize>,
}

impl Op {
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn with<R>(&self, change: impl FnOnce(&mut State) -> R) -> R {
        change(&mut self.state.lock().expect("op state"))
    }

    /// A logout token (Back-Channel Logout 1.0 §2.4) with these claims merged over valid ones
    /// (null removes), signed the way `signing` says.
    pub fn logout_token(&self, overrides: Value, signing: Signing) -> String {
        let state = self.state.lock().expect("op state");
        let now = state.now();
        let mut claims = json!({
            "iss": state.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "jti": format!("jti-{now}-{}", rand_suffix()),
            "sid": "op-session-1",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        overlay(&mut claims, &overrides);
        sign(&claims, &signing, &state.signing)
    }

    /// The gateway configuration's `[oidc]` section for this provider.
    pub fn oidc_toml(&self) -> String {
        format!(
            "[oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n",
            self.issuer()
        )
    }
}

pub async fn start() -> Op {
    start_with_clock(None).await
}

pub async fn start_with_clock(clock: Option<sessiongate::clock::ManualClock>) -> Op {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind op");
    let addr = listener.local_addr().expect("op addr");
    let key = SigningKey::rsa("rsa-1", "rsa-1.pem");
    let state = Arc::new(Mutex::new(State {
        published: vec![key.clone()],
        signing: key,
        next_signing: Signing::Normal,
        next_claims: json!({}),
        user: json!({"sub": "alice", "email": "alice@example.com", "preferred_username": "alice", "groups": ["staff", "admins"]}),
        issuer: format!("http://{addr}"),
        algs_supported: vec!["RS256".into(), "ES256".into()],
        token_lifetime: 300,
        issue_refresh_tokens: true,
        silent_login_required: false,
        last_prompt: None,
        refresh: RefreshBehaviour::Rotate,
        clock,
        introspection: HashMap::new(),
        introspection_calls: 0,
        codes: HashMap::new(),
        refresh_tokens: HashMap::new(),
        counter: 0,
    }));
    let op = Op {
        addr,
        state: state.clone(),
        down: Arc::new(AtomicBool::new(false)),
        jwks_hits: Arc::new(AtomicUsize::new(0)),
        token_calls: Arc::new(AtomicUsize::new(0)),
        discovery_hits: Arc::new(AtomicUsize::new(0)),
        refresh_calls: Arc::new(AtomicUsize::new(0)),
    };
    let shared = Shared {
        state: op.state.clone(),
        down: op.down.clone(),
        jwks_hits: op.jwks_hits.clone(),
        token_calls: op.token_calls.clone(),
        discovery_hits: op.discovery_hits.clone(),
        refresh_calls: op.refresh_calls.clone(),
    };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(answer(req, shared, addr).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    op
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    down: Arc<AtomicBool>,
    jwks_hits: Arc<AtomicUsize>,
    token_calls: Arc<AtomicUsize>,
    discovery_hits: Arc<AtomicUsize>,
    refresh_calls: Arc<AtomicUsize>,
}

fn json_response(status: u16, body: Value) -> Response<BoxBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .expect("response")
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The form of a request the client authenticated with HTTP Basic, or the 401 for one it
/// did not.
async fn client_form(req: Request<Incoming>) -> Result<HashMap<String, String>, Response<BoxBody>> {
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if basic.as_deref() != Some(expected.as_str()) {
        return Err(json_response(401, json!({"error": "invalid_client"})));
    }
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

async fn answer(req: Request<Incoming>, shared: Shared, addr: SocketAddr) -> Response<BoxBody> {
    let Shared {
        state,
        down,
        jwks_hits,
        token_calls,
        discovery_hits,
        refresh_calls,
    } = shared;
    if down.load(Ordering::SeqCst) {
        return json_response(503, json!({"error": "down"}));
    }
    let base = format!("http://{addr}");
    match req.uri().path() {
        // The second path is where an Azure AD B2C-like provider keeps it: not under the issuer.
        "/.well-known/openid-configuration" | "/custom/.well-known/openid-configuration" => {
            discovery_hits.fetch_add(1, Ordering::SeqCst);
            let state = state.lock().expect("state");
            json_response(
                200,
                json!({
                    "issuer": state.issuer,
                    "authorization_endpoint": format!("{base}/authorize"),
                    "token_endpoint": format!("{base}/token"),
                    "jwks_uri": format!("{base}/jwks"),
                    "end_session_endpoint": format!("{base}/logout"),
                    "introspection_endpoint": format!("{base}/introspect"),
                    "id_token_signing_alg_values_supported": state.algs_supported,
                    "code_challenge_methods_supported": ["S256"],
                }),
            )
        }
        "/jwks" => {
            jwks_hits.fetch_add(1, Ordering::SeqCst);
            let state = state.lock().expect("state");
            let set = JwkSet {
                keys: state.published.iter().map(SigningKey::jwk).collect(),
            };
            json_response(200, serde_json::to_value(set).expect("jwks json"))
        }
        "/authorize" => {
            let q = query(&req);
            let mut state = state.lock().expect("state");
            state.last_prompt = q.get("prompt").cloned();
            if state.last_prompt.as_deref() == Some("none") && state.silent_login_required {
                let redirect_uri = q.get("redirect_uri").map_or("", String::as_str);
                let mut location = url::Url::parse(redirect_uri).expect("redirect_uri");
                location
                    .query_pairs_mut()
                    .append_pair("error", "login_required")
                    .append_pair("state", q.get("state").map_or("", String::as_str));
                return Response::builder()
                    .status(302)
                    .header("location", location.as_str())
                    .body(full(""))
                    .expect("response");
            }
            state.counter += 1;
            let code = format!("code-{}", state.counter);
            let grant = Grant {
                redirect_uri: q.get("redirect_uri").cloned().unwrap_or_default(),
                nonce: q.get("nonce").cloned(),
                challenge: q.get("code_challenge").cloned(),
                user: state.user.clone(),
            };
            let mut location = url::Url::parse(&grant.redirect_uri).expect("redirect_uri");
            location
                .query_pairs_mut()
                .append_pair("code", &code)
                .append_pair("state", q.get("state").map_or("", String::as_str));
            state.codes.insert(code, grant);
            Response::builder()
                .status(302)
                .header("location", location.as_str())
                .body(full(""))
                .expect("response")
        }
        "/introspect" => {
            let form = match client_form(req).await {
                Ok(form) => form,
                Err(refused) => return refused,
            };
            let mut state = state.lock().expect("state");
            state.introspection_calls += 1;
            let token = form.get("token").cloned().unwrap_or_default();
            let answer = state
                .introspection
                .get(&token)
                .cloned()
                .unwrap_or_else(|| json!({"active": false}));
            json_response(200, answer)
        }
        "/token" => {
            token_calls.fetch_add(1, Ordering::SeqCst);
            let form = match client_form(req).await {
                Ok(form) => form,
                Err(refused) => return refused,
            };
            if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
                refresh_calls.fetch_add(1, Ordering::SeqCst);
                let behaviour = state.lock().expect("state").refresh.clone();
                match behaviour {
                    RefreshBehaviour::Unavailable => {
                        return json_response(503, json!({"error": "temporarily_unavailable"}));
                    }
                    RefreshBehaviour::Revoked => {
                        return json_response(
                            400,
                            json!({"error": "invalid_grant", "error_description": "revoked"}),
                        );
                    }
                    RefreshBehaviour::Slow(delay) => tokio::time::sleep(delay).await,
                    RefreshBehaviour::Rotate => {}
                }
                let mut state = state.lock().expect("state");
                let presented = form.get("refresh_token").cloned().unwrap_or_default();
                let Some(user) = state.refresh_tokens.remove(&presented) else {
                    return json_response(
                        400,
                        json!({"error": "invalid_grant", "error_description": "unknown or reused refresh token"}),
                    );
                };
                let grant = Grant {
                    redirect_uri: String::new(),
                    nonce: None,
                    challenge: None,
                    user,
                };
                return state.token_response(&grant);
            }
            let mut state = state.lock().expect("state");
            if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
                return json_response(400, json!({"error": "unsupported_grant_type"}));
            }
            let Some(grant) = form.get("code").and_then(|c| state.codes.remove(c)) else {
                return json_response(
                    400,
                    json!({"error": "invalid_grant", "error_description": "unknown or used code"}),
                );
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes()));
            if grant.challenge.as_deref() != Some(challenge.as_str()) {
                return json_response(
                    400,
                    json!({"error": "invalid_grant", "error_description": "PKCE verification failed"}),
                );
            }
            if form.get("redirect_uri") != Some(&grant.redirect_uri) {
                return json_response(
                    400,
                    json!({"error": "invalid_grant", "error_description": "redirect_uri mismatch"}),
                );
            }
            state.token_response(&grant)
        }
        _ => json_response(404, json!({"error": "not_found"})),
    }
}

impl State {
    fn now(&self) -> u64 {
        use sessiongate::clock::Clock;
        match &self.clock {
            Some(clock) => clock.now(),
            None => sessiongate::clock::SystemClock.now(),
        }
    }

    fn token_response(&mut self, grant: &Grant) -> Response<BoxBody> {
        self.counter += 1;
        let refresh_token = format!("refresh-{}", self.counter);
        let id_token = self.id_token(grant);
        let mut body = json!({
            "access_token": format!("access-{}", self.counter),
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "id_token": id_token,
        });
        if self.issue_refresh_tokens {
            self.refresh_tokens
                .insert(refresh_token.clone(), grant.user.clone());
            body["refresh_token"] = json!(refresh_token);
        }
        json_response(200, body)
    }

    fn id_token(&mut self, grant: &Grant) -> String {
        let now = self.now();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "exp": now + self.token_lifetime,
            "iat": now,
            "sid": "op-session-1",
        });
        if let Some(nonce) = &grant.nonce {
            claims["nonce"] = json!(nonce);
        }
        for (k, v) in grant.user.as_object().expect("user") {
            claims[k] = v.clone();
        }
        overlay(&mut claims, &std::mem::take(&mut self.next_claims));
        sign(
            &claims,
            &std::mem::take(&mut self.next_signing),
            &self.signing,
        )
    }
}

/// Merges `overrides` into `claims`; a `null` override removes the claim.
pub fn overlay(claims: &mut Value, overrides: &Value) {
    for (name, value) in overrides.as_object().into_iter().flatten() {
        if value.is_null() {
            if let Some(claims) = claims.as_object_mut() {
                claims.remove(name);
            }
        } else {
            claims[name] = value.clone();
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// Signs claims the way `signing` says.
pub fn sign(claims: &Value, signing: &Signing, current: &SigningKey) -> String {
    let with_key = |key: &SigningKey, kid: &str| {
        let mut header = Header::new(key.alg);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
    };
    match signing {
        Signing::Normal => with_key(current, &current.kid),
        Signing::Key(key) => with_key(key, &key.kid),
        Signing::ForeignKey => with_key(&SigningKey::rsa("foreign", "rsa-2.pem"), &current.kid),
        Signing::None => {
            let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(claims.to_string().as_bytes())
            )
        }
        Signing::Hs256WithPublicKey => {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(current.kid.clone());
            let key = EncodingKey::from_secret(&key_file("rsa-1.pub.pem")).expect("HMAC key");
            jsonwebtoken::encode(&header, claims, &key).expect("sign")
        }
        Signing::Hs256WithClientSecret => {
            let header = Header::new(Algorithm::HS256);
            jsonwebtoken::encode(
                &header,
                claims,
                &EncodingKey::from_secret(CLIENT_SECRET.as_bytes()).expect("HMAC key"),
            )
            .expect("sign")
        }
    }
}

/// Asks the provider to approve the login at `authorize_url`; returns the callback URL.
pub async fn approve(authorize_url: &str) -> String {
    let request = Request::get(authorize_url).body(full("")).expect("request");
    let (status, headers, _) = super::send(&super::client(), request).await;
    assert_eq!(status, StatusCode::FOUND, "the provider approves");
    headers["location"].to_str().expect("location").to_string()
}
