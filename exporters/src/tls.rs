//! Client TLS for the network exporters, with rustls (ring): the system
//! roots or a `ca_file` (both with `include_system_ca_certs_pool`), optional
//! client certificate, `min_version`/`max_version`, `insecure_skip_verify`
//! for tests, ALPN for HTTP/2 or HTTP/1.1, the CA and client certificate
//! files read again after each `reload_interval`; or, for credentials that
//! come as data, from PEM in memory ([`connector_pem`]).

use std::sync::Arc;

use std::sync::Mutex;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tern_config::TlsClientConfig;
use tern_core::tls::{SYSTEM_BUNDLES, protocol_versions, system_bundle};
use tokio_rustls::TlsConnector;

use crate::transport::HttpVersion;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {0}: {1}")]
    Pem(String, String),
    /// No CA certificates were found.
    #[error("no CA certificates found (looked in {0}); set tls.ca_file")]
    NoRoots(String),
    /// rustls refused the settings.
    #[error("invalid TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
    /// `min_version` / `max_version` name no versions rustls speaks.
    #[error("{0}: {1}")]
    Version(&'static str, String),
    /// The server name is not a valid DNS name or address.
    #[error("invalid server name `{0}`")]
    ServerName(String),
}

/// Every certificate in a PEM file.
pub fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem(path.to_string(), e.to_string()))
}

/// The CAs a server certificate is verified with: the system's when there
/// is no `ca_file` or `include_system_ca_certs_pool` is set, plus `ca_file`'s.
fn roots(config: &TlsClientConfig) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    if config.ca_file.is_empty() || config.include_system_ca_certs_pool {
        let bundle = system_bundle().ok_or_else(|| TlsError::NoRoots(SYSTEM_BUNDLES.join(", ")))?;
        roots.add_parsable_certificates(certs(bundle)?);
    }
    if !config.ca_file.is_empty() {
        for cert in certs(&config.ca_file)? {
            roots.add(cert)?;
        }
    }
    Ok(roots)
}

/// Builds the connector and the name to verify for `host`.
pub fn connector(
    config: &TlsClientConfig,
    host: &str,
    version: HttpVersion,
) -> Result<(TlsConnector, ServerName<'static>), TlsError> {
    // Installing twice is harmless; the first provider wins.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (min, max) = config
        .versions()
        .map_err(|(key, message)| TlsError::Version(key, message))?;
    let builder = ClientConfig::builder_with_protocol_versions(protocol_versions(min, max));
    let reload = !config.reload_interval.0.is_zero();
    let builder = if config.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
    } else if reload {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Reloading::new(config, verifier)?))
    } else {
        builder.with_root_certificates(roots(config)?)
    };
    let mut client = if config.cert_file.is_empty() {
        builder.with_no_client_auth()
    } else if reload {
        builder.with_client_cert_resolver(Arc::new(Reloading::new(config, client_key)?))
    } else {
        let key = PrivateKeyDer::from_pem_file(&config.key_file)
            .map_err(|e| TlsError::Pem(config.key_file.clone(), e.to_string()))?;
        builder.with_client_auth_cert(certs(&config.cert_file)?, key)?
    };
    client.alpn_protocols = match version {
        HttpVersion::Http2 => vec![b"h2".to_vec()],
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
    };
    let name = if config.server_name_override.is_empty() {
        host
    } else {
        &config.server_name_override
    };
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| TlsError::ServerName(name.to_string()))?;
    Ok((TlsConnector::from(Arc::new(client)), server_name))
}

/// A client TLS connector (HTTP/1.1) from PEM held in memory: `ca` (the
/// only roots trusted), an optional client certificate and key, or no
/// verification at all (`skip_verify`). For credentials that come as data
/// rather than settings (a kubeconfig's `*-data` fields).
pub fn connector_pem(
    ca: &[u8],
    client: Option<(&[u8], &[u8])>,
    skip_verify: bool,
    host: &str,
) -> Result<(TlsConnector, ServerName<'static>), TlsError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = ClientConfig::builder();
    let builder = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
    } else {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca) {
            roots.add(cert.map_err(|e| TlsError::Pem("the CA data".into(), e.to_string()))?)?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots("the CA data".into()));
        }
        builder.with_root_certificates(roots)
    };
    let mut client = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Pem("the client certificate".into(), e.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| TlsError::Pem("the client key".into(), e.to_string()))?;
            builder.with_client_auth_cert(certs, key)?
        }
    };
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|_| TlsError::ServerName(host.to_string()))?;
    Ok((TlsConnector::from(Arc::new(client)), server_name))
}

/// A verifier of server certificates by `config`'s roots.
fn verifier(config: &TlsClientConfig) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    WebPkiServerVerifier::builder(Arc::new(roots(config)?))
        .build()
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))
}

/// The client certificate and key of `config`'s files.
fn client_key(config: &TlsClientConfig) -> Result<Arc<CertifiedKey>, TlsError> {
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|e| TlsError::Pem(config.key_file.clone(), e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    Ok(Arc::new(CertifiedKey::from_der(
        certs(&config.cert_file)?,
        key,
        &provider,
    )?))
}

/// `reload_interval`: what `load` makes of the TLS files (the roots'
/// verifier, the client certificate), made again from the files at the
/// first handshake after each interval, as the Collector does; a reload
/// that fails keeps what was loaded before, with a warning.
struct Reloading<T> {
    config: TlsClientConfig,
    load: fn(&TlsClientConfig) -> Result<T, TlsError>,
    /// What is in force, and when to read the files again.
    current: Mutex<(T, Instant)>,
}

impl<T: Clone> Reloading<T> {
    fn new(
        config: &TlsClientConfig,
        load: fn(&TlsClientConfig) -> Result<T, TlsError>,
    ) -> Result<Reloading<T>, TlsError> {
        Ok(Reloading {
            current: Mutex::new((load(config)?, Instant::now() + config.reload_interval.0)),
            config: config.clone(),
            load,
        })
    }

    /// What is in force now, read again first when the interval is over.
    fn get(&self) -> T {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now >= current.1 {
            match (self.load)(&self.config) {
                Ok(loaded) => {
                    tracing::debug!(ca_file = %self.config.ca_file, cert_file = %self.config.cert_file, "client TLS files read again (reload_interval)");
                    current.0 = loaded;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reload the client TLS files; keeping those loaded before")
                }
            }
            current.1 = now + self.config.reload_interval.0;
        }
        current.0.clone()
    }
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("ca_file", &self.config.ca_file)
            .field("cert_file", &self.config.cert_file)
            .finish()
    }
}

impl ServerCertVerifier for Reloading<Arc<WebPkiServerVerifier>> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.get()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.get().supported_verify_schemes()
    }
}

impl ResolvesClientCert for Reloading<Arc<CertifiedKey>> {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `insecure_skip_verify`: accepts any certificate.
#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_system_ca_certs_pool_adds_the_system_roots_to_ca_file() {
        let Some(system) = system_bundle() else {
            // No system bundle on this machine: nothing to add.
            return;
        };
        let system_count = roots(&TlsClientConfig::default()).unwrap().len();
        assert!(system_count > 1, "{system}");
        // A CA file with one certificate of the system bundle.
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("ca.pem");
        let pem = std::fs::read_to_string(system).unwrap();
        let end = "-----END CERTIFICATE-----";
        let first = &pem[pem.find("-----BEGIN CERTIFICATE-----").unwrap()..];
        let first = &first[..first.find(end).unwrap() + end.len()];
        std::fs::write(&one, format!("{first}\n")).unwrap();
        let only_file = TlsClientConfig {
            ca_file: one.display().to_string(),
            ..TlsClientConfig::default()
        };
        assert_eq!(roots(&only_file).unwrap().len(), 1);
        let both = TlsClientConfig {
            include_system_ca_certs_pool: true,
            ..only_file
        };
        assert!(roots(&both).unwrap().len() >= system_count);
    }
}
