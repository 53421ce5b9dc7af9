//! The authorization-code flow's two messages: the authorization request the browser is sent
//! with (Core §3.1.2.1, PKCE per RFC 7636) and the token request the gateway makes
//! (Core §3.1.3.1, RFC 6749 §4.1.3).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::discovery::Metadata;
use super::http::{HttpError, IdpClient};
use crate::config::{ClientAuth, OidcConfig};
use crate::secret::Secret;

/// RFC 7636 §4.2: `BASE64URL(SHA256(verifier))`.
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The random values of one login attempt.
pub(crate) struct Attempt<'a> {
    pub(crate) state: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) verifier: &'a str,
    /// `prompt=none` (Core §3.1.2.1): renew without any interaction, or fail.
    pub(crate) silent: bool,
}

pub(crate) fn authorization_url(
    metadata: &Metadata,
    config: &OidcConfig,
    redirect_uri: &str,
    attempt: &Attempt<'_>,
) -> Url {
    let mut url = metadata.authorization_endpoint.clone();
    {
        let mut query = url.query_pairs_mut();
        // Configured extras first: the flow's own parameters are appended last and the config
        // refuses extras that would shadow them.
        for (name, value) in &config.extra_auth_params {
            // A silent attempt's own `prompt=none` replaces a configured prompt.
            if !(attempt.silent && name == "prompt") {
                query.append_pair(name, value);
            }
        }
        if attempt.silent {
            query.append_pair("prompt", "none");
        }
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &config.scopes.join(" "))
            .append_pair("state", attempt.state)
            .append_pair("nonce", attempt.nonce)
            .append_pair("code_challenge", &pkce_challenge(attempt.verifier))
            .append_pair("code_challenge_method", "S256");
    }
    url
}

/// A successful token response (RFC 6749 §5.1), its secrets wrapped. The access token is
/// not read: no feature forwards it yet.
pub(crate) struct TokenResponse {
    pub(crate) id_token: Option<String>,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct RawTokenResponse {
    id_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
}

impl From<RawTokenResponse> for TokenResponse {
    fn from(raw: RawTokenResponse) -> Self {
        Self {
            id_token: raw.id_token,
            refresh_token: raw.refresh_token.map(Secret::new),
            expires_in: raw.expires_in,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("the token endpoint failed")]
    Http(#[from] HttpError),
    /// RFC 6749 §5.2; `invalid_grant` for a spent or revoked code or refresh token.
    #[error("the token endpoint refused: {error}")]
    Refused {
        error: String,
        description: Option<String>,
    },
    #[error("the token endpoint answered {status} without an OAuth error")]
    Unexpected { status: http::StatusCode },
    #[error("the token response is not valid JSON")]
    Json(#[source] serde_json::Error),
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// RFC 6749 §2.3.1: client id and secret are form-urlencoded before they are joined and
/// base64-encoded, which matters for secrets with `:` or `%` in them.
fn basic_auth(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    )
}

/// Sends a token request with the configured client authentication.
pub(crate) async fn token_request(
    client: &IdpClient,
    metadata: &Metadata,
    config: &OidcConfig,
    grant: &[(&str, &str)],
) -> Result<TokenResponse, TokenError> {
    let (status, body) = client_post(client, &metadata.token_endpoint, config, grant).await?;
    if status.is_success() {
        let raw: RawTokenResponse = serde_json::from_slice(&body).map_err(TokenError::Json)?;
        return Ok(raw.into());
    }
    match serde_json::from_slice::<ErrorResponse>(&body) {
        Ok(e) => Err(TokenError::Refused {
            error: e.error,
            description: e.error_description,
        }),
        Err(_) => Err(TokenError::Unexpected { status }),
    }
}

/// A form POST to one of the provider's endpoints, authenticated as the client the way
/// `oidc.token_endpoint_auth` says (token and introspection endpoints alike).
pub(crate) async fn client_post(
    client: &IdpClient,
    url: &Url,
    config: &OidcConfig,
    params: &[(&str, &str)],
) -> Result<(http::StatusCode, bytes::Bytes), HttpError> {
    let mut form: Vec<(&str, &str)> = params.to_vec();
    let mut authorization = None;
    match (&config.client_secret, config.client_auth) {
        (Some(secret), ClientAuth::Basic) => {
            authorization = Some(basic_auth(&config.client_id, secret.expose()))
        }
        (Some(secret), ClientAuth::Post) => {
            form.push(("client_id", &config.client_id));
            form.push(("client_secret", secret.expose()));
        }
        // A public client identifies itself; PKCE is its proof.
        (None, _) => form.push(("client_id", &config.client_id)),
    }
    client.post_form(url, &form, authorization).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn basic_auth_encodes_before_joining() {
        assert_eq!(
            basic_auth("app", "a:b%"),
            format!("Basic {}", STANDARD.encode("app:a%3Ab%25"))
        );
    }
}
