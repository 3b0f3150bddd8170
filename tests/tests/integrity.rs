//! What Tern acknowledges is valid and gets delivered. Hostile requests of
//! every class the receiver fuzzing found (invalid UTF-8, wrong wire types,
//! corrupt attribute bytes, wrong id lengths, nesting past the limit) are
//! refused with 400 / INVALID_ARGUMENT naming the field, counted by
//! reason, while good requests sent at the same time, batched together,
//! all reach a JSON file exporter and, through an `otlp` exporter, a
//! second Tern.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::BytesMut;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;
use tern_core::wire::put_varint;
use tern_e2e::{HttpConn, Tern, grpc_call, paths, sample};

fn ld(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_varint(&mut out, (u64::from(number) << 3) | 2);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out.to_vec()
}

/// A request of one good span with `extra` appended to its fields.
fn span_with(extra: &[u8]) -> Vec<u8> {
    let good = spans(9999, 1).resource_spans[0].scope_spans[0].spans[0].encode_to_vec();
    ld(1, &ld(2, &ld(2, &[good, extra.to_vec()].concat())))
}

/// An attribute whose value is an array nested `levels` deep.
fn nested_attribute(levels: usize) -> Vec<u8> {
    let mut value = ld(1, b"leaf");
    for _ in 0..levels {
        value = ld(5, &ld(1, &value));
    }
    ld(9, &[ld(1, b"deep"), ld(2, &value)].concat())
}

/// (reason label, field path in the message, request).
fn hostile() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        (
            "invalid_utf8",
            "spans[0].name",
            span_with(&ld(5, b"caf\xe9")),
        ),
        (
            "invalid_utf8",
            "attributes[1].value.string_value",
            span_with(&ld(9, &[ld(1, b"k"), ld(2, &ld(1, b"\xff\xfe"))].concat())),
        ),
        // start_time_unix_nano (fixed64) sent as a varint.
        (
            "wrong_wire_type",
            "spans[0].start_time_unix_nano",
            span_with(&[7 << 3, 5]),
        ),
        // An attribute value whose bytes are cut short inside.
        (
            "malformed",
            "attributes[1].value",
            span_with(&ld(9, &[ld(1, b"k"), ld(2, &[0x0a, 0x09, b'x'])].concat())),
        ),
        (
            "invalid_id_length",
            "spans[0].trace_id",
            span_with(&ld(1, &[1; 15])),
        ),
        (
            "invalid_id_length",
            "spans[0].trace_id",
            span_with(&ld(1, &[1; 17])),
        ),
        (
            "invalid_id_length",
            "spans[0].trace_id",
            span_with(&ld(1, &[1; 32])),
        ),
        (
            "invalid_id_length",
            "spans[0].span_id",
            span_with(&ld(2, &[1; 16])),
        ),
        (
            "invalid_id_length",
            "links[0].trace_id",
            span_with(&ld(13, &ld(1, &[1; 15]))),
        ),
        (
            "too_deep",
            "attributes[1].value.array_value",
            span_with(&nested_attribute(40)),
        ),
    ]
}

const CONFIG: &str = r#"
processors:
  batch:
    timeout: 2s
    send_batch_size: 100000
exporters:
  file:
    path: {dir}/out.jsonl
  otlp:
    endpoint: 127.0.0.1:DOWNSTREAM
    tls:
      insecure: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file, otlp]
"#;

const DOWNSTREAM: &str = r#"
exporters:
  file:
    path: {dir}/out.pb
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_and_good_ones_batched_with_them_are_delivered() {
    let mut down = Tern::start(DOWNSTREAM);
    let mut tern = Tern::start(&CONFIG.replace("DOWNSTREAM", &down.grpc.to_string()));
    let mut http = HttpConn::connect(tern.http).await;
    let mut sent = Vec::new();
    let cases = hostile();
    // Good and hostile requests interleaved, over both transports, all in
    // one batch window.
    for (i, (reason, path, bad)) in cases.iter().enumerate() {
        let good = spans(i as u32, 3);
        sent.push(good.clone());
        let r = http.post_proto("/v1/traces", good.encode_to_vec()).await;
        assert_eq!(r.status, 200);

        let r = http.post_proto("/v1/traces", bad.clone()).await;
        assert_eq!(r.status, 400, "{reason} {path}");
        let status = status::RpcStatus::decode(&r.body[..]).unwrap();
        assert!(
            status.message.contains(path),
            "{reason}: {}",
            status.message
        );

        let good = spans(100 + i as u32, 2);
        sent.push(good.clone());
        let r = grpc_call(tern.grpc, paths::TRACES, good.encode_to_vec(), None).await;
        assert_eq!(r.code, 0);

        let r = grpc_call(tern.grpc, paths::TRACES, bad.clone(), None).await;
        assert_eq!(r.code, 3, "{reason}: {}", r.message);
        assert!(r.message.contains(path), "{reason}: {}", r.message);
    }

    // Refusals are counted by reason, per transport.
    let metrics = tern
        .self_metrics_until("refusals", |m| m.contains("too_deep"))
        .await;
    for transport in ["http", "grpc"] {
        for reason in [
            "invalid_utf8",
            "wrong_wire_type",
            "malformed",
            "invalid_id_length",
            "too_deep",
        ] {
            let want = cases.iter().filter(|c| c.0 == reason).count() as f64;
            let labels = format!(r#"receiver="otlp",transport="{transport}",reason="{reason}""#);
            assert_eq!(
                sample(&metrics, "tern_receiver_requests_refused_total", &labels),
                Some(want),
                "{labels}\n{metrics}"
            );
        }
    }

    // Every good span, and nothing else, reaches both outputs.
    assert!(tern.stop().success());
    let want = sorted_span_ids(&sent);
    let text = String::from_utf8(read(&tern.path("out.jsonl"))).unwrap();
    let written: Vec<ExportTraceServiceRequest> = text
        .lines()
        .map(|line| {
            let wire = tern_core::json::json_to_wire(tern_core::Signal::Traces, line.as_bytes());
            ExportTraceServiceRequest::decode(wire.unwrap()).unwrap()
        })
        .collect();
    assert_eq!(sorted_span_ids(&written), want);
    assert!(down.stop().success());
    assert_eq!(span_ids_in(&read(&down.path("out.pb"))), want);
}

/// A metric that sets its data twice (two kinds, or one kind twice; no SDK
/// sends one) is refused over both transports, naming the field, and
/// counted; the Collector would keep only the last field and drop the
/// first one's points unseen (`reference.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_setting_its_data_twice_is_refused_and_counted() {
    let mut tern = Tern::start(
        "exporters:\n  debug: {}\nservice:\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [debug]\n",
    );
    let req = gauges(1, 2);
    let metric = &req.resource_metrics[0].scope_metrics[0].metrics[0];
    let Some(metric::Data::Gauge(gauge)) = &metric.data else {
        unreachable!()
    };
    // A `sum` (field 7) with the gauge's points: the same bytes.
    let points = gauge.encode_to_vec();
    let wrap = |metric: Vec<u8>| ld(1, &ld(2, &ld(2, &metric)));
    let cases = [
        (
            wrap([metric.encode_to_vec(), ld(7, &points)].concat()),
            "sum",
        ),
        (
            wrap([metric.encode_to_vec(), ld(5, &points)].concat()),
            "gauge",
        ),
    ];
    let mut http = HttpConn::connect(tern.http).await;
    for (body, field) in &cases {
        let path = format!("metrics[0].{field}");
        let r = http.post_proto("/v1/metrics", body.clone()).await;
        assert_eq!(r.status, 400);
        let status = status::RpcStatus::decode(&r.body[..]).unwrap();
        assert!(
            status.message.contains(&path) && status.message.contains("already holds `gauge`"),
            "{}",
            status.message
        );
        let r = grpc_call(tern.grpc, paths::METRICS, body.clone(), None).await;
        assert_eq!(r.code, 3, "{}", r.message);
        assert!(r.message.contains(&path), "{}", r.message);
    }
    let good = http.post_proto("/v1/metrics", req.encode_to_vec()).await;
    assert_eq!(good.status, 200);
    tern.self_metrics_until("the refusals counted, the good request accepted", |m| {
        ["http", "grpc"].iter().all(|t| {
            let labels = format!(r#"receiver="otlp",transport="{t}",reason="data_set_twice""#);
            sample(m, "tern_receiver_requests_refused_total", &labels) == Some(2.0)
        }) && sample(
            m,
            "otelcol_receiver_accepted_metric_points_total",
            r#"receiver="otlp",transport="http""#,
        ) == Some(2.0)
    })
    .await;
    assert!(tern.stop().success());
}
