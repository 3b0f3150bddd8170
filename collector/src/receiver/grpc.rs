//! OTLP/gRPC: the three `Export` services, served over HTTP/2 by hyper with
//! tonic's gRPC framing and a pass-through codec, so the request reaches the
//! pipeline as the bytes the client sent (gzip and zstd are undone by tonic,
//! snappy, which tonic lacks, by [`unsnappy`] before it, all within
//! `max_recv_msg_size_mib`). A call carries exactly one message, read
//! within [`serve::BODY_TIMEOUT`]; the connection limits come from
//! `keepalive.server_parameters` and `max_connections` ([`limits`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
    trace::v1::ExportTraceServiceResponse,
};
use prost::Message;
use tern_config::{GrpcServerConfig, Signal};
use tern_core::auth::AuthData;
use tern_core::pdata::RequestContext;
use tern_core::status;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, UnaryService};
use tonic::{Code, Status};

use super::{Admitted, OtlpSink, ReceiveError, metadata_pairs};
use crate::serve::{self, Shutdown};

/// What became of one call before its handler, for counting refusals.
#[derive(Debug, Default)]
struct Call {
    /// The handler ran: the sink counted the outcome.
    reached: AtomicBool,
    /// A second request message came (a protocol violation).
    second_message: AtomicBool,
    /// A request whose answer waits for its export (`wait_for_result`),
    /// awaited after the call so that the body timeout does not cover it.
    waiting: std::sync::Mutex<Option<Admitted>>,
}

/// Hands message bytes through untouched in both directions; as a decoder
/// it takes one request message and refuses a second, since a unary call
/// carries exactly one.
#[derive(Debug, Clone)]
struct UnaryCodec(Arc<Call>);

impl Codec for UnaryCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = UnaryDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        UnaryDecoder {
            call: self.0.clone(),
            seen: false,
        }
    }
}

/// Writes the response bytes as they are.
#[derive(Debug)]
struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

/// Takes the first request message as it is and refuses any further one
/// with `INTERNAL`, as grpc-go's server does for this cardinality
/// violation, instead of answering OK and dropping it.
#[derive(Debug)]
struct UnaryDecoder {
    call: Arc<Call>,
    seen: bool,
}

impl Decoder for UnaryDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        if self.seen {
            self.call.second_message.store(true, Ordering::Relaxed);
            return Err(Status::internal(
                "protocol violation: a unary call carries one request message; this one carried more",
            ));
        }
        self.seen = true;
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

/// Maps a gRPC path to its signal.
pub fn signal_of_path(path: &str) -> Option<Signal> {
    match path {
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export" => Some(Signal::Traces),
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export" => Some(Signal::Metrics),
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export" => Some(Signal::Logs),
        _ => None,
    }
}

fn empty_response(signal: Signal) -> Bytes {
    Bytes::from(match signal {
        Signal::Traces => ExportTraceServiceResponse::default().encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceResponse::default().encode_to_vec(),
        Signal::Logs => ExportLogsServiceResponse::default().encode_to_vec(),
    })
}

/// The status for a receive error.
pub fn status_of(err: &ReceiveError) -> Status {
    match err {
        ReceiveError::Malformed(m) => Status::invalid_argument(m.clone()),
        ReceiveError::NoPipeline(_) => Status::unimplemented(err.to_string()),
        ReceiveError::Failed(f) if f.permanent => Status::internal(err.to_string()),
        ReceiveError::Refused(_) | ReceiveError::Failed(_) => {
            let message = err.to_string();
            let details = status::with_retry_info(Code::Unavailable as i32, &message, 1);
            Status::with_details(Code::Unavailable, message, details.encode_to_vec().into())
        }
    }
}

#[derive(Clone)]
struct Export {
    sink: OtlpSink,
    signal: Signal,
    peer: SocketAddr,
    include_metadata: bool,
    /// What the authenticator learnt of the sender.
    auth: Option<Arc<AuthData>>,
    call: Arc<Call>,
}

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = std::future::Ready<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        self.call.reached.store(true, Ordering::Relaxed);
        let metadata = if self.include_metadata {
            metadata_pairs(&request.metadata().clone().into_headers())
        } else {
            Vec::new()
        };
        let context = Arc::new(RequestContext {
            transport: "grpc",
            peer: Some(self.peer),
            metadata,
            auth: self.auth.clone(),
        });
        let result = self
            .sink
            .consume(self.signal, request.into_inner(), context)
            .map(|admitted| {
                if !admitted.settled() {
                    *self.call.waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some(admitted);
                }
                tonic::Response::new(empty_response(self.signal))
            })
            .map_err(|e| status_of(&e));
        std::future::ready(result)
    }
}

/// What every connection of one gRPC receiver shares.
struct Receiver {
    sink: OtlpSink,
    /// `max_recv_msg_size_mib` in bytes.
    max_message: usize,
    include_metadata: bool,
}

/// Answers one gRPC request.
async fn handle(
    req: http::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    receiver: &Receiver,
) -> http::Response<tonic::body::Body> {
    let started = Instant::now();
    let sink = &receiver.sink;
    let Some(signal) = signal_of_path(req.uri().path()) else {
        return Status::unimplemented(format!("unknown method {}", req.uri().path())).into_http();
    };
    let auth = match sink.authenticate(req.headers(), peer).await {
        Ok(auth) => auth,
        Err(e) => {
            sink.metrics().request_duration.observe(started.elapsed());
            let code = if e.retryable() {
                Code::Unavailable
            } else {
                Code::Unauthenticated
            };
            return Status::new(code, e.to_string()).into_http();
        }
    };
    let call = Arc::new(Call::default());
    let export = Export {
        sink: sink.clone(),
        signal,
        peer,
        include_metadata: receiver.include_metadata,
        auth,
        call: call.clone(),
    };
    let mut grpc = Grpc::new(UnaryCodec(call.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(receiver.max_message);
    let snappy = req
        .headers()
        .get(GRPC_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"snappy"));
    let answer = async {
        if snappy {
            match unsnappy(req, receiver.max_message).await {
                Ok(req) => grpc.unary(export, req).await,
                Err(status) => status.into_http(),
            }
        } else {
            grpc.unary(export, req).await
        }
    };
    // The handler answers at once, so a call still pending at the deadline
    // is still reading its body and nothing of it was accepted.
    let Ok(mut response) = tokio::time::timeout(serve::BODY_TIMEOUT, answer).await else {
        sink.metrics().request_refused("body_timeout");
        tracing::debug!(%signal, %peer, "refused gRPC request: body too slow");
        sink.metrics().request_duration.observe(started.elapsed());
        return Status::deadline_exceeded(format!(
            "request body not received within {} s",
            serve::BODY_TIMEOUT.as_secs()
        ))
        .into_http();
    };
    if !call.reached.load(Ordering::Relaxed) {
        // Refused before our handler: too large, bad compression or framing,
        // more than one message.
        let mut code = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(-1);
        if code == Code::OutOfRange as i32 {
            // tonic says OUT_OF_RANGE for an oversized message, which OTLP
            // clients retry; gRPC's own servers say RESOURCE_EXHAUSTED,
            // which they do not.
            code = Code::ResourceExhausted as i32;
            response
                .headers_mut()
                .insert("grpc-status", http::HeaderValue::from(code));
        }
        let reason = if call.second_message.load(Ordering::Relaxed) {
            "multiple_messages"
        } else if code == Code::ResourceExhausted as i32 {
            "too_large"
        } else {
            "malformed"
        };
        sink.metrics().request_refused(reason);
        tracing::debug!(%signal, grpc_status = %code, reason, "refused gRPC request");
    }
    let waiting = call
        .waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(admitted) = waiting
        && let Err(e) = sink.outcome(admitted).await
    {
        response = status_of(&e).into_http();
    }
    advertise_encodings(response.headers_mut());
    sink.metrics().request_duration.observe(started.elapsed());
    response
}

/// The header naming a request's message compression.
const GRPC_ENCODING: &str = "grpc-encoding";
/// The header listing the compressions the server reads.
const GRPC_ACCEPT_ENCODING: &str = "grpc-accept-encoding";

/// Lists every compression the receiver reads (`grpc-accept-encoding`) on
/// each answer, the refusal of an unknown `grpc-encoding` included, where
/// tonic alone would list only gzip and zstd.
fn advertise_encodings(headers: &mut http::HeaderMap) {
    headers.insert(
        GRPC_ACCEPT_ENCODING,
        http::HeaderValue::from_static("gzip,zstd,snappy"),
    );
}

/// Reads a `grpc-encoding: snappy` request (the Collector's configgrpc
/// codec: framed snappy; the block format is read as well) and hands it on
/// uncompressed. The body may hold at most `max_message` bytes plus one
/// message header, and each message inflates to at most `max_message`
/// bytes, so a compression bomb stops there with `RESOURCE_EXHAUSTED`;
/// data that is not snappy is `INTERNAL`, as grpc-go answers a message it
/// cannot decompress.
async fn unsnappy(
    req: http::Request<hyper::body::Incoming>,
    max_message: usize,
) -> Result<http::Request<http_body_util::Full<Bytes>>, Status> {
    use http_body_util::BodyExt;
    let (mut parts, body) = req.into_parts();
    let limit = max_message.saturating_add(5);
    let too_large = || {
        Status::resource_exhausted(format!(
            "grpc: received message larger than max ({max_message} bytes)"
        ))
    };
    let mut body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => return Err(Status::cancelled(format!("request body not received: {e}"))),
    };
    let mut framed = bytes::BytesMut::with_capacity(body.len());
    while !body.is_empty() {
        if body.len() < 5 {
            return Err(Status::internal("truncated gRPC message header"));
        }
        let compressed = body.get_u8() != 0;
        let len = body.get_u32() as usize;
        if body.len() < len {
            return Err(Status::internal(
                "gRPC message shorter than its header says",
            ));
        }
        let message = body.split_to(len);
        let message = if compressed {
            super::decompress::decompress("snappy", message, max_message as u64).map_err(|e| {
                match e {
                    super::decompress::DecompressError::TooLarge => too_large(),
                    other => Status::internal(format!(
                        "grpc: failed to decompress the received message: {other}"
                    )),
                }
            })?
        } else {
            message
        };
        framed.put_u8(0);
        framed.put_u32(u32::try_from(message.len()).map_err(|_| too_large())?);
        framed.extend_from_slice(&message);
    }
    parts.headers.remove(GRPC_ENCODING);
    Ok(http::Request::from_parts(
        parts,
        http_body_util::Full::new(framed.freeze()),
    ))
}

/// The service for one connection from `peer`.
fn service(
    receiver: Arc<Receiver>,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<tonic::body::Body>,
    Error = Infallible,
    Future: Send + 'static,
> + Send
+ 'static {
    hyper::service::service_fn(move |req| {
        let receiver = receiver.clone();
        async move { Ok(handle(req, peer, &receiver).await) }
    })
}

/// The HTTP/2 settings of `config`: the stream cap (0 = hyper's own) and
/// the connection buffers.
fn protocol(config: &GrpcServerConfig) -> serve::Protocol {
    let streams = config.max_concurrent_streams;
    let bytes = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    serve::Protocol::Http2 {
        max_concurrent_streams: (streams > 0).then_some(streams),
        buffers: serve::Buffers {
            read: bytes(config.read_buffer_size),
            write: bytes(config.write_buffer_size),
        },
    }
}

/// The connection limits of `config`'s `keepalive` and
/// `max_connections`; a zero duration keeps gRPC-Go's default where that
/// is bounded (pings every 2 h, acked within 20 s) and Tern's otherwise
/// (idle close after [`serve::IDLE_TIMEOUT`], [`serve::DRAIN`] of grace).
pub fn limits(config: &GrpcServerConfig) -> serve::Limits {
    let params = config
        .keepalive
        .as_ref()
        .and_then(|k| k.server_parameters.clone())
        .unwrap_or_default();
    let policy = config
        .keepalive
        .as_ref()
        .and_then(|k| k.enforcement_policy.clone())
        .unwrap_or_default();
    let defaults = serve::Limits::default();
    let ping = serve::nonzero(params.time.0)
        .unwrap_or(PING_INTERVAL)
        .max(Duration::from_secs(1));
    serve::Limits {
        idle: serve::nonzero(params.max_connection_idle.0).unwrap_or(defaults.idle),
        max_connections: config.max_connections,
        max_age: serve::nonzero(params.max_connection_age.0),
        age_grace: serve::nonzero(params.max_connection_age_grace.0).unwrap_or(defaults.age_grace),
        ping: Some((
            ping,
            serve::nonzero(params.timeout.0).unwrap_or(PING_TIMEOUT),
        )),
        client_pings: Some(serve::PingPolicy {
            min_time: serve::nonzero(policy.min_time.0).unwrap_or(PING_MIN_TIME),
            permit_without_stream: policy.permit_without_stream,
        }),
        ..defaults
    }
}

/// gRPC-Go's default `keepalive.server_parameters.time`.
const PING_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);
/// gRPC-Go's default `keepalive.enforcement_policy.min_time`.
const PING_MIN_TIME: Duration = Duration::from_secs(5 * 60);
/// gRPC-Go's default `keepalive.server_parameters.timeout`.
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves OTLP/gRPC on `listener` (with `tls` when given) until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: GrpcServerConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    sink: OtlpSink,
    shutdown: Shutdown,
) {
    let connections = sink.metrics().connections();
    let protocol = protocol(&config);
    let limits = limits(&config);
    let receiver = Arc::new(Receiver {
        sink,
        max_message: usize::try_from(config.max_recv_msg_size_mib.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX),
        include_metadata: config.include_metadata,
    });
    let make = move |peer: SocketAddr| service(receiver.clone(), peer);
    serve::serve(
        listener,
        protocol,
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
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tern_core::telemetry::{ReceiverMetrics, Telemetry};

    #[test]
    fn keepalive_server_parameters_set_the_connection_limits() {
        let defaults = serve::Limits::default();
        let plain = limits(&GrpcServerConfig::default());
        assert_eq!(plain.idle, defaults.idle);
        assert_eq!(plain.max_age, None);
        assert_eq!(plain.age_grace, serve::DRAIN);
        assert_eq!(plain.ping, Some((PING_INTERVAL, PING_TIMEOUT)));
        assert_eq!(plain.max_connections, 4096);
        let grpc_go = serve::PingPolicy {
            min_time: PING_MIN_TIME,
            permit_without_stream: false,
        };
        assert_eq!(plain.client_pings, Some(grpc_go));
        let secs = |n| tern_config::GoDuration(Duration::from_secs(n));
        let config = GrpcServerConfig {
            keepalive: Some(tern_config::components::GrpcKeepalive {
                server_parameters: Some(tern_config::components::GrpcServerParameters {
                    max_connection_idle: secs(30),
                    max_connection_age: secs(600),
                    max_connection_age_grace: secs(20),
                    time: tern_config::GoDuration(Duration::from_millis(10)),
                    timeout: secs(3),
                }),
                enforcement_policy: Some(tern_config::components::GrpcEnforcementPolicy {
                    min_time: secs(10),
                    permit_without_stream: true,
                }),
            }),
            max_connections: 9,
            ..GrpcServerConfig::default()
        };
        let set = limits(&config);
        assert_eq!(set.idle, secs(30).0);
        assert_eq!(set.max_age, Some(secs(600).0));
        assert_eq!(set.age_grace, secs(20).0);
        // Pings no more often than every second, as in gRPC-Go.
        assert_eq!(set.ping, Some((secs(1).0, secs(3).0)));
        assert_eq!(set.max_connections, 9);
        let policy = serve::PingPolicy {
            min_time: secs(10).0,
            permit_without_stream: true,
        };
        assert_eq!(set.client_pings, Some(policy));
    }

    /// A request body that sends `first` and then stalls for good.
    struct Stalled(Option<Bytes>);

    impl http_body::Body for Stalled {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            match self.0.take() {
                Some(first) => Poll::Ready(Some(Ok(http_body::Frame::data(first)))),
                None => Poll::Pending,
            }
        }
    }

    #[test]
    fn buffer_sizes_and_stream_cap_reach_the_server() {
        let config = GrpcServerConfig {
            read_buffer_size: 1000,
            write_buffer_size: 2000,
            max_concurrent_streams: 7,
            ..GrpcServerConfig::default()
        };
        let serve::Protocol::Http2 {
            max_concurrent_streams,
            buffers,
        } = protocol(&config)
        else {
            panic!("gRPC is HTTP/2 only");
        };
        assert_eq!(max_concurrent_streams, Some(7));
        assert_eq!(
            buffers,
            serve::Buffers {
                read: 1000,
                write: 2000
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_message_is_answered_deadline_exceeded_and_counted() {
        let telemetry = Telemetry::new();
        let receiver = Arc::new(Receiver {
            sink: OtlpSink::new(
                "otlp",
                Arc::new(Feeds::default()),
                ReceiverMetrics::new(&telemetry, "otlp", "grpc"),
            ),
            max_message: 1 << 20,
            include_metadata: false,
        });
        let (client, server) = tokio::io::duplex(4096);
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let served = tokio::spawn(async move {
            let config = GrpcServerConfig::default();
            let limits = limits(&config);
            let h2 = serve::builder(protocol(&config), &limits);
            serve::connection(server, service(receiver, peer), &h2, &limits, shutdown).await
        });
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client))
                .await
                .unwrap();
        tokio::spawn(conn);
        // A message announced as 100 bytes, of which 10 come.
        let mut first = vec![0u8, 0, 0, 0, 100];
        first.extend_from_slice(b"0123456789");
        let req = http::Request::post(
            "http://x/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        )
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Stalled(Some(Bytes::from(first))))
        .unwrap();
        let started = tokio::time::Instant::now();
        let resp = sender.send_request(req).await.unwrap();
        assert!(started.elapsed() >= serve::BODY_TIMEOUT);
        assert_eq!(
            resp.headers().get("grpc-status").unwrap(),
            &(Code::DeadlineExceeded as i32).to_string()
        );
        drop((resp, sender));
        assert_eq!(served.await.unwrap(), Close::Closed);
        assert!(telemetry.render().contains(
            "tern_receiver_requests_refused_total{receiver=\"otlp\",transport=\"grpc\",reason=\"body_timeout\"} 1"
        ));
    }
}
