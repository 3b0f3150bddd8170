//! The `prometheus` exporter (scrape) and the pieces it shares with
//! `prometheusremotewrite`: [`translate`] (OTLP to Prometheus names, labels
//! and types), [`store`] (series state: delta accumulation, series cap,
//! expiry) and [`text`] (text format and OpenMetrics). The scrape endpoint
//! itself is served by the collector with [`ScrapeHandler`].

pub mod remote_write;
pub mod store;
pub mod text;
pub mod translate;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tern_config::{Endpoint, PrometheusConfig};
use tern_core::component::{BoxFuture, Delivered, ExportError, Exporter};
use tern_core::pdata::Batch;
use tern_core::telemetry::{LogLimiter, Telemetry};

use store::{Dropped, Store};
use text::Format;
use translate::{Observation, Settings};

/// Counts and logs (at most once per second) points a store refused.
#[derive(Debug)]
pub struct DropReport {
    id: String,
    telemetry: Arc<Telemetry>,
    log: LogLimiter,
}

impl DropReport {
    /// Reporting for exporter `id`.
    pub fn new(id: &str, telemetry: &Arc<Telemetry>) -> Self {
        DropReport {
            id: id.to_string(),
            telemetry: telemetry.clone(),
            log: LogLimiter::default(),
        }
    }

    /// Records that `metric`'s point was dropped for `why`.
    pub fn dropped(&self, metric: &str, why: Dropped) {
        let reason = match why {
            Dropped::SeriesLimit => "series_limit",
            Dropped::TypeConflict => "type_conflict",
        };
        self.telemetry
            .counter(
                "tern_exporter_prometheus_dropped_points_total",
                "Data points a Prometheus exporter dropped, by metric and reason.",
                &[
                    ("exporter", &self.id),
                    ("metric", metric),
                    ("reason", reason),
                ],
            )
            .add(1);
        if let Some(held_back) = self.log.allow() {
            tracing::warn!(
                exporter = %self.id,
                metric,
                reason,
                similar_since_last_line = held_back,
                "dropped a data point: new series over max_series, or a name used by another type"
            );
        }
    }
}

/// Decodes a metrics batch and translates it; a request of the batch that
/// does not decode is left out (see [`Batch::each_usable`]) and its data
/// points counted in the returned [`Delivered`].
pub fn observations(
    id: &str,
    batch: &Batch,
    settings: &Settings,
) -> Result<(Vec<Observation>, Delivered), ExportError> {
    let mut usable = batch.each_usable(|wire| {
        ExportMetricsServiceRequest::decode(wire)
            .map(|req| translate::translate(&req, settings))
            .map_err(|e| format!("cannot decode metrics: {e}"))
    });
    let parts = usable.parts_or_error()?;
    Ok((
        parts.into_iter().flatten().collect(),
        usable.delivered(id, batch.signal()),
    ))
}

/// Answers scrapes of one `prometheus` exporter.
#[derive(Debug)]
pub struct ScrapeHandler {
    store: Arc<Store>,
    open_metrics: bool,
    timestamps: bool,
}

/// A rendered scrape.
#[derive(Debug)]
pub struct Scrape {
    /// Content-Type.
    pub content_type: &'static str,
    /// `gzip` when compressed.
    pub content_encoding: Option<&'static str>,
    /// Body.
    pub body: Bytes,
}

impl ScrapeHandler {
    /// Renders for a request with these `Accept` and `Accept-Encoding` headers.
    pub fn scrape(&self, accept: &str, accept_encoding: &str) -> Scrape {
        self.store.expire(Instant::now());
        let format = if self.open_metrics && accept.contains("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text
        };
        let body = text::render(&self.store, format, self.timestamps);
        let gzip = accept_encoding
            .split(',')
            .any(|e| e.split(';').next().is_some_and(|e| e.trim() == "gzip"));
        if gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            if e.write_all(body.as_bytes()).is_ok()
                && let Ok(compressed) = e.finish()
            {
                return Scrape {
                    content_type: format.content_type(),
                    content_encoding: Some("gzip"),
                    body: Bytes::from(compressed),
                };
            }
        }
        Scrape {
            content_type: format.content_type(),
            content_encoding: None,
            body: Bytes::from(body),
        }
    }
}

/// The `prometheus` exporter: keeps the latest value of every series for
/// the scrape endpoint.
#[derive(Debug, Clone)]
pub struct PrometheusExporter {
    store: Arc<Store>,
    settings: Arc<Settings>,
    drops: Arc<DropReport>,
}

impl PrometheusExporter {
    /// Builds exporter `id`; returns it with its endpoint and scrape handler.
    pub fn new(
        id: &str,
        config: &PrometheusConfig,
        telemetry: &Arc<Telemetry>,
    ) -> (Self, Option<(Endpoint, Arc<ScrapeHandler>)>) {
        let store = Arc::new(Store::new(
            usize::try_from(config.max_series).unwrap_or(usize::MAX),
            config.metric_expiration.0,
        ));
        let settings = Settings {
            namespace: config.namespace.clone(),
            add_metric_suffixes: config.add_metric_suffixes,
            resource_to_telemetry: config.resource_to_telemetry_conversion.enabled,
            const_labels: config
                .const_labels
                .iter()
                .map(|(k, v)| (translate::label_name(k), v.clone()))
                .collect(),
            target_info: true,
        };
        let handler = Arc::new(ScrapeHandler {
            store: store.clone(),
            open_metrics: config.enable_open_metrics,
            timestamps: config.send_timestamps,
        });
        let exporter = PrometheusExporter {
            store,
            settings: Arc::new(settings),
            drops: Arc::new(DropReport::new(id, telemetry)),
        };
        (exporter, config.endpoint.clone().map(|e| (e, handler)))
    }
}

impl Exporter for PrometheusExporter {
    fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>> {
        Box::pin(async move {
            let (observations, delivered) = observations(&self.drops.id, &batch, &self.settings)?;
            let mut rejected = delivered.rejected;
            for obs in observations {
                if let Err(why) = self.store.apply(&obs) {
                    self.drops.dropped(&obs.name, why);
                    rejected += u64::from(!obs.target_info);
                }
            }
            Ok(Delivered { rejected })
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}
