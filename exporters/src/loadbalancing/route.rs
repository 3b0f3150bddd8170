//! Splitting a batch by routing key without decoding it. For keys that
//! work on resources or items ([`split`]), one walk over each request's
//! wire bytes reads the key of each resource (its attributes) or item (one
//! field of it: the trace id, the metric name), and copies each resource
//! or item as it is into its owner's part, under a copy of its resource and
//! scope envelopes. For `streamID`, whose owners are data points, the owner
//! of each point is listed first, then one [`Batch::edit`] per owner keeps
//! that owner's points. A batch with a single owner is passed on untouched.
//! The keys are the Collector's (v0.161), so the same data lands on the
//! same backend as behind it ([`identity`] computes the hashed ones):
//!
//! | signal | `traceID` | `service` | `resource` | `metric` | `streamID` |
//! |---|---|---|---|---|---|
//! | traces | the 16 id bytes, per span | `service.name=<value>\|`, per resource; see below | | | |
//! | logs | the id in hex, per record (a random id when it has none) | the `service.name` string, per resource | `resource/<hash>` | | |
//! | metrics | | the `service.name` string, per resource (none: not routable) | `resource/<hash>` | the name, per metric | `stream/<hash>`, per point |
//!
//! `service` on traces: the Collector cuts a request into one piece per
//! resource, scope and trace and keys each piece by the first
//! `service.name` it finds: the resource's attribute, else the scope's,
//! else the attribute of the piece's first span, else none
//! (`service.name=|`). A resource with the attribute therefore goes whole
//! to one backend; without it, each trace of each scope goes where its
//! scope's attribute, or its first span's, says.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use tern_config::{RoutingKey, Signal};
use tern_core::pdata::{Batch, EditError};
use tern_core::view::{
    self, Change, DataPoint, Decision, Edit, FromWire, ItemView, Metric, RequestView, ResourceView,
    ScopeView, SignalView, Value,
};
use tern_core::wire::{WireError, fields, put_varint, schema, varint_len, walk_fields};

use super::identity;
use super::ring::Ring;

/// The owner of data that cannot be routed (a metric resource without
/// `service.name` under `routing_key: service`).
const UNROUTABLE: u16 = u16::MAX;

/// A batch split by owner.
#[derive(Debug)]
pub struct Split {
    /// Each owner (index into the ring's endpoints) with its part; the
    /// parts hold the batch's acks and memory tickets.
    pub parts: Vec<(u16, Batch)>,
    /// Items no backend can take.
    pub unroutable: usize,
}

/// Splits `batch` by the owners of its data under `key` (one the signal
/// supports: validation refuses the others).
pub fn split(batch: &Batch, key: RoutingKey, ring: &Ring) -> Result<Split, EditError> {
    match (batch.signal(), key) {
        (Signal::Metrics, RoutingKey::StreamId) => by_points(batch, ring),
        (Signal::Traces, _) => Ok(walk::<view::Traces>(batch, key, ring)?),
        (Signal::Logs, _) => Ok(walk::<view::Logs>(batch, key, ring)?),
        (Signal::Metrics, _) => Ok(walk::<view::Metrics>(batch, key, ring)?),
    }
}

/// The keys of a signal's items and data points.
trait Keyed: SignalView + Sized {
    /// The item's field the key is made of.
    const KEY_FIELD: u32;

    /// The key of an item (`traceID`, `metric`) from its field `KEY_FIELD`.
    fn item_key(field: Option<&[u8]>, out: &mut Vec<u8>);
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
}

/// The owner of a key, remembering the last one (consecutive spans of a
/// trace share it).
struct Owners<'r> {
    ring: &'r Ring,
    last: Option<(Vec<u8>, u16)>,
}

impl Owners<'_> {
    fn of(&mut self, key: &[u8]) -> u16 {
        if let Some((prev, o)) = &self.last
            && prev.as_slice() == key
        {
            return *o;
        }
        let o = self.ring.owner(key).unwrap_or(UNROUTABLE);
        self.last = Some((key.to_vec(), o));
        o
    }
}

/// One owner's part of a request: its resources, each whole or with the
/// scopes and items that are the owner's (all borrowed from the request).
#[derive(Default)]
struct Part<'a> {
    resources: Vec<Group<'a>>,
    items: usize,
}

struct Group<'a> {
    /// The request's resource index.
    index: usize,
    /// The resource message.
    resource: &'a [u8],
    /// `None`: the whole resource; otherwise the scopes kept.
    scopes: Option<Vec<ScopeGroup<'a>>>,
}

/// A scope kept in a part: its index in the resource, its message and the
/// items kept (whole fields).
type ScopeGroup<'a> = (usize, &'a [u8], Vec<&'a [u8]>);

/// A request cut for one owner: its bytes, items and the sender's context.
type Cut = (
    Bytes,
    usize,
    std::sync::Arc<tern_core::pdata::RequestContext>,
);

/// Splits by resource or item keys in one walk of each request.
fn walk<S: Keyed>(batch: &Batch, key: RoutingKey, ring: &Ring) -> Result<Split, WireError> {
    let by_item = matches!(key, RoutingKey::TraceId | RoutingKey::Metric);
    let mut owners = Owners { ring, last: None };
    let mut per_owner: Vec<Vec<Cut>> = vec![Vec::new(); ring.endpoints().len()];
    let mut unroutable = 0;
    let mut buf = Vec::with_capacity(64);
    // `service` on traces without a resource attribute: the owner of each
    // trace of the scope at hand (from its first span).
    let mut traces: HashMap<&[u8], u16> = HashMap::new();
    for request in batch.requests() {
        let mut parts: Vec<Part<'_>> = Vec::new();
        parts.resize_with(ring.endpoints().len(), Part::default);
        for (index, f) in fields(request.bytes).enumerate() {
            let f = f?;
            if f.number != S::RESOURCES || f.wire_type != 2 {
                continue;
            }
            let resource = f.payload;
            if !by_item {
                let view = ResourceView::<S>::from_wire(resource)?;
                let owner = match resource_key(S::SIGNAL, key, &view, &mut buf)? {
                    Key::Found => Some(owners.of(&buf)),
                    Key::Unroutable => Some(UNROUTABLE),
                    Key::PerTrace => None,
                };
                if let Some(owner) = owner {
                    let items = resource_items::<S>(resource)?;
                    match parts.get_mut(usize::from(owner)) {
                        Some(part) => {
                            part.resources.push(Group {
                                index,
                                resource,
                                scopes: None,
                            });
                            part.items += items;
                        }
                        None => unroutable += items,
                    }
                    continue;
                }
            }
            for (scope_index, sf) in fields(resource).enumerate() {
                let sf = sf?;
                if sf.number != S::SCOPES || sf.wire_type != 2 {
                    continue;
                }
                // `service` on traces: the scope's attribute, when it has one.
                let mut scope_owner = None;
                if !by_item {
                    traces.clear();
                    let scope = ScopeView::<S>::from_wire(sf.payload)?;
                    let service = match scope.scope {
                        Some(s) => s.attributes().get(SERVICE_NAME)?,
                        None => None,
                    };
                    if let Some(v) = service {
                        service_key(Some(&v), &mut buf)?;
                        scope_owner = Some(owners.of(&buf));
                    }
                }
                for item in fields(sf.payload) {
                    let item = item?;
                    if item.number != S::ITEMS || item.wire_type != 2 {
                        continue;
                    }
                    let owner = if by_item {
                        buf.clear();
                        S::item_key(first(item.payload, S::KEY_FIELD)?, &mut buf);
                        owners.of(&buf)
                    } else if let Some(o) = scope_owner {
                        o
                    } else {
                        let trace = first(item.payload, S::KEY_FIELD)?.unwrap_or_default();
                        match traces.get(trace) {
                            Some(o) => *o,
                            None => {
                                let span = view::Span::from_wire(item.payload)?;
                                let service = span.attributes().get(SERVICE_NAME)?;
                                service_key(service.as_ref(), &mut buf)?;
                                let o = owners.of(&buf);
                                traces.insert(trace, o);
                                o
                            }
                        }
                    };
                    let items = <S::Item<'_> as ItemView<'_>>::count(item.payload)?;
                    let Some(part) = parts.get_mut(usize::from(owner)) else {
                        unroutable += items;
                        continue;
                    };
                    part.items += items;
                    if part.resources.last().is_none_or(|g| g.index != index) {
                        part.resources.push(Group {
                            index,
                            resource,
                            scopes: Some(Vec::new()),
                        });
                    }
                    if let Some(Group {
                        scopes: Some(scopes),
                        ..
                    }) = part.resources.last_mut()
                    {
                        if scopes.last().is_none_or(|s| s.0 != scope_index) {
                            scopes.push((scope_index, sf.payload, Vec::new()));
                        }
                        if let Some(s) = scopes.last_mut() {
                            s.2.push(item.raw);
                        }
                    }
                }
            }
        }
        let owned: Vec<usize> = (0..parts.len()).filter(|o| parts[*o].items > 0).collect();
        if let [only] = owned.as_slice()
            && parts[*only].items == request.items
        {
            // The whole request is one owner's: passed on as it is.
            per_owner[*only].push((
                request.bytes.clone(),
                request.items,
                request.context.clone(),
            ));
            continue;
        }
        for o in owned {
            let bytes = encode::<S>(&parts[o])?;
            per_owner[o].push((bytes, parts[o].items, request.context.clone()));
        }
    }
    let parts = per_owner
        .into_iter()
        .enumerate()
        .filter(|(_, requests)| !requests.is_empty())
        .map(|(o, requests)| (u16::try_from(o).unwrap_or(UNROUTABLE), requests))
        .collect::<Vec<_>>();
    if let [(owner, _)] = parts.as_slice()
        && unroutable == 0
    {
        return Ok(Split {
            parts: vec![(*owner, batch.clone())],
            unroutable,
        });
    }
    Ok(Split {
        parts: parts
            .into_iter()
            .map(|(o, requests)| (o, batch.derive(requests)))
            .collect(),
        unroutable,
    })
}

/// Items of a resource message (data points for metrics).
fn resource_items<S: SignalView>(resource: &[u8]) -> Result<usize, WireError> {
    let mut n = 0;
    for sf in fields(resource) {
        let sf = sf?;
        if sf.number != S::SCOPES || sf.wire_type != 2 {
            continue;
        }
        for item in fields(sf.payload) {
            let item = item?;
            if item.number == S::ITEMS && item.wire_type == 2 {
                n += <S::Item<'_> as ItemView<'_>>::count(item.payload)?;
            }
        }
    }
    Ok(n)
}

/// Writes field `number` holding a message of `len` bytes: its tag and length.
fn open(out: &mut BytesMut, number: u32, len: usize) {
    put_varint(out, u64::from(number << 3 | 2));
    put_varint(out, len as u64);
}

/// The length of field `number` holding a message of `len` bytes.
fn field_len(number: u32, len: usize) -> usize {
    varint_len(u64::from(number << 3 | 2)) + varint_len(len as u64) + len
}

/// The fields of `message` other than `number`, as they are.
fn others(message: &[u8], number: u32) -> Result<Vec<&[u8]>, WireError> {
    let mut out = Vec::new();
    for f in fields(message) {
        let f = f?;
        if f.number != number {
            out.push(f.raw);
        }
    }
    Ok(out)
}

/// One owner's part of a request as an encoded export request.
fn encode<S: SignalView>(part: &Part<'_>) -> Result<Bytes, WireError> {
    let mut out = BytesMut::new();
    for g in &part.resources {
        let Some(scopes) = &g.scopes else {
            open(&mut out, S::RESOURCES, g.resource.len());
            out.extend_from_slice(g.resource);
            continue;
        };
        let header = others(g.resource, S::SCOPES)?;
        let mut bodies = Vec::with_capacity(scopes.len());
        for (_, scope, items) in scopes {
            let scope_header = others(scope, S::ITEMS)?;
            let len = scope_header.iter().map(|f| f.len()).sum::<usize>()
                + items.iter().map(|i| i.len()).sum::<usize>();
            bodies.push((scope_header, items, len));
        }
        let len = header.iter().map(|f| f.len()).sum::<usize>()
            + bodies
                .iter()
                .map(|(_, _, len)| field_len(S::SCOPES, *len))
                .sum::<usize>();
        out.reserve(field_len(S::RESOURCES, len));
        open(&mut out, S::RESOURCES, len);
        for f in header {
            out.extend_from_slice(f);
        }
        for (scope_header, items, len) in bodies {
            open(&mut out, S::SCOPES, len);
            for f in scope_header {
                out.extend_from_slice(f);
            }
            for i in items {
                out.extend_from_slice(i);
            }
        }
    }
    Ok(out.freeze())
}

/// `streamID`: the owner of each data point, then one edit per owner.
fn by_points(batch: &Batch, ring: &Ring) -> Result<Split, EditError> {
    let owners = point_owners(batch, ring)?;
    let mut distinct: Vec<u16> = Vec::new();
    for o in &owners {
        if !distinct.contains(o) {
            distinct.push(*o);
        }
    }
    if let [only] = distinct.as_slice() {
        return Ok(Split {
            parts: vec![(*only, batch.clone())],
            unroutable: 0,
        });
    }
    let mut parts = Vec::with_capacity(distinct.len());
    for owner in distinct {
        let mut pick = Pick {
            owners: &owners,
            want: owner,
            next: 0,
        };
        parts.push((owner, batch.clone().edit::<view::Metrics, _>(&mut pick)?));
    }
    Ok(Split {
        parts,
        unroutable: 0,
    })
}

/// The owner of each data point of a metrics batch, in wire order: its
/// stream is the resource, the scope, the metric's identity and the
/// point's attributes ([`identity::stream`]).
fn point_owners(batch: &Batch, ring: &Ring) -> Result<Vec<u16>, WireError> {
    let mut owners = Owners { ring, last: None };
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for request in batch.requests() {
        for resource in RequestView::<view::Metrics>::new(request.bytes).resources() {
            let resource = resource?;
            let resource_hash = identity::map_hash(resource.resource.map(|r| r.attributes()))?;
            for scope in resource.scopes() {
                let scope = scope?;
                let (name, version, scope_hash) = match scope.scope {
                    Some(s) => (s.name, s.version, identity::map_hash(Some(s.attributes()))?),
                    None => ("", "", [0; 16]),
                };
                for metric in scope.items() {
                    let metric = metric?;
                    let metric_hash = identity::metric_hash(
                        &resource_hash,
                        (name, version, &scope_hash),
                        &metric,
                    );
                    for point in metric.data_points() {
                        let point = point?;
                        identity::stream(metric_hash, point.attributes(), &mut buf)?;
                        out.push(owners.of(&buf));
                    }
                }
            }
        }
    }
    Ok(out)
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

/// The attribute the `service` key reads.
const SERVICE_NAME: &str = "service.name";

/// What [`resource_key`] found.
enum Key {
    /// The key is in the buffer.
    Found,
    /// No backend takes the resource (metrics without `service.name`).
    Unroutable,
    /// Traces without a resource `service.name`: keyed per scope and trace.
    PerTrace,
}

/// The key of a resource into `out`.
fn resource_key<S: SignalView>(
    signal: Signal,
    key: RoutingKey,
    resource: &ResourceView<'_, S>,
    out: &mut Vec<u8>,
) -> Result<Key, WireError> {
    out.clear();
    let attributes = resource.resource.map(|r| r.attributes());
    if key == RoutingKey::Resource {
        identity::resource(attributes, out)?;
        return Ok(Key::Found);
    }
    let service = match attributes {
        Some(a) => a.get(SERVICE_NAME)?,
        None => None,
    };
    match (signal, service) {
        (Signal::Traces, None) => return Ok(Key::PerTrace),
        (Signal::Traces, service) => service_key(service.as_ref(), out)?,
        (Signal::Metrics, None) => return Ok(Key::Unroutable),
        // Logs and metrics take the string only (`Value.Str()`).
        (_, Some(Value::Str(s))) => out.extend_from_slice(s.as_bytes()),
        (_, _) => {}
    }
    Ok(Key::Found)
}

/// `service.name=<value as text>|` (the Collector's traces key), or
/// `service.name=|` without a value.
fn service_key(value: Option<&Value<'_>>, out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut text = String::from("service.name=");
    if let Some(v) = value {
        identity::as_string(v, &mut text)?;
    }
    text.push('|');
    out.clear();
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// Keeps one owner's data points of a metrics batch.
struct Pick<'p> {
    owners: &'p [u16],
    want: u16,
    next: usize,
}

impl Edit<view::Metrics> for Pick<'_> {
    fn item(&mut self, _: &Metric<'_>, _: &mut Change) -> Result<Decision, WireError> {
        Ok(Decision::Visit)
    }

    fn data_point(
        &mut self,
        _: &Metric<'_>,
        _: &DataPoint<'_>,
        _: &mut Change,
    ) -> Result<Decision, WireError> {
        let owner = self.owners.get(self.next).copied();
        self.next += 1;
        Ok(if owner == Some(self.want) {
            Decision::Keep
        } else {
            Decision::Drop
        })
    }
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
        // Two requests from two senders: each part keeps them apart.
        let mut b = batch(Signal::Traces, req.encode_to_vec());
        let other = Arc::new(RequestContext {
            transport: "http",
            ..RequestContext::default()
        });
        b.append(
            Batch::from_wire(Signal::Traces, Bytes::from(req.encode_to_vec()), other).unwrap(),
        );
        let parts = split(&b, RoutingKey::TraceId, &ring).unwrap().parts;
        assert_eq!(parts.len(), 3);
        for (_, part) in &parts {
            let transports: Vec<&str> = part.requests().map(|r| r.context.transport).collect();
            assert_eq!(transports, ["", "http"]);
        }
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
        assert_eq!(total, 120);
    }

    /// `service` on traces: the resource's `service.name`, else the
    /// scope's, else that of the first span of each trace in its scope.
    #[test]
    fn traces_by_service_fall_back_to_the_scope_and_the_first_span() {
        let span = |trace: u8, id: u8, service: Option<&str>| Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            attributes: service
                .map(|s| vec![kv("service.name", s)])
                .unwrap_or_default(),
            ..Default::default()
        };
        let scoped = ScopeSpans {
            scope: Some(
                opentelemetry_proto::tonic::common::v1::InstrumentationScope {
                    attributes: vec![kv("service.name", "from-scope")],
                    ..Default::default()
                },
            ),
            spans: (0..10).map(|i| span(i, i, Some("ignored"))).collect(),
            ..Default::default()
        };
        // Trace t's first span names svc-t; later spans of it say otherwise
        // or nothing; trace 9 names no service at all.
        let unscoped = ScopeSpans {
            spans: (0..30u8)
                .map(|i| {
                    let trace = 10 + i % 10;
                    let service = match (i / 10, trace) {
                        (_, 19) => None,
                        (0, _) => Some(format!("svc-{trace}")),
                        (1, _) => Some("other".to_string()),
                        _ => None,
                    };
                    span(trace, 100 + i, service.as_deref())
                })
                .collect(),
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: None,
                scope_spans: vec![scoped, unscoped],
                ..Default::default()
            }],
        };
        let ring = Ring::new(
            &(0..8)
                .map(|i| format!("10.0.0.{i}:4317"))
                .collect::<Vec<_>>(),
        );
        let b = batch(Signal::Traces, req.encode_to_vec());
        let parts = split(&b, RoutingKey::Service, &ring).unwrap().parts;
        let mut seen = 0;
        for (owner, part) in parts {
            let got = ExportTraceServiceRequest::decode(part.to_wire()).unwrap();
            for ss in got.resource_spans.iter().flat_map(|r| &r.scope_spans) {
                for s in &ss.spans {
                    let key = match (s.span_id[0], s.trace_id[0]) {
                        (id, _) if id < 10 => "service.name=from-scope|".to_string(),
                        (_, 19) => "service.name=|".to_string(),
                        (_, t) => format!("service.name=svc-{t}|"),
                    };
                    assert_eq!(ring.owner(key.as_bytes()), Some(owner), "{key}");
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 40);
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
        for (owner, part) in split(&b, RoutingKey::Service, &ring).unwrap().parts {
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
        let parts = split(&one, RoutingKey::Service, &ring).unwrap().parts;
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
        let owners = point_owners(&b, &ring).unwrap();
        assert_eq!(owners.len(), 60);
        let by_stream = split(&b, RoutingKey::StreamId, &ring).unwrap().parts;
        assert_eq!(by_stream.len(), 3);
        for (owner, part) in &by_stream {
            let got = ExportMetricsServiceRequest::decode(part.to_wire()).unwrap();
            let points: usize = got
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(metric::Data::Gauge(g)) => g.data_points.len(),
                    _ => 0,
                })
                .sum();
            assert_eq!(points, part.items());
            assert_eq!(part.items(), owners.iter().filter(|o| *o == owner).count());
        }
        assert_eq!(by_stream.iter().map(|(_, p)| p.items()).sum::<usize>(), 60);
        let by_service = split(&b, RoutingKey::Service, &ring).unwrap();
        assert_eq!(by_service.parts.len(), 1);
        assert_eq!(
            by_service.unroutable, 30,
            "the resource without service.name"
        );
        assert_eq!(by_service.parts[0].1.items(), 30);
    }
}
