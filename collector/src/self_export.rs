//! Tern's own telemetry pushed over OTLP (`service.telemetry`): each
//! periodic metric reader encodes the self-metrics registry as an
//! `ExportMetricsServiceRequest` every `interval` (counters as monotonic
//! sums, gauges as gauges, histograms with their explicit buckets, Tern's
//! own resource) and each log record processor sends Tern's log lines as
//! OTLP logs. Both send through the `otlp` / `otlphttp` exporters' own
//! transport, never block what they observe (the log queue is bounded and
//! drops what does not fit, counted), count and log (rate-limited) what
//! fails, and send a last time at shutdown within the deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tern_config::{
    BatchSettings, GoDuration, HttpEncoding, OtlpExporterConfig, OtlpHttpExporterConfig,
    OtlpTelemetryExporter, PeriodicReader, RetryConfig, Signal, TelemetryProtocol, Temporality,
    TlsClientConfig,
};
use tern_core::component::Exporter;
use tern_core::pdata::{Batch, RequestContext};
use tern_core::telemetry::{Counter, LogLimiter, Snapshot, Telemetry, Value};
use tern_exporters::BuildError;
use tern_exporters::otlp::{OtlpGrpcExporter, OtlpHttpExporter};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The instrumentation scope of everything Tern pushes about itself.
const SCOPE: &str = "tern";

/// Retries of one push as the OpenTelemetry SDK's OTLP exporters do them
/// (5 s first wait, 30 s longest, given up after a minute), always cut
/// short by the push's own timeout.
fn retry() -> RetryConfig {
    RetryConfig {
        max_elapsed_time: GoDuration(Duration::from_secs(60)),
        ..RetryConfig::default()
    }
}

/// The exporter a reader or processor sends with: the `otlp` (gRPC) or
/// `otlphttp` exporter built from the schema's `exporter.otlp`.
fn exporter(
    id: &str,
    config: &OtlpTelemetryExporter,
    signal: Signal,
) -> Result<Box<dyn Exporter>, BuildError> {
    let tls = TlsClientConfig {
        insecure: config.endpoint.starts_with("http://"),
        ca_file: config.certificate.clone(),
        cert_file: config.client_certificate.clone(),
        key_file: config.client_key.clone(),
        ..TlsClientConfig::default()
    };
    Ok(match config.protocol {
        TelemetryProtocol::Grpc => Box::new(OtlpGrpcExporter::new(
            id,
            &OtlpExporterConfig {
                endpoint: config.endpoint.clone(),
                headers: config.headers.clone(),
                compression: config.compression,
                timeout: GoDuration(config.timeout),
                tls,
                retry_on_failure: retry(),
                ..OtlpExporterConfig::default()
            },
        )?),
        TelemetryProtocol::HttpProtobuf | TelemetryProtocol::HttpJson => {
            let url = http_url(&config.endpoint, signal);
            Box::new(OtlpHttpExporter::new(
                id,
                &OtlpHttpExporterConfig {
                    endpoint: url.clone(),
                    traces_endpoint: url.clone(),
                    metrics_endpoint: url.clone(),
                    logs_endpoint: url,
                    encoding: if config.protocol == TelemetryProtocol::HttpJson {
                        HttpEncoding::Json
                    } else {
                        HttpEncoding::Proto
                    },
                    headers: config.headers.clone(),
                    compression: config.compression,
                    timeout: GoDuration(config.timeout),
                    tls,
                    retry_on_failure: retry(),
                    ..OtlpHttpExporterConfig::default()
                },
            )?)
        }
    })
}

/// An OTLP/HTTP URL as the SDK takes it: without a path, the signal's
/// `/v1/...` path; with one, that path as written.
fn http_url(endpoint: &str, signal: Signal) -> String {
    let after_scheme = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    if after_scheme.contains('/') {
        endpoint.to_string()
    } else {
        format!("{endpoint}/v1/{}", signal.as_str())
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..KeyValue::default()
    }
}

/// Tern's own resource as OTLP.
pub fn resource(attributes: &BTreeMap<String, String>) -> Resource {
    Resource {
        attributes: attributes.iter().map(|(k, v)| string_kv(k, v)).collect(),
        ..Resource::default()
    }
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: SCOPE.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..InstrumentationScope::default()
    })
}

/// What a delta reader sent last: per metric and series, the value then.
#[derive(Debug, Default)]
struct Previous {
    time: Option<SystemTime>,
    values: HashMap<(&'static str, String), Value>,
}

/// `value` less what was sent last time (all of it the first time).
fn since(previous: Option<&Value>, value: &Value) -> Value {
    match (previous, value) {
        (Some(Value::Counter(before)), Value::Counter(now)) => {
            Value::Counter(now.saturating_sub(*before))
        }
        (
            Some(Value::Histogram {
                buckets: before,
                sum: sum_before,
                ..
            }),
            Value::Histogram {
                buckets,
                sum,
                bounds,
                unit,
            },
        ) => {
            let mut diff = buckets.clone();
            for (d, b) in diff.iter_mut().zip(before) {
                *d = d.saturating_sub(*b);
            }
            Value::Histogram {
                buckets: diff,
                sum: sum - sum_before,
                bounds,
                unit: *unit,
            }
        }
        _ => value.clone(),
    }
}

/// The snapshot as one export request. Counter names lose Prometheus'
/// `_total` (an OTLP sum carries no suffix); `target_info` is left out
/// (the resource says it). With `previous` (a delta reader), counters and
/// histograms carry the change since the last request.
fn metrics_request(
    snapshot: &Snapshot,
    resource: &Resource,
    mut previous: Option<&mut Previous>,
) -> ExportMetricsServiceRequest {
    let time = unix_nanos(snapshot.time);
    let (start, temporality) = match &previous {
        Some(p) => (
            unix_nanos(p.time.unwrap_or(snapshot.start)),
            AggregationTemporality::Delta,
        ),
        None => (
            unix_nanos(snapshot.start),
            AggregationTemporality::Cumulative,
        ),
    };
    let mut metrics = Vec::with_capacity(snapshot.families.len());
    for family in snapshot
        .families
        .iter()
        .filter(|f| f.name != "target_info" && !f.series.is_empty())
    {
        let mut numbers = Vec::new();
        let mut histograms = Vec::new();
        let mut monotonic = false;
        let mut histogram_unit = "";
        for series in &family.series {
            let attributes: Vec<KeyValue> =
                series.labels.iter().map(|(k, v)| string_kv(k, v)).collect();
            let value = match previous.as_deref_mut() {
                Some(p) => {
                    let key = (family.name, series.key.clone());
                    let sent = since(p.values.get(&key), &series.value);
                    p.values.insert(key, series.value.clone());
                    sent
                }
                None => series.value.clone(),
            };
            match value {
                Value::Counter(n) => {
                    monotonic = true;
                    numbers.push(NumberDataPoint {
                        attributes,
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        value: Some(number_data_point::Value::AsInt(
                            i64::try_from(n).unwrap_or(i64::MAX),
                        )),
                        ..NumberDataPoint::default()
                    });
                }
                Value::Gauge(v) => numbers.push(NumberDataPoint {
                    attributes,
                    time_unix_nano: time,
                    value: Some(number_data_point::Value::AsInt(v)),
                    ..NumberDataPoint::default()
                }),
                Value::Histogram {
                    buckets,
                    sum,
                    bounds,
                    unit,
                } => {
                    histogram_unit = unit.symbol();
                    histograms.push(HistogramDataPoint {
                        attributes,
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        count: buckets.iter().sum(),
                        sum: Some(sum),
                        bucket_counts: buckets,
                        explicit_bounds: bounds.to_vec(),
                        ..HistogramDataPoint::default()
                    })
                }
            }
        }
        let (name, unit, data) = if !histograms.is_empty() {
            (
                family.name,
                histogram_unit,
                metric::Data::Histogram(Histogram {
                    data_points: histograms,
                    aggregation_temporality: temporality as i32,
                }),
            )
        } else if monotonic {
            (
                family.name.strip_suffix("_total").unwrap_or(family.name),
                "",
                metric::Data::Sum(Sum {
                    data_points: numbers,
                    aggregation_temporality: temporality as i32,
                    is_monotonic: true,
                }),
            )
        } else {
            (
                family.name,
                "",
                metric::Data::Gauge(Gauge {
                    data_points: numbers,
                }),
            )
        };
        metrics.push(Metric {
            name: name.to_string(),
            description: family.help.to_string(),
            unit: unit.to_string(),
            data: Some(data),
            ..Metric::default()
        });
    }
    if let Some(p) = previous {
        p.time = Some(snapshot.time);
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

/// Told at shutdown: the instant everything must be done by.
type Stop = watch::Receiver<Option<Instant>>;

/// Waits until shutdown begins; returns its deadline.
async fn stopped(stop: &mut Stop) -> Instant {
    match stop.wait_for(Option::is_some).await {
        Ok(deadline) => deadline.unwrap_or_else(Instant::now),
        // The service is gone: nothing more to wait for.
        Err(_) => Instant::now(),
    }
}

/// Runs `work` for at most `timeout`, and once shutdown begins, no later
/// than its deadline either; `None` when cut short.
async fn bounded<F: Future>(work: F, timeout: Duration, stop: &mut Stop) -> Option<F::Output> {
    let limit = Instant::now() + timeout;
    let mut work = std::pin::pin!(work);
    tokio::select! {
        out = tokio::time::timeout_at(limit, &mut work) => out.ok(),
        until = stopped(stop) => tokio::time::timeout_at(limit.min(until), work).await.ok(),
    }
}

/// Sends `request` as one batch of `signal`; the error as text.
async fn send(
    exporter: &mut dyn Exporter,
    signal: Signal,
    request: Vec<u8>,
    timeout: Duration,
    stop: &mut Stop,
) -> Result<(), String> {
    let batch = Batch::from_wire(
        signal,
        Bytes::from(request),
        Arc::new(RequestContext::default()),
    )
    .map_err(|e| e.to_string())?;
    match bounded(exporter.export(batch), timeout, stop).await {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!("no success within {timeout:?}")),
    }
}

/// Counters of one periodic reader.
struct PushMetrics {
    pushes: Counter,
    failures: Counter,
    failure_log: LogLimiter,
}

/// One periodic reader: a push every `interval`, and a last one at
/// shutdown.
async fn run_reader(
    index: usize,
    reader: PeriodicReader,
    mut exporter: Box<dyn Exporter>,
    telemetry: Arc<Telemetry>,
    resource: Resource,
    mut stop: Stop,
) {
    let label = index.to_string();
    let labels = [("reader", label.as_str())];
    let counters = PushMetrics {
        pushes: telemetry.counter(
            "tern_telemetry_metric_pushes_total",
            "Pushes of the self-metrics by a periodic reader that the endpoint accepted.",
            &labels,
        ),
        failures: telemetry.counter(
            "tern_telemetry_metric_push_failures_total",
            "Pushes of the self-metrics by a periodic reader that failed.",
            &labels,
        ),
        failure_log: LogLimiter::default(),
    };
    let mut previous = (reader.temporality == Temporality::Delta).then(Previous::default);
    let mut ticks = tokio::time::interval_at(Instant::now() + reader.interval, reader.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let push = |previous: &mut Option<Previous>| {
        metrics_request(&telemetry.snapshot(), &resource, previous.as_mut()).encode_to_vec()
    };
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped(&mut stop) => break,
        }
        let request = push(&mut previous);
        let sent = send(
            exporter.as_mut(),
            Signal::Metrics,
            request,
            reader.timeout,
            &mut stop,
        )
        .await;
        report(index, &reader, &counters, sent);
    }
    // The last push, with the final counts, within the shutdown deadline.
    let until = stopped(&mut stop).await;
    let request = push(&mut previous);
    let left = until.saturating_duration_since(Instant::now());
    let sent = send(
        exporter.as_mut(),
        Signal::Metrics,
        request,
        left.min(reader.timeout),
        &mut stop,
    )
    .await;
    report(index, &reader, &counters, sent);
    let _ = exporter.shutdown().await;
}

fn report(index: usize, reader: &PeriodicReader, counters: &PushMetrics, sent: Result<(), String>) {
    match sent {
        Ok(()) => counters.pushes.add(1),
        Err(error) => {
            counters.failures.add(1);
            if let Some(held_back) = counters.failure_log.allow() {
                tracing::warn!(
                    reader = index,
                    endpoint = %reader.exporter.endpoint,
                    %error,
                    held_back,
                    "pushing the self-metrics failed; the next push carries the totals"
                );
            }
        }
    }
}

tokio::task_local! {
    /// Set inside the log export tasks: what they log themselves is written
    /// out but not exported (a failing export must not feed itself).
    static EXPORTING_LOGS: ();
}

/// True inside a log export task.
pub fn exporting_logs() -> bool {
    EXPORTING_LOGS.try_with(|_| ()).is_ok()
}

/// The logging side of one log record processor: hands records to its
/// export task without ever waiting.
#[derive(Debug)]
pub struct LogSender {
    tx: mpsc::Sender<LogRecord>,
    queue_full: Counter,
    closed: Counter,
}

impl LogSender {
    /// Queues `record`; when the queue is full (or export has stopped), the
    /// record is dropped and counted.
    pub fn offer(&self, record: LogRecord) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.queue_full.add(1),
            Err(mpsc::error::TrySendError::Closed(_)) => self.closed.add(1),
        }
    }
}

/// The export side of one log record processor, until the service starts it.
#[derive(Debug)]
pub struct PendingLogs {
    index: usize,
    rx: mpsc::Receiver<LogRecord>,
    /// `None` for `simple`: each record is sent alone, at once.
    batch: Option<BatchSettings>,
    exporter: OtlpTelemetryExporter,
    exported: Counter,
    failed: Counter,
}

fn dropped(telemetry: &Telemetry, index: &str, reason: &str) -> Counter {
    telemetry.counter(
        "tern_telemetry_log_records_dropped_total",
        "Tern's own log records a log record processor dropped, by reason (queue_full, export_failed, shutdown).",
        &[("processor", index), ("reason", reason)],
    )
}

/// A log record processor's queue: the sender goes to the logger, the
/// rest to the service once the runtime runs.
pub fn log_queue(
    index: usize,
    batch: Option<BatchSettings>,
    exporter: OtlpTelemetryExporter,
    telemetry: &Telemetry,
) -> (LogSender, PendingLogs) {
    let size = batch.unwrap_or_default().max_queue_size;
    let (tx, rx) = mpsc::channel(size);
    let label = index.to_string();
    let sender = LogSender {
        tx,
        queue_full: dropped(telemetry, &label, "queue_full"),
        closed: dropped(telemetry, &label, "shutdown"),
    };
    let pending = PendingLogs {
        index,
        rx,
        batch,
        exporter,
        exported: telemetry.counter(
            "tern_telemetry_log_records_exported_total",
            "Tern's own log records a log record processor exported.",
            &[("processor", &label)],
        ),
        failed: dropped(telemetry, &label, "export_failed"),
    };
    (sender, pending)
}

fn logs_request(records: Vec<LogRecord>, resource: &Resource) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
    .encode_to_vec()
}

/// One log record processor: batches of up to `max_export_batch_size`
/// records, sent when full or `schedule_delay` after their first record;
/// at shutdown, whatever is queued, within the deadline.
async fn run_logs(
    mut pending: PendingLogs,
    mut exporter: Box<dyn Exporter>,
    resource: Resource,
    mut stop: Stop,
) {
    let settings = pending.batch.unwrap_or(BatchSettings {
        schedule_delay: Duration::ZERO,
        max_export_batch_size: 1,
        ..BatchSettings::default()
    });
    let failure_log = LogLimiter::default();
    let mut export = async |records: Vec<LogRecord>, timeout: Duration, stop: &mut Stop| {
        let n = records.len() as u64;
        match send(
            exporter.as_mut(),
            Signal::Logs,
            logs_request(records, &resource),
            timeout,
            stop,
        )
        .await
        {
            Ok(()) => pending.exported.add(n),
            Err(error) => {
                pending.failed.add(n);
                if let Some(held_back) = failure_log.allow() {
                    tracing::warn!(
                        processor = pending.index,
                        endpoint = %pending.exporter.endpoint,
                        records = n,
                        %error,
                        held_back,
                        "exporting Tern's own logs failed; records dropped"
                    );
                }
            }
        }
    };
    let rx = &mut pending.rx;
    'running: loop {
        let first = tokio::select! {
            record = rx.recv() => record,
            _ = stopped(&mut stop) => break 'running,
        };
        let Some(first) = first else { break };
        let mut records = vec![first];
        let flush_at = Instant::now() + settings.schedule_delay;
        while records.len() < settings.max_export_batch_size {
            tokio::select! {
                record = rx.recv() => match record {
                    Some(r) => records.push(r),
                    None => break,
                },
                _ = tokio::time::sleep_until(flush_at) => break,
                _ = stopped(&mut stop) => break,
            }
        }
        export(records, settings.export_timeout, &mut stop).await;
    }
    // Shutdown: no more records; send what is queued while time is left.
    rx.close();
    let until = stopped(&mut stop).await;
    loop {
        let mut records = Vec::new();
        while records.len() < settings.max_export_batch_size {
            match rx.try_recv() {
                Ok(r) => records.push(r),
                Err(_) => break,
            }
        }
        if records.is_empty() {
            break;
        }
        let left = until.saturating_duration_since(Instant::now());
        export(records, left.min(settings.export_timeout), &mut stop).await;
    }
    let _ = exporter.shutdown().await;
}

/// The running readers and processors.
pub struct SelfExport {
    stop: watch::Sender<Option<Instant>>,
    tasks: Vec<JoinHandle<()>>,
}

impl SelfExport {
    /// Starts a task per periodic reader (unless `metrics.level` is none)
    /// and per log record processor.
    pub fn start(
        readers: &[PeriodicReader],
        logs: Vec<PendingLogs>,
        telemetry: &Arc<Telemetry>,
        attributes: &BTreeMap<String, String>,
    ) -> Result<SelfExport, BuildError> {
        let (stop, stop_rx) = watch::channel(None);
        let resource = resource(attributes);
        let mut tasks = Vec::new();
        for (i, reader) in readers.iter().enumerate() {
            let id = format!("service.telemetry.metrics.readers (periodic {i})");
            let exporter = exporter(&id, &reader.exporter, Signal::Metrics)?;
            tasks.push(tokio::spawn(run_reader(
                i,
                reader.clone(),
                exporter,
                telemetry.clone(),
                resource.clone(),
                stop_rx.clone(),
            )));
        }
        for pending in logs {
            let id = format!("service.telemetry.logs.processors[{}]", pending.index);
            let exporter = exporter(&id, &pending.exporter, Signal::Logs)?;
            tasks.push(tokio::spawn(EXPORTING_LOGS.scope(
                (),
                run_logs(pending, exporter, resource.clone(), stop_rx.clone()),
            )));
        }
        Ok(SelfExport { stop, tasks })
    }

    /// The last metric pushes and log flushes, all done by `until`; a task
    /// still running then is stopped.
    pub async fn shutdown(self, until: Instant) {
        let _ = self.stop.send(Some(until));
        for mut task in self.tasks {
            if tokio::time::timeout_at(until, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(telemetry: &Telemetry, previous: Option<&mut Previous>) -> Vec<Metric> {
        let resource = resource(&BTreeMap::from([("service.name".into(), "tern".into())]));
        let mut req = metrics_request(&telemetry.snapshot(), &resource, previous);
        let rm = req.resource_metrics.remove(0);
        assert_eq!(rm.resource.unwrap().attributes[0].key, "service.name");
        let sm = rm.scope_metrics.into_iter().next().unwrap();
        assert_eq!(sm.scope.unwrap().name, "tern");
        sm.metrics
    }

    fn find<'a>(metrics: &'a [Metric], name: &str) -> &'a Metric {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} in {metrics:#?}"))
    }

    fn int(point: &NumberDataPoint) -> i64 {
        match point.value {
            Some(number_data_point::Value::AsInt(v)) => v,
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counters_are_monotonic_sums_gauges_gauges_histograms_histograms() {
        let t = Telemetry::new();
        t.counter("otelcol_things_total", "Things.", &[("a", "b")])
            .add(5);
        t.gauge("otelcol_queue_size", "Size.", &[]).set(3);
        t.gauge("target_info", "Target.", &[]).set(1);
        t.histogram("tern_wait_seconds", "Wait.", &[])
            .observe(Duration::from_millis(3));
        let metrics = request(&t, None);
        assert_eq!(metrics.len(), 3, "{metrics:#?}");
        let things = find(&metrics, "otelcol_things");
        assert_eq!(things.description, "Things.");
        let Some(metric::Data::Sum(sum)) = &things.data else {
            panic!("{things:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert_eq!(int(&sum.data_points[0]), 5);
        assert_eq!(sum.data_points[0].attributes[0].key, "a");
        assert!(sum.data_points[0].start_time_unix_nano <= sum.data_points[0].time_unix_nano);
        let Some(metric::Data::Gauge(g)) = &find(&metrics, "otelcol_queue_size").data else {
            panic!()
        };
        assert_eq!(int(&g.data_points[0]), 3);
        let wait = find(&metrics, "tern_wait_seconds");
        assert_eq!(wait.unit, "s");
        let Some(metric::Data::Histogram(h)) = &wait.data else {
            panic!()
        };
        let p = &h.data_points[0];
        assert_eq!(p.count, 1);
        assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
        assert_eq!(p.bucket_counts[4], 1); // (2 ms, 3 ms]
    }

    #[test]
    fn a_delta_reader_sends_the_change_since_its_last_push() {
        let t = Telemetry::new();
        let c = t.counter("c_total", "C.", &[]);
        let h = t.histogram("h_seconds", "H.", &[]);
        let mut previous = Previous::default();
        c.add(4);
        h.observe(Duration::from_millis(1));
        let value = |metrics: &[Metric]| match &find(metrics, "c").data {
            Some(metric::Data::Sum(s)) => {
                assert_eq!(
                    s.aggregation_temporality,
                    AggregationTemporality::Delta as i32
                );
                int(&s.data_points[0])
            }
            other => panic!("{other:?}"),
        };
        let first = request(&t, Some(&mut previous));
        assert_eq!(value(&first), 4);
        c.add(3);
        let second = request(&t, Some(&mut previous));
        assert_eq!(value(&second), 3);
        let Some(metric::Data::Histogram(hist)) = &find(&second, "h_seconds").data else {
            panic!()
        };
        assert_eq!(hist.data_points[0].count, 0);
    }

    #[test]
    fn an_http_endpoint_without_a_path_gets_the_signals_path() {
        assert_eq!(
            http_url("http://h:4318", Signal::Metrics),
            "http://h:4318/v1/metrics"
        );
        assert_eq!(
            http_url("https://h:4318/custom", Signal::Logs),
            "https://h:4318/custom"
        );
    }

    fn otlp(protocol: TelemetryProtocol, endpoint: &str) -> OtlpTelemetryExporter {
        OtlpTelemetryExporter {
            protocol,
            endpoint: endpoint.into(),
            headers: BTreeMap::new(),
            compression: tern_config::Compression::None,
            timeout: Duration::from_secs(1),
            certificate: String::new(),
            client_certificate: String::new(),
            client_key: String::new(),
        }
    }

    #[test]
    fn tls_files_are_read_when_the_exporter_is_built() {
        for protocol in [TelemetryProtocol::Grpc, TelemetryProtocol::HttpProtobuf] {
            let mut config = otlp(protocol, "https://collector:4317");
            assert!(exporter("t", &config, Signal::Metrics).is_ok());
            config.certificate = "/nonexistent/ca.pem".into();
            let error = match exporter("t", &config, Signal::Metrics) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("built with a missing CA file"),
            };
            assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        }
    }

    #[tokio::test]
    async fn a_full_log_queue_drops_and_counts_without_waiting() {
        let t = Telemetry::new();
        let exporter = otlp(TelemetryProtocol::HttpProtobuf, "http://127.0.0.1:1");
        let settings = BatchSettings {
            max_queue_size: 2,
            ..BatchSettings::default()
        };
        let (sender, pending) = log_queue(0, Some(settings), exporter, &t);
        for _ in 0..5 {
            sender.offer(LogRecord::default());
        }
        let text = t.render();
        assert!(
            text.contains(
                "tern_telemetry_log_records_dropped_total{processor=\"0\",reason=\"queue_full\"} 3"
            ),
            "{text}"
        );
        drop(pending);
        sender.offer(LogRecord::default());
        assert!(t.render().contains(
            "tern_telemetry_log_records_dropped_total{processor=\"0\",reason=\"shutdown\"} 1"
        ));
    }
}
