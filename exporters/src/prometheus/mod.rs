//! The `prometheus` exporter (scrape) and the pieces it shares with
//! `prometheusremotewrite`: [`translate`] (OTLP to Prometheus names, labels
//! and types) with [`label_value`] (attribute values as bounded label
//! values), [`store`] (series state: delta accumulation, series cap,
//! expiry), [`text`] (text format and OpenMetrics) and [`escaping`] (format
//! and name escaping negotiated with the scraper, for UTF-8 names). The
//! scrape endpoint itself is served by the collector with [`ScrapeHandler`].

pub mod escaping;
pub mod label_value;
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
use tern_config::Component;
use tern_config::{Endpoint, PrometheusConfig};
use tern_core::build::{BuildError, Built, Context, Serve, Server};
use tern_core::component::{BoxFuture, Delivered, ExportError, Exporter};
use tern_core::pdata::Batch;
use tern_core::telemetry::{LogLimiter, Telemetry};

use label_value::LabelValue;
use store::{Dropped, Store};
use translate::{Observation, Settings};

/// Counts and logs (each kind at most once per second) points dropped and
/// label values cut at [`label_value::MAX_LABEL_VALUE_BYTES`].
#[derive(Debug)]
pub struct DropReport {
    id: String,
    telemetry: Arc<Telemetry>,
    drop_log: LogLimiter,
    cut_log: LogLimiter,
}

impl DropReport {
    /// Reporting for exporter `id`.
    pub fn new(id: &str, telemetry: &Arc<Telemetry>) -> Self {
        DropReport {
            id: id.to_string(),
            telemetry: telemetry.clone(),
            drop_log: LogLimiter::default(),
            cut_log: LogLimiter::default(),
        }
    }

    /// Records that `points` of `metric`'s points were dropped for `why`.
    pub fn dropped(&self, metric: &str, why: Dropped, points: u64) {
        let reason = match why {
            Dropped::SeriesLimit => "series_limit",
            Dropped::TypeConflict => "type_conflict",
            Dropped::InvalidName => "invalid_name",
        };
        let metric = LabelValue::capped(metric).text;
        self.telemetry
            .counter(
                "tern_exporter_prometheus_dropped_points_total",
                "Data points a Prometheus exporter dropped, by metric and reason.",
                &[
                    ("exporter", &self.id),
                    ("metric", &metric),
                    ("reason", reason),
                ],
            )
            .add(points);
        if let Some(held_back) = self.drop_log.allow() {
            tracing::warn!(
                exporter = %self.id,
                metric,
                reason,
                points,
                similar_since_last_line = held_back,
                "dropped data points: new series over max_series, a name used by another type, or a name with no valid character"
            );
        }
    }

    /// Records that `values` label values of a `metric` point were cut.
    pub fn truncated(&self, metric: &str, values: usize) {
        let metric = LabelValue::capped(metric).text;
        self.telemetry
            .counter(
                "tern_exporter_prometheus_truncated_label_values_total",
                "Label values a Prometheus exporter cut at 2048 bytes, by metric.",
                &[("exporter", &self.id), ("metric", &metric)],
            )
            .add(values as u64);
        if let Some(held_back) = self.cut_log.allow() {
            tracing::warn!(
                exporter = %self.id,
                metric,
                values,
                limit_bytes = label_value::MAX_LABEL_VALUE_BYTES,
                similar_since_last_line = held_back,
                "cut label values longer than the limit"
            );
        }
    }
}

/// Decodes a metrics batch and translates it; reports the points dropped
/// for an invalid name and the label values cut. A request of the batch
/// that does not decode is left out (see [`Batch::each_usable`]) and its
/// points counted. Returns the points to store and the number dropped.
pub fn observations(
    batch: &Batch,
    settings: &Settings,
    report: &DropReport,
) -> Result<(Vec<Observation>, u64), ExportError> {
    let mut usable = batch.each_usable(|wire| {
        ExportMetricsServiceRequest::decode(wire)
            .map(|req| translate::translate(&req, settings))
            .map_err(|e| format!("cannot decode metrics: {e}"))
    });
    let parts = usable.parts_or_error()?;
    let mut rejected = usable.delivered(&report.id, batch.signal()).rejected;
    let mut observations = Vec::new();
    for translated in parts {
        for (name, points) in &translated.invalid_names {
            report.dropped(name, Dropped::InvalidName, *points);
            rejected += points;
        }
        for obs in &translated.observations {
            if obs.truncated_labels > 0 {
                report.truncated(&obs.name, obs.truncated_labels);
            }
        }
        observations.extend(translated.observations);
    }
    Ok((observations, rejected))
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
    /// Renders for a request with these `Accept` and `Accept-Encoding`
    /// headers (format and name escaping negotiated from `Accept`).
    pub fn scrape(&self, accept: &str, accept_encoding: &str) -> Scrape {
        self.store.expire(Instant::now());
        let negotiated = escaping::negotiate(accept, self.open_metrics);
        let body = text::render(
            &self.store,
            negotiated.format,
            negotiated.escaping,
            self.timestamps,
        );
        let gzip = accept_encoding
            .split(',')
            .any(|e| e.split(';').next().is_some_and(|e| e.trim() == "gzip"));
        if gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            if e.write_all(body.as_bytes()).is_ok()
                && let Ok(compressed) = e.finish()
            {
                return Scrape {
                    content_type: negotiated.content_type(),
                    content_encoding: Some("gzip"),
                    body: Bytes::from(compressed),
                };
            }
        }
        Scrape {
            content_type: negotiated.content_type(),
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
        let utf8_names = config.utf8_names();
        let settings = Settings {
            namespace: config.namespace.clone(),
            add_metric_suffixes: config.metric_suffixes(),
            utf8_names,
            resource_to_telemetry: config.resource_to_telemetry_conversion.enabled,
            without_scope_info: config.without_scope_info,
            const_labels: config
                .const_labels
                .iter()
                .map(|(k, v)| (translate::label_key(k, utf8_names), v.clone()))
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
            let (points, mut rejected) = observations(&batch, &self.settings, &self.drops)?;
            for obs in points {
                if let Err(why) = self.store.apply(&obs) {
                    self.drops.dropped(&obs.name, why, 1);
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

/// Builds a `prometheus` exporter and its scrape endpoint (`/metrics`,
/// text or OpenMetrics by `Accept`, gzip by `Accept-Encoding`).
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let config = ctx.settings::<PrometheusConfig>(c)?;
    let (exporter, scrape) = PrometheusExporter::new(&ctx.id, config, ctx.telemetry);
    let servers = scrape
        .into_iter()
        .map(|(endpoint, handler)| Server {
            what: format!("exporter {} scrape endpoint", ctx.id),
            key: format!("exporters.{}.endpoint", ctx.id),
            endpoint,
            serve: Serve::Get {
                path: "/metrics".into(),
                answer: Arc::new(move |headers: &http::HeaderMap| {
                    let header = |name: http::header::HeaderName| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                    };
                    let scrape = handler.scrape(
                        header(http::header::ACCEPT),
                        header(http::header::ACCEPT_ENCODING),
                    );
                    let mut r = http::Response::new(scrape.body);
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(scrape.content_type),
                    );
                    if let Some(encoding) = scrape.content_encoding {
                        r.headers_mut().insert(
                            http::header::CONTENT_ENCODING,
                            http::HeaderValue::from_static(encoding),
                        );
                    }
                    r
                }),
            },
        })
        .collect();
    Ok(Built {
        servers,
        ..Built::exporter(crate::single(Box::new(exporter)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use label_value::MAX_LABEL_VALUE_BYTES;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    use tern_config::Endpoint;
    use tern_core::Signal;
    use tern_core::pdata::RequestContext;

    fn gauge(name: &str, attrs: Vec<KeyValue>) -> Metric {
        Metric {
            name: name.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    attributes: attrs,
                    time_unix_nano: 1_000_000_000,
                    value: Some(number_data_point::Value::AsDouble(1.0)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        }
    }

    fn attr(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn batch(metrics: Vec<Metric>) -> Batch {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Batch::from_wire(
            Signal::Metrics,
            Bytes::from(req.encode_to_vec()),
            Arc::new(RequestContext::default()),
        )
        .unwrap()
    }

    /// One odd name is dropped and counted; the rest of the batch, with its
    /// nested array (28 deep, the most a receiver takes on a data point) and
    /// its over-long value, is served.
    #[tokio::test]
    async fn odd_names_and_huge_values_do_not_spoil_the_scrape() {
        let telemetry = Telemetry::new();
        let config = PrometheusConfig {
            endpoint: Some(Endpoint::new("localhost", 0)),
            ..PrometheusConfig::default()
        };
        let (mut exporter, scrape) = PrometheusExporter::new("prometheus", &config, &telemetry);
        let (_, handler) = scrape.unwrap();
        let mut deep = any_value::Value::StringValue("x".into());
        for _ in 0..28 {
            deep = any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(deep) }],
            });
        }
        let long = any_value::Value::StringValue("v".repeat(1 << 20));
        let delivered = exporter
            .export(batch(vec![
                gauge("日本", vec![]),
                gauge("größe", vec![attr("deep", deep), attr("long", long)]),
            ]))
            .await
            .unwrap();
        assert_eq!(delivered.rejected, 1);
        let body = handler.scrape("", "").body;
        let text = std::str::from_utf8(&body).unwrap();
        let line = text.lines().find(|l| l.starts_with("gr_e{")).unwrap();
        assert!(line.contains(&format!(
            r#"deep="{}\"x\"{}""#,
            "[".repeat(28),
            "]".repeat(28)
        )));
        assert!(line.contains(&format!(r#"long="{}""#, "v".repeat(MAX_LABEL_VALUE_BYTES))));
        assert!(line.len() < 2 * MAX_LABEL_VALUE_BYTES);
        let metrics = telemetry.render();
        assert!(metrics.contains(
            r#"tern_exporter_prometheus_dropped_points_total{exporter="prometheus",metric="日本",reason="invalid_name"} 1"#
        ), "{metrics}");
        assert!(metrics.contains(
            r#"tern_exporter_prometheus_truncated_label_values_total{exporter="prometheus",metric="gr_e"} 1"#
        ), "{metrics}");
    }
}
