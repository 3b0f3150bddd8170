//! The byte walk agrees with prost: item counts, splits that keep every item
//! once and in order with its resource and scope, and the OTLP/JSON mapping.

#![allow(clippy::unwrap_used)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tern_core::json::{json_to_wire, wire_to_json};
use tern_core::wire::{count_items, split};
use tern_core::{Signal, hex};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn resource(name: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", name)],
        ..Default::default()
    })
}

fn traces(shape: &[&[usize]]) -> ExportTraceServiceRequest {
    let mut n = 0u64;
    ExportTraceServiceRequest {
        resource_spans: shape
            .iter()
            .enumerate()
            .map(|(r, scopes)| ResourceSpans {
                resource: resource(&format!("svc{r}")),
                scope_spans: scopes
                    .iter()
                    .enumerate()
                    .map(|(s, &count)| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: format!("scope{r}.{s}"),
                            ..Default::default()
                        }),
                        spans: (0..count)
                            .map(|_| {
                                n += 1;
                                Span {
                                    trace_id: n.to_be_bytes().repeat(2),
                                    span_id: n.to_be_bytes().to_vec(),
                                    name: format!("span{n}"),
                                    attributes: vec![kv("gen_ai.system", "openai")],
                                    ..Default::default()
                                }
                            })
                            .collect(),
                        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                    })
                    .collect(),
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// (resource, scope, span name) for every span, in order.
fn flatten(req: &ExportTraceServiceRequest) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for r in &req.resource_spans {
        let svc = format!("{:?}", r.resource.as_ref().unwrap().attributes[0].value);
        for s in &r.scope_spans {
            for span in &s.spans {
                out.push((
                    svc.clone(),
                    s.scope.as_ref().unwrap().name.clone(),
                    span.name.clone(),
                ));
            }
        }
    }
    out
}

fn metrics() -> ExportMetricsServiceRequest {
    let gauge_points = |n: usize| {
        (0..n)
            .map(|i| NumberDataPoint {
                attributes: vec![kv("i", &i.to_string())],
                value: Some(number_data_point::Value::AsDouble(i as f64)),
                time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                ..Default::default()
            })
            .collect::<Vec<_>>()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("m"),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics: vec![
                    Metric {
                        name: "g".into(),
                        unit: "1".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: gauge_points(3),
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "s".into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: gauge_points(4),
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "h".into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                count: 3,
                                bucket_counts: vec![1, 2],
                                explicit_bounds: vec![1.0],
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        })),
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[test]
fn counts_match_prost() {
    let t = traces(&[&[2, 0, 3], &[], &[1]]);
    assert_eq!(count_items(Signal::Traces, &t.encode_to_vec()).unwrap(), 6);
    assert_eq!(
        count_items(Signal::Metrics, &metrics().encode_to_vec()).unwrap(),
        8
    );
    let logs = ExportLogsServiceRequest::default();
    assert_eq!(count_items(Signal::Logs, &logs.encode_to_vec()).unwrap(), 0);
}

#[test]
fn splits_keep_every_span_once_in_order_with_its_resource_and_scope() {
    let req = traces(&[&[5, 1, 7], &[3], &[0, 4]]);
    let wire = req.encode_to_vec();
    let expected = flatten(&req);
    for max in 1..=21 {
        let pieces = split(Signal::Traces, &wire, max).unwrap();
        let mut got = Vec::new();
        for p in &pieces {
            assert!(p.items <= max, "piece of {} > {max}", p.items);
            assert_eq!(count_items(Signal::Traces, &p.bytes).unwrap(), p.items);
            let decoded = ExportTraceServiceRequest::decode(&p.bytes[..]).unwrap();
            // schema_url and resource survive the split
            for r in &decoded.resource_spans {
                assert!(r.resource.is_some());
                for s in &r.scope_spans {
                    assert_eq!(s.schema_url, "https://opentelemetry.io/schemas/1.26.0");
                }
            }
            got.extend(flatten(&decoded));
        }
        assert_eq!(got, expected, "max {max}");
        // All pieces but the last are full.
        for p in &pieces[..pieces.len() - 1] {
            assert_eq!(p.items, max, "max {max}");
        }
    }
}

#[test]
fn metric_splits_cut_inside_metrics_and_keep_metadata() {
    let req = metrics();
    let wire = req.encode_to_vec();
    let pieces = split(Signal::Metrics, &wire, 2).unwrap();
    assert_eq!(
        pieces.iter().map(|p| p.items).collect::<Vec<_>>(),
        vec![2, 2, 2, 2]
    );
    let mut points: Vec<(String, usize)> = Vec::new();
    for p in &pieces {
        let d = ExportMetricsServiceRequest::decode(&p.bytes[..]).unwrap();
        for m in &d.resource_metrics[0].scope_metrics[0].metrics {
            let n = match &m.data {
                Some(metric::Data::Gauge(g)) => g.data_points.len(),
                Some(metric::Data::Sum(s)) => {
                    assert!(s.is_monotonic);
                    assert_eq!(s.aggregation_temporality, 2);
                    s.data_points.len()
                }
                Some(metric::Data::Histogram(h)) => h.data_points.len(),
                other => panic!("{other:?}"),
            };
            if m.name == "g" {
                assert_eq!(m.unit, "1");
            }
            points.push((m.name.clone(), n));
        }
    }
    let total: usize = points.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 8);
    assert_eq!(points.first().unwrap().0, "g");
    assert_eq!(points.last().unwrap().0, "h");
}

#[test]
fn concatenated_requests_are_one_request() {
    let a = traces(&[&[2]]);
    let b = traces(&[&[1], &[3]]);
    let mut both = a.encode_to_vec();
    both.extend(b.encode_to_vec());
    let decoded = ExportTraceServiceRequest::decode(&both[..]).unwrap();
    assert_eq!(decoded.resource_spans.len(), 3);
    assert_eq!(count_items(Signal::Traces, &both).unwrap(), 6);
}

#[test]
fn otlp_json_mapping_is_tolerant_and_round_trips() {
    let json = r#"{
      "resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "someFutureField": {"ignored": true},
        "scopeSpans": [{
          "scope": {"name": "agent"},
          "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "name": "llm.call",
            "kind": 3,
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": 1700000000500000000,
            "attributes": [
              {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1234"}},
              {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 56}},
              {"key": "ratio", "value": {"doubleValue": 0.5}},
              {"key": "ok", "value": {"boolValue": true}}
            ],
            "status": {"code": 2, "message": "boom"}
          }]
        }]
      }]
    }"#;
    let wire = json_to_wire(Signal::Traces, json.as_bytes()).unwrap();
    let req = ExportTraceServiceRequest::decode(wire.clone()).unwrap();
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(hex(&span.trace_id), "5b8efff798038103d269b633813fc60c");
    assert_eq!(hex(&span.span_id), "eee19b7ec3c1b174");
    assert_eq!(span.kind, 3);
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_700_000_000_500_000_000);
    assert_eq!(
        span.attributes[0].value.as_ref().unwrap().value,
        Some(any_value::Value::IntValue(1234))
    );
    assert_eq!(
        span.attributes[1].value.as_ref().unwrap().value,
        Some(any_value::Value::IntValue(56))
    );
    assert_eq!(span.status.as_ref().unwrap().code, 2);

    let mut out = Vec::new();
    wire_to_json(Signal::Traces, &wire, &mut out).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.contains(r#""traceId":"5b8efff798038103d269b633813fc60c""#),
        "{text}"
    );
    assert!(
        text.contains(r#""startTimeUnixNano":"1700000000000000000""#),
        "{text}"
    );
    let again = json_to_wire(Signal::Traces, &out).unwrap();
    assert_eq!(ExportTraceServiceRequest::decode(again).unwrap(), req);
}

#[test]
fn bad_json_is_an_error_with_a_reason() {
    let err = json_to_wire(Signal::Logs, b"{\"resourceLogs\": 5}").unwrap_err();
    assert!(err.to_string().starts_with("invalid OTLP JSON"), "{err}");
    let err = json_to_wire(
        Signal::Traces,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid OTLP JSON"), "{err}");
    assert!(json_to_wire(Signal::Metrics, b"not json").is_err());
}
