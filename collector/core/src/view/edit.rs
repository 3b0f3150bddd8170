//! The editor: writes a changed copy of an export request in one pass.
//!
//! [`edit`] walks the request and asks an [`Edit`] about each resource,
//! scope, item (and, for metrics, data point) what to do with it: drop it,
//! keep it as it is, or keep it and be asked about what it holds
//! ([`Decision`]); with each question comes a [`Change`] to fill with
//! attribute edits (the Collector's `insert`, `update`, `upsert`, `delete`).
//! Whatever is kept unchanged is copied as bytes, never decoded; a message
//! that changed is written once, with its length prefix recomputed.
//!
//! A scope whose items were all dropped is left out, and so is a resource
//! whose scopes all were (as the Collector's filtering processors do);
//! scopes and resources that held nothing to begin with are kept.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::metric::{DATA_POINTS, Metric, MetricType};
use super::trace::TraceStateAt;
use super::value::{encode_key_value, key_of};
use super::{
    DataPoint, FromWire, ItemView, RESOURCE, RESOURCE_ATTRIBUTES, ResourceView, SCOPE,
    SCOPE_ATTRIBUTES, ScopeView, SignalView, SpanPeek, Value, message,
};
use crate::wire::{Field, WireError, fields, put_varint, varint_len, walk_fields};

/// What to do with a resource, scope, item or data point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Leave it out.
    Drop,
    /// Keep it; what it holds is copied as it is (its own [`Change`] still
    /// applies).
    Keep,
    /// Keep it and ask about each thing it holds (for a span or a log
    /// record, the same as [`Decision::Keep`]).
    Visit,
}

/// What an edit does: each method is asked once per resource, scope, item
/// or data point reached, in wire order; the defaults keep everything.
/// The views borrow the request being edited.
pub trait Edit<S: SignalView> {
    /// A resource (with its scopes).
    fn resource(
        &mut self,
        _resource: &ResourceView<'_, S>,
        _change: &mut Change,
    ) -> Result<Decision, WireError> {
        Ok(Decision::Visit)
    }

    /// A scope (with its items) of a resource that is visited.
    fn scope(
        &mut self,
        _scope: &ScopeView<'_, S>,
        _change: &mut Change,
    ) -> Result<Decision, WireError> {
        Ok(Decision::Visit)
    }

    /// An item of a scope that is visited: a span, a log record or a metric
    /// (whose `metadata` the change edits).
    fn item(&mut self, _item: &S::Item<'_>, _change: &mut Change) -> Result<Decision, WireError> {
        Ok(Decision::Keep)
    }

    /// The same question with the item's encoded bytes, which is what the
    /// editor asks: by default it reads the item's whole view and asks
    /// [`Edit::item`]. An edit that needs only a few fields reads them
    /// itself here (e.g. with [`SpanPeek`]), in one pass.
    fn item_bytes(&mut self, raw: &[u8], change: &mut Change) -> Result<Decision, WireError> {
        self.item(&<S::Item<'_> as FromWire<'_>>::from_wire(raw)?, change)
    }

    /// A data point of a metric that is visited (metrics only).
    fn data_point(
        &mut self,
        _metric: &Metric<'_>,
        _point: &DataPoint<'_>,
        _change: &mut Change,
    ) -> Result<Decision, WireError> {
        Ok(Decision::Keep)
    }

    /// Called at the end of each visited scope that is kept, to add items.
    fn append(
        &mut self,
        _scope: &ScopeView<'_, S>,
        _append: &mut Append<'_>,
    ) -> Result<(), WireError> {
        Ok(())
    }
}

/// How a [`Change`] edits an attribute, as in the Collector's `attributes`
/// and `resource` processors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Add it only where the key is absent.
    Insert,
    /// Replace the value only where the key is present.
    Update,
    /// Either of the two (`set`).
    Upsert,
    /// Remove it.
    Delete,
}

/// One attribute edit, its key and encoded `KeyValue` kept in [`Change`]'s buffer.
#[derive(Debug, Clone)]
struct Op {
    action: Action,
    key: Range<usize>,
    key_value: Range<usize>,
    seen: bool,
}

/// The edits to one resource, scope, item or data point. One `Change` is
/// reused for every element of a level, so editing allocates per request,
/// not per item.
#[derive(Debug, Default)]
pub struct Change {
    buf: BytesMut,
    ops: Vec<Op>,
    trace_state: Option<Range<usize>>,
    /// Where the old `trace_state` lies, when a [`SpanPeek`] said so.
    old_trace_state: Option<OldTraceState>,
}

/// Where the `trace_state` being replaced lies in the span `raw` (the
/// span is told by its address, so that a location is used only for the
/// span it was found in).
#[derive(Debug)]
struct OldTraceState {
    raw: (usize, usize),
    at: TraceStateAt,
}

impl Change {
    /// Edits attribute `key` (a later edit of the same key replaces an
    /// earlier one); `value` is unused by [`Action::Delete`].
    pub fn attribute(&mut self, action: Action, key: &str, value: Value<'_>) {
        let start = self.buf.len();
        self.buf.extend_from_slice(key.as_bytes());
        let key_end = self.buf.len();
        if action != Action::Delete {
            encode_key_value(&mut self.buf, key.as_bytes(), &value);
        }
        let op = Op {
            action,
            key: start..key_end,
            key_value: key_end..self.buf.len(),
            seen: false,
        };
        match self.find(key.as_bytes()) {
            Some(i) => self.ops[i] = op,
            None => self.ops.push(op),
        }
    }

    /// Adds `key` only if absent.
    pub fn insert(&mut self, key: &str, value: Value<'_>) {
        self.attribute(Action::Insert, key, value);
    }

    /// Replaces the value of `key` only if present.
    pub fn update(&mut self, key: &str, value: Value<'_>) {
        self.attribute(Action::Update, key, value);
    }

    /// Sets `key`, present or not.
    pub fn upsert(&mut self, key: &str, value: Value<'_>) {
        self.attribute(Action::Upsert, key, value);
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &str) {
        self.attribute(Action::Delete, key, Value::Empty);
    }

    /// Sets a span's `trace_state` (a change to anything but a span ignores it).
    pub fn set_trace_state(&mut self, trace_state: &str) {
        let start = self.buf.len();
        self.buf.extend_from_slice(trace_state.as_bytes());
        self.trace_state = Some(start..self.buf.len());
    }

    /// Sets the `trace_state` of the span `span` was read from, using
    /// where `span` found the old one: the span is then written by copying
    /// the bytes around it, without walking its fields again.
    pub fn replace_trace_state(&mut self, span: &SpanPeek<'_>, trace_state: &str) {
        self.set_trace_state(trace_state);
        self.old_trace_state = Some(OldTraceState {
            raw: (span.raw.as_ptr() as usize, span.raw.len()),
            at: span.trace_state_at,
        });
    }

    /// True when nothing is to change.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.trace_state.is_none()
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.ops.clear();
        self.trace_state = None;
        self.old_trace_state = None;
    }

    /// Where the old `trace_state` of `raw` lies, when known.
    fn old_trace_state(&self, raw: &[u8]) -> Option<&TraceStateAt> {
        self.old_trace_state
            .as_ref()
            .filter(|old| old.raw == (raw.as_ptr() as usize, raw.len()))
            .map(|old| &old.at)
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        self.ops
            .iter()
            .position(|op| &self.buf[op.key.clone()] == key)
    }

    /// True when an attribute would be added to a message that is absent.
    fn adds(&self) -> bool {
        self.ops
            .iter()
            .any(|op| matches!(op.action, Action::Insert | Action::Upsert))
    }

    /// Writes field `f` of a message being rewritten: attributes in field
    /// `attributes` as the edits say, a `trace_state` in field `trace_state`
    /// left for [`Change::finish`], anything else as it is.
    fn field(
        &mut self,
        out: &mut BytesMut,
        f: &Field<'_>,
        attributes: u32,
        trace_state: Option<u32>,
    ) -> Result<(), WireError> {
        if f.number == attributes && f.wire_type == 2 {
            if let Some(i) = self.find(key_of(f.payload)?) {
                let op = &mut self.ops[i];
                op.seen = true;
                match op.action {
                    Action::Delete => return Ok(()),
                    Action::Update | Action::Upsert => {
                        delimited(out, attributes, &self.buf[op.key_value.clone()]);
                        return Ok(());
                    }
                    Action::Insert => {}
                }
            }
        } else if Some(f.number) == trace_state && self.trace_state.is_some() {
            return Ok(());
        }
        out.extend_from_slice(f.raw);
        Ok(())
    }

    /// Ends a rewritten message: adds the attributes that were absent and
    /// the new `trace_state`, and gets ready for the next message.
    fn finish(&mut self, out: &mut BytesMut, attributes: u32, trace_state: Option<u32>) {
        for op in &mut self.ops {
            if !op.seen && matches!(op.action, Action::Insert | Action::Upsert) {
                delimited(out, attributes, &self.buf[op.key_value.clone()]);
            }
            op.seen = false;
        }
        if let (Some(number), Some(value)) = (trace_state, &self.trace_state) {
            delimited(out, number, &self.buf[value.clone()]);
        }
    }

    /// Writes message `raw` as field `number`, changed.
    fn message(
        &mut self,
        out: &mut BytesMut,
        number: u32,
        raw: &[u8],
        attributes: u32,
        trace_state: Option<u32>,
    ) -> Result<(), WireError> {
        let open = Open::new(out, number, raw.len());
        if self.ops.is_empty() {
            // Only the `trace_state` changes: the fields around the old one
            // are copied in runs, not one by one.
            let replaced = trace_state.filter(|_| self.trace_state.is_some());
            match self.old_trace_state(raw) {
                Some(TraceStateAt::Absent) => out.extend_from_slice(raw),
                Some(&TraceStateAt::Once(start, end)) if replaced.is_some() => {
                    out.extend_from_slice(&raw[..start]);
                    out.extend_from_slice(&raw[end..]);
                }
                _ => {
                    let (mut pos, mut run) = (0, 0);
                    walk_fields(raw, |f| {
                        if Some(f.number) == replaced {
                            out.extend_from_slice(&raw[run..pos]);
                            run = pos + f.raw.len();
                        }
                        pos += f.raw.len();
                        Ok(true)
                    })?;
                    out.extend_from_slice(&raw[run..]);
                }
            }
        } else {
            for f in fields(raw) {
                self.field(out, &f?, attributes, trace_state)?;
            }
        }
        self.finish(out, attributes, trace_state);
        open.close(out);
        Ok(())
    }
}

/// Adds encoded items at the end of a scope.
#[derive(Debug)]
pub struct Append<'o> {
    out: &'o mut BytesMut,
    number: u32,
    count: fn(&[u8]) -> Result<usize, WireError>,
    items: usize,
}

impl Append<'_> {
    /// Appends one encoded item (a `Span`, `LogRecord` or `Metric`
    /// message, e.g. a view's `raw`). The bytes are not checked beyond
    /// counting a metric's data points: they must be a valid item.
    pub fn item(&mut self, encoded: &[u8]) -> Result<(), WireError> {
        self.items += (self.count)(encoded)?;
        delimited(self.out, self.number, encoded);
        Ok(())
    }
}

/// The request an edit wrote, and the items in it.
#[derive(Debug, Clone)]
pub struct Edited {
    /// The encoded request.
    pub bytes: Bytes,
    /// Spans, data points or log records in it.
    pub items: usize,
}

/// Writes `request` as `edit` says (see the module header).
pub fn edit<S: SignalView, E: Edit<S>>(request: &[u8], edit: &mut E) -> Result<Edited, WireError> {
    let mut writer = Writer {
        edit,
        out: BytesMut::with_capacity(request.len() + 64),
        items: 0,
        resource: Change::default(),
        scope: Change::default(),
        item: Change::default(),
        point: Change::default(),
        signal: std::marker::PhantomData,
    };
    for f in fields(request) {
        let f = f?;
        if f.number == S::RESOURCES {
            writer.resource(&f)?;
        } else {
            writer.out.extend_from_slice(f.raw);
        }
    }
    Ok(Edited {
        bytes: writer.out.freeze(),
        items: writer.items,
    })
}

struct Writer<'e, S, E> {
    edit: &'e mut E,
    out: BytesMut,
    items: usize,
    resource: Change,
    scope: Change,
    item: Change,
    point: Change,
    signal: std::marker::PhantomData<S>,
}

impl<S: SignalView, E: Edit<S>> Writer<'_, S, E> {
    fn resource(&mut self, f: &Field<'_>) -> Result<(), WireError> {
        let view = ResourceView::<S>::from_wire(message(f)?)?;
        self.resource.clear();
        let decision = self.edit.resource(&view, &mut self.resource)?;
        if decision == Decision::Drop {
            return Ok(());
        }
        let open = Open::new(&mut self.out, S::RESOURCES, view.raw.len());
        let (mut had, mut kept) = (false, false);
        for g in fields(view.raw) {
            let g = g?;
            if g.number == RESOURCE && !self.resource.is_empty() {
                self.resource.message(
                    &mut self.out,
                    RESOURCE,
                    message(&g)?,
                    RESOURCE_ATTRIBUTES,
                    None,
                )?;
            } else if g.number == S::SCOPES && decision == Decision::Visit {
                had = true;
                kept |= self.scope(&g)?;
            } else {
                if g.number == S::SCOPES {
                    self.items += count_scope::<S>(message(&g)?)?;
                }
                self.out.extend_from_slice(g.raw);
            }
        }
        if view.resource.is_none() && self.resource.adds() {
            self.resource
                .message(&mut self.out, RESOURCE, &[], RESOURCE_ATTRIBUTES, None)?;
        }
        if had && !kept {
            open.discard(&mut self.out);
        } else {
            open.close(&mut self.out);
        }
        Ok(())
    }

    /// Writes a scope; false when it was left out.
    fn scope(&mut self, f: &Field<'_>) -> Result<bool, WireError> {
        let view = ScopeView::<S>::from_wire(message(f)?)?;
        self.scope.clear();
        let decision = self.edit.scope(&view, &mut self.scope)?;
        if decision == Decision::Drop {
            return Ok(false);
        }
        let open = Open::new(&mut self.out, S::SCOPES, view.raw.len());
        let (mut had, mut kept) = (false, false);
        // The loop over the items: fields read in place (`walk_fields`).
        walk_fields(view.raw, |g| {
            if g.number == SCOPE && !self.scope.is_empty() {
                self.scope
                    .message(&mut self.out, SCOPE, message(&g)?, SCOPE_ATTRIBUTES, None)?;
            } else if g.number == S::ITEMS && decision == Decision::Visit {
                had = true;
                kept |= self.item(&g)?;
            } else {
                if g.number == S::ITEMS {
                    had = true;
                    kept = true;
                    self.items += S::Item::count(message(&g)?)?;
                }
                self.out.extend_from_slice(g.raw);
            }
            Ok(true)
        })?;
        if view.scope.is_none() && self.scope.adds() {
            self.scope
                .message(&mut self.out, SCOPE, &[], SCOPE_ATTRIBUTES, None)?;
        }
        if decision == Decision::Visit {
            let mut append = Append {
                out: &mut self.out,
                number: S::ITEMS,
                count: S::Item::count,
                items: 0,
            };
            self.edit.append(&view, &mut append)?;
            kept |= append.items > 0;
            self.items += append.items;
        }
        if had && !kept {
            open.discard(&mut self.out);
            return Ok(false);
        }
        open.close(&mut self.out);
        Ok(true)
    }

    /// Writes an item; false when it was left out.
    fn item(&mut self, f: &Field<'_>) -> Result<bool, WireError> {
        let raw = message(f)?;
        self.item.clear();
        let decision = self.edit.item_bytes(raw, &mut self.item)?;
        let attributes = <S::Item<'_> as ItemView<'_>>::ATTRIBUTES;
        let trace_state = <S::Item<'_> as ItemView<'_>>::TRACE_STATE;
        match decision {
            Decision::Drop => Ok(false),
            Decision::Visit if <S::Item<'_> as ItemView<'_>>::HAS_POINTS => self.metric(raw),
            _ if self.item.is_empty() => {
                self.items += S::Item::count(raw)?;
                self.out.extend_from_slice(f.raw);
                Ok(true)
            }
            _ => {
                self.items += S::Item::count(raw)?;
                self.item
                    .message(&mut self.out, S::ITEMS, raw, attributes, trace_state)?;
                Ok(true)
            }
        }
    }

    /// Writes a metric, asking about each data point; false when it was
    /// left out (all its points were dropped).
    fn metric(&mut self, raw: &[u8]) -> Result<bool, WireError> {
        let metric = Metric::from_wire(raw)?;
        let open = Open::new(&mut self.out, S::ITEMS, raw.len());
        let attributes = <S::Item<'_> as ItemView<'_>>::ATTRIBUTES;
        let (mut had, mut kept) = (false, false);
        for f in fields(raw) {
            let f = f?;
            let Some(metric_type) = MetricType::of_field(f.number) else {
                self.item.field(&mut self.out, &f, attributes, None)?;
                continue;
            };
            let data_raw = message(&f)?;
            let data = Open::new(&mut self.out, f.number, data_raw.len());
            for g in fields(data_raw) {
                let g = g?;
                if g.number != DATA_POINTS {
                    self.out.extend_from_slice(g.raw);
                    continue;
                }
                had = true;
                let point = DataPoint::read(metric_type, message(&g)?)?;
                self.point.clear();
                if self.edit.data_point(&metric, &point, &mut self.point)? == Decision::Drop {
                    continue;
                }
                kept = true;
                self.items += 1;
                if self.point.is_empty() {
                    self.out.extend_from_slice(g.raw);
                } else {
                    self.point.message(
                        &mut self.out,
                        DATA_POINTS,
                        point.raw(),
                        point.attributes_field(),
                        None,
                    )?;
                }
            }
            data.close(&mut self.out);
        }
        self.item.finish(&mut self.out, attributes, None);
        if had && !kept {
            open.discard(&mut self.out);
            return Ok(false);
        }
        open.close(&mut self.out);
        Ok(true)
    }
}

/// Items in a scope's message.
fn count_scope<S: SignalView>(raw: &[u8]) -> Result<usize, WireError> {
    let mut n = 0;
    for f in fields(raw) {
        let f = f?;
        if f.number == S::ITEMS {
            n += S::Item::count(message(&f)?)?;
        }
    }
    Ok(n)
}

/// Writes a length-delimited field.
fn delimited(out: &mut BytesMut, number: u32, payload: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// A length-delimited field being written whose length is not known yet.
struct Open {
    /// Where its tag starts.
    start: usize,
    /// Where the room for its length starts.
    prefix: usize,
    /// Bytes of that room.
    width: usize,
}

impl Open {
    /// Opens field `number`, with room for the length of a message of
    /// about `hint` bytes (the message it is rewritten from): when the new
    /// length takes as many bytes, closing it moves nothing.
    fn new(out: &mut BytesMut, number: u32, hint: usize) -> Open {
        let start = out.len();
        put_varint(out, (u64::from(number) << 3) | 2);
        let prefix = out.len();
        let width = varint_len(hint as u64);
        out.extend_from_slice(&[0; 10][..width]);
        Open {
            start,
            prefix,
            width,
        }
    }

    /// Writes the length, moving the message to meet it when its length
    /// takes more or fewer bytes than there is room for.
    fn close(self, out: &mut BytesMut) {
        let body = self.prefix + self.width;
        let len = out.len() - body;
        let width = varint_len(len as u64);
        if width > self.width {
            let extra = width - self.width;
            let end = out.len();
            out.extend_from_slice(&[0; 10][..extra]);
            out.copy_within(body..end, body + extra);
        } else if width < self.width {
            out.copy_within(body.., self.prefix + width);
            out.truncate(out.len() - (self.width - width));
        }
        let mut value = len as u64;
        for byte in &mut out[self.prefix..self.prefix + width] {
            *byte = (value as u8 & 0x7f) | if value >= 0x80 { 0x80 } else { 0 };
            value >>= 7;
        }
    }

    /// Takes the field back out.
    fn discard(self, out: &mut BytesMut) {
        out.truncate(self.start);
    }
}
