//! A development OpenID Provider: just enough of OpenID Connect (Core, Discovery, RP-Initiated
//! Logout) and of OAuth 2.0 (RFC 6749, PKCE per RFC 7636) for the demo gateway to log users
//! in, refresh their tokens and log them out. Read top to bottom, it is also a tour of what a
//! provider does on the other side of the gateway.
//!
//! ```text
//! DEVELOPMENT ONLY — NOT FOR PRODUCTION. Its signing key is committed to the repository, so
//! anyone can forge its tokens; its passwords are printed on its login page; it keeps
//! everything in memory and forgets it on exit. It is part of a cargo example and never of
//! the `sessiongate` binary. Never point a real gateway at it.
//! ```
//!
//! What it keeps deliberately simple:
//! - One client, registered from the gateway's own configuration (`Client::registered_for`).
//! - No login session of its own (no SSO cookie): every authorization request shows the form,
//!   so `prompt=none` always answers `login_required`, and a session that the gateway ends
//!   for idleness visibly ends in a fresh login.
//! - Every sign-in gets a refresh token, rotated on each use; access tokens are opaque and
//!   short-lived so that renewals show up in the logs within minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use url::Url;

use crate::web::{self, Body, Params, escape};

/// The provider's ES256 signing key. DEVELOPMENT ONLY: it is public (it is in the repository),
/// made for this demo alone with `openssl genpkey -algorithm EC -pkeyopt
/// ec_paramgen_curve:P-256`.
const SIGNING_KEY_PEM: &str = include_str!("op-key.pem");
/// The key's id in the JWKS and in every ID token header, so a gateway can pick the key.
const KEY_ID: &str = "demo-op-es256-1";
/// Lifetime of access and ID tokens: short, so that the gateway's background renewal with
/// the refresh token is visible in the logs while you click around.
const TOKEN_LIFETIME_SECS: u64 = 120;
/// An authorization code must be exchanged within this time (RFC 6749 §4.1.2: "a maximum
/// authorization code lifetime of 10 minutes is RECOMMENDED").
const CODE_LIFETIME_SECS: u64 = 60;
/// Largest form body accepted at `/authorize` and `/token`.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// A user who can sign in. DEVELOPMENT ONLY: the password is the user name.
pub(crate) struct User {
    /// The stable, never reassigned identifier: the ID token's `sub`.
    pub(crate) subject: &'static str,
    pub(crate) username: &'static str,
    pub(crate) password: &'static str,
    pub(crate) name: &'static str,
    pub(crate) email: &'static str,
    pub(crate) groups: &'static [&'static str],
}

pub(crate) const USERS: [User; 2] = [
    User {
        subject: "user-1001",
        username: "alice",
        password: "alice",
        name: "Alice Example",
        email: "alice@example.com",
        groups: &["staff", "admins"],
    },
    User {
        subject: "user-1002",
        username: "bob",
        password: "bob",
        name: "Bob Example",
        email: "bob@example.com",
        groups: &["staff"],
    },
];

/// The one client this provider knows: the demo gateway.
pub(crate) struct Client {
    pub(crate) id: String,
    secret: String,
    /// Compared as an exact string, as OAuth 2.0 Security BCP (RFC 9700 §4.1.3) asks.
    redirect_uri: String,
    /// `post_logout_redirect_uri` is honoured only on this origin.
    origin: url::Origin,
}

impl Client {
    /// The registration that matches the gateway's configuration, the way an administrator
    /// would enter it at a real provider.
    pub(crate) fn registered_for(config: &sessiongate::Config) -> Result<Self, String> {
        let secret = config.oidc.client_secret.as_ref().ok_or(
            "the demo provider registers a confidential client: oidc.client_secret must be set",
        )?;
        let public_url = &config.server.public_url;
        Ok(Self {
            id: config.oidc.client_id.clone(),
            secret: secret.expose().to_owned(),
            // What the gateway sends: public_url + auth_prefix + "/callback".
            redirect_uri: format!(
                "{}{}/callback",
                public_url.as_str().trim_end_matches('/'),
                config.server.auth_prefix
            ),
            origin: public_url.origin(),
        })
    }
}

/// What one sign-in granted: it travels from the authorization code to every refresh token.
#[derive(Clone)]
struct Grant {
    user: &'static User,
    client_id: String,
    scope: String,
    /// This sign-in's id, the ID token's `sid`. Revoking a sign-in revokes its tokens.
    sid: String,
    /// When the user typed the password (Unix seconds): the ID token's `auth_time`.
    auth_time: u64,
}

/// An authorization code waiting to be exchanged, and what it is bound to.
struct Code {
    grant: Grant,
    redirect_uri: String,
    nonce: Option<String>,
    /// `BASE64URL(SHA256(code_verifier))`: only whoever started the login can redeem the code.
    code_challenge: String,
    expires_at: u64,
}

/// Everything the provider remembers, in memory only.
#[derive(Default)]
struct State {
    /// Codes not yet exchanged.
    codes: HashMap<String, Code>,
    /// Codes already exchanged, with their sign-in: one presented again means it leaked, so
    /// the tokens issued from it are revoked (RFC 6749 §4.1.2).
    spent_codes: HashMap<String, String>,
    /// Refresh tokens that may be used (once each).
    refresh_tokens: HashMap<String, Grant>,
    /// Refresh tokens already rotated away, with their sign-in: one presented again means a
    /// copy leaked, so the whole sign-in is revoked (RFC 9700 §4.14.2).
    spent_refresh_tokens: HashMap<String, String>,
}

impl State {
    fn revoke_sign_in(&mut self, sid: &str) {
        self.codes.retain(|_, code| code.grant.sid != sid);
        self.refresh_tokens.retain(|_, grant| grant.sid != sid);
    }
}

/// The development OpenID Provider.
pub(crate) struct Provider {
    /// `http://host:port`, exactly as in discovery and in every token's `iss`.
    issuer: String,
    client: Client,
    signing_key: EncodingKey,
    /// The public half of the signing key, to check `id_token_hint` at logout.
    verifying_key: DecodingKey,
    /// `/jwks`, computed once.
    jwks: Value,
    state: Mutex<State>,
}

impl Provider {
    pub(crate) fn new(issuer: String, client: Client) -> Result<Self, jsonwebtoken::errors::Error> {
        let signing_key = EncodingKey::from_ec_pem(SIGNING_KEY_PEM.as_bytes())?;
        let mut jwk = Jwk::from_encoding_key(&signing_key, Algorithm::ES256)?;
        jwk.common.key_id = Some(KEY_ID.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let verifying_key = DecodingKey::from_jwk(&jwk)?;
        let jwks = serde_json::to_value(JwkSet { keys: vec![jwk] })?;
        Ok(Self {
            issuer,
            client,
            signing_key,
            verifying_key,
            jwks,
            state: Mutex::default(),
        })
    }

    /// Serves the provider on `listener` until the task is dropped.
    pub(crate) async fn serve(self: Arc<Self>, listener: TcpListener) {
        web::serve(listener, move |request| self.clone().handle(request)).await;
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = Params::parse(request.uri().query().unwrap_or("").as_bytes());
        match (method, path.as_str()) {
            (Method::GET, "/.well-known/openid-configuration") => self.discovery(),
            (Method::GET, "/jwks") => web::json(StatusCode::OK, &self.jwks),
            // Core §3.1.2.1: the authorization endpoint takes GET and POST alike. The login
            // form posts the request's parameters back with the user's credentials.
            (Method::GET, "/authorize") => self.authorize(query, false),
            (Method::POST, "/authorize") => match read_form(request).await {
                Ok(params) => self.authorize(Ok(params), true),
                Err(response) => response,
            },
            (Method::POST, "/token") => self.token(request).await,
            (Method::GET, "/logout") => self.logout(query),
            (
                _,
                "/.well-known/openid-configuration" | "/jwks" | "/authorize" | "/token" | "/logout",
            ) => web::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "method not allowed\n",
            ),
            _ => web::text(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }

    /// OpenID Connect Discovery 1.0 §3: where everything is and what is supported.
    fn discovery(&self) -> Response<Body> {
        let issuer = &self.issuer;
        web::json(
            StatusCode::OK,
            &json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "end_session_endpoint": format!("{issuer}/logout"),
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "email", "profile", "offline_access"],
                "claims_supported": [
                    "iss", "aud", "sub", "exp", "iat", "auth_time", "nonce", "sid",
                    "email", "preferred_username", "name", "groups"
                ],
                "prompt_values_supported": ["none", "login"],
                // RFC 9207: the authorization response names its issuer (mix-up defence).
                "authorization_response_iss_parameter_supported": true,
            }),
        )
    }

    /// The authorization endpoint (Core §3.1.2): check the request, show the login form, and
    /// on the right password send the browser back to the gateway with a one-time code.
    fn authorize(&self, params: Result<Params, String>, submitted: bool) -> Response<Body> {
        let params = match params {
            Ok(params) => params,
            Err(name) => return refusal_page(&format!("The parameter {name} appears twice.")),
        };
        let request = match self.check_authorization_request(&params) {
            Ok(request) => request,
            Err(Refusal::Page(message)) => return refusal_page(&message),
            Err(Refusal::Redirect(error, description, request)) => {
                tracing::info!(target: "demo::op", error, description, "authorization refused");
                return self.authorization_error(&request, error, description);
            }
        };
        if request.prompt_none {
            // This provider keeps no login session, so it can never sign anyone in silently.
            return self.authorization_error(&request, "login_required", "the user must sign in");
        }
        if !submitted {
            return self.login_form(&params, "", None);
        }
        // Credentials only ever come in a POST body, never in a URL.
        let username = params.get("username").unwrap_or("");
        let password = params.get("password").unwrap_or("");
        let Some(user) = USERS
            .iter()
            .find(|u| u.username == username && u.password == password)
        else {
            tracing::info!(target: "demo::op", username, "sign-in refused: wrong user name or password");
            return self.login_form(&params, username, Some("Wrong user name or password."));
        };

        let now = unix_now();
        let code = random_token();
        let sid = random_token();
        tracing::info!(target: "demo::op", username = user.username, sid, "signed in: code issued");
        let mut state = self.lock();
        state.codes.retain(|_, pending| pending.expires_at > now);
        state.codes.insert(
            code.clone(),
            Code {
                grant: Grant {
                    user,
                    client_id: self.client.id.clone(),
                    scope: request.scope.clone(),
                    sid,
                    auth_time: now,
                },
                redirect_uri: self.client.redirect_uri.clone(),
                nonce: request.nonce.clone(),
                code_challenge: request.code_challenge.clone(),
                expires_at: now + CODE_LIFETIME_SECS,
            },
        );
        drop(state);
        let mut location = request.redirect_uri.clone();
        {
            let mut query = location.query_pairs_mut();
            query.append_pair("code", &code);
            if let Some(state) = &request.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.issuer);
        }
        web::redirect(&location)
    }

    /// RFC 6749 §4.1.2.1: the error goes back to the client with the request's `state`, and
    /// with `iss` like every authorization response (RFC 9207 §2).
    fn authorization_error(
        &self,
        request: &AuthorizationRequest,
        error: &str,
        description: &str,
    ) -> Response<Body> {
        let mut location = request.redirect_uri.clone();
        {
            let mut query = location.query_pairs_mut();
            query.append_pair("error", error);
            query.append_pair("error_description", description);
            if let Some(state) = &request.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.issuer);
        }
        web::redirect(&location)
    }

    /// Core §3.1.2.2 with RFC 7636 §4.4: which requests this provider serves.
    fn check_authorization_request(
        &self,
        params: &Params,
    ) -> Result<AuthorizationRequest, Refusal> {
        // Until the client and its redirect URI are known good, errors go to the user, never
        // to a redirect URI: that would make this provider an open redirector (RFC 6749
        // §4.1.2.1).
        if params.get("client_id") != Some(self.client.id.as_str()) {
            return Err(Refusal::Page(format!(
                "Unknown client_id: this provider only knows {:?}.",
                self.client.id
            )));
        }
        if params.get("redirect_uri") != Some(self.client.redirect_uri.as_str()) {
            return Err(Refusal::Page(format!(
                "redirect_uri is not registered: this client's is {:?}.",
                self.client.redirect_uri
            )));
        }
        let redirect_uri = Url::parse(&self.client.redirect_uri)
            .map_err(|_| Refusal::Page("The registered redirect_uri is not a URL.".into()))?;
        let mut request = AuthorizationRequest {
            redirect_uri,
            state: params.get("state").map(str::to_owned),
            nonce: params.get("nonce").map(str::to_owned),
            scope: params.get("scope").unwrap_or("").to_owned(),
            code_challenge: String::new(),
            prompt_none: false,
        };
        if params.get("response_type") != Some("code") {
            return Err(Refusal::Redirect(
                "unsupported_response_type",
                "only response_type=code is supported",
                Box::new(request),
            ));
        }
        if !request.scope.split(' ').any(|s| s == "openid") {
            return Err(Refusal::Redirect(
                "invalid_scope",
                "scope must include openid",
                Box::new(request),
            ));
        }
        // PKCE is not optional here, and `plain` is refused: the method must be named.
        match (
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        ) {
            (Some(challenge), Some("S256")) if is_pkce_value(challenge) => {
                request.code_challenge = challenge.to_owned();
            }
            _ => {
                return Err(Refusal::Redirect(
                    "invalid_request",
                    "PKCE is required: code_challenge with code_challenge_method=S256",
                    Box::new(request),
                ));
            }
        }
        let prompt: Vec<&str> = params.get("prompt").unwrap_or("").split(' ').collect();
        if prompt.contains(&"none") && prompt.len() > 1 {
            return Err(Refusal::Redirect(
                "invalid_request",
                "prompt=none cannot be combined with other values",
                Box::new(request),
            ));
        }
        request.prompt_none = prompt.contains(&"none");
        Ok(request)
    }

    /// The login form. The authorization request rides along as hidden fields and is checked
    /// again when the form comes back: the browser could have changed any of it.
    fn login_form(&self, params: &Params, username: &str, error: Option<&str>) -> Response<Body> {
        let hidden: String = params
            .iter()
            .filter(|(name, _)| !matches!(*name, "username" | "password"))
            .map(|(name, value)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                    escape(name),
                    escape(value)
                )
            })
            .collect();
        let users: String = USERS
            .iter()
            .map(|u| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    u.username,
                    u.password,
                    u.groups.join(", ")
                )
            })
            .collect();
        let error = error
            .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
            .unwrap_or_default();
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Sign in — development identity provider</title><style>{style}</style></head><body>\n\
             <p class=\"warning\"><strong>Development identity provider — not for production.</strong> \
             It is part of <code>cargo run --example demo</code>: its signing key is public and \
             its passwords are printed below.</p>\n\
             <h1>Sign in</h1>\n<p>to <code>{client}</code></p>\n{error}\n\
             <form method=\"post\" action=\"/authorize\">\n{hidden}\
             <label>User name <input name=\"username\" value=\"{username}\" autocomplete=\"username\" autofocus required></label>\n\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\n\
             <button type=\"submit\">Sign in</button>\n</form>\n\
             <h2>Users</h2>\n<table><tr><th>user name</th><th>password</th><th>groups</th></tr>{users}</table>\n\
             </body></html>\n",
            style = web::STYLE,
            client = escape(&self.client.id),
            username = escape(username),
        );
        web::html(StatusCode::OK, page)
    }

    /// The token endpoint (RFC 6749 §3.2): the gateway, authenticated with its secret, trades
    /// a code or a refresh token for tokens.
    async fn token(&self, request: Request<Incoming>) -> Response<Body> {
        let authorization = request.headers().get(header::AUTHORIZATION).cloned();
        let params = match read_form(request).await {
            Ok(params) => params,
            Err(response) => return response,
        };
        let result = self
            .authenticate_client(authorization.as_ref(), &params)
            .and_then(|()| {
                let now = unix_now();
                let mut state = self.lock();
                let (grant, nonce) = match params.get("grant_type") {
                    Some("authorization_code") => exchange_code(&mut state, &params, now)?,
                    Some("refresh_token") => (rotate_refresh_token(&mut state, &params)?, None),
                    Some(_) => {
                        return Err(OAuthError::new(
                            "unsupported_grant_type",
                            "use authorization_code or refresh_token",
                        ));
                    }
                    None => {
                        return Err(OAuthError::new("invalid_request", "grant_type is missing"));
                    }
                };
                self.issue_tokens(&mut state, &grant, nonce.as_deref(), now)
            });
        match result {
            Ok(tokens) => web::json(StatusCode::OK, &tokens),
            Err(error) => {
                tracing::info!(target: "demo::op", error = error.error, description = error.description, "token request refused");
                error.response()
            }
        }
    }

    /// `client_secret_basic` (RFC 6749 §2.3.1): `Authorization: Basic base64(id ":" secret)`,
    /// where id and secret are each form-urlencoded first.
    fn authenticate_client(
        &self,
        authorization: Option<&HeaderValue>,
        params: &Params,
    ) -> Result<(), OAuthError> {
        let credentials = authorization
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok());
        let Some(credentials) = credentials else {
            return Err(OAuthError::invalid_client(
                "client_secret_basic authentication is required",
            ));
        };
        let (id, secret) = credentials.split_once(':').unwrap_or((&credentials, ""));
        let (id, secret) = (form_decode(id), form_decode(secret));
        // Comparing digests keeps the comparison's time from revealing how much of the secret
        // was right.
        let secret_ok =
            Sha256::digest(secret.unwrap_or_default()) == Sha256::digest(&self.client.secret);
        if id.as_deref() != Some(self.client.id.as_str()) || !secret_ok {
            return Err(OAuthError::invalid_client("unknown client or wrong secret"));
        }
        match params.get("client_id") {
            Some(body_id) if body_id != self.client.id => Err(OAuthError::new(
                "invalid_request",
                "client_id in the body names another client",
            )),
            _ => Ok(()),
        }
    }

    /// A successful token response (RFC 6749 §5.1, Core §3.1.3.3), with a new refresh token
    /// that replaces the one just used, if any.
    fn issue_tokens(
        &self,
        state: &mut State,
        grant: &Grant,
        nonce: Option<&str>,
        now: u64,
    ) -> Result<Value, OAuthError> {
        let user = grant.user;
        let claims = IdTokenClaims {
            iss: &self.issuer,
            aud: &grant.client_id,
            sub: user.subject,
            exp: now + TOKEN_LIFETIME_SECS,
            iat: now,
            auth_time: grant.auth_time,
            nonce,
            sid: &grant.sid,
            email: user.email,
            preferred_username: user.username,
            name: user.name,
            groups: user.groups,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KEY_ID.to_owned());
        let id_token = jsonwebtoken::encode(&header, &claims, &self.signing_key).map_err(|e| {
            tracing::error!(target: "demo::op", error = %e, "cannot sign the ID token");
            OAuthError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                error: "server_error",
                description: "cannot sign the ID token",
            }
        })?;
        let refresh_token = random_token();
        state
            .refresh_tokens
            .insert(refresh_token.clone(), grant.clone());
        tracing::info!(
            target: "demo::op",
            username = user.username,
            sid = grant.sid,
            expires_in = TOKEN_LIFETIME_SECS,
            "tokens issued"
        );
        Ok(json!({
            // Opaque: this provider has no userinfo endpoint or API that would accept it.
            "access_token": random_token(),
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "refresh_token": refresh_token,
            "id_token": id_token,
            "scope": grant.scope,
        }))
    }

    /// RP-Initiated Logout 1.0 §2: end the sign-in the `id_token_hint` names (this provider's
    /// policy: its refresh tokens stop working), then return to the gateway if asked to.
    fn logout(&self, params: Result<Params, String>) -> Response<Body> {
        let Ok(params) = params else {
            return refusal_page("A parameter appears twice.");
        };
        if let Some(hint) = params.get("id_token_hint") {
            match self.sign_in_of(hint) {
                Some(sid) => {
                    self.lock().revoke_sign_in(&sid);
                    tracing::info!(target: "demo::op", sid, "signed out: the sign-in's tokens are revoked");
                }
                None => {
                    tracing::info!(target: "demo::op", "logout with an id_token_hint this provider did not issue")
                }
            }
        }
        let mut note = String::new();
        if let Some(uri) = params.get("post_logout_redirect_uri") {
            match Url::parse(uri) {
                // Only back to the gateway: anything else would be an open redirector.
                Ok(mut target) if target.origin() == self.client.origin => {
                    if let Some(state) = params.get("state") {
                        target.query_pairs_mut().append_pair("state", state);
                    }
                    return web::redirect(&target);
                }
                _ => {
                    note = format!(
                        "<p class=\"error\">Not returning to {}: only the gateway's origin {} is allowed.</p>",
                        escape(uri),
                        escape(&self.client.origin.ascii_serialization())
                    );
                }
            }
        }
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Signed out — development identity provider</title><style>{style}</style></head><body>\n\
             <p class=\"warning\"><strong>Development identity provider — not for production.</strong></p>\n\
             <h1>Signed out of the development provider</h1>\n{note}\n\
             <p><a href=\"{home}\">Back to the application</a></p>\n</body></html>\n",
            style = web::STYLE,
            home = escape(&self.client.origin.ascii_serialization()),
        );
        web::html(StatusCode::OK, page)
    }

    /// The `sid` of an ID token this provider signed for this client. It may have expired:
    /// a hint only names the sign-in.
    fn sign_in_of(&self, id_token: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Hint {
            sid: String,
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.client.id]);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Hint>(id_token, &self.verifying_key, &validation)
            .ok()
            .map(|token| token.claims.sid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere leaves the maps consistent (each change is one insert or remove).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An authorization request that names the right client and redirect URI.
struct AuthorizationRequest {
    redirect_uri: Url,
    state: Option<String>,
    nonce: Option<String>,
    scope: String,
    code_challenge: String,
    prompt_none: bool,
}

enum Refusal {
    /// The client or redirect URI is wrong: tell the user.
    Page(String),
    /// Anything else: tell the client, at its redirect URI (error, description).
    Redirect(&'static str, &'static str, Box<AuthorizationRequest>),
}

fn refusal_page(message: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Invalid request — development identity provider</title><style>{style}</style></head><body>\n\
         <p class=\"warning\"><strong>Development identity provider — not for production.</strong></p>\n\
         <h1>Invalid authorization request</h1>\n<p class=\"error\">{message}</p>\n</body></html>\n",
        style = web::STYLE,
        message = escape(message),
    );
    web::html(StatusCode::BAD_REQUEST, page)
}

/// The authorization-code grant (RFC 6749 §4.1.3, RFC 7636 §4.6).
fn exchange_code(
    state: &mut State,
    params: &Params,
    now: u64,
) -> Result<(Grant, Option<String>), OAuthError> {
    let code = params
        .get("code")
        .ok_or(OAuthError::new("invalid_request", "code is missing"))?;
    // Single use: from here on the code is spent, whatever the outcome.
    let Some(issued) = state.codes.remove(code) else {
        if let Some(sid) = state.spent_codes.get(code).cloned() {
            state.revoke_sign_in(&sid);
            tracing::warn!(target: "demo::op", sid, "authorization code used twice: the sign-in's tokens are revoked");
            return Err(OAuthError::new(
                "invalid_grant",
                "the code was already used",
            ));
        }
        return Err(OAuthError::new("invalid_grant", "unknown or expired code"));
    };
    state
        .spent_codes
        .insert(code.to_owned(), issued.grant.sid.clone());
    if issued.expires_at <= now {
        return Err(OAuthError::new("invalid_grant", "the code has expired"));
    }
    if params.get("redirect_uri") != Some(issued.redirect_uri.as_str()) {
        return Err(OAuthError::new(
            "invalid_grant",
            "redirect_uri differs from the authorization request's",
        ));
    }
    let verifier = params
        .get("code_verifier")
        .ok_or(OAuthError::new("invalid_grant", "code_verifier is missing"))?;
    if !is_pkce_value(verifier) {
        return Err(OAuthError::new(
            "invalid_request",
            "code_verifier must be 43 to 128 unreserved characters",
        ));
    }
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier)) != issued.code_challenge {
        return Err(OAuthError::new(
            "invalid_grant",
            "code_verifier does not match code_challenge",
        ));
    }
    Ok((issued.grant, issued.nonce))
}

/// The refresh-token grant (RFC 6749 §6) with rotation: each refresh token works once.
fn rotate_refresh_token(state: &mut State, params: &Params) -> Result<Grant, OAuthError> {
    let token = params.get("refresh_token").ok_or(OAuthError::new(
        "invalid_request",
        "refresh_token is missing",
    ))?;
    if let Some(grant) = state.refresh_tokens.remove(token) {
        state
            .spent_refresh_tokens
            .insert(token.to_owned(), grant.sid.clone());
        tracing::info!(target: "demo::op", username = grant.user.username, sid = grant.sid, "refresh token rotated");
        return Ok(grant);
    }
    if let Some(sid) = state.spent_refresh_tokens.get(token).cloned() {
        state.revoke_sign_in(&sid);
        tracing::warn!(target: "demo::op", sid, "refresh token used twice: the sign-in's tokens are revoked");
        return Err(OAuthError::new(
            "invalid_grant",
            "the refresh token was already used",
        ));
    }
    Err(OAuthError::new(
        "invalid_grant",
        "unknown or revoked refresh token",
    ))
}

/// The claims of an ID token (Core §2) plus the profile claims the gateway turns into headers.
#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    exp: u64,
    iat: u64,
    auth_time: u64,
    /// Only in the ID token of a code exchange: it echoes the authorization request's nonce.
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    sid: &'a str,
    email: &'a str,
    preferred_username: &'a str,
    name: &'a str,
    groups: &'a [&'a str],
}

/// A token endpoint error (RFC 6749 §5.2).
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl OAuthError {
    fn new(error: &'static str, description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description,
        }
    }

    fn invalid_client(description: &'static str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description,
        }
    }

    fn response(&self) -> Response<Body> {
        let mut response = web::json(
            self.status,
            &json!({"error": self.error, "error_description": self.description}),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            // §5.2: a 401 names the authentication scheme the client should use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sessiongate demo provider\""),
            );
        }
        response
    }
}

/// A form body, or the response that refuses it.
async fn read_form(request: Request<Incoming>) -> Result<Params, Response<Body>> {
    let refuse = |description| OAuthError::new("invalid_request", description).response();
    let Some(body) = web::read_body(request, MAX_FORM_BYTES).await else {
        return Err(refuse("the form is too large or was cut off"));
    };
    Params::parse(&body).map_err(|_| refuse("a parameter appears twice"))
}

/// Decodes one form-urlencoded value. A correctly encoded value has no raw `&` or `=`, so it
/// parses as a form with a single name.
fn form_decode(encoded: &str) -> Option<String> {
    if encoded.contains(['&', '=']) {
        return None;
    }
    let decoded = url::form_urlencoded::parse(encoded.as_bytes()).next();
    Some(
        decoded
            .map(|(name, _)| name.into_owned())
            .unwrap_or_default(),
    )
}

/// RFC 7636 §4.1 and §4.2: verifiers and S256 challenges are 43 to 128 characters from
/// `A-Z a-z 0-9 - . _ ~`.
fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// 256 random bits, base64url: codes, refresh tokens, access tokens and sign-in ids.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Wall-clock time in Unix seconds, for `iat`, `exp` and code expiry.
// The gateway reads time only through its injected clock (clippy.toml); this provider stands
// for a separate server with a clock of its own, so it reads the system's.
#[allow(clippy::disallowed_methods)]
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
