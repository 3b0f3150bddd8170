//! Typed configuration of every built-in component, with the OpenTelemetry
//! Collector's keys and defaults, and the catalog `tern components` prints.
//! Unknown keys are errors (`deny_unknown_fields`), never ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::types::{Endpoint, GoDuration, Signal};

/// What kind of component a catalog entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Brings data in.
    Receiver,
    /// Transforms data in a pipeline.
    Processor,
    /// Sends data out.
    Exporter,
    /// Runs beside the pipelines (health check).
    Extension,
    /// An exporter in one pipeline and a receiver in another.
    Connector,
}

impl Kind {
    /// The config section name (`receivers`, ...).
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
            Kind::Extension => "extensions",
            Kind::Connector => "connectors",
        }
    }

    /// The singular noun (`receiver`, ...).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Receiver => "receiver",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
            Kind::Extension => "extension",
            Kind::Connector => "connector",
        }
    }
}

/// One built-in component type.
#[derive(Debug, Clone, Copy)]
pub struct ComponentInfo {
    /// Receiver, processor, exporter or extension.
    pub kind: Kind,
    /// The type name used in config: the OpenTelemetry Collector's current
    /// name for the component.
    pub type_name: &'static str,
    /// Older names the Collector still accepts as deprecated aliases; Tern
    /// accepts them too and warns, as the Collector does.
    pub aliases: &'static [&'static str],
    /// Signals it handles (empty for extensions).
    pub signals: &'static [Signal],
    /// One line for `tern components`.
    pub description: &'static str,
}

const ALL: &[Signal] = &Signal::ALL;

/// Every built-in component.
pub const CATALOG: &[ComponentInfo] = &[
    ComponentInfo {
        kind: Kind::Receiver,
        type_name: "otlp",
        aliases: &[],
        signals: ALL,
        description: "OTLP over gRPC (4317) and HTTP (4318), protobuf and JSON",
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "memory_limiter",
        aliases: &[],
        signals: ALL,
        description: "refuses new data (retryably) while the bytes held in pipelines exceed a limit",
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "batch",
        aliases: &[],
        signals: ALL,
        description: "groups items into batches by size and timeout",
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "probabilistic_sampler",
        aliases: &[],
        signals: &[Signal::Traces, Signal::Logs],
        description: "keeps a share of spans (whole traces) and log records, as the Collector decides",
    },
    ComponentInfo {
        kind: Kind::Processor,
        type_name: "tail_sampling",
        aliases: &[],
        signals: &[Signal::Traces],
        description: "holds whole traces and keeps those its policies sample, as the Collector decides",
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "debug",
        aliases: &[],
        signals: ALL,
        description: "writes items to the log (basic, normal, detailed)",
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "file",
        aliases: &[],
        signals: ALL,
        description: "writes OTLP JSON lines or length-prefixed protobuf to a file, with rotation",
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "otlp_grpc",
        aliases: &["otlp"],
        signals: ALL,
        description: "OTLP/gRPC to a backend, with queue, retry and backpressure",
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "otlp_http",
        aliases: &["otlphttp"],
        signals: ALL,
        description: "OTLP/HTTP (protobuf or JSON) to a backend, with queue, retry and backpressure",
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "prometheus",
        aliases: &[],
        signals: &[Signal::Metrics],
        description: "serves metrics for Prometheus to scrape (text format and OpenMetrics)",
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "prometheus_remote_write",
        aliases: &["prometheusremotewrite"],
        signals: &[Signal::Metrics],
        description: "pushes metrics with Prometheus remote write 1.0 (native histograms too)",
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "load_balancing",
        aliases: &["loadbalancing"],
        signals: ALL,
        description: "OTLP/gRPC to backends chosen by trace id, service, resource, metric or stream (consistent hashing)",
    },
    ComponentInfo {
        kind: Kind::Exporter,
        type_name: "nop",
        aliases: &[],
        signals: ALL,
        description: "accepts and discards everything",
    },
    ComponentInfo {
        kind: Kind::Connector,
        type_name: "forward",
        aliases: &[],
        signals: ALL,
        description: "passes data unchanged from one pipeline to others of the same signal",
    },
    ComponentInfo {
        kind: Kind::Extension,
        type_name: "health_check",
        aliases: &[],
        signals: &[],
        description: "HTTP health endpoint (200 when running, 503 otherwise)",
    },
    ComponentInfo {
        kind: Kind::Extension,
        type_name: "pprof",
        aliases: &[],
        signals: &[],
        description: "CPU profiles of Tern in pprof format (/debug/pprof/profile)",
    },
    ComponentInfo {
        kind: Kind::Extension,
        type_name: "zpages",
        aliases: &[],
        signals: &[],
        description: "HTML pages describing the running service, pipelines and extensions",
    },
];

/// Looks a type up in the catalog, by its name or one of its aliases.
pub fn lookup(kind: Kind, type_name: &str) -> Option<&'static ComponentInfo> {
    CATALOG
        .iter()
        .find(|c| c.kind == kind && (c.type_name == type_name || c.aliases.contains(&type_name)))
}

/// Whether a connector of type `type_name` (already resolved from its
/// aliases) can take `from` data as an exporter and emit `to` data as a
/// receiver: the Collector's "supported pairs of data types".
pub fn connects(type_name: &str, from: Signal, to: Signal) -> bool {
    match type_name {
        "forward" => from == to,
        _ => false,
    }
}

/// A protocol section that is on when present, even if empty (`grpc:`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Protocol<T> {
    /// Not configured.
    #[default]
    Off,
    /// Configured (possibly with all defaults).
    On(T),
}

impl<T> Protocol<T> {
    /// The settings when on.
    pub fn as_ref(&self) -> Option<&T> {
        match self {
            Protocol::Off => None,
            Protocol::On(t) => Some(t),
        }
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Protocol<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Protocol::On(
            Option::<T>::deserialize(d)?.unwrap_or_default(),
        ))
    }
}

/// `receivers.otlp`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiverConfig {
    /// gRPC and HTTP settings.
    pub protocols: OtlpProtocols,
}

/// `receivers.otlp.protocols`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpProtocols {
    /// gRPC server; on when the key is present.
    pub grpc: Protocol<GrpcServerConfig>,
    /// HTTP server; on when the key is present.
    pub http: Protocol<HttpServerConfig>,
}

/// Server TLS settings of a receiver protocol (`tls`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsServerConfig {
    /// Server certificate chain (PEM file).
    pub cert_file: String,
    /// Server certificate chain, inline PEM (instead of `cert_file`).
    pub cert_pem: String,
    /// Server private key (PEM file).
    pub key_file: String,
    /// Server private key, inline PEM (instead of `key_file`).
    pub key_pem: String,
    /// When set, clients must present a certificate signed by this CA (PEM).
    pub client_ca_file: String,
    /// Accepted only to say that it has no effect on a server (validate
    /// error): the Collector ignores it there too.
    pub ca_file: String,
    /// Like `ca_file`, inline.
    pub ca_pem: String,
    /// Lowest TLS version accepted: `1.2` (default) or `1.3`.
    pub min_version: String,
    /// Highest TLS version accepted: `1.2` or `1.3` (default).
    pub max_version: String,
    /// How often `cert_file` and `key_file` are read again (0 = never).
    pub reload_interval: GoDuration,
}

/// A TLS protocol version Tern speaks (rustls has no 1.0 or 1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    V1_2,
    /// TLS 1.3.
    V1_3,
}

impl TlsVersion {
    /// Reads a `min_version` / `max_version` value; empty is `default`.
    fn parse(text: &str, default: TlsVersion) -> Result<TlsVersion, String> {
        match text.trim() {
            "" => Ok(default),
            "1.2" => Ok(TlsVersion::V1_2),
            "1.3" => Ok(TlsVersion::V1_3),
            v @ ("1.0" | "1.1") => Err(format!(
                "TLS {v} is not supported by Tern (rustls implements 1.2 and 1.3 only)"
            )),
            v => Err(format!("unknown TLS version `{v}` (use 1.2 or 1.3)")),
        }
    }
}

impl TlsServerConfig {
    /// The accepted versions, lowest first; on error, the key at fault and
    /// why.
    pub fn versions(&self) -> Result<(TlsVersion, TlsVersion), (&'static str, String)> {
        let min = TlsVersion::parse(&self.min_version, TlsVersion::V1_2)
            .map_err(|e| ("min_version", e))?;
        let max = TlsVersion::parse(&self.max_version, TlsVersion::V1_3)
            .map_err(|e| ("max_version", e))?;
        if min > max {
            return Err((
                "min_version",
                "min_version cannot be greater than max_version".into(),
            ));
        }
        Ok((min, max))
    }
}

/// `receivers.otlp.protocols.grpc`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcServerConfig {
    /// Listen address (default `localhost:4317`).
    pub endpoint: Endpoint,
    /// Largest accepted message after decompression, in MiB (default 4).
    pub max_recv_msg_size_mib: u64,
    /// Most concurrent HTTP/2 streams per connection (default 0 = no limit of Tern's own).
    pub max_concurrent_streams: u32,
    /// Keep client metadata (peer address, headers) on each batch.
    pub include_metadata: bool,
    /// TLS; plain text when absent.
    pub tls: Option<TlsServerConfig>,
    /// Bytes of the buffer each connection reads into from the socket
    /// (default 0 = none: the HTTP/2 codec buffers its reads already, and
    /// 512 KiB per connection, the Collector's default, would let 4096
    /// busy connections hold 2 GiB outside the memory limiter).
    pub read_buffer_size: u64,
    /// Bytes of answers gathered per connection before a write to the
    /// socket (default 0 = none).
    pub write_buffer_size: u64,
    /// Network of `endpoint`; only `tcp` (the default).
    pub transport: String,
}

impl Default for GrpcServerConfig {
    fn default() -> Self {
        GrpcServerConfig {
            endpoint: Endpoint::new("localhost", 4317),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: 0,
            include_metadata: false,
            tls: None,
            read_buffer_size: 0,
            write_buffer_size: 0,
            transport: "tcp".into(),
        }
    }
}

/// `receivers.otlp.protocols.http`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Listen address (default `localhost:4318`).
    pub endpoint: Endpoint,
    /// Largest accepted body after decompression, in bytes (default 20 MiB).
    pub max_request_body_size: u64,
    /// Keep client metadata (peer address, headers) on each batch.
    pub include_metadata: bool,
    /// Path for traces (default `/v1/traces`).
    pub traces_url_path: String,
    /// Path for metrics (default `/v1/metrics`).
    pub metrics_url_path: String,
    /// Path for logs (default `/v1/logs`).
    pub logs_url_path: String,
    /// TLS; plain text when absent.
    pub tls: Option<TlsServerConfig>,
    /// Cross-origin resource sharing for browsers; off when absent or when
    /// `allowed_origins` is empty.
    pub cors: Option<CorsConfig>,
    /// Headers added to every response (name to value).
    pub response_headers: BTreeMap<String, String>,
}

/// `receivers.otlp.protocols.http.cors`: the Collector's `confighttp` CORS
/// settings (credentials always allowed, methods GET, POST and HEAD).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to call; `*` stands for any run of characters
    /// (`https://*.example.com`, or `*` alone for every origin).
    pub allowed_origins: Vec<String>,
    /// Request headers a browser may send besides the ones always allowed
    /// (Accept, Accept-Language, Content-Type, Content-Language, Origin;
    /// X-Requested-With too when none are listed); `*` allows any.
    pub allowed_headers: Vec<String>,
    /// Response headers a page may read (`Access-Control-Expose-Headers`).
    pub exposed_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer
    /// (`Access-Control-Max-Age`; 0 = not sent).
    pub max_age: u32,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            endpoint: Endpoint::new("localhost", 4318),
            max_request_body_size: 20 * 1024 * 1024,
            include_metadata: false,
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
            tls: None,
            cors: None,
            response_headers: BTreeMap::new(),
        }
    }
}

/// `processors.batch`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Items that trigger a send (default 8192).
    pub send_batch_size: u32,
    /// Longest wait before sending a partial batch (default 200ms).
    pub timeout: GoDuration,
    /// Largest batch sent; bigger ones are split (default 0 = no limit).
    pub send_batch_max_size: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: 8192,
            timeout: GoDuration(Duration::from_millis(200)),
            send_batch_max_size: 0,
        }
    }
}

/// How much the `debug` exporter prints; read case-insensitively, as the
/// Collector does (`Detailed`, `DETAILED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// One line per batch with counts.
    #[default]
    Basic,
    /// One line per item.
    Normal,
    /// Every field of every item.
    Detailed,
}

impl<'de> Deserialize<'de> for Verbosity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const NAMES: &[&str] = &["basic", "normal", "detailed"];
        let name = String::deserialize(d)?;
        match name.to_ascii_lowercase().as_str() {
            "basic" => Ok(Verbosity::Basic),
            "normal" => Ok(Verbosity::Normal),
            "detailed" => Ok(Verbosity::Detailed),
            _ => Err(serde::de::Error::unknown_variant(&name, NAMES)),
        }
    }
}

/// `exporters.debug`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// basic | normal | detailed, any case (default basic).
    pub verbosity: Verbosity,
    /// Batches logged per signal in each second before sampling starts (default 2).
    pub sampling_initial: u64,
    /// After the first `sampling_initial` of a second, every this-many-th
    /// batch is logged; 0 logs none (default 1: all).
    pub sampling_thereafter: u64,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
        }
    }
}

/// Output encoding of the `file` exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One OTLP JSON export request per line.
    #[default]
    Json,
    /// Each export request as protobuf, prefixed by its 4-byte big-endian length.
    Proto,
}

/// Compression of the `file` exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileCompression {
    /// Plain output.
    #[default]
    #[serde(rename = "")]
    None,
    /// Each record zstd-compressed and length-prefixed.
    Zstd,
}

/// `exporters.file.rotation`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotationConfig {
    /// Size at which the file is rotated, in MiB (default 100).
    pub max_megabytes: u64,
    /// Rotated files kept (default 100; 0 keeps all).
    pub max_backups: u64,
    /// Backups older than this many days (by the timestamp in their name)
    /// are removed (default 0: kept whatever their age).
    pub max_days: u64,
    /// Name backups in local time (default false; `true` is refused by validation).
    pub localtime: bool,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_megabytes: 100,
            max_backups: 100,
            max_days: 0,
            localtime: false,
        }
    }
}

/// `exporters.file.group_by`: one file per value of a resource attribute.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileGroupBy {
    /// Split the output by resource (default false).
    pub enabled: bool,
    /// The attribute whose value replaces `*` in `path`
    /// (default `fileexporter.path_segment`).
    pub resource_attribute: String,
    /// Most files open at once (default 100).
    pub max_open_files: u64,
}

impl Default for FileGroupBy {
    fn default() -> Self {
        FileGroupBy {
            enabled: false,
            resource_attribute: "fileexporter.path_segment".into(),
            max_open_files: 100,
        }
    }
}

/// `exporters.file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Output file (required).
    pub path: String,
    /// json | proto (default json).
    pub format: FileFormat,
    /// Rotation; off unless the key is present.
    pub rotation: Protocol<RotationConfig>,
    /// `zstd` or unset.
    pub compression: FileCompression,
    /// Append to an existing file instead of truncating it (default false).
    pub append: bool,
    /// How often buffered output is flushed (default 1s).
    pub flush_interval: GoDuration,
    /// Create the output file's parent directories at start (default false).
    pub create_directory: bool,
    /// Octal permissions of directories `create_directory` makes, before the
    /// umask (default `0755`; only with `create_directory`).
    pub directory_permissions: String,
    /// One output file per value of a resource attribute.
    pub group_by: FileGroupBy,
}

impl FileConfig {
    /// `directory_permissions` as mode bits, `0755` when unset; `None` when
    /// it is not an octal number of permission bits.
    pub fn directory_mode(&self) -> Option<u32> {
        if self.directory_permissions.is_empty() {
            return Some(0o755);
        }
        u32::from_str_radix(&self.directory_permissions, 8)
            .ok()
            .filter(|m| m & !0o777 == 0)
    }
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            path: String::new(),
            format: FileFormat::Json,
            rotation: Protocol::Off,
            compression: FileCompression::None,
            append: false,
            flush_interval: GoDuration(Duration::from_secs(1)),
            create_directory: false,
            directory_permissions: String::new(),
            group_by: FileGroupBy::default(),
        }
    }
}

/// `exporters.nop`: no settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NopConfig {}

/// `connectors.forward`: no settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {}

/// `extensions.health_check`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// Listen address (default `localhost:13133`).
    pub endpoint: Endpoint,
    /// Path answered (default `/`).
    pub path: String,
    /// Plain-text bodies instead of the JSON status.
    pub response_body: Option<HealthResponseBody>,
    /// The Collector's deprecated pipeline check: only `enabled: false`.
    pub check_collector_pipeline: CheckCollectorPipeline,
}

/// `extensions.health_check.response_body`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthResponseBody {
    /// Body while healthy.
    pub healthy: String,
    /// Body while not healthy.
    pub unhealthy: String,
}

/// `extensions.health_check.check_collector_pipeline` (deprecated in the
/// Collector, which ignores it): accepted with `enabled: false` only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckCollectorPipeline {
    /// Only false is accepted (default false).
    pub enabled: bool,
    /// Check interval (default 5m); unused while disabled.
    pub interval: GoDuration,
    /// Failures that make the check fail (default 5); unused while disabled.
    pub exporter_failure_threshold: u64,
}

impl Default for CheckCollectorPipeline {
    fn default() -> Self {
        CheckCollectorPipeline {
            enabled: false,
            interval: GoDuration(Duration::from_secs(300)),
            exporter_failure_threshold: 5,
        }
    }
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: Endpoint::new("localhost", 13133),
            path: "/".into(),
            response_body: None,
            check_collector_pipeline: CheckCollectorPipeline::default(),
        }
    }
}

/// `extensions.pprof`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PprofConfig {
    /// Listen address (default `localhost:1777`).
    pub endpoint: Endpoint,
    /// Go's block profile sampling; only 0 (off) is accepted.
    pub block_profile_fraction: i64,
    /// Go's mutex profile sampling; only 0 (off) is accepted.
    pub mutex_profile_fraction: i64,
    /// Profile the CPU from start to shutdown into this file (pprof
    /// format); empty for none.
    pub save_to_file: String,
}

impl Default for PprofConfig {
    fn default() -> Self {
        PprofConfig {
            endpoint: Endpoint::new("localhost", 1777),
            block_profile_fraction: 0,
            mutex_profile_fraction: 0,
            save_to_file: String::new(),
        }
    }
}

/// `extensions.zpages`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZPagesConfig {
    /// Listen address (default `localhost:55679`).
    pub endpoint: Endpoint,
}

impl Default for ZPagesConfig {
    fn default() -> Self {
        ZPagesConfig {
            endpoint: Endpoint::new("localhost", 55679),
        }
    }
}

/// `processors.memory_limiter`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    /// How often a percentage-based limit is re-read from the cgroup and the
    /// limiter's state is logged (required, as in the Collector).
    pub check_interval: GoDuration,
    /// Hard limit in MiB on the bytes held by pipelines.
    pub limit_mib: u64,
    /// Headroom in MiB below the limit; new data is refused above
    /// `limit - spike` (default 20% of the limit).
    pub spike_limit_mib: u64,
    /// Limit as a percentage of the container's memory limit (cgroup).
    pub limit_percentage: u32,
    /// Spike headroom as a percentage of the container's memory limit.
    pub spike_limit_percentage: u32,
}

impl Default for MemoryLimiterConfig {
    fn default() -> Self {
        MemoryLimiterConfig {
            // No default, as in the Collector: it must be set.
            check_interval: GoDuration(Duration::ZERO),
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: 0,
            spike_limit_percentage: 0,
        }
    }
}

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
        }
    }
}

/// gRPC load balancing over the addresses an endpoint resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    /// Rotate over every address (the Collector's default).
    #[default]
    RoundRobin,
    /// Use the first address only.
    PickFirst,
}

/// `exporters.otlp`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpExporterConfig {
    /// `host:port`, or a URL with `http://` (plain) or `https://` (TLS).
    pub endpoint: String,
    /// Headers (gRPC metadata) sent with every request.
    pub headers: BTreeMap<String, String>,
    /// gzip | zstd | none (default gzip).
    pub compression: Compression,
    /// Per-request timeout (default 5s).
    pub timeout: GoDuration,
    /// TLS settings.
    pub tls: TlsClientConfig,
    /// Retry settings.
    pub retry_on_failure: RetryConfig,
    /// Queue settings.
    pub sending_queue: QueueConfig,
    /// round_robin | pick_first (default round_robin).
    pub balancer_name: Balancer,
    /// `:authority` sent instead of the endpoint's `host:port`.
    pub authority: String,
    /// Wait for a connection until `timeout` instead of failing the attempt
    /// at the first connection error (default false).
    pub wait_for_ready: bool,
}

impl Default for OtlpExporterConfig {
    fn default() -> Self {
        OtlpExporterConfig {
            endpoint: String::new(),
            headers: BTreeMap::new(),
            compression: Compression::Gzip,
            timeout: GoDuration(Duration::from_secs(5)),
            tls: TlsClientConfig::default(),
            retry_on_failure: RetryConfig::default(),
            sending_queue: QueueConfig::default(),
            balancer_name: Balancer::RoundRobin,
            authority: String::new(),
            wait_for_ready: false,
        }
    }
}

/// Body encoding of `otlphttp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpEncoding {
    /// `application/x-protobuf` (the default).
    #[default]
    Proto,
    /// `application/json`.
    Json,
}

/// `exporters.otlphttp`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpHttpExporterConfig {
    /// Base URL; `/v1/traces` etc. are appended.
    pub endpoint: String,
    /// Full URL for traces (overrides `endpoint`).
    pub traces_endpoint: String,
    /// Full URL for metrics (overrides `endpoint`).
    pub metrics_endpoint: String,
    /// Full URL for logs (overrides `endpoint`).
    pub logs_endpoint: String,
    /// proto | json (default proto).
    pub encoding: HttpEncoding,
    /// Headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// gzip | zstd | none (default gzip).
    pub compression: Compression,
    /// Per-request timeout (default 5s).
    pub timeout: GoDuration,
    /// TLS settings (used for `https://` URLs).
    pub tls: TlsClientConfig,
    /// Retry settings.
    pub retry_on_failure: RetryConfig,
    /// Queue settings.
    pub sending_queue: QueueConfig,
    /// An `http://` proxy (`http://user:password@host:port`): plain
    /// requests go to it in absolute form, `https` ones through a CONNECT
    /// tunnel (default none: connect directly; no environment variable is read).
    pub proxy_url: String,
    /// Most idle connections kept over all addresses (default 100; 0: no
    /// limit but 32 per address).
    pub max_idle_conns: u64,
    /// Idle connections older than this are not reused (default 90s; 0: no limit).
    pub idle_conn_timeout: GoDuration,
    /// One connection per request, closed after it (default false).
    pub disable_keep_alives: bool,
}

impl Default for OtlpHttpExporterConfig {
    fn default() -> Self {
        OtlpHttpExporterConfig {
            endpoint: String::new(),
            traces_endpoint: String::new(),
            metrics_endpoint: String::new(),
            logs_endpoint: String::new(),
            encoding: HttpEncoding::Proto,
            headers: BTreeMap::new(),
            compression: Compression::Gzip,
            timeout: GoDuration(Duration::from_secs(5)),
            tls: TlsClientConfig::default(),
            retry_on_failure: RetryConfig::default(),
            sending_queue: QueueConfig::default(),
            proxy_url: String::new(),
            max_idle_conns: 100,
            idle_conn_timeout: GoDuration(Duration::from_secs(90)),
            disable_keep_alives: false,
        }
    }
}

/// `proxy_url` of `otlphttp`, parsed: an `http://` proxy and the
/// credentials in its URL (sent as `Proxy-Authorization: Basic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// The proxy's address (its path, if any, is not used).
    pub target: crate::types::Target,
    /// `user` and `password` from the URL, percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl ProxyUrl {
    /// Parses `http://[user[:password]@]host[:port][/]`.
    pub fn parse(url: &str) -> Result<ProxyUrl, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(if url.starts_with("https://") {
                format!(
                    "invalid proxy URL `{url}`: only http:// proxies are supported (https endpoints reach their backend through them in a CONNECT tunnel)"
                )
            } else {
                format!("invalid proxy URL `{url}`: must start with http://")
            });
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (
                    Some((percent_decode(user), percent_decode(password))),
                    host_port,
                )
            }
            None => (None, authority),
        };
        if host_port.is_empty() {
            return Err(format!("invalid proxy URL `{url}`: no host"));
        }
        let target = crate::types::Target::parse_url(&format!("http://{host_port}{path}"))
            .map_err(|e| format!("invalid proxy URL: {e}"))?;
        Ok(ProxyUrl {
            target,
            credentials,
        })
    }
}

/// `%XX` escapes decoded (as Go's URL parser does for user info).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `resource_to_telemetry_conversion`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceToTelemetry {
    /// Copy every resource attribute onto every series (default false).
    pub enabled: bool,
}

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

/// `exporters.prometheus`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Where `/metrics` is served (required), e.g. `0.0.0.0:8889`.
    pub endpoint: Option<Endpoint>,
    /// Prefix for every metric name.
    pub namespace: String,
    /// Labels added to every series.
    pub const_labels: BTreeMap<String, String>,
    /// Write each sample's timestamp (default false).
    pub send_timestamps: bool,
    /// Forget series not updated for this long (default 5m).
    pub metric_expiration: GoDuration,
    /// Resource attributes as labels.
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    /// Answer OpenMetrics (with exemplars) to scrapers that ask for it (default true).
    pub enable_open_metrics: bool,
    /// Unit and type suffixes on names (default true).
    pub add_metric_suffixes: bool,
    /// Most series kept; new series beyond are dropped and counted (default 100000).
    pub max_series: u64,
    /// Leave out the `otel_scope_name` / `otel_scope_version` labels (default false).
    pub without_scope_info: bool,
    /// How names are translated; when set it overrides `add_metric_suffixes`.
    pub translation_strategy: Option<TranslationStrategy>,
}

/// The Collector's `translation_strategy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TranslationStrategy {
    /// Escape to `[a-zA-Z0-9_:]`, add unit and type suffixes.
    UnderscoreEscapingWithSuffixes,
    /// Escape to `[a-zA-Z0-9_:]`, no suffixes.
    UnderscoreEscapingWithoutSuffixes,
    /// UTF-8 names kept, with suffixes.
    #[serde(rename = "NoUTF8EscapingWithSuffixes")]
    NoUtf8EscapingWithSuffixes,
    /// Names passed through: UTF-8, no suffixes.
    NoTranslation,
}

impl PrometheusConfig {
    /// Whether unit and type suffixes are added: `translation_strategy`
    /// when set, else `add_metric_suffixes`.
    pub fn metric_suffixes(&self) -> bool {
        match self.translation_strategy {
            Some(
                TranslationStrategy::UnderscoreEscapingWithoutSuffixes
                | TranslationStrategy::NoTranslation,
            ) => false,
            Some(_) => true,
            None => self.add_metric_suffixes,
        }
    }

    /// Whether metric and label names stay UTF-8 (escaped at scrape time
    /// for scrapers that do not take them).
    pub fn utf8_names(&self) -> bool {
        matches!(
            self.translation_strategy,
            Some(
                TranslationStrategy::NoUtf8EscapingWithSuffixes
                    | TranslationStrategy::NoTranslation
            )
        )
    }
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            endpoint: None,
            namespace: String::new(),
            const_labels: BTreeMap::new(),
            send_timestamps: false,
            metric_expiration: GoDuration(Duration::from_secs(300)),
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            enable_open_metrics: true,
            add_metric_suffixes: true,
            max_series: 100_000,
            without_scope_info: false,
            translation_strategy: None,
        }
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
}

impl Default for RemoteWriteQueue {
    fn default() -> Self {
        RemoteWriteQueue {
            enabled: true,
            queue_size: 10_000,
            num_consumers: 5,
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

/// A receiver's typed settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverConfig {
    /// `otlp`.
    Otlp(OtlpReceiverConfig),
}

/// A processor's typed settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessorConfig {
    /// `batch`.
    Batch(BatchConfig),
    /// `memory_limiter`.
    MemoryLimiter(MemoryLimiterConfig),
    /// `probabilistic_sampler`.
    ProbabilisticSampler(crate::ProbabilisticSamplerConfig),
    /// `tail_sampling`.
    TailSampling(crate::TailSamplingConfig),
}

/// An exporter's typed settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ExporterConfig {
    /// `debug`.
    Debug(DebugConfig),
    /// `file`.
    File(FileConfig),
    /// `loadbalancing`.
    LoadBalancing(Box<crate::LoadBalancingConfig>),
    /// `nop`.
    Nop(NopConfig),
    /// `otlp`.
    Otlp(OtlpExporterConfig),
    /// `otlphttp`.
    OtlpHttp(OtlpHttpExporterConfig),
    /// `prometheus`.
    Prometheus(PrometheusConfig),
    /// `prometheusremotewrite`.
    PrometheusRemoteWrite(PrometheusRemoteWriteConfig),
}

/// A connector's typed settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectorConfig {
    /// `forward`.
    Forward(ForwardConfig),
}

/// An extension's typed settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtensionConfig {
    /// `health_check`.
    HealthCheck(HealthCheckConfig),
    /// `pprof`.
    Pprof(PprofConfig),
    /// `zpages`.
    ZPages(ZPagesConfig),
}

impl ExtensionConfig {
    /// Where the extension listens.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            ExtensionConfig::HealthCheck(c) => &c.endpoint,
            ExtensionConfig::Pprof(c) => &c.endpoint,
            ExtensionConfig::ZPages(c) => &c.endpoint,
        }
    }
}
