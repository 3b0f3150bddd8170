//! The `debug` exporter: writes what it receives to Tern's log. `basic`
//! prints counts per batch, `normal` one line per item, `detailed` the
//! request context (transport, peer, metadata kept by `include_metadata`,
//! the sender's authentication attributes but `raw`) and every field of every item as indented OTLP JSON. Output is sampled
//! per signal per second as the Collector's zap sampler does
//! (`sampling_initial`, `sampling_thereafter`); a batch left out of the log
//! is still delivered.

use std::fmt::Write;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;
use tern_config::Component;
use tern_config::{DebugConfig, Signal, Verbosity};
use tern_core::build::{BuildError, Built, Context};
use tern_core::component::{BoxFuture, Delivered, ExportError, Exporter};
use tern_core::hex;
use tern_core::pdata::Batch;

/// Decides which batches are logged: in each one-second window (opened by
/// the first batch after the previous one ends) the first `initial` batches
/// of a signal, then every `thereafter`-th (none when it is 0).
#[derive(Debug)]
struct LogSampler {
    initial: u64,
    thereafter: u64,
    /// Per signal: when its window ends and how many batches it has seen.
    windows: [Option<(Instant, u64)>; 3],
}

impl LogSampler {
    const TICK: Duration = Duration::from_secs(1);

    fn new(initial: u64, thereafter: u64) -> Self {
        LogSampler {
            initial,
            thereafter,
            windows: [None; 3],
        }
    }

    /// Whether a batch of `signal` arriving at `now` is logged.
    fn allow(&mut self, signal: Signal, now: Instant) -> bool {
        let slot = match signal {
            Signal::Traces => 0,
            Signal::Metrics => 1,
            Signal::Logs => 2,
        };
        let seen = match &mut self.windows[slot] {
            Some((end, seen)) if now < *end => {
                *seen += 1;
                *seen
            }
            window => {
                *window = Some((now + Self::TICK, 1));
                1
            }
        };
        seen <= self.initial
            || (self.thereafter > 0 && (seen - self.initial).is_multiple_of(self.thereafter))
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct DebugExporter {
    id: String,
    verbosity: Verbosity,
    sampler: LogSampler,
}

impl DebugExporter {
    /// Builds exporter `id`.
    pub fn new(id: &str, config: &DebugConfig) -> Self {
        DebugExporter {
            id: id.to_string(),
            verbosity: config.verbosity,
            sampler: LogSampler::new(config.sampling_initial, config.sampling_thereafter),
        }
    }
}

fn any_value(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
    }
}

/// Renders one line per item of an encoded request.
pub fn item_lines(signal: Signal, wire: &[u8]) -> Result<String, prost::DecodeError> {
    let mut out = String::new();
    match signal {
        Signal::Traces => {
            let req = ExportTraceServiceRequest::decode(wire)?;
            for span in req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
            {
                let _ = writeln!(
                    out,
                    "span name={:?} trace_id={} span_id={} kind={} duration_ns={}",
                    span.name,
                    hex(&span.trace_id),
                    hex(&span.span_id),
                    span.kind,
                    span.end_time_unix_nano
                        .saturating_sub(span.start_time_unix_nano)
                );
            }
        }
        Signal::Metrics => {
            let req = ExportMetricsServiceRequest::decode(wire)?;
            for m in req
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
            {
                let (kind, points) = match &m.data {
                    Some(metric::Data::Gauge(g)) => ("gauge", g.data_points.len()),
                    Some(metric::Data::Sum(s)) => ("sum", s.data_points.len()),
                    Some(metric::Data::Histogram(h)) => ("histogram", h.data_points.len()),
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        ("exponential_histogram", h.data_points.len())
                    }
                    Some(metric::Data::Summary(s)) => ("summary", s.data_points.len()),
                    None => ("empty", 0),
                };
                let _ = writeln!(
                    out,
                    "metric name={:?} type={kind} points={points} unit={:?}",
                    m.name, m.unit
                );
            }
        }
        Signal::Logs => {
            let req = ExportLogsServiceRequest::decode(wire)?;
            for r in req
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records)
            {
                let _ = writeln!(
                    out,
                    "log severity={:?} body={:?} trace_id={}",
                    r.severity_text,
                    any_value(&r.body),
                    hex(&r.trace_id)
                );
            }
        }
    }
    Ok(out)
}

impl Exporter for DebugExporter {
    fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>> {
        Box::pin(async move {
            let signal = batch.signal();
            if !self.sampler.allow(signal, Instant::now()) {
                return Ok(Delivered::ALL);
            }
            tracing::info!(
                exporter = %self.id,
                %signal,
                items = batch.items(),
                bytes = batch.bytes(),
                "{}",
                signal.as_str()
            );
            match self.verbosity {
                Verbosity::Basic => Ok(Delivered::ALL),
                Verbosity::Normal => {
                    let mut usable = batch.each_usable(|wire| item_lines(signal, wire));
                    for text in usable.parts_or_error()? {
                        tracing::info!(exporter = %self.id, "\n{}", text.trim_end());
                    }
                    Ok(usable.delivered(&self.id, signal))
                }
                Verbosity::Detailed => {
                    let ctx = batch.context();
                    let metadata: Vec<String> = ctx
                        .metadata
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    // The sender's authentication attributes, but not the
                    // credential itself (`raw`).
                    let auth: Vec<String> = ctx
                        .auth
                        .iter()
                        .flat_map(|a| a.iter())
                        .filter(|(name, _)| *name != "raw")
                        .map(|(name, v)| format!("{name}={}", v.header_text()))
                        .collect();
                    tracing::info!(
                        exporter = %self.id,
                        transport = ctx.transport,
                        peer = ?ctx.peer,
                        metadata = %metadata.join(", "),
                        auth = %auth.join(", "),
                        "request context"
                    );
                    let mut usable = batch.each_usable(|wire| {
                        let mut json = Vec::new();
                        tern_core::json::wire_to_json(signal, wire, &mut json)
                            .map_err(|e| e.to_string())?;
                        let value: serde_json::Value =
                            serde_json::from_slice(&json).map_err(|e| e.to_string())?;
                        serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
                    });
                    for pretty in usable.parts_or_error()? {
                        tracing::info!(exporter = %self.id, "\n{pretty}");
                    }
                    Ok(usable.delivered(&self.id, signal))
                }
            }
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Builds a `debug` exporter.
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let config = ctx.settings::<DebugConfig>(c)?;
    Ok(Built::exporter(crate::single(Box::new(
        DebugExporter::new(&ctx.id, config),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decisions(sampler: &mut LogSampler, signal: Signal, at: Instant, n: usize) -> Vec<bool> {
        (0..n).map(|_| sampler.allow(signal, at)).collect()
    }

    #[test]
    fn the_first_batches_of_a_second_are_logged_then_every_nth() {
        let start = Instant::now();
        let mut s = LogSampler::new(2, 3);
        assert_eq!(
            decisions(&mut s, Signal::Traces, start, 8),
            [true, true, false, false, true, false, false, true]
        );
        // Each signal has its own count.
        assert_eq!(
            decisions(&mut s, Signal::Logs, start, 3),
            [true, true, false]
        );
        // A new second starts the count again.
        let later = start + Duration::from_millis(1500);
        assert_eq!(
            decisions(&mut s, Signal::Traces, later, 3),
            [true, true, false]
        );
    }

    #[test]
    fn thereafter_zero_logs_only_the_initial_ones_and_the_default_logs_all() {
        let now = Instant::now();
        let mut none_after = LogSampler::new(1, 0);
        assert_eq!(
            decisions(&mut none_after, Signal::Metrics, now, 4),
            [true, false, false, false]
        );
        let defaults = DebugConfig::default();
        let mut all = LogSampler::new(defaults.sampling_initial, defaults.sampling_thereafter);
        assert!(
            decisions(&mut all, Signal::Metrics, now, 50)
                .into_iter()
                .all(|b| b)
        );
    }
}
