//! `tail_sampling` ingest + decide with many traces in flight: 100 000
//! GenAI-style traces of 10-50 spans in requests of 500 spans, all held at
//! once, then all decided (status_code ERROR + latency > 500 ms + 10%
//! probabilistic), in two layouts: each trace's spans spread over many
//! requests (as they arrive from many SDKs: the worst case, one trace
//! table look-up per span), then each trace's spans together in one
//! request (as one SDK's batch exports them). Prints spans per CPU-second
//! (this thread's CPU time from /proc), the wire bytes held, and the
//! process RSS growth while holding them.
//! Run: `cargo bench -p tern-bench --bench tail_sampling`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tern_config::{GoDuration, PolicyConfig, TailSamplingConfig};
use tern_core::Signal;
use tern_core::pdata::Batch;
use tern_core::telemetry::Telemetry;
use tern_processors::tail_sampling::TailSampling;

const TRACES: u64 = 100_000;
const PER_REQUEST: usize = 500;

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..KeyValue::default()
    }
}

/// Spans in trace `t`: 10-50.
fn spans_in(t: u64) -> u64 {
    10 + (t.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % 41
}

fn span(t: u64, n: u64) -> Span {
    let start = 1_700_000_000_000_000_000 + t * 1_000;
    let mut id = t.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes().to_vec();
    id.extend((t + 1).wrapping_mul(0xc2b2_ae3d_27d4_eb4f).to_be_bytes());
    let tool = n % 3 == 2;
    Span {
        trace_id: id,
        span_id: (t << 8 | n).to_be_bytes().to_vec(),
        parent_span_id: if n == 0 {
            Vec::new()
        } else {
            (t << 8).to_be_bytes().to_vec()
        },
        name: if tool {
            "execute_tool web_search"
        } else {
            "chat gpt-4o"
        }
        .into(),
        kind: 3,
        start_time_unix_nano: start,
        end_time_unix_nano: start + if t % 50 == 7 { 900 } else { 40 } * 1_000_000,
        status: Some(Status {
            code: if t % 100 == 3 && tool { 2 } else { 0 },
            message: String::new(),
        }),
        attributes: vec![
            kv(
                "gen_ai.operation.name",
                any_value::Value::StringValue(if tool { "execute_tool" } else { "chat" }.into()),
            ),
            kv(
                "gen_ai.usage.input_tokens",
                any_value::Value::IntValue((t % 997) as i64),
            ),
        ],
        ..Span::default()
    }
}

fn request(spans: Vec<Span>) -> Bytes {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("agent".into()),
                )],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
    .into()
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn policy(kind: &str, edit: impl FnOnce(&mut PolicyConfig)) -> PolicyConfig {
    let mut p = PolicyConfig {
        name: kind.into(),
        kind: kind.into(),
        ..PolicyConfig::default()
    };
    edit(&mut p);
    p
}

fn main() {
    for spread in [true, false] {
        run(spread);
    }
}

/// The requests of one layout, built before the processor sees them.
fn requests(spread: bool) -> Vec<Batch> {
    let max = (0..TRACES).map(spans_in).max().unwrap_or(0);
    // Spread: the n-th span of every trace, then the (n+1)-th, ...;
    // together: every span of a trace, then the next trace.
    let order: Vec<(u64, u64)> = if spread {
        (0..max)
            .flat_map(|n| {
                (0..TRACES)
                    .filter(move |t| n < spans_in(*t))
                    .map(move |t| (t, n))
            })
            .collect()
    } else {
        (0..TRACES)
            .flat_map(|t| (0..spans_in(t)).map(move |n| (t, n)))
            .collect()
    };
    order
        .chunks(PER_REQUEST)
        .filter_map(|c| {
            let req = request(c.iter().map(|(t, n)| span(*t, *n)).collect());
            Batch::from_wire(Signal::Traces, req, Arc::default()).ok()
        })
        .collect()
}

fn run(spread: bool) {
    let config = TailSamplingConfig {
        decision_wait: GoDuration(Duration::from_secs(5)),
        num_traces: 2 * TRACES,
        max_held_bytes: 0,
        policies: vec![
            policy("status_code", |p| {
                p.status_code.status_codes = vec!["ERROR".into()]
            }),
            policy("latency", |p| p.latency.threshold_ms = 500),
            policy("probabilistic", |p| {
                p.probabilistic.sampling_percentage = 10.0
            }),
        ],
        ..TailSamplingConfig::default()
    };
    // Every request is built first, so the wire bytes are resident before
    // the processor holds them (as a receiver's buffers would be): the RSS
    // growth while ingesting is what the processor adds on top of them.
    let batches = requests(spread);
    let spans: u64 = batches.iter().map(|b| b.items() as u64).sum();
    let wire: u64 = batches.iter().map(|b| b.bytes() as u64).sum();
    let telemetry = Telemetry::new();
    let mut p = TailSampling::new("tail_sampling", &config, &telemetry);
    let now = tokio::time::Instant::now();
    let before = rss();
    let (cpu0, began) = (thread_cpu(), Instant::now());
    for batch in batches {
        assert!(p.ingest(batch, now).is_empty());
    }
    let (ingest_cpu, ingest_wall) = (thread_cpu() - cpu0, began.elapsed());
    let held = p.held_bytes() as u64;
    let grown = rss().saturating_sub(before);
    let (cpu1, began) = (thread_cpu(), Instant::now());
    let kept = p.tick(now + Duration::from_secs(5));
    let (decide_cpu, decide_wall) = (thread_cpu() - cpu1, began.elapsed());
    let kept_bytes: usize = kept.iter().map(Bytes::len).sum();
    drop(kept);
    let mib = |b: f64| b / 1048576.0;
    println!(
        "{}:",
        if spread {
            "each trace spread over many requests"
        } else {
            "each trace whole in one request"
        }
    );
    println!("traces in flight:           {TRACES}");
    println!(
        "spans:                      {spans} ({:.1} MiB of requests)",
        mib(wire as f64)
    );
    println!(
        "ingest:                     {ingest_cpu:.2} CPU-s ({:.2} s wall)",
        ingest_wall.as_secs_f64()
    );
    println!(
        "decide:                     {decide_cpu:.2} CPU-s ({:.2} s wall)",
        decide_wall.as_secs_f64()
    );
    println!(
        "ingest + decide:            {:.2} M spans per CPU-second",
        spans as f64 / (ingest_cpu + decide_cpu) / 1e6
    );
    println!("wire bytes held:            {:.1} MiB", mib(held as f64));
    // Memory freed by the first layout stays with the allocator, so RSS
    // growth says something for the first one only.
    if spread {
        println!(
            "processor's own RSS growth: {:.1} MiB ({:.0} bytes per trace)",
            mib(grown as f64),
            grown as f64 / TRACES as f64
        );
        println!(
            "memory: held + growth =     {:.1} MiB; target 1.5x held + 200 B/trace = {:.1} MiB",
            mib((held + grown) as f64),
            mib(1.5 * held as f64 + 200.0 * TRACES as f64)
        );
    }
    println!(
        "kept:                       {:.1} MiB encoded",
        mib(kept_bytes as f64)
    );
    println!("held after decide:          {} bytes", p.held_bytes());
}

/// CPU seconds this thread used (user + system, from /proc).
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let utime: f64 = rest.get(11)?.parse().ok()?;
            let stime: f64 = rest.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}
