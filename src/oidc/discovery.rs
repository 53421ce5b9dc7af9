//! OpenID Provider metadata (OpenID Connect Discovery 1.0 §3, §4).

use serde::Deserialize;
use url::Url;

use super::http::{HttpError, IdpClient};

/// The parts of the provider's metadata the gateway uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Metadata {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: Url,
    pub(crate) token_endpoint: Url,
    pub(crate) jwks_uri: Url,
    #[serde(default)]
    pub(crate) end_session_endpoint: Option<Url>,
    /// RFC 7662, announced as in RFC 8414 (Keycloak, Okta and others include it).
    #[serde(default)]
    pub(crate) introspection_endpoint: Option<Url>,
    #[serde(default)]
    pub(crate) id_token_signing_alg_values_supported: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DiscoveryError {
    #[error("fetching the discovery document failed")]
    Fetch(#[from] HttpError),
    /// Discovery §4.3: the issuer in the document must be identical to the one configured.
    #[error("the discovery document names issuer {found:?}, not the configured {expected:?}")]
    IssuerMismatch { expected: String, found: String },
}

/// `<issuer>/.well-known/openid-configuration` (Discovery §4.1).
pub(crate) fn discovery_url(issuer: &str) -> Result<Url, url::ParseError> {
    Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
}

/// Fetches the metadata from `explicit` when given (Azure AD B2C puts the policy in the
/// discovery URL but not in the issuer), else from the issuer's well-known URL; either way
/// the document must name exactly the configured issuer.
pub(crate) async fn discover(
    client: &IdpClient,
    issuer: &str,
    explicit: Option<&Url>,
) -> Result<Metadata, DiscoveryError> {
    let url = match explicit {
        Some(url) => url.clone(),
        None => discovery_url(issuer).map_err(|_| DiscoveryError::IssuerMismatch {
            expected: issuer.to_string(),
            found: String::new(),
        })?,
    };
    let metadata: Metadata = client.get_json(&url).await?;
    if metadata.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_string(),
            found: metadata.issuer,
        });
    }
    Ok(metadata)
}
