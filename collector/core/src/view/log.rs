//! A log record, read from its bytes.

use super::{Attributes, FromWire, ItemView, Value, fixed32, fixed64, message, string, varint};
use crate::wire::{WireError, schema, walk_fields};

const TIME: u32 = schema::LOG_RECORD.number("time_unix_nano");
const OBSERVED_TIME: u32 = schema::LOG_RECORD.number("observed_time_unix_nano");
const SEVERITY_NUMBER: u32 = schema::LOG_RECORD.number("severity_number");
const SEVERITY_TEXT: u32 = schema::LOG_RECORD.number("severity_text");
const BODY: u32 = schema::LOG_RECORD.number("body");
const ATTRIBUTES: u32 = schema::LOG_RECORD.number("attributes");
const DROPPED_ATTRIBUTES: u32 = schema::LOG_RECORD.number("dropped_attributes_count");
const FLAGS: u32 = schema::LOG_RECORD.number("flags");
const TRACE_ID: u32 = schema::LOG_RECORD.number("trace_id");
const SPAN_ID: u32 = schema::LOG_RECORD.number("span_id");
const EVENT_NAME: u32 = schema::LOG_RECORD.number("event_name");

/// A `LogRecord`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogRecord<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `time_unix_nano`.
    pub time_unix_nano: u64,
    /// `observed_time_unix_nano`.
    pub observed_time_unix_nano: u64,
    /// `severity_number` (`SeverityNumber`, 0 unspecified to 24 fatal4).
    pub severity_number: i32,
    /// `severity_text`.
    pub severity_text: &'a str,
    /// `body`, when set.
    pub body: Option<Value<'a>>,
    /// `dropped_attributes_count`.
    pub dropped_attributes_count: u32,
    /// `flags` (W3C trace flags in the low byte).
    pub flags: u32,
    /// `trace_id`: 16 bytes, or empty.
    pub trace_id: &'a [u8],
    /// `span_id`: 8 bytes, or empty.
    pub span_id: &'a [u8],
    /// `event_name`.
    pub event_name: &'a str,
}

impl<'a> FromWire<'a> for LogRecord<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut record = LogRecord {
            raw,
            ..LogRecord::default()
        };
        walk_fields(raw, |f| {
            match f.number {
                TIME => record.time_unix_nano = fixed64(&f)?,
                OBSERVED_TIME => record.observed_time_unix_nano = fixed64(&f)?,
                SEVERITY_NUMBER => record.severity_number = varint(&f)? as i32,
                SEVERITY_TEXT => record.severity_text = string(&f)?,
                BODY => record.body = Some(Value::from_wire(message(&f)?)?),
                DROPPED_ATTRIBUTES => record.dropped_attributes_count = varint(&f)? as u32,
                FLAGS => record.flags = fixed32(&f)?,
                TRACE_ID => record.trace_id = message(&f)?,
                SPAN_ID => record.span_id = message(&f)?,
                EVENT_NAME => record.event_name = string(&f)?,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(record)
    }
}

impl<'a> ItemView<'a> for LogRecord<'a> {
    const ATTRIBUTES: u32 = ATTRIBUTES;
    const TRACE_STATE: Option<u32> = None;
    const HAS_POINTS: bool = false;

    fn count(_: &[u8]) -> Result<usize, WireError> {
        Ok(1)
    }
}

impl<'a> LogRecord<'a> {
    /// Its attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.raw, ATTRIBUTES)
    }
}
