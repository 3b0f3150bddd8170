//! OTLP/JSON cases shared by the JSON tests: request bodies in every form
//! the OpenTelemetry Collector's decoder accepts or refuses (enum names,
//! numbers as strings, NaN and infinities, snake_case names, wrong-length
//! ids, empty array and map values), each with what Tern must make of it,
//! and requests whose values JSON has trouble with.

#![allow(dead_code, clippy::unwrap_used)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value as V,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exemplar,
    exponential_histogram_data_point::Buckets, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

pub const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    pub fn path(self) -> String {
        format!("/v1/{}", self.name())
    }

    /// A request holding `item`, under a resource whose `case` attribute
    /// names the test case; in snake_case names when `snake`.
    pub fn wrap(self, case: &str, item: &str, snake: bool) -> String {
        let (resources, scopes, items) = match (self, snake) {
            (Signal::Traces, false) => ("resourceSpans", "scopeSpans", "spans"),
            (Signal::Traces, true) => ("resource_spans", "scope_spans", "spans"),
            (Signal::Metrics, false) => ("resourceMetrics", "scopeMetrics", "metrics"),
            (Signal::Metrics, true) => ("resource_metrics", "scope_metrics", "metrics"),
            (Signal::Logs, false) => ("resourceLogs", "scopeLogs", "logRecords"),
            (Signal::Logs, true) => ("resource_logs", "scope_logs", "log_records"),
        };
        format!(
            r#"{{"{resources}":[{{"resource":{{"attributes":[{{"key":"case","value":{{"stringValue":"{case}"}}}}]}},
                "{scopes}":[{{"{items}":[{item}]}}]}}]}}"#
        )
    }

    /// `(case, item)` for every item of the request in `wire`, each item
    /// as its protobuf encoding.
    pub fn items(self, wire: &[u8]) -> Vec<(String, Vec<u8>)> {
        fn case(resource: &Option<Resource>) -> String {
            let attrs = resource.as_ref().map(|r| &r.attributes[..]).unwrap_or(&[]);
            attrs
                .iter()
                .find(|kv| kv.key == "case")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    V::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        }
        let mut out = Vec::new();
        match self {
            Signal::Traces => {
                for rs in ExportTraceServiceRequest::decode(wire)
                    .unwrap()
                    .resource_spans
                {
                    for ss in &rs.scope_spans {
                        for s in &ss.spans {
                            out.push((case(&rs.resource), s.encode_to_vec()));
                        }
                    }
                }
            }
            Signal::Metrics => {
                for rm in ExportMetricsServiceRequest::decode(wire)
                    .unwrap()
                    .resource_metrics
                {
                    for sm in &rm.scope_metrics {
                        for m in &sm.metrics {
                            out.push((case(&rm.resource), m.encode_to_vec()));
                        }
                    }
                }
            }
            Signal::Logs => {
                for rl in ExportLogsServiceRequest::decode(wire)
                    .unwrap()
                    .resource_logs
                {
                    for sl in &rl.scope_logs {
                        for l in &sl.log_records {
                            out.push((case(&rl.resource), l.encode_to_vec()));
                        }
                    }
                }
            }
        }
        out
    }
}

/// One body posted, and what must come of it.
pub struct Case {
    pub signal: Signal,
    pub name: &'static str,
    pub body: String,
    /// The item that must reach the file, or a piece of the 400's message.
    pub expect: Result<Vec<u8>, &'static str>,
}

pub fn ok(signal: Signal, name: &'static str, item: &str, expected: impl Message) -> Case {
    Case {
        signal,
        name,
        body: signal.wrap(name, item, false),
        expect: Ok(expected.encode_to_vec()),
    }
}

pub fn bad(signal: Signal, name: &'static str, item: &str, needle: &'static str) -> Case {
    Case {
        signal,
        name,
        body: signal.wrap(name, item, false),
        expect: Err(needle),
    }
}

pub const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";
pub const SPAN_ID: &str = "eee19b7ec3c1b174";

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn value(v: V) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

pub fn attr(key: &str, v: V) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value(v),
        ..Default::default()
    }
}

/// What the Collector's and Tern's JSON writers emit for empty values.
pub const EMPTY_VALUES: &str = r#"[{"value":{"stringValue":"keyless"}},{"key":"arr","value":{"arrayValue":{}}},
    {"key":"map","value":{"kvlistValue":{}}},{"key":"none","value":{}}]"#;

pub fn empty_values() -> Vec<KeyValue> {
    vec![
        attr("", V::StringValue("keyless".into())),
        attr("arr", V::ArrayValue(ArrayValue::default())),
        attr("map", V::KvlistValue(KeyValueList::default())),
        KeyValue {
            key: "none".into(),
            value: Some(AnyValue::default()),
            ..Default::default()
        },
    ]
}

pub fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

pub fn double_point(v: f64) -> NumberDataPoint {
    NumberDataPoint {
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

pub fn cases() -> Vec<Case> {
    use Signal::*;
    let cases = vec![
        // Traces.
        Case {
            signal: Traces,
            name: "traces in snake_case",
            body: Traces.wrap(
                "traces in snake_case",
                &format!(
                    r#"{{"trace_id":"{TRACE_ID}","span_id":"{SPAN_ID}","parent_span_id":"{SPAN_ID}",
                    "trace_state":"k=v","name":"s","start_time_unix_nano":"1","end_time_unix_nano":2,
                    "dropped_attributes_count":3,"attributes":[{{"key":"d","value":{{"double_value":0.5}}}}]}}"#
                ),
                true,
            ),
            expect: Ok(Span {
                trace_id: unhex(TRACE_ID),
                span_id: unhex(SPAN_ID),
                parent_span_id: unhex(SPAN_ID),
                trace_state: "k=v".into(),
                name: "s".into(),
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                dropped_attributes_count: 3,
                attributes: vec![attr("d", V::DoubleValue(0.5))],
                ..Default::default()
            }
            .encode_to_vec()),
        },
        ok(
            Traces,
            "enum names",
            r#"{"name":"e","kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR","message":"m"}}"#,
            Span {
                name: "e".into(),
                kind: 2,
                status: Some(Status {
                    message: "m".into(),
                    code: 2,
                }),
                ..Default::default()
            },
        ),
        ok(
            Traces,
            "32-bit integers as strings",
            r#"{"name":"i","flags":"257","droppedAttributesCount":"1","droppedEventsCount":"2","droppedLinksCount":"3"}"#,
            Span {
                name: "i".into(),
                flags: 257,
                dropped_attributes_count: 1,
                dropped_events_count: 2,
                dropped_links_count: 3,
                ..Default::default()
            },
        ),
        ok(
            Traces,
            "doubleValue as strings",
            r#"{"name":"d","attributes":[{"key":"nan","value":{"doubleValue":"NaN"}},
                {"key":"inf","value":{"doubleValue":"Infinity"}},{"key":"ninf","value":{"doubleValue":"-Infinity"}},
                {"key":"num","value":{"doubleValue":"2.5"}}]}"#,
            Span {
                name: "d".into(),
                attributes: vec![
                    attr("nan", V::DoubleValue(f64::NAN)),
                    attr("inf", V::DoubleValue(f64::INFINITY)),
                    attr("ninf", V::DoubleValue(f64::NEG_INFINITY)),
                    attr("num", V::DoubleValue(2.5)),
                ],
                ..Default::default()
            },
        ),
        ok(
            Traces,
            "duplicate keys",
            r#"{"name":"first","attributes":[{"key":"a","value":{"intValue":"1"}}],"name":"dup",
                "attributes":[{"key":"b","value":{"intValue":2}}]}"#,
            Span {
                name: "dup".into(),
                attributes: vec![attr("a", V::IntValue(1)), attr("b", V::IntValue(2))],
                ..Default::default()
            },
        ),
        ok(
            Traces,
            "empty values and a keyless attribute",
            &format!(r#"{{"name":"v","attributes":{EMPTY_VALUES}}}"#),
            Span {
                name: "v".into(),
                attributes: empty_values(),
                ..Default::default()
            },
        ),
        bad(Traces, "short trace id", r#"{"traceId":"abcd"}"#, "traceId: expected 32 hex digits"),
        bad(Traces, "nested span array", r#"[{"name":"x"}]"#, "spans[0]: expected '{'"),
        bad(Traces, "unknown kind", r#"{"kind":"SERVER"}"#, "unknown enum value"),
        bad(
            Traces,
            "intValue overflow",
            r#"{"attributes":[{"key":"a","value":{"intValue":"9223372036854775808"}}]}"#,
            "out of range",
        ),
        Case {
            signal: Traces,
            name: "positional request",
            body: format!(r#"[[{{"spans":[{{"traceId":"{TRACE_ID}"}}]}}]]"#),
            expect: Err("expected an object, found an array"),
        },
        Case {
            signal: Traces,
            name: "trailing bytes",
            body: Traces.wrap("trailing bytes", r#"{"name":"t"}"#, false) + "\n\0 ignored",
            expect: Ok(Span {
                name: "t".into(),
                ..Default::default()
            }
            .encode_to_vec()),
        },
        Case {
            signal: Traces,
            name: "two requests in one body",
            body: Traces.wrap("two requests in one body", "{}", false).repeat(2),
            expect: Err("a second JSON value"),
        },
        // Metrics.
        ok(
            Metrics,
            "asDouble as strings",
            r#"{"name":"g","gauge":{"dataPoints":[{"asDouble":"1.25"},{"asDouble":"NaN"},
                {"asDouble":"Infinity"},{"asDouble":"-Infinity"},{"asInt":"-7"}]}}"#,
            gauge(
                "g",
                vec![
                    double_point(1.25),
                    double_point(f64::NAN),
                    double_point(f64::INFINITY),
                    double_point(f64::NEG_INFINITY),
                    NumberDataPoint {
                        value: Some(number_data_point::Value::AsInt(-7)),
                        ..Default::default()
                    },
                ],
            ),
        ),
        ok(
            Metrics,
            "histogram doubles as strings and temporality by name",
            r#"{"name":"h","histogram":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE",
                "dataPoints":[{"count":"3","sum":"10.5","min":"0","max":"Infinity","bucketCounts":["1",2],
                "explicitBounds":[1,"Infinity"],"flags":"1",
                "exemplars":[{"asDouble":"NaN","traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}}"#,
            Metric {
                name: "h".into(),
                data: Some(metric::Data::Histogram(Histogram {
                    aggregation_temporality: 2,
                    data_points: vec![HistogramDataPoint {
                        count: 3,
                        sum: Some(10.5),
                        min: Some(0.0),
                        max: Some(f64::INFINITY),
                        bucket_counts: vec![1, 2],
                        explicit_bounds: vec![1.0, f64::INFINITY],
                        flags: 1,
                        exemplars: vec![Exemplar {
                            value: Some(exemplar::Value::AsDouble(f64::NAN)),
                            trace_id: unhex(TRACE_ID),
                            span_id: unhex(SPAN_ID),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            },
        ),
        Case {
            signal: Metrics,
            name: "metrics in snake_case",
            body: Metrics.wrap(
                "metrics in snake_case",
                r#"{"name":"s","sum":{"aggregation_temporality":1,"is_monotonic":true,
                    "data_points":[{"start_time_unix_nano":"1","time_unix_nano":"2","as_int":"5"}]}},
                   {"name":"e","exponential_histogram":{"data_points":[{"zero_count":"1","zero_threshold":"0.5",
                    "positive":{"offset":"-1","bucket_counts":["4"]}}]}}"#,
                true,
            ),
            expect: Ok([
                Metric {
                    name: "s".into(),
                    data: Some(metric::Data::Sum(Sum {
                        aggregation_temporality: 1,
                        is_monotonic: true,
                        data_points: vec![NumberDataPoint {
                            start_time_unix_nano: 1,
                            time_unix_nano: 2,
                            value: Some(number_data_point::Value::AsInt(5)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }
                .encode_to_vec(),
                Metric {
                    name: "e".into(),
                    data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: vec![ExponentialHistogramDataPoint {
                            zero_count: 1,
                            zero_threshold: 0.5,
                            positive: Some(Buckets {
                                offset: -1,
                                bucket_counts: vec![4],
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })),
                    ..Default::default()
                }
                .encode_to_vec(),
            ]
            .concat()),
        },
        ok(
            Metrics,
            "empty values in metadata",
            &format!(
                r#"{{"name":"m","metadata":{EMPTY_VALUES},"gauge":{{"dataPoints":[{{"asDouble":1,"attributes":{EMPTY_VALUES}}}]}}}}"#
            ),
            Metric {
                metadata: empty_values(),
                ..gauge(
                    "m",
                    vec![NumberDataPoint {
                        attributes: empty_values(),
                        ..double_point(1.0)
                    }],
                )
            },
        ),
        bad(
            Metrics,
            "asInt overflow",
            r#"{"name":"o","gauge":{"dataPoints":[{"asInt":9223372036854775808}]}}"#,
            "dataPoints[0].asInt",
        ),
        bad(
            Metrics,
            "asDouble not a number",
            r#"{"name":"a","gauge":{"dataPoints":[{"asDouble":"abc"}]}}"#,
            "\"abc\" is not a number",
        ),
        bad(
            Metrics,
            "asDouble a boolean",
            r#"{"name":"b","gauge":{"dataPoints":[{"asDouble":true}]}}"#,
            "expected a number, found a boolean",
        ),
        bad(
            Metrics,
            "base64 exemplar id",
            r#"{"name":"x","gauge":{"dataPoints":[{"asInt":"1","exemplars":[{"spanId":"7uGbfsPBsXQ="}]}]}}"#,
            "spanId: expected 16 hex digits, got 12",
        ),
        bad(
            Metrics,
            "fractional flags",
            r#"{"name":"f","gauge":{"dataPoints":[{"asInt":"1","flags":1.5}]}}"#,
            "is not an integer",
        ),
        // Logs.
        Case {
            signal: Logs,
            name: "logs in snake_case",
            body: Logs.wrap(
                "logs in snake_case",
                &format!(
                    r#"{{"time_unix_nano":"1","observed_time_unix_nano":"2","severity_number":"SEVERITY_NUMBER_WARN",
                    "severity_text":"W","body":{{"double_value":"NaN"}},"trace_id":"{TRACE_ID}","span_id":"{SPAN_ID}",
                    "flags":"1","dropped_attributes_count":"4","event_name":"ev"}}"#
                ),
                true,
            ),
            expect: Ok(LogRecord {
                time_unix_nano: 1,
                observed_time_unix_nano: 2,
                severity_number: 13,
                severity_text: "W".into(),
                body: value(V::DoubleValue(f64::NAN)),
                trace_id: unhex(TRACE_ID),
                span_id: unhex(SPAN_ID),
                flags: 1,
                dropped_attributes_count: 4,
                event_name: "ev".into(),
                ..Default::default()
            }
            .encode_to_vec()),
        },
        ok(
            Logs,
            "empty body map and empty values",
            &format!(r#"{{"body":{{"kvlistValue":{{}}}},"attributes":{EMPTY_VALUES}}}"#),
            LogRecord {
                body: value(V::KvlistValue(KeyValueList::default())),
                attributes: empty_values(),
                ..Default::default()
            },
        ),
        bad(Logs, "short span id", r#"{"spanId":"abcd"}"#, "spanId: expected 16 hex digits"),
        bad(Logs, "unknown severity", r#"{"severityNumber":"WARN"}"#, "unknown enum value"),
        bad(Logs, "flags not a number", r#"{"flags":"x"}"#, "\"x\" is not an integer"),
    ];
    // The forms shared by every signal, for the other two signals as well.
    let more = [
        ok(
            Metrics,
            "metric duplicate keys",
            r#"{"name":"first","gauge":{"dataPoints":[{"asInt":"1","asDouble":"NaN",
                "attributes":[{"key":"a","value":{"doubleValue":"-Infinity"}}],"attributes":[]}]},"name":"dup"}"#,
            gauge(
                "dup",
                vec![NumberDataPoint {
                    attributes: vec![attr("a", V::DoubleValue(f64::NEG_INFINITY))],
                    ..double_point(f64::NAN)
                }],
            ),
        ),
        ok(
            Logs,
            "log duplicate keys",
            r#"{"severityText":"first","body":{"stringValue":"x"},"severityText":"dup","body":{"intValue":"3"}}"#,
            LogRecord {
                severity_text: "dup".into(),
                body: value(V::IntValue(3)),
                ..Default::default()
            },
        ),
        bad(
            Metrics,
            "short exemplar trace id",
            r#"{"name":"t","gauge":{"dataPoints":[{"asInt":"1","exemplars":[{"traceId":"abcd"}]}]}}"#,
            "traceId: expected 32 hex digits",
        ),
        bad(
            Metrics,
            "nested metric array",
            r#"[{"name":"x"}]"#,
            "metrics[0]: expected '{'",
        ),
        bad(
            Logs,
            "nested log array",
            r#"[{"severityText":"x"}]"#,
            "logRecords[0]: expected '{'",
        ),
        Case {
            signal: Metrics,
            name: "metric trailing bytes",
            body: Metrics.wrap(
                "metric trailing bytes",
                r#"{"name":"t","sum":{"dataPoints":[{"asInt":"1"}]}}"#,
                false,
            ) + " x",
            expect: Ok(Metric {
                name: "t".into(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: vec![NumberDataPoint {
                        value: Some(number_data_point::Value::AsInt(1)),
                        ..Default::default()
                    }],
                    ..Default::default()
                })),
                ..Default::default()
            }
            .encode_to_vec()),
        },
        Case {
            signal: Logs,
            name: "log trailing bytes",
            body: Logs.wrap("log trailing bytes", r#"{"eventName":"t"}"#, false) + "\r\n}",
            expect: Ok(LogRecord {
                event_name: "t".into(),
                ..Default::default()
            }
            .encode_to_vec()),
        },
    ];
    let cases: Vec<Case> = cases.into_iter().chain(more).collect();
    // Names are the keys items are found by.
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    cases
}

/// Attributes of every kind, with the values JSON has trouble with.
pub fn hard_values() -> Vec<KeyValue> {
    let mut attrs = vec![
        attr(
            "s",
            V::StringValue("quote \" backslash \\ tab \t é 😀 \u{1}".into()),
        ),
        attr("nan", V::DoubleValue(f64::NAN)),
        attr("inf", V::DoubleValue(f64::INFINITY)),
        attr("ninf", V::DoubleValue(f64::NEG_INFINITY)),
        attr("max", V::DoubleValue(f64::MAX)),
        attr("min", V::IntValue(i64::MIN)),
        attr("bytes", V::BytesValue(vec![0, 255, 1])),
        attr("false", V::BoolValue(false)),
        attr(
            "nested",
            V::KvlistValue(KeyValueList {
                values: vec![attr(
                    "list",
                    V::ArrayValue(ArrayValue {
                        values: vec![AnyValue::default(), value(V::IntValue(0)).unwrap()],
                    }),
                )],
            }),
        ),
    ];
    attrs.extend(empty_values());
    attrs
}

pub fn resource(n: u32) -> Option<Resource> {
    Some(Resource {
        attributes: [vec![attr("n", V::IntValue(n.into()))], hard_values()].concat(),
        ..Default::default()
    })
}

pub fn hard_traces(n: u32) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(n),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![n as u8; 16],
                    span_id: vec![n as u8; 8],
                    name: "span".into(),
                    kind: 3,
                    start_time_unix_nano: u64::MAX,
                    attributes: hard_values(),
                    status: Some(Status {
                        message: "m".into(),
                        code: 2,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

pub fn hard_metrics(n: u32) -> Vec<u8> {
    let histogram = HistogramDataPoint {
        attributes: hard_values(),
        count: 3,
        sum: Some(f64::NAN),
        min: Some(f64::NEG_INFINITY),
        max: Some(f64::INFINITY),
        bucket_counts: vec![1, 1, 1],
        explicit_bounds: vec![0.0, f64::INFINITY],
        exemplars: vec![Exemplar {
            value: Some(exemplar::Value::AsDouble(f64::INFINITY)),
            span_id: vec![1; 8],
            trace_id: vec![2; 16],
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(n),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    gauge(
                        "g",
                        [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.5]
                            .into_iter()
                            .map(double_point)
                            .collect(),
                    ),
                    Metric {
                        name: "h".into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![histogram],
                            aggregation_temporality: 2,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

pub fn hard_logs(n: u32) -> Vec<u8> {
    let record = |body: Option<AnyValue>| LogRecord {
        severity_number: 17,
        body,
        attributes: hard_values(),
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(n),
            scope_logs: vec![ScopeLogs {
                log_records: hard_values()
                    .into_iter()
                    .map(|kv| record(kv.value))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}
