//! OTLP metrics to Prometheus, per the OpenTelemetry "Prometheus and
//! OpenMetrics compatibility" specification and what the Collector's
//! exporters produce: metric names from name + unit (UCUM to Prometheus
//! units, `_total` on counters, `_ratio` on unit-`1` gauges, `namespace`)
//! escaped to the classic name set `[a-zA-Z0-9_:]` as the Collector's
//! default translation strategy (`UnderscoreEscapingWithSuffixes`) does, or
//! kept in UTF-8 (`NoUTF8EscapingWithSuffixes`, `NoTranslation`: the
//! scrape endpoint escapes them for scrapers that cannot take them),
//! sanitized labels with collisions merged by `;`, label values as in
//! [`label_value`], `job` / `instance` from the resource,
//! `otel_scope_name` / `otel_scope_version`, `target_info` with the other
//! resource attributes, and the type mapping. Shared by the `prometheus`
//! and `prometheusremotewrite` exporters.

use std::collections::BTreeMap;

use super::label_value::{LabelValue, label_value};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, metric, number_data_point, summary_data_point,
};

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Monotonic cumulative sum.
    Counter,
    /// Gauge, or non-monotonic sum.
    Gauge,
    /// Explicit-bucket histogram, or an exponential histogram.
    Histogram,
    /// Summary.
    Summary,
}

/// An exponential histogram's buckets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExpBuckets {
    /// Index of the first bucket.
    pub offset: i32,
    /// Counts per bucket.
    pub counts: Vec<u64>,
}

/// A data point's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Counter or gauge value.
    Number(f64),
    /// Explicit buckets: upper bounds and per-bucket (not cumulative) counts;
    /// `counts` has one more entry than `bounds` (the +Inf bucket).
    Histogram {
        /// Total count.
        count: u64,
        /// Sum of observations.
        sum: f64,
        /// Upper bounds.
        bounds: Vec<f64>,
        /// Per-bucket counts.
        counts: Vec<u64>,
    },
    /// Exponential buckets.
    Exponential {
        /// Total count.
        count: u64,
        /// Sum of observations.
        sum: f64,
        /// Scale (base = 2^(2^-scale)).
        scale: i32,
        /// Observations in the zero bucket.
        zero_count: u64,
        /// Width of the zero bucket.
        zero_threshold: f64,
        /// Positive buckets.
        positive: ExpBuckets,
        /// Negative buckets.
        negative: ExpBuckets,
    },
    /// Quantiles.
    Summary {
        /// Total count.
        count: u64,
        /// Sum.
        sum: f64,
        /// (quantile, value) pairs.
        quantiles: Vec<(f64, f64)>,
    },
}

/// A span-linked sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Observed value.
    pub value: f64,
    /// When, in milliseconds.
    pub timestamp_ms: i64,
}

/// One data point, translated.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Prometheus metric (family) name.
    pub name: String,
    /// The OTel description, for `# HELP`.
    pub help: String,
    /// Type.
    pub kind: Kind,
    /// Sorted label pairs.
    pub labels: Vec<(String, String)>,
    /// Point time in milliseconds.
    pub timestamp_ms: i64,
    /// The value.
    pub value: Value,
    /// A delta point (to be accumulated into a cumulative series).
    pub delta: bool,
    /// Exemplars that carry a trace.
    pub exemplars: Vec<Exemplar>,
    /// The `target_info` point Tern derives from a resource (not an OTLP
    /// data point, so not counted as one when dropped).
    pub target_info: bool,
    /// Label values cut at [`super::label_value::MAX_LABEL_VALUE_BYTES`].
    pub truncated_labels: usize,
}

/// What [`translate`] makes of a request.
#[derive(Debug, Default)]
pub struct Translated {
    /// The points to store or send.
    pub observations: Vec<Observation>,
    /// Metrics whose name has nothing left once escaped (say, only
    /// non-ASCII letters), with the number of their points dropped.
    pub invalid_names: Vec<(String, u64)>,
}

/// Translation settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Prefix for every metric name.
    pub namespace: String,
    /// Add unit and type suffixes (default true).
    pub add_metric_suffixes: bool,
    /// Keep metric and label names in UTF-8 instead of escaping them to
    /// the classic name set.
    pub utf8_names: bool,
    /// Copy every resource attribute onto every series.
    pub resource_to_telemetry: bool,
    /// Labels added to every series.
    pub const_labels: Vec<(String, String)>,
    /// Emit `target_info`.
    pub target_info: bool,
    /// Leave out the `otel_scope_name` / `otel_scope_version` labels.
    pub without_scope_info: bool,
}

fn unit_name(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

fn per_unit_name(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// Whether `c` is in the classic metric name set (`_` aside).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Runs of `[a-zA-Z0-9:]` in `s` (any other character separates tokens).
fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !name_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// `s` with each run of characters outside `[a-zA-Z0-9_:]` made one `_`
/// (none at either end).
fn escaped(s: &str) -> String {
    s.split(|c: char| !(name_char(c) || c == '_'))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// `name` less `_<suffix>` (any one character before `suffix`) when it
/// ends so and something is left.
fn trim_suffix(name: &mut String, suffix: &str) {
    if name.ends_with(suffix) && name.len() > suffix.len() + 1 {
        let mut cut = name.len() - suffix.len() - 1;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
}

/// The UTF-8 name of an OTel metric, as the Collector builds it for
/// `NoUTF8EscapingWithSuffixes` and `NoTranslation`: the name as it is
/// after `namespace_`, then (with suffixes) the unit, `per_` unit, and
/// `_total` or `_ratio`, each once. `None` for an empty name.
fn utf8_metric_name(name: &str, unit: &str, kind: Kind, settings: &Settings) -> Option<String> {
    let mut out = if settings.namespace.is_empty() {
        name.to_string()
    } else {
        format!("{}_{name}", settings.namespace)
    };
    if settings.add_metric_suffixes {
        let total = kind == Kind::Counter;
        let ratio = unit == "1" && kind == Kind::Gauge;
        for (on, suffix) in [(total, "total"), (ratio, "ratio")] {
            if on {
                trim_suffix(&mut out, suffix);
            }
        }
        let mut parts = unit.splitn(2, '/');
        let usable = |u: &str| !u.is_empty() && !u.contains(['{', '}']);
        let main = parts.next().map(str::trim).filter(|u| usable(u));
        let per = parts
            .next()
            .map(str::trim)
            .filter(|u| usable(u))
            .map(|u| format!("per_{}", per_unit_name(u)));
        if let Some(per) = &per {
            trim_suffix(&mut out, per);
        }
        if let Some(main) = main.map(unit_name).filter(|m| !m.is_empty())
            && !out.ends_with(main)
        {
            out.push('_');
            out.push_str(main);
        }
        if let Some(per) = per {
            out.push('_');
            out.push_str(&per);
        }
        if total {
            out.push_str("_total");
        } else if ratio {
            out.push_str("_ratio");
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The Prometheus name of an OTel metric (see the module docs), or `None`
/// when escaping leaves nothing but underscores, which the Collector
/// refuses too.
pub fn metric_name(
    name: &str,
    unit: &str,
    kind: Kind,
    monotonic: bool,
    settings: &Settings,
) -> Option<String> {
    if settings.utf8_names {
        return utf8_metric_name(name, unit, kind, settings);
    }
    let namespace = escaped(&settings.namespace);
    let out = if settings.add_metric_suffixes {
        let mut parts = tokens(name);
        let mut unit_parts = unit.splitn(2, '/');
        let main = unit_parts.next().unwrap_or("").trim();
        if !main.is_empty() && !main.contains(['{', '}']) {
            let prom = tokens(unit_name(main)).join("_");
            if !prom.is_empty() && !parts.contains(&prom) {
                parts.push(prom);
            }
        }
        if let Some(per) = unit_parts.next().map(str::trim)
            && !per.is_empty()
            && !per.contains(['{', '}'])
        {
            let prom = tokens(per_unit_name(per)).join("_");
            if !prom.is_empty() && !parts.contains(&prom) {
                parts.push("per".into());
                parts.push(prom);
            }
        }
        if kind == Kind::Counter && monotonic {
            parts.retain(|p| p != "total");
            parts.push("total".into());
        }
        if unit == "1" && kind == Kind::Gauge {
            parts.retain(|p| p != "ratio");
            parts.push("ratio".into());
        }
        if !namespace.is_empty() {
            parts.insert(0, namespace);
        }
        parts.join("_")
    } else {
        let clean = escaped(name);
        if namespace.is_empty() {
            clean
        } else {
            format!("{namespace}_{clean}")
        }
    };
    if out.is_empty() || (out.chars().all(|c| c == '_') && out != name) {
        return None;
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        Some(format!("_{out}"))
    } else {
        Some(out)
    }
}

/// The label name of an attribute key: the key itself when names stay
/// UTF-8 (unless it is empty or only underscores, which Prometheus
/// refuses), else [`label_name`].
pub fn label_key(key: &str, utf8_names: bool) -> String {
    if utf8_names && key.chars().any(|c| c != '_') {
        key.to_string()
    } else {
        label_name(key)
    }
}

/// A valid Prometheus label name for an attribute key.
pub fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s = format!("key_{s}");
    } else if s.starts_with('_') && !s.starts_with("__") {
        s = format!("key{s}");
    }
    s
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` does,
/// which is how Prometheus clients write values and `le` bounds.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Label pairs built from attributes: names sanitized, values of colliding
/// names joined with `;` (in key order).
fn merge_labels(out: &mut Labels, attrs: &[KeyValue], utf8_names: bool) {
    let mut sorted: Vec<&KeyValue> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut fresh = Labels::new();
    for kv in sorted {
        let name = label_key(&kv.key, utf8_names);
        let value = label_value(kv.value.as_ref());
        fresh
            .entry(name)
            .and_modify(|v| v.join(&value))
            .or_insert(value);
    }
    out.extend(fresh);
}

/// Labels being built, by name.
type Labels = BTreeMap<String, LabelValue>;

/// Sorted label pairs and how many values were cut.
fn finish(labels: Labels) -> (Vec<(String, String)>, usize) {
    let truncated = labels.values().filter(|v| v.truncated).count();
    let pairs = labels.into_iter().map(|(k, v)| (k, v.text)).collect();
    (pairs, truncated)
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<LabelValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| label_value(kv.value.as_ref()))
}

const RESOURCE_IDENTITY: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

fn exemplars(list: &[opentelemetry_proto::tonic::metrics::v1::Exemplar]) -> Vec<Exemplar> {
    use opentelemetry_proto::tonic::metrics::v1::exemplar;
    list.iter()
        .filter(|e| !e.trace_id.is_empty())
        .map(|e| Exemplar {
            trace_id: tern_core::hex(&e.trace_id),
            span_id: tern_core::hex(&e.span_id),
            value: match e.value {
                Some(exemplar::Value::AsDouble(d)) => d,
                Some(exemplar::Value::AsInt(i)) => i as f64,
                None => 0.0,
            },
            timestamp_ms: (e.time_unix_nano / 1_000_000) as i64,
        })
        .collect()
}

/// Translates every data point of `req` (plus one `target_info` point per
/// resource when enabled).
pub fn translate(req: &ExportMetricsServiceRequest, settings: &Settings) -> Translated {
    let mut out = Vec::new();
    let mut invalid_names = Vec::new();
    for rm in &req.resource_metrics {
        let resource_attrs: &[KeyValue] = rm
            .resource
            .as_ref()
            .map(|r| &r.attributes[..])
            .unwrap_or(&[]);
        let mut base = Labels::new();
        if settings.resource_to_telemetry {
            merge_labels(&mut base, resource_attrs, settings.utf8_names);
        }
        if let Some(name) = attr(resource_attrs, "service.name") {
            let job = match attr(resource_attrs, "service.namespace") {
                Some(ns) if !ns.text.is_empty() => {
                    let mut job = LabelValue::capped(&format!("{}/{}", ns.text, name.text));
                    job.truncated |= ns.truncated || name.truncated;
                    job
                }
                _ => name,
            };
            base.insert("job".into(), job);
        }
        if let Some(instance) = attr(resource_attrs, "service.instance.id") {
            base.insert("instance".into(), instance);
        }
        for (k, v) in &settings.const_labels {
            base.insert(k.clone(), LabelValue::capped(v));
        }
        let mut newest_ms = 0i64;
        for sm in &rm.scope_metrics {
            let mut scoped = base.clone();
            if let Some(scope) = sm.scope.as_ref().filter(|_| !settings.without_scope_info) {
                if !scope.name.is_empty() {
                    scoped.insert("otel_scope_name".into(), LabelValue::capped(&scope.name));
                }
                if !scope.version.is_empty() {
                    scoped.insert(
                        "otel_scope_version".into(),
                        LabelValue::capped(&scope.version),
                    );
                }
            }
            for m in &sm.metrics {
                let Some(data) = &m.data else { continue };
                let (kind, monotonic) = match data {
                    metric::Data::Gauge(_) => (Kind::Gauge, false),
                    metric::Data::Sum(s) if s.is_monotonic => (Kind::Counter, true),
                    metric::Data::Sum(_) => (Kind::Gauge, false),
                    metric::Data::Histogram(_) | metric::Data::ExponentialHistogram(_) => {
                        (Kind::Histogram, false)
                    }
                    metric::Data::Summary(_) => (Kind::Summary, false),
                };
                let Some(name) = metric_name(&m.name, &m.unit, kind, monotonic, settings) else {
                    invalid_names.push((m.name.clone(), points(data)));
                    continue;
                };
                let mut push = |attrs: &[KeyValue],
                                time: u64,
                                value: Value,
                                delta: bool,
                                ex: Vec<Exemplar>| {
                    let mut labels = Labels::new();
                    merge_labels(&mut labels, attrs, settings.utf8_names);
                    // Resource, scope and constant labels win over point attributes.
                    labels.extend(scoped.clone());
                    let (labels, truncated_labels) = finish(labels);
                    let ts = (time / 1_000_000) as i64;
                    newest_ms = newest_ms.max(ts);
                    out.push(Observation {
                        name: name.clone(),
                        help: m.description.clone(),
                        kind,
                        labels,
                        timestamp_ms: ts,
                        value,
                        delta,
                        exemplars: ex,
                        target_info: false,
                        truncated_labels,
                    });
                };
                let delta_t = AggregationTemporality::Delta as i32;
                match data {
                    metric::Data::Gauge(g) => {
                        for p in &g.data_points {
                            push(
                                &p.attributes,
                                p.time_unix_nano,
                                Value::Number(number(&p.value)),
                                false,
                                exemplars(&p.exemplars),
                            );
                        }
                    }
                    metric::Data::Sum(s) => {
                        for p in &s.data_points {
                            push(
                                &p.attributes,
                                p.time_unix_nano,
                                Value::Number(number(&p.value)),
                                s.aggregation_temporality == delta_t,
                                exemplars(&p.exemplars),
                            );
                        }
                    }
                    metric::Data::Histogram(h) => {
                        for p in &h.data_points {
                            let mut counts = p.bucket_counts.clone();
                            counts.resize(p.explicit_bounds.len() + 1, 0);
                            let value = Value::Histogram {
                                count: p.count,
                                sum: p.sum.unwrap_or(0.0),
                                bounds: p.explicit_bounds.clone(),
                                counts,
                            };
                            push(
                                &p.attributes,
                                p.time_unix_nano,
                                value,
                                h.aggregation_temporality == delta_t,
                                exemplars(&p.exemplars),
                            );
                        }
                    }
                    metric::Data::ExponentialHistogram(h) => {
                        for p in &h.data_points {
                            let buckets = |b: &Option<opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets>| {
                                b.as_ref()
                                    .map(|b| ExpBuckets { offset: b.offset, counts: b.bucket_counts.clone() })
                                    .unwrap_or_default()
                            };
                            let value = Value::Exponential {
                                count: p.count,
                                sum: p.sum.unwrap_or(0.0),
                                scale: p.scale,
                                zero_count: p.zero_count,
                                zero_threshold: p.zero_threshold,
                                positive: buckets(&p.positive),
                                negative: buckets(&p.negative),
                            };
                            push(
                                &p.attributes,
                                p.time_unix_nano,
                                value,
                                h.aggregation_temporality == delta_t,
                                exemplars(&p.exemplars),
                            );
                        }
                    }
                    metric::Data::Summary(s) => {
                        for p in &s.data_points {
                            let quantiles = p
                                .quantile_values
                                .iter()
                                .map(|q: &summary_data_point::ValueAtQuantile| {
                                    (q.quantile, q.value)
                                })
                                .collect();
                            let value = Value::Summary {
                                count: p.count,
                                sum: p.sum,
                                quantiles,
                            };
                            push(&p.attributes, p.time_unix_nano, value, false, Vec::new());
                        }
                    }
                }
            }
        }
        let others: Vec<KeyValue> = resource_attrs
            .iter()
            .filter(|kv| !RESOURCE_IDENTITY.contains(&kv.key.as_str()))
            .cloned()
            .collect();
        if settings.target_info && !others.is_empty() && newest_ms > 0 {
            let mut labels = Labels::new();
            merge_labels(&mut labels, &others, settings.utf8_names);
            for k in ["job", "instance"] {
                if let Some(v) = base.get(k) {
                    labels.insert(k.to_string(), v.clone());
                }
            }
            let (labels, truncated_labels) = finish(labels);
            let namespace = if settings.utf8_names {
                settings.namespace.clone()
            } else {
                escaped(&settings.namespace)
            };
            out.push(Observation {
                name: if namespace.is_empty() {
                    "target_info".into()
                } else {
                    format!("{namespace}_target_info")
                },
                help: "Target metadata".into(),
                kind: Kind::Gauge,
                labels,
                timestamp_ms: newest_ms,
                value: Value::Number(1.0),
                delta: false,
                exemplars: Vec::new(),
                target_info: true,
                truncated_labels,
            });
        }
    }
    Translated {
        observations: out,
        invalid_names,
    }
}

/// Data points in a metric.
fn points(data: &metric::Data) -> u64 {
    let n = match data {
        metric::Data::Gauge(g) => g.data_points.len(),
        metric::Data::Sum(s) => s.data_points.len(),
        metric::Data::Histogram(h) => h.data_points.len(),
        metric::Data::ExponentialHistogram(h) => h.data_points.len(),
        metric::Data::Summary(s) => s.data_points.len(),
    };
    n as u64
}

fn number(v: &Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::label_value::MAX_LABEL_VALUE_BYTES;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, any_value,
    };
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn on() -> Settings {
        Settings {
            add_metric_suffixes: true,
            target_info: true,
            ..Settings::default()
        }
    }

    #[test]
    fn names_follow_the_specification() {
        let s = on();
        let n = |name: &str, unit: &str, kind: Kind, mono: bool| {
            metric_name(name, unit, kind, mono, &s).unwrap()
        };
        assert_eq!(
            n("http.server.duration", "s", Kind::Histogram, false),
            "http_server_duration_seconds"
        );
        assert_eq!(
            n("process.memory", "By", Kind::Gauge, false),
            "process_memory_bytes"
        );
        assert_eq!(
            n("cpu.utilization", "1", Kind::Gauge, false),
            "cpu_utilization_ratio"
        );
        assert_eq!(n("requests", "1", Kind::Counter, true), "requests_total");
        assert_eq!(
            n("gen_ai.client.token.usage", "{token}", Kind::Counter, true),
            "gen_ai_client_token_usage_total"
        );
        assert_eq!(
            n("latency", "ms", Kind::Histogram, false),
            "latency_milliseconds"
        );
        assert_eq!(
            n("throughput", "By/s", Kind::Gauge, false),
            "throughput_bytes_per_second"
        );
        assert_eq!(
            n("speed", "m/h", Kind::Gauge, false),
            "speed_meters_per_hour"
        );
        assert_eq!(
            n("total.requests", "", Kind::Counter, true),
            "requests_total",
            "`total` moves to the end"
        );
        assert_eq!(
            n("disk.io.bytes", "By", Kind::Counter, true),
            "disk_io_bytes_total",
            "unit not repeated"
        );
        assert_eq!(n("temp", "Cel", Kind::Gauge, false), "temp_celsius");
        assert_eq!(n("weird-name!x", "", Kind::Gauge, false), "weird_name_x");
        assert_eq!(n("2xx.count", "", Kind::Gauge, false), "_2xx_count");
        assert_eq!(
            n("queue.depth", "{item}/s", Kind::Gauge, false),
            "queue_depth_per_second"
        );
        assert_eq!(
            n("up.down", "", Kind::Gauge, false),
            "up_down",
            "non-monotonic sums get no _total"
        );
        let ns = Settings {
            namespace: "tern".into(),
            ..on()
        };
        assert_eq!(
            metric_name("requests", "", Kind::Counter, true, &ns).unwrap(),
            "tern_requests_total"
        );
        let raw = Settings {
            add_metric_suffixes: false,
            ..on()
        };
        assert_eq!(
            metric_name("http.server.duration", "s", Kind::Histogram, false, &raw).unwrap(),
            "http_server_duration"
        );
        assert_eq!(
            metric_name("requests", "", Kind::Counter, true, &raw).unwrap(),
            "requests"
        );
    }

    /// Names are escaped to `[a-zA-Z0-9_:]` as the Collector's default
    /// strategy does (Prometheus 2 refuses a whole scrape over one other
    /// character); a name with nothing valid left is refused.
    #[test]
    fn names_outside_the_classic_set_are_escaped() {
        let s = on();
        let n = |name: &str, unit: &str, kind: Kind, mono: bool| {
            metric_name(name, unit, kind, mono, &s)
        };
        assert_eq!(
            n("größe.ßpeed", "", Kind::Gauge, false).as_deref(),
            Some("gr_e_peed")
        );
        assert_eq!(
            n("日本.requests", "", Kind::Counter, true).as_deref(),
            Some("requests_total")
        );
        assert_eq!(
            n("latency", "µs", Kind::Gauge, false).as_deref(),
            Some("latency_s")
        );
        assert_eq!(
            n("a:b.c", "", Kind::Gauge, false).as_deref(),
            Some("a:b_c"),
            "colons are valid"
        );
        assert_eq!(n("日本", "", Kind::Counter, true).as_deref(), Some("total"));
        assert_eq!(n("日本", "", Kind::Gauge, false), None);
        assert_eq!(n("", "", Kind::Gauge, false), None);
        let raw = Settings {
            add_metric_suffixes: false,
            ..on()
        };
        let r = |name: &str| metric_name(name, "", Kind::Gauge, false, &raw);
        assert_eq!(r("größe__x").as_deref(), Some("gr_e__x"));
        assert_eq!(r("__x").as_deref(), Some("__x"));
        assert_eq!(r("日本"), None);
        assert_eq!(r("___").as_deref(), Some("___"), "valid as sent");
        let ns = Settings {
            namespace: "my-ns".into(),
            ..on()
        };
        assert_eq!(
            metric_name("q", "", Kind::Gauge, false, &ns).as_deref(),
            Some("my_ns_q")
        );
    }

    #[test]
    fn label_names_are_sanitized() {
        assert_eq!(label_name("http.method"), "http_method");
        assert_eq!(label_name("2fa"), "key_2fa");
        assert_eq!(label_name("_private"), "key_private");
        assert_eq!(label_name("__reserved"), "__reserved");
        assert_eq!(label_name("ünïcode"), "key_n_code");
    }

    #[test]
    fn floats_are_written_like_go() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(2.5), "2.5");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(123_456.0), "123456");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
        assert_eq!(go_float(f64::NAN), "NaN");
    }

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn point(attrs: Vec<KeyValue>, v: f64) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs,
            time_unix_nano: 2_000_000_000,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        }
    }

    fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", "api"),
                        kv("service.namespace", "shop"),
                        kv("service.instance.id", "i-1"),
                        kv("host.name", "node-a"),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "2.0".into(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn labels_job_instance_scope_collisions_and_target_info() {
        let m = Metric {
            name: "q".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![point(
                    vec![kv("a.b", "1"), kv("a_b", "2"), kv("job", "mine")],
                    3.0,
                )],
            })),
            ..Default::default()
        };
        let mut s = on();
        s.const_labels = vec![("region".into(), "eu".into())];
        let obs = translate(&request(vec![m.clone()]), &s).observations;
        assert_eq!(obs.len(), 2);
        let labels: BTreeMap<_, _> = obs[0].labels.iter().cloned().collect();
        assert_eq!(labels["a_b"], "1;2", "colliding names merged with ;");
        assert_eq!(labels["job"], "shop/api", "the resource's job wins");
        assert_eq!(labels["instance"], "i-1");
        assert_eq!(labels["otel_scope_name"], "lib");
        assert_eq!(labels["otel_scope_version"], "2.0");
        assert_eq!(labels["region"], "eu");
        let without = Settings {
            without_scope_info: true,
            ..s.clone()
        };
        let bare = translate(&request(vec![m.clone()]), &without).observations;
        assert!(
            bare[0]
                .labels
                .iter()
                .all(|(k, _)| !k.starts_with("otel_scope")),
            "{:?}",
            bare[0].labels
        );
        assert!(!labels.contains_key("host_name"));
        assert_eq!(obs[0].timestamp_ms, 2000);
        let info = &obs[1];
        assert_eq!(info.name, "target_info");
        assert!(info.target_info && !obs[0].target_info);
        let info_labels: BTreeMap<_, _> = info.labels.iter().cloned().collect();
        assert_eq!(info_labels["host_name"], "node-a");
        assert_eq!(info_labels["job"], "shop/api");
        assert!(!info_labels.contains_key("service_name"));
        // resource_to_telemetry_conversion copies resource attributes.
        let m = Metric {
            name: "q".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![point(vec![], 1.0)],
            })),
            ..Default::default()
        };
        let obs = translate(
            &request(vec![m]),
            &Settings {
                resource_to_telemetry: true,
                ..on()
            },
        )
        .observations;
        assert!(
            obs[0]
                .labels
                .contains(&("host_name".into(), "node-a".into()))
        );
    }

    #[test]
    fn type_mapping() {
        let sum = |mono: bool, temporality: AggregationTemporality| Metric {
            name: "s".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![point(vec![], 1.0)],
                aggregation_temporality: temporality as i32,
                is_monotonic: mono,
            })),
            ..Default::default()
        };
        let one = |m: Metric| {
            translate(
                &request(vec![m]),
                &Settings {
                    target_info: false,
                    ..on()
                },
            )
            .observations
            .remove(0)
        };
        let c = one(sum(true, AggregationTemporality::Cumulative));
        assert_eq!(
            (c.kind, c.name.as_str(), c.delta),
            (Kind::Counter, "s_total", false)
        );
        let g = one(sum(false, AggregationTemporality::Cumulative));
        assert_eq!((g.kind, g.name.as_str()), (Kind::Gauge, "s"));
        let d = one(sum(true, AggregationTemporality::Delta));
        assert!(d.delta, "delta sums are marked for accumulation");
    }

    fn gauge(name: &str, attrs: Vec<KeyValue>) -> Metric {
        Metric {
            name: name.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![point(attrs.clone(), 1.0), point(attrs, 2.0)],
            })),
            ..Default::default()
        }
    }

    #[test]
    fn points_of_a_name_with_nothing_valid_are_counted_not_translated() {
        let t = translate(
            &request(vec![gauge("日本", vec![]), gauge("ok", vec![])]),
            &Settings {
                target_info: false,
                ..on()
            },
        );
        assert_eq!(t.invalid_names, vec![("日本".to_string(), 2)]);
        let names: Vec<&str> = t.observations.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["ok", "ok"]);
    }

    /// The case from the fuzzer: an array nested 30 deep used to make a
    /// label whose size doubled per level (gigabytes); now it is its JSON.
    #[test]
    fn deeply_nested_attributes_become_short_json_labels() {
        let mut v = AnyValue {
            value: Some(any_value::Value::StringValue("x".into())),
        };
        for _ in 0..30 {
            v = AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
            };
        }
        let nested = KeyValue {
            key: "deep".into(),
            value: Some(v),
            ..Default::default()
        };
        let t = translate(&request(vec![gauge("q", vec![nested])]), &on());
        let labels: BTreeMap<_, _> = t.observations[0].labels.iter().cloned().collect();
        assert_eq!(
            labels["deep"],
            format!("{}\"x\"{}", "[".repeat(30), "]".repeat(30))
        );
        assert_eq!(t.observations[0].truncated_labels, 0);
    }

    #[test]
    fn long_label_values_are_cut_and_counted() {
        let long = "v".repeat(MAX_LABEL_VALUE_BYTES + 10);
        let attrs = vec![
            kv("a", &long),
            kv("b", "short"),
            kv("c.d", &long),
            kv("c_d", "x"),
        ];
        let t = translate(
            &request(vec![gauge("q", attrs)]),
            &Settings {
                target_info: false,
                ..on()
            },
        );
        let o = &t.observations[0];
        assert_eq!(o.truncated_labels, 2);
        let labels: BTreeMap<_, _> = o.labels.iter().cloned().collect();
        assert_eq!(labels["a"].len(), MAX_LABEL_VALUE_BYTES);
        assert_eq!(labels["b"], "short");
        assert_eq!(
            labels["c_d"].len(),
            MAX_LABEL_VALUE_BYTES,
            "merged values too"
        );
    }

    #[test]
    fn utf8_names_keep_their_characters_and_get_the_collectors_suffixes() {
        let s = Settings {
            utf8_names: true,
            ..on()
        };
        let n = |name: &str, unit: &str, kind: Kind| {
            metric_name(name, unit, kind, kind == Kind::Counter, &s).unwrap()
        };
        assert_eq!(
            n("http.server.duration", "s", Kind::Histogram),
            "http.server.duration_seconds"
        );
        assert_eq!(
            n("http.server.duration_seconds", "s", Kind::Histogram),
            "http.server.duration_seconds",
            "unit not repeated"
        );
        assert_eq!(
            n("cpu.utilization", "1", Kind::Gauge),
            "cpu.utilization_ratio"
        );
        assert_eq!(n("requests.total", "", Kind::Counter), "requests_total");
        assert_eq!(
            n("net.io", "By/s", Kind::Counter),
            "net.io_bytes_per_second_total"
        );
        assert_eq!(n("größe", "{item}", Kind::Gauge), "größe");
        assert_eq!(n("2xx", "", Kind::Gauge), "2xx");
        let plain = Settings {
            add_metric_suffixes: false,
            namespace: "my.app".into(),
            ..s.clone()
        };
        assert_eq!(
            metric_name("http.requests", "s", Kind::Counter, true, &plain).unwrap(),
            "my.app_http.requests"
        );
        assert_eq!(
            metric_name("", "", Kind::Gauge, false, &plain.clone()),
            Some("my.app_".into())
        );
        let bare = Settings {
            namespace: String::new(),
            ..plain
        };
        assert_eq!(metric_name("", "", Kind::Gauge, false, &bare), None);

        assert_eq!(label_key("http.route", true), "http.route");
        assert_eq!(label_key("2fa", true), "2fa");
        assert_eq!(label_key("__", true), "__");
        assert_eq!(label_key("http.route", false), "http_route");
    }
}
