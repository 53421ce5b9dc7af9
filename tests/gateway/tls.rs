//! TLS on the main listener: a certificate made in the test (rcgen), HTTP/2 chosen by ALPN,
//! the certificate reloaded when its files change, and an https upstream trusted through
//! `upstream.ca_file`.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject as _;

use crate::common::{self, BoxBody};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "sessiongate test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
            .expect("CA certificate");
        Self { issuer }
    }

    /// A certificate for 127.0.0.1 and localhost named `name`: (chain PEM, key PEM).
    fn leaf(&self, name: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    }

    fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).expect("CA root");
        roots
    }
}

fn client_config(ca: &Ca, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(ca.root_store())
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Connects with TLS and returns the ALPN protocol and the server certificate's DER.
async fn handshake(ca: &Ca, addr: std::net::SocketAddr) -> (Option<Vec<u8>>, Vec<u8>) {
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_config(ca, &[b"h2", b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let (_, session) = tls.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let leaf = session.peer_certificates().expect("certificates")[0].to_vec();
    (alpn, leaf)
}

fn write_pair(dir: &std::path::Path, (cert, key): &(String, String)) {
    // The key first: a watcher that sees only the certificate change must not switch yet.
    std::fs::write(dir.join("key.pem"), key).expect("write key");
    std::fs::write(dir.join("cert.pem"), cert).expect("write cert");
}

#[tokio::test]
async fn tls_with_h2_by_alpn_and_a_certificate_reloaded_without_a_restart() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let first = ca.leaf("first");
    write_pair(dir.path(), &first);
    let upstream = common::upstream().await;
    let extra = format!(
        "[server]\ntls_cert = \"{0}/cert.pem\"\ntls_key = \"{0}/key.pem\"\n\
         tls_watch_interval = \"50ms\"\n[access]\npublic_paths = [\"/\"]\n",
        dir.path().display()
    );
    let gateway = common::start(common::config(upstream.addr, &extra)).await;

    let (alpn, leaf) = handshake(&ca, gateway.addr).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "HTTP/2 by ALPN");
    let first_der =
        rustls::pki_types::CertificateDer::from_pem_slice(first.0.as_bytes()).expect("PEM");
    assert_eq!(leaf, first_der.to_vec());

    // A request over h2, through to the upstream, told it came over https.
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config(&ca, &[]))
        .https_only()
        .enable_http2()
        .build();
    let client: Client<_, BoxBody> = Client::builder(TokioExecutor::new()).build(connector);
    let request = http::Request::get(format!("https://127.0.0.1:{}/echo", gateway.addr.port()))
        .body(common::full(""))
        .expect("request");
    let response = client.request(request).await.expect("h2 request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        common::Echo::parse(&body).header("x-forwarded-proto"),
        vec!["https"]
    );

    // Renewed on disk: served without a restart. A broken pair keeps the good one.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handshake(&ca, gateway.addr).await.1, first_der.to_vec());
    let second = ca.leaf("second");
    write_pair(dir.path(), &second);
    let second_der = rustls::pki_types::CertificateDer::from_pem_slice(second.0.as_bytes())
        .expect("PEM")
        .to_vec();
    let mut reloaded = false;
    for _ in 0..100 {
        if handshake(&ca, gateway.addr).await.1 == second_der {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the new certificate is served");
    gateway.shutdown().await;
}

#[tokio::test]
async fn an_https_upstream_is_trusted_through_its_ca_file() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("temp dir");
    write_pair(dir.path(), &ca.leaf("upstream"));
    std::fs::write(dir.path().join("ca.pem"), ca.issuer.pem()).expect("write CA");
    // The https upstream: a second gateway with TLS in front of the plain one.
    let plain = common::upstream().await;
    let tls_upstream = common::start(common::config(
        plain.addr,
        &format!(
            "[server]\ntls_cert = \"{0}/cert.pem\"\ntls_key = \"{0}/key.pem\"\n[access]\npublic_paths = [\"/\"]\n",
            dir.path().display()
        ),
    ))
    .await;
    let upstream_url = format!("https://127.0.0.1:{}", tls_upstream.addr.port());
    let trusting = common::start(common::config(
        plain.addr,
        &format!(
            "[upstream]\nurl = \"{upstream_url}\"\nca_file = \"{}/ca.pem\"\n[access]\npublic_paths = [\"/\"]\n",
            dir.path().display()
        ),
    ))
    .await;
    let (status, _, _) = common::get(&trusting.url("/echo")).await;
    assert_eq!(status, StatusCode::OK, "the internal CA is trusted");
    let untrusting = common::start(common::config(
        plain.addr,
        &format!("[upstream]\nurl = \"{upstream_url}\"\n[access]\npublic_paths = [\"/\"]\n"),
    ))
    .await;
    let (status, _, _) = common::get(&untrusting.url("/echo")).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "without the CA the certificate is refused"
    );
    for gateway in [trusting, untrusting, tls_upstream] {
        gateway.shutdown().await;
    }
}
