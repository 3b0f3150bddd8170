//! `service.telemetry`: Tern's own logs and metrics, in the Collector's
//! current form (`metrics.readers` with a Prometheus pull reader, `logs`
//! with zap's keys). Every documented Collector key is either honoured or a
//! validate error that says Tern cannot honour it; `metrics.address` (which
//! the Collector removed) is still read, with a deprecation warning.
//! `resource` describes Tern's own telemetry, as in the Collector.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::yaml::{Loc, Node};
use crate::{ConfigError, Endpoint, de};

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
}

impl Default for LogsTelemetry {
    fn default() -> Self {
        LogsTelemetry {
            level: "info".into(),
            encoding: LogEncoding::Console,
            outputs: vec![LogOutput::Stderr],
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
    /// `host:port` (default `localhost:8888`, as in the Collector).
    pub address: Endpoint,
    /// Where `address` is written; `None` for the default.
    pub loc: Option<Loc>,
}

impl Default for MetricsTelemetry {
    fn default() -> Self {
        MetricsTelemetry {
            level: MetricsLevel::Normal,
            address: Endpoint::new("localhost", 8888),
            loc: None,
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
    logs: RawLogs,
    metrics: RawMetrics,
    traces: Option<IgnoredAny>,
    resource: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLogs {
    level: Option<String>,
    encoding: Option<LogEncoding>,
    development: Option<bool>,
    disable_caller: Option<bool>,
    disable_stacktrace: Option<bool>,
    sampling: Option<RawSampling>,
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
    tick: Option<IgnoredAny>,
    initial: Option<IgnoredAny>,
    thereafter: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    level: Option<MetricsLevel>,
    readers: Option<Vec<RawReader>>,
    views: Option<IgnoredAny>,
    /// Removed from the Collector; read as a deprecated alias.
    address: Option<Endpoint>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawReader {
    pull: Option<RawPull>,
    periodic: Option<IgnoredAny>,
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
    let mut problem = |path: &[&str], message: &str| {
        // `readers[0].pull`, as the deserializer writes list items.
        let mut key = String::from("service.telemetry");
        for part in path {
            if part.parse::<usize>().is_ok() {
                key.push_str(&format!("[{part}]"));
            } else {
                key.push('.');
                key.push_str(part);
            }
        }
        errors.push(ConfigError {
            loc: Some(node.deepest(path).loc.clone()),
            key,
            message: message.into(),
        });
    };
    if raw.traces.is_some() && !traces_off(node) {
        problem(
            &["traces"],
            "not supported: Tern does not export its own spans (only `level: none` is accepted)",
        );
    }
    TelemetryConfig {
        logs: logs(raw.logs, &mut problem),
        metrics: metrics(node, raw.metrics, &mut problem, warnings),
        resource: raw.resource.unwrap_or_default(),
    }
}

/// `traces: {level: none}` (or empty) asks for nothing Tern lacks.
fn traces_off(node: &Node) -> bool {
    match node.get("traces").map(|t| &t.kind) {
        Some(crate::NodeKind::Map(entries)) => entries.iter().all(|(k, v)| {
            k.as_str() == Some("level")
                && v.as_str().is_some_and(|l| l.eq_ignore_ascii_case("none"))
        }),
        Some(crate::NodeKind::Null) | None => true,
        Some(_) => false,
    }
}

fn logs(raw: RawLogs, problem: &mut impl FnMut(&[&str], &str)) -> LogsTelemetry {
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
    if raw.disable_zap_resource == Some(false) {
        problem(
            &["logs", "disable_zap_resource"],
            "not supported: Tern's log lines carry no resource (only `true` is accepted)",
        );
    }
    if raw.sampling.is_some_and(|s| s.enabled != Some(false)) {
        problem(
            &["logs", "sampling"],
            "not supported: Tern does not sample its logs (only `enabled: false` is accepted)",
        );
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
        problem(
            &["logs", "initial_fields"],
            "not supported: Tern does not add fixed fields to its log lines",
        );
    }
    if raw.processors.is_some() {
        problem(
            &["logs", "processors"],
            "not supported: Tern does not export its own logs over OTLP",
        );
    }
    logs
}

fn metrics(
    node: &Node,
    raw: RawMetrics,
    problem: &mut impl FnMut(&[&str], &str),
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
    let loc = |path: &[&str]| node.deepest(path).loc.clone();
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
        metrics.address = address;
        metrics.loc = Some(loc(&["metrics", "address"]));
        return metrics;
    }
    let Some(readers) = raw.readers else {
        return metrics;
    };
    if readers.is_empty() && metrics.level != MetricsLevel::None {
        // The Collector's own rule.
        problem(
            &["metrics", "readers"],
            "a reader is required when level is not none",
        );
    }
    let mut pull_seen = false;
    for (i, reader) in readers.into_iter().enumerate() {
        let index = i.to_string();
        let mut reader_problem = |path: &[&str], message: &str| {
            let mut full = vec!["metrics", "readers", index.as_str()];
            full.extend_from_slice(path);
            problem(&full, message);
        };
        if reader.periodic.is_some() {
            reader_problem(
                &["periodic"],
                "not supported: Tern does not push its own metrics; use a pull reader (prometheus host and port)",
            );
        }
        let Some(pull) = reader.pull else {
            if reader.periodic.is_none() {
                reader_problem(
                    &[],
                    "expected `pull` (or `periodic`, which Tern does not support)",
                );
            }
            continue;
        };
        let Some(prom) = pull.exporter.prometheus else {
            reader_problem(&["pull", "exporter"], "expected `prometheus`");
            continue;
        };
        if pull_seen {
            reader_problem(
                &["pull"],
                "not supported: Tern serves its metrics on one endpoint (one pull reader)",
            );
            continue;
        }
        pull_seen = true;
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
                reader_problem(
                    &["pull", "exporter", "prometheus", key],
                    "not supported: Tern's self-metric names are fixed (the Collector's names, `_total` on counters)",
                );
            }
        }
        // The OpenTelemetry configuration schema's defaults.
        let host = prom.host.unwrap_or_else(|| "localhost".into());
        metrics.address = Endpoint::new(&host, prom.port.unwrap_or(9464));
        metrics.loc = Some(loc(&[
            "metrics",
            "readers",
            &index,
            "pull",
            "exporter",
            "prometheus",
            "port",
        ]));
    }
    metrics
}
