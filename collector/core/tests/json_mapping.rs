//! The OTLP/JSON mapping against the OTLP specification and the
//! OpenTelemetry Collector's pdata JSON decoder: every form the Collector
//! accepts decodes to the same content as its plain form, in every signal;
//! every form it refuses is an error naming the field; what the writer
//! emits (NaN and infinities, empty values, keyless attributes included)
//! reads back to identical content; and no body makes the reader accept
//! something prost cannot decode.

#![allow(clippy::unwrap_used)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
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
use tern_core::json::{JsonError, MAX_DEPTH, json_to_wire, wire_to_json};

/// The request `wire` holds, re-encoded by prost: two requests with the
/// same content give the same bytes (NaN included, unlike `==`).
fn content(signal: Signal, wire: &[u8]) -> Vec<u8> {
    match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(wire)
            .unwrap()
            .encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceRequest::decode(wire)
            .unwrap()
            .encode_to_vec(),
        Signal::Logs => ExportLogsServiceRequest::decode(wire)
            .unwrap()
            .encode_to_vec(),
    }
}

fn read(signal: Signal, body: &str) -> Vec<u8> {
    match json_to_wire(signal, body.as_bytes()) {
        Ok(wire) => content(signal, &wire),
        Err(e) => panic!("{signal:?} refused {body}: {e}"),
    }
}

fn write(signal: Signal, wire: &[u8]) -> String {
    let mut out = Vec::new();
    wire_to_json(signal, wire, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn span_json(span: &str) -> String {
    format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}"#)
}

fn metric_json(metric: &str) -> String {
    format!(r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{metric}]}}]}}]}}"#)
}

fn log_json(record: &str) -> String {
    format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{record}]}}]}}]}}"#)
}

fn body(signal: Signal, item: &str) -> String {
    match signal {
        Signal::Traces => span_json(item),
        Signal::Metrics => metric_json(item),
        Signal::Logs => log_json(item),
    }
}

/// Forms the Collector accepts, each beside its plain form: (signal, what,
/// the form, the plain form), both one item of the signal.
const SAME: &[(Signal, &str, &str, &str)] = &[
    // Names: snake_case is accepted wherever camelCase is.
    (
        Signal::Traces,
        "snake_case span fields",
        r#"{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
            "parent_span_id":"eee19b7ec3c1b175","trace_state":"a=b","start_time_unix_nano":"1",
            "end_time_unix_nano":"2","dropped_attributes_count":1,"dropped_events_count":2,
            "dropped_links_count":3,"events":[{"time_unix_nano":"5","dropped_attributes_count":1}],
            "links":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
            "trace_state":"x","dropped_attributes_count":4}]}"#,
        r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "parentSpanId":"eee19b7ec3c1b175","traceState":"a=b","startTimeUnixNano":"1",
            "endTimeUnixNano":"2","droppedAttributesCount":1,"droppedEventsCount":2,
            "droppedLinksCount":3,"events":[{"timeUnixNano":"5","droppedAttributesCount":1}],
            "links":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "traceState":"x","droppedAttributesCount":4}]}"#,
    ),
    (
        Signal::Traces,
        "snake_case AnyValue members",
        r#"{"attributes":[{"key":"s","value":{"string_value":"x"}},{"key":"b","value":{"bool_value":true}},
            {"key":"i","value":{"int_value":"7"}},{"key":"d","value":{"double_value":0.5}},
            {"key":"a","value":{"array_value":{"values":[{"int_value":1}]}}},
            {"key":"k","value":{"kvlist_value":{"values":[{"key":"x","value":{}}]}}},
            {"key":"y","value":{"bytes_value":"AQI="}}]}"#,
        r#"{"attributes":[{"key":"s","value":{"stringValue":"x"}},{"key":"b","value":{"boolValue":true}},
            {"key":"i","value":{"intValue":"7"}},{"key":"d","value":{"doubleValue":0.5}},
            {"key":"a","value":{"arrayValue":{"values":[{"intValue":1}]}}},
            {"key":"k","value":{"kvlistValue":{"values":[{"key":"x","value":{}}]}}},
            {"key":"y","value":{"bytesValue":"AQI="}}]}"#,
    ),
    (
        Signal::Metrics,
        "snake_case metric fields",
        r#"{"name":"m","sum":{"data_points":[{"start_time_unix_nano":"1","time_unix_nano":"2",
            "as_double":1.5,"exemplars":[{"filtered_attributes":[{"key":"k","value":{}}],
            "time_unix_nano":"3","as_int":"4","trace_id":"5b8efff798038103d269b633813fc60c",
            "span_id":"eee19b7ec3c1b174"}]}],"aggregation_temporality":2,"is_monotonic":true}}"#,
        r#"{"name":"m","sum":{"dataPoints":[{"startTimeUnixNano":"1","timeUnixNano":"2",
            "asDouble":1.5,"exemplars":[{"filteredAttributes":[{"key":"k","value":{}}],
            "timeUnixNano":"3","asInt":"4","traceId":"5b8efff798038103d269b633813fc60c",
            "spanId":"eee19b7ec3c1b174"}]}],"aggregationTemporality":2,"isMonotonic":true}}"#,
    ),
    (
        Signal::Metrics,
        "snake_case histogram fields",
        r#"{"name":"h","exponential_histogram":{"data_points":[{"zero_count":"3","zero_threshold":0.1,
            "positive":{"offset":-2,"bucket_counts":["1",2]}}]}}"#,
        r#"{"name":"h","exponentialHistogram":{"dataPoints":[{"zeroCount":"3","zeroThreshold":0.1,
            "positive":{"offset":-2,"bucketCounts":[1,"2"]}}]}}"#,
    ),
    (
        Signal::Metrics,
        "snake_case summary fields",
        r#"{"name":"s","summary":{"data_points":[{"quantile_values":[{"quantile":0.5,"value":"2"}]}]}}"#,
        r#"{"name":"s","summary":{"dataPoints":[{"quantileValues":[{"quantile":"0.5","value":2}]}]}}"#,
    ),
    (
        Signal::Logs,
        "snake_case log fields",
        r#"{"time_unix_nano":"1","observed_time_unix_nano":"2","severity_number":9,
            "severity_text":"INFO","dropped_attributes_count":1,"trace_id":"5b8efff798038103d269b633813fc60c",
            "span_id":"eee19b7ec3c1b174","event_name":"e"}"#,
        r#"{"timeUnixNano":"1","observedTimeUnixNano":"2","severityNumber":9,
            "severityText":"INFO","droppedAttributesCount":1,"traceId":"5b8efff798038103d269b633813fc60c",
            "spanId":"eee19b7ec3c1b174","eventName":"e"}"#,
    ),
    // Enums by name.
    (
        Signal::Traces,
        "span kind and status code by name",
        r#"{"name":"s","kind":"SPAN_KIND_CLIENT","status":{"code":"STATUS_CODE_ERROR","message":"m"}}"#,
        r#"{"name":"s","kind":3,"status":{"code":2,"message":"m"}}"#,
    ),
    (
        Signal::Metrics,
        "aggregation temporality by name",
        r#"{"name":"m","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE",
            "dataPoints":[{"asInt":"1"}]}}"#,
        r#"{"name":"m","sum":{"aggregationTemporality":2,"dataPoints":[{"asInt":"1"}]}}"#,
    ),
    (
        Signal::Metrics,
        "histogram temporality by name",
        r#"{"name":"m","histogram":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA","dataPoints":[{}]}}"#,
        r#"{"name":"m","histogram":{"aggregationTemporality":1,"dataPoints":[{}]}}"#,
    ),
    (
        Signal::Logs,
        "severity by name",
        r#"{"severityNumber":"SEVERITY_NUMBER_WARN","body":{"stringValue":"w"}}"#,
        r#"{"severityNumber":13,"body":{"stringValue":"w"}}"#,
    ),
    // Integers as strings, 32-bit included; 64-bit as numbers.
    (
        Signal::Traces,
        "32-bit integers as strings",
        r#"{"flags":"257","droppedAttributesCount":"4","droppedEventsCount":"5","droppedLinksCount":"6",
            "links":[{"flags":"1"}]}"#,
        r#"{"flags":257,"droppedAttributesCount":4,"droppedEventsCount":5,"droppedLinksCount":6,
            "links":[{"flags":1}]}"#,
    ),
    (
        Signal::Traces,
        "64-bit integers as numbers",
        r#"{"startTimeUnixNano":1700000000000000000,"attributes":[{"key":"n","value":{"intValue":-9223372036854775808}}]}"#,
        r#"{"startTimeUnixNano":"1700000000000000000","attributes":[{"key":"n","value":{"intValue":"-9223372036854775808"}}]}"#,
    ),
    (
        Signal::Metrics,
        "flags and counts as strings",
        r#"{"name":"m","histogram":{"dataPoints":[{"flags":"1","count":"3","bucketCounts":["1","2"]}]}}"#,
        r#"{"name":"m","histogram":{"dataPoints":[{"flags":1,"count":3,"bucketCounts":[1,2]}]}}"#,
    ),
    (
        Signal::Logs,
        "flags and counts as strings",
        r#"{"flags":"1","droppedAttributesCount":"2"}"#,
        r#"{"flags":1,"droppedAttributesCount":2}"#,
    ),
    (
        Signal::Metrics,
        "asInt as a number, signed strings",
        r#"{"name":"m","gauge":{"dataPoints":[{"asInt":-5},{"asInt":"+6"}]}}"#,
        r#"{"name":"m","gauge":{"dataPoints":[{"asInt":"-5"},{"asInt":"6"}]}}"#,
    ),
    // Doubles as strings.
    (
        Signal::Metrics,
        "asDouble as a string",
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":"1.25"},{"asDouble":"-2e3"}]}}"#,
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":1.25},{"asDouble":-2000}]}}"#,
    ),
    (
        Signal::Metrics,
        "histogram sum, min, max and bounds as strings",
        r#"{"name":"h","histogram":{"dataPoints":[{"sum":"10.5","min":"0","max":"7","explicitBounds":["1","2.5"]}]}}"#,
        r#"{"name":"h","histogram":{"dataPoints":[{"sum":10.5,"min":0,"max":7,"explicitBounds":[1,2.5]}]}}"#,
    ),
    (
        Signal::Metrics,
        "exponential histogram sum, min, max as strings",
        r#"{"name":"h","exponentialHistogram":{"dataPoints":[{"sum":"1","min":"-1","max":"1e2","scale":"3"}]}}"#,
        r#"{"name":"h","exponentialHistogram":{"dataPoints":[{"sum":1,"min":-1,"max":100,"scale":3}]}}"#,
    ),
    (
        Signal::Metrics,
        "special doubles in any letter case",
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":"nan"},{"asDouble":"inf"},{"asDouble":"-INFINITY"}]}}"#,
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":"NaN"},{"asDouble":"Infinity"},{"asDouble":"-Infinity"}]}}"#,
    ),
    (
        Signal::Traces,
        "AnyValue doubleValue as a string",
        r#"{"attributes":[{"key":"a","value":{"doubleValue":"0.5"}},{"key":"b","value":{"doubleValue":"+Inf"}}]}"#,
        r#"{"attributes":[{"key":"a","value":{"doubleValue":0.5}},{"key":"b","value":{"doubleValue":"Infinity"}}]}"#,
    ),
    (
        Signal::Logs,
        "body doubleValue as a string",
        r#"{"body":{"doubleValue":"-1.5"}}"#,
        r#"{"body":{"doubleValue":-1.5}}"#,
    ),
    // Duplicate keys: the last value wins, arrays append, messages merge.
    (
        Signal::Traces,
        "duplicate keys",
        r#"{"name":"a","attributes":[{"key":"x","value":{"intValue":1}}],"name":"b",
            "attributes":[{"key":"y","value":{"intValue":2}}],"status":{"code":1},"status":{"message":"m"}}"#,
        r#"{"name":"b","attributes":[{"key":"x","value":{"intValue":1}},{"key":"y","value":{"intValue":2}}],
            "status":{"code":1,"message":"m"}}"#,
    ),
    (
        Signal::Metrics,
        "duplicate oneof keys: the last member wins",
        r#"{"name":"m","gauge":{"dataPoints":[{"asInt":"1","asDouble":2.5}]}}"#,
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":2.5}]}}"#,
    ),
    (
        Signal::Logs,
        "duplicate keys",
        r#"{"severityText":"a","severityText":"b","body":{"stringValue":"x"},"body":{"intValue":3}}"#,
        r#"{"severityText":"b","body":{"intValue":3}}"#,
    ),
    // null is an empty string, message or array (numbers refuse it).
    (
        Signal::Traces,
        "null values",
        r#"{"name":null,"attributes":null,"status":null,"traceState":null,"events":[null]}"#,
        r#"{"events":[{}]}"#,
    ),
    (
        Signal::Logs,
        "null body and attributes",
        r#"{"severityText":null,"body":null,"attributes":null,"eventName":"e"}"#,
        r#"{"eventName":"e"}"#,
    ),
    (
        Signal::Traces,
        "null AnyValue members are empty values",
        r#"{"attributes":[{"key":"s","value":{"stringValue":null}},{"key":"a","value":{"arrayValue":null}}]}"#,
        r#"{"attributes":[{"key":"s","value":{"stringValue":""}},{"key":"a","value":{"arrayValue":{}}}]}"#,
    ),
    // Ids: either case of hex; empty means no id.
    (
        Signal::Traces,
        "upper-case hex ids, empty parent",
        r#"{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":""}"#,
        r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}"#,
    ),
    (
        Signal::Logs,
        "empty ids",
        r#"{"traceId":"","spanId":"","severityText":"x"}"#,
        r#"{"severityText":"x"}"#,
    ),
    // Unknown fields are skipped, whatever they hold; escaped names match.
    (
        Signal::Traces,
        "unknown fields and escaped names",
        r#"{"future":{"a":[1,{"b":null}],"c":"\u00e9"},"na\u006de":"s","kind":1}"#,
        r#"{"name":"s","kind":1}"#,
    ),
    (
        Signal::Metrics,
        "unknown fields",
        r#"{"name":"m","future":[[]],"gauge":{"dataPoints":[{"asInt":"1","x":true}]}}"#,
        r#"{"name":"m","gauge":{"dataPoints":[{"asInt":"1"}]}}"#,
    ),
    (
        Signal::Logs,
        "unknown fields",
        r#"{"future":null,"body":{"stringValue":"b","future":1}}"#,
        r#"{"body":{"stringValue":"b"}}"#,
    ),
    // What JSON writers emit for empty values.
    (
        Signal::Traces,
        "a KeyValue without key, empty arrayValue and kvlistValue",
        r#"{"attributes":[{"value":{"stringValue":"v"}},{"key":"a","value":{"arrayValue":{}}},
            {"key":"k","value":{"kvlistValue":{}}},{"key":"e","value":{}}]}"#,
        r#"{"attributes":[{"key":"","value":{"stringValue":"v"}},{"key":"a","value":{"arrayValue":{"values":[]}}},
            {"key":"k","value":{"kvlistValue":{"values":[]}}},{"key":"e","value":{}}]}"#,
    ),
    (
        Signal::Logs,
        "empty body values",
        r#"{"body":{"kvlistValue":{}},"attributes":[{"value":{"arrayValue":{}}}]}"#,
        r#"{"body":{"kvlistValue":{"values":[]}},"attributes":[{"key":"","value":{"arrayValue":{"values":[]}}}]}"#,
    ),
];

#[test]
fn every_form_the_collector_accepts_reads_as_its_plain_form() {
    for &(signal, what, form, plain) in SAME {
        let (a, b) = (body(signal, form), body(signal, plain));
        assert_eq!(read(signal, &a), read(signal, &b), "{signal:?}: {what}");
        // The plain form is not an empty item: the case compares something.
        assert_ne!(
            read(signal, &b),
            read(signal, &body(signal, "{}")),
            "{signal:?}: {what}"
        );
    }
}

#[test]
fn whole_requests_in_snake_case_and_with_trailing_bytes() {
    let camel = span_json(r#"{"name":"s"}"#);
    let snake = r#"{"resource_spans":[{"resource":{"attributes":[],"dropped_attributes_count":0},
        "scope_spans":[{"scope":{"name":"x"},"spans":[{"name":"s"}],"schema_url":"u"}],"schema_url":"v"}]}"#;
    let req = ExportTraceServiceRequest::decode(&read(Signal::Traces, snake)[..]).unwrap();
    assert_eq!(req.resource_spans[0].schema_url, "v");
    assert_eq!(req.resource_spans[0].scope_spans[0].schema_url, "u");
    assert_eq!(req.resource_spans[0].scope_spans[0].spans[0].name, "s");
    let metrics = r#"{"resource_metrics":[{"scope_metrics":[{"metrics":[{"name":"m"}]}]}]}"#;
    let req = ExportMetricsServiceRequest::decode(&read(Signal::Metrics, metrics)[..]).unwrap();
    assert_eq!(
        req.resource_metrics[0].scope_metrics[0].metrics[0].name,
        "m"
    );
    let logs = r#"{"resource_logs":[{"scope_logs":[{"log_records":[{"severity_text":"x"}]}]}]}"#;
    let req = ExportLogsServiceRequest::decode(&read(Signal::Logs, logs)[..]).unwrap();
    assert_eq!(
        req.resource_logs[0].scope_logs[0].log_records[0].severity_text,
        "x"
    );

    // Bytes after the request are ignored, as the Collector ignores them,
    // unless they start another JSON value, which would be data dropped.
    for tail in ["", "\n", " \r\n\t", "x", "}", "\0garbage", "null", ",1"] {
        let text = format!("{camel}{tail}");
        assert_eq!(
            read(Signal::Traces, &text),
            read(Signal::Traces, &camel),
            "{tail:?}"
        );
    }
    for tail in ["{}", " [1]", "\n{\"resourceSpans\":[]}"] {
        let err = json_to_wire(Signal::Traces, format!("{camel}{tail}").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("a second JSON value"), "{err}");
    }
    // `null` is an empty request, as for the Collector.
    assert!(json_to_wire(Signal::Logs, b" null ").unwrap().is_empty());
}

#[test]
fn special_doubles_and_string_numbers_keep_their_value() {
    let text = metric_json(
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":"NaN"},{"asDouble":"Infinity"},
            {"asDouble":"-Infinity"},{"asDouble":"1.25"},{"asInt":"-9223372036854775808"}]}},
           {"name":"h","histogram":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE",
            "dataPoints":[{"sum":"NaN","min":"-Infinity","max":"Infinity","count":"2",
            "explicitBounds":[0,"Infinity"],"bucketCounts":["1","1"],"flags":"1",
            "exemplars":[{"asDouble":"2","traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}}"#,
    );
    let req = ExportMetricsServiceRequest::decode(&read(Signal::Metrics, &text)[..]).unwrap();
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    let Some(metric::Data::Gauge(g)) = &metrics[0].data else {
        panic!("{:?}", metrics[0])
    };
    let values: Vec<_> = g.data_points.iter().map(|p| p.value).collect();
    assert!(matches!(values[0], Some(number_data_point::Value::AsDouble(v)) if v.is_nan()));
    assert_eq!(
        values[1],
        Some(number_data_point::Value::AsDouble(f64::INFINITY))
    );
    assert_eq!(
        values[2],
        Some(number_data_point::Value::AsDouble(f64::NEG_INFINITY))
    );
    assert_eq!(values[3], Some(number_data_point::Value::AsDouble(1.25)));
    assert_eq!(values[4], Some(number_data_point::Value::AsInt(i64::MIN)));
    let Some(metric::Data::Histogram(h)) = &metrics[1].data else {
        panic!("{:?}", metrics[1])
    };
    assert_eq!(h.aggregation_temporality, 2);
    let p = &h.data_points[0];
    assert!(p.sum.unwrap().is_nan());
    assert_eq!(
        (p.min, p.max),
        (Some(f64::NEG_INFINITY), Some(f64::INFINITY))
    );
    assert_eq!(p.explicit_bounds, [0.0, f64::INFINITY]);
    assert_eq!(
        (p.count, &p.bucket_counts[..], p.flags),
        (2, &[1, 1][..], 1)
    );
    assert_eq!(p.exemplars[0].trace_id.len(), 16);
    assert_eq!(p.exemplars[0].value, Some(exemplar::Value::AsDouble(2.0)));
}

/// Forms the Collector refuses, and forms it cannot represent: (signal,
/// what, the item, a piece of the error message).
const REFUSED: &[(Signal, &str, &str, &str)] = &[
    (
        Signal::Traces,
        "short trace id",
        r#"{"traceId":"abcd"}"#,
        "spans[0].traceId: expected 32 hex digits, got 4",
    ),
    (
        Signal::Traces,
        "long span id",
        r#"{"spanId":"eee19b7ec3c1b17400"}"#,
        "expected 16 hex digits",
    ),
    (
        Signal::Traces,
        "odd-length id",
        r#"{"traceId":"5b8efff798038103d269b633813fc60"}"#,
        "expected 32 hex digits",
    ),
    (
        Signal::Traces,
        "non-hex id",
        r#"{"spanId":"eee19b7ec3c1b17g"}"#,
        "invalid hex digit",
    ),
    (
        Signal::Traces,
        "base64 link id",
        r#"{"links":[{"spanId":"7uGbfsPBsXQ="}]}"#,
        "links[0].spanId",
    ),
    (
        Signal::Traces,
        "null id",
        r#"{"traceId":null}"#,
        "expected a hex id string, found null",
    ),
    (
        Signal::Traces,
        "nested array as span",
        r#"[{}]"#,
        "spans[0]: expected '{', found an array",
    ),
    (
        Signal::Traces,
        "unknown kind name",
        r#"{"kind":"CLIENT"}"#,
        "unknown enum value \"CLIENT\"",
    ),
    (
        Signal::Traces,
        "kind as a numeric string",
        r#"{"kind":"3"}"#,
        "unknown enum value",
    ),
    (
        Signal::Traces,
        "fractional flags",
        r#"{"flags":1.5}"#,
        "\"1.5\" is not an integer",
    ),
    (
        Signal::Traces,
        "exponent in an integer",
        r#"{"droppedAttributesCount":1e3}"#,
        "not an integer",
    ),
    (
        Signal::Traces,
        "negative unsigned",
        r#"{"flags":-1}"#,
        "negative value",
    ),
    (
        Signal::Traces,
        "signed string for unsigned",
        r#"{"droppedLinksCount":"+1"}"#,
        "not an integer",
    ),
    (
        Signal::Traces,
        "32-bit overflow",
        r#"{"flags":4294967296}"#,
        "out of range",
    ),
    (
        Signal::Traces,
        "64-bit overflow",
        r#"{"startTimeUnixNano":"18446744073709551616"}"#,
        "out of range",
    ),
    (
        Signal::Traces,
        "intValue overflow",
        r#"{"attributes":[{"key":"a","value":{"intValue":9223372036854775808}}]}"#,
        "attributes[0].value.intValue",
    ),
    (
        Signal::Traces,
        "null intValue",
        r#"{"attributes":[{"key":"a","value":{"intValue":null}}]}"#,
        "expected an integer, found null",
    ),
    (
        Signal::Traces,
        "boolValue as a string",
        r#"{"attributes":[{"key":"a","value":{"boolValue":"true"}}]}"#,
        "expected true or false",
    ),
    (
        Signal::Traces,
        "bad base64",
        r#"{"attributes":[{"key":"a","value":{"bytesValue":"%%%"}}]}"#,
        "invalid base64",
    ),
    (
        Signal::Traces,
        "url-safe base64",
        r#"{"attributes":[{"key":"a","value":{"bytesValue":"-_8="}}]}"#,
        "invalid base64",
    ),
    (
        Signal::Traces,
        "a number as a string field",
        r#"{"name":5}"#,
        "name: expected a string, found a number",
    ),
    (
        Signal::Traces,
        "an object as an array",
        r#"{"attributes":{}}"#,
        "attributes: expected an array",
    ),
    (
        Signal::Traces,
        "trailing comma",
        r#"{"name":"a",}"#,
        "expected '\"'",
    ),
    (
        Signal::Metrics,
        "asInt overflow",
        r#"{"name":"m","gauge":{"dataPoints":[{"asInt":"9223372036854775808"}]}}"#,
        "dataPoints[0].asInt",
    ),
    (
        Signal::Metrics,
        "asDouble not a number",
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":"abc"}]}}"#,
        "\"abc\" is not a number",
    ),
    (
        Signal::Metrics,
        "asDouble a boolean",
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":true}]}}"#,
        "expected a number, found a boolean",
    ),
    (
        Signal::Metrics,
        "asDouble out of range",
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":1e400}]}}"#,
        "out of range",
    ),
    (
        Signal::Metrics,
        "asDouble signed NaN",
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":"-NaN"}]}}"#,
        "not a number",
    ),
    (
        Signal::Metrics,
        "asDouble with spaces",
        r#"{"name":"m","gauge":{"dataPoints":[{"asDouble":" 1"}]}}"#,
        "not a number",
    ),
    (
        Signal::Metrics,
        "empty string double",
        r#"{"name":"m","histogram":{"dataPoints":[{"sum":""}]}}"#,
        "sum: \"\" is not a number",
    ),
    (
        Signal::Metrics,
        "unknown temporality name",
        r#"{"name":"m","sum":{"aggregationTemporality":"CUMULATIVE"}}"#,
        "unknown enum value",
    ),
    (
        Signal::Metrics,
        "base64 exemplar ids",
        r#"{"name":"m","gauge":{"dataPoints":[{"exemplars":[{"spanId":"7uGbfsPBsXQ="}]}]}}"#,
        "exemplars[0].spanId: expected 16 hex digits, got 12",
    ),
    (
        Signal::Metrics,
        "flags as a float string",
        r#"{"name":"m","gauge":{"dataPoints":[{"flags":"1.0"}]}}"#,
        "not an integer",
    ),
    (
        Signal::Metrics,
        "nested array as data points",
        r#"{"name":"m","gauge":{"dataPoints":[[{}]]}}"#,
        "dataPoints[0]: expected '{'",
    ),
    (
        Signal::Metrics,
        "bucket count null",
        r#"{"name":"m","histogram":{"dataPoints":[{"bucketCounts":[1,null]}]}}"#,
        "bucketCounts[1]",
    ),
    (
        Signal::Logs,
        "unknown severity name",
        r#"{"severityNumber":"WARN"}"#,
        "severityNumber: unknown enum value",
    ),
    (
        Signal::Logs,
        "short trace id",
        r#"{"traceId":"abcd"}"#,
        "logRecords[0].traceId: expected 32 hex digits",
    ),
    (
        Signal::Logs,
        "fractional intValue body",
        r#"{"body":{"intValue":"1.5"}}"#,
        "body.intValue",
    ),
    (
        Signal::Logs,
        "flags not a number",
        r#"{"flags":"x"}"#,
        "flags: \"x\" is not an integer",
    ),
    (
        Signal::Logs,
        "nested array as log record",
        r#"[]"#,
        "expected '{', found an array",
    ),
];

#[test]
fn every_form_the_collector_refuses_is_an_error_naming_the_field() {
    for &(signal, what, item, needle) in REFUSED {
        let text = body(signal, item);
        match json_to_wire(signal, text.as_bytes()) {
            Ok(_) => panic!("{signal:?}: {what} was accepted: {text}"),
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.starts_with("invalid OTLP JSON: "),
                    "{what}: {message}"
                );
                assert!(message.contains(needle), "{signal:?}: {what}: {message}");
            }
        }
    }
}

#[test]
fn refusals_outside_items() {
    for (signal, text, needle) in [
        (
            Signal::Traces,
            r#"{"resourceSpans":[[{}]]}"#,
            "resourceSpans[0]: expected '{'",
        ),
        (
            Signal::Traces,
            r#"[{"resourceSpans":[]}]"#,
            "expected an object, found an array",
        ),
        (
            Signal::Metrics,
            "",
            "expected an object, found the end of the body",
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":7}"#,
            "expected an array, found a number",
        ),
        (
            Signal::Logs,
            r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"a","value":{"stringValue":"x"}}]"#,
            "found the end",
        ),
        (
            Signal::Logs,
            "{\"resourceLogs\":[{\"schemaUrl\":\"\u{1}\"}]}",
            "control character",
        ),
    ] {
        let err = json_to_wire(signal, text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
    let mut text = br#"{"resourceLogs":[{"schemaUrl":"ab"#.to_vec();
    text.extend_from_slice(b"\xc3\x28\"}]}");
    let err = json_to_wire(Signal::Logs, &text).unwrap_err();
    assert!(err.to_string().contains("invalid UTF-8"), "{err}");
}

/// A log whose body is `levels` arrays nested in each other around a string.
fn nested_body(levels: usize) -> String {
    let mut value = r#"{"stringValue":"core"}"#.to_string();
    for _ in 0..levels {
        value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
    }
    log_json(&format!(r#"{{"body":{value}}}"#))
}

#[test]
fn nesting_is_limited_where_prost_limits_it() {
    // request > ResourceLogs > ScopeLogs > LogRecord > body: AnyValue at
    // depth 4, and each array level adds ArrayValue and AnyValue.
    let deepest = (MAX_DEPTH - 4) / 2;
    let wire = json_to_wire(Signal::Logs, nested_body(deepest).as_bytes()).unwrap();
    ExportLogsServiceRequest::decode(wire.clone()).unwrap();
    // The writer takes what prost takes, and reads back.
    let text = write(Signal::Logs, &wire);
    assert_eq!(read(Signal::Logs, &text), content(Signal::Logs, &wire));

    let err = json_to_wire(Signal::Logs, nested_body(deepest + 1).as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("nested deeper than 100 messages"),
        "{err}"
    );
    // prost refuses the same depth.
    let mut too_deep = AnyValue {
        value: Some(any_value::Value::StringValue("core".into())),
    };
    for _ in 0..=deepest {
        too_deep = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![too_deep],
            })),
        };
    }
    let req = logs_with_body(too_deep);
    let wire = req.encode_to_vec();
    assert!(ExportLogsServiceRequest::decode(&wire[..]).is_err());
    let mut out = b"kept".to_vec();
    let err = wire_to_json(Signal::Logs, &wire, &mut out).unwrap_err();
    assert!(matches!(err, JsonError::Proto(_)), "{err}");
    assert_eq!(out, b"kept");
}

fn logs_with_body(body: AnyValue) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(body),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn value(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value(v),
        ..Default::default()
    }
}

/// Attributes of every kind, empty ones and a keyless one included.
fn attributes() -> Vec<KeyValue> {
    use any_value::Value as V;
    vec![
        kv(
            "s",
            V::StringValue("tab\t \"quote\" \\ é 😀 \u{1} \u{7f}".into()),
        ),
        kv("empty", V::StringValue(String::new())),
        kv("b", V::BoolValue(false)),
        kv("i", V::IntValue(i64::MIN)),
        kv("zero", V::IntValue(0)),
        kv("d", V::DoubleValue(-0.1)),
        kv("nan", V::DoubleValue(f64::NAN)),
        kv("inf", V::DoubleValue(f64::INFINITY)),
        kv("big", V::DoubleValue(1.7976931348623157e308)),
        kv("tiny", V::DoubleValue(5e-324)),
        kv("bytes", V::BytesValue(vec![0, 1, 2, 255, 254])),
        kv("nobytes", V::BytesValue(Vec::new())),
        kv("arr", V::ArrayValue(ArrayValue::default())),
        kv("kvl", V::KvlistValue(KeyValueList::default())),
        kv(
            "nested",
            V::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(V::KvlistValue(KeyValueList {
                            values: vec![kv("x", V::IntValue(1)), kv("", V::BoolValue(true))],
                        })),
                    },
                    AnyValue::default(),
                ],
            }),
        ),
        kv("", V::StringValue("keyless".into())),
        KeyValue {
            key: "novalue".into(),
            value: None,
            ..Default::default()
        },
        KeyValue {
            key: "emptyvalue".into(),
            value: Some(AnyValue::default()),
            ..Default::default()
        },
    ]
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: attributes(),
        dropped_attributes_count: 3,
        entity_refs: vec![EntityRef {
            schema_url: "https://s".into(),
            r#type: "service".into(),
            id_keys: vec!["service.name".into(), String::new()],
            description_keys: vec!["d".into()],
        }],
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "scope".into(),
        version: "1.0".into(),
        attributes: attributes(),
        dropped_attributes_count: 1,
    })
}

fn rich_traces() -> ExportTraceServiceRequest {
    let full = Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        trace_state: "a=b".into(),
        parent_span_id: (9..=16).collect(),
        flags: u32::MAX,
        name: "span".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: u64::MAX,
        end_time_unix_nano: 1,
        attributes: attributes(),
        dropped_attributes_count: 1,
        events: vec![
            span::Event {
                time_unix_nano: 5,
                name: "ev".into(),
                attributes: attributes(),
                dropped_attributes_count: 2,
            },
            span::Event::default(),
        ],
        dropped_events_count: 3,
        links: vec![span::Link {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            trace_state: "x".into(),
            attributes: attributes(),
            dropped_attributes_count: 4,
            flags: 0x100,
        }],
        dropped_links_count: 5,
        status: Some(Status {
            message: "m".into(),
            code: 2,
        }),
    };
    let empty = Span {
        kind: 99,
        status: Some(Status::default()),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: resource(),
                scope_spans: vec![
                    ScopeSpans {
                        scope: scope(),
                        spans: vec![full, empty, Span::default()],
                        schema_url: "u".into(),
                    },
                    ScopeSpans::default(),
                ],
                schema_url: "v".into(),
            },
            ResourceSpans::default(),
        ],
    }
}

fn rich_metrics() -> ExportMetricsServiceRequest {
    use number_data_point::Value as N;
    let exemplars = vec![
        Exemplar {
            filtered_attributes: attributes(),
            time_unix_nano: 9,
            span_id: vec![1; 8],
            trace_id: vec![2; 16],
            value: Some(exemplar::Value::AsDouble(f64::NAN)),
        },
        Exemplar {
            value: Some(exemplar::Value::AsInt(-3)),
            ..Default::default()
        },
        Exemplar::default(),
    ];
    let point = |v: Option<N>| NumberDataPoint {
        attributes: attributes(),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        exemplars: exemplars.clone(),
        flags: 1,
        value: v,
    };
    let metric = |name: &str, data: metric::Data| Metric {
        name: name.into(),
        description: "d".into(),
        unit: "1".into(),
        metadata: attributes(),
        data: Some(data),
    };
    let buckets = exponential_histogram_data_point::Buckets {
        offset: -7,
        bucket_counts: vec![0, 1, u64::MAX],
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: vec![
                    metric(
                        "gauge",
                        metric::Data::Gauge(Gauge {
                            data_points: vec![
                                point(Some(N::AsDouble(0.0))),
                                point(Some(N::AsDouble(f64::NAN))),
                                point(Some(N::AsDouble(f64::INFINITY))),
                                point(Some(N::AsDouble(f64::NEG_INFINITY))),
                                point(Some(N::AsInt(0))),
                                point(Some(N::AsInt(i64::MAX))),
                                point(None),
                            ],
                        }),
                    ),
                    metric(
                        "sum",
                        metric::Data::Sum(Sum {
                            data_points: vec![point(Some(N::AsInt(-1)))],
                            aggregation_temporality: 1,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "histogram",
                        metric::Data::Histogram(Histogram {
                            data_points: vec![
                                HistogramDataPoint {
                                    attributes: attributes(),
                                    start_time_unix_nano: 1,
                                    time_unix_nano: 2,
                                    count: 6,
                                    sum: Some(f64::NAN),
                                    bucket_counts: vec![1, 2, 3],
                                    explicit_bounds: vec![f64::NEG_INFINITY, 0.5, f64::INFINITY],
                                    exemplars: exemplars.clone(),
                                    flags: 1,
                                    min: Some(0.0),
                                    max: Some(f64::INFINITY),
                                },
                                HistogramDataPoint {
                                    sum: Some(0.0),
                                    ..Default::default()
                                },
                                HistogramDataPoint::default(),
                            ],
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        "exponential",
                        metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![
                                ExponentialHistogramDataPoint {
                                    attributes: attributes(),
                                    start_time_unix_nano: 1,
                                    time_unix_nano: 2,
                                    count: 3,
                                    sum: Some(-1.5),
                                    scale: -3,
                                    zero_count: 1,
                                    positive: Some(buckets.clone()),
                                    negative: Some(Default::default()),
                                    flags: 1,
                                    exemplars: exemplars.clone(),
                                    min: Some(f64::NEG_INFINITY),
                                    max: Some(0.0),
                                    zero_threshold: 1e-9,
                                },
                                ExponentialHistogramDataPoint::default(),
                            ],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "summary",
                        metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                attributes: attributes(),
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 4,
                                sum: f64::INFINITY,
                                quantile_values: vec![
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.5,
                                        value: f64::NAN,
                                    },
                                    summary_data_point::ValueAtQuantile::default(),
                                ],
                                flags: 1,
                            }],
                        }),
                    ),
                    metric("empty gauge", metric::Data::Gauge(Gauge::default())),
                    Metric {
                        name: "no data".into(),
                        ..Default::default()
                    },
                ],
                schema_url: "u".into(),
            }],
            schema_url: "v".into(),
        }],
    }
}

fn rich_logs() -> ExportLogsServiceRequest {
    use any_value::Value as V;
    let record = |body: Option<AnyValue>| LogRecord {
        time_unix_nano: 1,
        observed_time_unix_nano: 2,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body,
        attributes: attributes(),
        dropped_attributes_count: 1,
        flags: 1,
        trace_id: vec![3; 16],
        span_id: vec![4; 8],
        event_name: "event".into(),
    };
    let bodies: Vec<LogRecord> = attributes()
        .into_iter()
        .map(|kv| record(kv.value))
        .chain([
            record(value(V::KvlistValue(KeyValueList {
                values: attributes(),
            }))),
            LogRecord::default(),
        ])
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: bodies,
                schema_url: "u".into(),
            }],
            schema_url: "v".into(),
        }],
    }
}

fn rich(signal: Signal) -> Vec<u8> {
    match signal {
        Signal::Traces => rich_traces().encode_to_vec(),
        Signal::Metrics => rich_metrics().encode_to_vec(),
        Signal::Logs => rich_logs().encode_to_vec(),
    }
}

const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

#[test]
fn what_the_writer_writes_reads_back_to_identical_content() {
    for signal in SIGNALS {
        let wire = rich(signal);
        let text = write(signal, &wire);
        assert!(!text.contains('\n'), "one line");
        serde_json::from_str::<serde_json::Value>(&text).unwrap();
        assert_eq!(
            read(signal, &text),
            content(signal, &wire),
            "{signal:?}: {text}"
        );
        // And the writer is stable: writing what was read gives the same text.
        let again = json_to_wire(signal, text.as_bytes()).unwrap();
        assert_eq!(write(signal, &again), text, "{signal:?}");
    }
}

#[test]
fn the_writer_follows_the_otlp_json_mapping() {
    let text = write(Signal::Metrics, &rich(Signal::Metrics));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let metrics = &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
    let gauge = &metrics[0]["gauge"]["dataPoints"];
    assert_eq!(gauge[0]["asDouble"], 0.0, "oneof members are kept at zero");
    assert_eq!(gauge[1]["asDouble"], "NaN");
    assert_eq!(gauge[2]["asDouble"], "Infinity");
    assert_eq!(gauge[3]["asDouble"], "-Infinity");
    assert_eq!(gauge[4]["asInt"], "0");
    assert_eq!(gauge[5]["asInt"], "9223372036854775807");
    assert_eq!(
        gauge[0]["startTimeUnixNano"], "1",
        "64-bit integers are strings"
    );
    assert_eq!(gauge[0]["flags"], 1, "32-bit integers are numbers");
    let exemplar = &gauge[0]["exemplars"][0];
    assert_eq!(exemplar["spanId"], "0101010101010101");
    assert_eq!(exemplar["traceId"], "02".repeat(16));
    assert_eq!(exemplar["asDouble"], "NaN");
    let hist = &metrics[2]["histogram"];
    assert_eq!(hist["aggregationTemporality"], 2, "enums are numbers");
    let p = &hist["dataPoints"][0];
    assert_eq!(p["sum"], "NaN");
    assert_eq!(p["min"], 0.0, "optional fields are kept at zero");
    assert_eq!(p["max"], "Infinity");
    assert_eq!(
        p["explicitBounds"],
        serde_json::json!(["-Infinity", 0.5, "Infinity"])
    );
    assert_eq!(p["bucketCounts"], serde_json::json!(["1", "2", "3"]));
    assert_eq!(hist["dataPoints"][1], serde_json::json!({"sum": 0.0}));
    assert_eq!(hist["dataPoints"][2], serde_json::json!({}));
    let exp = &metrics[3]["exponentialHistogram"]["dataPoints"][0];
    assert_eq!(exp["scale"], -3);
    assert_eq!(
        exp["positive"],
        serde_json::json!({"offset": -7, "bucketCounts": ["0", "1", "18446744073709551615"]})
    );
    assert_eq!(exp["negative"], serde_json::json!({}));
    assert_eq!(metrics[4]["summary"]["dataPoints"][0]["sum"], "Infinity");
    assert_eq!(
        metrics[4]["summary"]["dataPoints"][0]["quantileValues"],
        serde_json::json!([{"quantile": 0.5, "value": "NaN"}, {}])
    );
    assert_eq!(
        metrics[5],
        serde_json::json!({"name": "empty gauge", "description": "d", "unit": "1",
        "metadata": metrics[5]["metadata"].clone(), "gauge": {}})
    );
    assert_eq!(metrics[6], serde_json::json!({"name": "no data"}));

    let text = write(Signal::Traces, &rich(Signal::Traces));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["kind"], 3);
    assert_eq!(span["flags"], u32::MAX);
    assert_eq!(span["startTimeUnixNano"], u64::MAX.to_string());
    assert_eq!(
        span["status"],
        serde_json::json!({"message": "m", "code": 2})
    );
    let attrs = span["attributes"].as_array().unwrap();
    let by_key = |k: &str| {
        attrs
            .iter()
            .find(|a| a.get("key").and_then(|x| x.as_str()).unwrap_or("") == k)
            .unwrap()
    };
    assert_eq!(
        by_key("s")["value"]["stringValue"],
        "tab\t \"quote\" \\ é 😀 \u{1} \u{7f}"
    );
    assert_eq!(
        by_key("empty")["value"],
        serde_json::json!({"stringValue": ""})
    );
    assert_eq!(
        by_key("b")["value"],
        serde_json::json!({"boolValue": false})
    );
    assert_eq!(
        by_key("i")["value"],
        serde_json::json!({"intValue": "-9223372036854775808"})
    );
    assert_eq!(
        by_key("nan")["value"],
        serde_json::json!({"doubleValue": "NaN"})
    );
    assert_eq!(
        by_key("bytes")["value"],
        serde_json::json!({"bytesValue": "AAEC//4="})
    );
    assert_eq!(
        by_key("arr")["value"],
        serde_json::json!({"arrayValue": {}})
    );
    assert_eq!(
        by_key("kvl")["value"],
        serde_json::json!({"kvlistValue": {}})
    );
    assert_eq!(
        by_key("")["value"],
        serde_json::json!({"stringValue": "keyless"})
    );
    assert!(by_key("").get("key").is_none(), "an empty key is left out");
    assert!(by_key("novalue").get("value").is_none());
    assert_eq!(by_key("emptyvalue")["value"], serde_json::json!({}));
    let empty = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][1];
    assert_eq!(empty, &serde_json::json!({"kind": 99, "status": {}}));
    assert_eq!(v["resourceSpans"][1], serde_json::json!({}));
}

/// Wire bytes built by hand: `(field number, wire type, payload)`.
fn fields(parts: &[(u32, u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(number, wire_type, payload) in parts {
        prost::encoding::encode_varint(u64::from(number << 3 | u32::from(wire_type)), &mut out);
        if wire_type == 2 {
            prost::encoding::encode_varint(payload.len() as u64, &mut out);
        }
        out.extend_from_slice(payload);
    }
    out
}

#[test]
fn unusual_but_valid_wire_is_written_with_protobuf_semantics() {
    let attr = |k: &str| kv(k, any_value::Value::IntValue(1)).encode_to_vec();
    let (a, b) = (attr("a"), attr("b"));
    // A span with its name twice (the last wins), its attributes split
    // around it, an unknown field, and a status sent in two halves (merged).
    let span = fields(&[
        (5, 2, b"first"),
        (9, 2, &a),
        (5, 2, b"second"),
        (99, 0, &[5]),
        (9, 2, &b),
        (15, 2, &fields(&[(2, 2, b"msg")])),
        (15, 2, &fields(&[(3, 0, &[2])])),
    ]);
    let wire = fields(&[(1, 2, &fields(&[(2, 2, &fields(&[(2, 2, &span)]))]))]);
    let text = write(Signal::Traces, &wire);
    assert_eq!(read(Signal::Traces, &text), content(Signal::Traces, &wire));
    let req = ExportTraceServiceRequest::decode(&wire[..]).unwrap();
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!((span.name.as_str(), span.attributes.len()), ("second", 2));
    assert_eq!(
        span.status,
        Some(Status {
            message: "msg".into(),
            code: 2
        })
    );

    // Unpacked repeated numbers and an unknown field are fine as they are.
    let point = fields(&[
        (6, 1, &1u64.to_le_bytes()),
        (6, 1, &2u64.to_le_bytes()),
        (100, 2, b"?"),
    ]);
    let metric = fields(&[(1, 2, b"h"), (9, 2, &fields(&[(1, 2, &point)]))]);
    let wire = fields(&[(1, 2, &fields(&[(2, 2, &fields(&[(2, 2, &metric)]))]))]);
    let text = write(Signal::Metrics, &wire);
    assert!(text.contains(r#""bucketCounts":["1","2"]"#), "{text}");
    assert_eq!(
        read(Signal::Metrics, &text),
        content(Signal::Metrics, &wire)
    );
}

#[test]
fn what_cannot_be_written_is_an_error_and_writes_nothing() {
    let mut out = b"before".to_vec();
    // A 15-byte trace id has no OTLP/JSON form.
    let span = fields(&[(1, 2, &[1; 15])]);
    let wire = fields(&[(1, 2, &fields(&[(2, 2, &fields(&[(2, 2, &span)]))]))]);
    let err = wire_to_json(Signal::Traces, &wire, &mut out).unwrap_err();
    assert!(matches!(err, JsonError::Unrepresentable(_)), "{err}");
    assert!(err.to_string().contains("an id of 15 bytes"), "{err}");
    // Invalid UTF-8 and truncated messages are malformed protobuf.
    for wire in [
        fields(&[(1, 2, &fields(&[(3, 2, b"\xff")]))]),
        vec![0x0a, 0x05, 0x01],
        // Field number 0.
        vec![0x02, 0x00],
    ] {
        let err = wire_to_json(Signal::Traces, &wire, &mut out).unwrap_err();
        assert!(matches!(err, JsonError::Proto(_)), "{err}");
    }
    assert_eq!(out, b"before");
}

#[test]
fn opentelemetry_proto_serde_output_reads_the_same() {
    // The serde mapping of the opentelemetry-proto crate (used by test
    // clients) is read as it means, for data without special doubles.
    use any_value::Value as V;
    let attributes = vec![
        kv("s", V::StringValue("x".into())),
        kv("i", V::IntValue(-5)),
        kv("d", V::DoubleValue(0.25)),
        kv("b", V::BoolValue(true)),
        kv(
            "a",
            V::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(V::StringValue("y".into())),
                }],
            }),
        ),
    ];
    let traces = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: attributes.clone(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "scope".into(),
                    ..Default::default()
                }),
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "s".into(),
                    kind: 2,
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    attributes: attributes.clone(),
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
    };
    let text = serde_json::to_string(&traces).unwrap();
    assert_eq!(
        read(Signal::Traces, &text),
        content(Signal::Traces, &traces.encode_to_vec())
    );
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    severity_number: 9,
                    body: value(V::StringValue("b".into())),
                    attributes,
                    trace_id: vec![1; 16],
                    time_unix_nano: 5,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let text = serde_json::to_string(&logs).unwrap();
    assert_eq!(
        read(Signal::Logs, &text),
        content(Signal::Logs, &logs.encode_to_vec())
    );
}

#[test]
fn no_body_is_accepted_that_prost_cannot_decode() {
    // Every prefix, and every byte replaced by a few others, of one JSON
    // request per signal: refused or accepted, never a panic, and what is
    // accepted decodes with prost.
    for signal in SIGNALS {
        let text = write(signal, &rich(signal)).into_bytes();
        let step = text.len() / 300 + 1;
        for cut in (0..text.len()).step_by(step) {
            if let Ok(wire) = json_to_wire(signal, &text[..cut]) {
                content(signal, &wire);
            }
            for b in [b'"', b'{', b']', b'1', b'-', b'\\', b'e', b'n', 0xc3] {
                let mut changed = text.clone();
                changed[cut] = b;
                if let Ok(wire) = json_to_wire(signal, &changed) {
                    content(signal, &wire);
                }
            }
        }
    }
}
