//! TLS for the node: the server side (one port for the client and the peer
//! services; a client certificate is asked for, and required by the peer
//! service), the dialing side (peers dial each other with their region
//! certificate), and reading the region a certificate names.
//!
//! Peers authenticate each other by certificate: a region certificate
//! carries the DNS name `<region>.region.concord` (see [`crate::certs`]).
//! A node dialing a peer verifies the peer's certificate for that name; a
//! node taking a replication stream reads the names of the caller's
//! (verified) certificate with [`caller_regions`] and refuses a hello from
//! any other region.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;

use crate::NodeError;
use crate::certs::REGION_DOMAIN;
use crate::limits::Rejections;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files of a node's TLS setup (TOML table `[tls]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsFiles {
    /// The CA certificate(s) (PEM) that sign every region's certificate:
    /// peers are verified against it (TOML `tls.ca`).
    pub ca: PathBuf,
    /// This region's certificate chain (PEM); it must name the region
    /// (TOML `tls.cert`).
    pub cert: PathBuf,
    /// This region's private key (PEM) (TOML `tls.key`).
    pub key: PathBuf,
}

/// TLS material in memory (PEM bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    /// The CA certificate(s).
    pub ca: Vec<u8>,
    /// This region's certificate chain.
    pub cert: Vec<u8>,
    /// This region's private key.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca", &format_args!("{} bytes", self.ca.len()))
            .field("cert", &format_args!("{} bytes", self.cert.len()))
            .field("key", &"(hidden)")
            .finish()
    }
}

fn tls_error(field: &str, reason: impl Into<String>) -> NodeError {
    NodeError::Tls {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl TlsMaterial {
    /// Reads the three files; the error names the setting (`tls.ca`, ...).
    pub fn load(files: &TlsFiles) -> Result<Self, NodeError> {
        let read = |field: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| tls_error(field, format!("{}: {e}", path.display())))
        };
        Ok(Self {
            ca: read("tls.ca", &files.ca)?,
            cert: read("tls.cert", &files.cert)?,
            key: read("tls.key", &files.key)?,
        })
    }

    /// Checks that everything parses and that the certificate names
    /// `region` (and no other region): a peer would refuse it otherwise.
    pub fn check(&self, region: &str) -> Result<(), NodeError> {
        pem_certs(&self.ca, "tls.ca")?;
        let chain = pem_certs(&self.cert, "tls.cert")?;
        pem_key(&self.key)?;
        let named = chain.first().map(cert_regions).unwrap_or_default();
        if named.len() != 1 || named[0] != region {
            return Err(tls_error(
                "tls.cert",
                format!(
                    "the certificate must name this region as the DNS name {region}.{REGION_DOMAIN}; it names {}",
                    if named.is_empty() {
                        "no region".to_owned()
                    } else {
                        named.join(", ")
                    }
                ),
            ));
        }
        Ok(())
    }

    /// The rustls server configuration: this region's certificate, and a
    /// client certificate asked for (verified against the CA when given,
    /// required by the peer service).
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, NodeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in pem_certs(&self.ca, "tls.ca")? {
            roots
                .add(c)
                .map_err(|e| tls_error("tls.ca", format!("not a usable CA certificate: {e}")))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_error("tls.ca", e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("tls", e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(pem_certs(&self.cert, "tls.cert")?, pem_key(&self.key)?)
            .map_err(|e| tls_error("tls.key", format!("does not fit tls.cert: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// How this node dials `domain` (a peer's region DNS name, or a host)
    /// with its region certificate as client certificate.
    pub(crate) fn dial_config(&self, domain: &str) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca))
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key))
            .domain_name(domain)
    }
}

/// The certificates of a PEM text; `field` names its setting in errors.
pub fn pem_certs(pem: &[u8], field: &str) -> Result<Vec<CertificateDer<'static>>, NodeError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(field, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(field, "no certificate in the file"));
    }
    Ok(certs)
}

fn pem_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, NodeError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| tls_error("tls.key", format!("not a PEM private key: {e}")))
}

/// The regions a certificate names: its DNS names `<region>.region.concord`.
/// Empty for a certificate that cannot be parsed or names none.
pub fn cert_regions(der: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    let suffix = format!(".{REGION_DOMAIN}");
    let mut out: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => d.strip_suffix(suffix.as_str()).map(str::to_owned),
            _ => None,
        })
        .filter(|r| !r.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The regions the caller's verified TLS client certificate names: `None`
/// if the call came without a client certificate (or without TLS).
pub fn caller_regions<T>(request: &Request<T>) -> Option<Vec<String>> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    Some(cert_regions(leaf))
}

/// `address` with the scheme `https` (with TLS on, peers and owners are
/// dialed over TLS whatever scheme their address was written with).
pub(crate) fn https(address: &str) -> String {
    match address.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None if address.contains("://") => address.to_owned(),
        None => format!("https://{address}"),
    }
}

/// Accepts TCP connections on `listener` and makes TLS connections of them
/// (each handshake in its own task, bounded in time). A failed handshake (a
/// certificate from another CA, an expired one, not TLS at all) is counted
/// in `rejections` and dropped; the stream ends when `stop` turns true.
pub(crate) fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    rejections: Arc<Rejections>,
    mut stop: watch::Receiver<bool>,
) -> ReceiverStream<Result<tokio_rustls::server::TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, remote)) => {
                        let _ = tcp.set_nodelay(true);
                        let acceptor = acceptor.clone();
                        let tx = tx.clone();
                        let rejections = rejections.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(tls)) => {
                                    let _ = tx.send(Ok(tls)).await;
                                }
                                Ok(Err(e)) => {
                                    rejections.tls_handshake();
                                    tracing::warn!(%remote, error = %e, "TLS handshake refused");
                                }
                                Err(_) => {
                                    rejections.tls_handshake();
                                    tracing::warn!(%remote, "TLS handshake timed out");
                                }
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = async { let _ = stop.wait_for(|s| *s).await; } => return,
                () = tx.closed() => return,
            }
        }
    });
    ReceiverStream::new(rx)
}
