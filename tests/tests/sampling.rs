//! `probabilistic_sampler` in the running binary: traces whose spans arrive
//! in different requests are kept or dropped whole, about the configured
//! share is kept, `sampling.priority` overrides the share, kept spans carry
//! the threshold in `tracestate`, logs are sampled by trace id, and the
//! Collector's counters add up. A metrics pipeline with the sampler is a
//! config error.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tern_e2e::{HttpConn, Tern, sample};

const CONFIG: &str = r#"
processors:
  probabilistic_sampler:
    sampling_percentage: 25
    mode: proportional
  batch:
    timeout: 50ms
exporters:
  file/traces:
    path: {dir}/traces.pb
    format: proto
  file/logs:
    path: {dir}/logs.pb
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [probabilistic_sampler, batch]
      exporters: [file/traces]
    logs:
      receivers: [otlp]
      processors: [probabilistic_sampler]
      exporters: [file/logs]
"#;

const TRACES: u64 = 2000;
const SPANS_PER_TRACE: u64 = 4;

/// A trace id from a counter, its low bytes spread so that W3C randomness
/// (the last 7 bytes) is uniform.
fn trace_id(n: u64) -> Vec<u8> {
    let mut id = n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes().to_vec();
    id.extend(
        n.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            .rotate_left(17)
            .to_be_bytes(),
    );
    id
}

fn priority(value: i64) -> KeyValue {
    KeyValue {
        key: "sampling.priority".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// Span `part` of every trace: each request holds one span of many traces,
/// so a trace's spans arrive in `SPANS_PER_TRACE` different requests.
/// Traces 0-9 say `sampling.priority: 1`, 10-19 `sampling.priority: 0`.
fn part(part: u64, traces: std::ops::Range<u64>) -> ExportTraceServiceRequest {
    let spans = traces
        .map(|t| Span {
            trace_id: trace_id(t),
            span_id: (t * SPANS_PER_TRACE + part + 1).to_be_bytes().to_vec(),
            name: format!("trace {t} span {part}"),
            trace_state: if t % 3 == 0 {
                "vendor=a".into()
            } else {
                String::new()
            },
            attributes: match t {
                0..10 => vec![priority(1)],
                10..20 => vec![priority(0)],
                _ => Vec::new(),
            },
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_kept_whole_at_the_configured_share() {
    let mut tern = Tern::start(CONFIG);
    let mut conn = HttpConn::connect(tern.http).await;
    for p in 0..SPANS_PER_TRACE {
        for chunk in (0..TRACES).collect::<Vec<_>>().chunks(250) {
            let req = part(p, chunk[0]..chunk[chunk.len() - 1] + 1);
            let reply = conn.post_proto("/v1/traces", req.encode_to_vec()).await;
            assert_eq!(reply.status, 200);
        }
    }
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..TRACES)
                    .map(|t| LogRecord {
                        trace_id: trace_id(t),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(t.to_string())),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(
        conn.post_proto("/v1/logs", logs.encode_to_vec())
            .await
            .status,
        200
    );
    let metrics = tern
        .self_metrics_until("every span counted", |m| {
            let counted: f64 = ["true", "false"]
                .iter()
                .flat_map(|s| {
                    ["trace_id_w3c", "sampling_priority"].map(|p| {
                        sample(
                            m,
                            "otelcol_processor_probabilistic_sampler_count_traces_sampled_total",
                            &format!(
                                "processor=\"probabilistic_sampler\",policy=\"{p}\",sampled=\"{s}\""
                            ),
                        )
                        .unwrap_or(0.0)
                    })
                })
                .sum();
            counted == (TRACES * SPANS_PER_TRACE) as f64
        })
        .await;
    assert_eq!(tern.stop().code(), Some(0));

    // Every kept trace is whole; priority 1 kept, priority 0 dropped.
    let mut kept: BTreeMap<Vec<u8>, Vec<Span>> = BTreeMap::new();
    for record in proto_records(&std::fs::read(tern.path("traces.pb")).unwrap()) {
        let req = ExportTraceServiceRequest::decode(record).unwrap();
        for span in req
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
        {
            kept.entry(span.trace_id.clone()).or_default().push(span);
        }
    }
    for (id, spans) in &kept {
        assert_eq!(
            spans.len() as u64,
            SPANS_PER_TRACE,
            "trace {id:02x?} is whole"
        );
    }
    let kept_ids: BTreeSet<u64> = (0..TRACES)
        .filter(|t| kept.contains_key(&trace_id(*t)))
        .collect();
    assert!((0..10).all(|t| kept_ids.contains(&t)), "priority 1 keeps");
    assert!((10..20).all(|t| !kept_ids.contains(&t)), "priority 0 drops");
    // 25% of 1980 traces: the binomial standard deviation is about 19.
    let share = kept_ids.iter().filter(|t| **t >= 20).count();
    assert!(
        (395..=595).contains(&share),
        "kept {share} of 1980 traces at 25%"
    );

    // The threshold goes at the front of tracestate: 25% is `th:c`; the
    // priority-kept traces were kept at 100% (`th:0`).
    for (t, spans) in (0..TRACES).filter_map(|t| kept.get(&trace_id(t)).map(|s| (t, s))) {
        let th = if t < 10 { "ot=th:0" } else { "ot=th:c" };
        let want = if t % 3 == 0 {
            format!("{th},vendor=a")
        } else {
            th.to_owned()
        };
        assert!(
            spans.iter().all(|s| s.trace_state == want),
            "trace {t}: {:?}",
            spans[0].trace_state
        );
    }

    // Counters: what was kept and dropped, by policy.
    let count = |policy: &str, sampled: &str| {
        sample(
            &metrics,
            "otelcol_processor_probabilistic_sampler_count_traces_sampled_total",
            &format!(
                "processor=\"probabilistic_sampler\",policy=\"{policy}\",sampled=\"{sampled}\""
            ),
        )
        .unwrap_or(0.0) as u64
    };
    assert_eq!(count("sampling_priority", "true"), 10 * SPANS_PER_TRACE);
    assert_eq!(count("sampling_priority", "false"), 10 * SPANS_PER_TRACE);
    assert_eq!(
        count("trace_id_w3c", "true"),
        share as u64 * SPANS_PER_TRACE
    );

    // Logs with the same trace ids keep the same traces (but priority).
    let mut kept_logs = BTreeSet::new();
    for record in proto_records(&std::fs::read(tern.path("logs.pb")).unwrap()) {
        let req = ExportLogsServiceRequest::decode(record).unwrap();
        for rec in req
            .resource_logs
            .into_iter()
            .flat_map(|r| r.scope_logs)
            .flat_map(|s| s.log_records)
        {
            let Some(any_value::Value::StringValue(t)) = rec.body.and_then(|b| b.value) else {
                panic!("body");
            };
            let t: u64 = t.parse().unwrap();
            let threshold = rec
                .attributes
                .iter()
                .find(|a| a.key == "sampling.threshold");
            assert!(threshold.is_some(), "log {t} carries sampling.threshold");
            kept_logs.insert(t);
        }
    }
    let traces_without_priority: BTreeSet<u64> =
        kept_ids.into_iter().filter(|t| *t >= 20).collect();
    let logs_without_priority: BTreeSet<u64> = kept_logs.into_iter().filter(|t| *t >= 20).collect();
    assert_eq!(logs_without_priority, traces_without_priority);
}

#[test]
fn the_sampler_refuses_a_metrics_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "receivers: {otlp: {protocols: {grpc: {}}}}\n\
         processors: {probabilistic_sampler: {sampling_percentage: 10, sampling_precision: 15}}\n\
         exporters: {debug: {}}\n\
         service: {pipelines: {metrics: {receivers: [otlp], processors: [probabilistic_sampler], exporters: [debug]}}}\n",
    )
    .unwrap();
    let out = std::process::Command::new(tern_e2e::tern_bin())
        .arg("validate")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("processors.probabilistic_sampler.sampling_precision"),
        "{stderr}"
    );
    assert!(stderr.contains("metrics"), "{stderr}");
}
