//! The accept loop every Tern server uses (OTLP gRPC, OTLP HTTP, health,
//! self-metrics): one task per connection, served by hyper, and a graceful
//! stop that lets requests in flight finish.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

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

/// Serves connections from `listener` until `shutdown` turns true. `make`
/// builds the service for one connection from the client's address.
pub async fn serve<F, S, B>(listener: TcpListener, protocol: Protocol, shutdown: Shutdown, make: F)
where
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
                let conn = builder.serve_connection(TokioIo::new(stream), make(peer)).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
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
