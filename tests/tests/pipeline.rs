//! Data sent over every transport and encoding comes out of the file
//! exporters intact (ids compared), the process exits 0 on SIGTERM after
//! flushing, and the self-metrics count what happened.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;
use tern_e2e::{HttpConn, Tern, grpc_call, paths, sample};

const CONFIG: &str = r#"
processors:
  batch:
    send_batch_size: 50
    send_batch_max_size: 50
    timeout: 100ms
exporters:
  file/json:
    path: {dir}/out.jsonl
  file/proto:
    path: {dir}/out.pb
    format: proto
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file/json, file/proto]
    traces/copy:
      receivers: [otlp]
      exporters: [nop]
    metrics:
      receivers: [otlp]
      exporters: [file/json, nop]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [file/json]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_and_encoding_delivers_every_item_once() {
    let mut tern = Tern::start(CONFIG);
    let mut sent_spans: Vec<Vec<u8>> = Vec::new();

    // gRPC: plain, gzip, zstd.
    for (tag, enc) in [(1, None), (2, Some("gzip")), (3, Some("zstd"))] {
        let req = spans(tag, 40);
        sent_spans.extend(span_ids(&req));
        let raw = req.encode_to_vec();
        let body = match enc {
            Some("gzip") => gzip(&raw),
            Some("zstd") => zstd(&raw),
            _ => raw,
        };
        let reply = grpc_call(tern.grpc, paths::TRACES, body, enc).await;
        assert_eq!(reply.code, 0, "{reply:?}");
        let resp = ExportTraceServiceResponse::decode(reply.message_bytes).unwrap();
        assert!(
            resp.partial_success.is_none(),
            "partial_success is empty on full success"
        );
    }
    // HTTP protobuf with each Content-Encoding.
    let mut http = HttpConn::connect(tern.http).await;
    for (tag, enc) in [(4, ""), (5, "gzip"), (6, "deflate"), (7, "zstd")] {
        let req = spans(tag, 30);
        sent_spans.extend(span_ids(&req));
        let raw = req.encode_to_vec();
        let body = match enc {
            "gzip" => gzip(&raw),
            "deflate" => deflate(&raw),
            "zstd" => zstd(&raw),
            _ => raw,
        };
        let mut headers = vec![("content-type", "application/x-protobuf")];
        if !enc.is_empty() {
            headers.push(("content-encoding", enc));
        }
        let r = http.send("POST", "/v1/traces", &headers, body).await;
        assert_eq!(r.status, 200, "{enc}: {:?}", r.body);
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    }
    // HTTP JSON traces, metrics over gRPC and HTTP, logs over HTTP JSON (gzip).
    let req = spans(8, 5);
    sent_spans.extend(span_ids(&req));
    let json = serde_json::to_vec(&req).unwrap();
    let r = http
        .send(
            "POST",
            "/v1/traces",
            &[("content-type", "application/json")],
            json,
        )
        .await;
    assert_eq!((r.status, &r.body[..]), (200, &b"{}"[..]));
    assert_eq!(r.header("content-type"), Some("application/json"));

    let reply = grpc_call(
        tern.grpc,
        paths::METRICS,
        gauges(1, 7).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(reply.code, 0, "{reply:?}");
    let r = http
        .post_proto("/v1/metrics", gauges(2, 3).encode_to_vec())
        .await;
    assert_eq!(r.status, 200);
    let logs_json = gzip(&serde_json::to_vec(&logs(1, 12)).unwrap());
    let r = http
        .send(
            "POST",
            "/v1/logs",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            logs_json,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let reply = grpc_call(tern.grpc, paths::LOGS, logs(2, 3).encode_to_vec(), None).await;
    assert_eq!(reply.code, 0);

    // Let the batch timeout pass so the self-metrics settle, then check them.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let m = tern.self_metrics().await;
    let grpc = r#"receiver="otlp",transport="grpc""#;
    let http_l = r#"receiver="otlp",transport="http""#;
    assert_eq!(
        sample(&m, "otelcol_receiver_accepted_spans_total", grpc),
        Some(120.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "otelcol_receiver_accepted_spans_total", http_l),
        Some(125.0)
    );
    assert_eq!(
        sample(&m, "otelcol_receiver_accepted_metric_points_total", grpc),
        Some(7.0)
    );
    assert_eq!(
        sample(&m, "otelcol_receiver_accepted_metric_points_total", http_l),
        Some(3.0)
    );
    assert_eq!(
        sample(&m, "otelcol_receiver_accepted_log_records_total", http_l),
        Some(12.0)
    );
    // One duration observation per request: 5 gRPC calls, 7 HTTP requests.
    for (labels, requests) in [(grpc, 5.0), (http_l, 7.0)] {
        let name = "tern_receiver_request_duration_seconds";
        assert_eq!(
            sample(&m, &format!("{name}_count"), labels),
            Some(requests),
            "{m}"
        );
        let inf = format!("{labels},le=\"+Inf\"");
        assert_eq!(sample(&m, &format!("{name}_bucket"), &inf), Some(requests));
        assert!(sample(&m, &format!("{name}_sum"), labels).unwrap() > 0.0);
    }
    assert_eq!(
        sample(
            &m,
            "otelcol_exporter_sent_spans_total",
            r#"exporter="file/proto""#
        ),
        Some(245.0)
    );
    assert_eq!(
        sample(
            &m,
            "otelcol_exporter_sent_metric_points_total",
            r#"exporter="nop""#
        ),
        Some(10.0)
    );
    // The receiver feeds two traces pipelines; `nop` is fed by two pipelines.
    assert_eq!(
        sample(&m, "otelcol_exporter_sent_spans_total", r#"exporter="nop""#),
        Some(245.0)
    );
    assert_eq!(
        sample(
            &m,
            "otelcol_exporter_queue_capacity",
            r#"exporter="file/json""#
        ),
        Some(1000.0)
    );

    let status = tern.stop();
    assert!(status.success(), "exit {status:?}; log:\n{}", tern.logs());

    // The JSON file: one export request per line, every item exactly once.
    let text = std::fs::read_to_string(tern.path("out.jsonl")).unwrap();
    let mut got_spans = Vec::new();
    let mut points = 0;
    let mut log_bodies = BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v.get("resourceSpans").is_some() {
            let req: ExportTraceServiceRequest = serde_json::from_str(line).unwrap();
            let ids = span_ids(&req);
            assert!(ids.len() <= 50, "send_batch_max_size respected");
            got_spans.extend(ids);
        } else if v.get("resourceMetrics").is_some() {
            let req: ExportMetricsServiceRequest = serde_json::from_str(line).unwrap();
            for m in req
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
            {
                let Some(metric::Data::Gauge(g)) = &m.data else {
                    panic!("gauge expected")
                };
                assert_eq!(m.unit, "{item}");
                points += g.data_points.len();
            }
        } else {
            let req: ExportLogsServiceRequest = serde_json::from_str(line).unwrap();
            for r in req
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records)
            {
                assert!(log_bodies.insert(format!("{:?}", r.body)), "duplicate log");
            }
        }
    }
    let mut want = sent_spans.clone();
    want.sort();
    got_spans.sort();
    assert_eq!(got_spans, want);
    assert_eq!(points, 10);
    assert_eq!(log_bodies.len(), 15);

    // The proto file: 4-byte big-endian length + ExportTraceServiceRequest.
    assert_eq!(span_ids_in(&read(&tern.path("out.pb"))), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_what_the_batch_processor_holds() {
    let config = CONFIG
        .replace("timeout: 100ms", "timeout: 1h")
        .replace("send_batch_size: 50", "send_batch_size: 100000")
        .replace("send_batch_max_size: 50", "send_batch_max_size: 0");
    let mut tern = Tern::start(&config);
    let reply = grpc_call(tern.grpc, paths::TRACES, spans(9, 17).encode_to_vec(), None).await;
    assert_eq!(reply.code, 0);
    // Nothing is written yet: the batch waits for size or an hour.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(std::fs::metadata(tern.path("out.pb")).unwrap().len(), 0);
    assert!(tern.stop().success());
    let data = std::fs::read(tern.path("out.pb")).unwrap();
    let req = ExportTraceServiceRequest::decode(&data[4..]).unwrap();
    assert_eq!(span_ids(&req).len(), 17);
    let logs = tern.logs();
    let order = [
        "stopping receivers",
        "draining processors",
        "flushing exporters",
        "shutdown complete",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|s| {
            logs.find(s)
                .unwrap_or_else(|| panic!("{s} missing in\n{logs}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "ordered shutdown: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_metadata_keeps_client_headers_on_the_batch() {
    let config = r#"
receivers:
  otlp:
    protocols:
      http:
        include_metadata: true
exporters:
  debug:
    verbosity: detailed
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
"#;
    let mut tern = Tern::start(config);
    let r = HttpConn::connect(tern.http)
        .await
        .send(
            "POST",
            "/v1/traces",
            &[
                ("content-type", "application/x-protobuf"),
                ("x-tenant-id", "acme"),
            ],
            spans(5, 1).encode_to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    // gRPC does not keep metadata here (include_metadata is off for it).
    let g = grpc_call(tern.grpc, paths::TRACES, spans(6, 1).encode_to_vec(), None).await;
    assert_eq!(g.code, 0);
    assert!(tern.stop().success());
    let logs = tern.logs();
    let http_ctx = logs
        .lines()
        .find(|l| l.contains("request context") && l.contains("transport=\"http\""))
        .unwrap_or_else(|| panic!("no http context in\n{logs}"));
    assert!(http_ctx.contains("x-tenant-id=acme"), "{http_ctx}");
    assert!(http_ctx.contains("127.0.0.1:"), "peer kept: {http_ctx}");
    let grpc_ctx = logs
        .lines()
        .find(|l| l.contains("request context") && l.contains("transport=\"grpc\""))
        .unwrap_or_else(|| panic!("no grpc context in\n{logs}"));
    assert!(!grpc_ctx.contains("x-tenant-id"), "{grpc_ctx}");
    assert!(
        logs.contains("\"name\": \"tool.call 5/0\""),
        "detailed prints items: {logs}"
    );
}
