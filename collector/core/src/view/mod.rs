//! Read-only views over an encoded OTLP export request, and an editor that
//! writes a changed copy of one, without decoding into owned structs.
//!
//! A view borrows the request: [`RequestView`] -> [`ResourceView`] ->
//! [`ScopeView`] -> items ([`Span`], [`LogRecord`], [`Metric`] and its
//! [`DataPoint`]s); strings and bytes are slices of the request, repeated
//! fields are iterators over it, nothing is allocated per item. Each view is
//! parsed in one pass over its own fields when it is reached, so reading a
//! span's name costs one walk of that span, not of the request.
//!
//! Receivers validate every request ([`crate::wire::validate`]), so views
//! expect valid input; on anything else (truncated, a wrong wire type, a
//! string that is not UTF-8) they return a [`WireError`], never panic.
//! Protobuf rules views follow: unknown fields are skipped, the last
//! occurrence of a scalar wins, packed and unpacked repeated numbers are
//! both read. One rule they simplify: a singular message field sent twice
//! (which no SDK writes) is read from its last occurrence, not merged.
//!
//! Files: `value.rs` (attributes and `AnyValue`), `trace.rs`, `log.rs`,
//! `metric.rs` (the items of each signal), `edit.rs` (the editor). Field
//! numbers come from the schema tables in [`crate::wire::schema`].

mod edit;
mod log;
mod metric;
mod trace;
mod value;

use std::marker::PhantomData;

pub use edit::{Action, Append, Change, Decision, Edit, Edited, edit};
pub use log::LogRecord;
pub use metric::{
    Buckets, DataPoint, DataPoints, Exemplar, ExponentialHistogramPoint, HistogramPoint, Metric,
    MetricType, Number, NumberPoint, Packed, Quantile, SummaryPoint,
};
pub use trace::{Event, Link, Span, SpanPeek, Status};
pub use value::{ArrayValue, Attribute, Attributes, KvList, Value};

use crate::Signal;
use crate::wire::{
    Field, Fields, Reason, WireError, field_at, fields, read_varint, schema, walk_fields,
};

/// A message that a view can be read from (its encoded bytes, no tag or length).
pub trait FromWire<'a>: Sized {
    /// Reads the view from the message's bytes.
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError>;
}

/// An item of a signal at the scope level: a span, a log record, or a
/// metric (whose items are its data points).
pub trait ItemView<'a>: FromWire<'a> {
    /// The field of the item's message holding its attributes (for a
    /// metric, its `metadata`).
    const ATTRIBUTES: u32;
    /// The field holding a span's `trace_state`; `None` for other items.
    const TRACE_STATE: Option<u32>;
    /// True for a metric, whose data points an edit can visit.
    const HAS_POINTS: bool;

    /// Items the encoded item `raw` counts for (spans, log records, data points).
    fn count(raw: &[u8]) -> Result<usize, WireError>;
}

/// What tells the signals apart at the request, resource and scope levels.
pub trait SignalView {
    /// The signal.
    const SIGNAL: Signal;
    /// The request's field holding one resource's data (`resource_spans`).
    const RESOURCES: u32;
    /// That message's field holding one scope's data (`scope_spans`).
    const SCOPES: u32;
    /// That message's field holding one item (`spans`, `log_records`, `metrics`).
    const ITEMS: u32;
    /// The item.
    type Item<'a>: ItemView<'a>;
}

/// Traces: `resource_spans` -> `scope_spans` -> `spans`.
#[derive(Debug, Clone, Copy)]
pub struct Traces;

/// Logs: `resource_logs` -> `scope_logs` -> `log_records`.
#[derive(Debug, Clone, Copy)]
pub struct Logs;

/// Metrics: `resource_metrics` -> `scope_metrics` -> `metrics` (-> data points).
#[derive(Debug, Clone, Copy)]
pub struct Metrics;

impl SignalView for Traces {
    const SIGNAL: Signal = Signal::Traces;
    const RESOURCES: u32 = schema::TRACES_REQUEST.number("resource_spans");
    const SCOPES: u32 = schema::RESOURCE_SPANS.number("scope_spans");
    const ITEMS: u32 = schema::SCOPE_SPANS.number("spans");
    type Item<'a> = Span<'a>;
}

impl SignalView for Logs {
    const SIGNAL: Signal = Signal::Logs;
    const RESOURCES: u32 = schema::LOGS_REQUEST.number("resource_logs");
    const SCOPES: u32 = schema::RESOURCE_LOGS.number("scope_logs");
    const ITEMS: u32 = schema::SCOPE_LOGS.number("log_records");
    type Item<'a> = LogRecord<'a>;
}

impl SignalView for Metrics {
    const SIGNAL: Signal = Signal::Metrics;
    const RESOURCES: u32 = schema::METRICS_REQUEST.number("resource_metrics");
    const SCOPES: u32 = schema::RESOURCE_METRICS.number("scope_metrics");
    const ITEMS: u32 = schema::SCOPE_METRICS.number("metrics");
    type Item<'a> = Metric<'a>;
}

// The resource and scope levels number their fields alike in every signal.
const RESOURCE: u32 = schema::RESOURCE_SPANS.number("resource");
const RESOURCE_SCHEMA_URL: u32 = schema::RESOURCE_SPANS.number("schema_url");
const SCOPE: u32 = schema::SCOPE_SPANS.number("scope");
const SCOPE_SCHEMA_URL: u32 = schema::SCOPE_SPANS.number("schema_url");
const _: () = assert!(
    schema::RESOURCE_LOGS.number("resource") == RESOURCE
        && schema::RESOURCE_METRICS.number("resource") == RESOURCE
        && schema::RESOURCE_LOGS.number("schema_url") == RESOURCE_SCHEMA_URL
        && schema::RESOURCE_METRICS.number("schema_url") == RESOURCE_SCHEMA_URL
        && schema::SCOPE_LOGS.number("scope") == SCOPE
        && schema::SCOPE_METRICS.number("scope") == SCOPE
        && schema::SCOPE_LOGS.number("schema_url") == SCOPE_SCHEMA_URL
        && schema::SCOPE_METRICS.number("schema_url") == SCOPE_SCHEMA_URL
);

const RESOURCE_ATTRIBUTES: u32 = schema::RESOURCE.number("attributes");
const RESOURCE_DROPPED: u32 = schema::RESOURCE.number("dropped_attributes_count");
const SCOPE_NAME: u32 = schema::SCOPE.number("name");
const SCOPE_VERSION: u32 = schema::SCOPE.number("version");
const SCOPE_ATTRIBUTES: u32 = schema::SCOPE.number("attributes");
const SCOPE_DROPPED: u32 = schema::SCOPE.number("dropped_attributes_count");

/// An encoded export request of signal `S`.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a, S> {
    raw: &'a [u8],
    signal: PhantomData<S>,
}

impl<'a, S: SignalView> RequestView<'a, S> {
    /// A view of `request` (nothing is read until asked for).
    pub fn new(request: &'a [u8]) -> RequestView<'a, S> {
        RequestView {
            raw: request,
            signal: PhantomData,
        }
    }

    /// The request's bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Its resources, each with its scopes.
    pub fn resources(&self) -> Repeated<'a, ResourceView<'a, S>> {
        repeated(self.raw, S::RESOURCES)
    }
}

/// One resource's data (`ResourceSpans`, `ResourceLogs`, `ResourceMetrics`).
#[derive(Debug, Clone, Copy)]
pub struct ResourceView<'a, S> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// The resource, when the message has one.
    pub resource: Option<Resource<'a>>,
    /// `schema_url`.
    pub schema_url: &'a str,
    signal: PhantomData<S>,
}

impl<'a, S: SignalView> FromWire<'a> for ResourceView<'a, S> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut view = ResourceView {
            raw,
            resource: None,
            schema_url: "",
            signal: PhantomData,
        };
        // Its scopes are skipped by position, not sliced.
        let mut pos = 0;
        while pos < raw.len() {
            let at = field_at(raw, pos)?;
            pos = at.end;
            match at.number {
                RESOURCE => view.resource = Some(Resource::from_wire(message(&at.field(raw))?)?),
                RESOURCE_SCHEMA_URL => view.schema_url = string(&at.field(raw))?,
                _ => {}
            }
        }
        Ok(view)
    }
}

impl<'a, S: SignalView> ResourceView<'a, S> {
    /// Its scopes, each with its items.
    pub fn scopes(&self) -> Repeated<'a, ScopeView<'a, S>> {
        repeated(self.raw, S::SCOPES)
    }
}

/// One scope's data (`ScopeSpans`, `ScopeLogs`, `ScopeMetrics`).
#[derive(Debug, Clone, Copy)]
pub struct ScopeView<'a, S> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// The instrumentation scope, when the message has one.
    pub scope: Option<Scope<'a>>,
    /// `schema_url`.
    pub schema_url: &'a str,
    signal: PhantomData<S>,
}

impl<'a, S: SignalView> FromWire<'a> for ScopeView<'a, S> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut view = ScopeView {
            raw,
            scope: None,
            schema_url: "",
            signal: PhantomData,
        };
        // Its items are skipped by position, not sliced.
        let mut pos = 0;
        while pos < raw.len() {
            let at = field_at(raw, pos)?;
            pos = at.end;
            match at.number {
                SCOPE => view.scope = Some(Scope::from_wire(message(&at.field(raw))?)?),
                SCOPE_SCHEMA_URL => view.schema_url = string(&at.field(raw))?,
                _ => {}
            }
        }
        Ok(view)
    }
}

impl<'a, S: SignalView> ScopeView<'a, S> {
    /// Its items: spans, log records or metrics.
    pub fn items(&self) -> Repeated<'a, S::Item<'a>> {
        repeated(self.raw, S::ITEMS)
    }
}

/// A `Resource`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resource<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `dropped_attributes_count`.
    pub dropped_attributes_count: u32,
}

impl<'a> FromWire<'a> for Resource<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut view = Resource {
            raw,
            dropped_attributes_count: 0,
        };
        walk_fields(raw, |f| {
            if f.number == RESOURCE_DROPPED {
                view.dropped_attributes_count = varint(&f)? as u32;
            }
            Ok(true)
        })?;
        Ok(view)
    }
}

impl<'a> Resource<'a> {
    /// Its attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.raw, RESOURCE_ATTRIBUTES)
    }
}

/// An `InstrumentationScope`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `name`.
    pub name: &'a str,
    /// `version`.
    pub version: &'a str,
    /// `dropped_attributes_count`.
    pub dropped_attributes_count: u32,
}

impl<'a> FromWire<'a> for Scope<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut view = Scope {
            raw,
            ..Scope::default()
        };
        walk_fields(raw, |f| {
            match f.number {
                SCOPE_NAME => view.name = string(&f)?,
                SCOPE_VERSION => view.version = string(&f)?,
                SCOPE_DROPPED => view.dropped_attributes_count = varint(&f)? as u32,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(view)
    }
}

impl<'a> Scope<'a> {
    /// Its attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.raw, SCOPE_ATTRIBUTES)
    }
}

/// The messages of one repeated field, read as views in wire order. After
/// an error the iterator ends.
#[derive(Debug, Clone)]
pub struct Repeated<'a, T> {
    fields: Fields<'a>,
    number: u32,
    of: PhantomData<fn() -> T>,
}

/// The messages of field `number` of the message `raw`.
fn repeated<'a, T>(raw: &'a [u8], number: u32) -> Repeated<'a, T> {
    Repeated {
        fields: fields(raw),
        number,
        of: PhantomData,
    }
}

impl<'a, T: FromWire<'a>> Iterator for Repeated<'a, T> {
    type Item = Result<T, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.fields.next()? {
                Ok(f) if f.number == self.number => {
                    let view = message(&f).and_then(T::from_wire);
                    if view.is_err() {
                        self.fields = fields(&[]);
                    }
                    return Some(view);
                }
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A field of the wrong wire type for the schema.
#[cold]
fn wrong_type(f: &Field<'_>, want: &str) -> WireError {
    WireError::new(
        Reason::WireType,
        String::new(),
        format!(
            "field {} has wire type {}, expected {want}",
            f.number, f.wire_type
        ),
    )
}

/// A length-delimited field's payload (a message, bytes or a string).
#[inline]
fn message<'a>(f: &Field<'a>) -> Result<&'a [u8], WireError> {
    if f.wire_type != 2 {
        return Err(wrong_type(f, "length-delimited"));
    }
    Ok(f.payload)
}

/// A `string` field.
#[inline]
fn string<'a>(f: &Field<'a>) -> Result<&'a str, WireError> {
    std::str::from_utf8(message(f)?).map_err(|e| {
        WireError::new(
            Reason::Utf8,
            String::new(),
            format!("field {} is not UTF-8: {e}", f.number),
        )
    })
}

/// A varint field (`int32`, `uint64`, `bool`, an enum...).
#[inline]
fn varint(f: &Field<'_>) -> Result<u64, WireError> {
    if f.wire_type != 0 {
        return Err(wrong_type(f, "varint"));
    }
    read_varint(f.payload, &mut 0)
}

/// A `sint32` field (zigzag-encoded).
#[inline]
fn sint32(f: &Field<'_>) -> Result<i32, WireError> {
    let n = varint(f)? as u32;
    Ok(((n >> 1) as i32) ^ -((n & 1) as i32))
}

/// A `fixed64`, `sfixed64` or `double` field, as its bits.
#[inline]
fn fixed64(f: &Field<'_>) -> Result<u64, WireError> {
    match (f.wire_type, <[u8; 8]>::try_from(f.payload)) {
        (1, Ok(bytes)) => Ok(u64::from_le_bytes(bytes)),
        _ => Err(wrong_type(f, "fixed64")),
    }
}

/// A `double` field.
#[inline]
fn double(f: &Field<'_>) -> Result<f64, WireError> {
    fixed64(f).map(f64::from_bits)
}

/// A `fixed32` field.
#[inline]
fn fixed32(f: &Field<'_>) -> Result<u32, WireError> {
    match (f.wire_type, <[u8; 4]>::try_from(f.payload)) {
        (5, Ok(bytes)) => Ok(u32::from_le_bytes(bytes)),
        _ => Err(wrong_type(f, "fixed32")),
    }
}
