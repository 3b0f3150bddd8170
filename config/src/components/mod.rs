//! Every built-in component's configuration, one module per component
//! (its settings with the OpenTelemetry Collector's keys and defaults, and
//! the rules they must follow), and [`CATALOG`], the one table that
//! registers them: type name, deprecated aliases, kind, signals, the line
//! `tern components` prints, and how its settings are read. Loading,
//! validation, the pipeline graph and `tern components` go through the
//! table; none of them names a component type. Unknown keys are errors
//! (`deny_unknown_fields`), never ignored.
//!
//! Adding a component: a module here with its settings type implementing
//! [`ComponentConfig`], and one line in [`CATALOG`].

mod auth;
mod basicauth;
mod batch;
mod bearertokenauth;
mod client;
mod debug;
mod file;
mod file_storage;
mod forward;
mod headers_setter;
mod health_check;
pub(crate) mod load_balancing;
mod memory_limiter;
mod nop;
mod oidc;
mod otlp_grpc;
mod otlp_http;
mod otlp_receiver;
mod pprof;
pub(crate) mod probabilistic_sampler;
mod prometheus;
mod prometheus_remote_write;
mod server_limits;
pub(crate) mod tail_sampling;
mod zpages;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

pub use auth::{
    AuthConfig, AuthSide, PasswordHash, check_auth, check_authenticator, parse_htpasswd,
};
pub use basicauth::{BasicAuthConfig, ClientAuthConfig, HtpasswdConfig};
pub use batch::BatchConfig;
pub use bearertokenauth::{BearerTokenAuthConfig, parse_token_file};
pub use client::{
    Compression, QueueBatch, QueueConfig, QueuePartition, RetryConfig, Sizer, TlsClientConfig,
    check_client, check_storage,
};
pub use debug::{DebugConfig, Verbosity};
pub use file::{FileCompression, FileConfig, FileFormat, FileGroupBy, RotationConfig};
pub use file_storage::{CompactionConfig, FileStorageConfig};
pub use forward::ForwardConfig;
pub use headers_setter::{HeaderAction, HeaderSetting, HeadersSetterConfig};
pub use health_check::{CheckCollectorPipeline, HealthCheckConfig, HealthResponseBody};
pub use memory_limiter::MemoryLimiterConfig;
pub use nop::NopConfig;
pub use oidc::{OidcConfig, OidcProvider};
pub use otlp_grpc::{Balancer, OtlpExporterConfig};
pub use otlp_http::{HttpEncoding, OtlpHttpExporterConfig, ProxyUrl};
pub use otlp_receiver::{
    CorsConfig, GrpcServerConfig, HttpServerConfig, OtlpProtocols, OtlpReceiverConfig,
    TlsServerConfig, TlsVersion,
};
pub use pprof::PprofConfig;
pub use prometheus::{PrometheusConfig, ResourceToTelemetry, TranslationStrategy};
pub use prometheus_remote_write::{
    PrometheusRemoteWriteConfig, RemoteWriteQueue, TargetInfo, WalConfig,
};
pub use server_limits::{
    GrpcEnforcementPolicy, GrpcKeepalive, GrpcServerParameters, HttpKeepalive,
};
pub use zpages::ZPagesConfig;

use crate::types::{ComponentId, Endpoint, Signal};
use crate::yaml::{Loc, Node, NodeKind};
use crate::{ConfigError, LoadBalancingConfig, PipelineConfig, ProbabilisticSamplerConfig};
use crate::{TailSamplingConfig, de};

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
    /// Every kind, in the order components are checked and listed.
    pub const ALL: [Kind; 5] = [
        Kind::Receiver,
        Kind::Processor,
        Kind::Exporter,
        Kind::Connector,
        Kind::Extension,
    ];

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

/// A component's typed settings. Each component's settings type implements
/// it in the component's module; [`CATALOG`] reads them.
pub trait ComponentConfig: Any + fmt::Debug + Send + Sync {
    /// Pushes every problem with these settings to `errors`, each at its
    /// key (pure: no I/O). What passes here, the component can be built
    /// from: a config that validates starts.
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        let _ = (c, errors);
    }

    /// The addresses it listens on, each with the path of its key.
    fn listens(&self) -> Vec<(Vec<&'static str>, Endpoint)> {
        Vec::new()
    }
}

/// What a component's [`ComponentConfig::check`] knows besides its
/// settings: where they are written, and the pipelines that use it.
#[derive(Debug, Clone)]
pub struct Check<'a> {
    /// Its kind.
    pub kind: Kind,
    /// Its id.
    pub id: &'a ComponentId,
    /// Where its settings (or, for a nested section, the section) start;
    /// the id's line when not written.
    pub loc: &'a Loc,
    /// Its settings' YAML (or the nested section's).
    pub node: &'a Node,
    /// The pipelines that list it.
    pub pipelines: Vec<&'a PipelineConfig>,
    /// The whole config, for settings that name other components (`auth`).
    pub config: &'a crate::Config,
    /// Keys of a nested section checked as a component of its own
    /// (`protocol.otlp` of `load_balancing`), else empty.
    prefix: Vec<&'a str>,
}

/// An empty mapping, for a nested section that is not written.
static NULL: std::sync::LazyLock<Node> = std::sync::LazyLock::new(|| Node {
    kind: NodeKind::Null,
    loc: Loc {
        file: "".into(),
        line: 0,
        col: 0,
    },
});

impl<'a> Check<'a> {
    /// What `c`'s checks see: `c` and the pipelines that list it.
    pub fn new(kind: Kind, c: &'a crate::Component, config: &'a crate::Config) -> Check<'a> {
        let pipelines = config
            .service
            .pipelines
            .values()
            .filter(|p| {
                let refs = match kind {
                    Kind::Receiver => &p.receivers,
                    Kind::Processor => &p.processors,
                    Kind::Exporter => &p.exporters,
                    Kind::Extension | Kind::Connector => {
                        return p.receivers.iter().chain(&p.exporters).any(|r| r.id == c.id);
                    }
                };
                refs.iter().any(|r| r.id == c.id)
            })
            .collect();
        Check {
            kind,
            id: &c.id,
            loc: &c.loc,
            node: &c.node,
            pipelines,
            config,
            prefix: Vec::new(),
        }
    }

    /// The key of the setting at `path`: `section.id.path`.
    pub fn key(&self, path: &[&str]) -> String {
        let mut key = format!("{}.{}", self.kind.section(), self.id);
        for p in self.prefix.iter().chain(path) {
            key.push('.');
            key.push_str(p);
        }
        key
    }

    /// A problem with the setting at `path`, at the line of the deepest key
    /// of `path` that is written, or of the component when none is.
    pub fn setting(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        let loc = if path.is_empty() || self.node.get(path[0]).is_none() {
            self.loc
        } else {
            self.node.locate(path)
        };
        self.at(loc, self.key(path), message)
    }

    /// A problem keyed by `path` but shown at the component's own line
    /// (for settings that are missing or conflict as a whole).
    pub fn here(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        self.at(self.loc, self.key(path), message)
    }

    /// A problem at `loc` with `key`.
    pub fn at(&self, loc: &Loc, key: String, message: impl Into<String>) -> ConfigError {
        ConfigError {
            loc: Some(loc.clone()),
            key,
            message: message.into(),
        }
    }

    /// The same component seen from a nested section at `path`, whose
    /// problems are keyed and located under it.
    pub fn nested(&self, path: &[&'a str]) -> Check<'a> {
        let mut node = Some(self.node);
        for p in path {
            node = node.and_then(|n| n.get(p));
        }
        let mut prefix = self.prefix.clone();
        prefix.extend_from_slice(path);
        Check {
            kind: self.kind,
            id: self.id,
            loc: node.map_or(self.loc, |n| &n.loc),
            node: node.unwrap_or(&NULL),
            pipelines: self.pipelines.clone(),
            config: self.config,
            prefix,
        }
    }
}

/// How a component's settings are read: unknown keys are errors.
pub type Parse = fn(&Node, &str) -> Result<Arc<dyn ComponentConfig>, Vec<ConfigError>>;

/// Reads settings of type `T` (the [`Parse`] of most components).
pub fn parse<T: ComponentConfig + DeserializeOwned>(
    node: &Node,
    path: &str,
) -> Result<Arc<dyn ComponentConfig>, Vec<ConfigError>> {
    Ok(Arc::new(de::from_node::<T>(node, path)?))
}

/// One built-in component type: an entry of [`CATALOG`].
#[derive(Debug, Clone, Copy)]
pub struct ComponentInfo {
    /// Receiver, processor, exporter, connector or extension.
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
    /// For a connector: whether it takes the first signal as an exporter
    /// and emits the second as a receiver (the Collector's "supported
    /// pairs of data types").
    pub connects: fn(Signal, Signal) -> bool,
    /// Reads its settings.
    pub parse: Parse,
}

const ALL: &[Signal] = &Signal::ALL;

fn no_pairs(_: Signal, _: Signal) -> bool {
    false
}

fn same_signal(from: Signal, to: Signal) -> bool {
    from == to
}

const fn entry(
    kind: Kind,
    type_name: &'static str,
    signals: &'static [Signal],
    description: &'static str,
    parse: Parse,
) -> ComponentInfo {
    ComponentInfo {
        kind,
        type_name,
        aliases: &[],
        signals,
        description,
        connects: no_pairs,
        parse,
    }
}

impl ComponentInfo {
    const fn aliases(self, aliases: &'static [&'static str]) -> Self {
        ComponentInfo { aliases, ..self }
    }

    const fn connects(self, connects: fn(Signal, Signal) -> bool) -> Self {
        ComponentInfo { connects, ..self }
    }
}

/// Every built-in component, in the order `tern components` lists them.
#[rustfmt::skip]
pub const CATALOG: &[ComponentInfo] = &[
    entry(Kind::Receiver, "otlp", ALL, "OTLP over gRPC (4317) and HTTP (4318), protobuf and JSON", parse::<OtlpReceiverConfig>),
    entry(Kind::Processor, "memory_limiter", ALL, "refuses new data (retryably) while the bytes held in pipelines exceed a limit", parse::<MemoryLimiterConfig>),
    entry(Kind::Processor, "batch", ALL, "groups items into batches by size and timeout", parse::<BatchConfig>),
    entry(Kind::Processor, "probabilistic_sampler", &[Signal::Traces, Signal::Logs], "keeps a share of spans (whole traces) and log records, as the Collector decides", parse::<ProbabilisticSamplerConfig>),
    entry(Kind::Processor, "tail_sampling", &[Signal::Traces], "holds whole traces and keeps those its policies sample, as the Collector decides", parse::<TailSamplingConfig>),
    entry(Kind::Exporter, "debug", ALL, "writes items to the log (basic, normal, detailed)", parse::<DebugConfig>),
    entry(Kind::Exporter, "file", ALL, "writes OTLP JSON lines or length-prefixed protobuf to a file, with rotation", parse::<FileConfig>),
    entry(Kind::Exporter, "otlp_grpc", ALL, "OTLP/gRPC to a backend, with queue, retry and backpressure", parse::<OtlpExporterConfig>).aliases(&["otlp"]),
    entry(Kind::Exporter, "otlp_http", ALL, "OTLP/HTTP (protobuf or JSON) to a backend, with queue, retry and backpressure", parse::<OtlpHttpExporterConfig>).aliases(&["otlphttp"]),
    entry(Kind::Exporter, "prometheus", &[Signal::Metrics], "serves metrics for Prometheus to scrape (text format and OpenMetrics)", parse::<PrometheusConfig>),
    entry(Kind::Exporter, "prometheus_remote_write", &[Signal::Metrics], "pushes metrics with Prometheus remote write 1.0 (native histograms too)", parse::<PrometheusRemoteWriteConfig>).aliases(&["prometheusremotewrite"]),
    entry(Kind::Exporter, "load_balancing", ALL, "OTLP/gRPC to backends chosen by trace id, service, resource, metric or stream (consistent hashing)", parse::<LoadBalancingConfig>).aliases(&["loadbalancing"]),
    entry(Kind::Exporter, "nop", ALL, "accepts and discards everything", parse::<NopConfig>),
    entry(Kind::Connector, "forward", ALL, "passes data unchanged from one pipeline to others of the same signal", parse::<ForwardConfig>).connects(same_signal),
    entry(Kind::Extension, "basicauth", &[], "HTTP Basic authentication: htpasswd users for receivers, or the credentials exporters send", parse::<BasicAuthConfig>),
    entry(Kind::Extension, "bearertokenauth", &[], "bearer token authentication for receivers and exporters (static tokens or a watched file)", parse::<BearerTokenAuthConfig>),
    entry(Kind::Extension, "file_storage", &[], "a directory where exporters keep their persistent queues (`sending_queue.storage`): write-ahead logs that survive restarts and crashes", parse::<FileStorageConfig>),
    entry(Kind::Extension, "headers_setter", &[], "sets headers on exporters' requests from fixed values, received metadata or the sender's authentication", parse::<HeadersSetterConfig>),
    entry(Kind::Extension, "health_check", &[], "HTTP health endpoint (200 when running, 503 otherwise)", parse::<HealthCheckConfig>),
    entry(Kind::Extension, "oidc", &[], "OpenID Connect authentication for receivers: JWTs verified with the issuer's keys (discovery, JWKS, rotation)", parse::<OidcConfig>),
    entry(Kind::Extension, "pprof", &[], "CPU profiles of Tern in pprof format (/debug/pprof/profile)", parse::<PprofConfig>),
    entry(Kind::Extension, "zpages", &[], "HTML pages describing the running service, pipelines and extensions", parse::<ZPagesConfig>),
];

/// The extension `id` names, when it is configured and listed in
/// `service.extensions`.
pub fn enabled_extension<'c>(config: &'c crate::Config, id: &str) -> Option<&'c crate::Component> {
    let id: ComponentId = id.trim().parse().ok()?;
    if !config.service.extensions.iter().any(|r| r.id == id) {
        return None;
    }
    config.extensions.get(&id)
}

/// Looks a type up in the catalog, by its name or one of its aliases.
pub fn lookup(kind: Kind, type_name: &str) -> Option<&'static ComponentInfo> {
    CATALOG
        .iter()
        .find(|c| c.kind == kind && (c.type_name == type_name || c.aliases.contains(&type_name)))
}

/// Whether a connector of type `type_name` (or one of its aliases) can
/// take `from` data as an exporter and emit `to` data as a receiver.
pub fn connects(type_name: &str, from: Signal, to: Signal) -> bool {
    lookup(Kind::Connector, type_name).is_some_and(|c| (c.connects)(from, to))
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
