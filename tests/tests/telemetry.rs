//! `service.telemetry` in the Collector's current form, end to end: the
//! self-metrics served where the pull reader says and pushed over OTLP by
//! periodic readers, log lines written to every `output_paths` entry in the
//! chosen encoding with `initial_fields`, sampled as zap samples them, and
//! exported over OTLP by a log record processor; the removed
//! `metrics.address` still working with a warning. A second Tern with a
//! `file` exporter is the OTLP backend.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{proto_records, read, spans};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric, number_data_point};
use prost::Message;
use tern_e2e::{Tern, grpc_call, paths, sample, tern_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_serve_self_metrics_and_logs_go_to_every_output_path() {
    // The base config puts a pull reader on `{metrics}`.
    let mut tern = Tern::start(
        "exporters:\n  nop:\nservice:\n  telemetry:\n    logs:\n      level: INFO\n      encoding: json\n      output_paths: [stderr, \"{dir}/own.log\"]\n      sampling:\n        enabled: false\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n",
    );
    let metrics = tern.self_metrics().await;
    assert!(
        metrics.contains("otelcol_exporter_queue_capacity"),
        "{metrics}"
    );
    tern.stop();
    let file = std::fs::read_to_string(tern.path("own.log")).unwrap();
    let stderr = tern.logs();
    assert!(!file.is_empty());
    for line in file.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["level"].is_string(), "{line}");
        assert!(stderr.contains(line), "{line} not on stderr:\n{stderr}");
    }
}

#[test]
fn the_removed_metrics_address_still_works_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.yaml");
    std::fs::write(
        &path,
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\nexporters:\n  otlp:\n    endpoint: localhost:4317\nservice:\n  telemetry:\n    metrics:\n      address: 127.0.0.1:0\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp]\n",
    )
    .unwrap();
    let out = Command::new(tern_bin())
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!(
            "warning: {file}:7:3: exporters.otlp: `otlp` is a deprecated alias"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "warning: {file}:12:16: service.telemetry.metrics.address: deprecated"
        )),
        "{stderr}"
    );
}

/// A Tern whose `file` exporters write what it receives: metrics to
/// `metrics.pb`, logs to `logs.pb`.
fn backend() -> Tern {
    Tern::start(
        "exporters:\n  file/metrics:\n    path: \"{dir}/metrics.pb\"\n    format: proto\n  file/logs:\n    path: \"{dir}/logs.pb\"\n    format: proto\nservice:\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [file/metrics]\n    logs:\n      receivers: [otlp]\n      exporters: [file/logs]\n",
    )
}

fn string(value: &Option<AnyValue>) -> Option<&str> {
    match value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| string(&kv.value))
}

/// Every metrics request in the backend's file, oldest first.
fn metric_requests(backend: &Tern) -> Vec<ExportMetricsServiceRequest> {
    proto_records(&read(&backend.path("metrics.pb")))
        .into_iter()
        .map(|r| ExportMetricsServiceRequest::decode(r).unwrap())
        .collect()
}

/// Every log record body in the backend's file with its attributes and
/// the resource's `service.name`.
fn log_records(backend: &Tern) -> Vec<(String, Vec<KeyValue>, String, String)> {
    let mut out = Vec::new();
    for record in proto_records(&read(&backend.path("logs.pb"))) {
        let req = ExportLogsServiceRequest::decode(record).unwrap();
        for rl in &req.resource_logs {
            let service = rl
                .resource
                .as_ref()
                .and_then(|r| attribute(&r.attributes, "service.name"))
                .unwrap_or_default()
                .to_string();
            for sl in &rl.scope_logs {
                for r in &sl.log_records {
                    out.push((
                        string(&r.body).unwrap_or_default().to_string(),
                        r.attributes.clone(),
                        r.severity_text.clone(),
                        service.clone(),
                    ));
                }
            }
        }
    }
    out
}

/// Per pushed request of `service`: the temporality and value of the
/// accepted-spans sum of the `otlp` receiver on gRPC.
fn accepted_spans(requests: &[ExportMetricsServiceRequest], service: &str) -> Vec<(i32, i64)> {
    let mut out = Vec::new();
    for req in requests {
        for rm in &req.resource_metrics {
            let resource = rm.resource.as_ref().unwrap();
            if attribute(&resource.attributes, "service.name") != Some(service) {
                continue;
            }
            // Every default resource attribute is there, as on the pull reader.
            assert!(attribute(&resource.attributes, "service.instance.id").is_some());
            assert!(attribute(&resource.attributes, "service.version").is_some());
            for sm in &rm.scope_metrics {
                for m in sm
                    .metrics
                    .iter()
                    .filter(|m| m.name == "otelcol_receiver_accepted_spans")
                {
                    let Some(metric::Data::Sum(sum)) = &m.data else {
                        panic!("not a sum: {m:?}")
                    };
                    assert!(sum.is_monotonic);
                    for p in &sum.data_points {
                        if attribute(&p.attributes, "transport") == Some("grpc") {
                            let Some(number_data_point::Value::AsInt(v)) = p.value else {
                                panic!("{p:?}")
                            };
                            out.push((sum.aggregation_temporality, v));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Waits (at most 30 s) until `done` holds for what `get` reads.
async fn until<T: std::fmt::Debug>(
    what: &str,
    get: impl Fn() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = get();
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_readers_push_self_metrics_and_processors_export_own_logs() {
    let backend = backend();
    let config = format!(
        "exporters:\n  nop:\nservice:\n  telemetry:\n    resource:\n      service.name: tern-under-test\n    logs:\n      initial_fields:\n        deployment: e2e\n      processors:\n        - batch:\n            schedule_delay: 100\n            exporter:\n              otlp:\n                protocol: grpc\n                endpoint: 127.0.0.1:{grpc}\n                insecure: true\n        - simple:\n            exporter:\n              otlp:\n                protocol: http/json\n                endpoint: http://127.0.0.1:{http}\n    metrics:\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: 127.0.0.1\n                port: {{metrics}}\n        - periodic:\n            interval: 200\n            exporter:\n              otlp:\n                protocol: http/protobuf\n                endpoint: http://127.0.0.1:{http}\n                compression: gzip\n                headers:\n                  - name: x-tenant\n                    value: acme\n        - periodic:\n            interval: 3600000\n            exporter:\n              otlp:\n                protocol: grpc\n                endpoint: http://127.0.0.1:{grpc}\n                temporality_preference: delta\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n",
        grpc = backend.grpc,
        http = backend.http,
    );
    let mut tern = Tern::start(&config);
    let cumulative = AggregationTemporality::Cumulative as i32;
    let delta = AggregationTemporality::Delta as i32;

    // A push before any traffic: the count is there, at zero.
    until(
        "a first push",
        || accepted_spans(&metric_requests(&backend), "tern-under-test"),
        |v| v.contains(&(cumulative, 0)),
    )
    .await;
    for tag in 0..3 {
        let r = grpc_call(
            tern.grpc,
            paths::TRACES,
            spans(tag, 4).encode_to_vec(),
            None,
        )
        .await;
        assert_eq!(r.code, 0);
    }
    // Later pushes carry the new total; totals never go down.
    let pushed = until(
        "a push after the traffic",
        || accepted_spans(&metric_requests(&backend), "tern-under-test"),
        |v| v.contains(&(cumulative, 12)),
    )
    .await;
    let totals: Vec<i64> = pushed
        .iter()
        .filter(|(t, _)| *t == cumulative)
        .map(|(_, v)| *v)
        .collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{totals:?}");
    // The delta reader (one push an hour) has not pushed yet.
    assert!(!pushed.iter().any(|(t, _)| *t == delta), "{pushed:?}");
    // A push is counted once its answer is read, which may be after the
    // backend wrote what it got.
    tern.self_metrics_until("two pushes counted", |m| {
        sample(m, "tern_telemetry_metric_pushes_total", "reader=\"0\"").unwrap_or(0.0) >= 2.0
    })
    .await;

    // Tern's own log lines arrive as OTLP logs with severity, fields and resource.
    let records = until(
        "Tern's log lines at the backend",
        || log_records(&backend),
        |r| r.iter().any(|(body, ..)| body == "Tern is running"),
    )
    .await;
    let (_, attributes, severity, service) = records
        .iter()
        .find(|(body, ..)| body == "OTLP/gRPC listening")
        .unwrap_or_else(|| panic!("{records:#?}"));
    assert_eq!(severity, "info");
    assert_eq!(service, "tern-under-test");
    assert_eq!(attribute(attributes, "receiver"), Some("otlp"));
    // initial_fields are on the written lines only, as in the Collector.
    assert!(attribute(attributes, "deployment").is_none());
    let written = tern.logs();
    let line = written
        .lines()
        .find(|l| l.contains("Tern is running"))
        .unwrap();
    // Then the resource, as the Collector adds it to its lines.
    assert!(
        line.contains(" deployment=\"e2e\" resource={\"service.instance.id\":"),
        "{line}"
    );
    assert!(
        line.contains("\"service.name\":\"tern-under-test\""),
        "{line}"
    );

    // At shutdown: a last push from every reader (the delta one included,
    // with everything since start) and the last log lines.
    assert!(tern.stop().success());
    let pushed = accepted_spans(&metric_requests(&backend), "tern-under-test");
    assert!(pushed.contains(&(delta, 12)), "{pushed:?}");
    // Both processors (batch over gRPC, simple over HTTP/JSON) sent it.
    let records = log_records(&backend);
    let last = records
        .iter()
        .filter(|(body, ..)| body == "shutdown complete")
        .count();
    assert_eq!(last, 2, "{records:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_writes_the_first_lines_of_a_message_then_every_nth_and_counts_the_rest() {
    // The debug exporter logs one `traces` line per batch.
    let mut tern = Tern::start(
        "exporters:\n  debug:\n    verbosity: basic\nservice:\n  telemetry:\n    logs:\n      encoding: json\n      sampling:\n        tick: 1h\n        initial: 2\n        thereafter: 3\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n",
    );
    for tag in 0..10 {
        let r = grpc_call(
            tern.grpc,
            paths::TRACES,
            spans(tag, 1).encode_to_vec(),
            None,
        )
        .await;
        assert_eq!(r.code, 0);
    }
    // Lines 1, 2, 5 and 8 of the ten are written; six are counted.
    let metrics = tern
        .self_metrics_until("six lines sampled out", |m| {
            sample(m, "tern_telemetry_log_lines_sampled_out_total", "") == Some(6.0)
        })
        .await;
    assert!(metrics.contains("tern_telemetry_log_lines_sampled_out_total 6"));
    assert!(tern.stop().success());
    let written = tern
        .logs()
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["fields"]["message"] == "traces"
        })
        .count();
    assert_eq!(written, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_the_initial_fields_and_the_resource_unless_disabled() {
    let config = |disable: bool| {
        format!(
            "exporters:\n  nop:\nservice:\n  telemetry:\n    resource:\n      service.name: edge\n    logs:\n      encoding: json\n      disable_zap_resource: {disable}\n      initial_fields:\n        deployment: e2e\n        shard: 7\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n"
        )
    };
    for disable in [false, true] {
        let mut tern = Tern::start(&config(disable));
        assert!(tern.stop().success());
        let logs = tern.logs();
        assert!(!logs.is_empty());
        for line in logs.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["deployment"], "e2e", "{line}");
            assert_eq!(v["shard"], 7, "{line}");
            assert!(v["fields"]["message"].is_string(), "{line}");
            if disable {
                assert!(v.get("resource").is_none(), "{line}");
            } else {
                assert_eq!(v["resource"]["service.name"], "edge", "{line}");
                assert!(v["resource"]["service.instance.id"].is_string(), "{line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_push_is_counted_and_logged_and_tern_keeps_serving() {
    // Nothing listens on the push endpoint.
    let port = tern_e2e::free_port();
    let mut tern = Tern::start(&format!(
        "exporters:\n  nop:\nservice:\n  telemetry:\n    metrics:\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: 127.0.0.1\n                port: {{metrics}}\n        - periodic:\n            interval: 100\n            timeout: 300\n            exporter:\n              otlp:\n                protocol: grpc\n                endpoint: 127.0.0.1:{port}\n                insecure: true\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n"
    ));
    tern.self_metrics_until("a failed push", |m| {
        sample(
            m,
            "tern_telemetry_metric_push_failures_total",
            "reader=\"0\"",
        )
        .is_some_and(|n| n >= 1.0)
    })
    .await;
    let r = grpc_call(tern.grpc, paths::TRACES, spans(1, 2).encode_to_vec(), None).await;
    assert_eq!(r.code, 0);
    assert!(tern.stop().success());
    assert!(
        tern.logs().contains("pushing the self-metrics failed"),
        "{}",
        tern.logs()
    );
}
