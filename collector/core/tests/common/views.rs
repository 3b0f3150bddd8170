//! Views and edits agree with prost, as checks shared by tern-core's view
//! tests (random payloads, `tests/views.rs`) and tern-bench's property
//! test (realistic payloads, `benches/src/lib.rs`):
//! - [`check`]: reading a whole request through the views gives what prost
//!   decodes, a sampler-shaped edit that reads spans in one pass ([`Peek`])
//!   gives what prost gives, and a seeded [`Plan`] of edits (drops at every level,
//!   attribute inserts, updates, upserts and deletes at every level, a new
//!   `trace_state`, appended items) written by the editor decodes to what
//!   prost's decode -> change -> encode gives, and passes the validating walk;
//! - [`check_corrupt`]: on any input, views and the editor return errors
//!   rather than panic, and on input the validating walk accepts they
//!   succeed and the edited request is accepted too.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point, metric, number_data_point,
    summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use tern_core::Signal;
use tern_core::view::{
    self, Action, Append, Change, DataPoint, Decision, Edit, Logs, Metrics, RequestView,
    ResourceView, ScopeView, SignalView, Traces, Value,
};
use tern_core::wire::{WireError, count_items};

// ---- reading through the views into prost's structs ----

fn any(v: &Value<'_>) -> Result<AnyValue, WireError> {
    use any_value::Value as V;
    let value = match *v {
        Value::Empty => None,
        Value::Str(s) => Some(V::StringValue(s.into())),
        Value::Bool(b) => Some(V::BoolValue(b)),
        Value::Int(i) => Some(V::IntValue(i)),
        Value::Double(d) => Some(V::DoubleValue(d)),
        Value::Bytes(b) => Some(V::BytesValue(b.to_vec())),
        Value::Array(a) => Some(V::ArrayValue(ArrayValue {
            values: a.values().map(|v| any(&v?)).collect::<Result<_, _>>()?,
        })),
        Value::KvList(k) => Some(V::KvlistValue(KeyValueList {
            values: attributes(k.values())?,
        })),
    };
    Ok(AnyValue { value })
}

fn attributes(attrs: view::Attributes<'_>) -> Result<Vec<KeyValue>, WireError> {
    attrs
        .map(|a| {
            let a = a?;
            Ok(KeyValue {
                key: a.key.into(),
                value: Some(any(&a.value)?),
                ..Default::default()
            })
        })
        .collect()
}

fn resource<S: SignalView>(r: &ResourceView<'_, S>) -> Result<Option<Resource>, WireError> {
    r.resource
        .map(|r| {
            Ok(Resource {
                attributes: attributes(r.attributes())?,
                dropped_attributes_count: r.dropped_attributes_count,
                entity_refs: Vec::new(),
            })
        })
        .transpose()
}

fn scope<S: SignalView>(s: &ScopeView<'_, S>) -> Result<Option<InstrumentationScope>, WireError> {
    s.scope
        .map(|s| {
            Ok(InstrumentationScope {
                name: s.name.into(),
                version: s.version.into(),
                attributes: attributes(s.attributes())?,
                dropped_attributes_count: s.dropped_attributes_count,
            })
        })
        .transpose()
}

fn span(s: &view::Span<'_>) -> Result<Span, WireError> {
    Ok(Span {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        trace_state: s.trace_state.into(),
        parent_span_id: s.parent_span_id.to_vec(),
        flags: s.flags,
        name: s.name.into(),
        kind: s.kind,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: attributes(s.attributes())?,
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events()
            .map(|e| {
                let e = e?;
                Ok(span::Event {
                    time_unix_nano: e.time_unix_nano,
                    name: e.name.into(),
                    attributes: attributes(e.attributes())?,
                    dropped_attributes_count: e.dropped_attributes_count,
                })
            })
            .collect::<Result<_, WireError>>()?,
        dropped_events_count: s.dropped_events_count,
        links: s
            .links()
            .map(|l| {
                let l = l?;
                Ok(span::Link {
                    trace_id: l.trace_id.to_vec(),
                    span_id: l.span_id.to_vec(),
                    trace_state: l.trace_state.into(),
                    attributes: attributes(l.attributes())?,
                    dropped_attributes_count: l.dropped_attributes_count,
                    flags: l.flags,
                })
            })
            .collect::<Result<_, WireError>>()?,
        dropped_links_count: s.dropped_links_count,
        status: s.status.map(|st| Status {
            message: st.message.into(),
            code: st.code,
        }),
    })
}

fn log_record(r: &view::LogRecord<'_>) -> Result<LogRecord, WireError> {
    Ok(LogRecord {
        time_unix_nano: r.time_unix_nano,
        observed_time_unix_nano: r.observed_time_unix_nano,
        severity_number: r.severity_number,
        severity_text: r.severity_text.into(),
        body: r.body.as_ref().map(any).transpose()?,
        attributes: attributes(r.attributes())?,
        dropped_attributes_count: r.dropped_attributes_count,
        flags: r.flags,
        trace_id: r.trace_id.to_vec(),
        span_id: r.span_id.to_vec(),
        event_name: r.event_name.into(),
    })
}

fn exemplars(p: &DataPoint<'_>) -> Result<Vec<Exemplar>, WireError> {
    p.exemplars()
        .map(|e| {
            let e = e?;
            Ok(Exemplar {
                filtered_attributes: attributes(e.filtered_attributes())?,
                time_unix_nano: e.time_unix_nano,
                span_id: e.span_id.to_vec(),
                trace_id: e.trace_id.to_vec(),
                value: e.value.map(|v| match v {
                    view::Number::Int(i) => exemplar::Value::AsInt(i),
                    view::Number::Double(d) => exemplar::Value::AsDouble(d),
                }),
            })
        })
        .collect()
}

fn wrong_point() -> WireError {
    WireError::new(
        tern_core::wire::Reason::Malformed,
        String::new(),
        "a data point of another type".into(),
    )
}

fn number_points(m: &view::Metric<'_>) -> Result<Vec<NumberDataPoint>, WireError> {
    m.data_points()
        .map(|p| {
            let p = p?;
            let DataPoint::Number(n) = p else {
                return Err(wrong_point());
            };
            Ok(NumberDataPoint {
                attributes: attributes(p.attributes())?,
                start_time_unix_nano: n.start_time_unix_nano,
                time_unix_nano: n.time_unix_nano,
                exemplars: exemplars(&p)?,
                flags: n.flags,
                value: n.value.map(|v| match v {
                    view::Number::Int(i) => number_data_point::Value::AsInt(i),
                    view::Number::Double(d) => number_data_point::Value::AsDouble(d),
                }),
            })
        })
        .collect()
}

fn buckets(
    b: Option<view::Buckets<'_>>,
) -> Result<Option<exponential_histogram_data_point::Buckets>, WireError> {
    b.map(|b| {
        Ok(exponential_histogram_data_point::Buckets {
            offset: b.offset,
            bucket_counts: b.bucket_counts().collect::<Result<_, _>>()?,
        })
    })
    .transpose()
}

fn metric(m: &view::Metric<'_>) -> Result<Metric, WireError> {
    use view::MetricType as T;
    let data = match m.metric_type {
        T::Empty => None,
        T::Gauge => Some(metric::Data::Gauge(Gauge {
            data_points: number_points(m)?,
        })),
        T::Sum => Some(metric::Data::Sum(Sum {
            data_points: number_points(m)?,
            aggregation_temporality: m.aggregation_temporality,
            is_monotonic: m.is_monotonic,
        })),
        T::Histogram => Some(metric::Data::Histogram(Histogram {
            data_points: m
                .data_points()
                .map(|p| {
                    let p = p?;
                    let DataPoint::Histogram(h) = p else {
                        return Err(wrong_point());
                    };
                    Ok(HistogramDataPoint {
                        attributes: attributes(p.attributes())?,
                        start_time_unix_nano: h.start_time_unix_nano,
                        time_unix_nano: h.time_unix_nano,
                        count: h.count,
                        sum: h.sum,
                        bucket_counts: h.bucket_counts().collect::<Result<_, _>>()?,
                        explicit_bounds: h.explicit_bounds().collect::<Result<_, _>>()?,
                        exemplars: exemplars(&p)?,
                        flags: h.flags,
                        min: h.min,
                        max: h.max,
                    })
                })
                .collect::<Result<_, _>>()?,
            aggregation_temporality: m.aggregation_temporality,
        })),
        T::ExponentialHistogram => Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: m
                .data_points()
                .map(|p| {
                    let p = p?;
                    let DataPoint::ExponentialHistogram(h) = p else {
                        return Err(wrong_point());
                    };
                    Ok(ExponentialHistogramDataPoint {
                        attributes: attributes(p.attributes())?,
                        start_time_unix_nano: h.start_time_unix_nano,
                        time_unix_nano: h.time_unix_nano,
                        count: h.count,
                        sum: h.sum,
                        scale: h.scale,
                        zero_count: h.zero_count,
                        positive: buckets(h.positive)?,
                        negative: buckets(h.negative)?,
                        flags: h.flags,
                        exemplars: exemplars(&p)?,
                        min: h.min,
                        max: h.max,
                        zero_threshold: h.zero_threshold,
                    })
                })
                .collect::<Result<_, _>>()?,
            aggregation_temporality: m.aggregation_temporality,
        })),
        T::Summary => Some(metric::Data::Summary(Summary {
            data_points: m
                .data_points()
                .map(|p| {
                    let p = p?;
                    let DataPoint::Summary(s) = p else {
                        return Err(wrong_point());
                    };
                    Ok(SummaryDataPoint {
                        attributes: attributes(p.attributes())?,
                        start_time_unix_nano: s.start_time_unix_nano,
                        time_unix_nano: s.time_unix_nano,
                        count: s.count,
                        sum: s.sum,
                        quantile_values: s
                            .quantile_values()
                            .map(|q| {
                                let q = q?;
                                Ok(summary_data_point::ValueAtQuantile {
                                    quantile: q.quantile,
                                    value: q.value,
                                })
                            })
                            .collect::<Result<_, WireError>>()?,
                        flags: s.flags,
                    })
                })
                .collect::<Result<_, _>>()?,
        })),
    };
    Ok(Metric {
        name: m.name.into(),
        description: m.description.into(),
        unit: m.unit.into(),
        metadata: attributes(m.metadata())?,
        data,
    })
}

/// A whole traces request read through the views.
pub fn traces_via_views(bytes: &[u8]) -> Result<ExportTraceServiceRequest, WireError> {
    let mut req = ExportTraceServiceRequest::default();
    for r in RequestView::<Traces>::new(bytes).resources() {
        let r = r?;
        let mut out = ResourceSpans {
            resource: resource(&r)?,
            schema_url: r.schema_url.into(),
            ..Default::default()
        };
        for s in r.scopes() {
            let s = s?;
            out.scope_spans.push(ScopeSpans {
                scope: scope(&s)?,
                spans: s.items().map(|i| span(&i?)).collect::<Result<_, _>>()?,
                schema_url: s.schema_url.into(),
            });
        }
        req.resource_spans.push(out);
    }
    Ok(req)
}

/// A whole logs request read through the views.
pub fn logs_via_views(bytes: &[u8]) -> Result<ExportLogsServiceRequest, WireError> {
    let mut req = ExportLogsServiceRequest::default();
    for r in RequestView::<Logs>::new(bytes).resources() {
        let r = r?;
        let mut out = ResourceLogs {
            resource: resource(&r)?,
            schema_url: r.schema_url.into(),
            ..Default::default()
        };
        for s in r.scopes() {
            let s = s?;
            out.scope_logs.push(ScopeLogs {
                scope: scope(&s)?,
                log_records: s
                    .items()
                    .map(|i| log_record(&i?))
                    .collect::<Result<_, _>>()?,
                schema_url: s.schema_url.into(),
            });
        }
        req.resource_logs.push(out);
    }
    Ok(req)
}

/// A whole metrics request read through the views.
pub fn metrics_via_views(bytes: &[u8]) -> Result<ExportMetricsServiceRequest, WireError> {
    let mut req = ExportMetricsServiceRequest::default();
    for r in RequestView::<Metrics>::new(bytes).resources() {
        let r = r?;
        let mut out = ResourceMetrics {
            resource: resource(&r)?,
            schema_url: r.schema_url.into(),
            ..Default::default()
        };
        for s in r.scopes() {
            let s = s?;
            out.scope_metrics.push(ScopeMetrics {
                scope: scope(&s)?,
                metrics: s.items().map(|i| metric(&i?)).collect::<Result<_, _>>()?,
                schema_url: s.schema_url.into(),
            });
        }
        req.resource_metrics.push(out);
    }
    Ok(req)
}

// ---- the edit plan, as an `Edit` and as a change to prost's structs ----

/// Seeded edits of every kind. Resources are dropped when their
/// `service.name` is `drop-me` and kept whole (scopes copied, only the
/// resource's own attributes edited) when it is `keep-me`; scopes named
/// `drop.scope` are dropped, `keep.scope` kept whole; spans and log records
/// are dropped by a field's value, metrics named `drop.metric` dropped,
/// data points by their position; every second visited scope gets an item
/// appended.
#[derive(Debug, Clone)]
pub struct Plan {
    seed: u64,
    scopes: usize,
    points: usize,
}

impl Plan {
    /// The plan for `seed`.
    pub fn new(seed: u64) -> Plan {
        Plan {
            seed,
            scopes: 0,
            points: 0,
        }
    }

    fn resource_ops(&self) -> Vec<(Action, &'static str, Value<'static>)> {
        vec![
            (Action::Upsert, "tern.edited", Value::Str("yes")),
            (Action::Update, "service.name", Value::Str("renamed")),
            (Action::Delete, "k8s.pod.name", Value::Empty),
            (
                Action::Insert,
                "service.namespace",
                Value::Str("not-written"),
            ),
            (Action::Insert, "host.id", Value::Int(self.seed as i64)),
            (Action::Update, "absent.key", Value::Bool(true)),
        ]
    }

    fn scope_ops(&self) -> Vec<(Action, &'static str, Value<'static>)> {
        vec![
            (Action::Upsert, "scope.edited", Value::Bool(true)),
            (Action::Delete, "scope.drop", Value::Empty),
        ]
    }

    fn item_ops(&self) -> Vec<(Action, &'static str, Value<'static>)> {
        vec![
            (Action::Upsert, "sampling.ratio", Value::Double(0.25)),
            (
                Action::Update,
                "gen_ai.request.model",
                Value::Str("redacted"),
            ),
            (Action::Delete, "gen_ai.system", Value::Empty),
            (
                Action::Insert,
                "gen_ai.operation.name",
                Value::Str("not-written"),
            ),
            (Action::Upsert, "http.route", Value::Bytes(b"\x00\x01")),
            (Action::Insert, "edited.id", Value::Int(-(self.seed as i64))),
        ]
    }

    fn point_ops(&self) -> Vec<(Action, &'static str, Value<'static>)> {
        vec![
            (Action::Upsert, "shard", Value::Str("moved")),
            (Action::Delete, "gen_ai.request.model", Value::Empty),
        ]
    }

    fn resource_decision(&self, name: Option<&str>) -> Decision {
        match name {
            Some("drop-me") => Decision::Drop,
            Some("keep-me") => Decision::Keep,
            _ => Decision::Visit,
        }
    }

    fn scope_decision(&self, name: Option<&str>) -> Decision {
        match name {
            Some("drop.scope") => Decision::Drop,
            Some("keep.scope") => Decision::Keep,
            _ => Decision::Visit,
        }
    }

    fn keep_span(&self, span_id: &[u8]) -> bool {
        span_id
            .last()
            .is_none_or(|b| (u64::from(*b) + self.seed).is_multiple_of(2))
    }

    fn keep_log(&self, time: u64) -> bool {
        !(time / 1000 + self.seed).is_multiple_of(3)
    }

    fn keep_point(&mut self) -> bool {
        self.points += 1;
        !(self.points as u64 + self.seed).is_multiple_of(3)
    }

    /// True for every second visited scope.
    fn appends(&mut self) -> bool {
        self.scopes += 1;
        self.scopes % 2 == 1
    }
}

fn fill(change: &mut Change, ops: &[(Action, &'static str, Value<'static>)]) {
    for (action, key, value) in ops {
        change.attribute(*action, key, *value);
    }
}

fn str_value(v: Option<Value<'_>>) -> Option<&str> {
    match v {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn edit_resource<S: SignalView>(
    plan: &Plan,
    r: &ResourceView<'_, S>,
    change: &mut Change,
) -> Result<Decision, WireError> {
    let name = match r.resource {
        Some(res) => str_value(res.attributes().get("service.name")?),
        None => None,
    };
    fill(change, &plan.resource_ops());
    Ok(plan.resource_decision(name))
}

fn edit_scope<S: SignalView>(
    plan: &Plan,
    s: &ScopeView<'_, S>,
    change: &mut Change,
) -> Result<Decision, WireError> {
    fill(change, &plan.scope_ops());
    Ok(plan.scope_decision(s.scope.map(|s| s.name)))
}

fn appended_span() -> Span {
    Span {
        trace_id: vec![7; 16],
        span_id: vec![8; 8],
        name: "appended".into(),
        kind: 2,
        attributes: vec![KeyValue {
            key: "appended".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::BoolValue(true)),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn appended_log() -> LogRecord {
    LogRecord {
        time_unix_nano: 42,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("appended".into())),
        }),
        ..Default::default()
    }
}

fn appended_metric() -> Metric {
    Metric {
        name: "appended".into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint::default(); 2],
        })),
        ..Default::default()
    }
}

impl Edit<Traces> for Plan {
    fn resource(
        &mut self,
        r: &ResourceView<'_, Traces>,
        change: &mut Change,
    ) -> Result<Decision, WireError> {
        edit_resource(self, r, change)
    }

    fn scope(
        &mut self,
        s: &ScopeView<'_, Traces>,
        change: &mut Change,
    ) -> Result<Decision, WireError> {
        edit_scope(self, s, change)
    }

    fn item(&mut self, span: &view::Span<'_>, change: &mut Change) -> Result<Decision, WireError> {
        if !self.keep_span(span.span_id) {
            return Ok(Decision::Drop);
        }
        fill(change, &self.item_ops());
        change.set_trace_state("ot=th:c");
        Ok(Decision::Keep)
    }

    fn append(
        &mut self,
        _: &ScopeView<'_, Traces>,
        append: &mut Append<'_>,
    ) -> Result<(), WireError> {
        if self.appends() {
            append.item(&appended_span().encode_to_vec())?;
        }
        Ok(())
    }
}

impl Edit<Logs> for Plan {
    fn resource(
        &mut self,
        r: &ResourceView<'_, Logs>,
        change: &mut Change,
    ) -> Result<Decision, WireError> {
        edit_resource(self, r, change)
    }

    fn scope(
        &mut self,
        s: &ScopeView<'_, Logs>,
        change: &mut Change,
    ) -> Result<Decision, WireError> {
        edit_scope(self, s, change)
    }

    fn item(
        &mut self,
        record: &view::LogRecord<'_>,
        change: &mut Change,
    ) -> Result<Decision, WireError> {
        if !self.keep_log(record.time_unix_nano) {
            return Ok(Decision::Drop);
        }
        fill(change, &self.item_ops());
        // Not a span: ignored.
        change.set_trace_state("ot=th:c");
        Ok(Decision::Keep)
    }

    fn append(
        &mut self,
        _: &ScopeView<'_, Logs>,
        append: &mut Append<'_>,
    ) -> Result<(), WireError> {
        if self.appends() {
            append.item(&appended_log().encode_to_vec())?;
        }
        Ok(())
    }
}

impl Edit<Metrics> for Plan {
    fn resource(
        &mut self,
        r: &ResourceView<'_, Metrics>,
        change: &mut Change,
    ) -> Result<Decision, WireError> {
        edit_resource(self, r, change)
    }

    fn scope(
        &mut self,
        s: &ScopeView<'_, Metrics>,
        change: &mut Change,
    ) -> Result<Decision, WireError> {
        edit_scope(self, s, change)
    }

    fn item(&mut self, m: &view::Metric<'_>, change: &mut Change) -> Result<Decision, WireError> {
        if m.name == "drop.metric" {
            return Ok(Decision::Drop);
        }
        change.upsert("metadata.edited", Value::Int(1));
        Ok(Decision::Visit)
    }

    fn data_point(
        &mut self,
        _: &view::Metric<'_>,
        _: &DataPoint<'_>,
        change: &mut Change,
    ) -> Result<Decision, WireError> {
        if !self.keep_point() {
            return Ok(Decision::Drop);
        }
        fill(change, &self.point_ops());
        Ok(Decision::Keep)
    }

    fn append(
        &mut self,
        _: &ScopeView<'_, Metrics>,
        append: &mut Append<'_>,
    ) -> Result<(), WireError> {
        if self.appends() {
            append.item(&appended_metric().encode_to_vec())?;
        }
        Ok(())
    }
}

/// The plan's attribute edits on prost's attributes (keys are distinct).
fn apply(attrs: &mut Vec<KeyValue>, ops: &[(Action, &'static str, Value<'static>)]) {
    for (action, key, value) in ops {
        let present = attrs.iter().any(|kv| kv.key == *key);
        let value = any(value).ok();
        match (action, present) {
            (Action::Delete, _) => attrs.retain(|kv| kv.key != *key),
            (Action::Update | Action::Upsert, true) => attrs
                .iter_mut()
                .filter(|kv| kv.key == *key)
                .for_each(|kv| kv.value = value.clone()),
            (Action::Insert | Action::Upsert, false) => attrs.push(KeyValue {
                key: (*key).into(),
                value,
                ..Default::default()
            }),
            _ => {}
        }
    }
}

fn adds(ops: &[(Action, &'static str, Value<'static>)]) -> bool {
    ops.iter()
        .any(|(a, _, _)| matches!(a, Action::Insert | Action::Upsert))
}

fn prost_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// The resource-level part of the plan on prost's structs: `None` when the
/// resource is dropped, else whether to visit its scopes.
fn change_resource(plan: &Plan, resource: &mut Option<Resource>) -> Option<bool> {
    let name = resource
        .as_ref()
        .and_then(|r| prost_str(&r.attributes, "service.name"));
    let decision = plan.resource_decision(name);
    if decision == Decision::Drop {
        return None;
    }
    let ops = plan.resource_ops();
    match resource {
        Some(r) => apply(&mut r.attributes, &ops),
        None if adds(&ops) => {
            let mut r = Resource::default();
            apply(&mut r.attributes, &ops);
            *resource = Some(r);
        }
        None => {}
    }
    Some(decision == Decision::Visit)
}

fn change_scope(plan: &Plan, scope: &mut Option<InstrumentationScope>) -> Option<bool> {
    let decision = plan.scope_decision(scope.as_ref().map(|s| s.name.as_str()));
    if decision == Decision::Drop {
        return None;
    }
    let ops = plan.scope_ops();
    match scope {
        Some(s) => apply(&mut s.attributes, &ops),
        None if adds(&ops) => {
            let mut s = InstrumentationScope::default();
            apply(&mut s.attributes, &ops);
            *scope = Some(s);
        }
        None => {}
    }
    Some(decision == Decision::Visit)
}

/// Keeps the elements for which `keep` says true, in order; true when
/// there were some and none is left (the container is then left out).
fn emptied<T>(items: &mut Vec<T>, mut keep: impl FnMut(&mut T) -> bool) -> bool {
    let had = !items.is_empty();
    let mut kept = Vec::with_capacity(items.len());
    for mut item in items.drain(..) {
        if keep(&mut item) {
            kept.push(item);
        }
    }
    *items = kept;
    had && items.is_empty()
}

/// The plan on a prost traces request.
pub fn plan_traces(plan: &mut Plan, req: &mut ExportTraceServiceRequest) {
    emptied(&mut req.resource_spans, |r| {
        let Some(visit) = change_resource(plan, &mut r.resource) else {
            return false;
        };
        !visit
            || !emptied(&mut r.scope_spans, |s| {
                let Some(visit) = change_scope(plan, &mut s.scope) else {
                    return false;
                };
                if !visit {
                    return true;
                }
                let mut gone = emptied(&mut s.spans, |span| {
                    if !plan.keep_span(&span.span_id) {
                        return false;
                    }
                    apply(&mut span.attributes, &plan.item_ops());
                    span.trace_state = "ot=th:c".into();
                    true
                });
                if plan.appends() {
                    s.spans.push(appended_span());
                    gone = false;
                }
                !gone
            })
    });
}

/// The plan on a prost logs request.
pub fn plan_logs(plan: &mut Plan, req: &mut ExportLogsServiceRequest) {
    emptied(&mut req.resource_logs, |r| {
        let Some(visit) = change_resource(plan, &mut r.resource) else {
            return false;
        };
        !visit
            || !emptied(&mut r.scope_logs, |s| {
                let Some(visit) = change_scope(plan, &mut s.scope) else {
                    return false;
                };
                if !visit {
                    return true;
                }
                let mut gone = emptied(&mut s.log_records, |record| {
                    if !plan.keep_log(record.time_unix_nano) {
                        return false;
                    }
                    apply(&mut record.attributes, &plan.item_ops());
                    true
                });
                if plan.appends() {
                    s.log_records.push(appended_log());
                    gone = false;
                }
                !gone
            })
    });
}

fn plan_points<T>(
    plan: &mut Plan,
    points: &mut Vec<T>,
    attributes: fn(&mut T) -> &mut Vec<KeyValue>,
) -> bool {
    emptied(points, |p| {
        if !plan.keep_point() {
            return false;
        }
        apply(attributes(p), &plan.point_ops());
        true
    })
}

/// The plan on a prost metrics request.
pub fn plan_metrics(plan: &mut Plan, req: &mut ExportMetricsServiceRequest) {
    emptied(&mut req.resource_metrics, |r| {
        let Some(visit) = change_resource(plan, &mut r.resource) else {
            return false;
        };
        !visit
            || !emptied(&mut r.scope_metrics, |s| {
                let Some(visit) = change_scope(plan, &mut s.scope) else {
                    return false;
                };
                if !visit {
                    return true;
                }
                let mut gone = emptied(&mut s.metrics, |m| {
                    if m.name == "drop.metric" {
                        return false;
                    }
                    apply(
                        &mut m.metadata,
                        &[(Action::Upsert, "metadata.edited", Value::Int(1))],
                    );
                    let gone = match &mut m.data {
                        Some(metric::Data::Gauge(g)) => {
                            plan_points(plan, &mut g.data_points, |p| &mut p.attributes)
                        }
                        Some(metric::Data::Sum(x)) => {
                            plan_points(plan, &mut x.data_points, |p| &mut p.attributes)
                        }
                        Some(metric::Data::Histogram(h)) => {
                            plan_points(plan, &mut h.data_points, |p| &mut p.attributes)
                        }
                        Some(metric::Data::ExponentialHistogram(h)) => {
                            plan_points(plan, &mut h.data_points, |p| &mut p.attributes)
                        }
                        Some(metric::Data::Summary(x)) => {
                            plan_points(plan, &mut x.data_points, |p| &mut p.attributes)
                        }
                        None => false,
                    };
                    !gone
                });
                if plan.appends() {
                    s.metrics.push(appended_metric());
                    gone = false;
                }
                !gone
            })
    });
}

/// A sampler-shaped edit of traces: each span read in one pass
/// ([`view::SpanPeek`], checked against the whole span view), dropped by
/// its trace id, and a kept one given a `trace_state` made from its old
/// one, written where the peek found the old one.
struct Peek;

/// The attribute [`Peek`] looks up.
const PEEK_KEY: &str = "gen_ai.system";

fn peek_keeps(trace_id: &[u8]) -> bool {
    trace_id.first().is_none_or(|b| b % 3 != 0)
}

fn peeked_trace_state(old: &str) -> String {
    format!("ot=th:c;rv:{}", old.len())
}

impl Edit<Traces> for Peek {
    fn item_bytes(&mut self, raw: &[u8], change: &mut Change) -> Result<Decision, WireError> {
        let peek = view::SpanPeek::read(raw, PEEK_KEY)?;
        let span = <view::Span<'_> as view::FromWire<'_>>::from_wire(raw)?;
        assert_eq!(peek.trace_id, span.trace_id);
        assert_eq!(peek.trace_state, span.trace_state);
        assert_eq!(peek.attribute, span.attributes().get(PEEK_KEY)?);
        if !peek_keeps(peek.trace_id) {
            return Ok(Decision::Drop);
        }
        change.replace_trace_state(&peek, &peeked_trace_state(peek.trace_state));
        Ok(Decision::Keep)
    }
}

/// [`Peek`] on a prost traces request.
fn peek_traces(req: &mut ExportTraceServiceRequest) {
    emptied(&mut req.resource_spans, |r| {
        !emptied(&mut r.scope_spans, |s| {
            !emptied(&mut s.spans, |span| {
                span.trace_state = peeked_trace_state(&span.trace_state);
                peek_keeps(&span.trace_id)
            })
        })
    });
}

// ---- what the views leave out of prost's structs ----

/// What the views do not read, taken out of what prost decoded: the
/// `key_strindex` of attributes and `string_value_strindex` of values
/// (profiles fields), a resource's `entity_refs`, and the difference
/// between a missing and an empty attribute value.
fn read_as_views<M: Normalise + Clone>(decoded: &M) -> M {
    let mut m = decoded.clone();
    m.normalise();
    m
}

trait Normalise {
    fn normalise(&mut self);
}

impl Normalise for Vec<KeyValue> {
    fn normalise(&mut self) {
        for kv in self {
            kv.key_strindex = 0;
            kv.value.get_or_insert_with(AnyValue::default).normalise();
        }
    }
}

impl Normalise for AnyValue {
    fn normalise(&mut self) {
        match &mut self.value {
            Some(any_value::Value::ArrayValue(a)) => {
                a.values.iter_mut().for_each(|v| v.normalise())
            }
            Some(any_value::Value::KvlistValue(l)) => l.values.normalise(),
            // A profiles-only field: the views read such a value as empty.
            Some(any_value::Value::StringValueStrindex(_)) => self.value = None,
            _ => {}
        }
    }
}

impl Normalise for Option<Resource> {
    fn normalise(&mut self) {
        if let Some(r) = self {
            r.entity_refs.clear();
            r.attributes.normalise();
        }
    }
}

impl Normalise for Option<InstrumentationScope> {
    fn normalise(&mut self) {
        if let Some(s) = self {
            s.attributes.normalise();
        }
    }
}

impl Normalise for ExportTraceServiceRequest {
    fn normalise(&mut self) {
        for r in &mut self.resource_spans {
            r.resource.normalise();
            for s in &mut r.scope_spans {
                s.scope.normalise();
                for span in &mut s.spans {
                    span.attributes.normalise();
                    span.events
                        .iter_mut()
                        .for_each(|e| e.attributes.normalise());
                    span.links.iter_mut().for_each(|l| l.attributes.normalise());
                }
            }
        }
    }
}

impl Normalise for ExportLogsServiceRequest {
    fn normalise(&mut self) {
        for r in &mut self.resource_logs {
            r.resource.normalise();
            for s in &mut r.scope_logs {
                s.scope.normalise();
                for record in &mut s.log_records {
                    record.attributes.normalise();
                    if let Some(body) = &mut record.body {
                        body.normalise();
                    }
                }
            }
        }
    }
}

impl Normalise for ExportMetricsServiceRequest {
    fn normalise(&mut self) {
        fn point(attributes: &mut Vec<KeyValue>, exemplars: &mut [Exemplar]) {
            attributes.normalise();
            exemplars
                .iter_mut()
                .for_each(|e| e.filtered_attributes.normalise());
        }
        for r in &mut self.resource_metrics {
            r.resource.normalise();
            for s in &mut r.scope_metrics {
                s.scope.normalise();
                for m in &mut s.metrics {
                    m.metadata.normalise();
                    match &mut m.data {
                        Some(metric::Data::Gauge(g)) => g
                            .data_points
                            .iter_mut()
                            .for_each(|p| point(&mut p.attributes, &mut p.exemplars)),
                        Some(metric::Data::Sum(x)) => x
                            .data_points
                            .iter_mut()
                            .for_each(|p| point(&mut p.attributes, &mut p.exemplars)),
                        Some(metric::Data::Histogram(h)) => h
                            .data_points
                            .iter_mut()
                            .for_each(|p| point(&mut p.attributes, &mut p.exemplars)),
                        Some(metric::Data::ExponentialHistogram(h)) => h
                            .data_points
                            .iter_mut()
                            .for_each(|p| point(&mut p.attributes, &mut p.exemplars)),
                        Some(metric::Data::Summary(x)) => x
                            .data_points
                            .iter_mut()
                            .for_each(|p| p.attributes.normalise()),
                        None => {}
                    }
                }
            }
        }
    }
}

/// `got` and `want` encode to the same bytes (so NaN equals NaN when its
/// bits do).
fn assert_same<M: Message + std::fmt::Debug>(got: &M, want: &M, what: &str) {
    assert!(
        got.encode_to_vec() == want.encode_to_vec(),
        "{what}\n got: {got:?}\nwant: {want:?}"
    );
}

// ---- the checks ----

/// Views read what prost decodes (less what they do not read), and the plan for `seed` written by the
/// editor is what prost's decode -> change -> encode gives. `bytes` is a
/// request prost encoded (so that no singular message is repeated).
pub fn check(signal: Signal, bytes: &[u8], seed: u64) {
    let mut plan = Plan::new(seed);
    let mut reference = Plan::new(seed);
    let (edited, expected_items) = match signal {
        Signal::Traces => {
            let decoded = ExportTraceServiceRequest::decode(bytes).expect("prost decodes");
            assert_same(
                &traces_via_views(bytes).expect("views read"),
                &read_as_views(&decoded),
                "views read",
            );
            let peeked = view::edit::<Traces, _>(bytes, &mut Peek).expect("edits");
            let mut expected = decoded.clone();
            peek_traces(&mut expected);
            let got = ExportTraceServiceRequest::decode(&peeked.bytes[..]).expect("decodes");
            assert_same(&got, &expected, &format!("peek, seed {seed}"));
            let edited = view::edit::<Traces, _>(bytes, &mut plan).expect("edits");
            let mut expected = decoded;
            plan_traces(&mut reference, &mut expected);
            let got = ExportTraceServiceRequest::decode(&edited.bytes[..]).expect("decodes");
            assert_same(&got, &expected, &format!("edited, seed {seed}"));
            (edited, count(Signal::Traces, &expected.encode_to_vec()))
        }
        Signal::Logs => {
            let decoded = ExportLogsServiceRequest::decode(bytes).expect("prost decodes");
            assert_same(
                &logs_via_views(bytes).expect("views read"),
                &read_as_views(&decoded),
                "views read",
            );
            let edited = view::edit::<Logs, _>(bytes, &mut plan).expect("edits");
            let mut expected = decoded;
            plan_logs(&mut reference, &mut expected);
            let got = ExportLogsServiceRequest::decode(&edited.bytes[..]).expect("decodes");
            assert_same(&got, &expected, &format!("edited, seed {seed}"));
            (edited, count(Signal::Logs, &expected.encode_to_vec()))
        }
        Signal::Metrics => {
            let decoded = ExportMetricsServiceRequest::decode(bytes).expect("prost decodes");
            assert_same(
                &metrics_via_views(bytes).expect("views read"),
                &read_as_views(&decoded),
                "views read",
            );
            let edited = view::edit::<Metrics, _>(bytes, &mut plan).expect("edits");
            let mut expected = decoded;
            plan_metrics(&mut reference, &mut expected);
            let got = ExportMetricsServiceRequest::decode(&edited.bytes[..]).expect("decodes");
            assert_same(&got, &expected, &format!("edited, seed {seed}"));
            (edited, count(Signal::Metrics, &expected.encode_to_vec()))
        }
    };
    assert_eq!(edited.items, expected_items, "item count, seed {seed}");
    assert_eq!(count_items(signal, &edited.bytes).ok(), Some(edited.items));
}

fn count(signal: Signal, bytes: &[u8]) -> usize {
    count_items(signal, bytes).expect("prost's encoding is valid")
}

/// On any input: no panic; on input the validating walk accepts, views
/// read all of it and the edited request is accepted with its count.
pub fn check_corrupt(signal: Signal, bytes: &[u8], seed: u64) {
    let mut plan = Plan::new(seed);
    let (read, edited) = match signal {
        Signal::Traces => (
            traces_via_views(bytes).map(drop),
            view::edit::<Traces, _>(bytes, &mut plan),
        ),
        Signal::Logs => (
            logs_via_views(bytes).map(drop),
            view::edit::<Logs, _>(bytes, &mut plan),
        ),
        Signal::Metrics => (
            metrics_via_views(bytes).map(drop),
            view::edit::<Metrics, _>(bytes, &mut plan),
        ),
    };
    if count_items(signal, bytes).is_ok() {
        if let Err(e) = read {
            panic!("views refused a valid request: {e}");
        }
        let edited = match edited {
            Ok(edited) => edited,
            Err(e) => panic!("the editor refused a valid request: {e}"),
        };
        assert_eq!(
            count_items(signal, &edited.bytes).ok(),
            Some(edited.items),
            "an edit of a valid request is valid"
        );
    }
    if signal == Signal::Traces {
        let peeked = view::edit::<Traces, _>(bytes, &mut Peek);
        if count_items(signal, bytes).is_ok() {
            let peeked = match peeked {
                Ok(peeked) => peeked,
                Err(e) => panic!("a peeking edit refused a valid request: {e}"),
            };
            assert_eq!(
                count_items(signal, &peeked.bytes).ok(),
                Some(peeked.items),
                "a peeking edit of a valid request is valid"
            );
        }
    }
}
