//! The `debug` exporter: writes what it receives to Tern's log. `basic`
//! prints counts per batch, `normal` one line per item, `detailed` the
//! request context (transport, peer, metadata kept by `include_metadata`)
//! and every field of every item as indented OTLP JSON.

use std::fmt::Write;

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;
use tern_config::{DebugConfig, Signal, Verbosity};
use tern_core::component::{BoxFuture, Delivered, ExportError, Exporter};
use tern_core::hex;
use tern_core::pdata::Batch;

/// See the module docs.
#[derive(Debug)]
pub struct DebugExporter {
    id: String,
    verbosity: Verbosity,
}

impl DebugExporter {
    /// Builds exporter `id`.
    pub fn new(id: &str, config: &DebugConfig) -> Self {
        DebugExporter {
            id: id.to_string(),
            verbosity: config.verbosity,
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
                    tracing::info!(
                        exporter = %self.id,
                        transport = ctx.transport,
                        peer = ?ctx.peer,
                        metadata = %metadata.join(", "),
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
