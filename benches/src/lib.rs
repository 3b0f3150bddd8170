//! Realistic OTLP payloads for Tern's load generator and benchmarks: GenAI
//! agent traces (`invoke_agent` / `chat` / `execute_tool` spans with
//! `gen_ai.*` attributes and token counts), ordinary service spans, logs
//! with bodies, and metrics of every kind. Deterministic for a given seed.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exponential_histogram_data_point,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;

fn s(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn i(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            s("service.name", service),
            s("service.namespace", "agents"),
            s("service.version", "1.4.2"),
            s("service.instance.id", "7f3c9a1e-pod-3"),
            s("k8s.namespace.name", "prod"),
            s("k8s.pod.name", "research-agent-7f3c9a1e-x2kq"),
            s("telemetry.sdk.language", "python"),
        ],
        ..Default::default()
    })
}

/// What kind of traffic to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GenAI agent traces.
    GenAi,
    /// HTTP service spans.
    Service,
    /// Whole GenAI agent traces of 10-50 spans, for tail sampling: about
    /// 2 % have a failed tool call and 5 % a tool call over 500 ms; the
    /// rest finish within 200 ms.
    AgentTraces,
}

const MODELS: [&str; 3] = ["gpt-4o", "claude-sonnet-4", "llama-3.1-70b"];
const TOOLS: [&str; 4] = [
    "web_search",
    "code_interpreter",
    "vector_lookup",
    "send_email",
];

/// `n` spans in one request; `seed` makes ids unique across requests.
pub fn traces(kind: Kind, n: usize, seed: u64) -> ExportTraceServiceRequest {
    if kind == Kind::AgentTraces {
        return agent_traces(n, seed);
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut spans = Vec::with_capacity(n);
    let base: u64 = 1_764_000_000_000_000_000 + seed * 1_000_000;
    let mut trace_id = rng.u128(..).to_be_bytes().to_vec();
    let mut root = rng.u64(..).to_be_bytes().to_vec();
    for k in 0..n {
        if k % 8 == 0 {
            trace_id = rng.u128(..).to_be_bytes().to_vec();
            root = rng.u64(..).to_be_bytes().to_vec();
        }
        let start = base + (k as u64) * 1_000_000;
        let duration = rng.u64(200_000..900_000_000);
        let (name, kind_code, attributes) = match (kind, k % 8) {
            (Kind::GenAi, 0) => (
                "invoke_agent research-agent".to_string(),
                span::SpanKind::Internal,
                vec![
                    s("gen_ai.operation.name", "invoke_agent"),
                    s("gen_ai.agent.name", "research-agent"),
                    s("gen_ai.conversation.id", "conv-1f2e3d4c"),
                ],
            ),
            (Kind::GenAi, m) if m % 2 == 1 => {
                let model = MODELS[rng.usize(..MODELS.len())];
                (
                    format!("chat {model}"),
                    span::SpanKind::Client,
                    vec![
                        s("gen_ai.operation.name", "chat"),
                        s("gen_ai.system", "openai"),
                        s("gen_ai.request.model", model),
                        i("gen_ai.request.max_tokens", 4096),
                        i("gen_ai.usage.input_tokens", rng.i64(100..20_000)),
                        i("gen_ai.usage.output_tokens", rng.i64(10..2_000)),
                        s("gen_ai.response.finish_reasons", "stop"),
                    ],
                )
            }
            (Kind::GenAi, _) => {
                let tool = TOOLS[rng.usize(..TOOLS.len())];
                (
                    format!("execute_tool {tool}"),
                    span::SpanKind::Internal,
                    vec![
                        s("gen_ai.operation.name", "execute_tool"),
                        s("gen_ai.tool.name", tool),
                        s("gen_ai.tool.call.id", "call_8Jd7sX2"),
                    ],
                )
            }
            (Kind::Service | Kind::AgentTraces, _) => (
                "GET /api/v1/orders/{id}".to_string(),
                span::SpanKind::Server,
                vec![
                    s("http.request.method", "GET"),
                    s("http.route", "/api/v1/orders/{id}"),
                    i("http.response.status_code", 200),
                    s("url.scheme", "https"),
                    s("server.address", "orders.internal"),
                    s("user_agent.original", "python-requests/2.32.3"),
                ],
            ),
        };
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: rng.u64(..).to_be_bytes().to_vec(),
            parent_span_id: if k % 8 == 0 { Vec::new() } else { root.clone() },
            name,
            kind: kind_code as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes,
            status: Some(Status {
                code: 1,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let service = if kind == Kind::GenAi {
        "research-agent"
    } else {
        "orders"
    };
    traces_request(service, spans)
}

/// [`Kind::AgentTraces`]: `n` spans in one request, whole traces of 10-50
/// spans (the last one cut at `n`).
fn agent_traces(n: usize, seed: u64) -> ExportTraceServiceRequest {
    let mut rng = fastrand::Rng::with_seed(seed);
    let base: u64 = 1_764_000_000_000_000_000 + seed * 1_000_000;
    let mut spans = Vec::with_capacity(n);
    while spans.len() < n {
        let trace_id = rng.u128(..).to_be_bytes().to_vec();
        let root = rng.u64(..).to_be_bytes().to_vec();
        let len = rng.usize(10..=50).min(n - spans.len());
        let (failed, slow) = (rng.u32(..100) < 2, rng.u32(..100) < 5);
        let bad = rng.usize(1..len.max(2));
        for k in 0..len {
            let tool = k % 3 == 2 || k == bad;
            let duration = if slow && k == bad {
                rng.u64(600_000_000..2_000_000_000)
            } else {
                rng.u64(200_000..150_000_000)
            };
            let start = base + (k as u64) * 1_000_000;
            let model = MODELS[rng.usize(..MODELS.len())];
            let tool_name = TOOLS[rng.usize(..TOOLS.len())];
            spans.push(Span {
                trace_id: trace_id.clone(),
                span_id: rng.u64(..).to_be_bytes().to_vec(),
                parent_span_id: if k == 0 { Vec::new() } else { root.clone() },
                name: match (k, tool) {
                    (0, _) => "invoke_agent research-agent".to_string(),
                    (_, true) => format!("execute_tool {tool_name}"),
                    _ => format!("chat {model}"),
                },
                kind: if tool || k == 0 {
                    span::SpanKind::Internal
                } else {
                    span::SpanKind::Client
                } as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration,
                attributes: if tool {
                    vec![
                        s("gen_ai.operation.name", "execute_tool"),
                        s("gen_ai.tool.name", tool_name),
                    ]
                } else {
                    vec![
                        s("gen_ai.operation.name", "chat"),
                        s("gen_ai.request.model", model),
                        i("gen_ai.usage.input_tokens", rng.i64(100..20_000)),
                        i("gen_ai.usage.output_tokens", rng.i64(10..2_000)),
                    ]
                },
                status: Some(Status {
                    code: if failed && k == bad { 2 } else { 1 },
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    traces_request("research-agent", spans)
}

/// One request holding `spans` of `service` under the instrumentation
/// scope the generators use.
fn traces_request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry.instrumentation.openai".into(),
                    version: "0.48b0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `n` log records in one request.
pub fn logs(n: usize, seed: u64) -> ExportLogsServiceRequest {
    let mut rng = fastrand::Rng::with_seed(seed);
    let records = (0..n)
        .map(|k| LogRecord {
            time_unix_nano: 1_764_000_000_000_000_000 + (seed * 1000 + k as u64) * 1_000_000,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "tool call {} finished in {} ms for conversation conv-{:08x}; 3 results, top score 0.{:04}",
                    TOOLS[rng.usize(..TOOLS.len())],
                    rng.u32(1..3000),
                    rng.u32(..),
                    rng.u32(..10_000)
                ))),
            }),
            attributes: vec![s("logger.name", "agent.tools"), s("code.function.name", "run_tool")],
            trace_id: rng.u128(..).to_be_bytes().to_vec(),
            span_id: rng.u64(..).to_be_bytes().to_vec(),
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("research-agent"),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// About `n` data points in one request, spread over a gauge, a counter, a
/// histogram and an exponential histogram.
pub fn metrics(n: usize, seed: u64) -> ExportMetricsServiceRequest {
    let mut rng = fastrand::Rng::with_seed(seed);
    let per = (n / 4).max(1);
    let t = 1_764_000_000_000_000_000 + seed * 1_000_000_000;
    let number = |rng: &mut fastrand::Rng, j: usize| NumberDataPoint {
        attributes: vec![
            s("gen_ai.request.model", MODELS[j % 3]),
            i("shard", j as i64),
        ],
        start_time_unix_nano: t - 60_000_000_000,
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsInt(rng.i64(0..100_000))),
        ..Default::default()
    };
    let metrics = vec![
        Metric {
            name: "gen_ai.client.token.usage".into(),
            unit: "{token}".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: (0..per).map(|j| number(&mut rng, j)).collect(),
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "agent.queue.depth".into(),
            unit: "{item}".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: (0..per).map(|j| number(&mut rng, j)).collect(),
            })),
            ..Default::default()
        },
        Metric {
            name: "gen_ai.client.operation.duration".into(),
            unit: "s".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: (0..per)
                    .map(|j| HistogramDataPoint {
                        attributes: vec![s("gen_ai.request.model", MODELS[j % 3])],
                        start_time_unix_nano: t - 60_000_000_000,
                        time_unix_nano: t,
                        count: 60,
                        sum: Some(42.5),
                        bucket_counts: vec![5, 10, 20, 15, 10, 0],
                        explicit_bounds: vec![0.1, 0.5, 1.0, 2.5, 5.0],
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: 2,
            })),
            ..Default::default()
        },
        Metric {
            name: "agent.step.latency".into(),
            unit: "ms".into(),
            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: (0..per)
                    .map(|j| ExponentialHistogramDataPoint {
                        attributes: vec![i("shard", j as i64)],
                        start_time_unix_nano: t - 60_000_000_000,
                        time_unix_nano: t,
                        count: 20,
                        sum: Some(512.0),
                        scale: 3,
                        zero_count: 1,
                        positive: Some(exponential_histogram_data_point::Buckets {
                            offset: 10,
                            bucket_counts: vec![1, 3, 5, 4, 3, 2, 1],
                        }),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: 2,
            })),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("research-agent"),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// An encoded request of `signal` (`traces`, `logs`, `metrics`) with about `n` items.
pub fn encoded(signal: &str, kind: Kind, n: usize, seed: u64) -> Vec<u8> {
    encoded_padded(signal, kind, n, seed, 0)
}

/// Like [`encoded`], with a `gen_ai.prompt.excerpt` attribute of `pad`
/// bytes added to every span (to study bigger spans).
pub fn encoded_padded(signal: &str, kind: Kind, n: usize, seed: u64, pad: usize) -> Vec<u8> {
    match signal {
        "logs" => logs(n, seed).encode_to_vec(),
        "metrics" => metrics(n, seed).encode_to_vec(),
        _ => {
            let mut req = traces(kind, n, seed);
            if pad > 0 {
                let text: String = "Summarise the findings of the three sources above. "
                    .chars()
                    .cycle()
                    .take(pad)
                    .collect();
                for span in req
                    .resource_spans
                    .iter_mut()
                    .flat_map(|r| r.scope_spans.iter_mut())
                    .flat_map(|s| s.spans.iter_mut())
                {
                    span.attributes.push(s("gen_ai.prompt.excerpt", &text));
                }
            }
            req.encode_to_vec()
        }
    }
}

/// The receive guarantee, shared with tern-core's tests and the fuzz target.
#[cfg(test)]
#[path = "../../collector/core/tests/common/property.rs"]
mod property;

/// Views and edits against prost, shared with tern-core's tests.
#[cfg(test)]
#[path = "../../collector/core/tests/common/views.rs"]
mod views;

#[cfg(test)]
mod tests {
    use super::*;
    use tern_core::Signal;
    use tern_core::wire::{count_items, split};

    use crate::property;

    fn prost_count(signal: Signal, bytes: &[u8]) -> Option<usize> {
        property::decode(signal, bytes).map(|(items, _)| items)
    }

    /// The byte walk and the splitter agree with prost on realistic
    /// payloads of every signal and size, and on mutated ones the walk accepts
    /// only what prost decodes.
    #[test]
    fn byte_walk_and_split_agree_with_prost() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..60u64 {
            for (name, signal) in [
                ("traces", Signal::Traces),
                ("logs", Signal::Logs),
                ("metrics", Signal::Metrics),
            ] {
                let n = rng.usize(1..300);
                let bytes = encoded_padded(name, Kind::GenAi, n, round, rng.usize(0..64));
                let count = count_items(signal, &bytes).unwrap();
                assert_eq!(
                    Some(count),
                    prost_count(signal, &bytes),
                    "{name} round {round}"
                );
                let max = rng.usize(1..count + 2);
                let pieces = split(signal, &bytes, max).unwrap();
                let mut total = 0;
                for p in &pieces {
                    assert!(p.items <= max);
                    assert_eq!(prost_count(signal, &p.bytes), Some(p.items));
                    total += p.items;
                }
                assert_eq!(total, count);
                // Mutated, they keep the receive guarantee (the first byte
                // of the check's input names the signal).
                let selector = match signal {
                    Signal::Traces => 0,
                    Signal::Metrics => 1,
                    Signal::Logs => 2,
                };
                for _ in 0..40 {
                    property::check(&[&[selector][..], &mutate(&mut rng, &bytes)].concat());
                }
            }
        }
    }

    /// A copy of `bytes` with a few random edits: bytes overwritten,
    /// inserted or removed, a span of bytes duplicated elsewhere.
    fn mutate(rng: &mut fastrand::Rng, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for _ in 0..rng.usize(1..4) {
            if out.is_empty() {
                break;
            }
            let i = rng.usize(..out.len());
            match rng.u8(..4) {
                0 => out[i] = rng.u8(..),
                1 => out.insert(i, rng.u8(..)),
                2 => {
                    out.remove(i);
                }
                _ => {
                    let end = (i + rng.usize(1..32)).min(out.len());
                    let piece = out[i..end].to_vec();
                    let at = rng.usize(..=out.len());
                    out.splice(at..at, piece);
                }
            }
        }
        out
    }

    /// Views read what prost decodes and edits give what prost's decode ->
    /// change -> encode gives, on realistic payloads of every signal; on
    /// mutated ones, errors and never a panic.
    #[test]
    fn views_and_edits_agree_with_prost() {
        let mut rng = fastrand::Rng::with_seed(3);
        for round in 0..30u64 {
            for (name, signal) in [
                ("traces", Signal::Traces),
                ("logs", Signal::Logs),
                ("metrics", Signal::Metrics),
            ] {
                let kind = if round % 2 == 0 {
                    Kind::GenAi
                } else {
                    Kind::Service
                };
                let bytes = encoded_padded(name, kind, rng.usize(1..600), round, rng.usize(0..64));
                views::check(signal, &bytes, round);
                for _ in 0..20 {
                    views::check_corrupt(signal, &mutate(&mut rng, &bytes), round);
                }
            }
        }
    }

    #[test]
    fn payloads_have_the_items_asked_for_and_realistic_sizes() {
        let t = encoded("traces", Kind::GenAi, 512, 1);
        assert_eq!(count_items(Signal::Traces, &t).unwrap(), 512);
        let per_span = t.len() / 512;
        assert!((250..=600).contains(&per_span), "{per_span} bytes per span");
        assert_eq!(
            count_items(Signal::Logs, &encoded("logs", Kind::GenAi, 100, 2)).unwrap(),
            100
        );
        assert_eq!(
            count_items(Signal::Metrics, &encoded("metrics", Kind::GenAi, 100, 3)).unwrap(),
            100
        );
        assert_ne!(
            encoded("traces", Kind::Service, 8, 1),
            encoded("traces", Kind::Service, 8, 2)
        );
    }
}
