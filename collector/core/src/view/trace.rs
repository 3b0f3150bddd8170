//! A span and what it holds (status, events, links), read from its bytes;
//! [`SpanPeek`], the few fields a sampler needs, read in one pass.

use super::value::key_of;
use super::{
    Attribute, Attributes, FromWire, ItemView, Repeated, Value, fixed32, fixed64, message,
    repeated, string, varint,
};
use crate::wire::{WireError, field_at, schema, walk_fields};

const TRACE_ID: u32 = schema::SPAN.number("trace_id");
const SPAN_ID: u32 = schema::SPAN.number("span_id");
const TRACE_STATE: u32 = schema::SPAN.number("trace_state");
const PARENT_SPAN_ID: u32 = schema::SPAN.number("parent_span_id");
const NAME: u32 = schema::SPAN.number("name");
const KIND: u32 = schema::SPAN.number("kind");
const START: u32 = schema::SPAN.number("start_time_unix_nano");
const END: u32 = schema::SPAN.number("end_time_unix_nano");
const ATTRIBUTES: u32 = schema::SPAN.number("attributes");
const DROPPED_ATTRIBUTES: u32 = schema::SPAN.number("dropped_attributes_count");
const EVENTS: u32 = schema::SPAN.number("events");
const DROPPED_EVENTS: u32 = schema::SPAN.number("dropped_events_count");
const LINKS: u32 = schema::SPAN.number("links");
const DROPPED_LINKS: u32 = schema::SPAN.number("dropped_links_count");
const STATUS: u32 = schema::SPAN.number("status");
const FLAGS: u32 = schema::SPAN.number("flags");

const EVENT_TIME: u32 = schema::EVENT.number("time_unix_nano");
const EVENT_NAME: u32 = schema::EVENT.number("name");
const EVENT_ATTRIBUTES: u32 = schema::EVENT.number("attributes");
const EVENT_DROPPED: u32 = schema::EVENT.number("dropped_attributes_count");

const LINK_TRACE_ID: u32 = schema::LINK.number("trace_id");
const LINK_SPAN_ID: u32 = schema::LINK.number("span_id");
const LINK_TRACE_STATE: u32 = schema::LINK.number("trace_state");
const LINK_ATTRIBUTES: u32 = schema::LINK.number("attributes");
const LINK_DROPPED: u32 = schema::LINK.number("dropped_attributes_count");
const LINK_FLAGS: u32 = schema::LINK.number("flags");

const STATUS_MESSAGE: u32 = schema::STATUS.number("message");
const STATUS_CODE: u32 = schema::STATUS.number("code");

/// A `Span`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Span<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `trace_id`: 16 bytes, or empty.
    pub trace_id: &'a [u8],
    /// `span_id`: 8 bytes, or empty.
    pub span_id: &'a [u8],
    /// `trace_state` (W3C `tracestate`).
    pub trace_state: &'a str,
    /// `parent_span_id`: 8 bytes, or empty for a root span.
    pub parent_span_id: &'a [u8],
    /// `flags`.
    pub flags: u32,
    /// `name`.
    pub name: &'a str,
    /// `kind` (`SpanKind`: 0 unspecified, 1 internal, 2 server, 3 client,
    /// 4 producer, 5 consumer).
    pub kind: i32,
    /// `start_time_unix_nano`.
    pub start_time_unix_nano: u64,
    /// `end_time_unix_nano`.
    pub end_time_unix_nano: u64,
    /// `dropped_attributes_count`.
    pub dropped_attributes_count: u32,
    /// `dropped_events_count`.
    pub dropped_events_count: u32,
    /// `dropped_links_count`.
    pub dropped_links_count: u32,
    /// `status`, when set.
    pub status: Option<Status<'a>>,
    /// The run of fields from the first attribute to the last, so that
    /// reading attributes walks only them.
    attributes_run: &'a [u8],
}

impl<'a> FromWire<'a> for Span<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut span = Span {
            raw,
            ..Span::default()
        };
        let mut first_attribute = None;
        walk_fields(raw, |f| {
            match f.number {
                ATTRIBUTES => {
                    // Where the field lies in `raw`: it is a slice of it.
                    let start = f.raw.as_ptr() as usize - raw.as_ptr() as usize;
                    let first = *first_attribute.get_or_insert(start);
                    span.attributes_run = &raw[first..start + f.raw.len()];
                }
                TRACE_ID => span.trace_id = message(&f)?,
                SPAN_ID => span.span_id = message(&f)?,
                TRACE_STATE => span.trace_state = string(&f)?,
                PARENT_SPAN_ID => span.parent_span_id = message(&f)?,
                NAME => span.name = string(&f)?,
                KIND => span.kind = varint(&f)? as i32,
                START => span.start_time_unix_nano = fixed64(&f)?,
                END => span.end_time_unix_nano = fixed64(&f)?,
                DROPPED_ATTRIBUTES => span.dropped_attributes_count = varint(&f)? as u32,
                DROPPED_EVENTS => span.dropped_events_count = varint(&f)? as u32,
                DROPPED_LINKS => span.dropped_links_count = varint(&f)? as u32,
                STATUS => span.status = Some(Status::from_wire(message(&f)?)?),
                FLAGS => span.flags = fixed32(&f)?,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(span)
    }
}

impl<'a> ItemView<'a> for Span<'a> {
    const ATTRIBUTES: u32 = ATTRIBUTES;
    const TRACE_STATE: Option<u32> = Some(TRACE_STATE);
    const HAS_POINTS: bool = false;

    fn count(_: &[u8]) -> Result<usize, WireError> {
        Ok(1)
    }
}

impl<'a> Span<'a> {
    /// Its attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.attributes_run, ATTRIBUTES)
    }

    /// Its events.
    pub fn events(&self) -> Repeated<'a, Event<'a>> {
        repeated(self.raw, EVENTS)
    }

    /// Its links.
    pub fn links(&self) -> Repeated<'a, Link<'a>> {
        repeated(self.raw, LINKS)
    }
}

/// The fields of a span a sampler decides on, read in one pass over the
/// span's fields without the rest of [`Span`]: the trace id, the
/// `trace_state` (and where it lies, so that
/// [`Change::replace_trace_state`](super::Change::replace_trace_state) rewrites it without walking the span again) and one attribute looked up
/// by key. Only these fields are checked; a request the receiver validated
/// is valid in the others too.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanPeek<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `trace_id`: 16 bytes, or empty.
    pub trace_id: &'a [u8],
    /// `trace_state` (W3C `tracestate`).
    pub trace_state: &'a str,
    /// The value of the first attribute with the key asked for, if any.
    pub attribute: Option<Value<'a>>,
    /// Where the `trace_state` field lies in `raw`.
    pub(super) trace_state_at: TraceStateAt,
}

/// Where a span's `trace_state` field lies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum TraceStateAt {
    /// Not in the span.
    #[default]
    Absent,
    /// Once, at these bytes (start and end, tag included).
    Once(usize, usize),
    /// More than once (which no SDK writes).
    Several,
}

impl<'a> SpanPeek<'a> {
    /// Reads the span `raw`, looking for the attribute `key` (the first of
    /// that key, as [`Attributes::get`]).
    pub fn read(raw: &'a [u8], key: &str) -> Result<SpanPeek<'a>, WireError> {
        let mut peek = SpanPeek {
            raw,
            ..SpanPeek::default()
        };
        let mut found = false;
        let mut pos = 0;
        while pos < raw.len() {
            // Positions first: most fields are skipped without slicing them.
            let at = field_at(raw, pos)?;
            pos = at.end;
            if !matches!(at.number, ATTRIBUTES | TRACE_ID | TRACE_STATE)
                || (at.number == ATTRIBUTES && found)
            {
                continue;
            }
            let f = at.field(raw);
            match f.number {
                ATTRIBUTES => {
                    let kv = message(&f)?;
                    if key_of(kv)? == key.as_bytes() {
                        peek.attribute = Some(Attribute::from_wire(kv)?.value);
                        found = true;
                    }
                }
                TRACE_ID => peek.trace_id = message(&f)?,
                _ => {
                    peek.trace_state = string(&f)?;
                    peek.trace_state_at = match peek.trace_state_at {
                        TraceStateAt::Absent => TraceStateAt::Once(at.start, at.end),
                        _ => TraceStateAt::Several,
                    };
                }
            }
        }
        Ok(peek)
    }
}

/// A span's `Status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status<'a> {
    /// `code` (0 unset, 1 ok, 2 error).
    pub code: i32,
    /// `message`.
    pub message: &'a str,
}

impl<'a> FromWire<'a> for Status<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut status = Status::default();
        walk_fields(raw, |f| {
            match f.number {
                STATUS_CODE => status.code = varint(&f)? as i32,
                STATUS_MESSAGE => status.message = string(&f)?,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(status)
    }
}

/// A span `Event`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Event<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `time_unix_nano`.
    pub time_unix_nano: u64,
    /// `name`.
    pub name: &'a str,
    /// `dropped_attributes_count`.
    pub dropped_attributes_count: u32,
}

impl<'a> FromWire<'a> for Event<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut event = Event {
            raw,
            ..Event::default()
        };
        walk_fields(raw, |f| {
            match f.number {
                EVENT_TIME => event.time_unix_nano = fixed64(&f)?,
                EVENT_NAME => event.name = string(&f)?,
                EVENT_DROPPED => event.dropped_attributes_count = varint(&f)? as u32,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(event)
    }
}

impl<'a> Event<'a> {
    /// Its attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.raw, EVENT_ATTRIBUTES)
    }
}

/// A span `Link`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Link<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `trace_id`.
    pub trace_id: &'a [u8],
    /// `span_id`.
    pub span_id: &'a [u8],
    /// `trace_state`.
    pub trace_state: &'a str,
    /// `dropped_attributes_count`.
    pub dropped_attributes_count: u32,
    /// `flags`.
    pub flags: u32,
}

impl<'a> FromWire<'a> for Link<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut link = Link {
            raw,
            ..Link::default()
        };
        walk_fields(raw, |f| {
            match f.number {
                LINK_TRACE_ID => link.trace_id = message(&f)?,
                LINK_SPAN_ID => link.span_id = message(&f)?,
                LINK_TRACE_STATE => link.trace_state = string(&f)?,
                LINK_DROPPED => link.dropped_attributes_count = varint(&f)? as u32,
                LINK_FLAGS => link.flags = fixed32(&f)?,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(link)
    }
}

impl<'a> Link<'a> {
    /// Its attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.raw, LINK_ATTRIBUTES)
    }
}
