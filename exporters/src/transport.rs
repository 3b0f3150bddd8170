//! The client side of the network exporters: connections to a backend over
//! HTTP/1.1 or HTTP/2 (h2c or TLS via rustls), kept alive and reused, and
//! spread over every address the endpoint's name resolves to (re-resolved
//! every 30 s), so a gateway behind a DNS name gets an even share on each
//! replica (`round_robin`; `pick_first` keeps to the first address). One
//! multiplexed connection per address for HTTP/2; a small idle pool per
//! address for HTTP/1.1, bounded in total (`max_idle_conns`), with idle
//! connections dropped after `idle_conn_timeout`, or none kept at all
//! (`disable_keep_alives`). Through an HTTP proxy (`proxy_url`), plain
//! HTTP/1.1 requests go to the proxy in absolute form and everything else
//! (TLS, HTTP/2) through a CONNECT tunnel; the proxy's addresses are the
//! ones resolved and pooled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tern_config::Target;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// HTTP version spoken to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 (OTLP/HTTP).
    Http1,
    /// HTTP/2 (gRPC).
    Http2,
}

/// Why a request got no HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The name did not resolve.
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    /// TCP connect failed.
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    /// TLS handshake failed.
    #[error("TLS handshake with {0} failed: {1}")]
    Tls(SocketAddr, std::io::Error),
    /// The HTTP exchange failed.
    #[error("HTTP error talking to {0}: {1}")]
    Http(SocketAddr, String),
    /// The proxy did not open a tunnel.
    #[error("proxy {0} refused the tunnel: {1}")]
    Proxy(SocketAddr, String),
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers, with trailers (gRPC) merged in.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// Largest response body read (backends answer with small messages).
const MAX_RESPONSE: usize = 4 * 1024 * 1024;
const RESOLVE_EVERY: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_IDLE_PER_ADDRESS: usize = 32;

/// How a [`Transport`] picks addresses and keeps connections.
#[derive(Debug, Clone)]
pub struct Options {
    /// Always use the first resolved address (gRPC `pick_first`) instead of
    /// rotating over all of them (`round_robin`).
    pub pick_first: bool,
    /// The HTTP/2 `:authority` sent instead of the endpoint's `host:port`.
    pub authority: Option<String>,
    /// Most idle HTTP/1.1 connections kept over all addresses (0: no limit
    /// but the per-address one).
    pub max_idle: usize,
    /// Idle HTTP/1.1 connections older than this are not reused (`None`: no limit).
    pub idle_timeout: Option<Duration>,
    /// Reuse HTTP/1.1 connections; when false each request has its own
    /// connection, asked to close with `Connection: close`.
    pub keep_alive: bool,
    /// Connect through this HTTP proxy.
    pub proxy: Option<Proxy>,
}

/// An HTTP proxy.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Its host and port.
    pub target: Target,
    /// `Proxy-Authorization` sent to it (`Basic` with the URL's credentials).
    pub authorization: Option<http::HeaderValue>,
}

/// Largest CONNECT answer head read from a proxy.
const MAX_PROXY_HEAD: usize = 8 * 1024;

/// Asks the proxy on `io` for a tunnel to `authority` and reads its answer
/// (byte by byte, so nothing of the tunnelled stream is consumed).
async fn open_tunnel(
    io: &mut tokio::net::TcpStream,
    authority: &str,
    authorization: Option<&http::HeaderValue>,
) -> Result<(), String> {
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    if let Some(a) = authorization {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(a.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    io.write_all(&head).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= MAX_PROXY_HEAD {
            return Err("answer head too long".into());
        }
        let byte = io.read_u8().await.map_err(|e| e.to_string())?;
        answer.push(byte);
    }
    let status_line = String::from_utf8_lossy(&answer);
    let status_line = status_line.lines().next().unwrap_or_default();
    match status_line.split(' ').nth(1) {
        Some(code) if code.starts_with('2') && code.len() == 3 => Ok(()),
        _ => Err(status_line.to_string()),
    }
}

impl Default for Options {
    /// The Collector's client defaults: round robin, 100 idle connections
    /// idle at most 90 s, keep-alive on.
    fn default() -> Self {
        Options {
            pick_first: false,
            authority: None,
            max_idle: 100,
            idle_timeout: Some(Duration::from_secs(90)),
            keep_alive: true,
            proxy: None,
        }
    }
}

/// A request body made of chunks sent as they are: a batch's encoded
/// requests go out without being copied into one buffer.
#[derive(Debug, Clone, Default)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    len: u64,
}

impl Chunks {
    /// A body of `chunks`, in order.
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks { chunks, len }
    }

    /// Total length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.chunks.pop_front() {
            Some(chunk) => {
                self.len -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Default)]
struct Resolved {
    addrs: Vec<SocketAddr>,
    at: Option<Instant>,
    next: usize,
}

impl Resolved {
    /// The next address: round robin, or always the first with `pick_first`.
    fn next_addr(&mut self, pick_first: bool) -> Option<SocketAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        if pick_first {
            return self.addrs.first().copied();
        }
        self.next = self.next.wrapping_add(1);
        Some(self.addrs[self.next % self.addrs.len()])
    }
}

/// Connections to one backend.
pub struct Transport {
    target: Target,
    version: HttpVersion,
    tls: Option<(TlsConnector, rustls_pki_types::ServerName<'static>)>,
    options: Options,
    resolved: Mutex<Resolved>,
    h2: Mutex<HashMap<SocketAddr, http2::SendRequest<Chunks>>>,
    h1: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
}

/// An idle HTTP/1.1 connection and since when it is idle.
type Idle = (http1::SendRequest<Chunks>, Instant);

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("target", &self.target)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Connections to `target`; `tls` is the connector and the name to
    /// verify when the target uses TLS.
    pub fn new(
        target: Target,
        version: HttpVersion,
        tls: Option<(TlsConnector, rustls_pki_types::ServerName<'static>)>,
        options: Options,
    ) -> Self {
        Transport {
            target,
            version,
            tls,
            options,
            resolved: Mutex::new(Resolved::default()),
            h2: Mutex::new(HashMap::new()),
            h1: Mutex::new(HashMap::new()),
        }
    }

    /// The backend.
    pub fn target(&self) -> &Target {
        &self.target
    }

    async fn pick(&self) -> Result<SocketAddr, TransportError> {
        let stale = {
            let r = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
            r.addrs.is_empty() || r.at.is_none_or(|at| at.elapsed() > RESOLVE_EVERY)
        };
        if stale {
            // Through a proxy, connections go to the proxy.
            let authority = match &self.options.proxy {
                Some(p) => p.target.authority(),
                None => self.target.authority(),
            };
            match tokio::net::lookup_host(authority.clone()).await {
                Ok(addrs) => {
                    let mut addrs: Vec<SocketAddr> = addrs.collect();
                    addrs.sort();
                    addrs.dedup();
                    let mut r = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
                    r.addrs = addrs;
                    r.at = Some(Instant::now());
                    let keep = r.addrs.clone();
                    drop(r);
                    self.lock_h2().retain(|a, _| keep.contains(a));
                    self.lock_h1().retain(|a, _| keep.contains(a));
                }
                Err(e) => {
                    let r = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
                    if r.addrs.is_empty() {
                        return Err(TransportError::Resolve(authority, e));
                    }
                    tracing::warn!(endpoint = %authority, error = %e, "DNS refresh failed; keeping the previous addresses");
                }
            }
        }
        let mut r = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        r.next_addr(self.options.pick_first).ok_or_else(|| {
            TransportError::Resolve(
                self.target.authority(),
                std::io::Error::other("no addresses"),
            )
        })
    }

    fn lock_h2(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, http2::SendRequest<Chunks>>> {
        self.h2.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_h1(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Idle>>> {
        self.h1.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an idle connection may still be used.
    fn usable(&self, (sender, since): &Idle) -> bool {
        !sender.is_closed()
            && self
                .options
                .idle_timeout
                .is_none_or(|t| since.elapsed() < t)
    }

    /// Keeps `sender` for reuse at `addr` if keep-alive and the limits allow.
    fn keep_idle(&self, addr: SocketAddr, sender: http1::SendRequest<Chunks>) {
        if !self.options.keep_alive {
            return;
        }
        let mut pool = self.lock_h1();
        for list in pool.values_mut() {
            list.retain(|idle| self.usable(idle));
        }
        let total: usize = pool.values().map(Vec::len).sum();
        let list = pool.entry(addr).or_default();
        let room = self.options.max_idle == 0 || total < self.options.max_idle;
        if room && list.len() < MAX_IDLE_PER_ADDRESS {
            list.push((sender, Instant::now()));
        }
    }

    /// Whether requests go to the proxy in absolute form (plain HTTP/1.1
    /// through a proxy); everything else through a proxy is tunnelled.
    fn absolute_form(&self) -> bool {
        self.options.proxy.is_some() && self.tls.is_none() && self.version == HttpVersion::Http1
    }

    async fn connect(&self, addr: SocketAddr) -> Result<TokioIo<Box<dyn Io>>, TransportError> {
        let mut tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| TransportError::Connect(addr, std::io::ErrorKind::TimedOut.into()))?
            .map_err(|e| TransportError::Connect(addr, e))?;
        let _ = tcp.set_nodelay(true);
        if let Some(proxy) = &self.options.proxy
            && !self.absolute_form()
        {
            let authority = self.target.authority();
            let tunnel = open_tunnel(&mut tcp, &authority, proxy.authorization.as_ref());
            tokio::time::timeout(CONNECT_TIMEOUT, tunnel)
                .await
                .map_err(|_| TransportError::Proxy(addr, "no answer".into()))?
                .map_err(|e| TransportError::Proxy(addr, e))?;
        }
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| TransportError::Tls(addr, e))?,
            ),
        };
        Ok(TokioIo::new(io))
    }

    /// POSTs `body` to `path` with `headers` and reads the whole reply.
    pub async fn post(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: Chunks,
    ) -> Result<Reply, TransportError> {
        let addr = self.pick().await?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut builder = Request::post(match self.version {
            HttpVersion::Http2 => {
                let authority = match &self.options.authority {
                    Some(a) => a.clone(),
                    None => self.target.authority(),
                };
                format!("{scheme}://{authority}{path}")
            }
            HttpVersion::Http1 if self.absolute_form() => {
                format!("http://{}{path}", self.target.authority())
            }
            HttpVersion::Http1 => path.to_string(),
        });
        if let Some(Proxy {
            authorization: Some(a),
            ..
        }) = &self.options.proxy
            && self.absolute_form()
        {
            builder = builder.header(http::header::PROXY_AUTHORIZATION, a.clone());
        }
        if self.version == HttpVersion::Http1 {
            builder = builder.header(http::header::HOST, self.target.authority());
            if !self.options.keep_alive {
                builder = builder.header(http::header::CONNECTION, "close");
            }
        }
        let mut req = builder
            .body(body)
            .map_err(|e| TransportError::Http(addr, e.to_string()))?;
        req.headers_mut().extend(headers.clone());
        let http_err = |e: hyper::Error| TransportError::Http(addr, e.to_string());
        let response = match self.version {
            HttpVersion::Http2 => {
                let existing = self
                    .lock_h2()
                    .get(&addr)
                    .filter(|s| !s.is_closed())
                    .cloned();
                let mut sender = match existing {
                    Some(s) => s,
                    None => {
                        let io = self.connect(addr).await?;
                        let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                            .await
                            .map_err(http_err)?;
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(%addr, error = %e, "HTTP/2 connection closed");
                            }
                        });
                        self.lock_h2().insert(addr, sender.clone());
                        sender
                    }
                };
                sender.ready().await.map_err(http_err)?;
                sender.send_request(req).await.map_err(|e| {
                    self.lock_h2().remove(&addr);
                    http_err(e)
                })?
            }
            HttpVersion::Http1 => {
                let idle = {
                    let mut pool = self.lock_h1();
                    let list = pool.entry(addr).or_default();
                    list.retain(|idle| self.usable(idle));
                    list.pop().map(|(sender, _)| sender)
                };
                let mut sender = match idle {
                    Some(s) => s,
                    None => {
                        let io = self.connect(addr).await?;
                        let (sender, conn) = http1::handshake(io).await.map_err(http_err)?;
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(%addr, error = %e, "HTTP/1 connection closed");
                            }
                        });
                        sender
                    }
                };
                sender.ready().await.map_err(http_err)?;
                let response = sender.send_request(req).await.map_err(http_err)?;
                let (parts, body) = response.into_parts();
                let collected = Limited::new(body, MAX_RESPONSE)
                    .collect()
                    .await
                    .map_err(|e| TransportError::Http(addr, e.to_string()))?;
                self.keep_idle(addr, sender);
                return Ok(Reply {
                    status: parts.status,
                    headers: parts.headers,
                    body: collected.to_bytes(),
                });
            }
        };
        let (parts, body) = response.into_parts();
        let collected = Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| TransportError::Http(addr, e.to_string()))?;
        let mut headers = parts.headers;
        if let Some(trailers) = collected.trailers() {
            headers.extend(trailers.clone());
        }
        Ok(Reply {
            status: parts.status,
            headers,
            body: collected.to_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_rotate_over_every_resolved_address() {
        let addrs: Vec<SocketAddr> = ["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mut r = Resolved {
            addrs: addrs.clone(),
            ..Resolved::default()
        };
        let picked: Vec<SocketAddr> = (0..6).map(|_| r.next_addr(false).unwrap()).collect();
        for a in &addrs {
            assert_eq!(picked.iter().filter(|p| *p == a).count(), 2, "{picked:?}");
        }
        assert!(Resolved::default().next_addr(false).is_none());
        let first: Vec<SocketAddr> = (0..3).map(|_| r.next_addr(true).unwrap()).collect();
        assert_eq!(
            first, [addrs[0]; 3],
            "pick_first keeps to the first address"
        );
    }

    #[tokio::test]
    async fn chunks_body_streams_every_chunk_in_order() {
        let body = Chunks::new([
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
        ]);
        assert_eq!(body.len(), 5);
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abcde");
    }

    /// An HTTP/1.1 server on 127.0.0.1 answering 200 that counts the
    /// connections it accepted; each request is answered once `width` are
    /// in flight.
    async fn counting_server(
        width: usize,
    ) -> (
        SocketAddr,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(width));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let barrier = barrier.clone();
                let service = hyper::service::service_fn(move |_req| {
                    let barrier = barrier.clone();
                    async move {
                        barrier.wait().await;
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::new()),
                        ))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, accepted, task)
    }

    /// Connections opened for `rounds` rounds of `width` requests in flight together.
    async fn connections(options: Options, width: usize, rounds: usize) -> usize {
        let (addr, accepted, server) = counting_server(width).await;
        let target = Target::parse_url(&format!("http://{addr}/v1/logs")).unwrap();
        let transport =
            std::sync::Arc::new(Transport::new(target, HttpVersion::Http1, None, options));
        for _ in 0..rounds {
            let together: Vec<_> = (0..width)
                .map(|_| {
                    let t = transport.clone();
                    tokio::spawn(async move {
                        let body = Chunks::new([Bytes::from_static(b"x")]);
                        t.post("/v1/logs", &HeaderMap::new(), body).await
                    })
                })
                .collect();
            for t in together {
                assert_eq!(t.await.unwrap().unwrap().status, StatusCode::OK);
            }
        }
        server.abort();
        accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keep_alive_idle_timeout_and_max_idle_decide_connection_reuse() {
        assert_eq!(connections(Options::default(), 1, 3).await, 1, "reused");
        let no_keep_alive = Options {
            keep_alive: false,
            ..Options::default()
        };
        assert_eq!(connections(no_keep_alive, 1, 3).await, 3);
        let instant_timeout = Options {
            idle_timeout: Some(Duration::from_nanos(1)),
            ..Options::default()
        };
        assert_eq!(connections(instant_timeout, 1, 3).await, 3);
        // Two requests in flight need two connections; both are kept for
        // the next two unless only one idle connection may be kept.
        assert_eq!(connections(Options::default(), 2, 2).await, 2);
        let one_idle = Options {
            max_idle: 1,
            ..Options::default()
        };
        assert_eq!(connections(one_idle, 2, 2).await, 3);
    }

    /// The `:authority` an h2c server on 127.0.0.1 sees for one request.
    async fn seen_authority(options: Options) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = Mutex::new(Some(tx));
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let authority = req.uri().authority().map(ToString::to_string);
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(authority.unwrap_or_default());
                }
                async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(Bytes::new()),
                    ))
                }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        let target = Target::parse_grpc(&format!("http://{addr}"), true).unwrap();
        let transport = Transport::new(target, HttpVersion::Http2, None, options);
        transport
            .post("/x", &HeaderMap::new(), Chunks::default())
            .await
            .unwrap();
        let seen = rx.await.unwrap();
        server.abort();
        seen
    }

    /// A proxy that answers every CONNECT with `answer` and closes.
    async fn refusing_proxy(
        answer: &'static [u8],
    ) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(stream.read_u8().await.unwrap());
            }
            stream.write_all(answer).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_tunnel_the_proxy_refuses_is_a_proxy_error_and_credentials_reach_it() {
        let (proxy, asked) =
            refusing_proxy(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").await;
        let options = Options {
            proxy: Some(Proxy {
                target: Target::parse_url(&format!("http://{proxy}")).unwrap(),
                authorization: Some(http::HeaderValue::from_static("Basic dTpw")),
            }),
            ..Options::default()
        };
        // h2c goes through a tunnel too.
        let target = Target::parse_grpc("http://backend.invalid:4317", true).unwrap();
        let transport = Transport::new(target, HttpVersion::Http2, None, options);
        let err = transport
            .post("/x", &HeaderMap::new(), Chunks::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TransportError::Proxy(_, m) if m.contains("407")),
            "{err}"
        );
        assert_eq!(
            asked.await.unwrap(),
            "CONNECT backend.invalid:4317 HTTP/1.1\r\nHost: backend.invalid:4317\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn authority_replaces_the_endpoints_host_and_port() {
        assert!(
            seen_authority(Options::default())
                .await
                .starts_with("127.0.0.1:")
        );
        let custom = Options {
            authority: Some("gateway.example:443".into()),
            ..Options::default()
        };
        assert_eq!(seen_authority(custom).await, "gateway.example:443");
    }
}
