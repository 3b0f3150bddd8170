//! The hot path allocates per request or per batch, never per item:
//! checking and counting a request, batching requests, concatenating and
//! splitting a batch allocate as often for a few items as for thousands;
//! reading through the views allocates nothing, and the editor allocates
//! per request.
//! Allocations are counted on the test's own thread (allocation-counter).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use allocation_counter::measure;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tern_core::Signal;
use tern_core::pdata::{Batch, RequestContext};
use tern_core::view::{
    self, Change, DataPoint, Decision, Edit, Logs, Metrics, RequestView, ResourceView, Traces,
    Value,
};
use tern_core::wire::WireError;

fn attrs() -> Vec<KeyValue> {
    ["gen_ai.system", "gen_ai.request.model", "service.name"]
        .iter()
        .map(|k| KeyValue {
            key: (*k).into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!("value of {k}"))),
            }),
            ..Default::default()
        })
        .collect()
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: attrs(),
        ..Default::default()
    })
}

fn request(signal: Signal, items: usize) -> Bytes {
    let bytes = match signal {
        Signal::Traces => ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(),
                scope_spans: vec![ScopeSpans {
                    spans: (0..items)
                        .map(|i| Span {
                            trace_id: vec![1; 16],
                            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                            name: format!("chat {i}"),
                            attributes: attrs(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
        Signal::Logs => ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(),
                scope_logs: vec![ScopeLogs {
                    log_records: (0..items)
                        .map(|i| LogRecord {
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(format!("line {i}"))),
                            }),
                            attributes: attrs(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "gen_ai.client.token.usage".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: (0..items)
                                .map(|i| NumberDataPoint {
                                    attributes: attrs(),
                                    value: Some(number_data_point::Value::AsInt(i as i64)),
                                    ..Default::default()
                                })
                                .collect(),
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
    };
    Bytes::from(bytes)
}

const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

#[test]
fn checking_and_counting_a_request_does_not_allocate_per_item() {
    let context = Arc::new(RequestContext::default());
    for signal in SIGNALS {
        let count = |items: usize| {
            let body = request(signal, items);
            let context = context.clone();
            let mut batch = None;
            let info = measure(|| {
                batch = Some(Batch::from_wire(signal, body, context).unwrap());
            });
            assert_eq!(batch.unwrap().items(), items);
            info.count_total
        };
        let (few, many) = (count(4), count(4000));
        assert_eq!(
            few, many,
            "{signal}: {few} allocations for 4 items, {many} for 4000"
        );
        assert!(few <= 1, "{signal}: {few} allocations to check one request");
    }
}

#[test]
fn batching_and_concatenating_allocate_per_request_not_per_item() {
    let context = Arc::new(RequestContext::default());
    for signal in SIGNALS {
        let count = |items: usize| {
            let requests: Vec<Batch> = (0..16)
                .map(|_| Batch::from_wire(signal, request(signal, items), context.clone()).unwrap())
                .collect();
            let mut total = 0;
            let info = measure(|| {
                let mut batch = Batch::empty(signal, context.clone());
                for r in requests {
                    batch.append(r);
                }
                total = batch.items();
                std::hint::black_box(batch.to_wire());
            });
            assert_eq!(total, 16 * items);
            info.count_total
        };
        let (few, many) = (count(2), count(500));
        assert_eq!(
            few, many,
            "{signal}: {few} allocations for 32 items, {many} for 8000"
        );
    }
}

#[test]
fn splitting_allocates_per_piece_not_per_item() {
    let context = Arc::new(RequestContext::default());
    for signal in SIGNALS {
        // Both batches split into 8 pieces; one piece holds 10 items, the
        // other 1000.
        let count = |items: usize| {
            let batch = Batch::from_wire(signal, request(signal, items), context.clone()).unwrap();
            let mut pieces = Vec::new();
            let info = measure(|| pieces = batch.split(items / 8).unwrap());
            assert_eq!(pieces.len(), 8);
            assert_eq!(pieces.iter().map(Batch::items).sum::<usize>(), items);
            info.count_total
        };
        let (few, many) = (count(80), count(8000));
        assert_eq!(
            few, many,
            "{signal}: {few} allocations to split 80 items, {many} for 8000"
        );
    }
}

#[test]
fn reading_views_does_not_allocate() {
    for signal in SIGNALS {
        let body = request(signal, 100);
        let mut seen = 0;
        let info = measure(|| {
            seen = read_all(signal, &body).unwrap();
        });
        assert_eq!(seen, 100, "{signal}");
        assert_eq!(info.count_total, 0, "{signal}: views allocated");
    }
}

/// Reads one field and one attribute of every item; returns the items read.
fn read_all(signal: Signal, body: &[u8]) -> Result<usize, WireError> {
    let mut n = 0;
    let attribute = |v: Option<Value<'_>>| assert!(matches!(v, Some(Value::Str(_))));
    match signal {
        Signal::Traces => {
            for r in RequestView::<Traces>::new(body).resources() {
                for s in r?.scopes() {
                    for span in s?.items() {
                        let span = span?;
                        attribute(span.attributes().get("gen_ai.system")?);
                        n += usize::from(span.name.starts_with("chat"));
                    }
                }
            }
        }
        Signal::Logs => {
            for r in RequestView::<Logs>::new(body).resources() {
                for s in r?.scopes() {
                    for record in s?.items() {
                        let record = record?;
                        attribute(record.attributes().get("service.name")?);
                        n += usize::from(matches!(record.body, Some(Value::Str(_))));
                    }
                }
            }
        }
        Signal::Metrics => {
            for r in RequestView::<Metrics>::new(body).resources() {
                for s in r?.scopes() {
                    for metric in s?.items() {
                        for point in metric?.data_points() {
                            let point = point?;
                            attribute(point.attributes().get("service.name")?);
                            n += usize::from(matches!(point, DataPoint::Number(_)));
                        }
                    }
                }
            }
        }
    }
    Ok(n)
}

/// Drops every second item (data point for metrics), updates an attribute
/// of the others and upserts one on the resource.
#[derive(Default)]
struct Halve {
    seen: usize,
}

impl Halve {
    fn next(&mut self, change: &mut Change) -> Decision {
        self.seen += 1;
        if self.seen.is_multiple_of(2) {
            return Decision::Drop;
        }
        change.upsert("gen_ai.system", Value::Str("x"));
        Decision::Keep
    }

    fn resource(change: &mut Change) -> Result<Decision, WireError> {
        change.upsert("k8s.pod.ip", Value::Str("10.1.2.3"));
        Ok(Decision::Visit)
    }
}

impl Edit<Traces> for Halve {
    fn resource(
        &mut self,
        _: &ResourceView<'_, Traces>,
        c: &mut Change,
    ) -> Result<Decision, WireError> {
        Halve::resource(c)
    }
    fn item(&mut self, _: &view::Span<'_>, c: &mut Change) -> Result<Decision, WireError> {
        Ok(self.next(c))
    }
}

impl Edit<Logs> for Halve {
    fn resource(
        &mut self,
        _: &ResourceView<'_, Logs>,
        c: &mut Change,
    ) -> Result<Decision, WireError> {
        Halve::resource(c)
    }
    fn item(&mut self, _: &view::LogRecord<'_>, c: &mut Change) -> Result<Decision, WireError> {
        Ok(self.next(c))
    }
}

impl Edit<Metrics> for Halve {
    fn resource(
        &mut self,
        _: &ResourceView<'_, Metrics>,
        c: &mut Change,
    ) -> Result<Decision, WireError> {
        Halve::resource(c)
    }
    fn item(&mut self, _: &view::Metric<'_>, _: &mut Change) -> Result<Decision, WireError> {
        Ok(Decision::Visit)
    }
    fn data_point(
        &mut self,
        _: &view::Metric<'_>,
        _: &DataPoint<'_>,
        c: &mut Change,
    ) -> Result<Decision, WireError> {
        Ok(self.next(c))
    }
}

#[test]
fn editing_allocates_per_request_not_per_item() {
    for signal in SIGNALS {
        let count = |items: usize| {
            let body = request(signal, items);
            let mut kept = 0;
            let info = measure(|| {
                let mut halve = Halve::default();
                kept = match signal {
                    Signal::Traces => view::edit::<Traces, _>(&body, &mut halve),
                    Signal::Logs => view::edit::<Logs, _>(&body, &mut halve),
                    Signal::Metrics => view::edit::<Metrics, _>(&body, &mut halve),
                }
                .unwrap()
                .items;
            });
            assert_eq!(kept, items / 2);
            info.count_total
        };
        let (few, many) = (count(10), count(1000));
        assert_eq!(
            few, many,
            "{signal}: {few} allocations to edit 10 items, {many} for 1000"
        );
    }
}
