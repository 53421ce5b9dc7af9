//! The identity provider as the rest of the gateway sees it: its metadata (kept fresh in the
//! background, retried with backoff while the provider is down), its keys, and the two calls
//! the login needs. The gateway starts and serves public paths while the provider is away.

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::bearer::{self, BearerError};
use super::discovery::{self, Metadata};
use super::flow::{self, Attempt, TokenError, TokenResponse};
use super::http::IdpClient;
use super::id_token::{self, Expected, IdTokenError};
use super::introspection;
use super::jwks::Jwks;
use super::logout_token::{self, LogoutClaims, LogoutTokenError};
use crate::config::OidcConfig;

/// Algorithms verified when neither the config nor discovery narrows them. Never `none`;
/// HS256 only when configured.
const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Retry delays while the provider is unreachable: quick at first, then every 30 s.
const BACKOFF: &[Duration] = &[
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

pub(crate) struct Provider {
    config: OidcConfig,
    client: IdpClient,
    pub(crate) metadata: RwLock<Option<Arc<Metadata>>>,
    pub(crate) jwks: Jwks,
}

impl Provider {
    pub(crate) fn new(config: &OidcConfig) -> Arc<Self> {
        Arc::new(Self {
            config: config.clone(),
            client: IdpClient::new(config.http_timeout),
            metadata: RwLock::new(None),
            jwks: Jwks::new(config.jwks_min_refresh),
        })
    }

    /// The metadata, once discovery has succeeded.
    pub(crate) fn metadata(&self) -> Option<Arc<Metadata>> {
        self.metadata
            .read()
            .map(|m| m.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.metadata().is_some()
    }

    async fn load(&self) -> Result<(), String> {
        let metadata = discovery::discover(
            &self.client,
            &self.config.issuer,
            self.config.discovery_url.as_ref(),
        )
        .await;
        crate::ops::metrics::idp_fetch("discovery", metadata.is_ok());
        let metadata = metadata.map_err(|e| crate::error_chain(&e))?;
        self.jwks
            .refresh(&self.client, &metadata.jwks_uri)
            .await
            .map_err(|e| crate::error_chain(&e))?;
        let metadata = Some(Arc::new(metadata));
        match self.metadata.write() {
            Ok(mut slot) => *slot = metadata,
            Err(poisoned) => *poisoned.into_inner() = metadata,
        }
        Ok(())
    }

    /// Discovers the provider, retrying with backoff, then refreshes metadata and keys every
    /// `metadata_refresh` until `stop`. A failed refresh keeps the last good metadata.
    pub(crate) async fn maintain(self: Arc<Self>, stop: CancellationToken) {
        let mut failures = 0usize;
        loop {
            let wait = match self.load().await {
                Ok(()) => {
                    if failures > 0 || !self.is_ready() {
                        tracing::info!(issuer = %self.config.issuer, "identity provider discovered");
                    }
                    failures = 0;
                    self.config.metadata_refresh
                }
                Err(reason) => {
                    tracing::warn!(issuer = %self.config.issuer, error = %reason, "identity provider unavailable");
                    failures += 1;
                    BACKOFF[(failures - 1).min(BACKOFF.len() - 1)]
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn allowed(&self, metadata: &Metadata, alg: Algorithm) -> bool {
        let name = format!("{alg:?}");
        if !self.config.id_token_signing_algs.is_empty() {
            return self.config.id_token_signing_algs.contains(&name);
        }
        let advertised = &metadata.id_token_signing_alg_values_supported;
        ASYMMETRIC.contains(&alg) && (advertised.is_empty() || advertised.contains(&name))
    }

    pub(crate) fn authorization_url(
        &self,
        redirect_uri: &str,
        attempt: &Attempt<'_>,
    ) -> Option<Url> {
        let metadata = self.metadata()?;
        Some(flow::authorization_url(
            &metadata,
            &self.config,
            redirect_uri,
            attempt,
        ))
    }

    /// Redeems an authorization code (Core §3.1.3.1).
    pub(crate) async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, TokenError> {
        let metadata = self.metadata().ok_or(TokenError::Unexpected {
            status: http::StatusCode::SERVICE_UNAVAILABLE,
        })?;
        let grant = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        flow::token_request(&self.client, &metadata, &self.config, &grant).await
    }

    /// Renews tokens with a refresh token (Core §12, RFC 6749 §6).
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, TokenError> {
        let metadata = self.metadata().ok_or(TokenError::Unexpected {
            status: http::StatusCode::SERVICE_UNAVAILABLE,
        })?;
        let grant = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        flow::token_request(&self.client, &metadata, &self.config, &grant).await
    }

    /// The signature of a token from the provider, checked with an allowed algorithm and
    /// the provider's key (or, for HS256 when allowed, the client secret); its claims.
    async fn verified(&self, token: &str) -> Result<Map<String, Value>, IdTokenError> {
        let metadata = self
            .metadata()
            .ok_or_else(|| IdTokenError::NoKey("the provider is not discovered yet".into()))?;
        let (alg_name, kid) = id_token::header_alg_and_kid(token)?;
        let alg = Algorithm::from_str(&alg_name)
            .map_err(|_| IdTokenError::AlgorithmNotAllowed(alg_name.clone()))?;
        if !self.allowed(&metadata, alg) {
            return Err(IdTokenError::AlgorithmNotAllowed(alg_name));
        }
        let key = match alg {
            // HMAC is keyed by the client secret (Core §10.1), never by anything public.
            Algorithm::HS256 => {
                let secret = self
                    .config
                    .client_secret
                    .as_ref()
                    .ok_or_else(|| IdTokenError::NoKey("no client secret for HS256".into()))?;
                DecodingKey::from_secret(secret.expose().as_bytes()).map_err(|_| {
                    IdTokenError::NoKey("the client secret is not an HMAC key".into())
                })?
            }
            _ => self
                .jwks
                .key(&self.client, &metadata.jwks_uri, kid.as_deref(), alg)
                .await
                .map_err(|e| IdTokenError::NoKey(e.to_string()))?,
        };
        id_token::verify(token, alg, &key)
    }

    /// Validates an ID token per Core §3.1.3.7 and returns its claims.
    pub(crate) async fn validate_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
        now: u64,
    ) -> Result<Map<String, Value>, IdTokenError> {
        let claims = self.verified(token).await?;
        let expected = Expected {
            issuer: &self.config.issuer,
            client_id: &self.config.client_id,
            nonce,
            now,
            skew: self.config.clock_skew.as_secs(),
        };
        id_token::check(&claims, &expected)?;
        Ok(claims)
    }

    /// Validates a logout token per Back-Channel Logout 1.0 §2.6.
    pub(crate) async fn validate_logout_token(
        &self,
        token: &str,
        now: u64,
    ) -> Result<LogoutClaims, LogoutTokenError> {
        let claims = self
            .verified(token)
            .await
            .map_err(LogoutTokenError::Token)?;
        logout_token::check(
            &claims,
            &self.config.issuer,
            &self.config.client_id,
            now,
            self.config.clock_skew.as_secs(),
        )
    }

    /// Validates a bearer JWT for one of `audiences`; returns its claims.
    pub(crate) async fn validate_bearer(
        &self,
        token: &str,
        audiences: &[String],
        now: u64,
    ) -> Result<Map<String, Value>, BearerError> {
        let claims = self.verified(token).await.map_err(|e| {
            tracing::debug!(error = %e, "bearer token refused");
            BearerError::Unverified
        })?;
        bearer::check(
            &claims,
            &self.config.issuer,
            audiences,
            now,
            self.config.clock_skew.as_secs(),
        )?;
        Ok(claims)
    }

    /// Asks the provider about an opaque bearer token (RFC 7662); its claims when active and
    /// for one of `audiences`.
    pub(crate) async fn introspect(
        &self,
        token: &str,
        audiences: &[String],
        now: u64,
    ) -> Result<Map<String, Value>, BearerError> {
        let metadata = self.metadata().ok_or(BearerError::Unavailable)?;
        // Without the endpoint an opaque token cannot be checked at all.
        let endpoint = metadata
            .introspection_endpoint
            .as_ref()
            .ok_or(BearerError::Unverified)?;
        let params = [("token", token), ("token_type_hint", "access_token")];
        let (status, body) = flow::client_post(&self.client, endpoint, &self.config, &params)
            .await
            .map_err(|e| {
                tracing::warn!(target: "sessiongate::bearer", error = %crate::error_chain(&e), "token introspection failed");
                BearerError::Unavailable
            })?;
        if !status.is_success() {
            tracing::warn!(target: "sessiongate::bearer", %status, "the introspection endpoint refused the gateway (check the client credentials)");
            return Err(BearerError::Unavailable);
        }
        let response: Map<String, Value> = serde_json::from_slice(&body).map_err(|_| {
            tracing::warn!(target: "sessiongate::bearer", "the introspection response is not a JSON object");
            BearerError::Unavailable
        })?;
        introspection::check_response(
            &response,
            &self.config.issuer,
            audiences,
            now,
            self.config.clock_skew.as_secs(),
        )
    }

    /// The provider's `end_session_endpoint`, for RP-initiated logout.
    pub(crate) fn end_session_endpoint(&self) -> Option<Url> {
        self.metadata()?.end_session_endpoint.clone()
    }
}
