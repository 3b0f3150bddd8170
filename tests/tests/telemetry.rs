//! `service.telemetry` in the Collector's current form, end to end: the
//! self-metrics served where the pull reader says, log lines written to
//! every `output_paths` entry in the chosen encoding, and the removed
//! `metrics.address` still working with a warning.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use tern_e2e::{Tern, tern_bin};

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
