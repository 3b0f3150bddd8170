//! The Collector's exporter and `health_check` keys: accepted with the
//! Collector's defaults, and refused at their line where Tern cannot honour
//! a value.

#![allow(clippy::unwrap_used)]

#[path = "common/one_file.rs"]
mod one_file;
use one_file::{errors, load};

use tern_config::{Balancer, ComponentId, Compression, Sizer, Verbosity};

/// A config with `exporter` (YAML under `exporters:`, indented by two)
/// used in a pipeline of `signal`.
fn with_exporter(exporter: &str, id: &str, signal: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n{exporter}service:\n  pipelines:\n    {signal}:\n      receivers: [otlp]\n      exporters: [{id}]\n"
    )
}

fn exporter(text: &str, id: &str) -> tern_config::Component {
    let config = load(text).unwrap();
    config.exporters[&id.parse::<ComponentId>().unwrap()].clone()
}

fn assert_error(errs: &[String], prefix: &str, message: &str) {
    assert!(
        errs.iter()
            .any(|e| e.starts_with(prefix) && e.contains(message)),
        "missing {prefix} {message} in {errs:#?}"
    );
}

#[test]
fn debug_verbosity_in_any_case_and_sampling() {
    let text = with_exporter(
        "  debug:\n    verbosity: Detailed\n    sampling_initial: 5\n    sampling_thereafter: 200\n",
        "debug",
        "traces",
    );
    let Some(d) = exporter(&text, "debug")
        .settings::<tern_config::DebugConfig>()
        .cloned()
    else {
        panic!("not debug");
    };
    assert_eq!(d.verbosity, Verbosity::Detailed);
    assert_eq!((d.sampling_initial, d.sampling_thereafter), (5, 200));

    let text = with_exporter("  debug:\n    verbosity: NORMAL\n", "debug", "logs");
    let Some(d) = exporter(&text, "debug")
        .settings::<tern_config::DebugConfig>()
        .cloned()
    else {
        panic!("not debug");
    };
    assert_eq!(d.verbosity, Verbosity::Normal);
    assert_eq!((d.sampling_initial, d.sampling_thereafter), (2, 1));

    let errs = errors(&with_exporter(
        "  debug:\n    verbosity: loud\n",
        "debug",
        "logs",
    ));
    assert_error(
        &errs,
        "tern.yaml:7:16: exporters.debug.verbosity:",
        "unknown variant `loud`",
    );
}

#[test]
fn file_create_directory_max_days_and_group_by() {
    let text = with_exporter(
        "  file:\n    path: /tmp/x/out.jsonl\n    create_directory: true\n    rotation:\n      max_days: 3\n    group_by:\n      enabled: false\n",
        "file",
        "logs",
    );
    let Some(f) = exporter(&text, "file")
        .settings::<tern_config::FileConfig>()
        .cloned()
    else {
        panic!("not file");
    };
    assert!(f.create_directory);
    assert_eq!(f.directory_mode(), Some(0o755));
    assert_eq!(f.rotation.as_ref().unwrap().max_days, 3);
    assert_eq!(f.group_by.resource_attribute, "fileexporter.path_segment");

    let errs = errors(&with_exporter(
        "  file:\n    path: /tmp/*/out.jsonl\n    group_by:\n      enabled: true\n    directory_permissions: \"0755\"\n  file/2:\n    path: /tmp/out.jsonl\n    create_directory: true\n    directory_permissions: \"999\"\n",
        "file, file/2",
        "logs",
    ));
    assert_error(
        &errs,
        "tern.yaml:10:28: exporters.file.directory_permissions:",
        "only applies with `create_directory: true`",
    );
    assert_error(
        &errs,
        "tern.yaml:14:28: exporters.file/2.directory_permissions:",
        "must be octal permission bits",
    );
}

#[test]
fn file_group_by_needs_one_star_an_attribute_and_room_for_a_file() {
    let text = with_exporter(
        "  file:\n    path: /tmp/logs/*.jsonl\n    group_by:\n      enabled: true\n      resource_attribute: tenant\n      max_open_files: 5\n",
        "file",
        "logs",
    );
    let Some(f) = exporter(&text, "file")
        .settings::<tern_config::FileConfig>()
        .cloned()
    else {
        panic!("not file");
    };
    assert!(f.group_by.enabled);
    assert_eq!(f.group_by.resource_attribute, "tenant");
    assert_eq!(f.group_by.max_open_files, 5);
    let text = with_exporter(
        "  file:\n    path: /tmp/*.jsonl\n    group_by:\n      enabled: true\n",
        "file",
        "logs",
    );
    let Some(f) = exporter(&text, "file")
        .settings::<tern_config::FileConfig>()
        .cloned()
    else {
        panic!("not file");
    };
    assert_eq!(f.group_by.resource_attribute, "fileexporter.path_segment");
    assert_eq!(f.group_by.max_open_files, 100);

    let errs = errors(&with_exporter(
        "  file/none:\n    path: /tmp/out.jsonl\n    group_by:\n      enabled: true\n  file/two:\n    path: /tmp/*/*.jsonl\n    group_by:\n      enabled: true\n      resource_attribute: \"\"\n      max_open_files: 0\n  file/lead:\n    path: \"*.jsonl\"\n    group_by:\n      enabled: true\n  file/off:\n    path: /tmp/**.jsonl\n",
        "file/none, file/two, file/lead, file/off",
        "logs",
    ));
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert_error(
        &errs,
        "tern.yaml:7:11: exporters.file/none.path:",
        "must contain exactly one `*` when group_by is enabled (found 0)",
    );
    assert_error(
        &errs,
        "tern.yaml:11:11: exporters.file/two.path:",
        "(found 2)",
    );
    assert_error(
        &errs,
        "tern.yaml:14:27: exporters.file/two.group_by.resource_attribute:",
        "must not be empty",
    );
    assert_error(
        &errs,
        "tern.yaml:15:23: exporters.file/two.group_by.max_open_files:",
        "must be at least 1",
    );
    assert_error(
        &errs,
        "tern.yaml:17:11: exporters.file/lead.path:",
        "must not start with `*`",
    );
}

#[test]
fn remote_write_queue_send_metadata_and_wal() {
    let text = with_exporter(
        "  prometheusremotewrite:\n    endpoint: http://p:9090/api/v1/write\n    send_metadata: true\n    remote_write_queue:\n      queue_size: 50\n",
        "prometheusremotewrite",
        "metrics",
    );
    let Some(p) = exporter(&text, "prometheusremotewrite")
        .settings::<tern_config::PrometheusRemoteWriteConfig>()
        .cloned()
    else {
        panic!("not prometheusremotewrite");
    };
    assert!(p.send_metadata);
    let q = &p.remote_write_queue;
    assert_eq!((q.enabled, q.queue_size, q.num_consumers), (true, 50, 5));
    assert_eq!(q.queue().num_consumers, Some(1), "batches go out in order");

    // The Collector has no `sending_queue` on this exporter.
    let errs = errors(&with_exporter(
        "  prometheusremotewrite:\n    endpoint: http://p:9090/api/v1/write\n    sending_queue:\n      enabled: true\n",
        "prometheusremotewrite",
        "metrics",
    ));
    assert_error(
        &errs,
        "tern.yaml:8:5: exporters.prometheusremotewrite.sending_queue:",
        "unknown field `sending_queue`",
    );

    let errs = errors(&with_exporter(
        "  prometheusremotewrite:\n    endpoint: http://p:9090/api/v1/write\n    wal:\n      directory: /var/wal\n    remote_write_queue:\n      num_consumers: 0\n",
        "prometheusremotewrite",
        "metrics",
    ));
    assert_error(
        &errs,
        "tern.yaml:8:5: exporters.prometheusremotewrite.wal:",
        "not supported: Tern keeps this exporter's queue on disk with `remote_write_queue.storage`",
    );
    assert_error(
        &errs,
        "tern.yaml:11:22: exporters.prometheusremotewrite.remote_write_queue.num_consumers:",
        "must be at least 1",
    );
}

#[test]
fn prometheus_without_scope_info_and_translation_strategy() {
    let prometheus = |keys: &str| {
        with_exporter(
            &format!("  prometheus:\n    endpoint: localhost:9464\n{keys}"),
            "prometheus",
            "metrics",
        )
    };
    let Some(p) = exporter(&prometheus(""), "prometheus")
        .settings::<tern_config::PrometheusConfig>()
        .cloned()
    else {
        panic!("not prometheus");
    };
    assert!(!p.without_scope_info && p.metric_suffixes());
    let text = prometheus(
        "    without_scope_info: true\n    add_metric_suffixes: true\n    translation_strategy: UnderscoreEscapingWithoutSuffixes\n",
    );
    let Some(p) = exporter(&text, "prometheus")
        .settings::<tern_config::PrometheusConfig>()
        .cloned()
    else {
        panic!("not prometheus");
    };
    assert!(p.without_scope_info);
    assert!(
        !p.metric_suffixes(),
        "the strategy wins over add_metric_suffixes"
    );
    let text = prometheus(
        "    add_metric_suffixes: false\n    translation_strategy: UnderscoreEscapingWithSuffixes\n",
    );
    let Some(p) = exporter(&text, "prometheus")
        .settings::<tern_config::PrometheusConfig>()
        .cloned()
    else {
        panic!("not prometheus");
    };
    assert!(p.metric_suffixes());

    assert!(!p.utf8_names());

    // Prometheus 3 UTF-8 names, with and without suffixes.
    for (value, suffixes) in [
        ("NoUTF8EscapingWithSuffixes", true),
        ("NoTranslation", false),
    ] {
        let text = prometheus(&format!(
            "    add_metric_suffixes: {}\n    translation_strategy: {value}\n",
            !suffixes
        ));
        let Some(p) = exporter(&text, "prometheus")
            .settings::<tern_config::PrometheusConfig>()
            .cloned()
        else {
            panic!("not prometheus");
        };
        assert!(p.utf8_names(), "{value}");
        assert_eq!(p.metric_suffixes(), suffixes, "{value}");
    }

    let errs = errors(&prometheus("    translation_strategy: Escaped\n"));
    assert_error(
        &errs,
        "tern.yaml:8:27: exporters.prometheus.translation_strategy:",
        "unknown variant `Escaped`",
    );
}

#[test]
fn otlp_compression_queue_and_tls_keys() {
    let text = with_exporter(
        "  otlphttp:\n    endpoint: http://b:4318\n    compression: deflate\n    tls:\n      include_system_ca_certs_pool: true\n    sending_queue:\n      wait_for_result: false\n  otlp:\n    endpoint: b:4317\n    compression: snappy\n",
        "otlphttp, otlp",
        "traces",
    );
    let Some(h) = exporter(&text, "otlphttp")
        .settings::<tern_config::OtlpHttpExporterConfig>()
        .cloned()
    else {
        panic!("not otlphttp");
    };
    assert_eq!(h.compression, Compression::Deflate);
    assert!(h.tls.include_system_ca_certs_pool);
    let Some(o) = exporter(&text, "otlp")
        .settings::<tern_config::OtlpExporterConfig>()
        .cloned()
    else {
        panic!("not otlp");
    };
    assert_eq!(o.compression, Compression::Snappy);

    let errs = errors(&with_exporter(
        "  otlp:\n    endpoint: b:4317\n    compression: zlib\n    sending_queue:\n      wait_for_result: true\n      batch:\n        flush_timeout: 1s\n",
        "otlp",
        "traces",
    ));
    assert_error(
        &errs,
        "tern.yaml:8:18: exporters.otlp.compression:",
        "gRPC supports gzip, zstd, snappy or none",
    );
    assert_eq!(
        errs.len(),
        1,
        "wait_for_result and batch are honoured: {errs:?}"
    );
}

#[test]
fn sending_queue_batch_defaults_sizer_and_rules() {
    let queue = |keys: &str| {
        let text = with_exporter(
            &format!("  otlp:\n    endpoint: b:4317\n    sending_queue:\n{keys}"),
            "otlp",
            "traces",
        );
        let Some(o) = exporter(&text, "otlp")
            .settings::<tern_config::OtlpExporterConfig>()
            .cloned()
        else {
            panic!("not otlp");
        };
        o.sending_queue
    };
    // The Collector's defaults once `batch:` is present, even empty.
    let q = queue("      batch:\n");
    let (b, sizer) = q.batching().unwrap();
    assert_eq!(
        (b.flush_timeout.0, b.min_size, b.max_size, sizer),
        (std::time::Duration::from_millis(200), 8192, 0, Sizer::Items)
    );
    assert!(queue("      wait_for_result: true\n").batching().is_none());
    assert!(
        queue("      batch:\n        enabled: false\n")
            .batching()
            .is_none()
    );
    // A section that sets something takes the queue's sizer; an empty one does not.
    let q = queue(
        "      sizer: bytes\n      queue_size: 100000\n      batch:\n        min_size: 100\n",
    );
    assert_eq!(q.batching().unwrap().1, Sizer::Bytes);
    let q = queue("      sizer: bytes\n      batch:\n");
    assert_eq!(q.batching().unwrap().1, Sizer::Items);

    let errs = errors(&with_exporter(
        "  otlp:\n    endpoint: b:4317\n    sending_queue:\n      queue_size: 100\n      sizer: items\n      batch:\n        sizer: requests\n        flush_timeout: 0s\n        min_size: 50\n        max_size: 10\n        partition:\n          metadata_keys: [tenant]\n",
        "otlp",
        "traces",
    ));
    for (at, message) in [
        (
            "sending_queue.batch.sizer:",
            "supports only `items` or `bytes`",
        ),
        ("sending_queue.batch.flush_timeout:", "must be above 0"),
        (
            "sending_queue.batch.max_size:",
            "must be at least min_size (50)",
        ),
        (
            "sending_queue.batch.partition.metadata_keys:",
            "not supported",
        ),
    ] {
        assert!(
            errs.iter()
                .any(|e| e.contains(&format!(": exporters.otlp.{at}")) && e.contains(message)),
            "missing {at} {message} in {errs:#?}"
        );
    }
    let errs = errors(&with_exporter(
        "  otlp:\n    endpoint: b:4317\n    sending_queue:\n      queue_size: 100\n      sizer: items\n      batch:\n        min_size: 500\n",
        "otlp",
        "traces",
    ));
    assert_error(
        &errs,
        "tern.yaml:12:19: exporters.otlp.sending_queue.batch.min_size:",
        "must be at most sending_queue.queue_size (100)",
    );
}

#[test]
fn otlp_connection_keys() {
    let text = with_exporter(
        "  otlp:\n    endpoint: b:4317\n    balancer_name: pick_first\n    authority: gw.example\n    wait_for_ready: true\n  otlphttp:\n    endpoint: http://b:4318\n    max_idle_conns: 7\n    idle_conn_timeout: 5s\n    disable_keep_alives: true\n",
        "otlp, otlphttp",
        "logs",
    );
    let Some(o) = exporter(&text, "otlp")
        .settings::<tern_config::OtlpExporterConfig>()
        .cloned()
    else {
        panic!("not otlp");
    };
    assert_eq!(o.balancer_name, Balancer::PickFirst);
    assert_eq!(o.authority, "gw.example");
    assert!(o.wait_for_ready);
    let Some(h) = exporter(&text, "otlphttp")
        .settings::<tern_config::OtlpHttpExporterConfig>()
        .cloned()
    else {
        panic!("not otlphttp");
    };
    assert_eq!(h.max_idle_conns, 7);
    assert_eq!(h.idle_conn_timeout.0, std::time::Duration::from_secs(5));
    assert!(h.disable_keep_alives);
    let defaults = tern_config::OtlpHttpExporterConfig::default();
    assert_eq!(defaults.max_idle_conns, 100);
    assert_eq!(
        defaults.idle_conn_timeout.0,
        std::time::Duration::from_secs(90)
    );

    let errs = errors(&with_exporter(
        "  otlp:\n    endpoint: b:4317\n    balancer_name: least_request\n  otlphttp:\n    endpoint: http://b:4318\n    proxy_url: http://proxy:3128\n",
        "otlp, otlphttp",
        "logs",
    ));
    assert_error(
        &errs,
        "tern.yaml:8:20: exporters.otlp.balancer_name:",
        "unknown variant `least_request`",
    );
    let proxied = |url: &str| {
        with_exporter(
            &format!("  otlphttp:\n    endpoint: http://b:4318\n    proxy_url: {url}\n"),
            "otlphttp",
            "logs",
        )
    };
    let proxy = |url: &str| errors(&proxied(url));
    assert!(load(&proxied("http://proxy:3128")).is_ok());
    assert_error(
        &proxy("https://proxy:3128"),
        "tern.yaml:8:16: exporters.otlphttp.proxy_url:",
        "only http:// proxies are supported",
    );
    assert_error(
        &proxy("socks5://proxy:1080"),
        "tern.yaml:8:16: exporters.otlphttp.proxy_url:",
        "must start with http://",
    );
    let p = tern_config::ProxyUrl::parse("http://us%40er:p%3Ass@proxy.example:3128/").unwrap();
    assert_eq!(
        (p.target.authority(), p.credentials),
        (
            "proxy.example:3128".to_string(),
            Some(("us@er".to_string(), "p:ss".to_string()))
        )
    );
    assert_eq!(
        tern_config::ProxyUrl::parse("http://proxy")
            .unwrap()
            .target
            .port,
        80
    );
}

#[test]
fn health_check_keys() {
    let with_health = |keys: &str| {
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  nop:\nextensions:\n  health_check:\n    endpoint: localhost:13133\n{keys}service:\n  extensions: [health_check]\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [nop]\n"
        )
    };
    let config = load(&with_health(
        "    check_collector_pipeline:\n      enabled: false\n      interval: 5m\n      exporter_failure_threshold: 5\n",
    ))
    .unwrap();
    let Some(h) = config.extensions[&"health_check".parse::<ComponentId>().unwrap()]
        .settings::<tern_config::HealthCheckConfig>()
    else {
        panic!("not a health_check");
    };
    assert!(!h.check_collector_pipeline.enabled);
    assert_eq!(h.response_body, None);

    let config = load(&with_health(
        "    response_body:\n      healthy: up\n      unhealthy: down\n",
    ))
    .unwrap();
    let Some(h) = config.extensions[&"health_check".parse::<ComponentId>().unwrap()]
        .settings::<tern_config::HealthCheckConfig>()
    else {
        panic!("not a health_check");
    };
    assert_eq!(
        h.response_body,
        Some(tern_config::HealthResponseBody {
            healthy: "up".into(),
            unhealthy: "down".into(),
        })
    );

    let errs = errors(&with_health(
        "    response_body:\n      healthy: up\n    check_collector_pipeline:\n      enabled: true\n",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_error(
        &errs,
        "tern.yaml:13:16: extensions.health_check.check_collector_pipeline.enabled:",
        "the Collector deprecated this check",
    );
}

/// `headers` the exporter could not send are validate errors at their key
/// (they used to pass `tern validate` and stop the start).
#[test]
fn exporter_headers_must_be_valid_http_headers() {
    for (exporter, id) in [
        ("  otlp:\n    endpoint: a:4317\n", "otlp"),
        ("  otlphttp:\n    endpoint: http://a:4318\n", "otlphttp"),
        (
            "  loadbalancing:\n    protocol:\n      otlp:\n",
            "loadbalancing",
        ),
    ] {
        let indent = if id == "loadbalancing" {
            "        "
        } else {
            "    "
        };
        let text = with_exporter(
            &format!(
                "{exporter}{indent}headers:\n{indent}  bad name: x\n{indent}  x-tenant: \"caf\u{e9}\"\n{indent}  x-ok: fine\n"
            ),
            id,
            "traces",
        );
        let errs = errors(&text);
        let at = if id == "loadbalancing" {
            "protocol.otlp."
        } else {
            ""
        };
        assert_error(
            &errs,
            "tern.yaml:",
            &format!("exporters.{id}.{at}headers.bad name: `bad name` is not an HTTP header name"),
        );
        assert_error(
            &errs,
            "tern.yaml:",
            &format!("exporters.{id}.{at}headers.x-tenant: is not a valid HTTP header value"),
        );
        assert!(!errs.iter().any(|e| e.contains("x-ok")), "{errs:#?}");
    }
}

#[test]
fn tls_versions_of_an_exporter() {
    let text = with_exporter(
        "  otlp:\n    endpoint: b:4317\n    tls:\n      min_version: \"1.3\"\n",
        "otlp",
        "traces",
    );
    let Some(o) = exporter(&text, "otlp")
        .settings::<tern_config::OtlpExporterConfig>()
        .cloned()
    else {
        panic!("not otlp");
    };
    assert_eq!(
        o.tls.versions(),
        Ok((
            tern_config::components::TlsVersion::V1_3,
            tern_config::components::TlsVersion::V1_3
        ))
    );
    let errs = errors(&with_exporter(
        "  otlp:\n    endpoint: b:4317\n    tls:\n      min_version: \"1.1\"\n  otlphttp:\n    endpoint: https://b\n    tls:\n      min_version: \"1.3\"\n      max_version: \"1.2\"\n",
        "otlp, otlphttp",
        "traces",
    ));
    assert_error(
        &errs,
        "tern.yaml:9:20: exporters.otlp.tls.min_version:",
        "TLS 1.1 is not supported by Tern",
    );
    assert_error(
        &errs,
        "tern.yaml:13:20: exporters.otlphttp.tls.min_version:",
        "min_version cannot be greater than max_version",
    );
}
