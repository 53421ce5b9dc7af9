//! TLS with rustls (on `ring`): the main listener's certificate, reloaded when its files
//! change so a renewed certificate (certbot, cert-manager) needs no restart, and the client
//! side for an https upstream, with the public roots plus an optional CA of the operator's.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::TlsFiles;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its key, and checks that they belong together.
fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, String> {
    let cert = files.cert.display();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("server.tls_cert {cert}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("server.tls_cert {cert}: no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("server.tls_key {}: {e}", files.key.display()))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("server.tls_key {}: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("server.tls_key does not belong to server.tls_cert: {e}"))?;
    Ok(Arc::new(certified))
}

/// The files' modification times and sizes: a change in either means a new pair.
fn stamp(files: &TlsFiles) -> Stamp {
    let one = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    Some([one(&files.cert)?, one(&files.key)?])
}

/// What both files looked like: modification time and size of each.
type Stamp = Option<[(SystemTime, u64); 2]>;

/// The certificate the listener presents, swapped in place when the files change.
pub(crate) struct ReloadingCert {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// What the files looked like when last loaded, and when a load last failed.
    seen: Mutex<(Stamp, Stamp)>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReloadingCert({})", self.files.cert.display())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .map(|c| c.clone())
                .unwrap_or_else(|p| p.into_inner().clone()),
        )
    }
}

impl ReloadingCert {
    fn new(files: &TlsFiles) -> Result<Self, String> {
        let seen = stamp(files);
        Ok(Self {
            current: RwLock::new(load(files)?),
            files: files.clone(),
            seen: Mutex::new((seen, None)),
        })
    }

    /// Loads the files again if they changed. A pair that does not load (half written, key
    /// and certificate mismatched) leaves the current certificate in service.
    fn check(&self) {
        let now = stamp(&self.files);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_none() || now == seen.0 || now == seen.1 {
            return;
        }
        match load(&self.files) {
            Ok(certified) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = certified;
                *seen = (now, None);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                seen.1 = now;
                tracing::warn!(error = %e, "the new TLS certificate does not load: keeping the current one");
            }
        }
    }

    /// Checks the files every `watch_interval` until `stop`.
    pub(crate) async fn watch(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.files.watch_interval) => self.check(),
            }
        }
    }
}

/// The listener's TLS acceptor (HTTP/2 and HTTP/1.1 by ALPN), and the certificate to watch.
pub(crate) fn acceptor(files: &TlsFiles) -> Result<(TlsAcceptor, Arc<ReloadingCert>), String> {
    let cert = Arc::new(ReloadingCert::new(files)?);
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), cert))
}

/// The client configuration for an https upstream: the public roots, and `ca_file`'s
/// certificates when given (an internal CA).
pub(crate) fn upstream_client(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("upstream.ca_file {}: {e}", file.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "upstream.ca_file {}: no CA certificate in it",
                file.display()
            ));
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A handshake must finish within this time, like a request head.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
