//! Tern -> Tern forwarding with the `otlp` and `otlphttp` exporters, and
//! their behaviour against backends that are down, throttling, refusing or
//! slow: every accepted item arrives exactly once (ids compared), permanent
//! errors are not retried, delays asked for are honoured, and the
//! exporter self-metrics move as they should.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;
use tern_e2e::{Backend, HttpConn, Step, Tern, free_port, grpc_call, paths, sample, wait_until};

/// (name, exporter type, settings) of each route from upstream to downstream.
const ROUTES: &[(&str, &str, &str)] = &[
    (
        "grpcgzip",
        "otlp",
        "compression: gzip\n    tls:\n      insecure: true",
    ),
    (
        "grpczstd",
        "otlp",
        "compression: zstd\n    tls:\n      insecure: true",
    ),
    ("httpgzip", "otlphttp", "compression: gzip"),
    (
        "httpjson",
        "otlphttp",
        "compression: zstd\n    encoding: json",
    ),
];

/// Downstream: one receiver per route, each signal to its own file.
fn downstream_config(ports: &BTreeMap<&str, u16>) -> String {
    let mut receivers = String::new();
    let mut exporters = String::new();
    let mut pipelines = String::new();
    for (name, kind, _) in ROUTES {
        let proto = if *kind == "otlp" { "grpc" } else { "http" };
        receivers += &format!(
            "  otlp/{name}:\n    protocols:\n      {proto}:\n        endpoint: 127.0.0.1:{}\n",
            ports[name]
        );
        for signal in ["traces", "metrics", "logs"] {
            exporters += &format!(
                "  file/{name}-{signal}:\n    path: {{dir}}/{name}-{signal}.pb\n    format: proto\n"
            );
            pipelines += &format!(
                "    {signal}/{name}:\n      receivers: [otlp/{name}]\n      exporters: [file/{name}-{signal}]\n"
            );
        }
    }
    format!("receivers:\n{receivers}exporters:\n{exporters}service:\n  pipelines:\n{pipelines}")
}

/// Upstream: the default receiver, one exporter per route for every signal.
fn upstream_config(ports: &BTreeMap<&str, u16>) -> String {
    let mut exporters = String::new();
    let mut names = Vec::new();
    for (name, kind, settings) in ROUTES {
        let endpoint = if *kind == "otlp" {
            format!("127.0.0.1:{}", ports[name])
        } else {
            format!("http://127.0.0.1:{}", ports[name])
        };
        exporters += &format!("  {kind}/{name}:\n    endpoint: {endpoint}\n    {settings}\n");
        names.push(format!("{kind}/{name}"));
    }
    let list = names.join(", ");
    format!(
        "processors:\n  batch:\n    timeout: 50ms\nexporters:\n{exporters}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [{list}]\n    metrics:\n      receivers: [otlp]\n      exporters: [{list}]\n    logs:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [{list}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tern_to_tern_over_grpc_and_http_with_gzip_and_zstd_delivers_every_item_once() {
    let ports: BTreeMap<&str, u16> = ROUTES.iter().map(|(n, _, _)| (*n, free_port())).collect();
    let mut down = Tern::start(&downstream_config(&ports));
    let mut up = Tern::start(&upstream_config(&ports));

    let mut traces = Vec::new();
    let mut http = HttpConn::connect(up.http).await;
    for tag in 0..20u32 {
        let req = spans(tag, 25);
        if tag % 2 == 0 {
            let r = grpc_call(up.grpc, paths::TRACES, req.encode_to_vec(), None).await;
            assert_eq!(r.code, 0);
        } else {
            let r = http.post_proto("/v1/traces", req.encode_to_vec()).await;
            assert_eq!(r.status, 200);
        }
        traces.push(req);
    }
    let r = grpc_call(up.grpc, paths::METRICS, gauges(1, 9).encode_to_vec(), None).await;
    assert_eq!(r.code, 0);
    let r = grpc_call(up.grpc, paths::LOGS, logs(1, 11).encode_to_vec(), None).await;
    assert_eq!(r.code, 0);

    // Stopping the upstream flushes its batches and drains its queues.
    assert!(up.stop().success(), "{}", up.logs());
    let m_before_stop = down.self_metrics().await;
    assert!(down.stop().success());

    let want = sorted_span_ids(&traces);
    assert_eq!(want.len(), 500);
    for (name, _, _) in ROUTES {
        let got = span_ids_in(&read(&down.path(&format!("{name}-traces.pb"))));
        assert_eq!(got, want, "route {name}");
        let points: usize = proto_records(&read(&down.path(&format!("{name}-metrics.pb"))))
            .into_iter()
            .map(|r| ExportMetricsServiceRequest::decode(r).unwrap())
            .flat_map(|r| r.resource_metrics)
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics)
            .map(|m| match m.data {
                Some(metric::Data::Gauge(g)) => g.data_points.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(points, 9, "route {name}");
        let bodies: Vec<String> = proto_records(&read(&down.path(&format!("{name}-logs.pb"))))
            .into_iter()
            .map(|r| ExportLogsServiceRequest::decode(r).unwrap())
            .flat_map(|r| r.resource_logs)
            .flat_map(|r| r.scope_logs)
            .flat_map(|s| s.log_records)
            .map(|l| format!("{:?}", l.body))
            .collect();
        assert_eq!(bodies.len(), 11, "route {name}");
        let receiver = format!(
            r#"receiver="otlp/{name}",transport="{}""#,
            if name.starts_with("grpc") {
                "grpc"
            } else {
                "http"
            }
        );
        assert_eq!(
            sample(
                &m_before_stop,
                "otelcol_receiver_accepted_spans_total",
                &receiver
            ),
            Some(500.0),
            "{m_before_stop}"
        );
    }
    // The upstream logged no failure.
    assert!(!up.logs().contains("export failed"), "{}", up.logs());
}

const SINGLE: &str = r#"
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:BACKEND
    compression: none
    retry_on_failure:
      initial_interval: 10ms
      max_interval: 50ms
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
"#;

async fn send_spans(port: u16, tag: u32, n: u32) -> u16 {
    HttpConn::connect(port)
        .await
        .post_proto("/v1/traces", spans(tag, n).encode_to_vec())
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_after_the_delay_the_backend_asks_for() {
    let throttle = Step {
        headers: vec![("retry-after", "1".to_string())],
        ..Step::status(503)
    };
    let backend = Backend::start(vec![throttle], Step::status(200)).await;
    let mut tern = Tern::start(&SINGLE.replace("BACKEND", &backend.port.to_string()));
    // A request with a field prost does not know (number 100): a decode and
    // re-encode would drop it, so it arriving intact shows the bytes were
    // forwarded as they came.
    let mut raw = spans(1, 3).encode_to_vec();
    raw.extend_from_slice(&[0xa0, 0x06, 0x01]);
    let r = HttpConn::connect(tern.http)
        .await
        .post_proto("/v1/traces", raw.clone())
        .await;
    assert_eq!(r.status, 200);
    wait_until("the retry", || backend.received().len() >= 2).await;
    let got = backend.received();
    // The retry came no sooner than the Retry-After (1 s), although the
    // backoff alone would have retried after ~10 ms.
    assert!(
        got[1].at - got[0].at >= Duration::from_secs(1),
        "{:?}",
        got[1].at - got[0].at
    );
    assert_eq!(got[0].body, got[1].body, "the same request is retried");
    assert_eq!(&got[0].body[..], &raw[..], "forwarded byte for byte");
    assert_eq!(got[0].path, "/v1/traces");
    assert_eq!(got[0].headers["content-type"], "application/x-protobuf");
    // The backend notes a request before it answers; the exporter counts
    // the spans sent once it has read the answer.
    let e = r#"exporter="otlphttp""#;
    let m = tern
        .self_metrics_until("the retried spans to be counted as sent", |m| {
            sample(m, "otelcol_exporter_sent_spans_total", e) == Some(3.0)
        })
        .await;
    assert_eq!(
        sample(&m, "otelcol_exporter_send_failed_spans_total", e),
        Some(0.0)
    );
    assert!(tern.stop().success());
    let req = ExportTraceServiceRequest::decode(got[1].body.clone()).unwrap();
    assert_eq!(sorted_span_ids(&[req]), sorted_span_ids(&[spans(1, 3)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_is_not_retried_and_is_counted_and_logged() {
    let refusal = Step {
        headers: vec![("content-type", "application/json".to_string())],
        body: br#"{"code":3,"message":"span too old"}"#.to_vec(),
        ..Step::status(400)
    };
    let backend = Backend::start(vec![refusal], Step::status(200)).await;
    let mut tern = Tern::start(&SINGLE.replace("BACKEND", &backend.port.to_string()));
    assert_eq!(send_spans(tern.http, 2, 4).await, 200);
    tern.self_metrics_until("the failure to be counted", |m| {
        let e = r#"exporter="otlphttp""#;
        sample(m, "otelcol_exporter_send_failed_spans_total", e) == Some(4.0)
    })
    .await;
    // Give a wrongly scheduled retry the time to show up: none may come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.received().len(), 1);
    assert!(tern.stop().success());
    let logs = tern.logs();
    assert!(
        logs.contains("permanent error, not retried: HTTP 400: span too old"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_is_logged_and_its_rejected_items_counted() {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    let partial = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 2,
            error_message: "2 spans had no name".into(),
        }),
    };
    let answer = Step {
        headers: vec![("content-type", "application/x-protobuf".to_string())],
        body: partial.encode_to_vec(),
        ..Step::status(200)
    };
    let backend = Backend::start(vec![answer], Step::status(200)).await;
    let mut tern = Tern::start(&SINGLE.replace("BACKEND", &backend.port.to_string()));
    assert_eq!(send_spans(tern.http, 3, 5).await, 200);
    let e = r#"exporter="otlphttp""#;
    tern.self_metrics_until(
        "the accepted spans sent and the rejected ones counted",
        |m| {
            sample(m, "otelcol_exporter_sent_spans_total", e) == Some(3.0)
                && sample(m, "otelcol_exporter_send_failed_spans_total", e) == Some(2.0)
        },
    )
    .await;
    assert!(tern.stop().success());
    assert_eq!(
        backend.received().len(),
        1,
        "partial success is not retried"
    );
    assert!(
        tern.logs().contains("2 spans had no name"),
        "{}",
        tern.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_down_at_start_gets_everything_once_it_is_up() {
    let backend_grpc = free_port();
    let upstream = format!(
        "exporters:\n  otlp:\n    endpoint: 127.0.0.1:{backend_grpc}\n    tls:\n      insecure: true\n    retry_on_failure:\n      initial_interval: 50ms\n      max_interval: 200ms\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [otlp]\n"
    );
    let mut up = Tern::start(&upstream);
    let mut sent = Vec::new();
    for tag in 0..10u32 {
        let r = grpc_call(up.grpc, paths::LOGS, logs(tag, 5).encode_to_vec(), None).await;
        assert_eq!(r.code, 0, "accepted while the backend is down");
        sent.push(format!("log {tag}"));
    }
    let m = up.self_metrics().await;
    assert_eq!(
        sample(
            &m,
            "otelcol_exporter_sent_log_records_total",
            r#"exporter="otlp""#
        ),
        Some(0.0)
    );
    // The backend comes up (a Tern on the port the upstream points at).
    let downstream = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{backend_grpc}\nexporters:\n  file:\n    path: {{dir}}/logs.pb\n    format: proto\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [file]\n"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut down = Tern::start(&downstream);
    up.self_metrics_until("every record to be delivered", |m| {
        let e = r#"exporter="otlp""#;
        sample(m, "otelcol_exporter_sent_log_records_total", e) == Some(50.0)
    })
    .await;
    assert!(up.stop().success());
    assert!(down.stop().success());
    let mut bodies: Vec<String> = proto_records(&read(&down.path("logs.pb")))
        .into_iter()
        .map(|r| ExportLogsServiceRequest::decode(r).unwrap())
        .flat_map(|r| r.resource_logs)
        .flat_map(|r| r.scope_logs)
        .flat_map(|s| s.log_records)
        .map(|l| format!("{:?}", l.body))
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 50, "every record once");
    assert!(up.logs().contains("will retry"), "retries were logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_fills_the_queue_and_upstream_gets_retryable_refusals() {
    let slow = Step {
        delay: Duration::from_millis(200),
        ..Step::status(200)
    };
    let backend = Backend::start(Vec::new(), slow).await;
    let config = format!(
        "exporters:\n  otlphttp:\n    endpoint: http://127.0.0.1:{}\n    compression: none\n    sending_queue:\n      num_consumers: 1\n      queue_size: 5\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlphttp]\n",
        backend.port
    );
    let mut tern = Tern::start(&config);
    let mut http = HttpConn::connect(tern.http).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for tag in 0..200u32 {
        let req = spans(tag, 2);
        let r = http.post_proto("/v1/traces", req.encode_to_vec()).await;
        match r.status {
            200 => accepted.push(req),
            503 => {
                assert_eq!(r.header("retry-after"), Some("1"));
                refused += 1;
            }
            s => panic!("status {s}"),
        }
    }
    assert!(refused > 0, "the queue never filled");
    let m = tern.self_metrics().await;
    let queue = sample(&m, "otelcol_exporter_queue_size", r#"exporter="otlphttp""#).unwrap();
    assert!(queue <= 5.0, "queue bounded: {queue}");
    assert_eq!(
        sample(
            &m,
            "otelcol_exporter_queue_capacity",
            r#"exporter="otlphttp""#
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &m,
            "otelcol_receiver_refused_spans_total",
            r#"receiver="otlp",transport="http""#
        ),
        Some(f64::from(refused) * 2.0)
    );
    assert!(tern.stop().success(), "{}", tern.logs());
    let got: Vec<ExportTraceServiceRequest> = backend
        .received()
        .iter()
        .map(|r| ExportTraceServiceRequest::decode(r.body.clone()).unwrap())
        .collect();
    assert_eq!(
        sorted_span_ids(&got),
        sorted_span_ids(&accepted),
        "nothing accepted is lost"
    );
}

/// About 1 MiB of spans: 64 spans with a 16 KiB attribute each.
fn big_spans(tag: u32) -> Vec<u8> {
    let mut req = spans(tag, 64);
    for span in req.resource_spans[0].scope_spans[0].spans.iter_mut() {
        span.attributes
            .push(kv("gen_ai.prompt", &"p".repeat(16 * 1024)));
    }
    req.encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_3x_overload_with_a_stalled_backend() {
    // The backend takes requests and never answers.
    let stalled = Step {
        delay: Duration::from_secs(3600),
        ..Step::status(200)
    };
    let backend = Backend::start(Vec::new(), stalled).await;
    let limit_mib = 48;
    let config = format!(
        "processors:\n  memory_limiter:\n    check_interval: 100ms\n    limit_mib: {limit_mib}\n    spike_limit_mib: 8\n  batch:\nexporters:\n  otlphttp:\n    endpoint: http://127.0.0.1:{}\n    compression: none\n    timeout: 1h\n    retry_on_failure:\n      max_elapsed_time: 0\n    sending_queue:\n      num_consumers: 2\n      sizer: bytes\n      queue_size: 4294967296\n      max_size_mib: 4096\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [memory_limiter, batch]\n      exporters: [otlphttp]\n",
        backend.port
    );
    let mut tern = Tern::start(&config);
    let baseline = tern_e2e::peak_rss(tern.pid());
    let mut http = HttpConn::connect(tern.http).await;
    let (mut accepted, mut refused) = (0u64, 0u64);
    let mut sent_bytes = 0u64;
    let mut tag = 0;
    // Three times the limit.
    while sent_bytes < 3 * limit_mib * 1024 * 1024 {
        let body = big_spans(tag);
        sent_bytes += body.len() as u64;
        tag += 1;
        let r = http.post_proto("/v1/traces", body).await;
        match r.status {
            200 => accepted += 1,
            503 => {
                assert_eq!(r.header("retry-after"), Some("1"));
                refused += 1;
            }
            s => panic!("status {s}"),
        }
    }
    let peak = tern_e2e::peak_rss(tern.pid());
    let m = tern.self_metrics().await;
    let used = sample(
        &m,
        "tern_memory_limiter_used_bytes",
        r#"processor="memory_limiter""#,
    )
    .unwrap();
    assert!(
        used <= 40.0 * 1024.0 * 1024.0,
        "held {used} bytes over the 40 MiB soft limit"
    );
    assert!(
        refused > 0 && accepted > 0,
        "accepted {accepted}, refused {refused}"
    );
    assert_eq!(
        sample(
            &m,
            "tern_receiver_requests_refused_total",
            r#"receiver="otlp",transport="http",reason="memory_limit""#
        ),
        Some(refused as f64)
    );
    assert_eq!(
        sample(
            &m,
            "otelcol_receiver_refused_spans_total",
            r#"receiver="otlp",transport="http""#
        ),
        Some(refused as f64 * 64.0)
    );
    // Documented bound: the limit plus a fixed overhead of 64 MiB over the
    // idle process (docs/configuration.md, memory_limiter).
    let bound = baseline + (limit_mib + 64) * 1024 * 1024;
    assert!(
        peak < bound,
        "peak RSS {} MiB over {} MiB (baseline {} MiB)",
        peak >> 20,
        bound >> 20,
        baseline >> 20
    );
    eprintln!(
        "memory_limiter: baseline {} MiB, peak {} MiB, limit {limit_mib} MiB, accepted {accepted}, refused {refused}",
        baseline >> 20,
        peak >> 20
    );
    // The backend never answers: shutdown gives up at its deadline and
    // counts what it could not deliver.
    assert!(tern.stop().success());
    let logs = tern.logs();
    assert!(
        logs.contains("shutdown deadline"),
        "undelivered items are reported:\n{logs}"
    );
    drop(backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exporter_with_only_its_traces_endpoint_starts_and_delivers() {
    // Valid in the Collector: no `endpoint`, only the URL of the one signal
    // the exporter is used for. `tern validate` passes it, so it must start.
    let backend = Backend::start(Vec::new(), Step::status(200)).await;
    let config = format!(
        "exporters:\n  otlp_http:\n    traces_endpoint: http://127.0.0.1:{}/custom/traces\n    \
         compression: none\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      \
         exporters: [otlp_http]\n",
        backend.port
    );
    let mut tern = Tern::start(&config);
    assert_eq!(send_spans(tern.http, 3, 5).await, 200);
    wait_until("the backend to get the spans", || {
        !backend.received().is_empty()
    })
    .await;
    assert_eq!(backend.received()[0].path, "/custom/traces");
    assert!(tern.stop().success());
}
