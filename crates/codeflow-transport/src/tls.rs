//! TLS set-up. CodeFlow uses rustls with the `ring` provider only (no aws-lc), installed once
//! per process before any TLS connection or listener is created.

use std::path::Path;

/// Installs `ring` as the process-wide rustls provider. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no PEM certificate.
    #[error("{path} has no PEM certificate")]
    NoCertificate {
        /// The file.
        path: String,
    },
    /// The file holds no PEM private key.
    #[error("{path} has no PEM private key")]
    NoKey {
        /// The file.
        path: String,
    },
    /// rustls refused the certificate and key (the reason is rustls's).
    #[error("the certificate and key do not form a valid TLS configuration: {0}")]
    Invalid(String),
}

/// Builds a server configuration from PEM files. With `client_ca`, every client must present
/// a certificate signed by one of the CAs in that PEM file (mutual TLS).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, TlsError> {
    install_crypto_provider();
    let (certs, key) = read_identity(cert, key)?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = read_roots(ca)?;
            let verifier =
                rustls::server::WebPkiClientVerifier::builder(std::sync::Arc::new(roots))
                    .build()
                    .map_err(|e| TlsError::Invalid(format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone, Default)]
pub enum ServerTrust {
    /// The public web roots (the default).
    #[default]
    PublicRoots,
    /// Only the CA certificates in this PEM file (a private CA).
    CaFile(std::path::PathBuf),
    /// No check at all. For a test bench only; the caller must say so loudly.
    Insecure,
}

/// A client configuration for `trust`, presenting `identity` (certificate and key PEM files)
/// when the server asks for a client certificate; `None` for the default (public roots, no
/// client certificate).
pub fn client_config(
    trust: &ServerTrust,
    identity: Option<(&Path, &Path)>,
) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, TlsError> {
    install_crypto_provider();
    let config = match trust {
        ServerTrust::PublicRoots if identity.is_none() => return Ok(None),
        ServerTrust::PublicRoots => {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            rustls::ClientConfig::builder().with_root_certificates(roots)
        }
        ServerTrust::CaFile(path) => {
            rustls::ClientConfig::builder().with_root_certificates(read_roots(path)?)
        }
        ServerTrust::Insecure => rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAnyCertificate)),
    };
    let config = match identity {
        None => config.with_no_client_auth(),
        Some((cert, key)) => {
            let (certs, key) = read_identity(cert, key)?;
            config
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::Invalid(e.to_string()))?
        }
    };
    Ok(Some(std::sync::Arc::new(config)))
}

/// The CA certificates in a PEM file.
fn read_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
        roots
            .add(cert)
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(roots)
}

type Identity = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// A certificate chain and its key from PEM files.
fn read_identity(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.display().to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: key.display().to_string(),
    })?;
    Ok((certs, key))
}

/// Accepts any server certificate (handshake signatures are still checked). Only behind
/// [`ServerTrust::Insecure`].
#[derive(Debug)]
struct AcceptAnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
