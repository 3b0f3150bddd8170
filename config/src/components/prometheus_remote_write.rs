//! The `prometheus_remote_write` exporter's settings (alias
//! `prometheusremotewrite`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::auth::{AuthConfig, AuthSide, check_auth};
use super::client::{
    QueueConfig, RetryConfig, TlsClientConfig, check_client, check_headers, check_storage,
};
use super::prometheus::ResourceToTelemetry;
use super::{Check, ComponentConfig, Protocol};
use crate::ConfigError;
use crate::types::{GoDuration, Target};

/// `target_info`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetInfo {
    /// Emit `target_info` with the resource attributes (default true).
    pub enabled: bool,
}

impl Default for TargetInfo {
    fn default() -> Self {
        TargetInfo { enabled: true }
    }
}

/// `exporters.prometheusremotewrite`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusRemoteWriteConfig {
    /// The remote write URL (required), e.g. `http://prometheus:9090/api/v1/write`.
    pub endpoint: String,
    /// Headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// Credentials added to every request by an authenticator extension
    /// (none when absent).
    pub auth: Option<AuthConfig>,
    /// Per-request timeout (default 5s).
    pub timeout: GoDuration,
    /// TLS settings (for `https://`).
    pub tls: TlsClientConfig,
    /// Labels added to every series.
    pub external_labels: BTreeMap<String, String>,
    /// Largest request before compression (default 3000000).
    pub max_batch_size_bytes: u64,
    /// Prefix for every metric name.
    pub namespace: String,
    /// Resource attributes as labels.
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    /// Unit and type suffixes on names (default true).
    pub add_metric_suffixes: bool,
    /// `target_info` settings.
    pub target_info: TargetInfo,
    /// A series not updated for this long gets a staleness marker and is forgotten (default 5m).
    pub metric_expiration: GoDuration,
    /// Most series tracked (for delta accumulation and staleness); default 100000.
    pub max_series: u64,
    /// Retry settings.
    pub retry_on_failure: RetryConfig,
    /// Queue settings (the Collector's key for this exporter; it has no
    /// `sending_queue`).
    pub remote_write_queue: RemoteWriteQueue,
    /// Send each metric family's type and help with the series (default false).
    pub send_metadata: bool,
    /// The Collector's write-ahead log; refused by validation (Tern keeps
    /// no WAL), its keys read so the message can say so.
    pub wal: Protocol<WalConfig>,
}

/// `exporters.prometheusremotewrite.remote_write_queue`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteQueue {
    /// Queue batches (default true); when false the pipeline waits for each send.
    pub enabled: bool,
    /// Batches the queue holds (default 10000).
    pub queue_size: u64,
    /// Requests of one batch sent at once when it is split by
    /// `max_batch_size_bytes` (default 5). Batches themselves go out one at
    /// a time, so each series' samples stay in timestamp order.
    pub num_consumers: u32,
    /// The `file_storage` extension keeping the queue on disk (a Tern
    /// key: the Collector's exporter has its own `wal` instead).
    pub storage: Option<String>,
}

impl Default for RemoteWriteQueue {
    fn default() -> Self {
        RemoteWriteQueue {
            enabled: true,
            queue_size: 10_000,
            num_consumers: 5,
            storage: None,
        }
    }
}

impl RemoteWriteQueue {
    /// The exporter queue this stands for: one worker, `queue_size` batches.
    pub fn queue(&self) -> QueueConfig {
        QueueConfig {
            enabled: self.enabled,
            num_consumers: Some(1),
            queue_size: self.queue_size,
            storage: self.storage.clone(),
            ..QueueConfig::default()
        }
    }
}

/// `exporters.prometheusremotewrite.wal`: read only to be refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// WAL directory.
    pub directory: String,
    /// Requests read from the WAL at once.
    pub buffer_size: u64,
    /// How often the WAL is truncated.
    pub truncate_frequency: GoDuration,
    /// How often the WAL lag is recorded.
    pub lag_record_frequency: u64,
}

impl Default for PrometheusRemoteWriteConfig {
    fn default() -> Self {
        PrometheusRemoteWriteConfig {
            endpoint: String::new(),
            headers: BTreeMap::new(),
            auth: None,
            timeout: GoDuration(Duration::from_secs(5)),
            tls: TlsClientConfig::default(),
            external_labels: BTreeMap::new(),
            max_batch_size_bytes: 3_000_000,
            namespace: String::new(),
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            add_metric_suffixes: true,
            target_info: TargetInfo::default(),
            metric_expiration: GoDuration(Duration::from_secs(300)),
            max_series: 100_000,
            retry_on_failure: RetryConfig::default(),
            remote_write_queue: RemoteWriteQueue::default(),
            send_metadata: false,
            wal: Protocol::Off,
        }
    }
}

impl ComponentConfig for PrometheusRemoteWriteConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        let p = self;
        if p.endpoint.trim().is_empty() {
            errors.push(c.setting(&["endpoint"], "is required"));
        } else if let Err(e) = Target::parse_url(&p.endpoint) {
            errors.push(c.setting(&["endpoint"], e));
        }
        let q = &p.remote_write_queue;
        if q.enabled && q.queue_size == 0 {
            errors.push(c.setting(
                &["remote_write_queue", "queue_size"],
                "must be at least 1 while the queue is enabled",
            ));
        }
        if q.num_consumers == 0 {
            errors.push(c.setting(
                &["remote_write_queue", "num_consumers"],
                "must be at least 1",
            ));
        }
        if p.wal.as_ref().is_some() {
            errors.push(c.setting(&["wal"],
                        "not supported: Tern keeps this exporter's queue on disk with `remote_write_queue.storage` naming a `file_storage` extension instead",
                    ));
        }
        if p.max_batch_size_bytes < 1024 {
            errors.push(c.setting(&["max_batch_size_bytes"], "must be at least 1024"));
        }
        if p.max_series == 0 {
            errors.push(c.setting(&["max_series"], "must be at least 1"));
        }
        check_headers(c, &p.headers, errors);
        if let Some(auth) = &p.auth {
            check_auth(c, &[], auth, AuthSide::Client, errors);
            if super::auth::is_headers_setter(c.config, &auth.authenticator) {
                errors.push(c.setting(
                    &["auth", "authenticator"],
                    "headers_setter is not supported here (a remote write request merges series of many senders); use it on otlp or otlphttp exporters",
                ));
            }
        }
        let queue = q.queue();
        check_client(c, &p.timeout, &p.tls, &p.retry_on_failure, &queue, errors);
        check_storage(c, &["remote_write_queue"], &queue, errors);
    }
}
