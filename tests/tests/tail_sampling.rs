//! `tail_sampling` in the running binary: agent traces whose spans arrive in
//! different requests are kept whole when a policy samples them (an error
//! span, a slow tool call) and absent otherwise; a late span follows its
//! trace's remembered decision; the Collector's counters add up; past
//! `max_held_bytes` the oldest traces are decided early and nothing is lost.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tern_e2e::{HttpConn, Tern, sample};

const CONFIG: &str = r#"
processors:
  tail_sampling:
    decision_wait: 1s
    decision_cache: {sampled_cache_size: 1000, non_sampled_cache_size: 1000}
    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR]}
      - name: slow
        type: latency
        latency: {threshold_ms: 500}
exporters:
  file/traces:
    path: {dir}/traces.pb
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [file/traces]
"#;

const TRACES: u8 = 100;
const SPANS_PER_TRACE: u8 = 3;

fn errors(t: u8) -> bool {
    t.is_multiple_of(5)
}

fn slow(t: u8) -> bool {
    t.is_multiple_of(7)
}

/// Span `part` of traces `traces`: part 0 is the agent's root, 1 a chat
/// call, 2 a tool call (failed in error traces, 800 ms in slow ones).
fn part(part: u8, traces: impl Iterator<Item = u8>) -> ExportTraceServiceRequest {
    let start = 1_700_000_000_000_000_000u64;
    let spans = traces
        .map(|t| Span {
            trace_id: vec![t + 1; 16],
            span_id: vec![t + 1, part + 1, 0, 0, 0, 0, 0, 1],
            name: ["invoke_agent", "chat", "execute_tool search"][part as usize % 3].into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + if part == 2 && slow(t) { 800 } else { 20 } * 1_000_000,
            status: Some(Status {
                code: if part == 2 && errors(t) { 2 } else { 0 },
                message: String::new(),
            }),
            attributes: vec![kv("gen_ai.operation.name", "execute_tool")],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![kv("service.name", "agent")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn counter(metrics: &str, name: &str, labels: &str) -> u64 {
    sample(metrics, name, labels).unwrap_or(0.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_kept_whole_or_dropped_whole() {
    let mut tern = Tern::start(CONFIG);
    let mut conn = HttpConn::connect(tern.http).await;
    for p in 0..SPANS_PER_TRACE {
        let reply = conn
            .post_proto("/v1/traces", part(p, 0..TRACES).encode_to_vec())
            .await;
        assert_eq!(reply.status, 200);
    }
    let global = "otelcol_processor_tail_sampling_global_count_traces_sampled_total";
    let metrics = tern
        .self_metrics_settled(
            "every trace decided",
            |m| {
                // The per-policy counts are updated before the global ones.
                let per_policy = "otelcol_processor_tail_sampling_count_traces_sampled_total";
                let decided = counter(m, global, "processor=\"tail_sampling\",sampled=\"true\"")
                    + counter(m, global, "processor=\"tail_sampling\",sampled=\"false\"");
                (
                    decided,
                    m.lines()
                        .filter(|l| l.starts_with(per_policy))
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                )
            },
            |(decided, _)| *decided == u64::from(TRACES),
        )
        .await;
    let want: BTreeSet<u8> = (0..TRACES).filter(|t| errors(*t) || slow(*t)).collect();
    assert_eq!(
        counter(
            &metrics,
            global,
            "processor=\"tail_sampling\",sampled=\"true\""
        ),
        want.len() as u64
    );
    let per_policy = "otelcol_processor_tail_sampling_count_traces_sampled_total";
    assert_eq!(
        counter(
            &metrics,
            per_policy,
            "processor=\"tail_sampling\",sampled=\"true\",policy=\"errors\""
        ),
        u64::from(TRACES).div_ceil(5)
    );
    assert_eq!(
        counter(
            &metrics,
            per_policy,
            "processor=\"tail_sampling\",sampled=\"true\",policy=\"slow\""
        ),
        u64::from(TRACES).div_ceil(7)
    );
    assert_eq!(
        counter(
            &metrics,
            "otelcol_processor_tail_sampling_new_trace_id_received_total",
            "processor=\"tail_sampling\""
        ),
        u64::from(TRACES)
    );

    // Late spans: one of a kept trace (0) passes, one of a dropped trace (1) does not.
    let late = part(1, [0u8, 1].into_iter());
    assert_eq!(
        conn.post_proto("/v1/traces", late.encode_to_vec())
            .await
            .status,
        200
    );
    let release = "otelcol_processor_tail_sampling_early_releases_from_cache_decision_total";
    tern.self_metrics_until("late spans released", |m| {
        counter(m, release, "processor=\"tail_sampling\",sampled=\"true\"") == 1
            && counter(m, release, "processor=\"tail_sampling\",sampled=\"false\"") == 1
    })
    .await;
    assert_eq!(tern.stop().code(), Some(0));

    let mut kept: BTreeMap<u8, Vec<Span>> = BTreeMap::new();
    for record in proto_records(&std::fs::read(tern.path("traces.pb")).unwrap()) {
        let req = ExportTraceServiceRequest::decode(record).unwrap();
        for r in req.resource_spans {
            assert_eq!(
                r.resource.unwrap().attributes,
                vec![kv("service.name", "agent")]
            );
            for span in r.scope_spans.into_iter().flat_map(|s| s.spans) {
                kept.entry(span.trace_id[0] - 1).or_default().push(span);
            }
        }
    }
    assert_eq!(kept.keys().copied().collect::<BTreeSet<_>>(), want);
    for (t, spans) in &kept {
        let whole = usize::from(SPANS_PER_TRACE) + usize::from(*t == 0);
        assert_eq!(spans.len(), whole, "trace {t} is whole");
    }
}

const BOUNDED: &str = r#"
processors:
  tail_sampling:
    decision_wait: 60s
    max_held_bytes: 100000
    policies: [{name: all, type: always_sample}]
exporters:
  file/traces:
    path: {dir}/traces.pb
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [file/traces]
"#;

/// Past `max_held_bytes` the oldest traces are decided at once (here: long
/// before a 60 s `decision_wait`), counted with their reason, and the bytes
/// held stay under the bound; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_bound_decides_the_oldest_traces_early() {
    let mut tern = Tern::start(BOUNDED);
    let mut conn = HttpConn::connect(tern.http).await;
    let requests = 40u8;
    let mut sent = 0;
    for r in 0..requests {
        // Each request: one span of each of 100 traces of its own.
        let mut req = part(0, 0..100);
        for s in &mut req.resource_spans[0].scope_spans[0].spans {
            s.trace_id[1] = r;
            sent += 1;
        }
        assert_eq!(
            conn.post_proto("/v1/traces", req.encode_to_vec())
                .await
                .status,
            200
        );
    }
    let early = "tern_processor_tail_sampling_early_decisions_total";
    let metrics = tern
        .self_metrics_until("early decisions", |m| {
            counter(
                m,
                early,
                "processor=\"tail_sampling\",reason=\"max_held_bytes\"",
            ) > 0
        })
        .await;
    let held = counter(
        &metrics,
        "tern_processor_tail_sampling_held_bytes",
        "processor=\"tail_sampling\"",
    );
    assert!(held <= 100_000, "held {held} bytes");
    assert_eq!(tern.stop().code(), Some(0));
    let spans: usize = proto_records(&std::fs::read(tern.path("traces.pb")).unwrap())
        .into_iter()
        .map(|r| {
            ExportTraceServiceRequest::decode(r)
                .unwrap()
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum::<usize>()
        })
        .sum();
    assert_eq!(spans, sent, "every span written (early, or at shutdown)");
}

/// `max_held_bytes` of this test's processor (32 MiB).
const HELD_MIB: u64 = 32;

/// Fixed overhead the process may grow by on top of `max_held_bytes`, over
/// the idle process (docs/configuration.md, `max_held_bytes`): the
/// receiver's request buffers (4 connections, 1 MiB requests, each decoded
/// and validated), the pipeline queue in front of the processor, the
/// processor's bookkeeping per held span (about 30 bytes: 2 % of these
/// 1.3 KiB spans), the kept traces on their way out, and what the allocator
/// keeps. Without the bound the process would hold the three times 32 MiB
/// sent, and more.
const OVERHEAD_MIB: u64 = 40;

const UNDER_LOAD: &str = r#"
processors:
  tail_sampling:
    decision_wait: 300s
    num_traces: 10000000
    max_held_bytes: 33554432
    policies: [{name: share, type: probabilistic, probabilistic: {sampling_percentage: 10}}]
exporters:
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [nop]
"#;

/// Request `r` of the load: 800 spans of about 1.3 KiB (an LLM call with its
/// prompt), 4 of each of 200 traces; a trace's other 4 spans are in the
/// request before or after, so requests stay held until the traces of both
/// are decided.
fn load_request(r: u32) -> Vec<u8> {
    let start = 1_700_000_000_000_000_000u64;
    let prompt = "p".repeat(1200);
    let spans = (0..200u32)
        .flat_map(|j| {
            let t = r * 100 + j;
            let mut id = vec![0xa5; 16];
            id[..4].copy_from_slice(&t.to_be_bytes());
            let prompt = &prompt;
            (0..4u32).map(move |n| Span {
                trace_id: id.clone(),
                span_id: [r.to_be_bytes(), (j * 4 + n).to_be_bytes()].concat(),
                name: "chat gpt-4o".into(),
                start_time_unix_nano: start,
                end_time_unix_nano: start + 20_000_000,
                attributes: vec![kv("gen_ai.prompt", prompt)],
                ..Default::default()
            })
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![kv("service.name", "agent")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Under three times what `max_held_bytes` lets it hold for one
/// `decision_wait` (100 MiB sent as fast as it takes them, over four
/// connections, within a 300 s wait), the process's resident memory stays
/// under the bound plus a fixed overhead, and every trace it no longer
/// holds was decided early and counted with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_under_the_byte_bound_at_three_times_the_load() {
    let mut tern = Tern::start(UNDER_LOAD);
    let baseline = tern_e2e::peak_rss(tern.pid());
    let requests: Vec<Vec<u8>> = (0..100).map(load_request).collect();
    let sent_bytes: usize = requests.iter().map(Vec::len).sum();
    assert!(sent_bytes as u64 >= (3 * HELD_MIB) << 20, "{sent_bytes}");
    let requests = std::sync::Arc::new(requests);
    let mut senders = Vec::new();
    for c in 0..4 {
        let (requests, port) = (requests.clone(), tern.http);
        senders.push(tokio::spawn(async move {
            let mut conn = HttpConn::connect(port).await;
            let (mut accepted, mut refused) = (0u64, 0u64);
            for body in requests.iter().skip(c).step_by(4) {
                match conn.post_proto("/v1/traces", body.clone()).await.status {
                    200 => accepted += 1,
                    503 | 429 => refused += 1,
                    s => panic!("status {s}"),
                }
            }
            (accepted, refused)
        }));
    }
    let (mut accepted, mut refused) = (0u64, 0u64);
    for s in senders {
        let (a, r) = s.await.unwrap();
        accepted += a;
        refused += r;
    }
    let p = "processor=\"tail_sampling\"";
    // (traces seen, decided early for the byte bound, held now)
    let traces = |m: &str| {
        (
            counter(
                m,
                "otelcol_processor_tail_sampling_new_trace_id_received_total",
                p,
            ),
            counter(
                m,
                "tern_processor_tail_sampling_early_decisions_total",
                "processor=\"tail_sampling\",reason=\"max_held_bytes\"",
            ),
            counter(
                m,
                "otelcol_processor_tail_sampling_sampling_traces_on_memory",
                p,
            ),
        )
    };
    // Nothing is due before 300 s and num_traces is far away: every trace
    // not held any more must have been decided early, for the byte bound,
    // and counted; if the counts never add up, the wait fails. (The
    // incoming count is taken before a request is, so it comes first.)
    let m = tern
        .self_metrics_settled(
            "every accepted span taken in, and traces seen = decided early + held",
            |m| {
                let incoming = counter(
                    m,
                    "otelcol_processor_incoming_items_total",
                    "processor=\"tail_sampling\",otel_signal=\"traces\"",
                );
                (incoming, traces(m))
            },
            |&(incoming, (new, early, held))| incoming == accepted * 800 && new == early + held,
        )
        .await;
    let peak = tern_e2e::peak_rss(tern.pid());
    let (new, early, held_traces) = traces(&m);
    let held = counter(&m, "tern_processor_tail_sampling_held_bytes", p);
    let global = "otelcol_processor_tail_sampling_global_count_traces_sampled_total";
    let decided = counter(&m, global, "processor=\"tail_sampling\",sampled=\"true\"")
        + counter(&m, global, "processor=\"tail_sampling\",sampled=\"false\"");
    eprintln!(
        "tail_sampling under load: baseline {} MiB, peak {} MiB, bound {HELD_MIB} MiB + {OVERHEAD_MIB} MiB; \
         sent {} MiB in 100 requests, accepted {accepted}, refused {refused}; traces {new}, early {early}, held {held_traces} ({} MiB)",
        baseline >> 20,
        peak >> 20,
        sent_bytes >> 20,
        held >> 20
    );
    assert!(
        accepted * 800 * 1300 > 2 * (HELD_MIB << 20),
        "accepted {accepted}"
    );
    assert!(held <= HELD_MIB << 20, "held {held} bytes");
    assert!(
        early > 0 && held_traces > 0,
        "early {early}, held {held_traces}"
    );
    assert_eq!(decided, early, "every decision so far was an early one");
    assert_eq!(
        counter(
            &m,
            "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total",
            p
        ),
        0
    );
    let bound = baseline + (HELD_MIB + OVERHEAD_MIB) * 1024 * 1024;
    assert!(
        peak < bound,
        "peak RSS {} MiB over {} MiB (baseline {} MiB)",
        peak >> 20,
        bound >> 20,
        baseline >> 20
    );
    assert!(tern.stop().success(), "{}", tern.logs());
}
