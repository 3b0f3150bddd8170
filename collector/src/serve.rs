//! The accept loop every Tern server uses (OTLP gRPC, OTLP HTTP, health,
//! self-metrics): one task per connection (TLS handshake included, so a
//! slow client never blocks accepting), served by hyper, and a graceful stop
//! that lets requests in flight finish. Also builds server TLS settings.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Tells servers to stop; cloned into each.
pub type Shutdown = watch::Receiver<bool>;

/// HTTP versions a server speaks.
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2 (prior knowledge).
    Auto,
    /// HTTP/2 only (gRPC), with an optional cap on concurrent streams.
    Http2 {
        /// Most concurrent streams per connection.
        max_concurrent_streams: Option<u32>,
    },
}

/// How long a stopping server waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(5);
/// How long a client gets to finish its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why server TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    /// A PEM file could not be read.
    #[error("{key}: {error}")]
    Pem {
        /// The config key.
        key: String,
        /// The problem.
        error: tern_exporters::tls::TlsError,
    },
    /// rustls refused the settings.
    #[error("{key}: invalid TLS settings: {message}")]
    Rustls {
        /// The config key.
        key: String,
        /// The problem.
        message: String,
    },
}

/// A TLS acceptor for `config`; `key` names the setting in messages.
pub fn tls_acceptor(
    config: &tern_config::TlsServerConfig,
    alpn: &[&[u8]],
    key: &str,
) -> Result<TlsAcceptor, ServerTlsError> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = |k: &str, error| ServerTlsError::Pem {
        key: format!("{key}.{k}"),
        error,
    };
    let rustls_err = |message: String| ServerTlsError::Rustls {
        key: key.to_string(),
        message,
    };
    let certs = tern_exporters::tls::certs(&config.cert_file).map_err(|e| pem("cert_file", e))?;
    let private = PrivateKeyDer::from_pem_file(&config.key_file).map_err(|e| {
        pem(
            "key_file",
            tern_exporters::tls::TlsError::Pem(config.key_file.clone(), e.to_string()),
        )
    })?;
    let builder = rustls::ServerConfig::builder();
    let builder = if config.client_ca_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in tern_exporters::tls::certs(&config.client_ca_file)
            .map_err(|e| pem("client_ca_file", e))?
        {
            roots.add(cert).map_err(|e| rustls_err(e.to_string()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(roots.into())
            .build()
            .map_err(|e| rustls_err(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut server = builder
        .with_single_cert(certs, private)
        .map_err(|e| rustls_err(e.to_string()))?;
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(std::sync::Arc::new(server)))
}

/// Serves connections from `listener` until `shutdown` turns true. `make`
/// builds the service for one connection from the client's address.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    protocol: Protocol,
    tls: Option<TlsAcceptor>,
    shutdown: Shutdown,
    make: F,
) where
    F: Fn(SocketAddr) -> S,
    S: hyper::service::Service<
            http::Request<Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = Builder::new(TokioExecutor::new());
    if let Protocol::Http2 {
        max_concurrent_streams,
    } = protocol
    {
        builder = builder.http2_only();
        if let Some(n) = max_concurrent_streams {
            builder.http2().max_concurrent_streams(n);
        }
    }
    let graceful = GracefulShutdown::new();
    let mut shutdown = shutdown;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(ok) => ok,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (service, builder, watcher, tls) =
                    (make(peer), builder.clone(), graceful.watcher(), tls.clone());
                tokio::spawn(async move {
                    let io: Box<dyn Io> = match tls {
                        None => Box::new(stream),
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => Box::new(s),
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            }
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
}

/// A response with `status`, `content_type` and `body`.
pub fn response(
    status: http::StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> http::Response<http_body_util::Full<Bytes>> {
    let mut r = http::Response::new(http_body_util::Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut Shutdown) {
    loop {
        let stop = *shutdown.borrow_and_update();
        if stop || shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Binds `endpoint` (`host:port`), with a message that names the key.
pub async fn bind(endpoint: &str, key: &str) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(endpoint).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("{key}: cannot listen on {endpoint}: {e}"))
    })
}
