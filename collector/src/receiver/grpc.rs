//! OTLP/gRPC: the three `Export` services, served over HTTP/2 by hyper with
//! tonic's gRPC framing and a pass-through codec, so the request reaches the
//! pipeline as the bytes the client sent (gzip and zstd are undone by tonic,
//! within `max_recv_msg_size_mib`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
    trace::v1::ExportTraceServiceResponse,
};
use prost::Message;
use tern_config::{GrpcServerConfig, Signal};
use tern_core::pdata::RequestContext;
use tern_core::status;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, UnaryService};
use tonic::{Code, Status};

use super::{OtlpSink, ReceiveError, metadata_pairs};
use crate::serve::{self, Shutdown};

/// Hands message bytes through untouched in both directions.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
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
        ReceiveError::Refused(_) => {
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
    reached: Arc<AtomicBool>,
}

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = std::future::Ready<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        self.reached.store(true, Ordering::Relaxed);
        let metadata = if self.include_metadata {
            metadata_pairs(&request.metadata().clone().into_headers())
        } else {
            Vec::new()
        };
        let context = Arc::new(RequestContext {
            transport: "grpc",
            peer: Some(self.peer),
            metadata,
        });
        let result = self
            .sink
            .consume(self.signal, request.into_inner(), context)
            .map(|_| tonic::Response::new(empty_response(self.signal)))
            .map_err(|e| status_of(&e));
        std::future::ready(result)
    }
}

/// Serves OTLP/gRPC on `listener` (with `tls` when given) until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: GrpcServerConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    sink: OtlpSink,
    shutdown: Shutdown,
) {
    let max = usize::try_from(config.max_recv_msg_size_mib.saturating_mul(1024 * 1024))
        .unwrap_or(usize::MAX);
    let streams = config.max_concurrent_streams;
    let make = move |peer: SocketAddr| {
        let sink = sink.clone();
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let sink = sink.clone();
            async move {
                let started = Instant::now();
                let Some(signal) = signal_of_path(req.uri().path()) else {
                    return Ok::<_, Infallible>(
                        Status::unimplemented(format!("unknown method {}", req.uri().path()))
                            .into_http(),
                    );
                };
                let reached = Arc::new(AtomicBool::new(false));
                let export = Export {
                    sink: sink.clone(),
                    signal,
                    peer,
                    include_metadata: config.include_metadata,
                    reached: reached.clone(),
                };
                let mut grpc = Grpc::new(RawCodec)
                    .accept_compressed(CompressionEncoding::Gzip)
                    .accept_compressed(CompressionEncoding::Zstd)
                    .send_compressed(CompressionEncoding::Gzip)
                    .send_compressed(CompressionEncoding::Zstd)
                    .max_decoding_message_size(max);
                let mut response = grpc.unary(export, req).await;
                if !reached.load(Ordering::Relaxed) {
                    // tonic refused it before our handler: too large, bad
                    // compression or framing.
                    let mut code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(-1);
                    if code == Code::OutOfRange as i32 {
                        // tonic says OUT_OF_RANGE for an oversized message,
                        // which OTLP clients retry; gRPC's own servers say
                        // RESOURCE_EXHAUSTED, which they do not.
                        code = Code::ResourceExhausted as i32;
                        response
                            .headers_mut()
                            .insert("grpc-status", http::HeaderValue::from(code));
                    }
                    let reason = if code == Code::ResourceExhausted as i32 {
                        "too_large"
                    } else {
                        "malformed"
                    };
                    sink.metrics().request_refused(reason);
                    tracing::debug!(%signal, grpc_status = %code, reason, "refused gRPC request");
                }
                sink.metrics().request_duration.observe(started.elapsed());
                Ok(response)
            }
        })
    };
    let protocol = serve::Protocol::Http2 {
        max_concurrent_streams: (streams > 0).then_some(streams),
    };
    serve::serve(listener, protocol, tls, shutdown, make).await;
}
