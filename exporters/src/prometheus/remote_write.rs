//! The `prometheusremotewrite` exporter: Remote Write 1.0 (protobuf
//! `WriteRequest`, snappy block compression, `Content-Encoding: snappy`,
//! `X-Prometheus-Remote-Write-Version: 0.1.0`). Counters and gauges become
//! samples, histograms `_bucket{le}` / `_sum` / `_count` series, summaries
//! quantile series, and exponential histograms native histograms. Each
//! series' samples go out in timestamp order (one consumer); a batch split
//! by `max_batch_size_bytes` sends up to `remote_write_queue.num_consumers`
//! of its requests at once (each series is in one of them). Metric family
//! metadata (type, and the description as help) goes with the series when
//! `send_metadata` is set.
//! Series that stop being updated get a staleness marker after
//! `metric_expiration`. 5xx and 429 are retried, other 4xx are not.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use prost::Message;
use tern_config::{PrometheusRemoteWriteConfig, RetryConfig, Target};
use tern_core::component::{BoxFuture, Delivered, ExportError, Exporter};
use tern_core::pdata::Batch;
use tern_core::telemetry::Telemetry;

use super::store::{Series, Store};
use super::text::cumulative_buckets;
use super::translate::{ExpBuckets, Kind, Settings, Value, go_float, label_name};
use super::{DropReport, observations};
use crate::BuildError;
use crate::otlp::response::classify_http;
use crate::retry::{Failure, with_retry};
use crate::transport::{Chunks, HttpVersion, Options, Transport};

/// The Remote Write 1.0 messages (prometheus/prompb).
pub mod proto {
    /// A request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// Series.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        /// Family metadata.
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }
    /// A series and its samples.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Sorted labels, `__name__` included.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Samples in timestamp order.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Exemplars.
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
        /// Native histograms.
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<Histogram>,
    }
    /// A label.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// Name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Value.
        #[prost(string, tag = "2")]
        pub value: String,
    }
    /// A sample.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
    /// An exemplar.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Labels (trace_id, span_id).
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Value.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }
    /// A run of consecutive buckets.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BucketSpan {
        /// Gap from the previous span (or the first index).
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        /// Buckets in the span.
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }
    /// A native histogram sample (integer counts).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        /// Observations.
        #[prost(uint64, tag = "1")]
        pub count_int: u64,
        /// Sum of observations.
        #[prost(double, tag = "3")]
        pub sum: f64,
        /// Resolution (-4..=8).
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        /// Zero bucket width.
        #[prost(double, tag = "5")]
        pub zero_threshold: f64,
        /// Zero bucket count.
        #[prost(uint64, tag = "6")]
        pub zero_count_int: u64,
        /// Negative spans.
        #[prost(message, repeated, tag = "8")]
        pub negative_spans: Vec<BucketSpan>,
        /// Negative counts, delta-encoded.
        #[prost(sint64, repeated, tag = "9")]
        pub negative_deltas: Vec<i64>,
        /// Positive spans.
        #[prost(message, repeated, tag = "11")]
        pub positive_spans: Vec<BucketSpan>,
        /// Positive counts, delta-encoded.
        #[prost(sint64, repeated, tag = "12")]
        pub positive_deltas: Vec<i64>,
        /// Milliseconds.
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
    }
    /// Family metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        /// 1 counter, 2 gauge, 3 histogram, 5 summary.
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// Family name.
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        /// Help.
        #[prost(string, tag = "4")]
        pub help: String,
    }
}

/// Prometheus' staleness marker.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// Native histogram schemas Prometheus accepts.
const MAX_SCHEMA: i32 = 8;
const MIN_SCHEMA: i32 = -4;

/// OTel exponential buckets at `scale` as Prometheus spans and deltas at
/// `schema` (`scale` >= `schema`), merging buckets when downscaling.
/// Prometheus bucket `i` covers (base^(i-1), base^i]: one above OTel's index.
pub fn native_buckets(
    b: &ExpBuckets,
    scale: i32,
    schema: i32,
) -> (Vec<proto::BucketSpan>, Vec<i64>) {
    let shift = scale - schema;
    let mut merged: BTreeMap<i32, u64> = BTreeMap::new();
    for (i, c) in b.counts.iter().enumerate() {
        if *c == 0 {
            continue;
        }
        let otel = b.offset + i as i32;
        *merged.entry((otel >> shift) + 1).or_default() += c;
    }
    let mut spans: Vec<proto::BucketSpan> = Vec::new();
    let mut deltas = Vec::new();
    let mut prev_index: Option<i32> = None;
    let mut prev_count = 0i64;
    for (index, count) in merged {
        match prev_index {
            Some(p) if index == p + 1 => {
                if let Some(last) = spans.last_mut() {
                    last.length += 1;
                }
            }
            Some(p) => spans.push(proto::BucketSpan {
                offset: index - p - 1,
                length: 1,
            }),
            None => spans.push(proto::BucketSpan {
                offset: index,
                length: 1,
            }),
        }
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        deltas.push(count - prev_count);
        prev_count = count;
        prev_index = Some(index);
    }
    (spans, deltas)
}

fn labels_with(
    name: &str,
    labels: &[(String, String)],
    extra: Option<(&str, String)>,
    external: &[(String, String)],
) -> Vec<proto::Label> {
    let mut all: BTreeMap<String, String> = labels.iter().cloned().collect();
    for (k, v) in external {
        all.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if let Some((k, v)) = extra {
        all.insert(k.to_string(), v);
    }
    all.insert("__name__".into(), name.to_string());
    all.into_iter()
        .map(|(name, value)| proto::Label { name, value })
        .collect()
}

/// One translated point, with its cumulative value.
struct Point<'a> {
    name: &'a str,
    /// The family's description (sent as metadata help).
    help: &'a str,
    kind: Kind,
    labels: &'a [(String, String)],
    value: &'a Value,
    ts: i64,
}

/// Series being assembled into requests, keyed by their labels.
#[derive(Default)]
struct Pending {
    series: BTreeMap<Vec<(String, String)>, proto::TimeSeries>,
    metadata: BTreeMap<String, proto::MetricMetadata>,
    /// `external_labels`, added to every series.
    external: Vec<(String, String)>,
}

impl Pending {
    fn new(external: &[(String, String)]) -> Self {
        Pending {
            external: external.to_vec(),
            ..Pending::default()
        }
    }

    fn sample(&mut self, labels: Vec<proto::Label>, value: f64, ts: i64) {
        let key = labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        let ts_entry = self.series.entry(key).or_insert_with(|| proto::TimeSeries {
            labels,
            ..Default::default()
        });
        ts_entry.samples.push(proto::Sample {
            value,
            timestamp: ts,
        });
    }

    fn histogram(&mut self, labels: Vec<proto::Label>, h: proto::Histogram) {
        let key = labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        self.series
            .entry(key)
            .or_insert_with(|| proto::TimeSeries {
                labels,
                ..Default::default()
            })
            .histograms
            .push(h);
    }

    /// Adds every series of `p` (a cumulative value); `stale` replaces
    /// values with the staleness marker.
    fn add(&mut self, p: Point<'_>, stale: bool) -> Result<(), &'static str> {
        let Point {
            name,
            help,
            kind,
            labels,
            value,
            ts,
        } = p;
        let v = |x: f64| if stale { STALE_NAN } else { x };
        match value {
            Value::Number(x) => {
                self.sample(labels_with(name, labels, None, &self.external), v(*x), ts)
            }
            Value::Histogram { count, sum, .. } => {
                for (le, cum) in cumulative_buckets(value) {
                    let l = labels_with(
                        &format!("{name}_bucket"),
                        labels,
                        Some(("le", go_float(le))),
                        &self.external,
                    );
                    self.sample(l, v(cum as f64), ts);
                }
                self.sample(
                    labels_with(&format!("{name}_sum"), labels, None, &self.external),
                    v(*sum),
                    ts,
                );
                self.sample(
                    labels_with(&format!("{name}_count"), labels, None, &self.external),
                    v(*count as f64),
                    ts,
                );
            }
            Value::Exponential {
                count,
                sum,
                scale,
                zero_count,
                zero_threshold,
                positive,
                negative,
            } => {
                let l = labels_with(name, labels, None, &self.external);
                if stale {
                    self.sample(l, STALE_NAN, ts);
                } else {
                    if *scale < MIN_SCHEMA {
                        return Err("unsupported_scale");
                    }
                    let schema = (*scale).min(MAX_SCHEMA);
                    let (positive_spans, positive_deltas) =
                        native_buckets(positive, *scale, schema);
                    let (negative_spans, negative_deltas) =
                        native_buckets(negative, *scale, schema);
                    self.histogram(
                        l,
                        proto::Histogram {
                            count_int: *count,
                            sum: *sum,
                            schema,
                            zero_threshold: *zero_threshold,
                            zero_count_int: *zero_count,
                            negative_spans,
                            negative_deltas,
                            positive_spans,
                            positive_deltas,
                            timestamp: ts,
                        },
                    );
                }
            }
            Value::Summary {
                count,
                sum,
                quantiles,
            } => {
                for (q, x) in quantiles {
                    let l = labels_with(
                        name,
                        labels,
                        Some(("quantile", go_float(*q))),
                        &self.external,
                    );
                    self.sample(l, v(*x), ts);
                }
                self.sample(
                    labels_with(&format!("{name}_sum"), labels, None, &self.external),
                    v(*sum),
                    ts,
                );
                self.sample(
                    labels_with(&format!("{name}_count"), labels, None, &self.external),
                    v(*count as f64),
                    ts,
                );
            }
        }
        let r#type = match kind {
            Kind::Counter => 1,
            Kind::Gauge => 2,
            Kind::Histogram => 3,
            Kind::Summary => 5,
        };
        self.metadata
            .entry(name.to_string())
            .or_insert_with(|| proto::MetricMetadata {
                r#type,
                metric_family_name: name.to_string(),
                help: help.to_string(),
            });
        Ok(())
    }

    /// Encoded requests of at most `max` bytes each (a single larger series
    /// goes alone); the last carries the families' metadata if `metadata`.
    fn requests(self, max: usize, metadata: bool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut current = proto::WriteRequest::default();
        let mut size = 0;
        for (_, mut ts) in self.series {
            ts.samples.sort_by_key(|s| s.timestamp);
            ts.histograms.sort_by_key(|h| h.timestamp);
            let len = ts.encoded_len() + 4;
            if size + len > max && !current.timeseries.is_empty() {
                out.push(std::mem::take(&mut current).encode_to_vec());
                size = 0;
            }
            size += len;
            current.timeseries.push(ts);
        }
        if !current.timeseries.is_empty() {
            if metadata {
                current.metadata = self.metadata.into_values().collect();
            }
            out.push(current.encode_to_vec());
        }
        out
    }
}

#[derive(Debug)]
struct Inner {
    id: String,
    /// The authenticator whose header every request carries.
    auth: Option<Arc<tern_core::auth::ClientAuth>>,
    transport: Transport,
    path: String,
    headers: HeaderMap,
    timeout: Duration,
    retry: RetryConfig,
    settings: Settings,
    external: Vec<(String, String)>,
    max_batch: usize,
    /// Requests of one batch in flight at once (`remote_write_queue.num_consumers`).
    parallel: usize,
    /// `send_metadata`.
    send_metadata: bool,
    store: Store,
    drops: DropReport,
}

impl Inner {
    /// Encodes `pending` and sends it, up to `parallel` requests at once.
    async fn send(self: &Arc<Self>, pending: Pending) -> Result<(), ExportError> {
        let requests = pending.requests(self.max_batch, self.send_metadata);
        if requests.len() <= 1 || self.parallel <= 1 {
            for raw in requests {
                self.post(raw).await?;
            }
            return Ok(());
        }
        let mut in_flight = tokio::task::JoinSet::new();
        for raw in requests {
            if in_flight.len() >= self.parallel
                && let Some(done) = in_flight.join_next().await
            {
                flatten(done)?;
            }
            let inner = self.clone();
            in_flight.spawn(async move { inner.post(raw).await });
        }
        while let Some(done) = in_flight.join_next().await {
            flatten(done)?;
        }
        Ok(())
    }

    async fn post(&self, raw: Vec<u8>) -> Result<(), ExportError> {
        let body = Bytes::from(
            snap::raw::Encoder::new()
                .compress_vec(&raw)
                .map_err(|e| ExportError::Encode(e.to_string()))?,
        );
        // Validation keeps `headers_setter` (whose headers depend on the
        // sender) away from this exporter: no request context is needed.
        let headers = crate::otlp::with_auth(
            &self.headers,
            self.auth.as_deref(),
            &tern_core::pdata::RequestContext::default(),
        );
        with_retry(&self.retry, &self.id, || async {
            match tokio::time::timeout(
                self.timeout,
                self.transport
                    .post(&self.path, &headers, Chunks::new([body.clone()])),
            )
            .await
            {
                Err(_) => Err(Failure::Retryable {
                    message: format!("no answer within {:?}", self.timeout),
                    delay: None,
                }),
                Ok(Err(e)) => Err(Failure::Retryable {
                    message: e.to_string(),
                    delay: None,
                }),
                Ok(Ok(reply)) => classify_remote_write(reply.status, &reply.headers, reply.body),
            }
        })
        .await?;
        Ok(())
    }

    /// Sends staleness markers for series that expired.
    async fn send_stale(self: &Arc<Self>) -> Result<usize, ExportError> {
        let gone = self.store.expire(Instant::now());
        if gone.is_empty() {
            return Ok(0);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut pending = Pending::new(&self.external);
        for (name, kind, Series { labels, value, .. }) in &gone {
            let _ = pending.add(
                Point {
                    name,
                    help: "",
                    kind: *kind,
                    labels,
                    value,
                    ts: now_ms,
                },
                true,
            );
        }
        self.send(pending).await?;
        Ok(gone.len())
    }
}

/// The result of one spawned send.
fn flatten(
    done: Result<Result<(), ExportError>, tokio::task::JoinError>,
) -> Result<(), ExportError> {
    done.map_err(|e| ExportError::Encode(format!("remote write task failed: {e}")))?
}

/// Remote write answers: 5xx and 429 are retried, other 4xx are not.
fn classify_remote_write(
    status: http::StatusCode,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Bytes, Failure> {
    match classify_http(status, headers, body) {
        Err(Failure::Permanent(message)) if status.is_server_error() => Err(Failure::Retryable {
            message,
            delay: None,
        }),
        other => other,
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct RemoteWriteExporter {
    inner: Arc<Inner>,
}

impl RemoteWriteExporter {
    /// Builds exporter `id`, setting `auth`'s header on every request, and
    /// starts its staleness ticker.
    pub fn new(
        id: &str,
        config: &PrometheusRemoteWriteConfig,
        auth: Option<Arc<tern_core::auth::ClientAuth>>,
        telemetry: &Arc<Telemetry>,
    ) -> Result<Self, BuildError> {
        let target = Target::parse_url(&config.endpoint).map_err(|message| BuildError::Config {
            id: id.to_string(),
            message,
        })?;
        let tls = if target.tls {
            Some(
                crate::tls::connector(&config.tls, &target.host, HttpVersion::Http1).map_err(
                    |source| BuildError::Tls {
                        id: id.to_string(),
                        error: source,
                    },
                )?,
            )
        } else {
            None
        };
        let path = target.path.clone();
        let mut headers = crate::otlp::header_map(id, &config.headers)?;
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("snappy"),
        );
        headers.insert(
            "x-prometheus-remote-write-version",
            HeaderValue::from_static("0.1.0"),
        );
        let inner = Arc::new(Inner {
            id: id.to_string(),
            auth,
            transport: Transport::new(target, HttpVersion::Http1, tls, Options::default()),
            path,
            headers,
            timeout: config.timeout.0,
            retry: config.retry_on_failure.clone(),
            settings: Settings {
                namespace: config.namespace.clone(),
                add_metric_suffixes: config.add_metric_suffixes,
                // Remote Write 1.0 carries classic names (the Collector's
                // exporter has no `translation_strategy`).
                utf8_names: false,
                resource_to_telemetry: config.resource_to_telemetry_conversion.enabled,
                const_labels: Vec::new(),
                target_info: config.target_info.enabled,
                without_scope_info: false,
            },
            external: config
                .external_labels
                .iter()
                .map(|(k, v)| (label_name(k), v.clone()))
                .collect(),
            max_batch: usize::try_from(config.max_batch_size_bytes).unwrap_or(usize::MAX),
            parallel: usize::try_from(config.remote_write_queue.num_consumers)
                .unwrap_or(usize::MAX),
            send_metadata: config.send_metadata,
            store: Store::new(
                usize::try_from(config.max_series).unwrap_or(usize::MAX),
                config.metric_expiration.0,
            ),
            drops: DropReport::new(id, telemetry),
        });
        let period = (config.metric_expiration.0 / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(15));
        tokio::spawn(stale_ticker(Arc::downgrade(&inner), period));
        Ok(RemoteWriteExporter { inner })
    }
}

async fn stale_ticker(inner: Weak<Inner>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        match inner.send_stale().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(exporter = %inner.id, series = n, "sent staleness markers"),
            Err(e) => {
                tracing::warn!(exporter = %inner.id, error = %e, "could not send staleness markers")
            }
        }
    }
}

impl Exporter for RemoteWriteExporter {
    fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut pending = Pending::new(&inner.external);
            let (points, mut rejected) = observations(&batch, &inner.settings, &inner.drops)?;
            for obs in points {
                let counts = u64::from(!obs.target_info);
                match inner.store.apply(&obs) {
                    Ok(value) => {
                        let point = Point {
                            name: &obs.name,
                            help: &obs.help,
                            kind: obs.kind,
                            labels: &obs.labels,
                            value: &value,
                            ts: obs.timestamp_ms,
                        };
                        if let Err(reason) = pending.add(point, false) {
                            tracing::warn!(exporter = %inner.id, metric = %obs.name, reason, "dropped a data point");
                            rejected += counts;
                        }
                    }
                    Err(why) => {
                        inner.drops.dropped(&obs.name, why, 1);
                        rejected += counts;
                    }
                }
            }
            inner.send(pending).await?;
            drop(batch);
            Ok(Delivered { rejected })
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Builds a `prometheus_remote_write` exporter.
pub fn build(
    ctx: &tern_core::build::Context<'_>,
    c: &tern_config::Component,
) -> Result<tern_core::build::Built, tern_core::build::BuildError> {
    let config = ctx.settings::<PrometheusRemoteWriteConfig>(c)?;
    let mut beside = Vec::new();
    let auth = crate::otlp::client_auth(ctx, config.auth.as_ref(), &mut beside)?;
    Ok(tern_core::build::Built {
        beside,
        ..tern_core::build::Built::exporter(crate::queued(
            RemoteWriteExporter::new(&ctx.id, config, auth, ctx.telemetry)?,
            &config.remote_write_queue.queue(),
            1,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_buckets_shift_indexes_and_delta_encode() {
        // OTel buckets 0..3 at scale 0 -> Prometheus indexes 1..4.
        let b = ExpBuckets {
            offset: 0,
            counts: vec![2, 3, 0, 1],
        };
        let (spans, deltas) = native_buckets(&b, 0, 0);
        assert_eq!(
            spans,
            vec![
                proto::BucketSpan {
                    offset: 1,
                    length: 2
                },
                proto::BucketSpan {
                    offset: 1,
                    length: 1
                }
            ]
        );
        assert_eq!(deltas, vec![2, 1, -2]);
    }

    #[test]
    fn downscaling_merges_buckets() {
        // scale 9 -> schema 8: indexes 0,1 merge into 0; 2,3 into 1.
        let b = ExpBuckets {
            offset: 0,
            counts: vec![1, 1, 1, 1],
        };
        let (spans, deltas) = native_buckets(&b, 9, 8);
        assert_eq!(
            spans,
            vec![proto::BucketSpan {
                offset: 1,
                length: 2
            }]
        );
        assert_eq!(deltas, vec![2, 0]);
        // Negative indexes shift arithmetically.
        let b = ExpBuckets {
            offset: -3,
            counts: vec![1, 1],
        };
        let (spans, _) = native_buckets(&b, 9, 8);
        assert_eq!(spans[0].offset, -1);
    }

    #[test]
    fn requests_are_split_by_size_and_samples_sorted() {
        let mut p = Pending::default();
        for i in 0..100 {
            let labels = vec![("i".to_string(), i.to_string())];
            p.add(
                Point {
                    name: "g",
                    help: "",
                    kind: Kind::Gauge,
                    labels: &labels,
                    value: &Value::Number(1.0),
                    ts: 20,
                },
                false,
            )
            .unwrap();
            p.add(
                Point {
                    name: "g",
                    help: "",
                    kind: Kind::Gauge,
                    labels: &labels,
                    value: &Value::Number(0.5),
                    ts: 10,
                },
                false,
            )
            .unwrap();
        }
        let reqs = p.requests(1024, false);
        assert!(reqs.len() > 1);
        let mut series = 0;
        for r in &reqs {
            assert!(r.len() <= 1024 + 200, "{}", r.len());
            let w = proto::WriteRequest::decode(&r[..]).unwrap();
            for ts in &w.timeseries {
                assert_eq!(
                    ts.samples.iter().map(|s| s.timestamp).collect::<Vec<_>>(),
                    vec![10, 20]
                );
                assert_eq!(ts.labels[0].name, "__name__");
            }
            series += w.timeseries.len();
        }
        assert_eq!(series, 100);
    }

    #[test]
    fn metadata_goes_out_only_with_send_metadata() {
        let pending = || {
            let mut p = Pending::default();
            p.add(
                Point {
                    name: "requests_total",
                    help: "Requests served.",
                    kind: Kind::Counter,
                    labels: &[],
                    value: &Value::Number(3.0),
                    ts: 1,
                },
                false,
            )
            .unwrap();
            p
        };
        let without = proto::WriteRequest::decode(&pending().requests(1 << 20, false)[0][..]);
        assert!(without.unwrap().metadata.is_empty());
        let with = proto::WriteRequest::decode(&pending().requests(1 << 20, true)[0][..]).unwrap();
        assert_eq!(
            with.metadata,
            [proto::MetricMetadata {
                r#type: 1,
                metric_family_name: "requests_total".into(),
                help: "Requests served.".into(),
            }]
        );
    }

    #[test]
    fn stale_markers_and_external_labels() {
        let mut p = Pending::new(&[("cluster".into(), "a".into())]);
        let h = Value::Histogram {
            count: 1,
            sum: 1.0,
            bounds: vec![1.0],
            counts: vec![1, 0],
        };
        p.add(
            Point {
                name: "h",
                help: "",
                kind: Kind::Histogram,
                labels: &[],
                value: &h,
                ts: 5,
            },
            true,
        )
        .unwrap();
        let w = proto::WriteRequest::decode(&p.requests(1 << 20, false)[0][..]).unwrap();
        assert_eq!(w.timeseries.len(), 4, "two buckets, sum, count");
        for ts in &w.timeseries {
            assert!(ts.samples[0].value.to_bits() == STALE_NAN.to_bits());
            assert!(
                ts.labels
                    .iter()
                    .any(|l| l.name == "cluster" && l.value == "a")
            );
        }
    }

    #[test]
    fn server_errors_are_retried_client_errors_are_not() {
        let h = HeaderMap::new();
        assert!(matches!(
            classify_remote_write(http::StatusCode::INTERNAL_SERVER_ERROR, &h, Bytes::new()),
            Err(Failure::Retryable { .. })
        ));
        assert!(matches!(
            classify_remote_write(http::StatusCode::TOO_MANY_REQUESTS, &h, Bytes::new()),
            Err(Failure::Retryable { .. })
        ));
        assert!(matches!(
            classify_remote_write(http::StatusCode::BAD_REQUEST, &h, Bytes::new()),
            Err(Failure::Permanent(_))
        ));
    }
}
