//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` (paths
//! configurable) with protobuf or JSON bodies, gzip / deflate / zstd request
//! compression, and a body limit enforced on the decompressed size while it
//! inflates; the body must arrive within `read_timeout` (default
//! [`serve::BODY_TIMEOUT`]) and the answer be ready within `write_timeout`
//! when set; the connection limits come from the other keys ([`limits`]).
//! Errors are `google.rpc.Status` bodies in the request's encoding
//! with the status codes the OTLP specification gives. With `cors` set,
//! browsers may call from allowed origins ([`super::cors`]); `response_headers`
//! are added to every answer (preflights included) that does not set them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
    trace::v1::ExportTraceServiceResponse,
};
use prost::Message;
use tern_config::{HttpServerConfig, Signal};
use tern_core::pdata::RequestContext;
use tern_core::status::{self, RpcStatus};
use tonic::Code;

use super::cors::Cors;
use super::decompress::{DecompressError, decompress};
use super::{OtlpSink, ReceiveError, metadata_pairs};
use crate::serve::{self, Shutdown};

/// Body encodings OTLP/HTTP allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Proto,
    /// `application/json`.
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Proto => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// An error answer: HTTP status, gRPC-style code and message.
#[derive(Debug)]
struct Failure {
    http: StatusCode,
    code: Code,
    message: String,
    /// The refusal reason to count; `None` when the sink counted it already.
    reason: Option<&'static str>,
    retry_after: bool,
}

fn failure(
    http: StatusCode,
    code: Code,
    reason: &'static str,
    message: impl Into<String>,
) -> Failure {
    Failure {
        http,
        code,
        message: message.into(),
        reason: Some(reason),
        retry_after: false,
    }
}

fn respond(encoding: Encoding, status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    serve::response(status, encoding.content_type(), body)
}

fn error_response(encoding: Encoding, f: &Failure) -> Response<Full<Bytes>> {
    let s = if f.retry_after {
        status::with_retry_info(f.code as i32, &f.message, 1)
    } else {
        RpcStatus {
            code: f.code as i32,
            message: f.message.clone(),
            details: Vec::new(),
        }
    };
    let body = match encoding {
        Encoding::Proto => s.encode_to_vec(),
        Encoding::Json => status::to_json(&s),
    };
    let mut r = respond(encoding, f.http, body);
    if f.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if f.http == StatusCode::METHOD_NOT_ALLOWED {
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    r
}

fn success_body(signal: Signal, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Json => b"{}".to_vec(),
        Encoding::Proto => match signal {
            Signal::Traces => ExportTraceServiceResponse::default().encode_to_vec(),
            Signal::Metrics => ExportMetricsServiceResponse::default().encode_to_vec(),
            Signal::Logs => ExportLogsServiceResponse::default().encode_to_vec(),
        },
    }
}

#[derive(Debug, Clone)]
struct Routes {
    traces: String,
    metrics: String,
    logs: String,
}

impl Routes {
    fn signal(&self, path: &str) -> Option<Signal> {
        if path == self.traces {
            Some(Signal::Traces)
        } else if path == self.metrics {
            Some(Signal::Metrics)
        } else if path == self.logs {
            Some(Signal::Logs)
        } else {
            None
        }
    }
}

fn request_encoding(req: &http::Request<Incoming>) -> Result<Encoding, Failure> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Proto),
        "application/json" => Ok(Encoding::Json),
        _ => Err(failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidArgument,
            "unsupported_media_type",
            format!(
                "unsupported Content-Type `{ct}` (use application/x-protobuf or application/json)"
            ),
        )),
    }
}

async fn handle(
    req: http::Request<Incoming>,
    routes: &Routes,
    config: &HttpServerConfig,
    sink: &OtlpSink,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    // Errors before the encoding is known are answered in protobuf unless
    // the client asked for JSON.
    let fallback = match req.headers().get(header::CONTENT_TYPE) {
        Some(v) if v.as_bytes().starts_with(b"application/json") => Encoding::Json,
        _ => Encoding::Proto,
    };
    // As the Collector: no path is exempt, and the body is not read.
    let auth = match sink.authenticate(req.headers(), peer).await {
        Ok(auth) => auth,
        Err(e) => {
            let (http, code) = if e.retryable() {
                (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable)
            } else {
                (StatusCode::UNAUTHORIZED, Code::Unauthenticated)
            };
            let f = Failure {
                http,
                code,
                message: e.to_string(),
                reason: None,
                retry_after: e.retryable(),
            };
            return error_response(fallback, &f);
        }
    };
    let Some(signal) = routes.signal(req.uri().path()) else {
        sink.metrics().request_refused("unknown_path");
        let f = failure(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            "unknown_path",
            format!("unknown path {}", req.uri().path()),
        );
        return error_response(fallback, &f);
    };
    if req.method() != Method::POST {
        sink.metrics().request_refused("method_not_allowed");
        let f = failure(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::InvalidArgument,
            "method_not_allowed",
            format!(
                "{} is not allowed on {}; use POST",
                req.method(),
                req.uri().path()
            ),
        );
        return error_response(fallback, &f);
    }
    let encoding = match request_encoding(&req) {
        Ok(e) => e,
        Err(f) => {
            if let Some(reason) = f.reason {
                sink.metrics().request_refused(reason);
            }
            return error_response(fallback, &f);
        }
    };
    let received = receive(req, signal, encoding, config, sink, (peer, auth));
    let outcome = match serve::nonzero(config.write_timeout.0) {
        None => received.await,
        Some(limit) => tokio::time::timeout(limit, received)
            .await
            .unwrap_or_else(|_| {
                Err(failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Code::Unavailable,
                    "write_timeout",
                    format!("request not answered within write_timeout ({limit:?})"),
                ))
            }),
    };
    match outcome {
        Ok(()) => respond(encoding, StatusCode::OK, success_body(signal, encoding)),
        Err(f) => {
            if let Some(reason) = f.reason {
                sink.metrics().request_refused(reason);
            }
            error_response(encoding, &f)
        }
    }
}

async fn receive(
    req: http::Request<Incoming>,
    signal: Signal,
    encoding: Encoding,
    config: &HttpServerConfig,
    sink: &OtlpSink,
    (peer, auth): (SocketAddr, Option<Arc<tern_core::auth::AuthData>>),
) -> Result<(), Failure> {
    let limit = config.max_request_body_size;
    let too_large = || {
        failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            "too_large",
            format!("request body exceeds max_request_body_size ({limit} bytes)"),
        )
    };
    let content_encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let metadata = if config.include_metadata {
        metadata_pairs(req.headers())
    } else {
        Vec::new()
    };
    let body_limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let read = Limited::new(req.into_body(), body_limit).collect();
    let body_timeout = body_timeout(config);
    let raw = match tokio::time::timeout(body_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        // hyper closes an HTTP/1 connection whose body was not read to the end.
        Err(_) => {
            return Err(failure(
                StatusCode::REQUEST_TIMEOUT,
                Code::DeadlineExceeded,
                "body_timeout",
                format!("request body not received within {body_timeout:?}"),
            ));
        }
        Ok(Err(e)) => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                "body_read_error",
                format!("cannot read request body: {e}"),
            ));
        }
    };
    let body = decompress(&content_encoding, raw, limit).map_err(|e| match e {
        DecompressError::TooLarge => too_large(),
        DecompressError::Corrupt(_) => failure(
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            "bad_compression",
            e.to_string(),
        ),
        DecompressError::Unsupported(_) => failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidArgument,
            "unsupported_encoding",
            e.to_string(),
        ),
    })?;
    let wire = match encoding {
        Encoding::Proto => body,
        Encoding::Json => tern_core::json::json_to_wire(signal, &body).map_err(|e| {
            failure(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                "malformed",
                e.to_string(),
            )
        })?,
    };
    let context = Arc::new(RequestContext {
        transport: "http",
        peer: Some(peer),
        metadata,
        auth,
    });
    // The sink counts its own refusals, hence `reason: None`.
    let answer = match sink.consume(signal, wire, context) {
        Ok(admitted) => sink.outcome(admitted).await,
        Err(e) => Err(e),
    };
    answer.map(|_| ()).map_err(|e| {
        let (http, code, retry_after) = match &e {
            ReceiveError::Malformed(_) => (StatusCode::BAD_REQUEST, Code::InvalidArgument, false),
            ReceiveError::NoPipeline(_) => (StatusCode::NOT_FOUND, Code::Unimplemented, false),
            ReceiveError::Failed(f) if f.permanent => {
                (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, false)
            }
            ReceiveError::Refused(_) | ReceiveError::Failed(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, true)
            }
        };
        Failure {
            http,
            code,
            message: e.to_string(),
            reason: None,
            retry_after,
        }
    })
}

/// What every connection of one HTTP receiver shares.
struct Receiver {
    routes: Routes,
    config: HttpServerConfig,
    sink: OtlpSink,
    /// The CORS policy, when `cors.allowed_origins` is set.
    cors: Option<Cors>,
    /// `response_headers`, added to every answer.
    response_headers: HeaderMap,
}

impl Receiver {
    fn new(config: HttpServerConfig, sink: OtlpSink) -> Receiver {
        // Validation checked every name and value.
        let response_headers = config
            .response_headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        Receiver {
            routes: Routes {
                traces: config.traces_url_path.clone(),
                metrics: config.metrics_url_path.clone(),
                logs: config.logs_url_path.clone(),
            },
            cors: config.cors.as_ref().and_then(Cors::new),
            response_headers,
            config,
            sink,
        }
    }

    /// Answers `req`: a CORS preflight here, anything else by [`handle`].
    async fn answer(
        &self,
        req: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let mut response = match &self.cors {
            None => handle(req, &self.routes, &self.config, &self.sink, peer).await,
            Some(cors) => match cors.preflight(&req) {
                Some(preflight) => preflight,
                None => {
                    let method = req.method().clone();
                    let origin = req.headers().get(header::ORIGIN).cloned();
                    let mut r = handle(req, &self.routes, &self.config, &self.sink, peer).await;
                    cors.decorate(&method, origin.as_ref(), r.headers_mut());
                    r
                }
            },
        };
        // Set before the answer is made in the Collector, so a header the
        // answer sets itself (Content-Type, CORS) wins.
        for (k, v) in &self.response_headers {
            response.headers_mut().entry(k).or_insert_with(|| v.clone());
        }
        response
    }
}

/// The service for one connection from `peer`.
fn service(
    receiver: Arc<Receiver>,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send + 'static,
> + Send
+ 'static {
    hyper::service::service_fn(move |req| {
        let receiver = receiver.clone();
        async move {
            let started = Instant::now();
            let response = receiver.answer(req, peer).await;
            receiver
                .sink
                .metrics()
                .request_duration
                .observe(started.elapsed());
            Ok(response)
        }
    })
}

/// How long a request body may take once its head is in: `read_timeout`,
/// else Tern's default.
fn body_timeout(config: &HttpServerConfig) -> Duration {
    serve::nonzero(config.read_timeout.0).unwrap_or(serve::BODY_TIMEOUT)
}

/// The connection limits of `config`. As in Go's `http.Server`, a zero
/// `read_header_timeout` or idle timeout falls back to `read_timeout`;
/// where that is zero too, Tern's defaults apply (Go would have none).
pub fn limits(config: &HttpServerConfig) -> serve::Limits {
    let read = serve::nonzero(config.read_timeout.0);
    let keepalive = config.keepalive.clone().unwrap_or_default();
    let keep_alive = match &config.keepalive {
        Some(section) => section.enabled,
        None => config.keep_alives_enabled.unwrap_or(true),
    };
    let idle = serve::nonzero(keepalive.idle_timeout.0).or(serve::nonzero(config.idle_timeout.0));
    let defaults = serve::Limits::default();
    serve::Limits {
        header: serve::nonzero(config.read_header_timeout.0)
            .or(read)
            .unwrap_or(defaults.header),
        idle: idle.or(read).unwrap_or(defaults.idle),
        max_connections: config.max_connections,
        keep_alive,
        max_header_size: Some(u32::try_from(config.max_request_header_size).unwrap_or(u32::MAX)),
        ..defaults
    }
}

/// Serves OTLP/HTTP on `listener` (with `tls` when given) until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: HttpServerConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    sink: OtlpSink,
    shutdown: Shutdown,
) {
    let connections = sink.metrics().connections();
    let limits = limits(&config);
    let receiver = Arc::new(Receiver::new(config, sink));
    let make = move |peer: SocketAddr| service(receiver.clone(), peer);
    serve::serve(
        listener,
        serve::Protocol::Auto,
        limits,
        tls,
        Some(connections),
        shutdown,
        make,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::Feeds;
    use crate::serve::Close;
    use tern_config::types::GoDuration;
    use tern_core::telemetry::{ReceiverMetrics, Telemetry};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one connection under `config` (its limits too) on a paused
    /// clock, sends `head` and then nothing more; returns everything
    /// answered before the close, why the connection closed, how long
    /// that took, and the self-metrics.
    async fn stall(config: HttpServerConfig, head: &[u8]) -> (String, Close, Duration, String) {
        let telemetry = Telemetry::new();
        let limits = limits(&config);
        let receiver = Arc::new(Receiver::new(
            config,
            OtlpSink::new(
                "otlp",
                Arc::new(Feeds::default()),
                ReceiverMetrics::new(&telemetry, "otlp", "http"),
            ),
        ));
        let (mut client, server) = tokio::io::duplex(4096);
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let served = tokio::spawn(async move {
            let h1 = serve::builder(serve::Protocol::Auto, &limits);
            serve::connection(server, service(receiver, peer), &h1, &limits, shutdown).await
        });
        let started = tokio::time::Instant::now();
        client.write_all(head).await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        let took = started.elapsed();
        let closed = served.await.unwrap();
        (answer, closed, took, telemetry.render())
    }

    /// 10 of the 1000 bytes announced.
    const STALLED: &[u8] = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n\
                  Content-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n\
                  0123456789";

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_is_answered_408_and_counted() {
        let (answer, closed, took, metrics) = stall(HttpServerConfig::default(), STALLED).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(took >= serve::BODY_TIMEOUT);
        // The body was not read to its end, so the connection is closed.
        assert_eq!(closed, Close::Closed);
        assert!(metrics.contains(
            "tern_receiver_requests_refused_total{receiver=\"otlp\",transport=\"http\",reason=\"body_timeout\"} 1"
        ));
        // read_timeout sets the limit.
        let config = HttpServerConfig {
            read_timeout: GoDuration(Duration::from_secs(3)),
            ..HttpServerConfig::default()
        };
        let (answer, _, took, _) = stall(config, STALLED).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_not_answered_within_the_write_timeout_gets_503() {
        let config = HttpServerConfig {
            write_timeout: GoDuration(Duration::from_secs(2)),
            ..HttpServerConfig::default()
        };
        let (answer, _, took, metrics) = stall(config, STALLED).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("write_timeout"), "{answer}");
        assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(3));
        assert!(metrics.contains(
            "tern_receiver_requests_refused_total{receiver=\"otlp\",transport=\"http\",reason=\"write_timeout\"} 1"
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn without_keepalive_each_connection_serves_one_request() {
        let section = HttpServerConfig {
            keepalive: Some(tern_config::components::HttpKeepalive {
                enabled: false,
                idle_timeout: GoDuration::default(),
            }),
            ..HttpServerConfig::default()
        };
        let deprecated = HttpServerConfig {
            keep_alives_enabled: Some(false),
            ..HttpServerConfig::default()
        };
        let head = b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        for config in [section, deprecated] {
            let (answer, closed, _, _) = stall(config, head).await;
            assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
            assert!(answer.contains("connection: close"), "{answer}");
            assert_eq!(closed, Close::Closed);
        }
    }

    #[test]
    fn zero_timeouts_fall_back_as_in_go_then_to_terns_defaults() {
        let secs = |n| GoDuration(Duration::from_secs(n));
        let defaults = serve::Limits::default();
        let plain = limits(&HttpServerConfig::default());
        assert_eq!((plain.header, plain.idle), (defaults.header, defaults.idle));
        assert_eq!(plain.max_connections, 4096);
        assert_eq!(plain.max_header_size, Some(417_792));
        let read = limits(&HttpServerConfig {
            read_timeout: secs(7),
            ..HttpServerConfig::default()
        });
        assert_eq!((read.header, read.idle), (secs(7).0, secs(7).0));
        let each = limits(&HttpServerConfig {
            read_timeout: secs(7),
            read_header_timeout: secs(3),
            idle_timeout: secs(9),
            max_connections: 5,
            ..HttpServerConfig::default()
        });
        assert_eq!((each.header, each.idle), (secs(3).0, secs(9).0));
        assert_eq!(each.max_connections, 5);
        let section = limits(&HttpServerConfig {
            keepalive: Some(tern_config::components::HttpKeepalive {
                enabled: true,
                idle_timeout: secs(11),
            }),
            ..HttpServerConfig::default()
        });
        assert_eq!(section.idle, secs(11).0);
    }
}
