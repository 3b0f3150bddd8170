//! The `file_storage` extension and `sending_queue.storage`: the
//! Collector's keys and defaults, `storage` on every queued exporter
//! (`remote_write_queue.storage` on prometheus_remote_write), and one
//! message per problem at the line of the key at fault.

#![allow(clippy::unwrap_used)]

#[path = "common/one_file.rs"]
mod one_file;
use one_file::{errors, load};

use std::time::Duration;

use tern_config::{
    ComponentId, FileStorageConfig, LoadBalancingConfig, OtlpExporterConfig,
    OtlpHttpExporterConfig, PrometheusRemoteWriteConfig,
};

/// `extensions` (indented by two, under `extensions:`) listed in
/// `service.extensions` as `enabled`, and `exporters` used in a metrics
/// pipeline.
fn config(extensions: &str, enabled: &str, exporters: &str, used: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nextensions:\n{extensions}exporters:\n{exporters}service:\n  extensions: [{enabled}]\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [{used}]\n"
    )
}

const STORAGE: &str = "  file_storage:\n  file_storage/fast:\n    directory: /tmp/queues\n    fsync: true\n    create_directory: true\n    directory_permissions: '0700'\n    timeout: 3s\n    compaction:\n      on_start: true\n      directory: /tmp\n      max_transaction_size: 1024\n";

fn extension<'c>(config: &'c tern_config::Config, id: &str) -> &'c FileStorageConfig {
    config.extensions[&id.parse::<ComponentId>().unwrap()]
        .settings::<FileStorageConfig>()
        .unwrap()
}

#[test]
fn storage_settings_and_defaults_come_through_on_every_queued_exporter() {
    let exporters = "  otlp:\n    endpoint: collector:4317\n    sending_queue:\n      storage: file_storage/fast\n  otlphttp:\n    endpoint: http://collector:4318\n    sending_queue:\n      storage: file_storage\n  prometheusremotewrite:\n    endpoint: http://prom:9090/api/v1/write\n    remote_write_queue:\n      storage: file_storage\n  loadbalancing:\n    protocol:\n      otlp:\n        tls:\n          insecure: true\n    resolver:\n      static:\n        hostnames: [a:4317]\n    sending_queue:\n      storage: file_storage/fast\n";
    let text = config(
        STORAGE,
        "file_storage, file_storage/fast",
        exporters,
        "otlp, otlphttp, prometheusremotewrite, loadbalancing",
    );
    let loaded = load(&text).unwrap();
    let default = extension(&loaded, "file_storage");
    assert_eq!(default, &FileStorageConfig::default());
    assert_eq!(default.directory, "/var/lib/otelcol/file_storage");
    assert_eq!(default.timeout.0, Duration::from_secs(1));
    assert!(!default.fsync && !default.create_directory && !default.recreate);
    assert_eq!(default.permissions(), Some(0o750));
    let fast = extension(&loaded, "file_storage/fast");
    assert_eq!(fast.directory, "/tmp/queues");
    assert!(fast.fsync && fast.create_directory);
    assert_eq!(fast.permissions(), Some(0o700));
    assert_eq!(fast.timeout.0, Duration::from_secs(3));
    assert!(fast.compaction.on_start);
    assert_eq!(fast.compaction.max_transaction_size, 1024);

    let exporter = |id: &str| &loaded.exporters[&id.parse::<ComponentId>().unwrap()];
    let otlp = exporter("otlp").settings::<OtlpExporterConfig>().unwrap();
    assert_eq!(
        otlp.sending_queue.storage.as_deref(),
        Some("file_storage/fast")
    );
    let http = exporter("otlphttp")
        .settings::<OtlpHttpExporterConfig>()
        .unwrap();
    assert_eq!(http.sending_queue.storage.as_deref(), Some("file_storage"));
    let prw = exporter("prometheusremotewrite")
        .settings::<PrometheusRemoteWriteConfig>()
        .unwrap();
    assert_eq!(
        prw.remote_write_queue.queue().storage.as_deref(),
        Some("file_storage")
    );
    let lb = exporter("loadbalancing")
        .settings::<LoadBalancingConfig>()
        .unwrap();
    assert_eq!(
        lb.sending_queue.storage.as_deref(),
        Some("file_storage/fast")
    );
}

/// Each mistake gives exactly one message, at its key's line.
#[test]
fn each_storage_mistake_is_one_message_at_its_line() {
    let otlp =
        |queue: &str| format!("  otlp:\n    endpoint: collector:4317\n    sending_queue:\n{queue}");
    let cases: Vec<(String, &str)> = vec![
        (
            config(
                STORAGE,
                "file_storage",
                &otlp("      storage: file_storage/missing\n"),
                "otlp",
            ),
            "tern.yaml:21:16: exporters.otlp.sending_queue.storage: failed to resolve storage \"file_storage/missing\": storage extension not found (configure it under `extensions` and list it in `service.extensions`)",
        ),
        (
            config(
                STORAGE,
                "file_storage",
                &otlp("      storage: file_storage/fast\n"),
                "otlp",
            ),
            "tern.yaml:21:16: exporters.otlp.sending_queue.storage: failed to resolve storage \"file_storage/fast\": storage extension not found",
        ),
        (
            config(
                "  health_check:\n",
                "health_check",
                &otlp("      storage: health_check\n"),
                "otlp",
            ),
            "tern.yaml:11:16: exporters.otlp.sending_queue.storage: \"health_check\" is not a storage extension (use `file_storage`)",
        ),
        (
            config(
                STORAGE,
                "file_storage",
                &otlp("      enabled: false\n      storage: file_storage\n"),
                "otlp",
            ),
            "tern.yaml:22:16: exporters.otlp.sending_queue.storage: the queue is kept on disk only while it is enabled: it needs `enabled: true`",
        ),
        (
            config(
                STORAGE,
                "file_storage",
                "  loadbalancing:\n    protocol:\n      otlp:\n        tls:\n          insecure: true\n        sending_queue:\n          storage: file_storage\n    resolver:\n      static:\n        hostnames: [a:4317]\n",
                "loadbalancing",
            ),
            "tern.yaml:24:20: exporters.loadbalancing.protocol.otlp.sending_queue.storage: not supported: the per-backend queues are in memory",
        ),
        (
            config(
                STORAGE,
                "file_storage",
                "  prometheusremotewrite:\n    endpoint: http://prom:9090/api/v1/write\n    remote_write_queue:\n      storage: nothing\n",
                "prometheusremotewrite",
            ),
            "tern.yaml:21:16: exporters.prometheusremotewrite.remote_write_queue.storage: failed to resolve storage \"nothing\"",
        ),
        (
            config(
                "  file_storage:\n    directory_permissions: rwx\n",
                "file_storage",
                "  nop:\n",
                "nop",
            ),
            "tern.yaml:7:28: extensions.file_storage.directory_permissions: `rwx` is not octal permissions (such as 0750)",
        ),
        (
            config(
                "  file_storage:\n    directory: ''\n",
                "file_storage",
                "  nop:\n",
                "nop",
            ),
            "tern.yaml:7:16: extensions.file_storage.directory: is required",
        ),
        (
            config(
                "  file_storage:\n    timeout: 0s\n",
                "file_storage",
                "  nop:\n",
                "nop",
            ),
            "tern.yaml:7:14: extensions.file_storage.timeout: must be above 0",
        ),
    ];
    for (text, expected) in cases {
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{text}\n{errs:#?}");
        assert!(
            errs[0].starts_with(expected),
            "{errs:#?}\nexpected {expected}"
        );
    }
    let errs = errors(&config(
        "  file_storage:\n    compaction:\n      on_start: true\n      compact_me: now\n",
        "file_storage",
        "  nop:\n",
        "nop",
    ));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("tern.yaml:9:7: extensions.file_storage.compaction")
            && errs[0].contains("compact_me"),
        "{errs:#?}"
    );
}
