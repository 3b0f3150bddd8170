//! Policies, the decision cache and the byte bound on constructed traces,
//! with paused tokio time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tern_config::{PolicyConfig, TailSamplingConfig};
use tern_core::Signal;
use tern_core::pdata::Batch;
use tern_core::telemetry::Telemetry;
use tokio::time::Instant;

use super::TailSampling;
use super::policy::{fnv1a64, threshold};

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..KeyValue::default()
    }
}

/// A span of trace `t` (its id is `[t; 16]`), lasting `ms`, with `code`.
fn span(t: u8, n: u8, ms: u64, code: i32, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![t; 16],
        span_id: vec![n + 1; 8],
        name: format!("s{n}"),
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 1_000_000_000 + ms * 1_000_000,
        status: Some(Status {
            code,
            message: String::new(),
        }),
        attributes: attrs,
        ..Span::default()
    }
}

fn batch(spans: Vec<Span>) -> Batch {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("svc".into()),
                )],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    Batch::from_wire(
        Signal::Traces,
        Bytes::from(req.encode_to_vec()),
        Arc::default(),
    )
    .expect("valid")
}

fn config(yaml_policies: Vec<PolicyConfig>) -> TailSamplingConfig {
    TailSamplingConfig {
        decision_wait: tern_config::GoDuration(Duration::from_secs(5)),
        policies: yaml_policies,
        ..TailSamplingConfig::default()
    }
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

/// Trace ids of the decoded spans in `requests`.
fn kept(requests: &[Bytes]) -> Vec<u8> {
    let req =
        ExportTraceServiceRequest::decode(tern_core::wire::concat(requests)).expect("decodes");
    let mut ids: Vec<u8> = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.trace_id[0])
        .collect();
    ids.dedup();
    ids
}

fn run(cfg: &TailSamplingConfig, spans: Vec<Span>) -> (TailSampling, Vec<u8>) {
    let mut p = TailSampling::new("tail_sampling", cfg, &Telemetry::new());
    let now = Instant::now();
    assert!(p.ingest(batch(spans), now).is_empty());
    assert!(
        p.tick(now + Duration::from_secs(4)).is_empty(),
        "decided before decision_wait"
    );
    let out = p.tick(now + Duration::from_secs(5));
    let ids = kept(&out);
    (p, ids)
}

#[tokio::test(start_paused = true)]
async fn status_code_keeps_traces_with_an_error_span_whole() {
    let cfg = config(vec![policy("status_code", |p| {
        p.status_code.status_codes = vec!["ERROR".into()];
    })]);
    let spans = vec![
        span(1, 0, 5, 0, vec![]),
        span(1, 1, 5, 2, vec![]),
        span(2, 0, 5, 1, vec![]),
    ];
    let mut p = TailSampling::new("t", &cfg, &Telemetry::new());
    let now = Instant::now();
    p.ingest(batch(spans), now);
    let out = p.tick(now + Duration::from_secs(5));
    assert_eq!(kept(&out), vec![1]);
    // Both spans, with their resource.
    let req = ExportTraceServiceRequest::decode(tern_core::wire::concat(&out)).expect("decodes");
    assert_eq!(
        req.resource_spans[0].scope_spans[0].spans.len(),
        2,
        "both spans of trace 1"
    );
    assert_eq!(
        req.resource_spans[0]
            .resource
            .as_ref()
            .map(|r| r.attributes.len()),
        Some(1)
    );
}

#[tokio::test(start_paused = true)]
async fn latency_uses_the_running_trace_duration_and_bounds() {
    let lower = config(vec![policy("latency", |p| p.latency.threshold_ms = 500)]);
    let spans = vec![span(1, 0, 499, 0, vec![]), span(2, 0, 500, 0, vec![])];
    assert_eq!(run(&lower, spans).1, vec![2]);
    let bounded = config(vec![policy("latency", |p| {
        p.latency.threshold_ms = 500;
        p.latency.upper_threshold_ms = 1000;
    })]);
    // With an upper bound the lower one is exclusive; a trace is sampled
    // as soon as its duration so far (spans in arrival order) is in range.
    let mut late_end = span(4, 1, 1001, 0, vec![]);
    late_end.start_time_unix_nano += 1_000_000;
    let spans = vec![
        span(1, 0, 500, 0, vec![]),
        span(2, 0, 501, 0, vec![]),
        span(3, 0, 1001, 0, vec![]),
        span(4, 0, 900, 0, vec![]),
        late_end,
    ];
    assert_eq!(run(&bounded, spans).1, vec![2, 4]);
}

#[tokio::test(start_paused = true)]
async fn attribute_policies_and_inversion() {
    let s = |t, v: &str| {
        span(
            t,
            0,
            1,
            0,
            vec![kv("tool", any_value::Value::StringValue(v.into()))],
        )
    };
    let exact = config(vec![policy("string_attribute", |p| {
        p.string_attribute.key = "tool".into();
        p.string_attribute.values = vec!["search".into()];
    })]);
    assert_eq!(run(&exact, vec![s(1, "search"), s(2, "other")]).1, vec![1]);
    let regex = config(vec![policy("string_attribute", |p| {
        p.string_attribute.key = "tool".into();
        p.string_attribute.values = vec!["^sea.*".into()];
        p.string_attribute.enabled_regex_matching = true;
    })]);
    assert_eq!(run(&regex, vec![s(1, "search"), s(2, "other")]).1, vec![1]);
    // An inverted match samples the traces where nothing matches; one that
    // matches is a plain "not sampled", no veto (Collector v0.161): another
    // policy that samples keeps the trace.
    let invert = policy("string_attribute", |p| {
        p.string_attribute.key = "tool".into();
        p.string_attribute.values = vec!["search".into()];
        p.string_attribute.invert_match = true;
    });
    let traces = vec![s(1, "search"), s(2, "other"), span(3, 0, 1, 0, vec![])];
    let inverted = config(vec![invert.clone()]);
    assert_eq!(run(&inverted, traces.clone()).1, vec![2, 3]);
    let errors = policy("status_code", |p| {
        p.status_code.status_codes = vec!["ERROR".into()]
    });
    let with_errors = config(vec![invert, errors]);
    let mut traces = traces;
    traces[0].status = Some(Status {
        code: 2,
        message: String::new(),
    });
    assert_eq!(run(&with_errors, traces).1, vec![1, 2, 3]);
    let n = |t, v| span(t, 0, 1, 0, vec![kv("code", any_value::Value::IntValue(v))]);
    let numeric = config(vec![policy("numeric_attribute", |p| {
        p.numeric_attribute.key = "code".into();
        p.numeric_attribute.min_value = Some(400);
        p.numeric_attribute.max_value = Some(599);
    })]);
    assert_eq!(run(&numeric, vec![n(1, 200), n(2, 503)]).1, vec![2]);
    let b = |t, v| {
        span(
            t,
            0,
            1,
            0,
            vec![kv("retry", any_value::Value::BoolValue(v))],
        )
    };
    let boolean = config(vec![policy("boolean_attribute", |p| {
        p.boolean_attribute.key = "retry".into();
        p.boolean_attribute.value = true;
    })]);
    assert_eq!(run(&boolean, vec![b(1, false), b(2, true)]).1, vec![2]);
}

#[tokio::test(start_paused = true)]
async fn probabilistic_matches_the_collector_hash() {
    assert_eq!(threshold(0.0), 0);
    assert_eq!(threshold(100.0), u64::MAX);
    assert_eq!(threshold(50.0), u64::MAX / 2);
    let cfg = config(vec![policy("probabilistic", |p| {
        p.probabilistic.sampling_percentage = 50.0
    })]);
    let spans: Vec<Span> = (1..=40).map(|t| span(t, 0, 1, 0, vec![])).collect();
    let expected: Vec<u8> = (1..=40u8)
        .filter(|t| fnv1a64(b"default-hash-seed", &[*t; 16]) <= threshold(50.0))
        .collect();
    assert!(!expected.is_empty() && expected.len() < 40);
    assert_eq!(run(&cfg, spans).1, expected);
}

#[tokio::test(start_paused = true)]
async fn span_count_trace_state_and_composites() {
    let count = config(vec![policy("span_count", |p| {
        p.span_count.min_spans = 2;
        p.span_count.max_spans = 2;
    })]);
    let spans = vec![
        span(1, 0, 1, 0, vec![]),
        span(2, 0, 1, 0, vec![]),
        span(2, 1, 1, 0, vec![]),
    ];
    assert_eq!(run(&count, spans).1, vec![2]);
    let mut ts = span(1, 0, 1, 0, vec![]);
    ts.trace_state = "a=b,vendor=keep".into();
    let state = config(vec![policy("trace_state", |p| {
        p.trace_state.key = "vendor".into();
        p.trace_state.values = vec!["keep".into()];
    })]);
    assert_eq!(run(&state, vec![ts, span(2, 0, 1, 0, vec![])]).1, vec![1]);
    let err = policy("status_code", |p| {
        p.status_code.status_codes = vec!["ERROR".into()]
    });
    let slow = policy("latency", |p| p.latency.threshold_ms = 100);
    let and = config(vec![policy("and", |p| {
        p.and.and_sub_policy = vec![err.clone(), slow.clone()]
    })]);
    let spans = vec![
        span(1, 0, 200, 2, vec![]),
        span(2, 0, 200, 0, vec![]),
        span(3, 0, 5, 2, vec![]),
    ];
    assert_eq!(run(&and, spans.clone()).1, vec![1]);
    let drop = config(vec![
        policy("always_sample", |_| {}),
        policy("drop", |p| p.drop.drop_sub_policy = vec![err.clone()]),
    ]);
    assert_eq!(run(&drop, spans.clone()).1, vec![2]);
    let composite = config(vec![policy("composite", |p| {
        p.composite.max_total_spans_per_second = 10;
        p.composite.policy_order = vec!["status_code".into(), "latency".into()];
        p.composite.composite_sub_policy = vec![err, slow];
        p.composite.rate_allocation = ["status_code", "latency"]
            .map(|n| tern_config::RateAllocationConfig {
                policy: n.into(),
                percent: 50,
            })
            .to_vec();
    })]);
    assert_eq!(run(&composite, spans).1, vec![1, 2, 3]);
}

/// Trace `t` of `n` spans.
fn trace_of(t: u8, n: u8) -> Vec<Span> {
    (0..n).map(|i| span(t, i, 1, 0, vec![])).collect()
}

#[tokio::test(start_paused = true)]
async fn rate_limiting_is_a_token_bucket_of_spans() {
    // 2 spans a second, a bucket of 4 (the default: twice the rate), full
    // at first. Traces decided at one instant take from it in turn; one
    // that does not fit leaves it for a smaller one.
    let cfg = config(vec![policy("rate_limiting", |p| {
        p.rate_limiting.spans_per_second = 2
    })]);
    let spans = [trace_of(1, 3), trace_of(2, 2), trace_of(3, 1)].concat();
    let (mut p, ids) = run(&cfg, spans);
    assert_eq!(ids, vec![1, 3]);
    // One second later 2 spans have come back: a trace of 2 fits, then
    // nothing more.
    let now = Instant::now() + Duration::from_secs(1);
    let spans = [trace_of(4, 2), trace_of(5, 1)].concat();
    assert!(p.ingest(batch(spans), now).is_empty());
    assert_eq!(kept(&p.tick(now + Duration::from_secs(5))), vec![4]);
    // `burst_capacity` sizes the bucket, and a trace larger than it never passes.
    let cfg = config(vec![policy("rate_limiting", |p| {
        p.rate_limiting.spans_per_second = 2;
        p.rate_limiting.burst_capacity = 3;
    })]);
    let spans = [trace_of(1, 4), trace_of(2, 3), trace_of(3, 1)].concat();
    assert_eq!(run(&cfg, spans).1, vec![2]);
}

#[tokio::test(start_paused = true)]
async fn bytes_limiting_counts_the_size_the_collector_gives_a_trace() {
    // The Collector's size of a trace that came in one request with one
    // resource is that request's encoded size, plus the empty scope it
    // writes where the request had none (2 bytes).
    let one = |t| batch(trace_of(t, 2)).bytes() as i64 + 2;
    let cfg = config(vec![policy("bytes_limiting", |p| {
        p.bytes_limiting.bytes_per_second = 1;
        p.bytes_limiting.burst_capacity = one(1) * 2;
    })]);
    let spans = [trace_of(1, 2), trace_of(2, 2), trace_of(3, 2)].concat();
    assert_eq!(run(&cfg, spans.clone()).1, vec![1, 2], "exactly two fit");
    let cfg = config(vec![policy("bytes_limiting", |p| {
        p.bytes_limiting.bytes_per_second = 1;
        p.bytes_limiting.burst_capacity = one(1) * 2 - 1;
    })]);
    assert_eq!(run(&cfg, spans).1, vec![1], "one byte short for the second");
}

#[tokio::test(start_paused = true)]
async fn drop_policies_are_evaluated_first_and_end_the_evaluation() {
    // The trace with an error is dropped before the rate limiter sees it,
    // so it does not use up the bucket (room for one span).
    let cfg = config(vec![
        policy("rate_limiting", |p| {
            p.rate_limiting.spans_per_second = 1;
            p.rate_limiting.burst_capacity = 1;
        }),
        policy("drop", |p| {
            p.drop.drop_sub_policy = vec![policy("status_code", |p| {
                p.status_code.status_codes = vec!["ERROR".into()]
            })]
        }),
    ]);
    let spans = vec![span(1, 0, 1, 2, vec![]), span(2, 0, 1, 0, vec![])];
    let (p, ids) = run(&cfg, spans);
    assert_eq!(ids, vec![2]);
    // The rate limiter (second after reordering) judged one trace only.
    let judged = |i: usize| p.metrics.per_policy[i][0].get() + p.metrics.per_policy[i][1].get();
    assert_eq!((judged(0), judged(1)), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn late_spans_follow_the_cached_decision() {
    let mut cfg = config(vec![policy("status_code", |p| {
        p.status_code.status_codes = vec!["ERROR".into()];
    })]);
    cfg.decision_cache.sampled_cache_size = 10;
    cfg.decision_cache.non_sampled_cache_size = 10;
    let (mut p, ids) = run(
        &cfg,
        vec![span(1, 0, 1, 2, vec![]), span(2, 0, 1, 0, vec![])],
    );
    assert_eq!(ids, vec![1]);
    let later = Instant::now() + Duration::from_secs(9);
    let out = p.ingest(
        batch(vec![span(1, 5, 1, 0, vec![]), span(2, 5, 1, 2, vec![])]),
        later,
    );
    assert_eq!(
        kept(&out),
        vec![1],
        "late span of the sampled trace passes at once"
    );
    assert_eq!(
        p.store.len(),
        0,
        "the late error span of a dropped trace is dropped"
    );
    assert_eq!(p.metrics.early_release[1].get(), 1);
    assert_eq!(p.metrics.early_release[0].get(), 1);
}

#[tokio::test(start_paused = true)]
async fn num_traces_drops_the_oldest_undecided() {
    let mut cfg = config(vec![policy("always_sample", |_| {})]);
    cfg.num_traces = 2;
    let (p, ids) = run(&cfg, (1..=3).map(|t| span(t, 0, 1, 0, vec![])).collect());
    assert_eq!(ids, vec![2, 3]);
    assert_eq!(p.metrics.dropped_too_early.get(), 1);
    assert_eq!(p.metrics.new_trace.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_byte_bound_decides_the_oldest_traces_early() {
    let mut cfg = config(vec![policy("always_sample", |_| {})]);
    let one = batch(vec![span(1, 0, 1, 0, vec![])]).bytes();
    cfg.max_held_bytes = (one * 2) as u64;
    let mut p = TailSampling::new("t", &cfg, &Telemetry::new());
    let now = Instant::now();
    for t in 1..=2 {
        assert!(
            p.ingest(batch(vec![span(t, 0, 1, 0, vec![])]), now)
                .is_empty()
        );
    }
    assert_eq!(p.held_bytes(), one * 2);
    let out = p.ingest(batch(vec![span(3, 0, 1, 0, vec![])]), now);
    assert_eq!(kept(&out), vec![1], "the oldest trace decided early");
    assert!(p.held_bytes() <= one * 2);
    assert_eq!(p.metrics.early_decisions.get(), 1);
    assert_eq!(kept(&p.tick(now + Duration::from_secs(5))), vec![2, 3]);
    assert_eq!(p.held_bytes(), 0, "nothing held once decided");
    assert_eq!(p.metrics.held_bytes.get(), 0, "the gauge says so");
}

#[test]
fn the_light_span_read_agrees_with_the_full_one() {
    use tern_core::view::FromWire;
    let mut spans = vec![
        span(1, 0, 250, 2, vec![kv("k", any_value::Value::IntValue(3))]),
        span(2, 1, 0, 0, vec![]),
    ];
    spans[1].status = None;
    spans[1].trace_state = "vendor=keep".into();
    for s in spans {
        let raw = s.encode_to_vec();
        let full = tern_core::view::Span::from_wire(&raw).expect("valid");
        let light = super::store::span_without_attributes(&raw).expect("valid");
        assert_eq!(
            (
                light.start_time_unix_nano,
                light.end_time_unix_nano,
                light.status.map(|s| s.code),
                light.trace_state
            ),
            (
                full.start_time_unix_nano,
                full.end_time_unix_nano,
                full.status.map(|s| s.code),
                full.trace_state
            )
        );
    }
}

#[tokio::test(start_paused = true)]
async fn composite_follows_its_sub_policy_list_and_shares_equally_by_default() {
    // As the Collector v0.161: `policy_order` is not used (the listed
    // order is), and a sub-policy without a `rate_allocation` gets an equal
    // share (2 spans a second each here).
    let mut errors = policy("status_code", |p| {
        p.status_code.status_codes = vec!["ERROR".into()]
    });
    errors.name = "errors".into();
    let mut all = policy("always_sample", |_| {});
    all.name = "all".into();
    let cfg = config(vec![policy("composite", |p| {
        p.composite.max_total_spans_per_second = 4;
        p.composite.policy_order = vec!["all".into(), "errors".into()];
        p.composite.composite_sub_policy = vec![errors, all];
    })]);
    let spans = vec![
        span(1, 0, 1, 2, vec![]),
        span(2, 0, 1, 0, vec![]),
        span(3, 0, 1, 0, vec![]),
        span(4, 0, 1, 2, vec![]),
        span(5, 0, 1, 0, vec![]),
    ];
    // 1 and 4 take the errors' share, 2 and 3 the other; 5 finds no room.
    assert_eq!(run(&cfg, spans).1, vec![1, 2, 3, 4]);
}
