//! Loading and validating whole configurations: every problem reported once,
//! with file, line and key; env expansion; merging several files.

#![allow(clippy::unwrap_used)]

use tern_config::{ComponentId, ConfigErrors, FileFormat, Signal, load_sources};

fn env(name: &str) -> Option<String> {
    match name {
        "OTLP_PORT" => Some("5317".into()),
        "BATCH" => Some("100".into()),
        "EXPORTERS" => Some("[debug, nop]".into()),
        "HEADERS" => Some("{x-team: a, x-env: \"prod\"}".into()),
        "HOST_PORT" => Some("example.com:4317".into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<tern_config::Config, ConfigErrors> {
    load_sources(&[("tern.yaml".into(), text.into())], &env)
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

const GOOD: &str = "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${env:OTLP_PORT}
      http:
processors:
  batch:
    send_batch_size: ${BATCH}
    timeout: 1s
  batch/big:
    send_batch_max_size: 10000
exporters:
  file/out:
    path: /tmp/out.jsonl
    format: proto
  debug:
    verbosity: detailed
  nop:
extensions:
  health_check:
service:
  extensions: [health_check]
  telemetry:
    logs: {level: debug}
    metrics: {address: 127.0.0.1:0}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file/out, debug]
    metrics/2:
      receivers: [otlp]
      exporters: [nop]
";

#[test]
fn a_full_config_loads_with_types_and_defaults() {
    let c = load(GOOD).unwrap();
    let otlp = c.receivers[&ComponentId::new("otlp")]
        .settings::<tern_config::OtlpReceiverConfig>()
        .unwrap();
    let grpc = otlp.protocols.grpc.as_ref().unwrap();
    assert_eq!(grpc.endpoint.to_string(), "127.0.0.1:5317");
    assert_eq!(grpc.max_recv_msg_size_mib, 4);
    let http = otlp.protocols.http.as_ref().unwrap();
    assert_eq!(http.endpoint.to_string(), "localhost:4318");
    assert_eq!(http.max_request_body_size, 20 * 1024 * 1024);
    let Some(b) = c.processors[&ComponentId::new("batch")].settings::<tern_config::BatchConfig>()
    else {
        panic!("batch expected")
    };
    assert_eq!(b.send_batch_size, 100);
    assert_eq!(b.timeout.0, std::time::Duration::from_secs(1));
    let big: ComponentId = "batch/big".parse().unwrap();
    let Some(b) = c.processors[&big].settings::<tern_config::BatchConfig>() else {
        panic!("batch expected")
    };
    assert_eq!((b.send_batch_size, b.send_batch_max_size), (8192, 10000));
    assert_eq!(b.timeout.0, std::time::Duration::from_millis(200));
    let out: ComponentId = "file/out".parse().unwrap();
    let f = c.exporters[&out]
        .settings::<tern_config::FileConfig>()
        .unwrap();
    assert_eq!(f.format, FileFormat::Proto);
    assert_eq!(c.service.pipelines.len(), 2);
    let p = c
        .service
        .pipelines
        .values()
        .find(|p| p.id.signal == Signal::Metrics)
        .unwrap();
    assert_eq!(p.id.to_string(), "metrics/2");
}

#[test]
fn the_embedded_default_config_is_valid() {
    let c = load_sources(
        &[("default".into(), tern_config::DEFAULT_CONFIG.into())],
        &env,
    )
    .unwrap();
    assert_eq!(c.service.pipelines.len(), 3);
}

#[test]
fn every_problem_is_reported_with_file_line_and_key() {
    let text = "
receivers:
  otlp:
    protocols:
      grpc:
        endpont: localhost:4317
  kafka:
processors:
  batch:
    timeout: soon
exporters:
  debug:
    verbosity: loud
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, memory_limiter]
      exporters: [debug, otlp]
";
    let errs = errors(text);
    let expect = [
        (
            "tern.yaml:6:9: receivers.otlp.protocols.grpc.endpont:",
            "unknown field `endpont`",
        ),
        (
            "tern.yaml:7:3: receivers.kafka:",
            "unknown receiver type `kafka`",
        ),
        (
            "tern.yaml:10:14: processors.batch.timeout:",
            "invalid duration `soon`",
        ),
        (
            "tern.yaml:13:16: exporters.debug.verbosity:",
            "unknown variant `loud`",
        ),
        (
            "tern.yaml:18:27: service.pipelines.traces.processors:",
            "processor `memory_limiter` is not defined",
        ),
        (
            "tern.yaml:19:26: service.pipelines.traces.exporters:",
            "exporter `otlp` is not defined",
        ),
    ];
    for (prefix, message) in expect {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(prefix) && e.contains(message)),
            "missing {prefix} {message} in {errs:#?}"
        );
    }
    // The invalid `otlp` and `batch` and `debug` entries do not cause
    // "not defined" errors of their own.
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
}

#[test]
fn graph_and_port_problems() {
    let text = "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
  otlp/2:
    protocols:
      http:
        endpoint: localhost:4317
exporters:
  nop:
extensions:
  health_check:
    endpoint: localhost:8888
service:
  extensions: [health_check, zpages]
  pipelines:
    traces:
      receivers: [otlp, otlp/2]
      exporters: [nop]
    logs:
      receivers: [otlp]
    profiles:
      receivers: [otlp]
      exporters: [nop]
";
    let errs = errors(text);
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(
        has(
            "tern.yaml:10:19: receivers.otlp/2.protocols.http.endpoint: `localhost:4317` clashes with receivers.otlp.protocols.grpc.endpoint"
        ),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:18:3: service.telemetry.metrics (default reader): `localhost:8888` clashes with extensions.health_check.endpoint"
        ),
        "{errs:#?}"
    );
    assert!(
        has("tern.yaml:17:30: service.extensions: extension `zpages` is not defined"),
        "{errs:#?}"
    );
    assert!(
        has("service.pipelines.logs.exporters: at least one exporter is required"),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:24:5: service.pipelines.profiles: pipelines of the `profiles` signal are not supported"
        ),
        "{errs:#?}"
    );
}

#[test]
fn settings_checks() {
    let text = "
receivers:
  otlp:
    protocols:
  otlp/x:
    protocols:
      http:
        traces_url_path: v1/traces
processors:
  batch:
    send_batch_size: 100
    send_batch_max_size: 10
exporters:
  file:
    rotation:
      max_megabytes: 0
      localtime: true
service:
  pipelines:
    traces:
      receivers: [otlp, otlp/x]
      processors: [batch]
      exporters: [file]
";
    let errs = errors(text);
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(
        has("receivers.otlp.protocols: must enable at least one of grpc or http"),
        "{errs:#?}"
    );
    assert!(
        has("tern.yaml:8:26: receivers.otlp/x.protocols.http.traces_url_path: must start with `/`"),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:12:26: processors.batch.send_batch_max_size: must be 0 or at least send_batch_size (100)"
        ),
        "{errs:#?}"
    );
    assert!(has("exporters.file.path: is required"), "{errs:#?}");
    assert!(
        has("tern.yaml:16:22: exporters.file.rotation.max_megabytes: must be at least 1"),
        "{errs:#?}"
    );
}

#[test]
fn type_errors_and_unknown_sections() {
    let errs = errors(
        "receivers: [otlp]\nextra: 1\nconnectors:\n  spanmetrics:\nservice:\n  pipelines:\n    traces:\n      receivers: {otlp: 1}\n",
    );
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(
        has("tern.yaml:1:12: receivers: expected a mapping, found a sequence"),
        "{errs:#?}"
    );
    assert!(
        has("tern.yaml:2:1: extra: unknown top-level key"),
        "{errs:#?}"
    );
    assert!(
        has("tern.yaml:4:3: connectors.spanmetrics: unknown connector type `spanmetrics`"),
        "{errs:#?}"
    );
    let errs = errors(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  nop:\nconnectors:\n  span_metrics:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [span_metrics]\n    metrics:\n      receivers: [span_metrics]\n      exporters: [nop]\n",
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        has("tern.yaml:8:18: service.pipelines.traces.receivers: expected a list of component ids"),
        "{errs:#?}"
    );
}

#[test]
fn bad_yaml_and_bad_env_references() {
    let errs = errors("receivers:\n  otlp: {protocols: {grpc: {endpoint: [}}\n");
    assert!(errs[0].starts_with("tern.yaml:"), "{errs:#?}");
    assert!(errs[0].contains("invalid YAML"), "{errs:#?}");
    let errs = errors(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: ${file:/etc/x}\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("tern.yaml:5:19:") && e.contains("provider `file`")),
        "{errs:#?}"
    );
}

#[test]
fn later_files_override_earlier_ones() {
    let base = "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  nop:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n";
    let over =
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:7777\n";
    let c = load_sources(
        &[
            ("a.yaml".into(), base.into()),
            ("b.yaml".into(), over.into()),
        ],
        &env,
    )
    .unwrap();
    let otlp = c.receivers[&ComponentId::new("otlp")]
        .settings::<tern_config::OtlpReceiverConfig>()
        .unwrap();
    assert_eq!(otlp.protocols.grpc.as_ref().unwrap().endpoint.port, 7777);
    // An error in the second file names the second file.
    let bad = "exporters:\n  nop:\n    extra: 1\n";
    let errs = load_sources(
        &[
            ("a.yaml".into(), base.into()),
            ("b.yaml".into(), bad.into()),
        ],
        &env,
    )
    .unwrap_err();
    assert!(
        errs.0[0]
            .to_string()
            .starts_with("b.yaml:3:5: exporters.nop.extra:"),
        "{errs}"
    );
}

#[test]
fn exporter_and_memory_limiter_checks() {
    let text = "
receivers:
  otlp:
    protocols:
      grpc:
        tls:
          cert_file: /c.pem
processors:
  memory_limiter:
    limit_mib: 100
    spike_limit_mib: 100
  memory_limiter/both:
    limit_mib: 100
    limit_percentage: 50
  memory_limiter/none:
    check_interval: 1s
exporters:
  otlp:
    tls:
      cert_file: /c.pem
  otlp/bad:
    endpoint: gateway
    retry_on_failure:
      initial_interval: 10s
      max_interval: 1s
    sending_queue:
      queue_size: 0
  otlphttp:
    traces_endpoint: https://backend/v1/traces
    encoding: yaml
  otlphttp/2:
    endpoint: backend:4318
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, memory_limiter/both, memory_limiter/none]
      exporters: [otlp, otlp/bad, otlphttp/2]
    logs:
      receivers: [otlp]
      exporters: [otlphttp/2]
";
    let errs = errors(text);
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(
        has(
            "tern.yaml:7:11: receivers.otlp.protocols.grpc.tls.key_file: is required (cert_file or cert_pem, and key_file or key_pem)"
        ),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:11:22: processors.memory_limiter.spike_limit_mib: must be below limit_mib (100)"
        ),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:14:23: processors.memory_limiter/both.limit_percentage: set either limit_mib or limit_percentage"
        ),
        "{errs:#?}"
    );
    assert!(
        has("processors.memory_limiter/none: set limit_mib or limit_percentage"),
        "{errs:#?}"
    );
    assert!(has("exporters.otlp.endpoint: is required"), "{errs:#?}");
    assert!(
        has("tern.yaml:19:5: exporters.otlp.tls: cert_file and key_file must be set together"),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:22:15: exporters.otlp/bad.endpoint: invalid endpoint `gateway`: expected host:port"
        ),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:25:21: exporters.otlp/bad.retry_on_failure.max_interval: must be at least initial_interval"
        ),
        "{errs:#?}"
    );
    assert!(
        has("tern.yaml:27:19: exporters.otlp/bad.sending_queue.queue_size: must be at least 1"),
        "{errs:#?}"
    );
    assert!(
        has("tern.yaml:30:15: exporters.otlphttp.encoding: unknown variant `yaml`"),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:32:15: exporters.otlphttp/2.endpoint: invalid URL `backend:4318`: must start with http:// or https://"
        ),
        "{errs:#?}"
    );
}

#[test]
fn otlphttp_needs_a_url_for_each_signal_it_exports() {
    let text = "
receivers:
  otlp:
    protocols:
      http:
exporters:
  otlphttp:
    traces_endpoint: https://backend/v1/traces
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
    logs:
      receivers: [otlp]
      exporters: [otlphttp]
";
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(
            "exporters.otlphttp.endpoint: is required (or logs_endpoint) for pipeline `logs`"
        ),
        "{errs:#?}"
    );
}

#[test]
fn prometheus_exporter_checks() {
    let text = "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  prometheus:
    max_series: 0
  prometheus/ok:
    endpoint: localhost:4317
  prometheusremotewrite:
    endpoint: prometheus:9090/api/v1/write
    remote_write_queue:
      num_consumers: 4
      queue_size: 0
  prometheusremotewrite/2:
    max_batch_size_bytes: 10
service:
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [prometheus, prometheus/ok, prometheusremotewrite, prometheusremotewrite/2]
    traces:
      receivers: [otlp]
      exporters: [prometheus]
";
    let errs = errors(text);
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(
        has("tern.yaml:7:3: exporters.prometheus.endpoint: is required"),
        "{errs:#?}"
    );
    assert!(
        has("tern.yaml:8:17: exporters.prometheus.max_series: must be at least 1"),
        "{errs:#?}"
    );
    assert!(
        has(
            "exporters.prometheus/ok.endpoint: `localhost:4317` clashes with receivers.otlp.protocols.grpc.endpoint"
        ),
        "{errs:#?}"
    );
    assert!(
        has("tern.yaml:12:15: exporters.prometheusremotewrite.endpoint: invalid URL"),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:15:19: exporters.prometheusremotewrite.remote_write_queue.queue_size: must be at least 1"
        ),
        "{errs:#?}"
    );
    assert!(
        has("exporters.prometheusremotewrite/2.endpoint: is required"),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:17:27: exporters.prometheusremotewrite/2.max_batch_size_bytes: must be at least 1024"
        ),
        "{errs:#?}"
    );
    assert!(
        has("service.pipelines.traces.exporters: exporter `prometheus` does not support traces"),
        "{errs:#?}"
    );
}

#[test]
fn current_collector_names_and_their_deprecated_aliases_both_work() {
    let config = load(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  otlp_grpc:\n    endpoint: a:4317\n  otlp:\n    endpoint: b:4317\n  otlp_http:\n    endpoint: http://a:4318\n  otlphttp/b:\n    endpoint: http://b:4318\n  prometheus_remote_write:\n    endpoint: http://a:9090/api/v1/write\n  prometheusremotewrite/b:\n    endpoint: http://b:9090/api/v1/write\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp_grpc, otlp, otlp_http, otlphttp/b]\n    metrics:\n      receivers: [otlp]\n      exporters: [prometheus_remote_write, prometheusremotewrite/b]\n",
    )
    .unwrap();
    let kind = |id: &str| {
        let c = &config.exporters[&id.parse::<ComponentId>().unwrap()];
        if c.settings::<tern_config::OtlpExporterConfig>().is_some() {
            "otlp_grpc"
        } else if c
            .settings::<tern_config::OtlpHttpExporterConfig>()
            .is_some()
        {
            "otlp_http"
        } else if c
            .settings::<tern_config::PrometheusRemoteWriteConfig>()
            .is_some()
        {
            "prometheus_remote_write"
        } else {
            "other"
        }
    };
    assert_eq!(
        [
            "otlp_grpc",
            "otlp",
            "otlp_http",
            "otlphttp/b",
            "prometheus_remote_write",
            "prometheusremotewrite/b"
        ]
        .map(kind),
        [
            "otlp_grpc",
            "otlp_grpc",
            "otlp_http",
            "otlp_http",
            "prometheus_remote_write",
            "prometheus_remote_write"
        ]
    );
    let warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "tern.yaml:8:3: exporters.otlp: `otlp` is a deprecated alias of the exporter type `otlp_grpc`; use `otlp_grpc`",
            "tern.yaml:12:3: exporters.otlphttp/b: `otlphttp` is a deprecated alias of the exporter type `otlp_http`; use `otlp_http`",
            "tern.yaml:16:3: exporters.prometheusremotewrite/b: `prometheusremotewrite` is a deprecated alias of the exporter type `prometheus_remote_write`; use `prometheus_remote_write`",
        ]
    );
    // The signal check knows the aliases too.
    let errs = errors(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  prometheusremotewrite:\n    endpoint: http://a:9090/api/v1/write\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [prometheusremotewrite]\n",
    );
    assert!(
        errs.iter().any(|e| e.contains("does not support traces")),
        "{errs:#?}"
    );
}

#[test]
fn every_unknown_key_is_reported_and_an_unknown_type_once() {
    let errs = errors(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpont: x\n        max_msg: 1\n      http:\n    bogus: 1\n  jaeger:\nexporters:\n  nop:\nservice:\n  telemetry:\n    logs:\n      lvl: info\n    extra: 1\n  pipelines:\n    traces:\n      receivers: [otlp, jaeger]\n      exporters: [nop]\n    logs:\n      receivers: [jaeger]\n      exporters: [nop]\n",
    );
    let at = |prefix: &str| errs.iter().filter(|e| e.starts_with(prefix)).count();
    assert_eq!(
        at("tern.yaml:5:9: receivers.otlp.protocols.grpc.endpont: unknown field `endpont`"),
        1,
        "{errs:#?}"
    );
    assert_eq!(
        at("tern.yaml:6:9: receivers.otlp.protocols.grpc.max_msg: unknown field"),
        1,
        "{errs:#?}"
    );
    assert_eq!(
        at("tern.yaml:8:5: receivers.otlp.bogus: unknown field"),
        1,
        "{errs:#?}"
    );
    assert_eq!(
        at("tern.yaml:9:3: receivers.jaeger: unknown receiver type `jaeger`"),
        1,
        "{errs:#?}"
    );
    assert_eq!(
        at("tern.yaml:15:7: service.telemetry.logs.lvl: unknown field"),
        1,
        "{errs:#?}"
    );
    assert_eq!(
        at("tern.yaml:16:5: service.telemetry.extra: unknown field"),
        1,
        "{errs:#?}"
    );
    assert!(!errs.iter().any(|e| e.contains("not defined")), "{errs:#?}");
    assert_eq!(errs.len(), 6, "{errs:#?}");
}

#[test]
fn whole_config_problems_have_a_location_too() {
    let errs = errors("receivers:\n  otlp:\n    protocols:\n      grpc:\nservice:\n  pipelines:\n");
    assert_eq!(
        errs,
        ["tern.yaml:6:3: service.pipelines: at least one pipeline is required"]
    );
    let errs = errors("receivers:\n  otlp:\n    protocols:\n      grpc:\n");
    assert_eq!(
        errs,
        ["tern.yaml:1:1: service.pipelines: at least one pipeline is required"]
    );
}

#[test]
fn a_problem_with_a_mapping_or_list_points_at_its_key() {
    // A mapping's own position is its first entry, inside it: the message
    // points at the key that holds it instead.
    let errs = errors(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  nop:\n\
         service:\n  telemetry:\n    traces:\n      processors:\n        - batch: {}\n\
         \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("tern.yaml:9:5: service.telemetry.traces")),
        "{errs:?}"
    );
}

#[test]
fn a_problem_with_a_value_from_an_unset_or_empty_variable_names_it() {
    let lookup = |name: &str| (name == "EMPTY_PORT").then(String::new);
    let text = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: ${env:HOST}:${env:EMPTY_PORT}\nexporters:\n  otlp_grpc:\n    endpoint: ${env:OTLP_ENDPOINT}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp_grpc]\n";
    let errs: Vec<String> = load_sources(&[("tern.yaml".into(), text.into())], &lookup)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        [
            "tern.yaml:5:19: receivers.otlp.protocols.grpc.endpoint: invalid endpoint `:`: port must be 0-65535 (`${env:HOST}` is unset) (`${env:EMPTY_PORT}` is empty)",
            "tern.yaml:8:15: exporters.otlp_grpc.endpoint: is required (`${env:OTLP_ENDPOINT}` is unset)",
        ]
    );
    // Unset variables that do no harm are warnings, as in the Collector.
    let text = "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\n    verbosity: basic${env:SUFFIX}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n";
    let config = load_sources(&[("tern.yaml".into(), text.into())], &lookup).unwrap();
    assert_eq!(
        config.warnings[0].to_string(),
        "tern.yaml:7:16: `${env:SUFFIX}` is unset: it expands to the empty string"
    );
}

#[test]
fn stricter_where_the_collector_is() {
    let errs = errors(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n  nop:\n    protocols:\n      http:\n  otlp/a:\n    protocols:\n      grpc:\n        endpoint: localhost:1\n  otlp/ a :\n    protocols:\n      grpc:\n        endpoint: localhost:2\n  otlp/my name:\n    protocols:\n      grpc:\nprocessors:\n  memory_limiter:\n    limit_mib: 100\nexporters:\n  debug:\n    verbosity: ${env:1BAD}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [memory_limiter]\n      exporters: [debug]\n",
    );
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(
        has(
            "tern.yaml:12:3: receivers.otlp/ a: duplicate name `otlp/ a` (the same id as `otlp/a` at line 8)"
        ),
        "{errs:#?}"
    );
    assert!(
        has(
            "tern.yaml:16:3: receivers.otlp/my name: invalid id `otlp/my name`: invalid character(s) in name `my name`"
        ),
        "{errs:#?}"
    );
    assert!(
        has("tern.yaml:20:3: processors.memory_limiter.check_interval: must be greater than zero"),
        "{errs:#?}"
    );
    assert!(
        has("tern.yaml:24:16: environment variable `1BAD` in `${env:1BAD}` has an invalid name"),
        "{errs:#?}"
    );
    // The value that could not be expanded gets no second message.
    assert_eq!(errs.len(), 5, "{errs:#?}");
    // A key written twice in one mapping is a YAML error (as yaml.v3's).
    let errs = errors("receivers:\n  otlp:\n  otlp:\nexporters:\n  a: 1\n  a: 2\n");
    assert_eq!(
        errs,
        [
            "tern.yaml:3:3: mapping key `otlp` already defined at line 2",
            "tern.yaml:6:3: mapping key `a` already defined at line 5",
        ]
    );
}

const PIPELINE: &str = "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  nop:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n";

#[test]
fn telemetry_in_the_collectors_current_form() {
    let config = load(&format!(
        "{PIPELINE}  telemetry:\n    logs:\n      level: WARN\n      encoding: json\n      output_paths: [stdout, /tmp/tern.log]\n      error_output_paths: [stderr]\n      sampling:\n        enabled: false\n      disable_caller: true\n    metrics:\n      level: detailed\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: 0.0.0.0\n                port: 9999\n    traces:\n      level: none\n"
    ))
    .unwrap();
    let t = &config.service.telemetry;
    assert_eq!(t.logs.level, "warn");
    assert_eq!(t.logs.encoding, tern_config::LogEncoding::Json);
    assert_eq!(
        t.logs.outputs,
        [
            tern_config::LogOutput::Stdout,
            tern_config::LogOutput::File("/tmp/tern.log".into())
        ]
    );
    assert_eq!(t.metrics.level, tern_config::MetricsLevel::Detailed);
    assert_eq!(
        t.metrics.address.as_ref().unwrap().to_string(),
        "0.0.0.0:9999"
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    // The removed `address` still works, with a warning.
    let config = load(&format!(
        "{PIPELINE}  telemetry:\n    metrics:\n      address: 127.0.0.1:7777\n"
    ))
    .unwrap();
    assert_eq!(
        config
            .service
            .telemetry
            .metrics
            .address
            .unwrap()
            .to_string(),
        "127.0.0.1:7777"
    );
    assert!(
        config.warnings[0]
            .to_string()
            .starts_with("tern.yaml:14:16: service.telemetry.metrics.address: deprecated"),
        "{:?}",
        config.warnings
    );
}

#[test]
fn telemetry_resource_sets_and_removes_attributes() {
    let config = load(&format!(
        "{PIPELINE}  telemetry:\n    resource:\n      service.name: edge\n      host.name: \"\"\n      service.instance.id: null\n      service.version:\n"
    ))
    .unwrap();
    let resource = &config.service.telemetry.resource;
    assert_eq!(resource["service.name"].as_deref(), Some("edge"));
    assert_eq!(resource["host.name"].as_deref(), Some(""));
    assert_eq!(resource["service.instance.id"], None);
    assert_eq!(resource["service.version"], None);
    assert_eq!(resource.len(), 4);
}

#[test]
fn pprof_and_zpages_extensions() {
    let config = load(&format!(
        "{PIPELINE}  extensions: [pprof, zpages/2]\nextensions:\n  pprof:\n  zpages/2:\n    endpoint: :55680\n"
    ))
    .unwrap();
    let endpoint = |id: &str| {
        let listens = config.extensions[&id.parse().unwrap()].config.listens();
        listens[0].1.to_string()
    };
    assert_eq!(endpoint("pprof"), "localhost:1777");
    assert_eq!(endpoint("zpages/2"), ":55680");

    let errs = errors(&format!(
        "{PIPELINE}  extensions: [pprof]\nextensions:\n  pprof:\n    block_profile_fraction: 3\n    mutex_profile_fraction: 5\n    save_to_file: /tmp/cpu.prof\n  zpages:\n    expvar: {{}}\n"
    ));
    for needle in [
        "tern.yaml:15:29: extensions.pprof.block_profile_fraction: not supported",
        "tern.yaml:16:29: extensions.pprof.mutex_profile_fraction: not supported",
        "tern.yaml:19:5: extensions.zpages.expvar: unknown field `expvar`",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(needle)),
            "no {needle} in {errs:#?}"
        );
    }
}

#[test]
fn telemetry_keys_tern_cannot_honour_are_errors_that_say_so() {
    let errs = errors(&format!(
        "{PIPELINE}  telemetry:\n    resource:\n      service.name: x\n    logs:\n      sampling:\n        initial: 5\n      initial_fields:\n        a: b\n      processors: []\n      lvl: x\n    metrics:\n      adress: x\n      readers:\n        - periodic:\n            exporter:\n              otlp:\n                endpoint: http://x:4318\n        - pull:\n            exporter:\n              prometheus:\n                port: 1\n                without_units: true\n    traces:\n      processors: []\n"
    ));
    let has = |needle: &str| errs.iter().any(|e| e.starts_with(needle));
    for needle in [
        "tern.yaml:21:7: service.telemetry.logs.lvl: unknown field `lvl`",
        "tern.yaml:23:7: service.telemetry.metrics.adress: unknown field `adress`",
        "tern.yaml:27:15: service.telemetry.metrics.readers[0].periodic.exporter.otlp: `protocol` is required",
        "tern.yaml:33:32: service.telemetry.metrics.readers[1].pull.exporter.prometheus.without_units: not supported",
        "tern.yaml:34:5: service.telemetry.traces: not supported",
    ] {
        assert!(has(needle), "no {needle} in {errs:#?}");
    }
    // Hints never suggest the key the Collector removed.
    let hint = errs.iter().find(|e| e.contains("`adress`")).unwrap();
    assert!(
        hint.contains("`readers`") && !hint.contains("`address`"),
        "{hint}"
    );
    assert_eq!(errs.len(), 5, "{errs:#?}");

    let errs = errors(&format!(
        "{PIPELINE}  telemetry:\n    metrics:\n      readers: []\n"
    ));
    assert_eq!(
        errs,
        [
            "tern.yaml:14:7: service.telemetry.metrics.readers: a reader is required when level is not none"
        ]
    );
}

/// The `otlp_grpc` exporter called `name` in `config`.
fn otlp_exporter<'a>(
    config: &'a tern_config::Config,
    name: &str,
) -> &'a tern_config::OtlpExporterConfig {
    config.exporters[&name.parse::<ComponentId>().unwrap()]
        .settings()
        .unwrap()
}

/// The ids a pipeline lists, as written.
fn listed(refs: &[tern_config::Ref]) -> Vec<String> {
    refs.iter().map(|r| r.id.to_string()).collect()
}

#[test]
fn yaml_merge_keys_bring_in_an_anchored_mapping() {
    let c = load(
        "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  otlp_grpc/a: &common
    endpoint: a:4317
    timeout: 3s
    tls:
      insecure: true
  otlp_grpc/b:
    endpoint: b:4317
    <<: *common
  otlp_grpc/c:
    <<: [{endpoint: c:4317, timeout: 7s}, *common]
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_grpc/a, otlp_grpc/b, otlp_grpc/c]
",
    )
    .unwrap();
    // The mapping's own keys win, wherever the merge key stands.
    let b = otlp_exporter(&c, "otlp_grpc/b");
    assert_eq!(b.endpoint, "b:4317");
    assert!(b.tls.insecure);
    assert_eq!(b.timeout.0, std::time::Duration::from_secs(3));
    // Of several merged mappings, the earlier one wins.
    let c3 = otlp_exporter(&c, "otlp_grpc/c");
    assert_eq!(c3.endpoint, "c:4317");
    assert_eq!(c3.timeout.0, std::time::Duration::from_secs(7));
    assert!(c3.tls.insecure);
    // A merged key the component does not have is reported at the anchor.
    let errs = errors(
        "exporters:\n  otlp_grpc/a: &common\n    endpoint: a:4317\n    bogus: 1\n  otlp_grpc/b:\n    <<: *common\n",
    );
    assert!(
        errs.iter()
            .any(|e| e
                .starts_with("tern.yaml:4:5: exporters.otlp_grpc/b.bogus: unknown field `bogus`")),
        "{errs:?}"
    );
    // A quoted `<<` is an ordinary key; a merge key needs mappings.
    let errs = errors("exporters:\n  debug:\n    \"<<\": 1\n");
    assert!(
        errs.iter()
            .any(|e| e.contains("tern.yaml:3:5: exporters.debug.<<: unknown field `<<`")),
        "{errs:?}"
    );
    let errs = errors("exporters:\n  debug:\n    <<: 5\n");
    assert_eq!(
        errs,
        [
            "tern.yaml:3:9: the merge key `<<` needs a mapping or a list of mappings (an alias such as `*name`)"
        ]
    );
}

#[test]
fn a_value_that_is_one_variable_holding_a_yaml_list_or_mapping_becomes_one() {
    let c = load(
        "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
  nop:
  otlp_grpc:
    endpoint: ${env:HOST_PORT}
    headers: ${env:HEADERS}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: ${env:EXPORTERS}
    logs:
      receivers: [otlp]
      exporters: [otlp_grpc]
",
    )
    .unwrap();
    let traces = &c.service.pipelines[&"traces".parse().unwrap()];
    assert_eq!(listed(&traces.exporters), ["debug", "nop"]);
    let e = otlp_exporter(&c, "otlp_grpc");
    // A scalar stays the text it was.
    assert_eq!(e.endpoint, "example.com:4317");
    assert_eq!(
        e.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [("x-env", "prod"), ("x-team", "a")]
    );
    // Inside a longer text, the value is text; a problem points at the
    // value that named the variable.
    let errs =
        errors("exporters:\n  otlp_grpc:\n    endpoint: a:1\n    headers: x${env:HEADERS}\n");
    assert!(
        errs.iter().any(|e| e.starts_with(
            "tern.yaml:4:14: exporters.otlp_grpc.headers: expected a mapping, found a scalar"
        )),
        "{errs:?}"
    );
    let errs =
        errors("exporters:\n  otlp_grpc:\n    endpoint: a:1\n    timeout: ${env:EXPORTERS}\n");
    assert!(
        errs.iter().any(|e| e.starts_with(
            "tern.yaml:4:14: exporters.otlp_grpc.timeout: expected a scalar, found a sequence"
        )),
        "{errs:?}"
    );
}

#[test]
fn a_string_where_a_list_goes_is_split_at_commas_as_in_the_collector() {
    let c = load(
        "
receivers:
  otlp:
    protocols:
      http:
        cors:
          allowed_origins: https://a.example
exporters:
  debug:
  nop:
extensions:
  health_check:
service:
  extensions: health_check
  pipelines:
    traces:
      receivers: otlp
      exporters: debug,nop
",
    )
    .unwrap();
    let traces = &c.service.pipelines[&"traces".parse().unwrap()];
    assert_eq!(listed(&traces.receivers), ["otlp"]);
    assert_eq!(listed(&traces.exporters), ["debug", "nop"]);
    assert_eq!(listed(&c.service.extensions), ["health_check"]);
    let otlp = c.receivers[&ComponentId::new("otlp")]
        .settings::<tern_config::OtlpReceiverConfig>()
        .unwrap();
    let cors = otlp.protocols.http.as_ref().unwrap().cors.as_ref().unwrap();
    assert_eq!(cors.allowed_origins, ["https://a.example"]);
    // Spaces around an id do not count, as in the Collector; an empty part
    // is not an id.
    let c = load(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\n  nop:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: debug, nop\n",
    )
    .unwrap();
    let traces = &c.service.pipelines[&"traces".parse().unwrap()];
    assert_eq!(listed(&traces.exporters), ["debug", "nop"]);
    let errs = errors(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: debug,\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("tern.yaml:11:18: service.pipelines.traces.exporters:")),
        "{errs:?}"
    );
}

#[test]
fn booleans_in_every_spelling_yaml_1_2_has() {
    let text = |v: &str| {
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  otlp_grpc:\n    endpoint: a:1\n    tls:\n      insecure: {v}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp_grpc]\n"
        )
    };
    for (v, want) in [
        ("True", true),
        ("TRUE", true),
        ("False", false),
        ("FALSE", false),
    ] {
        let c = load(&text(v)).unwrap();
        assert_eq!(otlp_exporter(&c, "otlp_grpc").tls.insecure, want, "{v}");
    }
    // YAML 1.1's yes/on are strings to the Collector too.
    assert_eq!(
        errors(&text("yes")),
        ["tern.yaml:9:17: exporters.otlp_grpc.tls.insecure: expected true or false, found `yes`"]
    );
}

#[test]
fn loadbalancing_keys_and_checks() {
    let base = |exporter: &str, pipelines: &str| {
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  loadbalancing:\n{exporter}service:\n  pipelines:\n{pipelines}"
        )
    };
    let traces_and_metrics = "    traces:\n      receivers: [otlp]\n      exporters: [loadbalancing]\n    metrics:\n      receivers: [otlp]\n      exporters: [loadbalancing]\n";
    // Defaults: the otlp exporter's for each backend, the Collector's dns defaults.
    let config = load(&base(
        "    resolver:\n      dns:\n        hostname: gw.example\n",
        traces_and_metrics,
    ))
    .unwrap();
    let c = &config.exporters[&"loadbalancing".parse().unwrap()];
    let Some(lb) = c.settings::<tern_config::LoadBalancingConfig>() else {
        panic!("{:?}", c.config)
    };
    let dns = lb.resolver.dns.as_ref().unwrap();
    assert_eq!((dns.interval.0.as_secs(), dns.timeout.0.as_secs()), (5, 1));
    assert_eq!(lb.protocol.otlp.timeout.0.as_secs(), 5);
    assert!(!lb.retry_on_failure.enabled);
    assert_eq!(
        lb.routing_key_for(Signal::Metrics),
        tern_config::RoutingKey::Service
    );
    // A key a signal does not take, two resolvers, AWS, nested otlp checks.
    let e = errors(&base(
        "    routing_key: metric\n    protocol:\n      otlp:\n        timeout: 0s\n    resolver:\n      static:\n        hostnames: [a:4317]\n      aws_cloud_map:\n        namespace: x\n",
        traces_and_metrics,
    ));
    let expect = [
        "tern.yaml:7:18: exporters.loadbalancing.routing_key: `metric` does not route traces (pipeline `traces`); the Collector routes traces by traceID, service",
        "tern.yaml:10:18: exporters.loadbalancing.protocol.otlp.timeout: must be above 0",
        "tern.yaml:11:5: exporters.loadbalancing.resolver: only one resolver should be specified",
        "tern.yaml:14:7: exporters.loadbalancing.resolver.aws_cloud_map: not supported",
    ];
    assert_eq!(e.len(), expect.len(), "{e:#?}");
    for (got, want) in e.iter().zip(expect) {
        assert!(got.starts_with(want), "{got}\n  wanted {want}");
    }
    let e = errors(&base(
        "    routing_key: shard\n    resolver:\n      k8s:\n        service: gw.obs.svc\n",
        traces_and_metrics,
    ));
    assert!(e[0].contains("unsupported routing_key \"shard\""), "{e:#?}");
    let e = errors(&base(
        "    resolver:\n      k8s:\n        service: gw.obs.svc\n",
        traces_and_metrics,
    ));
    assert!(
        e[0].contains("resolver.k8s.service: invalid Kubernetes service FQDN"),
        "{e:#?}"
    );
}
