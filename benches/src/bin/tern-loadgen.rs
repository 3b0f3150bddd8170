//! `tern-loadgen`: an OTLP load generator and a counting OTLP sink.
//!
//! `tern-loadgen send` pre-encodes realistic requests (see `tern_bench`)
//! and sends them over gRPC or HTTP protobuf (optionally gzip / zstd) from
//! N connections with M requests in flight each, for a count or a
//! duration, as fast as the target accepts or at a fixed rate. It prints
//! one JSON line: items/s, requests/s, latency percentiles, errors by code.
//! It runs on one thread unless `--threads` says otherwise.
//!
//! `tern-loadgen sink` is an OTLP/gRPC server that answers OK and counts
//! the items it receives; on SIGINT/SIGTERM it prints one JSON line with
//! the totals, so delivery through a collector is verified, not assumed.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{BufMut, Bytes, BytesMut};
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tern_bench::{Kind, encoded_padded};
use tern_core::Signal;

#[derive(Debug, Parser)]
#[command(name = "tern-loadgen", about = "OTLP load generator and counting sink")]
struct Cli {
    /// Runtime threads. 1 (the default) runs everything on one thread,
    /// which leaves the most CPU to the collector on a shared machine.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Traffic {
    Genai,
    Service,
    /// Whole agent traces of 10-50 spans, some failed or slow (tail sampling).
    AgentTraces,
}

#[derive(Debug, clap::Args)]
struct SendArgs {
    /// host:port of the OTLP receiver.
    #[arg(long, default_value = "127.0.0.1:4317")]
    target: String,
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    /// traces, logs or metrics.
    #[arg(long, default_value = "traces")]
    signal: String,
    #[arg(long, value_enum, default_value = "genai")]
    traffic: Traffic,
    /// Items (spans, records, data points) per request.
    #[arg(long, default_value_t = 512)]
    items_per_request: usize,
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Stop after this many requests (0 = use --duration).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Requests per second in total (0 = as fast as accepted).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    #[arg(long, value_enum, default_value = "none")]
    compression: Compression,
    /// Distinct pre-encoded requests to cycle through.
    #[arg(long, default_value_t = 64)]
    distinct: usize,
    /// Extra bytes per span (an attribute), for bigger spans.
    #[arg(long, default_value_t = 0)]
    span_padding: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send load to a collector.
    Send(SendArgs),
    /// Count what arrives over OTLP/gRPC.
    Sink {
        #[arg(long, default_value = "127.0.0.1:5317")]
        listen: SocketAddr,
    },
}

fn compress(c: Compression, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(match c {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data)?;
            e.finish()?
        }
        Compression::Zstd => zstd::bulk::compress(data, 1)?,
    })
}

fn grpc_path(signal: &str) -> &'static str {
    match signal {
        "logs" => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        "metrics" => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        _ => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    ok: u64,
    items: u64,
    errors: BTreeMap<String, u64>,
}

enum Sender {
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
}

async fn connect(target: &str, protocol: Protocol) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(target)
        .await
        .with_context(|| format!("connect {target}"))?;
    tcp.set_nodelay(true)?;
    let io = TokioIo::new(tcp);
    Ok(match protocol {
        Protocol::Grpc => {
            let (s, c) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(4 << 20)
                .initial_connection_window_size(16 << 20)
                .handshake(io)
                .await?;
            tokio::spawn(c);
            Sender::H2(s)
        }
        Protocol::Http => {
            let (s, c) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(c);
            Sender::H1(s)
        }
    })
}

/// What to send and where.
struct Plan {
    target: String,
    path: String,
    bodies: Vec<Bytes>,
    items: Vec<u64>,
    encoding: Option<&'static str>,
    content_type: &'static str,
    requests: u64,
    /// When the clock starts: the rate schedule's origin.
    start: Instant,
    deadline: Instant,
    interval: Option<Duration>,
    workers: usize,
}

/// One request; `Err` carries the error code (gRPC status, HTTP status or `transport`).
async fn one(sender: &mut Sender, plan: &Plan, body: Bytes) -> Result<(), String> {
    match sender {
        Sender::H2(s) => {
            let mut req = http::Request::post(format!("http://{}{}", plan.target, plan.path))
                .header("content-type", "application/grpc")
                .header("te", "trailers");
            if let Some(e) = plan.encoding {
                req = req.header("grpc-encoding", e);
            }
            let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
            let resp = s
                .send_request(req)
                .await
                .map_err(|_| "transport".to_string())?;
            let mut headers = resp.headers().clone();
            let collected = resp
                .into_body()
                .collect()
                .await
                .map_err(|_| "transport".to_string())?;
            if let Some(t) = collected.trailers() {
                headers.extend(t.clone());
            }
            match headers.get("grpc-status").and_then(|v| v.to_str().ok()) {
                Some("0") => Ok(()),
                Some(code) => Err(format!("grpc_{code}")),
                None => Err("grpc_missing_status".into()),
            }
        }
        Sender::H1(s) => {
            s.ready().await.map_err(|_| "transport".to_string())?;
            let mut req = http::Request::post(plan.path.as_str())
                .header("host", plan.target.as_str())
                .header("content-type", plan.content_type);
            if let Some(e) = plan.encoding {
                req = req.header("content-encoding", e);
            }
            let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
            let resp = s
                .send_request(req)
                .await
                .map_err(|_| "transport".to_string())?;
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            if status == 200 {
                Ok(())
            } else {
                Err(format!("http_{status}"))
            }
        }
    }
}

/// When worker `worker` of `workers` sends its `n`th request at a fixed
/// rate: each sends every `interval`, and they take turns (worker `w`
/// starts `w / workers` of an interval in), so requests leave evenly
/// spaced instead of in bursts of `workers`.
fn due(start: Instant, interval: Duration, worker: usize, workers: usize, n: u32) -> Instant {
    start + interval.mul_f64(worker as f64 / workers as f64) + interval * n
}

async fn worker(
    mut sender: Sender,
    plan: Arc<Plan>,
    issued: Arc<AtomicU64>,
    first: usize,
) -> Tally {
    let mut tally = Tally::default();
    let mut k = first;
    let mut sent: u32 = 0;
    loop {
        let n = issued.fetch_add(1, Ordering::Relaxed);
        if (plan.requests > 0 && n >= plan.requests)
            || (plan.requests == 0 && Instant::now() >= plan.deadline)
        {
            return tally;
        }
        // Latency counts from when the request was due, not from when it
        // left: a slow answer that delays the next request is charged to
        // the requests it delayed (no coordinated omission).
        let t0 = match plan.interval {
            Some(iv) => {
                let at = due(plan.start, iv, first, plan.workers, sent);
                sent = sent.saturating_add(1);
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        k = (k + plan.workers) % plan.bodies.len();
        let result = one(&mut sender, &plan, plan.bodies[k].clone()).await;
        tally
            .latencies_us
            .push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
        match result {
            Ok(()) => {
                tally.ok += 1;
                tally.items += plan.items[k];
            }
            Err(code) => *tally.errors.entry(code).or_default() += 1,
        }
    }
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let SendArgs {
        target,
        protocol,
        signal,
        traffic,
        items_per_request,
        connections,
        in_flight,
        requests,
        duration,
        rate,
        compression,
        distinct,
        span_padding,
    } = args;
    let kind = match traffic {
        Traffic::Genai => Kind::GenAi,
        Traffic::Service => Kind::Service,
        Traffic::AgentTraces => Kind::AgentTraces,
    };
    let sig: Signal = signal.parse().map_err(anyhow::Error::msg)?;
    if distinct == 0 || connections == 0 || in_flight == 0 {
        bail!("--distinct, --connections and --in-flight must be at least 1");
    }
    // Pre-encode (and compress, and frame) every request up front.
    let mut bodies = Vec::with_capacity(distinct);
    let mut items = Vec::with_capacity(distinct);
    for seed in 0..distinct as u64 {
        let raw = encoded_padded(&signal, kind, items_per_request, seed, span_padding);
        items.push(tern_core::wire::count_items(sig, &raw)? as u64);
        let payload = compress(compression, &raw)?;
        bodies.push(match protocol {
            Protocol::Grpc => {
                let mut b = BytesMut::with_capacity(payload.len() + 5);
                b.put_u8(u8::from(compression != Compression::None));
                b.put_u32(u32::try_from(payload.len())?);
                b.extend_from_slice(&payload);
                b.freeze()
            }
            Protocol::Http => Bytes::from(payload),
        });
    }
    let bytes_per_request = bodies.iter().map(Bytes::len).sum::<usize>() / bodies.len();
    let workers = connections * in_flight;
    // Connect first, then start the clock.
    let mut senders = Vec::with_capacity(workers);
    for _ in 0..connections {
        // gRPC: one HTTP/2 connection shared by its in-flight streams;
        // HTTP/1.1: one connection per in-flight request.
        let shared = match protocol {
            Protocol::Grpc => Some(connect(&target, protocol).await?),
            Protocol::Http => None,
        };
        for _ in 0..in_flight {
            senders.push(match &shared {
                Some(Sender::H2(s)) => Sender::H2(s.clone()),
                _ => connect(&target, protocol).await?,
            });
        }
    }
    let start = Instant::now();
    let plan = Arc::new(Plan {
        path: match protocol {
            Protocol::Grpc => grpc_path(&signal).to_string(),
            Protocol::Http => format!("/v1/{signal}"),
        },
        target: target.clone(),
        bodies,
        items,
        encoding: match compression {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        },
        content_type: "application/x-protobuf",
        requests,
        start,
        deadline: start + Duration::from_secs_f64(duration),
        interval: (rate > 0.0).then(|| Duration::from_secs_f64(workers as f64 / rate)),
        workers,
    });
    let issued = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, sender)| tokio::spawn(worker(sender, plan.clone(), issued.clone(), i)))
        .collect();
    let mut total = Tally::default();
    for t in tasks {
        let t = t.await?;
        total.latencies_us.extend(t.latencies_us);
        total.ok += t.ok;
        total.items += t.items;
        for (k, v) in t.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if total.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((total.latencies_us.len() as f64 * p).ceil() as usize)
            .clamp(1, total.latencies_us.len())
            - 1;
        f64::from(total.latencies_us[i]) / 1000.0
    };
    let report = serde_json::json!({
        "signal": signal,
        "protocol": format!("{protocol:?}").to_lowercase(),
        "compression": format!("{compression:?}").to_lowercase(),
        "items_per_request": items_per_request,
        "span_padding": span_padding,
        "bytes_per_request": bytes_per_request,
        "seconds": secs,
        "requests_ok": total.ok,
        "items_ok": total.items,
        "items_per_sec": total.items as f64 / secs,
        "requests_per_sec": total.ok as f64 / secs,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "errors": total.errors,
    });
    println!("{report}");
    Ok(())
}

/// A unary gRPC reply: the (empty) response message, then OK trailers.
struct GrpcOk {
    step: u8,
}

impl http_body::Body for GrpcOk {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.step += 1;
        std::task::Poll::Ready(match self.step {
            1 => Some(Ok(http_body::Frame::data(Bytes::from_static(&[
                0, 0, 0, 0, 0,
            ])))),
            2 => {
                let mut t = http::HeaderMap::new();
                t.insert("grpc-status", http::HeaderValue::from_static("0"));
                Some(Ok(http_body::Frame::trailers(t)))
            }
            _ => None,
        })
    }
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    traces: AtomicU64,
    metrics: AtomicU64,
    logs: AtomicU64,
    bad: AtomicU64,
}

fn unframe(headers: &http::HeaderMap, body: &[u8]) -> Option<Vec<u8>> {
    let len = u32::from_be_bytes(body.get(1..5)?.try_into().ok()?) as usize;
    let payload = body.get(5..5 + len)?;
    if body[0] == 0 {
        return Some(payload.to_vec());
    }
    let mut out = Vec::new();
    match headers.get("grpc-encoding").and_then(|v| v.to_str().ok()) {
        Some("gzip") => {
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(payload), &mut out)
                .ok()?;
        }
        Some("zstd") => {
            out = zstd::stream::decode_all(payload).ok()?;
        }
        _ => return None,
    }
    Some(out)
}

async fn sink(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let c = counts.clone();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let c = c.clone();
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let c = c.clone();
                    async move {
                        let signal = match req.uri().path() {
                            p if p.contains("trace") => Signal::Traces,
                            p if p.contains("metrics") => Signal::Metrics,
                            _ => Signal::Logs,
                        };
                        let headers = req.headers().clone();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        c.requests.fetch_add(1, Ordering::Relaxed);
                        match unframe(&headers, &body)
                            .and_then(|m| tern_core::wire::count_items(signal, &m).ok())
                        {
                            Some(n) => {
                                let counter = match signal {
                                    Signal::Traces => &c.traces,
                                    Signal::Metrics => &c.metrics,
                                    Signal::Logs => &c.logs,
                                };
                                counter.fetch_add(n as u64, Ordering::Relaxed);
                            }
                            None => {
                                c.bad.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        let mut resp = http::Response::new(GrpcOk { step: 0 });
                        resp.headers_mut().insert(
                            "content-type",
                            http::HeaderValue::from_static("application/grpc"),
                        );
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .http2_only()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    accept.abort();
    let report = serde_json::json!({
        "seconds": start.elapsed().as_secs_f64(),
        "requests": counts.requests.load(Ordering::Relaxed),
        "traces": counts.traces.load(Ordering::Relaxed),
        "metrics": counts.metrics.load(Ordering::Relaxed),
        "logs": counts.logs.load(Ordering::Relaxed),
        "malformed": counts.bad.load(Ordering::Relaxed),
    });
    println!("{report}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = match cli.threads {
        0 => bail!("--threads must be at least 1"),
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    rt.block_on(async move {
        match cli.command {
            Command::Send(args) => send(args).await,
            Command::Sink { listen } => sink(listen).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_a_fixed_rate_requests_are_due_evenly_spaced() {
        let start = Instant::now();
        let (workers, interval) = (16, Duration::from_millis(8));
        let mut times: Vec<Instant> = (0..workers)
            .flat_map(|w| (0..10).map(move |n| due(start, interval, w, workers, n)))
            .collect();
        times.sort();
        assert_eq!(times[0], start);
        let step = interval / workers as u32; // 0.5 ms: 2000 requests/s
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            let off = gap.abs_diff(step);
            assert!(
                off <= Duration::from_nanos(1),
                "gap {gap:?}, expected {step:?}"
            );
        }
        assert_eq!(times.len(), 160);
    }
}
