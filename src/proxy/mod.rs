//! Forwarding one request to the upstream application and its response back, streaming
//! both bodies, and relaying protocol upgrades (WebSocket).
//!
//! This module knows nothing of sessions or OIDC: the caller hands it the identity headers
//! to add, already decided.

pub(crate) mod headers;
mod tunnel;

use std::error::Error as _;
use std::time::Duration;

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::config::UpstreamConfig;
use headers::Peer;
pub(crate) use tunnel::{Ending, Tunnels};

/// Why a request could not be forwarded. Each maps to one status code at the HTTP edge.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    #[error("cannot connect to the upstream")]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    #[error("the upstream did not answer within {0:?}")]
    ResponseTimeout(Duration),
    #[error("the upstream connection failed")]
    Upstream(#[source] hyper_util::client::legacy::Error),
    #[error("the request target cannot be forwarded")]
    BadTarget,
    #[error("the upstream switched protocols without being asked to")]
    UnaskedUpgrade,
}

impl ProxyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ProxyError::ConnectTimeout | ProxyError::ResponseTimeout(_) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::BadTarget => StatusCode::BAD_REQUEST,
            ProxyError::Connect(_) | ProxyError::Upstream(_) | ProxyError::UnaskedUpgrade => {
                StatusCode::BAD_GATEWAY
            }
        }
    }
}

/// What the caller knows about the request beyond its own headers.
pub(crate) struct Forward {
    pub(crate) peer: Peer,
    /// `X-Real-IP`: the client as vouched for by trusted proxies.
    pub(crate) client_ip: std::net::IpAddr,
    /// Scheme of the client's connection to us.
    pub(crate) proto: &'static str,
    /// Headers to add after all rewriting: the identity the gateway asserts.
    pub(crate) identity: HeaderMap,
    /// For a WebSocket: what closes it before its ends do (the session ending).
    pub(crate) ending: Option<Ending>,
}

/// The response, and how long the upstream took to send its headers.
pub(crate) struct Forwarded {
    pub(crate) response: Response<Body>,
    pub(crate) upstream_latency: Duration,
}

/// The upstream application and a pooled HTTP/1.1 client for it.
#[derive(Clone)]
pub(crate) struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    scheme_authority: (http::uri::Scheme, http::uri::Authority),
    /// Base path without a trailing `/` (empty for the root).
    base_path: String,
    preserve_host: bool,
    response_timeout: Duration,
    tunnels: Tunnels,
}

impl Upstream {
    pub(crate) fn new(config: &UpstreamConfig, tunnels: Tunnels) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::upstream_client(config.ca_file.as_deref())?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let url = &config.url;
        let authority = match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) if host.contains(':') => format!("[{host}]:{port}"),
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => return Err(format!("upstream.url {url} has no host")),
        };
        let authority = authority
            .parse()
            .map_err(|e| format!("upstream.url authority: {e}"))?;
        let scheme = url
            .scheme()
            .parse()
            .map_err(|e| format!("upstream.url scheme: {e}"))?;
        Ok(Self {
            client,
            scheme_authority: (scheme, authority),
            base_path: url.path().trim_end_matches('/').to_string(),
            preserve_host: config.preserve_host,
            response_timeout: config.response_timeout,
            tunnels,
        })
    }

    fn target(&self, original: &Uri) -> Result<Uri, ProxyError> {
        let path_and_query = original.path_and_query().map_or("/", |pq| pq.as_str());
        let path_and_query = if path_and_query.starts_with('/') {
            format!("{}{path_and_query}", self.base_path)
        } else {
            // `*` (OPTIONS) and absolute forms are not forwarded.
            return Err(ProxyError::BadTarget);
        };
        let (scheme, authority) = self.scheme_authority.clone();
        Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| ProxyError::BadTarget)
    }

    /// Sends the request upstream and returns the response, streaming both bodies.
    pub(crate) async fn forward(
        &self,
        mut request: Request<Body>,
        forward: Forward,
    ) -> Result<Forwarded, ProxyError> {
        let upgrade =
            request.version() == Version::HTTP_11 && headers::is_upgrade_request(request.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();

        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        parts.uri = self.target(&parts.uri)?;
        parts.version = Version::HTTP_11;
        let headers = &mut parts.headers;
        headers::remove_hop_by_hop(headers, upgrade);
        // hyper answers `Expect: 100-continue` to the client itself when the body is read.
        headers.remove(header::EXPECT);
        headers::join_cookies(headers);
        headers::set_forwarding(
            headers,
            forward.peer,
            forward.client_ip,
            forward.proto,
            host.clone(),
        );
        match host {
            Some(host) if self.preserve_host => {
                headers.insert(header::HOST, host);
            }
            // The client fills in the upstream's own authority.
            _ => {
                headers.remove(header::HOST);
            }
        }
        for (name, value) in &forward.identity {
            headers.append(name, value.clone());
        }

        let started = Instant::now();
        let sent = self.client.request(Request::from_parts(parts, body));
        let mut response = match tokio::time::timeout(self.response_timeout, sent).await {
            Err(_) => return Err(ProxyError::ResponseTimeout(self.response_timeout)),
            Ok(Err(e)) if e.is_connect() && caused_by_timeout(&e) => {
                return Err(ProxyError::ConnectTimeout);
            }
            Ok(Err(e)) if e.is_connect() => return Err(ProxyError::Connect(e)),
            Ok(Err(e)) => return Err(ProxyError::Upstream(e)),
            Ok(Ok(response)) => response,
        };
        let upstream_latency = started.elapsed();

        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        match client_upgrade {
            Some(client_upgrade) if switching => {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                self.tunnels
                    .spawn(client_upgrade, upstream_upgrade, forward.ending.clone());
                headers::remove_hop_by_hop(response.headers_mut(), true);
            }
            // Relaying a 101 nobody asked for would leave the client's connection in limbo.
            None if switching => return Err(ProxyError::UnaskedUpgrade),
            _ => headers::remove_hop_by_hop(response.headers_mut(), false),
        }
        Ok(Forwarded {
            response: response.map(Body::new),
            upstream_latency,
        })
    }
}

fn caused_by_timeout(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = cause.source();
    }
    false
}
