//! The HTTP client for the identity provider: discovery, JWKS and the token endpoint.
//!
//! One pooled client with a time limit per request, a cap on response bodies, and no
//! redirects followed (a provider that redirects its endpoints is misconfigured, and following
//! redirects with credentials is how they leak). https uses the Mozilla roots built in;
//! plain http is only ever configured for loopback providers (the config refuses it otherwise).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use url::Url;

/// Provider responses are small JSON documents; anything larger is refused.
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("cannot reach {url}")]
    Unreachable {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("{url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url} answered {status}")]
    Status {
        url: String,
        status: StatusCode,
        body: Bytes,
    },
    #[error("{url} sent an unreadable or oversized body")]
    Body { url: String },
    #[error("{url} sent invalid JSON")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Clone)]
pub(crate) struct IdpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl IdpClient {
    pub(crate) fn new(timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self { client, timeout }
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        url: &Url,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        let url_text = url.as_str().to_string();
        let exchange =
            async {
                let response = self.client.request(request).await.map_err(|source| {
                    HttpError::Unreachable {
                        url: url_text.clone(),
                        source,
                    }
                })?;
                let status = response.status();
                let body = Limited::new(response.into_body(), MAX_BODY)
                    .collect()
                    .await
                    .map_err(|_| HttpError::Body {
                        url: url_text.clone(),
                    })?
                    .to_bytes();
                Ok((status, body))
            };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout {
                url: url.as_str().to_string(),
                timeout: self.timeout,
            })?
    }

    /// GETs a JSON document; any status but 200 is an error.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<T, HttpError> {
        let request = Request::get(url.as_str())
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|_| HttpError::Body {
                url: url.to_string(),
            })?;
        let (status, body) = self.send(request, url).await?;
        if status != StatusCode::OK {
            return Err(HttpError::Status {
                url: url.to_string(),
                status,
                body,
            });
        }
        serde_json::from_slice(&body).map_err(|source| HttpError::Json {
            url: url.to_string(),
            source,
        })
    }

    /// POSTs a form; returns the status and body whatever the status, for the caller to read
    /// OAuth error responses (RFC 6749 §5.2).
    pub(crate) async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        authorization: Option<String>,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = Request::post(url.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| HttpError::Body {
                url: url.to_string(),
            })?;
        self.send(request, url).await
    }
}
