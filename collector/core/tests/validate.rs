//! The validating walk refuses each class of invalid request a hostile
//! client can send (found by fuzzing the receivers) with the right reason
//! and field path, accepts what protobuf requires it to accept (unknown
//! fields, groups, packed and unpacked numbers), and agrees with prost.

#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tern_core::Signal;
use tern_core::wire::{MAX_DEPTH, Reason, count_items, put_varint, split};

/// A length-delimited field.
fn ld(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_varint(&mut out, (u64::from(number) << 3) | 2);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out.to_vec()
}

fn varint(number: u32, value: u64) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_varint(&mut out, u64::from(number) << 3);
    put_varint(&mut out, value);
    out.to_vec()
}

fn fixed64(number: u32, value: u64) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_varint(&mut out, (u64::from(number) << 3) | 1);
    out.extend_from_slice(&value.to_le_bytes());
    out.to_vec()
}

fn tag(number: u32, wire_type: u64) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_varint(&mut out, (u64::from(number) << 3) | wire_type);
    out.to_vec()
}

fn fixed32(number: u32) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_varint(&mut out, (u64::from(number) << 3) | 5);
    out.extend_from_slice(&[1, 2, 3, 4]);
    out.to_vec()
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// A valid span's fields, to which a case appends its own.
fn span_fields() -> Vec<u8> {
    cat(&[
        ld(1, &[1; 16]),
        ld(2, &[2; 8]),
        ld(5, b"GET /"),
        fixed64(7, 10),
        fixed64(8, 20),
    ])
}

/// A request of one span with `span` as its fields.
fn traces_with(span: &[u8]) -> Vec<u8> {
    ld(1, &ld(2, &ld(2, span)))
}

fn any_string(s: &[u8]) -> Vec<u8> {
    ld(1, s)
}

fn attribute(key: &[u8], value: &[u8]) -> Vec<u8> {
    cat(&[ld(1, key), ld(2, value)])
}

fn refused(signal: Signal, bytes: &[u8]) -> (Reason, String) {
    let e = count_items(signal, bytes).unwrap_err();
    (e.reason(), e.path().to_string())
}

fn prost_ok(signal: Signal, bytes: &[u8]) -> bool {
    match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(bytes).is_ok(),
        Signal::Metrics => ExportMetricsServiceRequest::decode(bytes).is_ok(),
        Signal::Logs => ExportLogsServiceRequest::decode(bytes).is_ok(),
    }
}

#[test]
fn a_valid_span_is_counted() {
    let req = traces_with(&span_fields());
    assert_eq!(count_items(Signal::Traces, &req).unwrap(), 1);
    assert!(prost_ok(Signal::Traces, &req));
}

#[test]
fn invalid_utf8_is_refused_wherever_a_string_is() {
    let bad = b"ok\xff\xfe";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            traces_with(&cat(&[span_fields(), ld(5, bad)])),
            "resource_spans[0].scope_spans[0].spans[0].name",
        ),
        (
            traces_with(&cat(&[
                span_fields(),
                ld(9, &attribute(bad, &any_string(b"v"))),
            ])),
            "resource_spans[0].scope_spans[0].spans[0].attributes[0].key",
        ),
        (
            traces_with(&cat(&[
                span_fields(),
                ld(9, &attribute(b"a", &any_string(b"v"))),
                ld(9, &attribute(b"b", &ld(5, &ld(1, &any_string(bad))))),
            ])),
            "resource_spans[0].scope_spans[0].spans[0].attributes[1].value.array_value.values[0].string_value",
        ),
        (
            traces_with(&cat(&[span_fields(), ld(15, &ld(2, bad))])),
            "resource_spans[0].scope_spans[0].spans[0].status.message",
        ),
        (
            ld(1, &ld(2, &ld(1, &ld(1, bad)))),
            "resource_spans[0].scope_spans[0].scope.name",
        ),
        (
            ld(1, &ld(1, &ld(1, &attribute(b"k", &any_string(bad))))),
            "resource_spans[0].resource.attributes[0].value.string_value",
        ),
    ];
    for (req, path) in cases {
        assert_eq!(refused(Signal::Traces, &req), (Reason::Utf8, path.into()));
        assert!(!prost_ok(Signal::Traces, &req), "{path}");
    }
}

#[test]
fn a_known_field_with_the_wrong_wire_type_is_refused() {
    // start_time_unix_nano (fixed64) as a varint; name (string) as a varint;
    // attributes (message) as fixed64.
    for (extra, path) in [
        (varint(7, 5), "start_time_unix_nano"),
        (varint(5, 5), "name"),
        (fixed64(9, 5), "attributes[0]"),
    ] {
        let req = traces_with(&cat(&[span_fields(), extra]));
        assert_eq!(
            refused(Signal::Traces, &req),
            (
                Reason::WireType,
                format!("resource_spans[0].scope_spans[0].spans[0].{path}")
            )
        );
        assert!(!prost_ok(Signal::Traces, &req));
    }
}

#[test]
fn ids_must_have_their_spec_length_or_be_empty() {
    for len in [1, 15, 17, 32] {
        let req = traces_with(&cat(&[span_fields(), ld(1, &vec![7; len])]));
        assert_eq!(refused(Signal::Traces, &req).0, Reason::IdLength, "{len}");
    }
    for len in [7, 9, 16] {
        for field in [2, 4] {
            let req = traces_with(&cat(&[span_fields(), ld(field, &vec![7; len])]));
            assert_eq!(refused(Signal::Traces, &req).0, Reason::IdLength);
        }
        // A link's span id, a log record's and an exemplar's.
        let link = traces_with(&cat(&[span_fields(), ld(13, &ld(2, &vec![7; len]))]));
        assert_eq!(
            refused(Signal::Traces, &link),
            (
                Reason::IdLength,
                "resource_spans[0].scope_spans[0].spans[0].links[0].span_id".into()
            )
        );
        let log = ld(1, &ld(2, &ld(2, &ld(10, &vec![7; len]))));
        assert_eq!(refused(Signal::Logs, &log).0, Reason::IdLength);
        let point = cat(&[fixed64(3, 1), ld(5, &ld(4, &vec![7; len]))]);
        let metrics = ld(1, &ld(2, &ld(2, &ld(5, &ld(1, &point)))));
        assert_eq!(
            refused(Signal::Metrics, &metrics),
            (
                Reason::IdLength,
                "resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].exemplars[0].span_id"
                    .into()
            )
        );
    }
    // Empty ids mean "not set" and are fine.
    let req = traces_with(&cat(&[span_fields(), ld(1, &[]), ld(4, &[])]));
    assert_eq!(count_items(Signal::Traces, &req).unwrap(), 1);
}

/// A log record whose body is an array nested `levels` deep.
fn nested_body(levels: usize) -> Vec<u8> {
    let mut value = any_string(b"leaf");
    for _ in 0..levels {
        value = ld(5, &ld(1, &value));
    }
    ld(1, &ld(2, &ld(2, &ld(5, &value))))
}

#[test]
fn nesting_is_capped_at_the_documented_depth() {
    // request(0) -> resource_logs(1) -> scope_logs(2) -> log_record(3) ->
    // body(4) -> array_value(5) -> values(6) -> ...: each level adds 2.
    let deepest_ok = (MAX_DEPTH - 4) / 2;
    assert_eq!(
        count_items(Signal::Logs, &nested_body(deepest_ok)).unwrap(),
        1
    );
    let too_deep = nested_body(deepest_ok + 1);
    assert_eq!(refused(Signal::Logs, &too_deep).0, Reason::TooDeep);
    // What the cap accepts, prost accepts too; far past it, prost refuses.
    assert!(prost_ok(Signal::Logs, &nested_body(deepest_ok)));
    let huge = nested_body(5_000);
    assert_eq!(refused(Signal::Logs, &huge).0, Reason::TooDeep);
    assert!(!prost_ok(Signal::Logs, &huge));
}

#[test]
fn unknown_fields_and_groups_are_skipped() {
    let group = cat(&[tag(20, 3), varint(1, 5), tag(21, 3), tag(21, 4), tag(20, 4)]);
    let unknown = cat(&[
        varint(100, 1),
        ld(101, b"\xff not utf8, not a field we know"),
        fixed64(102, 1),
        fixed32(103),
        group.clone(),
    ]);
    let req = cat(&[
        traces_with(&cat(&[span_fields(), unknown.clone()])),
        ld(
            1,
            &cat(&[
                ld(2, &cat(&[unknown.clone(), ld(2, &span_fields())])),
                group,
            ]),
        ),
    ]);
    assert_eq!(count_items(Signal::Traces, &req).unwrap(), 2);
    assert!(prost_ok(Signal::Traces, &req));
    // Splitting keeps them (in the envelopes) and every piece stays valid.
    for piece in split(Signal::Traces, &req, 1).unwrap() {
        assert_eq!(count_items(Signal::Traces, &piece.bytes).unwrap(), 1);
        assert!(prost_ok(Signal::Traces, &piece.bytes));
    }
    // A group end without a start, an unterminated group, a mismatched end.
    for bad in [
        tag(20, 4),
        cat(&[tag(20, 3), varint(1, 1)]),
        cat(&[tag(20, 3), tag(21, 4)]),
    ] {
        let req = traces_with(&cat(&[span_fields(), bad]));
        assert_eq!(refused(Signal::Traces, &req).0, Reason::Malformed);
        assert!(!prost_ok(Signal::Traces, &req));
    }
}

#[test]
fn packed_and_unpacked_repeated_numbers_are_both_accepted() {
    let point = |extra: Vec<u8>| {
        let dp = cat(&[fixed64(3, 1), fixed64(4, 3), extra]);
        ld(1, &ld(2, &ld(2, &ld(9, &ld(1, &dp)))))
    };
    let packed_counts = ld(6, &[0u8; 24]);
    let unpacked_counts = cat(&[fixed64(6, 1), fixed64(6, 2)]);
    let packed_bounds = ld(7, &1.5f64.to_le_bytes());
    for ok in [packed_counts, unpacked_counts, packed_bounds] {
        let req = point(ok);
        assert_eq!(count_items(Signal::Metrics, &req).unwrap(), 1);
        assert!(prost_ok(Signal::Metrics, &req));
    }
    let ragged = point(ld(6, &[0u8; 12]));
    assert_eq!(refused(Signal::Metrics, &ragged).0, Reason::Malformed);
    assert!(!prost_ok(Signal::Metrics, &ragged));
    // Exponential histogram buckets: packed varints, complete or refused.
    let exp = |buckets: Vec<u8>| {
        let dp = cat(&[fixed64(4, 3), ld(8, &buckets)]);
        ld(1, &ld(2, &ld(2, &ld(10, &ld(1, &dp)))))
    };
    let good = exp(cat(&[varint(1, 1), ld(2, &[1, 0x80, 0x01, 3])]));
    assert_eq!(count_items(Signal::Metrics, &good).unwrap(), 1);
    assert!(prost_ok(Signal::Metrics, &good));
    let cut = exp(ld(2, &[1, 0x80]));
    assert_eq!(refused(Signal::Metrics, &cut).0, Reason::Malformed);
    assert!(!prost_ok(Signal::Metrics, &cut));
}

#[test]
fn varints_past_64_bits_are_refused_as_prost_does() {
    let ten = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
    for (bytes, ok) in [(ten, true), (over, false)] {
        let mut kind = vec![6 << 3];
        kind.extend_from_slice(&bytes);
        let req = traces_with(&cat(&[span_fields(), kind]));
        assert_eq!(count_items(Signal::Traces, &req).is_ok(), ok);
        assert_eq!(prost_ok(Signal::Traces, &req), ok);
    }
}

#[test]
fn error_messages_name_the_path_and_the_problem() {
    let req = traces_with(&cat(&[span_fields(), ld(5, b"\xc3")]));
    let e = count_items(Signal::Traces, &req).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid protobuf at resource_spans[0].scope_spans[0].spans[0].name: string is not valid UTF-8"
    );
    assert_eq!(e.reason().as_str(), "invalid_utf8");
}

#[test]
fn a_metric_sets_its_data_once() {
    let point = fixed64(3, 1);
    let gauge = ld(5, &ld(1, &point));
    let histogram = ld(9, &ld(1, &point));
    let metric = |data: &[Vec<u8>]| ld(1, &ld(2, &ld(2, &cat(data))));
    // Two kinds: prost keeps only the last, so the walk's count would not
    // be what is delivered; refused, naming the field.
    let two = metric(&[gauge.clone(), histogram.clone()]);
    assert!(prost_ok(Signal::Metrics, &two));
    assert_eq!(
        refused(Signal::Metrics, &two),
        (
            Reason::DataTwice,
            "resource_metrics[0].scope_metrics[0].metrics[0].histogram".into()
        )
    );
    // Also when the first kind holds no points.
    let empty_first = metric(&[ld(11, &[]), gauge.clone()]);
    assert_eq!(refused(Signal::Metrics, &empty_first).0, Reason::DataTwice);
    // One kind set twice: protobuf merges, the Collector keeps the last.
    let twice = metric(&[gauge.clone(), gauge.clone()]);
    assert_eq!(refused(Signal::Metrics, &twice).0, Reason::DataTwice);
    // Each metric has its own kind.
    let two_metrics = ld(1, &ld(2, &cat(&[ld(2, &gauge), ld(2, &histogram)])));
    assert_eq!(count_items(Signal::Metrics, &two_metrics).unwrap(), 2);
}
