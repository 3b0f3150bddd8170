//! The command line: `validate` (exit codes, one line per problem with file,
//! line and key), `components`, `--version`, several `--config` files, and a
//! run with the embedded default configuration.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use tern_e2e::{HttpConn, Tern, tern_bin};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn validate_accepts_a_good_config_and_lists_every_problem_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        &dir,
        "good.yaml",
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  nop:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n",
    );
    let out = Command::new(tern_bin())
        .args(["validate", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));

    let bad = write(
        &dir,
        "bad.yaml",
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: localhost:4317\n      http:\n        endpoint: localhost:4317\n  jaeger:\nexporters:\n  nop:\n    verbose: true\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop, otlp]\n",
    );
    let out = Command::new(tern_bin())
        .args(["validate", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = bad.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    for (line, key) in [
        ("7", "receivers.otlp.protocols.http.endpoint"),
        ("8", "receivers.jaeger"),
        ("11", "exporters.nop.verbose"),
        ("16", "service.pipelines.traces.exporters"),
    ] {
        let prefix = format!("{file}:{line}:");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&prefix) && l.contains(key)),
            "no line for {key} at {prefix} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("4 problems found"), "{stderr}");

    let missing = Command::new(tern_bin())
        .args(["validate", "--config", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("cannot read config file /nonexistent.yaml")
    );

    // Running with a bad config fails the same way, before binding anything.
    let out = Command::new(tern_bin())
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("receivers.jaeger"));
}

#[test]
fn validate_reports_every_pipeline_graph_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir,
        "graph.yaml",
        "receivers:
  otlp:
    protocols:
      grpc:
exporters:
  nop:
connectors:
  forward:
  forward/one_sided:
  forward/loop:
  forward/metrics:
  spanmetrics:
service:
  pipelines:
    traces:
      receivers: [otlp, forward/loop]
      exporters: [nop, forward/one_sided, forward/loop, forward/metrics]
    metrics:
      receivers: [forward/metrics, forward/missing]
      exporters: [nop]
",
    );
    let out = Command::new(tern_bin())
        .args(["validate", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = bad.display().to_string();
    for (at, message) in [
        (
            "12:3: connectors.spanmetrics",
            "unknown connector type `spanmetrics`",
        ),
        (
            "17:24: service.pipelines.traces.exporters",
            "connector `forward/one_sided` is used as exporter in pipeline `traces` but not used in any supported receiver pipeline",
        ),
        (
            "17:43: service.pipelines.traces.exporters",
            "cycle in the pipeline graph: pipeline `traces` -> connector `forward/loop` -> pipeline `traces`",
        ),
        (
            "17:57: service.pipelines.traces.exporters",
            "connector `forward/metrics` is used as exporter in pipeline `traces` but not used in any supported receiver pipeline",
        ),
        (
            "19:19: service.pipelines.metrics.receivers",
            "connector `forward/metrics` is used as receiver in pipeline `metrics` but not used in any supported exporter pipeline",
        ),
        (
            "19:36: service.pipelines.metrics.receivers",
            "receiver `forward/missing` is not defined in `receivers` or `connectors`",
        ),
    ] {
        let prefix = format!("{file}:{at}: ");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(message)),
            "no `{message}` at {prefix} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("6 problems found"), "{stderr}");
}

#[test]
fn validate_expands_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        &dir,
        "env.yaml",
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: ${env:TERN_TEST_ENDPOINT:-localhost:4317}\nexporters:\n  nop:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n",
    );
    let ok = Command::new(tern_bin())
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(ok.status.success());
    let bad = Command::new(tern_bin())
        .args(["validate", "--config"])
        .arg(&cfg)
        .env("TERN_TEST_ENDPOINT", "no-port-here")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains(
            ":5:19: receivers.otlp.protocols.grpc.endpoint: invalid endpoint `no-port-here`"
        ),
        "{stderr}"
    );
}

/// A required value taken from an environment variable that is unset or
/// empty: `tern validate` and start-up point at the line and column of the
/// value (not of its parent key) and name the variable.
#[test]
fn a_required_value_from_an_unset_or_empty_variable_names_it_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        &dir,
        "env.yaml",
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  otlp_grpc:\n    endpoint: ${env:TERN_TEST_UNSET_ENDPOINT}\n  otlp_http:\n    endpoint: ${env:TERN_TEST_EMPTY_ENDPOINT}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp_grpc, otlp_http]\n",
    );
    for args in [&["validate", "--config"][..], &["--config"][..]] {
        let out = Command::new(tern_bin())
            .args(args)
            .arg(&cfg)
            .env_remove("TERN_TEST_UNSET_ENDPOINT")
            .env("TERN_TEST_EMPTY_ENDPOINT", "")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for expected in [
            "env.yaml:7:15: exporters.otlp_grpc.endpoint: is required (`${env:TERN_TEST_UNSET_ENDPOINT}` is unset)",
            "env.yaml:9:15: exporters.otlp_http.endpoint: is required",
        ] {
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
        }
        assert!(
            stderr.contains("(`${env:TERN_TEST_EMPTY_ENDPOINT}` is empty)"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn components_and_version() {
    let out = Command::new(tern_bin()).arg("components").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for (kind, ty) in [
        ("receiver", "otlp"),
        ("processor", "batch"),
        ("exporter", "debug"),
        ("exporter", "file"),
        ("exporter", "load_balancing"),
        ("exporter", "loadbalancing"),
        ("exporter", "nop"),
        ("exporter", "otlp_grpc"),
        ("exporter", "otlp"),
        ("exporter", "otlp_http"),
        ("exporter", "otlphttp"),
        ("exporter", "prometheus_remote_write"),
        ("exporter", "prometheusremotewrite"),
        ("extension", "health_check"),
        ("connector", "forward"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(kind) && l.split_whitespace().nth(1) == Some(ty)),
            "{kind} {ty} missing:\n{text}"
        );
    }
    assert!(text.contains("traces,metrics,logs"));
    assert!(text.contains("deprecated alias of `otlp_grpc`"), "{text}");
    let out = Command::new(tern_bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tern "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_config_files_override_earlier_ones_at_run_time() {
    let first = "exporters:\n  file:\n    path: {dir}/first.jsonl\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [file]\n";
    let second = "exporters:\n  file:\n    path: {dir}/second.jsonl\n";
    let mut tern = Tern::start_layered(&[first, second]);
    let r = HttpConn::connect(tern.http)
        .await
        .post_proto("/v1/logs", common::logs(1, 2).encode_to_vec())
        .await;
    assert_eq!(r.status, 200);
    assert!(tern.stop().success());
    assert!(!tern.path("first.jsonl").exists());
    let text = std::fs::read_to_string(tern.path("second.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("log 1/1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_config_runs_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tern.log");
    let mut child = Command::new(tern_bin())
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect("127.0.0.1:13133") {
            use std::io::{Read, Write};
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "default config never became healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = HttpConn::connect(4318)
        .await
        .post_proto("/v1/traces", common::spans(1, 3).encode_to_vec())
        .await;
    assert_eq!(r.status, 200);
    let g = tern_e2e::grpc_call(
        4317,
        tern_e2e::paths::LOGS,
        common::logs(1, 2).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(g.code, 0);
    let metrics = tern_e2e::http_request(8888, "GET", "/metrics", &[], Vec::new()).await;
    assert_eq!(metrics.status, 200);
    // The default metrics pipeline also feeds a Prometheus scrape endpoint.
    let g = tern_e2e::grpc_call(
        4317,
        tern_e2e::paths::METRICS,
        common::gauges(1, 2).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(g.code, 0);
    let text = tern_e2e::scrape_until(8889, "the gauge on the scrape endpoint", |t| {
        t.contains("queue_depth_1{")
    })
    .await;
    assert!(text.contains("# TYPE queue_depth_1 gauge"), "{text}");
    // The debug exporter logs each batch once the batch timeout (200ms) passes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("signal=traces items=3"), "{text}");
    assert!(text.contains("signal=logs items=2"), "{text}");
}

#[test]
fn a_port_in_use_is_one_clear_error_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        &dir,
        "busy.yaml",
        &format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{port}\nexporters:\n  nop:\nservice:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n"
        ),
    );
    let out = Command::new(tern_bin())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("tern: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(line.matches("cannot listen on").count(), 1, "{line}");
    assert!(
        line.contains(&format!(
            "receivers.otlp.protocols.grpc.endpoint: cannot listen on 127.0.0.1:{port}"
        )),
        "{line}"
    );
    drop(taken);
}
