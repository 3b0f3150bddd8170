//! Component keys Tern honours as the Collector does, run end to end:
//! `health_check.response_body`, snappy on the gRPC receiver, and the
//! `file` exporter's `group_by`.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use prost::Message;
use tern_e2e::{Tern, grpc_frame, http_request, paths, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_answers_with_the_configured_body() {
    let mut tern = Tern::start(
        "extensions:\n  health_check:\n    response_body:\n      healthy: I'm OK\n      unhealthy: not yet\nexporters:\n  nop:\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [nop]\n",
    );
    let reply = http_request(tern.health, "GET", "/", &[], Vec::new()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], b"I'm OK");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(tern.stop().success());
}

/// A gRPC call with `grpc-encoding: <encoding>` and `body` as the whole
/// request body: (grpc-status, grpc-message, grpc-accept-encoding).
async fn grpc_raw(port: u16, encoding: &str, body: Bytes) -> (i32, String, String) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("http://127.0.0.1:{port}{}", paths::LOGS))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-encoding", encoding)
        .body(Full::new(body))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let mut headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    if let Some(trailers) = collected.trailers() {
        headers.extend(trailers.clone());
    }
    let get = |k: &str| {
        headers
            .get(k)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    (
        get("grpc-status").parse().unwrap(),
        get("grpc-message"),
        get("grpc-accept-encoding"),
    )
}

/// `data` in the framed snappy format (what the Collector's gRPC snappy
/// codec writes).
fn snappy_framed(data: &[u8]) -> Vec<u8> {
    let mut w = snap::write::FrameEncoder::new(Vec::new());
    std::io::Write::write_all(&mut w, data).unwrap();
    w.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reads_snappy_within_the_message_limit_and_advertises_it() {
    let mut tern = Tern::start(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        max_recv_msg_size_mib: 1\nexporters:\n  file:\n    path: {dir}/out.jsonl\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [file]\n",
    );
    let req = logs(1, 5);
    // The framed format, and the block format.
    let framed = snappy_framed(&req.encode_to_vec());
    let (code, message, accepted) = grpc_raw(tern.grpc, "snappy", grpc_frame(&framed, true)).await;
    assert_eq!(code, 0, "{message}");
    let encodings: Vec<&str> = accepted.split(',').map(str::trim).collect();
    for e in ["gzip", "zstd", "snappy"] {
        assert!(encodings.contains(&e), "{accepted}");
    }
    let block = snap::raw::Encoder::new()
        .compress_vec(&logs(2, 3).encode_to_vec())
        .unwrap();
    let (code, message, _) = grpc_raw(tern.grpc, "snappy", grpc_frame(&block, true)).await;
    assert_eq!(code, 0, "{message}");
    // A bomb: 8 MiB of zeros in a few hundred KiB, past the 1 MiB limit.
    let bomb = snappy_framed(&vec![0u8; 8 << 20]);
    assert!(bomb.len() < 1 << 20);
    let (code, message, _) = grpc_raw(tern.grpc, "snappy", grpc_frame(&bomb, true)).await;
    assert_eq!(code, 8, "RESOURCE_EXHAUSTED: {message}");
    // An encoding Tern does not read: UNIMPLEMENTED, naming what it reads.
    let (code, message, accepted) = grpc_raw(tern.grpc, "br", grpc_frame(b"whatever", true)).await;
    assert_eq!(code, 12, "UNIMPLEMENTED: {message}");
    assert!(accepted.contains("snappy"), "{accepted}");
    // Not snappy at all.
    let (code, message, _) = grpc_raw(
        tern.grpc,
        "snappy",
        grpc_frame(b"\xff\x06\x00\x00sNaPpYjunk", true),
    )
    .await;
    assert_eq!(code, 13, "INTERNAL: {message}");

    let m = tern
        .self_metrics_until("the refusals to be counted", |m| {
            let l = |reason: &str| format!(r#"receiver="otlp",transport="grpc",reason="{reason}""#);
            sample(m, "tern_receiver_requests_refused_total", &l("too_large")) == Some(1.0)
                && sample(m, "tern_receiver_requests_refused_total", &l("malformed")) == Some(2.0)
        })
        .await;
    assert_eq!(
        sample(
            &m,
            "otelcol_receiver_accepted_log_records_total",
            r#"receiver="otlp",transport="grpc""#
        ),
        Some(8.0),
        "{m}"
    );
    assert!(tern.stop().success());
    let text = std::fs::read_to_string(tern.path("out.jsonl")).unwrap();
    let got: Vec<ExportLogsServiceRequest> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got, vec![req, logs(2, 3)]);
}

/// One resource of `n` log records, with `fileexporter.path_segment`
/// set to `segment` when given.
fn resource_logs(segment: Option<&str>, tag: u32, n: u32) -> ResourceLogs {
    let mut r = logs(tag, n).resource_logs.remove(0);
    if let Some(s) = segment {
        let resource = r.resource.as_mut().unwrap();
        resource.attributes.push(kv("fileexporter.path_segment", s));
    }
    r
}

async fn post_logs(port: u16, resources: Vec<ResourceLogs>) {
    let body = ExportLogsServiceRequest {
        resource_logs: resources,
    }
    .encode_to_vec();
    let reply = http_request(
        port,
        "POST",
        "/v1/logs",
        &[("content-type", "application/x-protobuf")],
        body,
    )
    .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_group_by_writes_one_file_per_attribute_value() {
    let mut tern = Tern::start(
        "exporters:\n  file:\n    path: {dir}/groups/*/out.pb\n    format: proto\n    group_by:\n      enabled: true\n      max_open_files: 1\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [file]\n",
    );
    let (a1, b, none, a2) = (
        resource_logs(Some("tenant-a"), 1, 2),
        resource_logs(Some("../../b"), 2, 3),
        resource_logs(None, 3, 4),
        resource_logs(Some("tenant-a"), 4, 1),
    );
    post_logs(tern.http, vec![a1.clone(), b.clone(), none]).await;
    // tenant-a was closed to open b (one open file at most): it is
    // reopened and appended to.
    post_logs(tern.http, vec![a2.clone()]).await;
    let m = tern
        .self_metrics_until("the dropped resource and both posts to be counted", |m| {
            let count = |name: &str| sample(m, name, r#"exporter="file""#);
            count("otelcol_exporter_send_failed_log_records_total") == Some(4.0)
                && count("otelcol_exporter_sent_log_records_total") == Some(6.0)
        })
        .await;
    assert_eq!(
        sample(
            &m,
            "otelcol_exporter_sent_log_records_total",
            r#"exporter="file""#
        ),
        Some(6.0),
        "{m}"
    );
    assert!(tern.stop().success());
    assert!(
        tern.logs()
            .contains("dropped resources without a string resource attribute for group_by"),
        "{}",
        tern.logs()
    );
    let records = |value: &str| -> Vec<ExportLogsServiceRequest> {
        let data = read(&tern.path("groups").join(value).join("out.pb"));
        proto_records(&data)
            .into_iter()
            .map(|r| ExportLogsServiceRequest::decode(r).unwrap())
            .collect()
    };
    let one = |r: ResourceLogs| ExportLogsServiceRequest {
        resource_logs: vec![r],
    };
    assert_eq!(records("tenant-a"), vec![one(a1), one(a2)]);
    // `../../b` stays under the part of `path` before the `*`.
    assert_eq!(records("b"), vec![one(b)]);
    let dirs = std::fs::read_dir(tern.path("groups")).unwrap().count();
    assert_eq!(dirs, 2);
}

/// What Prometheus 3 sends by default (its `scrape_protocols`), and what
/// Prometheus 2 sends.
const PROMETHEUS_3_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
const PROMETHEUS_2_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A counter `http.server.requests` (unit `{request}`) with an
/// `http.route` attribute, from service `shop`.
fn utf8_counter() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
        metric, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "shop")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "http.server.requests".into(),
                    unit: "{request}".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![kv("http.route", "/cart")],
                            time_unix_nano: 1_700_000_000_000_000_000,
                            value: Some(number_data_point::Value::AsInt(7)),
                            ..Default::default()
                        }],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Scrapes `port` with `accept` until the counter shows; (Content-Type, body).
async fn scrape_with(port: u16, accept: &str) -> (String, String) {
    for _ in 0..300 {
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            Vec::new()
        } else {
            vec![("accept", accept)]
        };
        let reply = http_request(port, "GET", "/metrics", &headers, Vec::new()).await;
        let body = String::from_utf8(reply.body.to_vec()).unwrap();
        if body.contains("cart") {
            return (reply.header("content-type").unwrap().to_string(), body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the counter never showed on {port}");
}

async fn start_prometheus(strategy: &str) -> (Tern, u16) {
    let port = tern_e2e::free_port();
    let tern = Tern::start(&format!(
        "exporters:\n  prometheus:\n    endpoint: 127.0.0.1:{port}\n    translation_strategy: {strategy}\nservice:\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [prometheus]\n"
    ));
    let reply = http_request(
        tern.http,
        "POST",
        "/v1/metrics",
        &[("content-type", "application/x-protobuf")],
        utf8_counter(),
    )
    .await;
    assert_eq!(reply.status, 200);
    (tern, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_serves_utf8_names_to_scrapers_that_allow_them() {
    let (mut tern, port) = start_prometheus("NoUTF8EscapingWithSuffixes").await;

    // Prometheus 3: OpenMetrics with UTF-8 names, quoted.
    let (content_type, body) = scrape_with(port, PROMETHEUS_3_ACCEPT).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
    );
    assert!(
        body.contains("# TYPE \"http.server.requests\" counter\n"),
        "{body}"
    );
    assert!(
        body.contains(r#"{"http.server.requests_total","http.route"="/cart",job="shop"} 7"#),
        "{body}"
    );
    // The text format, asked for with allow-utf-8.
    let (content_type, body) =
        scrape_with(port, "text/plain;version=0.0.4;escaping=allow-utf-8").await;
    assert_eq!(
        content_type,
        "text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8"
    );
    assert!(
        body.contains(r#"{"http.server.requests_total","http.route"="/cart",job="shop"} 7"#),
        "{body}"
    );

    // Prometheus 2 and plain clients: escaped with underscores.
    for accept in [PROMETHEUS_2_ACCEPT, ""] {
        let (content_type, body) = scrape_with(port, accept).await;
        assert!(
            content_type.ends_with("; escaping=underscores"),
            "{content_type}"
        );
        assert!(
            body.contains(r#"http_server_requests_total{http_route="/cart",job="shop"} 7"#),
            "{accept}: {body}"
        );
        assert!(!body.contains("http.server"), "{body}");
    }
    // The other schemes of the Prometheus client libraries.
    let (_, body) = scrape_with(port, "text/plain;version=0.0.4;escaping=dots").await;
    assert!(
        body.contains(
            r#"http_dot_server_dot_requests__total{http_dot_route="/cart",job="shop"} 7"#
        ),
        "{body}"
    );
    let (_, body) = scrape_with(port, "text/plain;version=0.0.4;escaping=values").await;
    assert!(
        body.contains(
            r#"U__http_2e_server_2e_requests__total{U__http_2e_route="/cart",job="shop"} 7"#
        ),
        "{body}"
    );
    assert!(tern.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_no_translation_keeps_the_otel_name_without_suffixes() {
    let (mut tern, port) = start_prometheus("NoTranslation").await;
    let (_, body) = scrape_with(port, PROMETHEUS_3_ACCEPT).await;
    // A counter without `_total` is typed `unknown` in OpenMetrics, as the
    // Prometheus client libraries write it.
    assert!(
        body.contains("# TYPE \"http.server.requests\" unknown\n"),
        "{body}"
    );
    assert!(
        body.contains(r#"{"http.server.requests","http.route"="/cart",job="shop"} 7"#),
        "{body}"
    );
    let (_, body) = scrape_with(port, "").await;
    assert!(
        body.contains("# TYPE http_server_requests counter\n"),
        "{body}"
    );
    assert!(
        body.contains(r#"http_server_requests{http_route="/cart",job="shop"} 7"#),
        "{body}"
    );
    assert!(tern.stop().success());
}
