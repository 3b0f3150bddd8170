//! Views and the editor against prost, on random requests of every signal
//! (every field, every value type, empty and missing parts, resources and
//! scopes the plan drops or keeps whole): reads give what prost decodes,
//! edits what prost's decode -> change -> encode gives; corrupted and
//! truncated requests give errors, never panics. The same checks run on
//! realistic payloads in tern-bench's tests.

#![allow(clippy::unwrap_used)]

#[path = "common/views.rs"]
mod views;

use bytes::Bytes;
use fastrand::Rng;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point, metric, number_data_point,
    summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use tern_core::Signal;
use tern_core::view::{
    self, Change, Decision, Edit, RequestView, ResourceView, ScopeView, Traces, Value,
};
use tern_core::wire::{Reason, count_items};

const KEYS: [&str; 12] = [
    "service.name",
    "k8s.pod.name",
    "service.namespace",
    "gen_ai.request.model",
    "gen_ai.system",
    "gen_ai.operation.name",
    "http.route",
    "shard",
    "scope.drop",
    "user.id",
    "retries",
    "payload",
];

fn text(rng: &mut Rng, choices: &[&str]) -> String {
    if rng.u8(..4) == 0 {
        // Some non-ASCII text too.
        return format!("ü{}→", rng.u32(..1000));
    }
    choices[rng.usize(..choices.len())].to_string()
}

fn id(rng: &mut Rng, len: usize) -> Vec<u8> {
    if rng.u8(..5) == 0 {
        Vec::new()
    } else {
        (0..len).map(|_| rng.u8(..)).collect()
    }
}

fn value(rng: &mut Rng, depth: usize) -> AnyValue {
    use any_value::Value as V;
    let value = match rng.u8(..if depth > 1 { 6 } else { 8 }) {
        0 => None,
        1 => Some(V::StringValue(text(rng, &["gpt-4o", "", "x"]))),
        2 => Some(V::BoolValue(rng.bool())),
        3 => Some(V::IntValue(rng.i64(..))),
        4 => Some(V::DoubleValue(rng.f64() * 1e6 - 5e5)),
        5 => {
            let len = rng.usize(..20);
            Some(V::BytesValue(id(rng, len)))
        }
        6 => Some(V::ArrayValue(ArrayValue {
            values: (0..rng.usize(..4)).map(|_| value(rng, depth + 1)).collect(),
        })),
        _ => Some(V::KvlistValue(KeyValueList {
            values: attributes(rng, 3, depth + 1),
        })),
    };
    AnyValue { value }
}

/// Up to `max` attributes with distinct keys, some the plan edits.
fn attributes(rng: &mut Rng, max: usize, depth: usize) -> Vec<KeyValue> {
    let mut keys = KEYS.to_vec();
    rng.shuffle(&mut keys);
    keys.truncate(rng.usize(..=max));
    keys.into_iter()
        .map(|key| KeyValue {
            key: key.into(),
            value: Some(if key == "service.name" {
                AnyValue {
                    value: Some(any_value::Value::StringValue(text(
                        rng,
                        &["svc-a", "drop-me", "keep-me"],
                    ))),
                }
            } else {
                value(rng, depth)
            }),
            ..Default::default()
        })
        .collect()
}

fn resource(rng: &mut Rng) -> Option<Resource> {
    (rng.u8(..5) > 0).then(|| Resource {
        attributes: attributes(rng, 6, 0),
        dropped_attributes_count: rng.u32(..3),
        entity_refs: Vec::new(),
    })
}

fn scope(rng: &mut Rng) -> Option<InstrumentationScope> {
    (rng.u8(..5) > 0).then(|| InstrumentationScope {
        name: text(rng, &["openai", "drop.scope", "keep.scope", ""]),
        version: text(rng, &["1.0", ""]),
        attributes: attributes(rng, 3, 0),
        dropped_attributes_count: rng.u32(..3),
    })
}

fn random_span(rng: &mut Rng) -> Span {
    Span {
        trace_id: id(rng, 16),
        span_id: id(rng, 8),
        trace_state: text(rng, &["", "ot=th:8", "vendor=1"]),
        parent_span_id: id(rng, 8),
        flags: rng.u32(..),
        name: text(rng, &["chat gpt-4o", "execute_tool", ""]),
        kind: rng.i32(0..6),
        start_time_unix_nano: rng.u64(..),
        end_time_unix_nano: rng.u64(..),
        attributes: attributes(rng, 8, 0),
        dropped_attributes_count: rng.u32(..3),
        events: (0..rng.usize(..3))
            .map(|_| span::Event {
                time_unix_nano: rng.u64(..),
                name: text(rng, &["exception", ""]),
                attributes: attributes(rng, 3, 0),
                dropped_attributes_count: rng.u32(..3),
            })
            .collect(),
        dropped_events_count: rng.u32(..3),
        links: (0..rng.usize(..3))
            .map(|_| span::Link {
                trace_id: id(rng, 16),
                span_id: id(rng, 8),
                trace_state: text(rng, &["", "a=b"]),
                attributes: attributes(rng, 3, 0),
                dropped_attributes_count: rng.u32(..3),
                flags: rng.u32(..),
            })
            .collect(),
        dropped_links_count: rng.u32(..3),
        status: (rng.u8(..4) > 0).then(|| Status {
            message: text(rng, &["", "boom"]),
            code: rng.i32(0..3),
        }),
    }
}

fn random_traces(rng: &mut Rng) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: (0..rng.usize(..4))
            .map(|_| ResourceSpans {
                resource: resource(rng),
                scope_spans: (0..rng.usize(..4))
                    .map(|_| ScopeSpans {
                        scope: scope(rng),
                        spans: (0..rng.usize(..6)).map(|_| random_span(rng)).collect(),
                        schema_url: text(rng, &["", "https://opentelemetry.io/schemas/1.30.0"]),
                    })
                    .collect(),
                schema_url: text(rng, &["", "https://opentelemetry.io/schemas/1.30.0"]),
            })
            .collect(),
    }
}

fn random_logs(rng: &mut Rng) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: (0..rng.usize(..4))
            .map(|_| ResourceLogs {
                resource: resource(rng),
                scope_logs: (0..rng.usize(..4))
                    .map(|_| ScopeLogs {
                        scope: scope(rng),
                        log_records: (0..rng.usize(..6))
                            .map(|_| LogRecord {
                                time_unix_nano: rng.u64(..),
                                observed_time_unix_nano: rng.u64(..),
                                severity_number: rng.i32(0..25),
                                severity_text: text(rng, &["INFO", "ERROR", ""]),
                                body: (rng.u8(..4) > 0).then(|| value(rng, 0)),
                                attributes: attributes(rng, 8, 0),
                                dropped_attributes_count: rng.u32(..3),
                                flags: rng.u32(..),
                                trace_id: id(rng, 16),
                                span_id: id(rng, 8),
                                event_name: text(rng, &["", "gen_ai.choice"]),
                            })
                            .collect(),
                        schema_url: text(rng, &["", "s"]),
                    })
                    .collect(),
                schema_url: text(rng, &["", "s"]),
            })
            .collect(),
    }
}

fn maybe_f64(rng: &mut Rng) -> Option<f64> {
    rng.bool().then(|| rng.f64() * 100.0)
}

fn exemplars(rng: &mut Rng) -> Vec<Exemplar> {
    (0..rng.usize(..3))
        .map(|_| Exemplar {
            filtered_attributes: attributes(rng, 2, 0),
            time_unix_nano: rng.u64(..),
            span_id: id(rng, 8),
            trace_id: id(rng, 16),
            value: match rng.u8(..3) {
                0 => None,
                1 => Some(exemplar::Value::AsInt(rng.i64(..))),
                _ => Some(exemplar::Value::AsDouble(rng.f64())),
            },
        })
        .collect()
}

fn number_points(rng: &mut Rng) -> Vec<NumberDataPoint> {
    (0..rng.usize(..5))
        .map(|_| NumberDataPoint {
            attributes: attributes(rng, 4, 0),
            start_time_unix_nano: rng.u64(..),
            time_unix_nano: rng.u64(..),
            exemplars: exemplars(rng),
            flags: rng.u32(..2),
            value: match rng.u8(..3) {
                0 => None,
                1 => Some(number_data_point::Value::AsInt(rng.i64(..))),
                _ => Some(number_data_point::Value::AsDouble(rng.f64())),
            },
        })
        .collect()
}

fn buckets(rng: &mut Rng) -> Option<exponential_histogram_data_point::Buckets> {
    rng.bool()
        .then(|| exponential_histogram_data_point::Buckets {
            offset: rng.i32(-50..50),
            bucket_counts: (0..rng.usize(..6)).map(|_| rng.u64(..1 << 40)).collect(),
        })
}

fn random_metric(rng: &mut Rng) -> Metric {
    let n = rng.usize(..5);
    let data = match rng.u8(..6) {
        0 => None,
        1 => Some(metric::Data::Gauge(Gauge {
            data_points: number_points(rng),
        })),
        2 => Some(metric::Data::Sum(Sum {
            data_points: number_points(rng),
            aggregation_temporality: rng.i32(0..3),
            is_monotonic: rng.bool(),
        })),
        3 => Some(metric::Data::Histogram(Histogram {
            data_points: (0..n)
                .map(|_| HistogramDataPoint {
                    attributes: attributes(rng, 4, 0),
                    start_time_unix_nano: rng.u64(..),
                    time_unix_nano: rng.u64(..),
                    count: rng.u64(..),
                    sum: maybe_f64(rng),
                    bucket_counts: (0..rng.usize(..6)).map(|_| rng.u64(..)).collect(),
                    explicit_bounds: (0..rng.usize(..5)).map(|_| rng.f64()).collect(),
                    exemplars: exemplars(rng),
                    flags: rng.u32(..2),
                    min: maybe_f64(rng),
                    max: maybe_f64(rng),
                })
                .collect(),
            aggregation_temporality: rng.i32(0..3),
        })),
        4 => Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: (0..n)
                .map(|_| ExponentialHistogramDataPoint {
                    attributes: attributes(rng, 4, 0),
                    start_time_unix_nano: rng.u64(..),
                    time_unix_nano: rng.u64(..),
                    count: rng.u64(..),
                    sum: maybe_f64(rng),
                    scale: rng.i32(-10..20),
                    zero_count: rng.u64(..),
                    positive: buckets(rng),
                    negative: buckets(rng),
                    flags: rng.u32(..2),
                    exemplars: exemplars(rng),
                    min: maybe_f64(rng),
                    max: maybe_f64(rng),
                    zero_threshold: rng.f64(),
                })
                .collect(),
            aggregation_temporality: rng.i32(0..3),
        })),
        _ => Some(metric::Data::Summary(Summary {
            data_points: (0..n)
                .map(|_| SummaryDataPoint {
                    attributes: attributes(rng, 4, 0),
                    start_time_unix_nano: rng.u64(..),
                    time_unix_nano: rng.u64(..),
                    count: rng.u64(..),
                    sum: rng.f64(),
                    quantile_values: (0..rng.usize(..4))
                        .map(|_| summary_data_point::ValueAtQuantile {
                            quantile: rng.f64(),
                            value: rng.f64() * 10.0,
                        })
                        .collect(),
                    flags: rng.u32(..2),
                })
                .collect(),
        })),
    };
    Metric {
        name: text(rng, &["gen_ai.client.token.usage", "drop.metric", ""]),
        description: text(rng, &["", "tokens"]),
        unit: text(rng, &["", "{token}"]),
        metadata: attributes(rng, 2, 0),
        data,
    }
}

fn random_metrics(rng: &mut Rng) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: (0..rng.usize(..4))
            .map(|_| ResourceMetrics {
                resource: resource(rng),
                scope_metrics: (0..rng.usize(..4))
                    .map(|_| ScopeMetrics {
                        scope: scope(rng),
                        metrics: (0..rng.usize(..5)).map(|_| random_metric(rng)).collect(),
                        schema_url: text(rng, &["", "s"]),
                    })
                    .collect(),
                schema_url: text(rng, &["", "s"]),
            })
            .collect(),
    }
}

fn random(rng: &mut Rng, signal: Signal) -> Vec<u8> {
    match signal {
        Signal::Traces => random_traces(rng).encode_to_vec(),
        Signal::Logs => random_logs(rng).encode_to_vec(),
        Signal::Metrics => random_metrics(rng).encode_to_vec(),
    }
}

const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

#[test]
fn views_and_edits_agree_with_prost_on_random_requests() {
    let mut rng = Rng::with_seed(11);
    for round in 0..400u64 {
        for signal in SIGNALS {
            let bytes = random(&mut rng, signal);
            views::check(signal, &bytes, round);
        }
    }
}

/// A copy of `bytes` with a few random edits: bytes overwritten, inserted
/// or removed, a run of bytes duplicated elsewhere.
fn mutate(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
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

#[test]
fn corrupted_and_truncated_requests_are_errors_never_panics() {
    let mut rng = Rng::with_seed(5);
    let mut refused = 0;
    for round in 0..150u64 {
        for signal in SIGNALS {
            let bytes = random(&mut rng, signal);
            for _ in 0..20 {
                let bad = mutate(&mut rng, &bytes);
                refused += usize::from(count_items(signal, &bad).is_err());
                views::check_corrupt(signal, &bad, round);
            }
            for cut in (0..bytes.len()).step_by(1 + bytes.len() / 40) {
                views::check_corrupt(signal, &bytes[..cut], round);
            }
        }
    }
    assert!(
        refused > 1000,
        "the mutations hardly broke anything: {refused}"
    );
}

/// A span of `name` with one attribute, in one resource and scope.
fn one_span_request(names: &[&str]) -> Vec<u8> {
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "agent")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: names
                    .iter()
                    .map(|n| Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: (*n).into(),
                        kind: 3,
                        attributes: vec![kv("gen_ai.request.model", n)],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[test]
fn views_borrow_strings_from_the_request() {
    let bytes = one_span_request(&["chat", "tool"]);
    let request = RequestView::<Traces>::new(&bytes);
    let mut names = Vec::new();
    for resource in request.resources() {
        for scope in resource.unwrap().scopes() {
            for span in scope.unwrap().items() {
                let span = span.unwrap();
                let model = span.attributes().get("gen_ai.request.model").unwrap();
                assert_eq!(model, Some(Value::Str(span.name)));
                assert_eq!(span.attributes().get("absent").unwrap(), None);
                assert!(bytes.as_ptr_range().contains(&span.name.as_ptr()));
                names.push((span.name, span.kind));
            }
        }
    }
    assert_eq!(names, [("chat", 3), ("tool", 3)]);
}

/// Upserts a resource attribute and keeps scopes as they are.
struct TagResource;

impl Edit<Traces> for TagResource {
    fn resource(
        &mut self,
        _: &ResourceView<'_, Traces>,
        change: &mut Change,
    ) -> Result<Decision, tern_core::wire::WireError> {
        change.upsert("k8s.pod.ip", Value::Str("10.0.0.7"));
        Ok(Decision::Keep)
    }
}

#[test]
fn untouched_messages_are_copied_as_bytes() {
    let bytes = one_span_request(&["chat", "tool", "chat"]);
    let scope_bytes = |request: &[u8]| {
        let resource = RequestView::<Traces>::new(request)
            .resources()
            .next()
            .unwrap()
            .unwrap();
        let scope: ScopeView<'_, Traces> = resource.scopes().next().unwrap().unwrap();
        scope.raw.to_vec()
    };
    let edited = view::edit::<Traces, _>(&bytes, &mut TagResource).unwrap();
    assert_eq!(edited.items, 3);
    assert_eq!(scope_bytes(&edited.bytes), scope_bytes(&bytes));
    let resource = RequestView::<Traces>::new(&edited.bytes)
        .resources()
        .next()
        .unwrap()
        .unwrap()
        .resource
        .unwrap();
    assert_eq!(
        resource.attributes().get("k8s.pod.ip").unwrap(),
        Some(Value::Str("10.0.0.7"))
    );
    // An edit that changes nothing writes the request it was given.
    struct Nothing;
    impl Edit<Traces> for Nothing {}
    let same = view::edit::<Traces, _>(&bytes, &mut Nothing).unwrap();
    assert_eq!(same.bytes, Bytes::from(bytes));
}

/// Drops spans named `tool`.
struct DropTools;

impl Edit<Traces> for DropTools {
    fn item(
        &mut self,
        span: &view::Span<'_>,
        _: &mut Change,
    ) -> Result<Decision, tern_core::wire::WireError> {
        Ok(if span.name == "tool" {
            Decision::Drop
        } else {
            Decision::Keep
        })
    }
}

#[test]
fn a_scope_left_empty_is_left_out_with_its_resource() {
    let only_tools = one_span_request(&["tool", "tool"]);
    let edited = view::edit::<Traces, _>(&only_tools, &mut DropTools).unwrap();
    assert_eq!((edited.items, edited.bytes.len()), (0, 0));
    // A resource that held nothing to begin with stays.
    let empty = one_span_request(&[]);
    let edited = view::edit::<Traces, _>(&empty, &mut DropTools).unwrap();
    assert_eq!(edited.bytes, Bytes::from(empty));
}

#[test]
fn a_wrong_wire_type_is_an_error() {
    // A span whose name (field 5) is a varint.
    let bytes = [0x0a, 0x06, 0x12, 0x04, 0x12, 0x02, 0x28, 0x01];
    let scope = RequestView::<Traces>::new(&bytes)
        .resources()
        .next()
        .unwrap()
        .unwrap()
        .scopes()
        .next()
        .unwrap()
        .unwrap();
    let err = scope.items().next().unwrap().unwrap_err();
    assert_eq!(err.reason(), Reason::WireType);
    assert!(view::edit::<Traces, _>(&bytes, &mut DropTools).is_err());
}

/// Sets every span's `trace_state` where a [`view::SpanPeek`] found the old one.
struct ReplaceTraceState;

impl Edit<Traces> for ReplaceTraceState {
    fn item_bytes(
        &mut self,
        raw: &[u8],
        change: &mut Change,
    ) -> Result<Decision, tern_core::wire::WireError> {
        let peek = view::SpanPeek::read(raw, "k")?;
        assert_eq!(peek.trace_state, "b=2", "the last trace_state counts");
        assert_eq!(peek.attribute, Some(Value::Str("first")));
        change.replace_trace_state(&peek, "ot=th:c");
        Ok(Decision::Keep)
    }
}

#[test]
fn a_trace_state_sent_twice_is_replaced_whole() {
    let kv = |v: &str| KeyValue {
        key: "k".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let mut span = Span {
        trace_id: vec![1; 16],
        trace_state: "a=1".into(),
        name: "s".into(),
        attributes: vec![kv("first"), kv("second")],
        ..Default::default()
    }
    .encode_to_vec();
    // A second `trace_state` (field 3), which prost reads as the one.
    span.extend_from_slice(&[0x1a, 3, b'b', b'=', b'2']);
    let nest = |tag: u8, inner: &[u8]| {
        let mut out = vec![tag, u8::try_from(inner.len()).unwrap()];
        out.extend_from_slice(inner);
        out
    };
    let request = nest(0x0a, &nest(0x12, &nest(0x12, &span)));
    let edited = view::edit::<Traces, _>(&request, &mut ReplaceTraceState).unwrap();
    let decoded = ExportTraceServiceRequest::decode(&edited.bytes[..]).unwrap();
    let got = &decoded.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(got.trace_state, "ot=th:c");
    assert_eq!((got.name.as_str(), got.attributes.len()), ("s", 2));
    // Only one `trace_state` field is left.
    let resource = RequestView::<Traces>::new(&edited.bytes)
        .resources()
        .next()
        .unwrap()
        .unwrap();
    let scope = resource.scopes().next().unwrap().unwrap();
    let span = scope.items().next().unwrap().unwrap();
    let trace_states = tern_core::wire::fields(span.raw)
        .filter(|f| f.as_ref().unwrap().number == 3)
        .count();
    assert_eq!(trace_states, 1);
}
