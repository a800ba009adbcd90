//! TLS for [`Connection`]s (rustls through tokio-rustls, ring provider).
//!
//! [`TlsServer`] holds a certificate chain and key, and optionally the CA
//! whose client certificates it requires; [`TlsClient`] holds the CA it
//! trusts (and optionally its own certificate). Both load PEM files and
//! turn every failure into a [`WireError`] that names the file or says
//! which side lacks TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{Connection, WireError};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, WireError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            WireError::Tls(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| WireError::Tls(format!("bad certificate in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(WireError::Tls(format!(
            "no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, WireError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        WireError::Tls(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    })
}

fn roots(path: &Path) -> Result<RootCertStore, WireError> {
    let mut store = RootCertStore::empty();
    for cert in certs(path)? {
        store.add(cert).map_err(|e| {
            WireError::Tls(format!("bad CA certificate in {}: {e}", path.display()))
        })?;
    }
    Ok(store)
}

fn tls_err(e: rustls::Error) -> WireError {
    WireError::Tls(e.to_string())
}

/// Explains a failed TLS handshake: a peer without TLS sends bytes that
/// are no TLS record, or closes.
fn handshake_err(e: std::io::Error, side: &str) -> WireError {
    let text = e.to_string();
    if text.contains("InvalidContentType")
        || text.contains("corrupt message")
        || e.kind() == std::io::ErrorKind::UnexpectedEof
    {
        WireError::Tls(format!(
            "the {side} did not speak TLS ({text}); is it running without TLS? Turn TLS off on this side or on for the {side}"
        ))
    } else {
        WireError::Tls(format!("handshake with the {side} failed: {text}"))
    }
}

/// The server side: certificate, key, and an optional client CA.
#[derive(Clone)]
pub struct TlsServer(TlsAcceptor);

impl TlsServer {
    /// Loads `cert` (PEM chain) and `key` (PEM); with `client_ca`, only
    /// clients with a certificate it signed are accepted.
    pub fn from_pem_files(
        cert: &Path,
        key_path: &Path,
        client_ca: Option<&Path>,
    ) -> Result<Self, WireError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?;
        let builder = match client_ca {
            Some(ca) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(ca)?),
                    provider(),
                )
                .build()
                .map_err(|e| WireError::Tls(format!("client CA {}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certs(cert)?, key(key_path)?)
            .map_err(|e| {
                WireError::Tls(format!(
                    "{} and {}: {e}",
                    cert.display(),
                    key_path.display()
                ))
            })?;
        Ok(Self(TlsAcceptor::from(Arc::new(config))))
    }

    /// The acceptor, for servers that run their own accept loop (the
    /// answerer cluster's nodes).
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.0
    }

    /// Runs the TLS handshake on an accepted stream.
    pub async fn accept(&self, stream: TcpStream) -> Result<Connection, WireError> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr().ok();
        let tls = self
            .0
            .accept(stream)
            .await
            .map_err(|e| handshake_err(e, "client"))?;
        Ok(Connection::from_stream(tls, peer))
    }
}

/// The client side: the CA it trusts, the name it expects, and an
/// optional certificate of its own.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// Trusts the certificates in `ca` (PEM) for a server called
    /// `server_name` (a DNS name or an IP address); with `identity`
    /// (certificate chain and key, PEM) presents a client certificate.
    pub fn from_pem_files(
        ca: &Path,
        server_name: &str,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, WireError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_root_certificates(roots(ca)?);
        let config = match identity {
            Some((cert, key_path)) => builder
                .with_client_auth_cert(certs(cert)?, key(key_path)?)
                .map_err(|e| WireError::Tls(format!("{}: {e}", cert.display())))?,
            None => builder.with_no_client_auth(),
        };
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| WireError::Tls(format!("server name `{server_name}`: {e}")))?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The connector, for clients that connect their own way (the
    /// answerer cluster's nodes).
    pub fn connector(&self) -> &TlsConnector {
        &self.connector
    }

    /// The name the server's certificate must carry.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// Connects over TCP and runs the TLS handshake.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> Result<Connection, WireError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let peer: Option<SocketAddr> = stream.peer_addr().ok();
        let tls = self
            .connector
            .connect(self.server_name.clone(), stream)
            .await
            .map_err(|e| handshake_err(e, "server"))?;
        Ok(Connection::from_stream(tls, peer))
    }
}
