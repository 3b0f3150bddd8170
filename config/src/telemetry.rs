//! `service.telemetry`: Tern's own logs and metrics, in the Collector's
//! current form (the OpenTelemetry configuration schema v0.3.0 for
//! `metrics.readers` and `logs.processors`, zap's keys for the rest of
//! `logs`): a Prometheus pull reader, periodic OTLP push readers, log
//! sampling, initial fields and OTLP log export. Every documented Collector
//! key is either honoured or a validate error that says Tern cannot honour
//! it; `metrics.address` (which the Collector removed) is still read, with a
//! deprecation warning. `resource` describes Tern's own telemetry, as in
//! the Collector. Durations of the schema's parts are integers of
//! milliseconds, as there; zap's `sampling.tick` is a Go duration.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::yaml::{Loc, Node, NodeKind};
use crate::{Compression, ConfigError, Endpoint, GoDuration, Target, de};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    /// Human-readable lines.
    #[default]
    Console,
    /// One JSON object per line.
    Json,
}

/// Where log lines go (`service.telemetry.logs.output_paths`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard error (the default).
    Stderr,
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(String),
}

/// `service.telemetry.logs.sampling`, with zap's semantics: per message
/// (and level) and per `tick`, the first `initial` lines are written, then
/// every `thereafter`-th (none when `thereafter` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSampling {
    /// The window the counts are kept for (default 10s).
    pub tick: Duration,
    /// Lines of one message written per tick before sampling (default 10).
    pub initial: u64,
    /// After `initial`, every this-many-th line is written (default 100).
    pub thereafter: u64,
}

impl Default for LogSampling {
    /// The Collector's default, on unless `enabled: false`.
    fn default() -> Self {
        LogSampling {
            tick: Duration::from_secs(10),
            initial: 10,
            thereafter: 100,
        }
    }
}

/// A value of `service.telemetry.logs.initial_fields`.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A plain integer.
    Int(i64),
    /// A plain number that is not an integer.
    Float(f64),
    /// Anything else, and every quoted scalar.
    String(String),
    /// A sequence.
    List(Vec<FieldValue>),
    /// A mapping.
    Map(BTreeMap<String, FieldValue>),
}

/// The OTLP protocol of a self-telemetry exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryProtocol {
    /// `http/protobuf`.
    HttpProtobuf,
    /// `http/json` (Tern's addition to the schema the Collector reads).
    HttpJson,
    /// `grpc`.
    Grpc,
}

/// An `exporter.otlp` of a periodic metric reader or a log record
/// processor, in the OpenTelemetry configuration schema (v0.3.0, the one
/// the Collector reads).
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpTelemetryExporter {
    /// `protocol`.
    pub protocol: TelemetryProtocol,
    /// `endpoint` with its scheme: one without gets `https://`, or
    /// `http://` with `insecure: true` (as the Collector normalizes it).
    /// Over HTTP, a URL without a path is sent to `/v1/metrics` or
    /// `/v1/logs`; with one, to that path.
    pub endpoint: String,
    /// `headers` (a list of `name`/`value`) over `headers_list`.
    pub headers: BTreeMap<String, String>,
    /// `compression`: gzip or none (default none).
    pub compression: Compression,
    /// `timeout` of one request (milliseconds in the file; default 10 s).
    pub timeout: Duration,
    /// `certificate`: CA file to verify the server with.
    pub certificate: String,
    /// `client_certificate`: client certificate file for mutual TLS.
    pub client_certificate: String,
    /// `client_key`: client key file for mutual TLS.
    pub client_key: String,
}

/// How a periodic reader reports counters and histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Temporality {
    /// Totals since start (the default).
    #[default]
    Cumulative,
    /// Change since the previous export (`delta`; `lowmemory` is the same
    /// for Tern, whose counters are all synchronous).
    Delta,
}

/// A `periodic` metric reader: Tern's self-metrics pushed over OTLP.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodicReader {
    /// `interval` between pushes (milliseconds in the file; default 60 s).
    pub interval: Duration,
    /// `timeout` of one push, retries included (milliseconds; default 30 s).
    pub timeout: Duration,
    /// `exporter.otlp`.
    pub exporter: OtlpTelemetryExporter,
    /// `exporter.otlp.temporality_preference` (default cumulative).
    pub temporality: Temporality,
}

/// A `batch` log record processor's settings (the OpenTelemetry SDK's
/// defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// `schedule_delay`: longest wait before a partial batch is sent
    /// (milliseconds; default 1 s).
    pub schedule_delay: Duration,
    /// `export_timeout` of one export, retries included (milliseconds;
    /// default 30 s).
    pub export_timeout: Duration,
    /// `max_queue_size`: records held; more are dropped (default 2048).
    pub max_queue_size: usize,
    /// `max_export_batch_size`: records per export (default 512).
    pub max_export_batch_size: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            schedule_delay: Duration::from_secs(1),
            export_timeout: Duration::from_secs(30),
            max_queue_size: 2048,
            max_export_batch_size: 512,
        }
    }
}

/// A log record processor: Tern's own log lines sent as OTLP logs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogProcessor {
    /// `batch` settings; `simple` sends each record on its own, at once
    /// (still through a queue of the default size, so logging never waits).
    pub batch: Option<BatchSettings>,
    /// `exporter.otlp`.
    pub exporter: OtlpTelemetryExporter,
}

/// `service.telemetry.logs`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsTelemetry {
    /// A `tracing` filter: `debug`, `info`, `warn`, `error`, or
    /// `info,tern=debug` (the Collector's zap level names are mapped onto it).
    pub level: String,
    /// console | json (default console).
    pub encoding: LogEncoding,
    /// Every line goes to each of these (default stderr).
    pub outputs: Vec<LogOutput>,
    /// Sampling (on by default, as in the Collector); `None` when disabled.
    pub sampling: Option<LogSampling>,
    /// Fields added to every line written (not to OTLP records, as in the
    /// Collector).
    pub initial_fields: BTreeMap<String, FieldValue>,
    /// OTLP log export.
    pub processors: Vec<LogProcessor>,
    /// Whether written lines carry Tern's resource as a `resource` field
    /// (true unless `disable_zap_resource: true`, as in the Collector; OTLP
    /// records carry it as their resource either way).
    pub resource_on_lines: bool,
}

impl Default for LogsTelemetry {
    fn default() -> Self {
        LogsTelemetry {
            level: "info".into(),
            encoding: LogEncoding::Console,
            outputs: vec![LogOutput::Stderr],
            sampling: Some(LogSampling::default()),
            initial_fields: BTreeMap::new(),
            processors: Vec::new(),
            resource_on_lines: true,
        }
    }
}

/// `service.telemetry.metrics.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsLevel {
    /// No self-metrics endpoint.
    None,
    /// Core counters.
    Basic,
    /// Everything (the default, as in the Collector).
    #[default]
    Normal,
    /// Everything.
    Detailed,
}

/// `service.telemetry.metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsTelemetry {
    /// none | basic | normal | detailed (default normal).
    pub level: MetricsLevel,
    /// Where the Prometheus self-metrics are served: the pull reader's
    /// `host:port` (default `localhost:8888`, as in the Collector); `None`
    /// when the readers name no pull reader.
    pub address: Option<Endpoint>,
    /// Where `address` is written; `None` for the default.
    pub loc: Option<Loc>,
    /// The periodic readers, each pushing the self-metrics over OTLP.
    pub periodic: Vec<PeriodicReader>,
}

impl Default for MetricsTelemetry {
    fn default() -> Self {
        MetricsTelemetry {
            level: MetricsLevel::Normal,
            address: Some(Endpoint::new("localhost", 8888)),
            loc: None,
            periodic: Vec::new(),
        }
    }
}

/// `service.telemetry`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryConfig {
    /// Log settings.
    pub logs: LogsTelemetry,
    /// Self-metrics settings.
    pub metrics: MetricsTelemetry,
    /// `resource`: attributes describing Tern itself, over the defaults
    /// (`service.name`, `service.version`, `service.instance.id`); a null
    /// value removes that attribute.
    pub resource: BTreeMap<String, Option<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Raw {
    logs: Option<IgnoredAny>,
    metrics: Option<IgnoredAny>,
    traces: Option<IgnoredAny>,
    resource: Option<IgnoredAny>,
}

/// The schema's form of one `resource.attributes` item.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawAttribute {
    name: String,
    value: Option<IgnoredAny>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLogs {
    level: Option<String>,
    encoding: Option<LogEncoding>,
    development: Option<bool>,
    disable_caller: Option<bool>,
    disable_stacktrace: Option<bool>,
    sampling: Option<IgnoredAny>,
    output_paths: Option<Vec<String>>,
    error_output_paths: Option<Vec<String>>,
    initial_fields: Option<IgnoredAny>,
    processors: Option<IgnoredAny>,
    disable_zap_resource: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSampling {
    enabled: Option<bool>,
    tick: Option<GoDuration>,
    initial: Option<u64>,
    thereafter: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    level: Option<MetricsLevel>,
    readers: Option<IgnoredAny>,
    views: Option<IgnoredAny>,
    /// Removed from the Collector; read as a deprecated alias.
    address: Option<Endpoint>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawReader {
    pull: Option<RawPull>,
    periodic: Option<RawPeriodic>,
    producers: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPull {
    exporter: RawPullExporter,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPullExporter {
    prometheus: Option<RawPrometheus>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPrometheus {
    host: Option<String>,
    port: Option<u16>,
    without_scope_info: Option<IgnoredAny>,
    without_units: Option<IgnoredAny>,
    without_type_suffix: Option<IgnoredAny>,
    with_resource_constant_labels: Option<IgnoredAny>,
    translation_strategy: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPeriodic {
    interval: Option<i64>,
    timeout: Option<i64>,
    exporter: RawPushExporter,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPushExporter {
    otlp: Option<RawOtlp>,
    console: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawOtlp {
    protocol: Option<String>,
    endpoint: Option<String>,
    headers: Option<Vec<RawHeader>>,
    headers_list: Option<String>,
    compression: Option<String>,
    timeout: Option<i64>,
    insecure: Option<bool>,
    certificate: Option<String>,
    client_certificate: Option<String>,
    client_key: Option<String>,
    /// Metric exporters only.
    temporality_preference: Option<String>,
    /// Metric exporters only.
    default_histogram_aggregation: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawHeader {
    name: String,
    value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLogProcessor {
    batch: Option<RawBatch>,
    simple: Option<RawSimple>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawBatch {
    schedule_delay: Option<i64>,
    export_timeout: Option<i64>,
    max_queue_size: Option<i64>,
    max_export_batch_size: Option<i64>,
    exporter: RawLogExporter,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSimple {
    exporter: RawLogExporter,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLogExporter {
    otlp: Option<RawOtlp>,
    console: Option<IgnoredAny>,
}

/// Reports a problem at a key path below `service.telemetry`.
type Problem<'a> = dyn FnMut(&[&str], &str) + 'a;

/// Deserializes the node at `path` below `telemetry` (if any) on its own,
/// so that a type error in one part does not hide the others.
fn section<T: serde::de::DeserializeOwned + Default>(
    telemetry: &Node,
    path: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let mut node = telemetry;
    for part in path {
        node = node.get(part)?;
    }
    let (value, problems) = de::from_node_partial::<T>(node, &dotted(path));
    errors.extend(problems);
    value
}

/// `service.telemetry.metrics.readers[0].pull`, as the deserializer writes
/// list items.
fn dotted(path: &[&str]) -> String {
    let mut key = String::from("service.telemetry");
    for part in path {
        if part.parse::<usize>().is_ok() {
            key.push_str(&format!("[{part}]"));
        } else {
            key.push('.');
            key.push_str(part);
        }
    }
    key
}

/// Reads `service.telemetry` from `node`; problems go to `errors`,
/// deprecations to `warnings`.
pub fn parse(
    node: &Node,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) -> TelemetryConfig {
    let (raw, unknown) = de::from_node_partial::<Raw>(node, "service.telemetry");
    errors.extend(unknown);
    let Some(raw) = raw else {
        return TelemetryConfig::default();
    };
    let mut found = Vec::new();
    let mut problem = |path: &[&str], message: &str| {
        found.push(ConfigError {
            loc: Some(node.locate(path).clone()),
            key: dotted(path),
            message: message.into(),
        });
    };
    if raw.traces.is_some() && !traces_off(node) {
        problem(
            &["traces"],
            "not supported: Tern does not export its own spans (only `level: none` is accepted)",
        );
    }
    let logs = match section::<RawLogs>(node, &["logs"], errors) {
        Some(raw) => logs(node, raw, &mut problem, errors),
        None => LogsTelemetry::default(),
    };
    let metrics = match section::<RawMetrics>(node, &["metrics"], errors) {
        Some(raw) => metrics(node, raw, &mut problem, errors, warnings),
        None => MetricsTelemetry::default(),
    };
    let resource = match raw.resource {
        Some(_) => resource(node, &mut problem, errors),
        None => BTreeMap::new(),
    };
    errors.extend(found);
    TelemetryConfig {
        logs,
        metrics,
        resource,
    }
}

/// `resource`: the legacy inline map (a null value removes a default
/// attribute) or the schema's `attributes: [{name, value}]`, not both, as
/// in the Collector. Tern's resource holds strings: another value type is
/// an error, not a silent conversion.
fn resource(
    telemetry: &Node,
    problem: &mut Problem<'_>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let Some(node) = telemetry.get("resource") else {
        return out;
    };
    let entries = match &node.kind {
        NodeKind::Map(entries) => entries,
        NodeKind::Null => return out,
        _ => {
            problem(&["resource"], "expected a mapping");
            return out;
        }
    };
    let mut legacy = false;
    let mut listed = false;
    for (key, value) in entries {
        let Some(key) = key.as_str() else { continue };
        match (key, &value.kind) {
            ("attributes", NodeKind::Seq(items)) => {
                listed = true;
                for (i, item) in items.iter().enumerate() {
                    let index = i.to_string();
                    let path = ["resource", "attributes", index.as_str()];
                    let Some(raw) = section::<RawAttribute>(telemetry, &path, errors) else {
                        continue;
                    };
                    let string = |node: &Node| match &node.kind {
                        NodeKind::Scalar { value, plain } => {
                            let typed = *plain
                                && (value.parse::<bool>().is_ok() || value.parse::<f64>().is_ok());
                            (!typed).then(|| value.clone())
                        }
                        _ => None,
                    };
                    if raw.name.is_empty() {
                        problem(&path, "`name` is required");
                    } else if raw.value.is_none() {
                        problem(&path, "`value` is required");
                    } else if raw.kind.as_deref().is_some_and(|k| k != "string") {
                        problem(
                            &join(&path, &["type"]),
                            "not supported: Tern's own resource holds strings (only `string` is accepted)",
                        );
                    } else if let Some(v) = item.get("value").and_then(string) {
                        out.insert(raw.name, Some(v));
                    } else {
                        problem(
                            &join(&path, &["value"]),
                            "not supported: Tern's own resource holds strings; quote the value",
                        );
                    }
                }
            }
            ("attributes_list" | "schema_url" | "detectors" | "detection/development", _) => {
                problem(
                    &["resource", key],
                    "not supported: set the attributes in `attributes` (or inline)",
                );
            }
            (_, NodeKind::Null) => {
                legacy = true;
                out.insert(key.to_string(), None);
            }
            (_, NodeKind::Scalar { value, .. }) => {
                legacy = true;
                out.insert(key.to_string(), Some(value.clone()));
            }
            _ => problem(
                &["resource", key],
                "a resource attribute must be a string or null",
            ),
        }
    }
    if legacy && listed {
        problem(
            &["resource", "attributes"],
            "`attributes` cannot be used together with inline resource attributes",
        );
    }
    out
}

/// `traces: {level: none}` (or empty) asks for nothing Tern lacks.
fn traces_off(node: &Node) -> bool {
    match node.get("traces").map(|t| &t.kind) {
        Some(NodeKind::Map(entries)) => entries.iter().all(|(k, v)| {
            k.as_str() == Some("level")
                && v.as_str().is_some_and(|l| l.eq_ignore_ascii_case("none"))
        }),
        Some(NodeKind::Null) | None => true,
        Some(_) => false,
    }
}

/// A YAML value as a log field (plain scalars typed as YAML types them).
fn field_value(node: &Node) -> FieldValue {
    match &node.kind {
        NodeKind::Null => FieldValue::Null,
        NodeKind::Scalar { value, plain: true } => {
            if let Ok(b) = value.parse::<bool>() {
                FieldValue::Bool(b)
            } else if let Ok(i) = value.parse::<i64>() {
                FieldValue::Int(i)
            } else if let Ok(f) = value.parse::<f64>() {
                FieldValue::Float(f)
            } else {
                FieldValue::String(value.clone())
            }
        }
        NodeKind::Scalar { value, .. } => FieldValue::String(value.clone()),
        NodeKind::Seq(items) => FieldValue::List(items.iter().map(field_value).collect()),
        NodeKind::Map(entries) => FieldValue::Map(map_fields(entries)),
    }
}

fn map_fields(entries: &[(Node, Node)]) -> BTreeMap<String, FieldValue> {
    entries
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), field_value(v))))
        .collect()
}

fn logs(
    node: &Node,
    raw: RawLogs,
    problem: &mut Problem<'_>,
    errors: &mut Vec<ConfigError>,
) -> LogsTelemetry {
    let mut logs = LogsTelemetry::default();
    if let Some(level) = raw.level {
        // zap's names (either case); anything else is a `tracing` filter.
        logs.level = match level.to_ascii_lowercase().as_str() {
            "debug" | "info" | "warn" | "error" => level.to_ascii_lowercase(),
            "dpanic" | "panic" | "fatal" => "error".into(),
            _ => level,
        };
    }
    if let Some(encoding) = raw.encoding {
        logs.encoding = encoding;
    }
    if raw.development == Some(true) {
        problem(
            &["logs", "development"],
            "not supported: Tern has no development logging mode (only `false` is accepted)",
        );
    }
    for (key, value) in [
        ("disable_caller", raw.disable_caller),
        ("disable_stacktrace", raw.disable_stacktrace),
    ] {
        if value == Some(false) {
            problem(
                &["logs", key],
                "not supported: Tern's log lines carry no caller or stack trace (only `true` is accepted)",
            );
        }
    }
    if let Some(disable) = raw.disable_zap_resource {
        logs.resource_on_lines = !disable;
    }
    if raw.sampling.is_some()
        && let Some(s) = section::<RawSampling>(node, &["logs", "sampling"], errors)
    {
        // Keys left out keep the Collector's defaults.
        let defaults = LogSampling::default();
        logs.sampling = (s.enabled != Some(false)).then(|| LogSampling {
            tick: s.tick.map_or(defaults.tick, |t| t.0),
            initial: s.initial.unwrap_or(defaults.initial),
            thereafter: s.thereafter.unwrap_or(defaults.thereafter),
        });
    }
    if let Some(paths) = raw.output_paths {
        logs.outputs = paths
            .into_iter()
            .map(|p| match p.as_str() {
                "stderr" => LogOutput::Stderr,
                "stdout" => LogOutput::Stdout,
                _ => LogOutput::File(p),
            })
            .collect();
        if logs.outputs.is_empty() {
            problem(&["logs", "output_paths"], "must name at least one output");
        }
    }
    if let Some(paths) = raw.error_output_paths
        && paths.iter().any(|p| p != "stderr")
    {
        problem(
            &["logs", "error_output_paths"],
            "not supported: Tern's logger reports its own errors on stderr (only `[stderr]` is accepted)",
        );
    }
    if raw.initial_fields.is_some() {
        match node.deepest(&["logs", "initial_fields"]).kind {
            NodeKind::Map(ref entries) => logs.initial_fields = map_fields(entries),
            NodeKind::Null => {}
            _ => problem(&["logs", "initial_fields"], "expected a mapping"),
        }
    }
    if raw.processors.is_some() {
        for_each_item(node, &["logs", "processors"], problem, |index, problem| {
            let path = ["logs", "processors", index];
            let raw = section::<RawLogProcessor>(node, &path, errors)?;
            log_processor(&path, raw, problem)
        })
        .into_iter()
        .for_each(|p| logs.processors.push(p));
    }
    logs
}

/// Calls `each` with the index of every item of the sequence at `path`;
/// collects what it returns.
fn for_each_item<T>(
    node: &Node,
    path: &[&str],
    problem: &mut Problem<'_>,
    mut each: impl FnMut(&str, &mut Problem<'_>) -> Option<T>,
) -> Vec<T> {
    let items = match &node.deepest(path).kind {
        NodeKind::Seq(items) => items.len(),
        NodeKind::Null => 0,
        _ => {
            problem(path, "expected a sequence");
            0
        }
    };
    (0..items)
        .filter_map(|i| each(&i.to_string(), problem))
        .collect()
}

/// `a` then `b`.
fn join<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    [a, b].concat()
}

/// A non-negative count of milliseconds; `None` (the default) for a value
/// at or below zero, as the OpenTelemetry SDK takes it.
fn millis(value: Option<i64>) -> Option<Duration> {
    value
        .and_then(|ms| u64::try_from(ms).ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

fn log_processor(
    path: &[&str],
    raw: RawLogProcessor,
    problem: &mut Problem<'_>,
) -> Option<LogProcessor> {
    let (batch, exporter, kind) = match (raw.batch, raw.simple) {
        (Some(_), Some(_)) => {
            problem(path, "set either `batch` or `simple`, not both");
            return None;
        }
        (None, None) => {
            problem(path, "expected `batch` or `simple`");
            return None;
        }
        (Some(b), None) => {
            let defaults = BatchSettings::default();
            let mut settings = defaults;
            for (key, value) in [
                ("schedule_delay", b.schedule_delay),
                ("export_timeout", b.export_timeout),
                ("max_queue_size", b.max_queue_size),
                ("max_export_batch_size", b.max_export_batch_size),
            ] {
                if value.is_some_and(|v| v < 0) {
                    problem(&join(path, &["batch", key]), "must not be negative");
                }
            }
            settings.schedule_delay = millis(b.schedule_delay).unwrap_or(defaults.schedule_delay);
            settings.export_timeout = millis(b.export_timeout).unwrap_or(defaults.export_timeout);
            let count = |v: Option<i64>, default: usize| {
                v.and_then(|v| usize::try_from(v).ok())
                    .filter(|v| *v > 0)
                    .unwrap_or(default)
            };
            settings.max_queue_size = count(b.max_queue_size, defaults.max_queue_size);
            // The SDK's rule: a batch is never larger than the queue.
            settings.max_export_batch_size =
                count(b.max_export_batch_size, defaults.max_export_batch_size)
                    .min(settings.max_queue_size);
            (Some(settings), b.exporter, "batch")
        }
        (None, Some(s)) => (None, s.exporter, "simple"),
    };
    if exporter.console.is_some() {
        problem(
            &join(path, &[kind, "exporter", "console"]),
            "not supported: Tern's log lines already go to `output_paths`; use `otlp`",
        );
        return None;
    }
    let Some(otlp) = exporter.otlp else {
        problem(&join(path, &[kind, "exporter"]), "expected `otlp`");
        return None;
    };
    let (exporter, _) = otlp_exporter(
        &join(path, &[kind, "exporter", "otlp"]),
        otlp,
        false,
        problem,
    )?;
    Some(LogProcessor { batch, exporter })
}

/// `headers_list`: `name=value` pairs separated by commas (the W3C baggage
/// form the schema names), values percent-decoded.
fn headers_list(list: &str) -> Result<Vec<(String, String)>, String> {
    list.split(',')
        .filter(|member| !member.trim().is_empty())
        .map(|member| {
            // Properties after `;` are not part of the value.
            let member = member.split(';').next().unwrap_or_default();
            let (name, value) = member
                .split_once('=')
                .ok_or_else(|| format!("`{}` is not `name=value`", member.trim()))?;
            let name = name.trim();
            if name.is_empty() {
                return Err("a header has an empty name".into());
            }
            Ok((name.to_string(), percent_decode(value.trim())?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in `{s}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

/// Checks an `exporter.otlp` at `path`; `metrics` allows the metric-only
/// keys (and the temporality returned is theirs).
fn otlp_exporter(
    path: &[&str],
    raw: RawOtlp,
    metrics: bool,
    problem: &mut Problem<'_>,
) -> Option<(OtlpTelemetryExporter, Temporality)> {
    let mut ok = true;
    if !metrics {
        for (key, set) in [
            (
                "temporality_preference",
                raw.temporality_preference.is_some(),
            ),
            (
                "default_histogram_aggregation",
                raw.default_histogram_aggregation.is_some(),
            ),
        ] {
            if set {
                problem(&join(path, &[key]), "only a metric exporter has this key");
                ok = false;
            }
        }
    }
    let protocol = match raw.protocol.as_deref() {
        Some("http/protobuf") => Some(TelemetryProtocol::HttpProtobuf),
        Some("http/json") => Some(TelemetryProtocol::HttpJson),
        Some("grpc") => Some(TelemetryProtocol::Grpc),
        Some(other) => {
            problem(
                &join(path, &["protocol"]),
                &format!(
                    "unsupported protocol `{other}` (expected http/protobuf, http/json or grpc)"
                ),
            );
            None
        }
        None => {
            problem(
                path,
                "`protocol` is required (http/protobuf, http/json or grpc)",
            );
            None
        }
    };
    let endpoint = match raw.endpoint.as_deref().map(str::trim) {
        Some(e) if !e.is_empty() => {
            // The Collector's normalization.
            let e = if e.starts_with("http://") || e.starts_with("https://") {
                e.to_string()
            } else if raw.insecure == Some(true) {
                format!("http://{e}")
            } else {
                format!("https://{e}")
            };
            match Target::parse_url(&e) {
                Ok(_) => Some(e),
                Err(message) => {
                    problem(
                        &join(path, &["endpoint"]),
                        &format!("invalid endpoint `{e}`: {message}"),
                    );
                    None
                }
            }
        }
        _ => {
            problem(path, "`endpoint` is required");
            None
        }
    };
    let compression = match raw.compression.as_deref() {
        None | Some("none") => Compression::None,
        Some("gzip") => Compression::Gzip,
        Some(other) => {
            problem(
                &join(path, &["compression"]),
                &format!("unsupported compression `{other}` (expected gzip or none)"),
            );
            ok = false;
            Compression::None
        }
    };
    let mut headers = BTreeMap::new();
    if let Some(list) = raw.headers_list {
        match headers_list(&list) {
            Ok(pairs) => headers.extend(pairs),
            Err(message) => {
                problem(
                    &join(path, &["headers_list"]),
                    &format!("invalid headers list: {message}"),
                );
                ok = false;
            }
        }
    }
    // `headers` win over `headers_list`; a null value is left out.
    for (i, header) in raw.headers.unwrap_or_default().into_iter().enumerate() {
        if header.name.is_empty() {
            let index = i.to_string();
            problem(
                &[path, &["headers", &index]].concat(),
                "invalid header: empty name",
            );
            ok = false;
        } else if let Some(value) = header.value {
            headers.insert(header.name, value);
        }
    }
    let temporality = match raw.temporality_preference.as_deref() {
        None | Some("cumulative") => Temporality::Cumulative,
        Some("delta" | "lowmemory") => Temporality::Delta,
        Some(other) => {
            problem(
                &join(path, &["temporality_preference"]),
                &format!(
                    "unsupported temporality preference `{other}` (expected cumulative, delta or lowmemory)"
                ),
            );
            ok = false;
            Temporality::Cumulative
        }
    };
    match raw.default_histogram_aggregation.as_deref() {
        None | Some("explicit_bucket_histogram") => {}
        Some("base2_exponential_bucket_histogram") => {
            problem(
                &join(path, &["default_histogram_aggregation"]),
                "not supported: Tern's self-metric histograms have fixed explicit buckets (only `explicit_bucket_histogram` is accepted)",
            );
            ok = false;
        }
        Some(other) => {
            problem(
                &join(path, &["default_histogram_aggregation"]),
                &format!("unsupported aggregation `{other}` (expected explicit_bucket_histogram)"),
            );
            ok = false;
        }
    }
    let exporter = OtlpTelemetryExporter {
        protocol: protocol?,
        endpoint: endpoint?,
        headers,
        compression,
        timeout: millis(raw.timeout).unwrap_or(Duration::from_secs(10)),
        certificate: raw.certificate.unwrap_or_default(),
        client_certificate: raw.client_certificate.unwrap_or_default(),
        client_key: raw.client_key.unwrap_or_default(),
    };
    ok.then_some((exporter, temporality))
}

fn metrics(
    node: &Node,
    raw: RawMetrics,
    problem: &mut Problem<'_>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) -> MetricsTelemetry {
    let mut metrics = MetricsTelemetry::default();
    if let Some(level) = raw.level {
        metrics.level = level;
    }
    if raw.views.is_some() {
        problem(
            &["metrics", "views"],
            "not supported: Tern's self-metrics have fixed names and labels",
        );
    }
    let loc = |path: &[&str]| node.locate(path).clone();
    if let Some(address) = raw.address {
        warnings.push(ConfigError {
            loc: Some(loc(&["metrics", "address"])),
            key: "service.telemetry.metrics.address".into(),
            message: "deprecated (the Collector removed it): use `readers: [{pull: {exporter: {prometheus: {host: ..., port: ...}}}}]`".into(),
        });
        if raw.readers.is_some() {
            problem(
                &["metrics", "address"],
                "set either address or readers, not both",
            );
        }
        metrics.address = Some(address);
        metrics.loc = Some(loc(&["metrics", "address"]));
        return metrics;
    }
    if raw.readers.is_none() {
        return metrics;
    }
    // Readers replace the default one.
    metrics.address = None;
    let mut count = 0;
    for_each_item(node, &["metrics", "readers"], problem, |index, problem| {
        count += 1;
        let path = ["metrics", "readers", index];
        let reader = section::<RawReader>(node, &path, errors)?;
        if reader.producers.is_some() {
            problem(
                &join(&path, &["producers"]),
                "not supported: Tern's self-metrics have no other producers",
            );
        }
        match (reader.pull, reader.periodic) {
            (Some(_), Some(_)) => problem(&path, "set either `pull` or `periodic`, not both"),
            (None, None) => problem(&path, "expected `pull` or `periodic`"),
            (Some(pull), None) => {
                let Some(prom) = pull.exporter.prometheus else {
                    problem(&join(&path, &["pull", "exporter"]), "expected `prometheus`");
                    return None;
                };
                if metrics.address.is_some() {
                    problem(
                        &join(&path, &["pull"]),
                        "not supported: Tern serves its metrics on one endpoint (one pull reader)",
                    );
                    return None;
                }
                let fixed = [
                    ("without_scope_info", prom.without_scope_info.is_some()),
                    ("without_units", prom.without_units.is_some()),
                    ("without_type_suffix", prom.without_type_suffix.is_some()),
                    (
                        "with_resource_constant_labels",
                        prom.with_resource_constant_labels.is_some(),
                    ),
                    ("translation_strategy", prom.translation_strategy.is_some()),
                ];
                for (key, set) in fixed {
                    if set {
                        problem(
                            &join(&path, &["pull", "exporter", "prometheus", key]),
                            "not supported: Tern's self-metric names are fixed (the Collector's names, `_total` on counters)",
                        );
                    }
                }
                // The OpenTelemetry configuration schema's defaults.
                let host = prom.host.unwrap_or_else(|| "localhost".into());
                metrics.address = Some(Endpoint::new(&host, prom.port.unwrap_or(9464)));
                metrics.loc = Some(loc(&join(
                    &path,
                    &["pull", "exporter", "prometheus", "port"],
                )));
            }
            (None, Some(periodic)) => {
                if periodic.exporter.console.is_some() {
                    problem(
                        &join(&path, &["periodic", "exporter", "console"]),
                        "not supported: use `otlp`, or a pull reader to read the metrics",
                    );
                    return None;
                }
                let Some(otlp) = periodic.exporter.otlp else {
                    problem(&join(&path, &["periodic", "exporter"]), "expected `otlp`");
                    return None;
                };
                let (exporter, temporality) = otlp_exporter(
                    &join(&path, &["periodic", "exporter", "otlp"]),
                    otlp,
                    true,
                    problem,
                )?;
                metrics.periodic.push(PeriodicReader {
                    interval: millis(periodic.interval).unwrap_or(Duration::from_secs(60)),
                    timeout: millis(periodic.timeout).unwrap_or(Duration::from_secs(30)),
                    exporter,
                    temporality,
                });
            }
        }
        None::<()>
    });
    if count == 0 && metrics.level != MetricsLevel::None {
        // The Collector's own rule.
        problem(
            &["metrics", "readers"],
            "a reader is required when level is not none",
        );
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  nop:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n  telemetry:\n";

    fn load(telemetry: &str) -> Result<crate::Config, Vec<String>> {
        crate::load_sources(
            &[("tern.yaml".into(), format!("{PIPELINE}{telemetry}"))],
            &|_| None,
        )
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    fn telemetry(text: &str) -> TelemetryConfig {
        match load(text) {
            Ok(c) => c.service.telemetry,
            Err(e) => panic!("{e:#?}"),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match load(text) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_are_the_collectors() {
        let t = telemetry("");
        assert_eq!(t.logs.sampling, Some(LogSampling::default()));
        assert_eq!(
            t.logs.sampling,
            Some(LogSampling {
                tick: Duration::from_secs(10),
                initial: 10,
                thereafter: 100
            })
        );
        assert!(t.logs.initial_fields.is_empty());
        assert!(t.logs.processors.is_empty());
        assert!(t.logs.resource_on_lines);
        assert_eq!(t.metrics.address, Some(Endpoint::new("localhost", 8888)));
        assert!(t.metrics.periodic.is_empty());
    }

    #[test]
    fn every_periodic_reader_key() {
        let t = telemetry(
            "    metrics:\n      readers:\n        - periodic:\n            interval: 5000\n            timeout: 2000\n            exporter:\n              otlp:\n                protocol: grpc\n                endpoint: collector:4317\n                insecure: true\n                headers:\n                  - name: a\n                    value: \"1\"\n                  - name: b\n                    value: null\n                headers_list: \"a=0,c=x%20y\"\n                compression: gzip\n                timeout: 700\n                certificate: /ca.pem\n                client_certificate: /c.pem\n                client_key: /k.pem\n                temporality_preference: lowmemory\n                default_histogram_aggregation: explicit_bucket_histogram\n        - periodic:\n            exporter:\n              otlp:\n                protocol: http/json\n                endpoint: otel.example:4318/custom\n",
        );
        // Only push readers: no pull endpoint.
        assert_eq!(t.metrics.address, None);
        let [a, b] = &t.metrics.periodic[..] else {
            panic!("{:?}", t.metrics.periodic)
        };
        assert_eq!(a.interval, Duration::from_secs(5));
        assert_eq!(a.timeout, Duration::from_secs(2));
        assert_eq!(a.temporality, Temporality::Delta);
        assert_eq!(a.exporter.protocol, TelemetryProtocol::Grpc);
        assert_eq!(a.exporter.endpoint, "http://collector:4317");
        assert_eq!(
            a.exporter.headers,
            BTreeMap::from([
                ("a".to_string(), "1".to_string()),
                ("c".to_string(), "x y".to_string())
            ])
        );
        assert_eq!(a.exporter.compression, Compression::Gzip);
        assert_eq!(a.exporter.timeout, Duration::from_millis(700));
        assert_eq!(
            (
                a.exporter.certificate.as_str(),
                a.exporter.client_certificate.as_str(),
                a.exporter.client_key.as_str()
            ),
            ("/ca.pem", "/c.pem", "/k.pem")
        );
        // The schema's defaults; without `insecure`, TLS.
        assert_eq!(b.interval, Duration::from_secs(60));
        assert_eq!(b.timeout, Duration::from_secs(30));
        assert_eq!(b.temporality, Temporality::Cumulative);
        assert_eq!(b.exporter.protocol, TelemetryProtocol::HttpJson);
        assert_eq!(b.exporter.endpoint, "https://otel.example:4318/custom");
        assert_eq!(b.exporter.compression, Compression::None);
        assert_eq!(b.exporter.timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_logs_key() {
        let t = telemetry(
            "    logs:\n      sampling:\n        tick: 1s\n        initial: 3\n      initial_fields:\n        env: prod\n        n: 2\n        ok: true\n        q: \"2\"\n        list: [1, a]\n      processors:\n        - batch:\n            schedule_delay: 200\n            export_timeout: 1000\n            max_queue_size: 100\n            max_export_batch_size: 500\n            exporter:\n              otlp:\n                protocol: http/protobuf\n                endpoint: http://localhost:4318\n        - simple:\n            exporter:\n              otlp:\n                protocol: grpc\n                endpoint: https://localhost:4317\n",
        );
        assert_eq!(
            t.logs.sampling,
            Some(LogSampling {
                tick: Duration::from_secs(1),
                initial: 3,
                thereafter: 100
            })
        );
        let f = &t.logs.initial_fields;
        assert_eq!(f["env"], FieldValue::String("prod".into()));
        assert_eq!(f["n"], FieldValue::Int(2));
        assert_eq!(f["ok"], FieldValue::Bool(true));
        assert_eq!(f["q"], FieldValue::String("2".into()));
        assert_eq!(
            f["list"],
            FieldValue::List(vec![FieldValue::Int(1), FieldValue::String("a".into())])
        );
        let [batch, simple] = &t.logs.processors[..] else {
            panic!()
        };
        assert_eq!(
            batch.batch,
            Some(BatchSettings {
                schedule_delay: Duration::from_millis(200),
                export_timeout: Duration::from_secs(1),
                max_queue_size: 100,
                // Never more than the queue holds.
                max_export_batch_size: 100,
            })
        );
        assert_eq!(batch.exporter.endpoint, "http://localhost:4318");
        assert_eq!(simple.batch, None);
        assert_eq!(simple.exporter.protocol, TelemetryProtocol::Grpc);
        let off = telemetry(
            "    logs:\n      sampling:\n        enabled: false\n      disable_zap_resource: true\n",
        );
        assert_eq!(off.logs.sampling, None);
        assert!(!off.logs.resource_on_lines);
    }

    #[test]
    fn bad_values_are_reported_each_at_its_key() {
        let errs = errors(
            "    logs:\n      sampling:\n        tick: soon\n      initial_fields: [a]\n      processors:\n        - batch:\n            schedule_delay: -1\n            exporter:\n              console: {}\n        - simple:\n            exporter:\n              otlp:\n                protocol: grpc\n                endpoint: x:1\n                temporality_preference: delta\n        - {}\n    metrics:\n      readers:\n        - periodic:\n            interval: 10s\n            exporter:\n              otlp:\n                protocol: http/protobuf\n                endpoint: http://x:4318\n        - periodic:\n            exporter:\n              otlp:\n                protocol: thrift\n                endpoint: http://x:4318\n                compression: zstd\n                headers:\n                  - name: \"\"\n                    value: v\n                headers_list: novalue\n                temporality_preference: sometimes\n                default_histogram_aggregation: base2_exponential_bucket_histogram\n        - periodic:\n            exporter:\n              console: {}\n        - periodic:\n            exporter:\n              otlp:\n                endpoint: http://x:4318\n        - periodic: {exporter: {otlp: {protocol: grpc}}}\n          pull: {exporter: {prometheus: {}}}\n        - producers: []\n",
        );
        let expected = [
            "tern.yaml:15:15: service.telemetry.logs.sampling.tick: invalid duration `soon`",
            "tern.yaml:16:7: service.telemetry.logs.initial_fields: expected a mapping",
            "tern.yaml:19:29: service.telemetry.logs.processors[0].batch.schedule_delay: must not be negative",
            "tern.yaml:21:15: service.telemetry.logs.processors[0].batch.exporter.console: not supported",
            "tern.yaml:27:41: service.telemetry.logs.processors[1].simple.exporter.otlp.temporality_preference: only a metric exporter has this key",
            "tern.yaml:28:11: service.telemetry.logs.processors[2]: expected `batch` or `simple`",
            "tern.yaml:32:23: service.telemetry.metrics.readers[0].periodic.interval: expected an integer, found `10s`",
            "tern.yaml:40:27: service.telemetry.metrics.readers[1].periodic.exporter.otlp.protocol: unsupported protocol `thrift`",
            "tern.yaml:42:30: service.telemetry.metrics.readers[1].periodic.exporter.otlp.compression: unsupported compression `zstd` (expected gzip or none)",
            "tern.yaml:44:21: service.telemetry.metrics.readers[1].periodic.exporter.otlp.headers[0]: invalid header: empty name",
            "tern.yaml:46:31: service.telemetry.metrics.readers[1].periodic.exporter.otlp.headers_list: invalid headers list: `novalue` is not `name=value`",
            "tern.yaml:47:41: service.telemetry.metrics.readers[1].periodic.exporter.otlp.temporality_preference: unsupported temporality preference `sometimes`",
            "tern.yaml:48:48: service.telemetry.metrics.readers[1].periodic.exporter.otlp.default_histogram_aggregation: not supported",
            "tern.yaml:51:15: service.telemetry.metrics.readers[2].periodic.exporter.console: not supported",
            "tern.yaml:54:15: service.telemetry.metrics.readers[3].periodic.exporter.otlp: `protocol` is required",
            "tern.yaml:56:11: service.telemetry.metrics.readers[4]: set either `pull` or `periodic`, not both",
            "tern.yaml:58:11: service.telemetry.metrics.readers[5]: expected `pull` or `periodic`",
            "tern.yaml:58:11: service.telemetry.metrics.readers[5].producers: not supported",
        ];
        for needle in expected {
            assert!(
                errs.iter().any(|e| e.starts_with(needle)),
                "no {needle} in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), expected.len(), "{errs:#?}");
    }

    #[test]
    fn resource_in_either_form() {
        let t = telemetry(
            "    resource:\n      attributes:\n        - name: service.name\n          value: edge\n        - name: zone\n          value: \"7\"\n          type: string\n",
        );
        assert_eq!(
            t.resource,
            BTreeMap::from([
                ("service.name".to_string(), Some("edge".to_string())),
                ("zone".to_string(), Some("7".to_string()))
            ])
        );
        let t = telemetry("    resource:\n      service.name: edge\n      service.instance.id:\n");
        assert_eq!(t.resource["service.name"].as_deref(), Some("edge"));
        assert_eq!(t.resource["service.instance.id"], None);
        let errs = errors(
            "    resource:\n      host.name: a\n      attributes:\n        - name: n\n          value: 7\n        - name: b\n          value: x\n          type: int\n        - value: x\n      schema_url: https://x\n",
        );
        let expected = [
            "tern.yaml:17:18: service.telemetry.resource.attributes[0].value: not supported: Tern's own resource holds strings",
            "tern.yaml:20:17: service.telemetry.resource.attributes[1].type: not supported",
            "tern.yaml:21:11: service.telemetry.resource.attributes[2]: `name` is required",
            "tern.yaml:22:19: service.telemetry.resource.schema_url: not supported",
            "tern.yaml:15:7: service.telemetry.resource.attributes: `attributes` cannot be used together with inline resource attributes",
        ];
        for needle in expected {
            assert!(
                errs.iter().any(|e| e.starts_with(needle)),
                "no {needle} in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), expected.len(), "{errs:#?}");
    }

    #[test]
    fn an_endpoint_is_required_and_must_parse() {
        let errs = errors(
            "    metrics:\n      readers:\n        - periodic:\n            exporter:\n              otlp:\n                protocol: grpc\n        - periodic:\n            exporter:\n              otlp:\n                protocol: grpc\n                endpoint: \"http://\"\n",
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs[0].starts_with(
                "tern.yaml:17:15: service.telemetry.metrics.readers[0].periodic.exporter.otlp: `endpoint` is required"
            ),
            "{errs:#?}"
        );
        assert!(
            errs[1].starts_with(
                "tern.yaml:23:27: service.telemetry.metrics.readers[1].periodic.exporter.otlp.endpoint: invalid endpoint"
            ),
            "{errs:#?}"
        );
    }
}
