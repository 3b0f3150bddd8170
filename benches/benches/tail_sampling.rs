//! `tail_sampling` ingest + decide with many traces in flight: 100 000
//! GenAI-style traces of 10-50 spans, the spans of each trace spread over
//! many requests of 500 spans (as they arrive from many SDKs), all held at
//! once, then all decided (status_code ERROR + latency > 500 ms + 10%
//! probabilistic). Prints spans per CPU-second (one thread, no I/O, so wall
//! time is CPU time), the wire bytes held, and the process RSS growth while
//! holding them. Run: `cargo bench -p tern-bench --bench tail_sampling`.

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
    let telemetry = Telemetry::new();
    let mut p = TailSampling::new("tail_sampling", &config, &telemetry);
    let now = tokio::time::Instant::now();
    let before = rss();
    let (mut spans, mut ingest, mut pending) =
        (0u64, Duration::ZERO, Vec::with_capacity(PER_REQUEST));
    let max = (0..TRACES).map(spans_in).max().unwrap_or(0);
    // Round n sends span n of every trace that has one.
    for n in 0..max {
        for t in 0..TRACES {
            if n < spans_in(t) {
                pending.push(span(t, n));
            }
            if pending.len() == PER_REQUEST || (t == TRACES - 1 && !pending.is_empty()) {
                let req = request(std::mem::take(&mut pending));
                let Ok(batch) = Batch::from_wire(Signal::Traces, req, Arc::default()) else {
                    continue;
                };
                spans += batch.items() as u64;
                let began = Instant::now();
                let released = p.ingest(batch, now);
                ingest += began.elapsed();
                assert!(released.is_empty());
            }
        }
    }
    let held = p.held_bytes() as u64;
    let grown = rss().saturating_sub(before);
    let began = Instant::now();
    let kept = p.tick(now + Duration::from_secs(5));
    let decide = began.elapsed();
    let kept_bytes: usize = kept.iter().map(Bytes::len).sum();
    let cpu = (ingest + decide).as_secs_f64();
    println!("traces in flight:          {TRACES}");
    println!("spans:                     {spans}");
    println!(
        "ingest:                    {:.3} s ({:.2} M spans/s)",
        ingest.as_secs_f64(),
        spans as f64 / ingest.as_secs_f64() / 1e6
    );
    println!("decide:                    {:.3} s", decide.as_secs_f64());
    println!(
        "ingest + decide:           {:.2} M spans per CPU-second",
        spans as f64 / cpu / 1e6
    );
    println!(
        "wire bytes held:           {:.1} MiB",
        held as f64 / 1048576.0
    );
    println!(
        "RSS growth while holding:  {:.1} MiB",
        grown as f64 / 1048576.0
    );
    println!(
        "target (1.5x held + 200 B/trace): {:.1} MiB",
        (1.5 * held as f64 + 200.0 * TRACES as f64) / 1048576.0
    );
    println!(
        "overhead beyond wire bytes: {:.0} bytes per trace",
        (grown as f64 - held as f64) / TRACES as f64
    );
    println!(
        "kept:                      {:.1} MiB encoded",
        kept_bytes as f64 / 1048576.0
    );
    println!("held after decide:         {} bytes", p.held_bytes());
}
