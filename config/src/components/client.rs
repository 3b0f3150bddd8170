//! Settings shared by the exporters that send over the network: request
//! compression, client TLS, `retry_on_failure` and `sending_queue`, with
//! their rules ([`check_client`]).

use std::time::Duration;

use serde::Deserialize;

use super::otlp_receiver::TlsVersion;
use super::{Check, FileStorageConfig, Protocol};
use crate::ConfigError;
use crate::types::GoDuration;

/// Request compression of the OTLP exporters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (the default).
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// zlib stream (RFC 1950), `Content-Encoding: zlib`; `otlphttp` only.
    Zlib,
    /// zlib stream (RFC 1950, as Go's and the Collector's `deflate`),
    /// `Content-Encoding: deflate`; `otlphttp` only.
    Deflate,
    /// Snappy: block format over HTTP, framed format over gRPC (as the Collector).
    Snappy,
    /// No compression.
    #[serde(alias = "")]
    None,
}

/// Client TLS settings (`tls`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsClientConfig {
    /// Plain text instead of TLS (gRPC endpoints without a scheme use TLS unless this is set).
    pub insecure: bool,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
    /// CA bundle (PEM) to verify the server with, instead of the system roots.
    pub ca_file: String,
    /// Client certificate (PEM) for mutual TLS.
    pub cert_file: String,
    /// Client key (PEM) for mutual TLS.
    pub key_file: String,
    /// Name to verify the server certificate against, instead of the endpoint's host.
    pub server_name_override: String,
    /// Trust the system roots as well as `ca_file` (default false).
    pub include_system_ca_certs_pool: bool,
    /// Read `ca_file`, `cert_file` and `key_file` again at the first
    /// handshake after each interval (default 0: never).
    pub reload_interval: GoDuration,
    /// Lowest TLS version offered: `1.2` (default) or `1.3`.
    pub min_version: String,
    /// Highest TLS version offered: `1.2` or `1.3` (default).
    pub max_version: String,
}

impl TlsClientConfig {
    /// The versions offered, lowest first; on error, the key at fault and
    /// why.
    pub fn versions(&self) -> Result<(TlsVersion, TlsVersion), (&'static str, String)> {
        TlsVersion::range(&self.min_version, &self.max_version)
    }
}

/// `retry_on_failure`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retry retryable failures (default true).
    pub enabled: bool,
    /// First wait (default 5s).
    pub initial_interval: GoDuration,
    /// Longest wait (default 30s).
    pub max_interval: GoDuration,
    /// Give up after this long (default 300s; 0 = never).
    pub max_elapsed_time: GoDuration,
    /// Growth of the wait per attempt (default 1.5).
    pub multiplier: f64,
    /// Jitter: the wait is drawn from `[w(1-r), w(1+r)]` (default 0.5).
    pub randomization_factor: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: GoDuration(Duration::from_secs(5)),
            max_interval: GoDuration(Duration::from_secs(30)),
            max_elapsed_time: GoDuration(Duration::from_secs(300)),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

/// What `sending_queue.queue_size` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sizer {
    /// Batches (the default).
    #[default]
    Requests,
    /// Spans, data points or log records.
    Items,
    /// Encoded bytes.
    Bytes,
}

/// `sending_queue`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Queue batches and send them from `num_consumers` workers (default
    /// true); when false the pipeline waits for each send and the sender
    /// for its outcome.
    pub enabled: bool,
    /// Concurrent senders (default 10; 1, the only value allowed, for
    /// `prometheusremotewrite`). See [`QueueConfig::consumers`].
    pub num_consumers: Option<u32>,
    /// Capacity, in units of `sizer` (default 1000).
    pub queue_size: u64,
    /// requests | items | bytes (default requests).
    pub sizer: Sizer,
    /// When full: true waits for room; false (default) makes receivers
    /// refuse new data with a retryable error. Nothing is dropped either way.
    pub block_on_overflow: bool,
    /// Tern's own cap on the queue's bytes, whatever the sizer (default 256).
    pub max_size_mib: u64,
    /// Answer the sender only once its data is exported, with the
    /// export's outcome (default false: answered once queued).
    pub wait_for_result: bool,
    /// Batching inside the queue: on when the key is present.
    pub batch: Protocol<QueueBatch>,
    /// The `file_storage` extension keeping the queue on disk (a
    /// write-ahead log: what was accepted survives a restart); unset, the
    /// queue is in memory.
    pub storage: Option<String>,
}

/// `sending_queue.batch` (defaults as the Collector's exporterhelper).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueBatch {
    /// `false` turns batching off again (default true once the key is present).
    pub enabled: bool,
    /// Longest wait of a batch smaller than `min_size` (default 200ms).
    pub flush_timeout: GoDuration,
    /// Smallest batch sent before `flush_timeout` (default 8192).
    pub min_size: u64,
    /// Largest batch; bigger data is split (default 0: no limit).
    pub max_size: u64,
    /// items | bytes (default items, or the queue's `sizer` when that is
    /// items or bytes and this section sets something).
    pub sizer: Option<Sizer>,
    /// Batching per metadata value; only empty is accepted.
    pub partition: QueuePartition,
}

/// `sending_queue.batch.partition`: read only to be refused when set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuePartition {
    /// Metadata keys to batch by.
    pub metadata_keys: Vec<String>,
}

impl Default for QueueBatch {
    fn default() -> Self {
        QueueBatch {
            enabled: true,
            flush_timeout: GoDuration(Duration::from_millis(200)),
            min_size: 8192,
            max_size: 0,
            sizer: None,
            partition: QueuePartition::default(),
        }
    }
}

impl QueueConfig {
    /// `num_consumers` of `otlp` and `otlphttp` when unset.
    pub const DEFAULT_CONSUMERS: u32 = 10;

    /// `num_consumers`, or the exporter's default when unset.
    pub fn consumers(&self, default: u32) -> u32 {
        self.num_consumers.unwrap_or(default)
    }

    /// The batching settings and their sizer, when batching is on. As in
    /// the Collector, a `batch` section that sets something but no `sizer`
    /// takes the queue's `sizer` (when that is not the default `requests`).
    pub fn batching(&self) -> Option<(&QueueBatch, Sizer)> {
        let b = self.batch.as_ref().filter(|b| b.enabled)?;
        let sizer = match b.sizer {
            Some(s) => s,
            None if self.sizer != Sizer::Requests && *b != QueueBatch::default() => self.sizer,
            None => Sizer::Items,
        };
        Some((b, sizer))
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            num_consumers: None,
            queue_size: 1000,
            sizer: Sizer::Requests,
            block_on_overflow: false,
            max_size_mib: 256,
            wait_for_result: false,
            batch: Protocol::Off,
            storage: None,
        }
    }
}

/// The rules for `timeout`, `tls`, `retry_on_failure` and `sending_queue`
/// of an exporter that sends over the network.
pub fn check_client(
    c: &Check<'_>,
    timeout: &GoDuration,
    tls: &TlsClientConfig,
    retry: &RetryConfig,
    queue: &QueueConfig,
    errors: &mut Vec<ConfigError>,
) {
    if timeout.0.is_zero() {
        errors.push(c.setting(&["timeout"], "must be above 0"));
    }
    if tls.cert_file.is_empty() != tls.key_file.is_empty() {
        errors.push(c.setting(&["tls"], "cert_file and key_file must be set together"));
    }
    if let Err((key, message)) = tls.versions() {
        errors.push(c.setting(&["tls", key], message));
    }
    if retry.enabled {
        if retry.initial_interval.0.is_zero() {
            errors.push(c.setting(&["retry_on_failure", "initial_interval"], "must be above 0"));
        }
        if retry.max_interval < retry.initial_interval {
            errors.push(c.setting(
                &["retry_on_failure", "max_interval"],
                "must be at least initial_interval",
            ));
        }
        if retry.multiplier < 1.0 {
            errors.push(c.setting(&["retry_on_failure", "multiplier"], "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&retry.randomization_factor) {
            errors.push(c.setting(
                &["retry_on_failure", "randomization_factor"],
                "must be between 0 and 1",
            ));
        }
    }
    check_queue_batch(c, queue, errors);
    if queue.enabled {
        if queue.num_consumers == Some(0) {
            errors.push(c.setting(&["sending_queue", "num_consumers"], "must be at least 1"));
        }
        if queue.queue_size == 0 {
            errors.push(c.setting(&["sending_queue", "queue_size"], "must be at least 1"));
        }
        if queue.max_size_mib == 0 {
            errors.push(c.setting(&["sending_queue", "max_size_mib"], "must be at least 1"));
        }
    }
}

/// `storage` of the queue at `path`: the id of a `file_storage`
/// extension that `service.extensions` lists, on an enabled queue.
pub fn check_storage(
    c: &Check<'_>,
    path: &[&str],
    queue: &QueueConfig,
    errors: &mut Vec<ConfigError>,
) {
    let Some(id) = &queue.storage else {
        return;
    };
    let key: Vec<&str> = path.iter().copied().chain(["storage"]).collect();
    match super::enabled_extension(c.config, id) {
        None => errors.push(c.setting(
            &key,
            format!(
                "failed to resolve storage \"{}\": storage extension not found \
                 (configure it under `extensions` and list it in `service.extensions`)",
                id.trim()
            ),
        )),
        Some(ext) if ext.settings::<FileStorageConfig>().is_none() => errors.push(c.setting(
            &key,
            format!(
                "\"{}\" is not a storage extension (use `file_storage`)",
                id.trim()
            ),
        )),
        Some(_) if !queue.enabled => errors.push(c.setting(
            &key,
            "the queue is kept on disk only while it is enabled: it needs `enabled: true`",
        )),
        Some(_) => {}
    }
}

/// `sending_queue.batch`, with the Collector's rules.
fn check_queue_batch(c: &Check<'_>, queue: &QueueConfig, errors: &mut Vec<ConfigError>) {
    let Some((b, sizer)) = queue.batching() else {
        return;
    };
    if !queue.enabled {
        errors.push(c.setting(
            &["sending_queue", "batch"],
            "batching happens in the queue: it needs `sending_queue.enabled: true`",
        ));
    }
    let mut bad = |key: &str, message: String| {
        errors.push(c.setting(&["sending_queue", "batch", key], message));
    };
    if sizer == Sizer::Requests {
        bad(
            "sizer",
            "`batch` supports only `items` or `bytes` sizer, found `requests`".into(),
        );
    }
    if b.flush_timeout.0.is_zero() {
        bad("flush_timeout", "must be above 0".into());
    }
    if b.max_size > 0 && b.max_size < b.min_size {
        bad(
            "max_size",
            format!(
                "({}) must be at least min_size ({})",
                b.max_size, b.min_size
            ),
        );
    }
    if sizer == queue.sizer && b.min_size > queue.queue_size {
        bad(
            "min_size",
            format!(
                "({}) must be at most sending_queue.queue_size ({}), or the queue never holds a full batch",
                b.min_size, queue.queue_size
            ),
        );
    }
    if !b.partition.metadata_keys.is_empty() {
        errors.push(c.setting(
            &["sending_queue", "batch", "partition", "metadata_keys"],
            "not supported: Tern batches all of an exporter's data together",
        ));
    }
}

/// Whether `name` is an HTTP header name (an RFC 9110 token).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` can be sent as an HTTP header value.
pub(crate) fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// `headers` sent with every request: each a valid HTTP header (the
/// exporter refuses to start otherwise).
pub fn check_headers(
    c: &Check<'_>,
    headers: &std::collections::BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) {
    for (name, value) in headers {
        let path = ["headers", name.as_str()];
        if !is_header_name(name) {
            errors.push(c.setting(&path, format!("`{name}` is not an HTTP header name")));
        } else if !is_header_value(value) {
            errors.push(c.setting(
                &path,
                "is not a valid HTTP header value (printable ASCII only)",
            ));
        }
    }
}
