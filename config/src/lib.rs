//! Tern's configuration, in the OpenTelemetry Collector's YAML format.
//!
//! Loading goes: YAML text -> located tree ([`yaml`]) -> several files merged
//! (later wins) -> `${env:VAR}` expanded -> typed components ([`components`],
//! deserialized through [`de`]) -> [`validate`]. Every step collects all the
//! problems it finds, each with file, line and key ([`ConfigError`]), instead
//! of stopping at the first. Nothing here does I/O except [`load_files`].

pub mod components;
pub mod de;
mod error;
pub mod graph;
pub mod telemetry;
pub mod types;
pub mod validate;
pub mod yaml;

use std::collections::BTreeMap;
use std::time::Duration;

pub use components::load_balancing::{
    AwsCloudMapResolverConfig, DnsResolverConfig, K8sResolverConfig, LbProtocol,
    LoadBalancingConfig, ResolverConfig, RoutingKey, StaticResolverConfig, k8s_service,
};
pub use components::probabilistic_sampler::{
    AttributeSource, ProbabilisticSamplerConfig, SamplerMode,
};
pub use components::tail_sampling::{
    AndConfig, BooleanAttributeConfig, BytesLimitingConfig, CompositeConfig, DecisionCacheConfig,
    DropConfig, LatencyConfig, NumericAttributeConfig, PolicyConfig, ProbabilisticConfig,
    RateAllocationConfig, RateLimitingConfig, SpanCountConfig, StatusCodeConfig,
    StringAttributeConfig, TailSamplingConfig, TraceStateConfig,
};
pub use components::{
    Balancer, BatchConfig, CheckCollectorPipeline, ComponentConfig, Compression, DebugConfig,
    FileCompression, FileConfig, FileFormat, FileGroupBy, FileStorageConfig, ForwardConfig,
    GrpcServerConfig, HealthCheckConfig, HealthResponseBody, HttpEncoding, HttpServerConfig, Kind,
    MemoryLimiterConfig, NopConfig, OtlpExporterConfig, OtlpHttpExporterConfig, OtlpReceiverConfig,
    PprofConfig, PrometheusConfig, PrometheusRemoteWriteConfig, Protocol, ProxyUrl, QueueBatch,
    QueueConfig, QueuePartition, RemoteWriteQueue, ResourceToTelemetry, RetryConfig,
    RotationConfig, Sizer, TargetInfo, TlsClientConfig, TlsServerConfig, TranslationStrategy,
    Verbosity, WalConfig, ZPagesConfig,
};
pub use error::{ConfigError, ConfigErrors};
pub use telemetry::{
    BatchSettings, FieldValue, LogEncoding, LogOutput, LogProcessor, LogSampling, LogsTelemetry,
    MetricsLevel, MetricsTelemetry, OtlpTelemetryExporter, PeriodicReader, TelemetryConfig,
    TelemetryProtocol, Temporality,
};
pub use types::{ComponentId, Endpoint, GoDuration, PipelineId, Signal, Target};
use yaml::{Loc, Node, NodeKind};

/// The config used when `tern` runs without `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.yaml");

/// A configured component: its id, its type's catalog entry, its typed
/// settings and the YAML they came from.
#[derive(Debug, Clone)]
pub struct Component {
    /// `type` or `type/name`.
    pub id: ComponentId,
    /// Its type (resolved from aliases).
    pub info: &'static components::ComponentInfo,
    /// Typed settings.
    pub config: std::sync::Arc<dyn ComponentConfig>,
    /// Where the id was written (for error messages).
    pub loc: Loc,
    /// The settings' YAML (for locating keys in later checks).
    pub node: Node,
}

impl Component {
    /// Whether `other` is of the same type with the same settings, compared
    /// through the typed settings' `Debug` form (every settings type derives
    /// it over all its fields), so moving a component within its file does
    /// not count as a change. A configuration reload keeps the components
    /// for which this holds.
    pub fn same_settings(&self, other: &Component) -> bool {
        self.info.type_name == other.info.type_name
            && format!("{:?}", self.config) == format!("{:?}", other.config)
    }

    /// The settings, as the type its module defines (`None` for another type).
    pub fn settings<T: ComponentConfig>(&self) -> Option<&T> {
        let any: &dyn std::any::Any = self.config.as_ref();
        any.downcast_ref()
    }
}

/// A reference from `service` to a component, with where it was written.
#[derive(Debug, Clone)]
pub struct Ref {
    /// The referenced id.
    pub id: ComponentId,
    /// Where it was written.
    pub loc: Loc,
}

/// One `service.pipelines` entry.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// `traces`, `metrics/2`, ...
    pub id: PipelineId,
    /// Where the pipeline id was written.
    pub loc: Loc,
    /// Receivers feeding it.
    pub receivers: Vec<Ref>,
    /// Processors, in order.
    pub processors: Vec<Ref>,
    /// Exporters it fans out to.
    pub exporters: Vec<Ref>,
}

/// `service`.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    /// Extensions to start.
    pub extensions: Vec<Ref>,
    /// Pipelines by id.
    pub pipelines: BTreeMap<PipelineId, PipelineConfig>,
    /// Own logs and metrics.
    pub telemetry: TelemetryConfig,
    /// Where `service.pipelines` is written, else `service`, else the
    /// document's start (for problems with the pipelines as a whole).
    pub loc: Option<Loc>,
}

/// A whole, typed configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `receivers`.
    pub receivers: BTreeMap<ComponentId, Component>,
    /// `processors`.
    pub processors: BTreeMap<ComponentId, Component>,
    /// `exporters`.
    pub exporters: BTreeMap<ComponentId, Component>,
    /// `extensions`.
    pub extensions: BTreeMap<ComponentId, Component>,
    /// `connectors`.
    pub connectors: BTreeMap<ComponentId, Component>,
    /// `service`.
    pub service: ServiceConfig,
    /// Components that are declared but whose settings did not type-check;
    /// validation treats them as defined so one mistake gives one message.
    pub invalid: std::collections::BTreeSet<(Kind, ComponentId)>,
    /// Things that work but should change (deprecated names and keys), each
    /// with where it is written; `tern validate` prints them, `tern` logs them.
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// How long shutdown waits for exporters to flush.
    pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

    /// The components of one section.
    pub fn section(&self, kind: Kind) -> &BTreeMap<ComponentId, Component> {
        match kind {
            Kind::Receiver => &self.receivers,
            Kind::Processor => &self.processors,
            Kind::Exporter => &self.exporters,
            Kind::Extension => &self.extensions,
            Kind::Connector => &self.connectors,
        }
    }

    fn section_mut(&mut self, kind: Kind) -> &mut BTreeMap<ComponentId, Component> {
        match kind {
            Kind::Receiver => &mut self.receivers,
            Kind::Processor => &mut self.processors,
            Kind::Exporter => &mut self.exporters,
            Kind::Extension => &mut self.extensions,
            Kind::Connector => &mut self.connectors,
        }
    }
}

/// Reads, merges, expands and types the given files, then validates. `env`
/// supplies environment variables. Returns every problem found.
pub fn load_files(
    files: &[std::path::PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        match std::fs::read_to_string(path) {
            Ok(text) => sources.push((path.display().to_string(), text)),
            Err(e) => errors.push(ConfigError {
                loc: None,
                key: String::new(),
                message: format!("cannot read config file {}: {e}", path.display()),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    load_sources(&sources, env)
}

/// Like [`load_files`] but from `(name, text)` pairs; pure.
pub fn load_sources(
    sources: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut root: Option<Node> = None;
    for (name, text) in sources {
        match yaml::parse(name, text) {
            Ok(node) => match &mut root {
                None => root = Some(node),
                Some(base) => yaml::merge(base, node),
            },
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let Some(mut root) = root else {
        return Err(ConfigErrors(vec![ConfigError {
            loc: None,
            key: String::new(),
            message: "no configuration given".into(),
        }]));
    };
    let notes = yaml::expand_env(&mut root, env, &mut errors);
    // A value that could not be expanded gets that one message, not a
    // second one about the unexpanded text.
    let unexpanded: Vec<Loc> = errors.iter().filter_map(|e| e.loc.clone()).collect();
    let mut later = Vec::new();
    let mut config = from_tree(&root, &mut later);
    later.extend(validate::validate(&config));
    errors.extend(
        later
            .into_iter()
            .filter(|e| e.loc.as_ref().is_none_or(|l| !unexpanded.contains(l))),
    );
    // A problem with a value that used an unset or empty variable names it.
    for e in &mut errors {
        for note in notes.iter().filter(|n| e.loc.as_ref() == Some(&n.loc)) {
            e.message = format!("{} ({})", e.message, note.describe());
        }
    }
    // As the Collector's env provider: an unset variable is worth a warning.
    config
        .warnings
        .extend(notes.iter().filter(|n| n.unset).map(|n| ConfigError {
            loc: Some(n.loc.clone()),
            key: String::new(),
            message: format!("{}: it expands to the empty string", n.describe()),
        }));
    if errors.is_empty() {
        config.warnings = sort(config.warnings);
        Ok(config)
    } else {
        Err(ConfigErrors(sort(errors)))
    }
}

fn sort(mut errors: Vec<ConfigError>) -> Vec<ConfigError> {
    errors.sort_by(|a, b| {
        let key = |e: &ConfigError| e.loc.as_ref().map(|l| (l.file.clone(), l.line, l.col));
        key(a).cmp(&key(b))
    });
    errors.dedup();
    errors
}

fn err(node: &Node, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        loc: Some(node.loc.clone()),
        key: key.to_string(),
        message: message.into(),
    }
}

fn entries<'a>(node: &'a Node, key: &str, errors: &mut Vec<ConfigError>) -> &'a [(Node, Node)] {
    match &node.kind {
        NodeKind::Map(entries) => entries,
        NodeKind::Null => &[],
        _ => {
            errors.push(err(
                node,
                key,
                format!("expected a mapping, found {}", node.shape()),
            ));
            &[]
        }
    }
}

/// Builds the typed config from a merged, expanded tree; problems go to `errors`.
pub fn from_tree(root: &Node, errors: &mut Vec<ConfigError>) -> Config {
    let mut config = Config::default();
    for (key, value) in entries(root, "", errors) {
        let section = key.as_str().unwrap_or_default();
        if let Some(kind) = Kind::ALL.into_iter().find(|k| k.section() == section) {
            let parsed = components(
                value,
                kind,
                errors,
                &mut config.invalid,
                &mut config.warnings,
            );
            *config.section_mut(kind) = parsed;
            continue;
        }
        match section {
            "service" => {
                config.service = service(value, errors, &mut config.warnings);
                config.service.loc.get_or_insert_with(|| key.loc.clone());
            }
            other => errors.push(err(
                key,
                other,
                "unknown top-level key (expected receivers, processors, exporters, connectors, extensions, service)",
            )),
        }
    }
    config.service.loc.get_or_insert_with(|| root.loc.clone());
    config
}

/// The components of one section, each read by its catalog entry.
fn components(
    section: &Node,
    kind: Kind,
    errors: &mut Vec<ConfigError>,
    invalid: &mut std::collections::BTreeSet<(Kind, ComponentId)>,
    warnings: &mut Vec<ConfigError>,
) -> BTreeMap<ComponentId, Component> {
    let mut out = BTreeMap::new();
    // Every id read so far (also those whose settings are wrong), for the
    // Collector's "duplicate name" check: `otlp/a` and `otlp/ a ` are one id.
    let mut seen: BTreeMap<ComponentId, Loc> = BTreeMap::new();
    for (key, value) in entries(section, kind.section(), errors) {
        let raw = key.as_str().unwrap_or_default();
        let path = format!("{}.{raw}", kind.section());
        let id: ComponentId = match raw.parse() {
            Ok(id) => id,
            Err(message) => {
                errors.push(err(key, &path, message));
                continue;
            }
        };
        let info = components::lookup(kind, &id.kind);
        if let Some(info) = info
            && info.type_name != id.kind
        {
            warnings.push(err(
                key,
                &path,
                format!(
                    "`{}` is a deprecated alias of the {} type `{}`; use `{}`",
                    id.kind,
                    kind.noun(),
                    info.type_name,
                    info.type_name
                ),
            ));
        }
        if let Some(first) = seen.get(&id) {
            errors.push(err(
                key,
                &path,
                format!(
                    "duplicate name `{raw}` (the same id as `{id}` at line {})",
                    first.line
                ),
            ));
            continue;
        }
        seen.insert(id.clone(), key.loc.clone());
        match info.map(|info| (info, (info.parse)(value, &path))) {
            Some((info, Ok(config))) => {
                out.insert(
                    id.clone(),
                    Component {
                        id,
                        info,
                        config,
                        loc: key.loc.clone(),
                        node: value.clone(),
                    },
                );
            }
            Some((_, Err(e))) => {
                errors.extend(e);
                invalid.insert((kind, id));
            }
            None => {
                let known: Vec<&str> = components::CATALOG
                    .iter()
                    .filter(|c| c.kind == kind)
                    .map(|c| c.type_name)
                    .collect();
                errors.push(err(
                    key,
                    &path,
                    format!(
                        "unknown {} type `{}` (built in: {})",
                        kind.noun(),
                        id.kind,
                        known.join(", ")
                    ),
                ));
                invalid.insert((kind, id));
            }
        }
    }
    out
}

fn refs(node: &Node, path: &str, errors: &mut Vec<ConfigError>) -> Vec<Ref> {
    let Some(items) = node.list_items() else {
        errors.push(err(
            node,
            path,
            format!("expected a list of component ids, found {}", node.shape()),
        ));
        return Vec::new();
    };
    let mut out: Vec<Ref> = Vec::new();
    for item in items.iter() {
        match item.as_str().map(str::parse::<ComponentId>) {
            Some(Ok(id)) => {
                if out.iter().any(|r| r.id == id) {
                    errors.push(err(item, path, format!("`{id}` is listed twice")));
                } else {
                    out.push(Ref {
                        id,
                        loc: item.loc.clone(),
                    });
                }
            }
            Some(Err(message)) => errors.push(err(item, path, message)),
            None => errors.push(err(item, path, "expected a component id")),
        }
    }
    out
}

fn service(
    node: &Node,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) -> ServiceConfig {
    let mut service = ServiceConfig::default();
    for (key, value) in entries(node, "service", errors) {
        match key.as_str().unwrap_or_default() {
            "extensions" => service.extensions = refs(value, "service.extensions", errors),
            "telemetry" => {
                service.telemetry = telemetry::parse(value, errors, warnings);
            }
            "pipelines" => {
                service.loc = Some(key.loc.clone());
                for (pkey, pvalue) in entries(value, "service.pipelines", errors) {
                    let raw = pkey.as_str().unwrap_or_default();
                    let path = format!("service.pipelines.{raw}");
                    let id: PipelineId = match raw.parse() {
                        Ok(id) => id,
                        Err(message) => {
                            errors.push(err(pkey, &path, message));
                            continue;
                        }
                    };
                    let mut pipeline = PipelineConfig {
                        id: id.clone(),
                        loc: pkey.loc.clone(),
                        receivers: Vec::new(),
                        processors: Vec::new(),
                        exporters: Vec::new(),
                    };
                    for (k, v) in entries(pvalue, &path, errors) {
                        let name = k.as_str().unwrap_or_default();
                        let kpath = format!("{path}.{name}");
                        match name {
                            "receivers" => pipeline.receivers = refs(v, &kpath, errors),
                            "processors" => pipeline.processors = refs(v, &kpath, errors),
                            "exporters" => pipeline.exporters = refs(v, &kpath, errors),
                            _ => errors.push(err(
                                k,
                                &kpath,
                                "unknown key (expected receivers, processors, exporters)",
                            )),
                        }
                    }
                    service.pipelines.insert(id, pipeline);
                }
            }
            other => errors.push(err(
                key,
                &format!("service.{other}"),
                "unknown key (expected extensions, pipelines, telemetry)",
            )),
        }
    }
    service
}
