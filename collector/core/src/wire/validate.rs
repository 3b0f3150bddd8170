//! The validating walk run on every request a receiver takes: it accepts
//! exactly what a conforming protobuf decoder of the OTLP schema accepts
//! (wire type per field, UTF-8 in `string` fields, packed repeated numbers,
//! varints of at most 10 bytes that fit 64 bits), plus what the OTLP
//! specification and the Collector require on top (trace ids of 16 bytes and
//! span ids of 8, or empty), with message nesting capped at [`MAX_DEPTH`].
//! Unknown fields, groups included, are skipped as protobuf requires.
//!
//! It counts the items (spans, data points, log records) on the way and
//! allocates nothing unless the request is refused; then the error names the
//! field path (`resource_spans[0].scope_spans[1].spans[7].name`) and a
//! [`Reason`] for the refusal counter.

use super::schema::{self, FieldSpec, Kind, Message};
use super::{Reason, WireError, read_tag, read_varint, skip_value};
use crate::Signal;

/// Deepest message nesting accepted, counting the request as depth 0 (a
/// span is at depth 3, its attributes' values at 5, each level of an array
/// or kvlist value adds 2). prost and the Python protobuf parser stop at 100,
/// the Collector's decoder does not stop; 64 leaves room for 29 levels of
/// nested attribute values, far more than any SDK writes.
pub const MAX_DEPTH: usize = 64;

/// The schema of a signal's export request.
fn root(signal: Signal) -> &'static Message {
    match signal {
        Signal::Traces => &schema::TRACES_REQUEST,
        Signal::Metrics => &schema::METRICS_REQUEST,
        Signal::Logs => &schema::LOGS_REQUEST,
    }
}

/// Checks `request` against the OTLP schema of `signal` and counts its items.
pub fn validate(signal: Signal, request: &[u8]) -> Result<usize, WireError> {
    let mut items = 0;
    match walk(request, root(signal), 0, &mut items) {
        Ok(()) => Ok(items),
        Err(fault) => Err(fault.into_error()),
    }
}

/// A refusal on its way up: the path is collected innermost first, and
/// only once something is wrong.
struct Fault {
    reason: Reason,
    detail: String,
    path: Vec<(&'static str, Option<usize>)>,
}

impl Fault {
    fn new(reason: Reason, detail: impl Into<String>) -> Fault {
        Fault {
            reason,
            detail: detail.into(),
            path: Vec::new(),
        }
    }

    fn into_error(self) -> WireError {
        let mut path = String::new();
        for (name, index) in self.path.iter().rev() {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
            if let Some(i) = index {
                path.push_str(&format!("[{i}]"));
            }
        }
        WireError::new(self.reason, path, self.detail)
    }
}

fn malformed(detail: impl Into<String>) -> Fault {
    Fault::new(Reason::Malformed, detail)
}

impl From<WireError> for Fault {
    fn from(e: WireError) -> Fault {
        Fault::new(e.reason(), e.detail().to_string())
    }
}

fn walk(
    msg: &[u8],
    schema: &'static Message,
    depth: usize,
    items: &mut usize,
) -> Result<(), Fault> {
    let mut pos = 0;
    while pos < msg.len() {
        let start = pos;
        let key = read_tag(msg, &mut pos)?;
        let number = (key >> 3) as u32;
        let spec = schema.field(number);
        if let Err(mut fault) = field(msg, &mut pos, key, spec, depth, items) {
            fault.path.push(step(msg, start, number, spec));
            return Err(fault);
        }
    }
    Ok(())
}

/// Checks one field whose tag was read; `pos` is just after the tag.
#[inline]
fn field(
    msg: &[u8],
    pos: &mut usize,
    key: u64,
    spec: FieldSpec,
    depth: usize,
    items: &mut usize,
) -> Result<(), Fault> {
    let wire_type = (key & 7) as u8;
    match (spec.kind, wire_type) {
        (Kind::Unknown, _) => {
            skip_value(msg, pos, key, depth)?;
            Ok(())
        }
        (Kind::Varint | Kind::PackedVarint, 0) => {
            read_varint(msg, pos)?;
            Ok(())
        }
        (Kind::Fixed64 | Kind::PackedFixed64, 1) => fixed(msg, pos, 8),
        (Kind::Fixed32, 5) => fixed(msg, pos, 4),
        (Kind::Str, 2) => match std::str::from_utf8(payload(msg, pos)?) {
            Ok(_) => Ok(()),
            Err(_) => Err(Fault::new(Reason::Utf8, "string is not valid UTF-8")),
        },
        (Kind::Bytes, 2) => payload(msg, pos).map(drop),
        (Kind::Id(want), 2) => {
            let id = payload(msg, pos)?;
            if id.is_empty() || id.len() == want {
                Ok(())
            } else {
                Err(Fault::new(
                    Reason::IdLength,
                    format!("id of {} bytes; must be {want} bytes or empty", id.len()),
                ))
            }
        }
        (Kind::Msg(inner), 2) => nested(payload(msg, pos)?, inner, depth, items),
        (Kind::Item(inner), 2) => {
            *items += 1;
            nested(payload(msg, pos)?, inner, depth, items)
        }
        (Kind::PackedFixed64, 2) => {
            let packed = payload(msg, pos)?;
            if packed.len() % 8 == 0 {
                Ok(())
            } else {
                Err(malformed(format!(
                    "packed 8-byte values take {} bytes, not a multiple of 8",
                    packed.len()
                )))
            }
        }
        (Kind::PackedVarint, 2) => {
            let packed = payload(msg, pos)?;
            let mut at = 0;
            while at < packed.len() {
                read_varint(packed, &mut at)?;
            }
            Ok(())
        }
        (_, 6 | 7) => Err(malformed(format!("invalid wire type {wire_type}"))),
        (kind, _) => Err(Fault::new(
            Reason::WireType,
            format!(
                "wire type {wire_type} ({}) where the schema has {}",
                wire_type_name(wire_type),
                expected(kind)
            ),
        )),
    }
}

fn nested(
    inner: &[u8],
    schema: &'static Message,
    depth: usize,
    items: &mut usize,
) -> Result<(), Fault> {
    if depth + 1 > MAX_DEPTH {
        return Err(Fault::new(
            Reason::TooDeep,
            format!("messages nested more than {MAX_DEPTH} deep"),
        ));
    }
    walk(inner, schema, depth + 1, items)
}

/// The payload of a length-delimited field.
#[inline]
fn payload<'a>(msg: &'a [u8], pos: &mut usize) -> Result<&'a [u8], Fault> {
    let len = match msg.get(*pos) {
        Some(&b) if b < 0x80 => {
            *pos += 1;
            u64::from(b)
        }
        _ => read_varint(msg, pos)?,
    };
    let start = *pos;
    match usize::try_from(len) {
        Ok(len) if len <= msg.len() - start => {
            *pos = start + len;
            Ok(&msg[start..start + len])
        }
        _ => Err(malformed(format!(
            "field declares {len} bytes but only {} remain",
            msg.len() - start
        ))),
    }
}

#[inline]
fn fixed(msg: &[u8], pos: &mut usize, width: usize) -> Result<(), Fault> {
    if msg.len() - *pos < width {
        return Err(malformed("truncated fixed-width field"));
    }
    *pos += width;
    Ok(())
}

/// Names the field starting at `start` for an error path, with its index
/// when it is repeated (counted again here: this runs only on refusal).
fn step(msg: &[u8], start: usize, number: u32, spec: FieldSpec) -> (&'static str, Option<usize>) {
    if spec.name.is_empty() {
        return ("(unknown field)", None);
    }
    if !spec.repeated {
        return (spec.name, None);
    }
    let before = super::fields(&msg[..start])
        .filter(|f| matches!(f, Ok(f) if f.number == number))
        .count();
    (spec.name, Some(before))
}

fn wire_type_name(wire_type: u8) -> &'static str {
    match wire_type {
        0 => "varint",
        1 => "64-bit",
        2 => "length-delimited",
        3 => "group start",
        4 => "group end",
        5 => "32-bit",
        _ => "invalid",
    }
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Unknown => "nothing",
        Kind::Varint => "a varint",
        Kind::Fixed64 => "a 64-bit value",
        Kind::Fixed32 => "a 32-bit value",
        Kind::Str => "a string",
        Kind::Bytes | Kind::Id(_) => "bytes",
        Kind::Msg(_) | Kind::Item(_) => "a message",
        Kind::PackedFixed64 => "repeated 64-bit values",
        Kind::PackedVarint => "repeated varints",
    }
}
