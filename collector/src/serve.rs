//! The accept loop every Tern server uses (OTLP gRPC, OTLP HTTP, health,
//! self-metrics): one task per connection (TLS handshake included, so a
//! slow client never blocks accepting), served by hyper, and a graceful stop
//! that lets requests in flight finish. Also builds server TLS settings
//! (versions, client certificates, a certificate reloaded from disk).
//!
//! No client holds a connection for free (slowloris): a new connection must
//! deliver a complete request head within [`HEADER_TIMEOUT`], a connection
//! with no request in flight is closed after [`IDLE_TIMEOUT`] (HTTP/2 with
//! GOAWAY), the receivers give a request body [`BODY_TIMEOUT`] to arrive,
//! and a listener serves at most [`MAX_CONNECTIONS`] at once: at the cap it
//! stops accepting (clients wait in the kernel's accept queue) until one
//! closes. These are the defaults of a server's [`Limits`], which the otlp
//! receiver sets from its keys (`read_header_timeout`, `idle_timeout`,
//! `max_connection_age`, `max_connections`, ...); docs/configuration.md
//! lists them against the Collector's. On gRPC, client PINGs are watched
//! below the HTTP/2 codec ([`PingPolicy`]) and a client that pings too
//! often is closed, as gRPC-Go does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tern_core::telemetry::{ConnectionMetrics, LogLimiter};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
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
        /// Buffers between each connection and the HTTP/2 codec.
        buffers: Buffers,
    },
}

/// Buffers between a connection (after TLS) and its HTTP/2 codec, as
/// gRPC-Go's `ReadBufferSize` and `WriteBufferSize`: a read fills up to
/// `read` bytes from the socket at once, for the codec to take frames
/// from; answers are gathered up to `write` bytes (or until the codec
/// flushes, which it does after each batch of frames) before one write to
/// the socket. 0 means none: the codec reads and writes the socket itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buffers {
    /// Read buffer capacity in bytes.
    pub read: usize,
    /// Write buffer capacity in bytes.
    pub write: usize,
}

/// `io` behind `buffers`.
fn buffered(io: Box<dyn Io>, buffers: Buffers) -> Box<dyn Io> {
    use tokio::io::{BufReader, BufStream, BufWriter};
    match (buffers.read, buffers.write) {
        (0, 0) => io,
        (read, 0) => Box::new(BufReader::with_capacity(read, io)),
        (0, write) => Box::new(BufWriter::with_capacity(write, io)),
        (read, write) => Box::new(BufStream::with_capacity(read, write, io)),
    }
}

/// How long a new connection may take to deliver its first complete
/// request head (HTTP/1 headers; for HTTP/2 the preface and a HEADERS
/// frame): the Collector's `read_header_timeout` default.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connection may go without a request in flight before it is
/// closed, counted from its last answer (the next request head must be in
/// by then). The Collector closes idle HTTP connections after 1 minute;
/// Tern waits 2, so that SDKs exporting every 60 s (the metric reader's
/// default interval) keep their connection instead of racing its close,
/// and clients with a shorter idle limit of their own (Go's is 90 s) close
/// first, which is the side that cannot lose a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a request body may take to arrive in full once its head is in.
/// The Collector's `write_timeout` (30 s) bounds the same span there: a
/// handler still reading after it cannot answer. OTLP SDKs give up on an
/// export after 10 s by default, so no real client needs longer.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections one listener serves at once. Far above what a node's
/// SDKs or a gateway's agents open; low enough that a flood of idle
/// connections holds at most about 64 MiB (some 16 KiB each for HTTP/2,
/// 10 KiB for a half-sent HTTP/1 head, measured), plus, on gRPC, each
/// connection's [`Buffers`] as far as data has filled them.
pub const MAX_CONNECTIONS: u32 = 4096;
/// How long a connection being closed (idle, timed out, or the server
/// stopping) gets to finish what is in flight before it is dropped.
pub const DRAIN: Duration = Duration::from_secs(5);
/// How long a client gets to finish its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// What one server bounds; [`Limits::default`] holds Tern's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a new connection may take to deliver its first complete
    /// request head.
    pub header: Duration,
    /// How long a connection may go without a request in flight.
    pub idle: Duration,
    /// Most connections the listener serves at once.
    pub max_connections: u32,
    /// Close (gracefully: GOAWAY on HTTP/2) a connection this long after it
    /// opened, give or take up to 10 % at random per connection (as
    /// gRPC-Go, so that connections opened together do not all close
    /// together).
    pub max_age: Option<Duration>,
    /// How long a connection closed for its age gets to finish what is in
    /// flight.
    pub age_grace: Duration,
    /// Whether HTTP/1 connections are kept open between requests.
    pub keep_alive: bool,
    /// Largest request head in bytes (HTTP/1 read buffer, HTTP/2 header
    /// list); `None` keeps hyper's own.
    pub max_header_size: Option<u32>,
    /// HTTP/2 server pings: after this long without activity, and closing
    /// the connection when the ack takes longer than the second.
    pub ping: Option<(Duration, Duration)>,
    /// How often an HTTP/2 client may ping; `None`: as often as it likes.
    pub client_pings: Option<PingPolicy>,
}

/// gRPC-Go's rule for client pings (`keepalive.enforcement_policy`): a
/// ping sooner than `min_time` after the previous one (2 h when no call is
/// in flight, unless `permit_without_stream`) is a strike, an answer
/// clears the strikes, and a third strike closes the connection (GOAWAY,
/// counted with `reason="too_many_pings"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingPolicy {
    /// Shortest interval between pings.
    pub min_time: Duration,
    /// Whether pings are held to `min_time` with no call in flight too.
    pub permit_without_stream: bool,
}

/// The interval gRPC-Go demands between pings on a connection with no
/// call in flight, when `permit_without_stream` is false.
const IDLE_PING_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);
/// Strikes a connection may have; one more closes it (gRPC-Go's).
const MAX_PING_STRIKES: u32 = 2;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header: HEADER_TIMEOUT,
            idle: IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_age: None,
            age_grace: DRAIN,
            keep_alive: true,
            max_header_size: None,
            ping: None,
            client_pings: None,
        }
    }
}

/// `d`, unless it is zero (a config duration left at 0).
pub fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why server TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    /// A certificate, key or CA could not be read.
    #[error("{key}: {message}")]
    Pem {
        /// The config key.
        key: String,
        /// The problem.
        message: String,
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

/// Reads the certificate chain and key `config` names (files or inline
/// PEM) into a key rustls serves; `key` names the `tls` setting.
fn certified_key(
    config: &tern_config::TlsServerConfig,
    key: &str,
) -> Result<rustls::sign::CertifiedKey, ServerTlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |k: &str, message: String| ServerTlsError::Pem {
        key: format!("{key}.{k}"),
        message,
    };
    let certs = if config.cert_file.is_empty() {
        CertificateDer::pem_slice_iter(config.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem("cert_pem", e.to_string()))?
    } else {
        tern_exporters::tls::certs(&config.cert_file)
            .map_err(|e| pem("cert_file", e.to_string()))?
    };
    if certs.is_empty() {
        let k = if config.cert_file.is_empty() {
            "cert_pem"
        } else {
            "cert_file"
        };
        return Err(pem(k, "no certificate found".into()));
    }
    let private = if config.key_file.is_empty() {
        PrivateKeyDer::from_pem_slice(config.key_pem.as_bytes())
            .map_err(|e| pem("key_pem", e.to_string()))?
    } else {
        PrivateKeyDer::from_pem_file(&config.key_file)
            .map_err(|e| pem("key_file", format!("cannot read {}: {e}", config.key_file)))?
    };
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(certs, private, &provider).map_err(|e| {
        ServerTlsError::Rustls {
            key: key.to_string(),
            message: e.to_string(),
        }
    })
}

/// Serves a receiver's certificate, reading it from disk again at the
/// first handshake after each `reload_interval` (as the Collector does).
/// A reload that fails keeps the certificate served so far, with a
/// warning.
#[derive(Debug)]
struct Certificate {
    config: tern_config::TlsServerConfig,
    /// The `tls` setting, for messages.
    key: String,
    /// The key served, and when to read the files again (`None`: never).
    current: std::sync::Mutex<(Arc<rustls::sign::CertifiedKey>, Option<std::time::Instant>)>,
}

impl Certificate {
    fn new(
        config: &tern_config::TlsServerConfig,
        key: &str,
    ) -> Result<Certificate, ServerTlsError> {
        let loaded = Arc::new(certified_key(config, key)?);
        let interval = config.reload_interval.0;
        let files = !config.cert_file.is_empty() || !config.key_file.is_empty();
        let next = (files && !interval.is_zero()).then(|| std::time::Instant::now() + interval);
        Ok(Certificate {
            config: config.clone(),
            key: key.to_string(),
            current: std::sync::Mutex::new((loaded, next)),
        })
    }
}

impl rustls::server::ResolvesServerCert for Certificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if let Some(next) = current.1
            && now >= next
        {
            match certified_key(&self.config, &self.key) {
                Ok(loaded) => {
                    tracing::info!(setting = %self.key, "TLS certificate reloaded");
                    current.0 = Arc::new(loaded);
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot reload the TLS certificate; still serving the one loaded before"
                ),
            }
            current.1 = Some(now + self.config.reload_interval.0);
        }
        Some(current.0.clone())
    }
}

/// A TLS acceptor for `config`; `key` names the setting in messages.
pub fn tls_acceptor(
    config: &tern_config::TlsServerConfig,
    alpn: &[&[u8]],
    key: &str,
) -> Result<TlsAcceptor, ServerTlsError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rustls_err = |message: String| ServerTlsError::Rustls {
        key: key.to_string(),
        message,
    };
    let (min, max) = config
        .versions()
        .map_err(|(k, message)| rustls_err(format!("{k}: {message}")))?;
    let builder = rustls::ServerConfig::builder_with_protocol_versions(
        tern_core::tls::protocol_versions(min, max),
    );
    let builder = if config.client_ca_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            tern_exporters::tls::certs(&config.client_ca_file).map_err(|e| ServerTlsError::Pem {
                key: format!("{key}.client_ca_file"),
                message: e.to_string(),
            })?
        {
            roots.add(cert).map_err(|e| rustls_err(e.to_string()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(roots.into())
            .build()
            .map_err(|e| rustls_err(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut server = builder.with_cert_resolver(Arc::new(Certificate::new(config, key)?));
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Why a connection ended (the `reason` of
/// `tern_receiver_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The client closed it, or the exchange ended it (an answer that
    /// closes the connection).
    Closed,
    /// An I/O or protocol error.
    Error,
    /// No complete request head within [`Limits::header`] of connecting.
    HeaderTimeout,
    /// No request in flight for [`Limits::idle`].
    Idle,
    /// Open for [`Limits::max_age`].
    MaxAge,
    /// The client pinged more often than [`Limits::client_pings`] allows.
    TooManyPings,
    /// The TLS handshake failed or took longer than 10 s.
    TlsHandshake,
    /// The server stopped.
    Shutdown,
}

impl Close {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Close::Closed => "closed",
            Close::Error => "error",
            Close::HeaderTimeout => "header_timeout",
            Close::Idle => "idle",
            Close::MaxAge => "max_age",
            Close::TooManyPings => "too_many_pings",
            Close::TlsHandshake => "tls_handshake",
            Close::Shutdown => "shutdown",
        }
    }
}

/// One of a listener's [`Limits::max_connections`] places, held while the
/// connection lives; counts it open and, on [`Slot::close`], closed.
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Option<ConnectionMetrics>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, metrics: Option<ConnectionMetrics>) -> Slot {
        if let Some(m) = &metrics {
            m.open.add(1);
        }
        Slot {
            _permit: permit,
            metrics,
        }
    }

    fn close(&self, reason: Close) {
        if let Some(m) = &self.metrics {
            m.closed(reason.as_str());
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.open.add(-1);
        }
    }
}

/// A hyper connection builder for `protocol` within `limits`.
pub fn builder(protocol: Protocol, limits: &Limits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(limits.keep_alive);
    if let Some(size) = limits.max_header_size {
        let bytes = usize::try_from(size).unwrap_or(usize::MAX);
        builder.http1().max_buf_size(bytes.max(8192));
        builder.http2().max_header_list_size(size);
    }
    if let Some((interval, timeout)) = limits.ping {
        builder
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(interval)
            .keep_alive_timeout(timeout);
    }
    if let Protocol::Http2 {
        max_concurrent_streams,
        ..
    } = protocol
    {
        builder = builder.http2_only();
        if let Some(n) = max_concurrent_streams {
            builder.http2().max_concurrent_streams(n);
        }
    }
    builder
}

/// Serves connections from `listener` until `shutdown` turns true, within
/// `limits` (at most [`Limits::max_connections`] at a time), counting them
/// in `metrics` when given. `make` builds the service for one connection
/// from the client's address.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    protocol: Protocol,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    metrics: Option<ConnectionMetrics>,
    shutdown: Shutdown,
    make: F,
) where
    F: Fn(SocketAddr) -> S,
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = builder(protocol, &limits);
    let buffers = match protocol {
        Protocol::Auto => Buffers::default(),
        Protocol::Http2 { buffers, .. } => buffers,
    };
    let places = Arc::new(Semaphore::new(limits.max_connections as usize));
    let at_cap_log = LogLimiter::default();
    let mut stop = shutdown.clone();
    loop {
        let permit = match places.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(m) = &metrics {
                    m.limit_reached.add(1);
                }
                if let Some(held_back) = at_cap_log.allow() {
                    tracing::warn!(
                        address = ?listener.local_addr().ok(),
                        limit = limits.max_connections,
                        similar_since_last_line = held_back,
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    permit = places.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = stopped(&mut stop) => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let slot = Slot::new(permit, metrics.clone());
        let (service, builder, tls, shutdown) =
            (make(peer), builder.clone(), tls.clone(), shutdown.clone());
        tokio::spawn(async move {
            let io: Box<dyn Io> = match tls {
                None => Box::new(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            slot.close(Close::TlsHandshake);
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            slot.close(Close::TlsHandshake);
                            return;
                        }
                    }
                }
            };
            let reason =
                connection(buffered(io, buffers), service, &builder, &limits, shutdown).await;
            tracing::debug!(%peer, reason = reason.as_str(), "connection closed");
            slot.close(reason);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, places.acquire_many(limits.max_connections))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
}

/// What a connection's requests tell its timer, in atomics so that a
/// request costs no wake-up of the connection task: the timer looks when
/// it fires.
struct Activity {
    /// When the connection started serving; times are kept relative to it.
    opened: Instant,
    /// The header and idle timeouts.
    header: Duration,
    idle: Duration,
    /// Requests being served now.
    in_flight: AtomicUsize,
    /// Whether any request came yet.
    any: AtomicBool,
    /// When the last answer was given, in nanoseconds after `opened`.
    last_answer: AtomicU64,
}

impl Activity {
    /// When the connection's limit next runs out, or why it ran out now.
    fn deadline(&self, now: Instant) -> Result<Instant, Close> {
        if !self.any.load(Ordering::Acquire) {
            let at = self.opened + self.header;
            return if at > now {
                Ok(at)
            } else {
                Err(Close::HeaderTimeout)
            };
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Ok(now + self.idle);
        }
        let answered = Duration::from_nanos(self.last_answer.load(Ordering::Acquire));
        let at = self.opened + answered + self.idle;
        if at > now { Ok(at) } else { Err(Close::Idle) }
    }
}

/// `age` moved by a random amount within ±10 %.
fn jittered(age: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    // A fraction in [-0.1, 0.1].
    let fraction = (random % 2001) as f64 / 10_000.0 - 0.1;
    age.mul_f64(1.0 + fraction)
}

/// Where an HTTP/2 frame reader stands in the bytes a client sends.
#[derive(Debug)]
struct Frames {
    /// Bytes of the client preface still to pass.
    preface: usize,
    /// The frame header being read, and how much of it is in.
    header: [u8; 9],
    filled: usize,
    /// Bytes of the current frame's payload still to pass.
    skip: usize,
}

impl Frames {
    fn new() -> Frames {
        Frames {
            preface: 24,
            header: [0; 9],
            filled: 0,
            skip: 0,
        }
    }

    /// Reads `data`, the next bytes from the client; calls `ping` for each
    /// PING frame that is not an acknowledgement.
    fn feed(&mut self, mut data: &[u8], mut ping: impl FnMut()) {
        while !data.is_empty() {
            let pass = if self.preface > 0 {
                &mut self.preface
            } else if self.skip > 0 {
                &mut self.skip
            } else {
                let n = (9 - self.filled).min(data.len());
                self.header[self.filled..self.filled + n].copy_from_slice(&data[..n]);
                self.filled += n;
                data = &data[n..];
                if self.filled == 9 {
                    self.filled = 0;
                    let h = self.header;
                    self.skip = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                    const PING: u8 = 0x6;
                    const ACK: u8 = 0x1;
                    if h[3] == PING && h[4] & ACK == 0 {
                        ping();
                    }
                }
                continue;
            };
            let n = (*pass).min(data.len());
            *pass -= n;
            data = &data[n..];
        }
    }
}

/// A connection's bytes from the client, watched for PING frames against
/// a [`PingPolicy`]: HTTP/2 codecs answer pings themselves and never show
/// them, so they are counted here, below the codec (after TLS).
struct PingWatch<I> {
    io: I,
    policy: PingPolicy,
    frames: Frames,
    activity: Arc<Activity>,
    /// When the last ping came, and the strikes so far.
    last_ping: Option<Instant>,
    strikes: u32,
    /// [`Activity::last_answer`] at the last ping: an answer since clears
    /// the strikes, as sending headers or data does in gRPC-Go.
    answers_seen: u64,
    /// Told once the client has struck out.
    struck_out: Arc<tokio::sync::Notify>,
}

impl<I> PingWatch<I> {
    /// Judges one ping that came now.
    fn ping(&mut self) {
        let now = Instant::now();
        let answered = self.activity.last_answer.load(Ordering::Acquire);
        if answered != self.answers_seen {
            self.answers_seen = answered;
            self.strikes = 0;
        } else if let Some(last) = self.last_ping {
            let idle = self.activity.in_flight.load(Ordering::Acquire) == 0;
            let least = if idle && !self.policy.permit_without_stream {
                IDLE_PING_INTERVAL
            } else {
                self.policy.min_time
            };
            if now.saturating_duration_since(last) < least {
                self.strikes += 1;
                if self.strikes == MAX_PING_STRIKES + 1 {
                    self.struck_out.notify_one();
                }
            }
        }
        self.last_ping = Some(now);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for PingWatch<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if polled.is_ready() {
            let this = &mut *self;
            let mut pings = 0u32;
            this.frames.feed(&buf.filled()[before..], || pings += 1);
            for _ in 0..pings {
                this.ping();
            }
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for PingWatch<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// One request in flight on a connection, while it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.any.store(true, Ordering::Release);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let since = Instant::now().saturating_duration_since(a.opened);
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        a.last_answer.fetch_max(nanos, Ordering::AcqRel);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one connection until it ends, [`Limits::header`] or
/// [`Limits::idle`] passes without a request in flight, it reaches
/// [`Limits::max_age`], or `shutdown`; then closes it gracefully (HTTP/1
/// after the answer being written, HTTP/2 with GOAWAY), dropping it if
/// that takes longer than [`DRAIN`] ([`Limits::age_grace`] at its age).
/// Says why it ended.
pub async fn connection<I, S, B>(
    io: I,
    service: S,
    builder: &Builder<TokioExecutor>,
    limits: &Limits,
    mut shutdown: Shutdown,
) -> Close
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity {
        opened: Instant::now(),
        header: limits.header,
        idle: limits.idle,
        in_flight: AtomicUsize::new(0),
        any: AtomicBool::new(false),
        last_answer: AtomicU64::new(0),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        let busy = InFlight::enter(&requests);
        let answer = service.call(req);
        async move {
            let response = answer.await;
            drop(busy);
            response
        }
    });
    let struck_out = Arc::new(tokio::sync::Notify::new());
    let io: Box<dyn Io> = match limits.client_pings {
        None => Box::new(io),
        Some(policy) => Box::new(PingWatch {
            io,
            policy,
            frames: Frames::new(),
            activity: activity.clone(),
            last_ping: None,
            strikes: 0,
            answers_seen: 0,
            struck_out: struck_out.clone(),
        }),
    };
    let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(io), service));
    let mut deadline = activity.opened + limits.header;
    let aged = async {
        match limits.max_age {
            Some(age) => tokio::time::sleep_until(activity.opened + jittered(age)).await,
            None => std::future::pending().await,
        }
    };
    let mut aged = std::pin::pin!(aged);
    let reason = loop {
        tokio::select! {
            ended = conn.as_mut() => {
                return match ended {
                    Ok(()) => Close::Closed,
                    Err(e) => {
                        tracing::debug!(error = %e, "connection ended with an error");
                        Close::Error
                    }
                };
            }
            () = tokio::time::sleep_until(deadline) => {
                match activity.deadline(Instant::now()) {
                    Ok(next) => deadline = next,
                    Err(expired) => break expired,
                }
            }
            () = aged.as_mut() => break Close::MaxAge,
            () = struck_out.notified() => break Close::TooManyPings,
            () = stopped(&mut shutdown) => break Close::Shutdown,
        }
    };
    if reason == Close::HeaderTimeout {
        // No request ever started, so there is nothing to finish: a client
        // still trickling its head is not waited for.
        return reason;
    }
    conn.as_mut().graceful_shutdown();
    let drain = if reason == Close::MaxAge {
        limits.age_grace
    } else {
        DRAIN
    };
    if let Ok(Err(e)) = tokio::time::timeout(drain, conn).await {
        tracing::debug!(error = %e, "connection ended with an error while closing");
    }
    reason
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

/// Binds `endpoint` (`host:port`; `:port` means every interface, as in
/// Go), with a message that names the key.
pub async fn bind(endpoint: &str, key: &str) -> Result<TcpListener, std::io::Error> {
    let address = match endpoint.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => endpoint.to_string(),
    };
    TcpListener::bind(address).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("{key}: cannot listen on {endpoint}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    //! The connection limits on tokio's paused clock: each test runs the
    //! real defaults (minutes) in virtual time, over an in-memory pipe.

    use super::*;
    use http::StatusCode;
    use http_body_util::{BodyExt, Full};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    /// Answers `body` after `delay`.
    fn answering(
        delay: Duration,
        body: &'static [u8],
    ) -> impl Service<
        http::Request<Incoming>,
        Response = http::Response<Full<Bytes>>,
        Error = Infallible,
        Future: Send + 'static,
    > + Send
    + 'static {
        hyper::service::service_fn(move |_req| async move {
            tokio::time::sleep(delay).await;
            Ok(response(StatusCode::OK, "text/plain", body))
        })
    }

    fn pipe() -> (DuplexStream, DuplexStream) {
        tokio::io::duplex(4096)
    }

    /// Serves `server` over HTTP/1 with an immediate `ok` answer; returns
    /// why it closed and when.
    async fn serve_ok(server: DuplexStream, shutdown: Shutdown) -> (Close, Instant) {
        let reason = connection(
            server,
            answering(Duration::ZERO, b"ok"),
            &builder(Protocol::Auto, &Limits::default()),
            &Limits::default(),
            shutdown,
        )
        .await;
        (reason, Instant::now())
    }

    /// Reads until the pipe closes; returns what came.
    async fn read_to_close(client: &mut DuplexStream) -> String {
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads one `ok` answer.
    async fn read_answer(client: &mut DuplexStream) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while !out.ends_with(b"\r\n\r\nok") {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the answer");
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_at_the_header_timeout() {
        let (mut client, server) = pipe();
        let (_stop, shutdown) = watch::channel(false);
        let opened = Instant::now();
        let served = tokio::spawn(serve_ok(server, shutdown));
        assert_eq!(read_to_close(&mut client).await, "");
        let (reason, at) = served.await.unwrap();
        assert_eq!(reason, Close::HeaderTimeout);
        assert!(at - opened >= HEADER_TIMEOUT, "{:?}", at - opened);
        assert!(at - opened < HEADER_TIMEOUT + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_header_sent_a_byte_at_a_time_is_cut_off() {
        let (client, server) = pipe();
        let (_stop, shutdown) = watch::channel(false);
        let opened = Instant::now();
        let (mut read, mut write) = tokio::io::split(client);
        // Slowloris: an endless header, one line every 5 s.
        let trickle = tokio::spawn(async move {
            let _ = write.write_all(b"POST / HTTP/1.1\r\n").await;
            let mut lines = 0u32;
            while write.write_all(b"x-a: b\r\n").await.is_ok() {
                lines += 1;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            lines
        });
        let (reason, at) = serve_ok(server, shutdown).await;
        assert_eq!(reason, Close::HeaderTimeout);
        // Cut at the timeout, not after a drain.
        assert!(at - opened < HEADER_TIMEOUT + Duration::from_secs(1));
        let mut rest = Vec::new();
        assert_eq!(read.read_to_end(&mut rest).await.unwrap(), 0);
        assert!(trickle.await.unwrap() >= 12, "the client kept sending");
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_is_closed_when_idle() {
        let (mut client, server) = pipe();
        let (_stop, shutdown) = watch::channel(false);
        let served = tokio::spawn(serve_ok(server, shutdown));
        client.write_all(GET).await.unwrap();
        assert!(read_answer(&mut client).await.starts_with("HTTP/1.1 200"));
        let answered = Instant::now();
        // A second request well within the idle timeout is served.
        tokio::time::sleep(IDLE_TIMEOUT - Duration::from_secs(1)).await;
        client.write_all(GET).await.unwrap();
        assert!(read_answer(&mut client).await.starts_with("HTTP/1.1 200"));
        assert_eq!(read_to_close(&mut client).await, "");
        let (reason, at) = served.await.unwrap();
        assert_eq!(reason, Close::Idle);
        assert!(at - answered >= 2 * IDLE_TIMEOUT - Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_its_connection() {
        let (mut client, server) = pipe();
        let (_stop, shutdown) = watch::channel(false);
        // An answer that takes three idle timeouts still arrives.
        let slow = answering(3 * IDLE_TIMEOUT, b"ok");
        let served = tokio::spawn(async move {
            connection(
                server,
                slow,
                &builder(Protocol::Auto, &Limits::default()),
                &Limits::default(),
                shutdown,
            )
            .await
        });
        client.write_all(GET).await.unwrap();
        assert!(read_answer(&mut client).await.starts_with("HTTP/1.1 200"));
        assert_eq!(read_to_close(&mut client).await, "");
        assert_eq!(served.await.unwrap(), Close::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_reads_its_answer_is_dropped() {
        let (client, server) = pipe();
        let (_stop, shutdown) = watch::channel(false);
        let opened = Instant::now();
        // 1 MiB answer into a 4 KiB pipe the client never reads.
        static BIG: [u8; 1 << 20] = [b'x'; 1 << 20];
        let big = answering(Duration::ZERO, &BIG);
        let (_read, mut write) = tokio::io::split(client);
        write.write_all(GET).await.unwrap();
        let reason = connection(
            server,
            big,
            &builder(Protocol::Auto, &Limits::default()),
            &Limits::default(),
            shutdown,
        )
        .await;
        assert_eq!(reason, Close::Idle);
        assert!(Instant::now() - opened <= IDLE_TIMEOUT + DRAIN + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_get_goaway_when_idle() {
        let (client, server) = pipe();
        let (_stop, shutdown) = watch::channel(false);
        let h2 = builder(
            Protocol::Http2 {
                max_concurrent_streams: None,
                buffers: Buffers::default(),
            },
            &Limits::default(),
        );
        let served = tokio::spawn(async move {
            connection(
                server,
                answering(Duration::ZERO, b"ok"),
                &h2,
                &Limits::default(),
                shutdown,
            )
            .await
        });
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client))
                .await
                .unwrap();
        let driver = tokio::spawn(conn);
        let req = http::Request::post("http://x/")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        let answered = Instant::now();
        // The client's connection ends cleanly: GOAWAY, then close.
        driver.await.unwrap().unwrap();
        assert_eq!(served.await.unwrap(), Close::Idle);
        assert!(Instant::now() - answered >= IDLE_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_get_goaway_at_their_max_age_with_grace_for_calls() {
        let (client, server) = pipe();
        let (_stop, shutdown) = watch::channel(false);
        let limits = Limits {
            max_age: Some(Duration::from_secs(30)),
            age_grace: Duration::from_secs(20),
            ..Limits::default()
        };
        let h2 = builder(
            Protocol::Http2 {
                max_concurrent_streams: None,
                buffers: Buffers::default(),
            },
            &limits,
        );
        let opened = Instant::now();
        // A call that takes 40 s: still in flight at the age, done within
        // the grace.
        let slow = answering(Duration::from_secs(40), b"ok");
        let served =
            tokio::spawn(async move { connection(server, slow, &h2, &limits, shutdown).await });
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client))
                .await
                .unwrap();
        let driver = tokio::spawn(conn);
        let req = http::Request::post("http://x/")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        driver.await.unwrap().unwrap();
        assert_eq!(served.await.unwrap(), Close::MaxAge);
        let lived = Instant::now() - opened;
        assert!(lived >= Duration::from_secs(40) && lived < Duration::from_secs(50));
    }

    /// The client preface and an empty SETTINGS frame.
    const H2_START: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

    /// A PING frame (`ack` sets its flag).
    fn ping_frame(ack: bool) -> Vec<u8> {
        let mut f = vec![0, 0, 8, 0x6, u8::from(ack), 0, 0, 0, 0];
        f.extend_from_slice(&[1; 8]);
        f
    }

    #[test]
    fn frames_are_found_however_the_bytes_are_split() {
        let mut stream = H2_START.to_vec();
        // A HEADERS frame whose payload holds a PING's bytes, then pings.
        stream.extend_from_slice(&[0, 0, 17, 0x1, 0x4, 0, 0, 0, 1]);
        stream.extend_from_slice(&ping_frame(false)[..17]);
        stream.extend_from_slice(&ping_frame(false));
        stream.extend_from_slice(&ping_frame(true));
        stream.extend_from_slice(&ping_frame(false));
        for piece in [1, 3, 9, 1000] {
            let mut frames = Frames::new();
            let mut pings = 0;
            for chunk in stream.chunks(piece) {
                frames.feed(chunk, || pings += 1);
            }
            assert_eq!(pings, 2, "in pieces of {piece}");
        }
    }

    /// Serves gRPC-style HTTP/2 under `policy`; the client sends its
    /// preface and then a PING every `every` until the connection closes;
    /// returns why it closed and the pings sent.
    async fn pinged(policy: PingPolicy, every: Duration) -> (Close, u32) {
        let (client, server) = pipe();
        let (_stop, shutdown) = watch::channel(false);
        let limits = Limits {
            client_pings: Some(policy),
            ..Limits::default()
        };
        let h2 = builder(
            Protocol::Http2 {
                max_concurrent_streams: None,
                buffers: Buffers::default(),
            },
            &limits,
        );
        let (mut read, mut write) = tokio::io::split(client);
        // Drain what the server sends, so it never blocks on the pipe.
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = read.read_to_end(&mut sink).await;
        });
        let client = tokio::spawn(async move {
            write.write_all(H2_START).await.unwrap();
            let mut sent = 0u32;
            while write.write_all(&ping_frame(false)).await.is_ok() {
                sent += 1;
                tokio::time::sleep(every).await;
            }
            sent
        });
        let answer = answering(Duration::ZERO, b"ok");
        let reason = connection(server, answer, &h2, &limits, shutdown).await;
        // The connection is gone, so the client's next write fails.
        (reason, client.await.unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn too_frequent_pings_strike_out_the_connection() {
        let grpc_go = PingPolicy {
            min_time: Duration::from_secs(300),
            permit_without_stream: false,
        };
        // Without a call, pings every 10 s: the first is free, three more
        // are three strikes (before the 60 s header timeout).
        let (reason, sent) = pinged(grpc_go, Duration::from_secs(10)).await;
        assert_eq!(reason, Close::TooManyPings);
        assert!(sent >= 4, "{sent}");
        // Allowed without a call, at least min_time apart: never struck;
        // the connection ends for its own reasons (no request came).
        let relaxed = PingPolicy {
            min_time: Duration::from_secs(10),
            permit_without_stream: true,
        };
        let (reason, sent) = pinged(relaxed, Duration::from_secs(11)).await;
        assert_eq!(reason, Close::HeaderTimeout);
        assert!(sent >= 5, "{sent}");
        // The same pings without permit_without_stream strike out.
        let strict = PingPolicy {
            permit_without_stream: false,
            ..relaxed
        };
        let (reason, _) = pinged(strict, Duration::from_secs(11)).await;
        assert_eq!(reason, Close::TooManyPings);
    }

    #[test]
    fn max_age_jitter_stays_within_ten_percent_and_varies() {
        let age = Duration::from_secs(100);
        let ages: std::collections::BTreeSet<Duration> = (0..50).map(|_| jittered(age)).collect();
        assert!(ages.len() > 1, "no jitter");
        for a in &ages {
            assert!(
                *a >= Duration::from_secs(90) && *a <= Duration::from_secs(110),
                "{a:?}"
            );
        }
    }

    /// What a [`Recorder`] saw: the size of each read asked of it and of
    /// each write made to it.
    type Seen = Arc<std::sync::Mutex<(Vec<usize>, Vec<usize>)>>;

    /// A socket that records its reads and writes in a [`Seen`].
    struct Recorder(Seen);

    impl AsyncRead for Recorder {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.0.lock().unwrap().0.push(buf.remaining());
            let n = buf.remaining().min(16);
            buf.put_slice(&[7; 16][..n]);
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.0.lock().unwrap().1.push(buf.len());
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Reads 4 bytes and writes three 10-byte pieces and a flush through
    /// `buffers`; returns what the socket saw (reads asked, writes made).
    async fn through(buffers: Buffers) -> (Vec<usize>, Vec<usize>) {
        let seen = Seen::default();
        let mut io = buffered(Box::new(Recorder(seen.clone())), buffers);
        let mut four = [0u8; 4];
        io.read_exact(&mut four).await.unwrap();
        for _ in 0..3 {
            io.write_all(&[1; 10]).await.unwrap();
        }
        io.flush().await.unwrap();
        seen.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn buffers_set_the_socket_reads_and_writes() {
        // None: the socket sees the caller's own reads and writes.
        assert_eq!(
            through(Buffers::default()).await,
            (vec![4], vec![10, 10, 10])
        );
        // A read buffer asks the socket for its whole capacity at once.
        let read = Buffers {
            read: 65536,
            write: 0,
        };
        assert_eq!(through(read).await, (vec![65536], vec![10, 10, 10]));
        // A write buffer gathers the pieces into one write at the flush.
        let write = Buffers {
            read: 0,
            write: 4096,
        };
        assert_eq!(through(write).await, (vec![4], vec![30]));
        let both = Buffers {
            read: 1024,
            write: 16,
        };
        // 16 bytes hold one piece; the second does not fit, so the first
        // goes out, and so on.
        assert_eq!(through(both).await, (vec![1024], vec![10, 10, 10]));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_lets_the_request_in_flight_finish() {
        let (mut client, server) = pipe();
        let (stop, shutdown) = watch::channel(false);
        let slow = answering(Duration::from_secs(2), b"ok");
        let served = tokio::spawn(async move {
            connection(
                server,
                slow,
                &builder(Protocol::Auto, &Limits::default()),
                &Limits::default(),
                shutdown,
            )
            .await
        });
        client.write_all(GET).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.send(true).unwrap();
        assert!(read_answer(&mut client).await.starts_with("HTTP/1.1 200"));
        assert_eq!(read_to_close(&mut client).await, "");
        assert_eq!(served.await.unwrap(), Close::Shutdown);
    }
}
