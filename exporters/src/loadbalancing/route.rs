//! Splitting a batch by routing key without decoding it: one pass over the
//! wire bytes ([`plan`]) finds the owner of each resource, item or data
//! point (whichever the key works on), then one [`Batch::edit`] per owner
//! keeps only that owner's part ([`split`]); a batch with one owner is
//! passed on untouched. The keys are the Collector's (v0.161), so the
//! same data lands on the same backend as behind it:
//!
//! | signal | `traceID` | `service` | `resource` | `metric` | `streamID` |
//! |---|---|---|---|---|---|
//! | traces | the 16 id bytes, per span | `service.name=<value>\|`, per resource | | | |
//! | logs | the id in hex, per record (a random id when it has none) | the `service.name` string, per resource | the resource's attributes | | |
//! | metrics | | the `service.name` string, per resource (none: not routable) | the resource's attributes | the name, per metric | resource, scope, metric and point attributes, per point |

use tern_config::{RoutingKey, Signal};
use tern_core::pdata::{Batch, EditError};
use tern_core::view::{
    self, Attributes, Change, DataPoint, Decision, Edit, Metric, RequestView, ResourceView,
    ScopeView, SignalView, Value,
};
use tern_core::wire::{WireError, fields, schema, walk_fields};

use super::ring::Ring;

/// The owner of data that cannot be routed (a metric resource without
/// `service.name` under `routing_key: service`).
pub const UNROUTABLE: u16 = u16::MAX;

/// What the owners are listed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Resource,
    Item,
    Point,
}

/// The owner of each routed unit of a batch, in wire order.
#[derive(Debug)]
pub struct Plan {
    level: Level,
    owners: Vec<u16>,
}

impl Plan {
    /// The distinct owners, in order of first appearance.
    pub fn distinct(&self) -> Vec<u16> {
        let mut out: Vec<u16> = Vec::new();
        for o in &self.owners {
            if !out.contains(o) {
                out.push(*o);
            }
        }
        out
    }
}

/// The owner of each resource, item or point of `batch` under `key`
/// (one the signal supports: validation refuses the others).
pub fn plan(batch: &Batch, key: RoutingKey, ring: &Ring) -> Result<Plan, WireError> {
    match batch.signal() {
        Signal::Traces => plan_of::<view::Traces>(batch, key, ring),
        Signal::Logs => plan_of::<view::Logs>(batch, key, ring),
        Signal::Metrics => plan_of::<view::Metrics>(batch, key, ring),
    }
}

fn level(key: RoutingKey) -> Level {
    match key {
        RoutingKey::TraceId | RoutingKey::Metric => Level::Item,
        RoutingKey::StreamId => Level::Point,
        _ => Level::Resource,
    }
}

/// The keys of a signal's items and data points.
trait Keyed: SignalView + Sized {
    /// The item's field the key is made of.
    const KEY_FIELD: u32;

    /// The key of an item (`traceID`, `metric`) from its field `KEY_FIELD`.
    fn item_key(field: Option<&[u8]>, out: &mut Vec<u8>);

    /// The key of each data point of an item (`streamID`; metrics only).
    fn point_keys(
        _resource_id: &[u8],
        _scope: &ScopeView<'_, Self>,
        _item: &Self::Item<'_>,
        _buf: &mut Vec<u8>,
        _each: &mut dyn FnMut(&[u8]),
    ) -> Result<(), WireError> {
        Ok(())
    }
}

impl Keyed for view::Traces {
    const KEY_FIELD: u32 = schema::SPAN.number("trace_id");

    fn item_key(trace_id: Option<&[u8]>, out: &mut Vec<u8>) {
        out.extend_from_slice(trace_id.unwrap_or_default());
    }
}

impl Keyed for view::Logs {
    const KEY_FIELD: u32 = schema::LOG_RECORD.number("trace_id");

    fn item_key(trace_id: Option<&[u8]>, out: &mut Vec<u8>) {
        let mut id = [0u8; 16];
        match trace_id.filter(|t| t.iter().any(|b| *b != 0)) {
            Some(t) => {
                let n = t.len().min(16);
                id[..n].copy_from_slice(&t[..n]);
            }
            // The Collector spreads records without a trace id at random.
            None => id[..4].copy_from_slice(&fastrand::u32(..).to_le_bytes()),
        }
        for b in id {
            out.extend_from_slice(format!("{b:02x}").as_bytes());
        }
    }
}

impl Keyed for view::Metrics {
    const KEY_FIELD: u32 = schema::METRIC.number("name");

    fn item_key(name: Option<&[u8]>, out: &mut Vec<u8>) {
        out.extend_from_slice(name.unwrap_or_default());
    }

    /// The resource, the scope, the metric's identity and the point's
    /// attributes.
    fn point_keys(
        resource_id: &[u8],
        scope: &ScopeView<'_, Self>,
        metric: &Metric<'_>,
        buf: &mut Vec<u8>,
        each: &mut dyn FnMut(&[u8]),
    ) -> Result<(), WireError> {
        buf.clear();
        buf.extend_from_slice(resource_id);
        buf.push(1);
        if let Some(s) = scope.scope {
            buf.extend_from_slice(s.name.as_bytes());
            buf.push(0);
            buf.extend_from_slice(s.version.as_bytes());
            buf.push(0);
            identity(Some(s.attributes()), buf)?;
        }
        buf.push(1);
        buf.extend_from_slice(metric.name.as_bytes());
        buf.push(0);
        buf.extend_from_slice(metric.unit.as_bytes());
        buf.push(metric.metric_type as u8);
        buf.push(metric.aggregation_temporality as u8);
        buf.push(u8::from(metric.is_monotonic));
        let prefix = buf.len();
        for point in metric.data_points() {
            let point = point?;
            buf.truncate(prefix);
            identity(Some(point.attributes()), buf)?;
            each(buf);
        }
        Ok(())
    }
}

fn plan_of<S: Keyed>(batch: &Batch, key: RoutingKey, ring: &Ring) -> Result<Plan, WireError> {
    let level = level(key);
    let mut owners = Vec::new();
    let mut buf = Vec::with_capacity(64);
    let mut last: Option<(Vec<u8>, u16)> = None;
    let mut owner = |k: &[u8]| -> u16 {
        if let Some((prev, o)) = &last
            && prev.as_slice() == k
        {
            return *o;
        }
        let o = ring.owner(k).unwrap_or(UNROUTABLE);
        last = Some((k.to_vec(), o));
        o
    };
    for request in batch.requests() {
        for resource in RequestView::<S>::new(request.bytes).resources() {
            let resource = resource?;
            if level == Level::Resource {
                owners.push(match resource_key(S::SIGNAL, key, &resource, &mut buf)? {
                    true => owner(&buf),
                    false => UNROUTABLE,
                });
                continue;
            }
            let resource_id = if level == Level::Point {
                let mut id = Vec::new();
                identity(resource.resource.map(|r| r.attributes()), &mut id)?;
                id
            } else {
                Vec::new()
            };
            for scope in resource.scopes() {
                let scope = scope?;
                if level == Level::Item {
                    // Only the key field of each item is read.
                    for f in fields(scope.raw) {
                        let f = f?;
                        if f.number == S::ITEMS && f.wire_type == 2 {
                            buf.clear();
                            S::item_key(first(f.payload, S::KEY_FIELD)?, &mut buf);
                            owners.push(owner(&buf));
                        }
                    }
                    continue;
                }
                for item in scope.items() {
                    S::point_keys(&resource_id, &scope, &item?, &mut buf, &mut |k| {
                        owners.push(owner(k))
                    })?;
                }
            }
        }
    }
    Ok(Plan { level, owners })
}

/// The first length-delimited field `number` of message `raw`.
fn first(raw: &[u8], number: u32) -> Result<Option<&[u8]>, WireError> {
    let mut found = None;
    walk_fields(raw, |f| {
        if f.number == number && f.wire_type == 2 {
            found = Some(f.payload);
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(found)
}

/// The key of a resource into `out`; false when it has none (a metric
/// resource without `service.name`).
fn resource_key<S: SignalView>(
    signal: Signal,
    key: RoutingKey,
    resource: &ResourceView<'_, S>,
    out: &mut Vec<u8>,
) -> Result<bool, WireError> {
    out.clear();
    let attributes = resource.resource.map(|r| r.attributes());
    if key == RoutingKey::Resource {
        identity(attributes, out)?;
        return Ok(true);
    }
    let service = match attributes {
        Some(a) => a.get("service.name")?,
        None => None,
    };
    match (signal, service) {
        (Signal::Traces, service) => {
            out.extend_from_slice(b"service.name=");
            if let Some(v) = service {
                as_string(&v, out);
            }
            out.push(b'|');
        }
        (Signal::Metrics, None) => return Ok(false),
        (_, Some(Value::Str(s))) => out.extend_from_slice(s.as_bytes()),
        (_, _) => {}
    }
    Ok(true)
}

/// A set of attributes as `key=value` pairs sorted by key: the same for
/// the same attributes in any order.
fn identity(attributes: Option<Attributes<'_>>, out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut pairs = Vec::new();
    for a in attributes.into_iter().flatten() {
        let a = a?;
        let mut v = Vec::new();
        as_string(&a.value, &mut v);
        pairs.push((a.key, v));
    }
    pairs.sort();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(&v);
        out.push(0);
    }
    Ok(())
}

/// An attribute value as text, as the Collector's `AsString` writes the
/// scalar ones.
fn as_string(value: &Value<'_>, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = match value {
        Value::Empty => Ok(()),
        Value::Str(s) => out.write_all(s.as_bytes()),
        Value::Bool(b) => write!(out, "{b}"),
        Value::Int(i) => write!(out, "{i}"),
        Value::Double(d) => write!(out, "{d}"),
        Value::Bytes(b) => {
            use base64::Engine;
            out.write_all(
                base64::engine::general_purpose::STANDARD
                    .encode(b)
                    .as_bytes(),
            )
        }
        Value::Array(a) => write!(out, "{a:?}"),
        Value::KvList(k) => write!(out, "{k:?}"),
    };
}

/// Keeps one owner's part of a batch.
struct Pick<'p> {
    plan: &'p Plan,
    want: u16,
    next: usize,
}

impl Pick<'_> {
    fn decide(&mut self) -> Decision {
        let owner = self.plan.owners.get(self.next).copied();
        self.next += 1;
        if owner == Some(self.want) {
            Decision::Keep
        } else {
            Decision::Drop
        }
    }
}

impl<S: SignalView> Edit<S> for Pick<'_> {
    fn resource(&mut self, _: &ResourceView<'_, S>, _: &mut Change) -> Result<Decision, WireError> {
        Ok(match self.plan.level {
            Level::Resource => self.decide(),
            _ => Decision::Visit,
        })
    }

    fn item(&mut self, _: &S::Item<'_>, _: &mut Change) -> Result<Decision, WireError> {
        Ok(match self.plan.level {
            Level::Item => self.decide(),
            Level::Point => Decision::Visit,
            Level::Resource => Decision::Keep,
        })
    }

    fn data_point(
        &mut self,
        _: &Metric<'_>,
        _: &DataPoint<'_>,
        _: &mut Change,
    ) -> Result<Decision, WireError> {
        Ok(match self.plan.level {
            Level::Point => self.decide(),
            _ => Decision::Keep,
        })
    }
}

/// Each owner's part of `batch` (its acks and tickets go with every part);
/// the unroutable part is left out.
pub fn split(batch: Batch, plan: &Plan) -> Result<Vec<(u16, Batch)>, EditError> {
    let owners = plan.distinct();
    if let [only] = owners.as_slice() {
        return Ok(if *only == UNROUTABLE {
            Vec::new()
        } else {
            vec![(*only, batch)]
        });
    }
    let mut out = Vec::with_capacity(owners.len());
    for owner in owners.into_iter().filter(|o| *o != UNROUTABLE) {
        let mut pick = Pick {
            plan,
            want: owner,
            next: 0,
        };
        let part = match batch.signal() {
            Signal::Traces => batch.clone().edit::<view::Traces, _>(&mut pick)?,
            Signal::Logs => batch.clone().edit::<view::Logs, _>(&mut pick)?,
            Signal::Metrics => batch.clone().edit::<view::Metrics, _>(&mut pick)?,
        };
        out.push((owner, part));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric as PMetric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    use tern_core::pdata::RequestContext;

    use super::*;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn ring() -> Ring {
        Ring::new(&["a:4317".to_string(), "b:4317".into(), "c:4317".into()])
    }

    fn batch(signal: Signal, bytes: Vec<u8>) -> Batch {
        Batch::from_wire(
            signal,
            Bytes::from(bytes),
            Arc::new(RequestContext::default()),
        )
        .unwrap()
    }

    /// Every part holds only its owner's items, and all items are in some part.
    #[test]
    fn spans_go_to_the_owner_of_their_trace() {
        let spans: Vec<Span> = (0..60u8)
            .map(|i| Span {
                trace_id: vec![i % 20; 16],
                span_id: vec![i; 8],
                ..Default::default()
            })
            .collect();
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "agent")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let ring = ring();
        let b = batch(Signal::Traces, req.encode_to_vec());
        let by_trace = plan(&b, RoutingKey::TraceId, &ring).unwrap();
        let parts = split(b, &by_trace).unwrap();
        assert_eq!(parts.len(), 3);
        let mut total = 0;
        for (owner, part) in parts {
            let got = ExportTraceServiceRequest::decode(part.to_wire()).unwrap();
            for rs in &got.resource_spans {
                assert_eq!(
                    rs.resource.as_ref().unwrap().attributes[0].key,
                    "service.name"
                );
                for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                    assert_eq!(ring.owner(&s.trace_id), Some(owner));
                    total += 1;
                }
            }
        }
        assert_eq!(total, 60);
    }

    #[test]
    fn logs_go_by_service_name_and_one_owner_keeps_the_batch_whole() {
        let resource = |svc: &str| ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", svc)],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); 3],
                ..Default::default()
            }],
            ..Default::default()
        };
        let ring = ring();
        let services = ["checkout", "cart", "frontend", "ads", "email"];
        let req = ExportLogsServiceRequest {
            resource_logs: services.iter().map(|s| resource(s)).collect(),
        };
        let b = batch(Signal::Logs, req.encode_to_vec());
        let by_service = plan(&b, RoutingKey::Service, &ring).unwrap();
        for (owner, part) in split(b, &by_service).unwrap() {
            let got = ExportLogsServiceRequest::decode(part.to_wire()).unwrap();
            for rl in got.resource_logs {
                let attrs = &rl.resource.unwrap().attributes;
                let Some(any_value::Value::StringValue(svc)) =
                    attrs[0].value.as_ref().and_then(|v| v.value.clone())
                else {
                    panic!("no service")
                };
                assert_eq!(ring.owner(svc.as_bytes()), Some(owner));
                assert_eq!(rl.scope_logs[0].log_records.len(), 3);
            }
        }
        // One service: the batch goes on as it is.
        let one = batch(
            Signal::Logs,
            ExportLogsServiceRequest {
                resource_logs: vec![resource("cart")],
            }
            .encode_to_vec(),
        );
        let wire = one.to_wire();
        let whole = plan(&one, RoutingKey::Service, &ring).unwrap();
        let parts = split(one, &whole).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].1.to_wire(), wire);
    }

    #[test]
    fn metric_points_go_by_stream_and_resources_without_a_service_are_unroutable() {
        let point = |host: &str| NumberDataPoint {
            attributes: vec![kv("host", host)],
            ..Default::default()
        };
        let metrics = |resource: Option<Resource>| ResourceMetrics {
            resource,
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![PMetric {
                    name: "load".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: (0..30).map(|i| point(&format!("h{i}"))).collect(),
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![
                metrics(Some(Resource {
                    attributes: vec![kv("service.name", "db")],
                    ..Default::default()
                })),
                metrics(None),
            ],
        };
        let ring = ring();
        let b = batch(Signal::Metrics, req.encode_to_vec());
        let streams = plan(&b, RoutingKey::StreamId, &ring).unwrap();
        assert_eq!(streams.owners.len(), 60);
        assert_eq!(streams.distinct().len(), 3);
        let parts = split(b.clone(), &streams).unwrap();
        assert_eq!(parts.iter().map(|(_, p)| p.items()).sum::<usize>(), 60);
        let by_service = plan(&b, RoutingKey::Service, &ring).unwrap();
        let parts = split(b, &by_service).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(
            parts[0].1.items(),
            30,
            "the resource without service.name is left out"
        );
    }
}
