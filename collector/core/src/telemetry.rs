//! Tern's own metrics, named like the OpenTelemetry Collector's
//! (`otelcol_receiver_accepted_spans_total`, ...) so existing dashboards work,
//! rendered in the Prometheus text format for the pull reader and read as a
//! [`Snapshot`] for the periodic OTLP push. Components get typed handles
//! ([`ReceiverMetrics`], [`ExporterMetrics`], ...) when they are built; no
//! global state.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::Signal;

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Adds `n` (may be negative).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of [`Histogram`] buckets: fine around the
/// milliseconds a request should take, coarse up to timeouts.
pub const DURATION_BOUNDS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 5.0,
];

/// What a [`Histogram`] records durations in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramUnit {
    /// Seconds, as a fraction (the sum keeps nanoseconds).
    Seconds,
    /// Whole milliseconds, cut down as the Collector's Go
    /// `Duration.Milliseconds()` does (a sub-millisecond duration is 0).
    Milliseconds,
}

impl HistogramUnit {
    /// The unit as UCUM writes it (`s`, `ms`).
    pub fn symbol(self) -> &'static str {
        match self {
            HistogramUnit::Seconds => "s",
            HistogramUnit::Milliseconds => "ms",
        }
    }
}

#[derive(Debug)]
struct HistogramCells {
    unit: HistogramUnit,
    /// Upper bounds, in `unit`.
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    /// Nanoseconds (seconds) or whole milliseconds.
    sum: AtomicU64,
}

impl HistogramCells {
    fn new(unit: HistogramUnit, bounds: &'static [f64]) -> Self {
        HistogramCells {
            unit,
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }
}

impl Default for HistogramCells {
    fn default() -> Self {
        HistogramCells::new(HistogramUnit::Seconds, &DURATION_BOUNDS)
    }
}

/// A distribution of durations over bucket bounds (by default
/// [`DURATION_BOUNDS`] in seconds); recording is two relaxed atomic adds.
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<HistogramCells>);

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let (value, raw) = match self.0.unit {
            HistogramUnit::Seconds => (
                d.as_secs_f64(),
                u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            ),
            HistogramUnit::Milliseconds => {
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                (ms as f64, ms)
            }
        };
        let i = self.0.bounds.partition_point(|&b| b < value);
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0.sum.fetch_add(raw, Ordering::Relaxed);
    }

    /// The upper bounds of its buckets, in [`Histogram::unit`].
    pub fn bounds(&self) -> &'static [f64] {
        self.0.bounds
    }

    /// What it records in.
    pub fn unit(&self) -> HistogramUnit {
        self.0.unit
    }

    fn sum(&self) -> f64 {
        let raw = self.0.sum.load(Ordering::Relaxed) as f64;
        match self.0.unit {
            HistogramUnit::Seconds => raw / 1e9,
            HistogramUnit::Milliseconds => raw,
        }
    }

    /// Counts per bucket (not cumulative; the last is above every bound)
    /// and the sum in its unit.
    pub fn buckets(&self) -> (Vec<u64>, f64) {
        let out = self
            .0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        (out, self.sum())
    }

    /// Cumulative counts, one per bound and then `+Inf` (the total).
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.0
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect()
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let cumulative = self.cumulative();
        for (bound, count) in self.0.bounds.iter().zip(&cumulative) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let total = cumulative.last().copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum();
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {total}");
    }
}

#[derive(Debug, Clone)]
enum Cell {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Debug)]
struct Series {
    labels: Arc<[(String, String)]>,
    cell: Cell,
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: &'static str,
    /// By rendered label string.
    series: BTreeMap<String, Series>,
}

/// The registry of self-metrics.
#[derive(Debug)]
pub struct Telemetry {
    families: Mutex<BTreeMap<&'static str, Family>>,
    /// When the registry was made: the start of every cumulative series.
    start: SystemTime,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            families: Mutex::default(),
            start: SystemTime::now(),
        }
    }
}

/// The value of one series when a [`Snapshot`] was taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total.
    Counter(u64),
    /// A gauge's value.
    Gauge(i64),
    /// A histogram: counts per bucket (not cumulative), the sum, the
    /// bounds and the unit they are in.
    Histogram {
        /// Per bucket; the last one is above every bound.
        buckets: Vec<u64>,
        /// Sum of the observations, in `unit`.
        sum: f64,
        /// Upper bounds of the buckets, in `unit`.
        bounds: &'static [f64],
        /// What the observations are in.
        unit: HistogramUnit,
    },
}

/// One series of a [`SnapshotFamily`].
#[derive(Debug, Clone)]
pub struct SnapshotSeries {
    /// Label names and values.
    pub labels: Arc<[(String, String)]>,
    /// The labels as rendered for Prometheus: the series' identity.
    pub key: String,
    /// Its value.
    pub value: Value,
}

/// One metric (a name) of a [`Snapshot`].
#[derive(Debug, Clone)]
pub struct SnapshotFamily {
    /// Prometheus name (`_total` on counters).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Its series.
    pub series: Vec<SnapshotSeries>,
}

/// Every self-metric at one moment, for pushing elsewhere than the
/// Prometheus text.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When the registry was made.
    pub start: SystemTime,
    /// When the snapshot was taken.
    pub time: SystemTime,
    /// The metrics, by name.
    pub families: Vec<SnapshotFamily>,
}

fn label_string(labels: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(s, "{k}=\"{v}\"");
    }
    s
}

impl Telemetry {
    /// A new, empty registry.
    pub fn new() -> Arc<Telemetry> {
        Arc::new(Telemetry::default())
    }

    fn cell(
        &self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Cell,
    ) -> Cell {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: BTreeMap::new(),
        });
        family
            .series
            .entry(label_string(labels))
            .or_insert_with(|| Series {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                cell: make(),
            })
            .cell
            .clone()
    }

    /// Every series' current value.
    pub fn snapshot(&self) -> Snapshot {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        Snapshot {
            start: self.start,
            time: SystemTime::now(),
            families: families
                .iter()
                .map(|(name, family)| SnapshotFamily {
                    name,
                    help: family.help,
                    series: family
                        .series
                        .iter()
                        .map(|(key, series)| SnapshotSeries {
                            labels: series.labels.clone(),
                            key: key.clone(),
                            value: match &series.cell {
                                Cell::Counter(c) => Value::Counter(c.get()),
                                Cell::Gauge(g) => Value::Gauge(g.get()),
                                Cell::Histogram(h) => {
                                    let (buckets, sum) = h.buckets();
                                    Value::Histogram {
                                        buckets,
                                        sum,
                                        bounds: h.bounds(),
                                        unit: h.unit(),
                                    }
                                }
                            },
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// A counter; the same name and labels always give the same counter.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        match self.cell(name, help, "counter", labels, || {
            Cell::Counter(Counter::default())
        }) {
            Cell::Counter(c) => c,
            _ => Counter::default(),
        }
    }

    /// A gauge; the same name and labels always give the same gauge.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Gauge {
        match self.cell(
            name,
            help,
            "gauge",
            labels,
            || Cell::Gauge(Gauge::default()),
        ) {
            Cell::Gauge(g) => g,
            _ => Gauge::default(),
        }
    }

    /// A duration histogram in seconds over [`DURATION_BOUNDS`]; the same
    /// name and labels always give the same one.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Histogram {
        self.histogram_in(name, help, labels, HistogramUnit::Seconds, &DURATION_BOUNDS)
    }

    /// A duration histogram in `unit` over `bounds` (in that unit), for a
    /// metric whose unit and buckets are fixed elsewhere (the Collector's).
    pub fn histogram_in(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        unit: HistogramUnit,
        bounds: &'static [f64],
    ) -> Histogram {
        let make = || Histogram(Arc::new(HistogramCells::new(unit, bounds)));
        match self.cell(name, help, "histogram", labels, || Cell::Histogram(make())) {
            Cell::Histogram(h) => h,
            _ => make(),
        }
    }

    /// Everything in the Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(4096);
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            for (labels, Series { cell, .. }) in &family.series {
                let value = match cell {
                    Cell::Counter(c) => c.get() as i128,
                    Cell::Gauge(g) => g.get() as i128,
                    Cell::Histogram(h) => {
                        h.render(&mut out, name, labels);
                        continue;
                    }
                };
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        }
        out
    }
}

/// Lets a repeated log line through at most once per second, saying how
/// many were held back in between.
#[derive(Debug, Default)]
pub struct LogLimiter {
    last_second: AtomicU64,
    held: AtomicU64,
}

impl LogLimiter {
    /// `Some(held back since the last one)` when this occurrence may be logged.
    pub fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_second.load(Ordering::Relaxed);
        if now != last
            && self
                .last_second
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.held.swap(0, Ordering::AcqRel))
        } else {
            self.held.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Per-signal counters.
#[derive(Debug, Clone)]
pub struct PerSignal<T> {
    traces: T,
    metrics: T,
    logs: T,
}

impl<T> PerSignal<T> {
    fn build(mut f: impl FnMut(Signal) -> T) -> Self {
        PerSignal {
            traces: f(Signal::Traces),
            metrics: f(Signal::Metrics),
            logs: f(Signal::Logs),
        }
    }

    /// The value for `signal`.
    pub fn get(&self, signal: Signal) -> &T {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
        }
    }
}

macro_rules! per_signal_counter {
    ($t:expr, $prefix:literal, $suffix:literal, $help:literal, $labels:expr) => {
        PerSignal::build(|s| {
            let name: &'static str = match s {
                Signal::Traces => concat!($prefix, "_spans", $suffix),
                Signal::Metrics => concat!($prefix, "_metric_points", $suffix),
                Signal::Logs => concat!($prefix, "_log_records", $suffix),
            };
            $t.counter(name, $help, $labels)
        })
    };
}

/// Counters of one receiver on one transport.
#[derive(Debug, Clone)]
pub struct ReceiverMetrics {
    /// Items pushed into the pipelines.
    pub accepted: PerSignal<Counter>,
    /// Items refused (bad input, pipeline full, shutting down).
    pub refused: PerSignal<Counter>,
    /// Time from a request's headers to its answer (Tern's own
    /// `tern_receiver_request_duration_seconds`).
    pub request_duration: Histogram,
    /// Requests refused, by reason (`tern_receiver_requests_refused_total{reason}` is Tern's own).
    telemetry: Arc<Telemetry>,
    id: String,
    transport: &'static str,
    /// Rate limit for the per-request refusal warning.
    pub refusal_log: Arc<LogLimiter>,
}

impl ReceiverMetrics {
    /// Handles for receiver `id` on `transport` (`grpc`, `http`).
    pub fn new(t: &Arc<Telemetry>, id: &str, transport: &'static str) -> Self {
        let labels = [("receiver", id), ("transport", transport)];
        ReceiverMetrics {
            accepted: per_signal_counter!(
                t,
                "otelcol_receiver_accepted",
                "_total",
                "Items successfully pushed into the pipeline.",
                &labels
            ),
            refused: per_signal_counter!(
                t,
                "otelcol_receiver_refused",
                "_total",
                "Items that could not be pushed into the pipeline.",
                &labels
            ),
            request_duration: t.histogram(
                "tern_receiver_request_duration_seconds",
                "Time from a request's headers to its answer: body read, decompression, checks and admission.",
                &labels,
            ),
            telemetry: t.clone(),
            id: id.to_string(),
            transport,
            refusal_log: Arc::new(LogLimiter::default()),
        }
    }

    /// The connection counts of this receiver's listener.
    pub fn connections(&self) -> ConnectionMetrics {
        let labels = [
            ("receiver", self.id.as_str()),
            ("transport", self.transport),
        ];
        ConnectionMetrics {
            open: self.telemetry.gauge(
                "tern_receiver_connections_open",
                "Connections open on the receiver's listener.",
                &labels,
            ),
            limit_reached: self.telemetry.counter(
                "tern_receiver_connection_limit_reached_total",
                "Times the listener reached its connection cap and stopped accepting until a connection closed.",
                &labels,
            ),
            telemetry: self.telemetry.clone(),
            id: self.id.clone(),
            transport: self.transport,
        }
    }

    /// Counts one refused request by reason (`malformed`, `too_large`, `unsupported_media_type`, `pipeline_full`, ...).
    pub fn request_refused(&self, reason: &'static str) {
        self.telemetry
            .counter(
                "tern_receiver_requests_refused_total",
                "Requests refused by the receiver, by reason.",
                &[
                    ("receiver", &self.id),
                    ("transport", self.transport),
                    ("reason", reason),
                ],
            )
            .add(1);
    }
}

/// Connection counts of one receiver listener: open now, closed by reason,
/// and how often the listener reached its connection cap.
#[derive(Debug, Clone)]
pub struct ConnectionMetrics {
    /// Connections open now (`tern_receiver_connections_open`).
    pub open: Gauge,
    /// Times the listener reached its cap and stopped accepting until a
    /// connection closed (`tern_receiver_connection_limit_reached_total`).
    pub limit_reached: Counter,
    telemetry: Arc<Telemetry>,
    id: String,
    transport: &'static str,
}

impl ConnectionMetrics {
    /// Counts one closed connection by reason (`closed`, `error`, `idle`,
    /// `header_timeout`, `tls_handshake`, `shutdown`).
    pub fn closed(&self, reason: &'static str) {
        self.telemetry
            .counter(
                "tern_receiver_connections_closed_total",
                "Connections the receiver closed or saw closed, by reason.",
                &[
                    ("receiver", &self.id),
                    ("transport", self.transport),
                    ("reason", reason),
                ],
            )
            .add(1);
    }
}

/// Counters and gauges of one exporter.
#[derive(Debug, Clone)]
pub struct ExporterMetrics {
    /// Items sent successfully.
    pub sent: PerSignal<Counter>,
    /// Items that failed to send.
    pub send_failed: PerSignal<Counter>,
    /// Items that could not be added to the sending queue.
    pub enqueue_failed: PerSignal<Counter>,
    /// Batches in the queue.
    pub queue_size: Gauge,
    /// Queue capacity in batches.
    pub queue_capacity: Gauge,
}

impl ExporterMetrics {
    /// Handles for exporter `id`.
    pub fn new(t: &Arc<Telemetry>, id: &str) -> Self {
        let labels = [("exporter", id)];
        ExporterMetrics {
            sent: per_signal_counter!(
                t,
                "otelcol_exporter_sent",
                "_total",
                "Items successfully sent to destination.",
                &labels
            ),
            send_failed: per_signal_counter!(
                t,
                "otelcol_exporter_send_failed",
                "_total",
                "Items that failed to be sent to destination.",
                &labels
            ),
            enqueue_failed: per_signal_counter!(
                t,
                "otelcol_exporter_enqueue_failed",
                "_total",
                "Items that failed to be added to the sending queue.",
                &labels
            ),
            queue_size: t.gauge(
                "otelcol_exporter_queue_size",
                "Current size of the retry queue (in batches).",
                &labels,
            ),
            queue_capacity: t.gauge(
                "otelcol_exporter_queue_capacity",
                "Fixed capacity of the retry queue (in batches).",
                &labels,
            ),
        }
    }
}

/// Items in and out of one processor in one pipeline (every processor).
#[derive(Debug, Clone)]
pub struct ProcessorMetrics {
    /// Items that entered the processor.
    pub incoming: Counter,
    /// Items that left the processor.
    pub outgoing: Counter,
}

impl ProcessorMetrics {
    /// Handles for processor `id` handling `signal`.
    pub fn new(t: &Arc<Telemetry>, id: &str, signal: Signal) -> Self {
        let labels = [("processor", id), ("otel_signal", signal.as_str())];
        ProcessorMetrics {
            incoming: t.counter(
                "otelcol_processor_incoming_items_total",
                "Items passed to the processor.",
                &labels,
            ),
            outgoing: t.counter(
                "otelcol_processor_outgoing_items_total",
                "Items emitted from the processor.",
                &labels,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let t = Telemetry::new();
        let r = ReceiverMetrics::new(&t, "otlp", "grpc");
        r.accepted.get(Signal::Traces).add(3);
        r.refused.get(Signal::Logs).add(2);
        let e = ExporterMetrics::new(&t, "file/a\"b");
        e.queue_capacity.set(10);
        let text = t.render();
        assert!(text.contains(
            "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 3"
        ));
        assert!(text.contains(
            "otelcol_receiver_refused_log_records_total{receiver=\"otlp\",transport=\"grpc\"} 2"
        ));
        assert!(text.contains("# TYPE otelcol_exporter_queue_capacity gauge"));
        assert!(text.contains("otelcol_exporter_queue_capacity{exporter=\"file/a\\\"b\"} 10"));
        // Same name and labels: same counter.
        ReceiverMetrics::new(&t, "otlp", "grpc")
            .accepted
            .get(Signal::Traces)
            .add(1);
        assert_eq!(r.accepted.get(Signal::Traces).get(), 4);
    }

    #[test]
    fn a_snapshot_holds_every_series_with_its_labels() {
        let t = Telemetry::new();
        let r = ReceiverMetrics::new(&t, "otlp", "http");
        r.accepted.get(Signal::Logs).add(7);
        r.request_duration.observe(Duration::from_millis(2));
        t.gauge("g", "A gauge.", &[]).set(-3);
        let snapshot = t.snapshot();
        let family = |name: &str| {
            snapshot
                .families
                .iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let accepted = family("otelcol_receiver_accepted_log_records_total");
        assert_eq!(accepted.series.len(), 1);
        let series = &accepted.series[0];
        assert_eq!(series.value, Value::Counter(7));
        assert_eq!(
            &series.labels[..],
            [
                ("receiver".to_string(), "otlp".to_string()),
                ("transport".to_string(), "http".to_string())
            ]
        );
        assert_eq!(series.key, "receiver=\"otlp\",transport=\"http\"");
        assert_eq!(family("g").series[0].value, Value::Gauge(-3));
        match &family("tern_receiver_request_duration_seconds").series[0].value {
            Value::Histogram { buckets, sum, .. } => {
                assert_eq!(buckets.iter().sum::<u64>(), 1);
                assert_eq!(buckets[3], 1); // le 2 ms
                assert!((sum - 0.002).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
        assert!(snapshot.start <= snapshot.time);
    }

    /// A histogram in milliseconds records whole milliseconds (as Go's
    /// `Duration.Milliseconds()`) on its own bounds, and says so.
    #[test]
    fn a_millisecond_histogram_uses_its_own_bounds_and_whole_milliseconds() {
        let t = Telemetry::new();
        let h = t.histogram_in(
            "latency",
            "Latency.",
            &[],
            HistogramUnit::Milliseconds,
            &[5.0, 10.0],
        );
        h.observe(Duration::from_micros(10_900));
        h.observe(Duration::from_micros(900));
        h.observe(Duration::from_millis(30));
        let text = t.render();
        assert!(text.contains("latency_bucket{le=\"5\"} 1\n"), "{text}");
        assert!(text.contains("latency_bucket{le=\"10\"} 2\n"), "{text}");
        assert!(text.contains("latency_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("latency_sum 40\n"), "{text}");
        let snapshot = t.snapshot();
        match &snapshot.families[0].series[0].value {
            Value::Histogram {
                buckets,
                bounds,
                unit,
                ..
            } => {
                assert_eq!(buckets, &[1, 1, 1]);
                assert_eq!(bounds, &[5.0, 10.0]);
                assert_eq!(unit.symbol(), "ms");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inclusive() {
        let t = Telemetry::new();
        let r = ReceiverMetrics::new(&t, "otlp", "http");
        let h = &r.request_duration;
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(5)); // on a bound: counted in it (le)
        h.observe(Duration::from_millis(6));
        h.observe(Duration::from_secs(10)); // beyond the last bound
        let c = h.cumulative();
        assert_eq!(c[0], 0); // le 0.25 ms
        assert_eq!(c[1], 1); // le 0.5 ms
        assert_eq!(c[6], 2); // le 5 ms
        assert_eq!(c[7], 3); // le 7.5 ms
        assert_eq!(c[DURATION_BOUNDS.len() - 1], 3); // le 5 s
        assert_eq!(c[DURATION_BOUNDS.len()], 4); // +Inf
        let text = t.render();
        let name = "tern_receiver_request_duration_seconds";
        assert!(text.contains(&format!("# TYPE {name} histogram")));
        assert!(text.contains(&format!(
            "{name}_bucket{{receiver=\"otlp\",transport=\"http\",le=\"0.005\"}} 2"
        )));
        assert!(text.contains(&format!(
            "{name}_bucket{{receiver=\"otlp\",transport=\"http\",le=\"+Inf\"}} 4"
        )));
        assert!(text.contains(&format!(
            "{name}_count{{receiver=\"otlp\",transport=\"http\"}} 4"
        )));
        assert!(text.contains(&format!(
            "{name}_sum{{receiver=\"otlp\",transport=\"http\"}} 10.0113"
        )));
    }
}
