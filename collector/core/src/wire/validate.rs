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
//!
//! Speed: this runs on every byte received, so it is one loop over the
//! request with the open messages on a fixed stack (no call per message),
//! one-byte tags read inline, and strings checked a word at a time while
//! they are ASCII.

use super::schema::{self, Fast, FieldSpec, Kind, Message};
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
    Walk::new(request, root(signal)).run()
}

/// A message being walked: its schema, where it starts and ends in the
/// request, and where the field holding it starts in its parent.
#[derive(Clone, Copy)]
struct Open {
    schema: &'static Message,
    start: usize,
    end: usize,
    field_start: usize,
}

const CLOSED: Open = Open {
    schema: &schema::TRACES_REQUEST,
    start: 0,
    end: 0,
    field_start: 0,
};

struct Walk<'a> {
    buf: &'a [u8],
    /// The messages enclosing the current one, outermost first.
    parents: [Open; MAX_DEPTH],
    depth: usize,
    /// The message being walked.
    here: Open,
    items: usize,
    /// The data field (gauge, sum, ...) the open metric has set, 0 if none.
    data_kind: u64,
}

impl<'a> Walk<'a> {
    fn new(buf: &'a [u8], root: &'static Message) -> Walk<'a> {
        Walk {
            buf,
            parents: [CLOSED; MAX_DEPTH],
            depth: 0,
            here: Open {
                schema: root,
                start: 0,
                end: buf.len(),
                field_start: 0,
            },
            items: 0,
            data_kind: 0,
        }
    }

    /// The walk: one loop, the position and the current message's bounds in
    /// locals, nested messages pushed on `parents` and popped at their end.
    fn run(mut self) -> Result<usize, WireError> {
        let buf = self.buf;
        let mut pos = 0;
        let mut msg = buf;
        loop {
            if pos >= msg.len() {
                if self.depth == 0 {
                    return Ok(self.items);
                }
                self.depth -= 1;
                self.here = self.parents[self.depth];
                msg = &buf[..self.here.end];
                continue;
            }
            let field_start = pos;
            let key = match msg[pos] {
                b @ 0x08..=0x7f => {
                    pos += 1;
                    u64::from(b)
                }
                _ => match read_tag(msg, &mut pos) {
                    Ok(key) => key,
                    Err(e) => return Err(self.located(e.into(), field_start)),
                },
            };
            if std::ptr::eq(self.here.schema, &schema::METRIC)
                && let Err(fault) = self.note_data_kind(key)
            {
                return Err(self.located(fault, field_start));
            }
            let opened = match (self.here.schema.field((key >> 3) as u32).kind, key & 7) {
                (kind @ (Kind::Msg(_) | Kind::Item(_) | Kind::KeyValue | Kind::AnyValue), 2) => {
                    let inner = match kind {
                        Kind::Msg(inner) => inner,
                        Kind::Item(inner) => {
                            self.items += 1;
                            inner
                        }
                        Kind::KeyValue => &schema::KEY_VALUE,
                        _ => &schema::ANY_VALUE,
                    };
                    match payload(msg, &mut pos) {
                        // Most messages (attributes, spans, log records) are
                        // of the everyday shape: checked in place.
                        Ok(bytes)
                            if self.depth + FLAT_REACH <= MAX_DEPTH
                                && !std::ptr::eq(inner, &schema::METRIC)
                                && flat(bytes, inner, FLAT_DEPTH) =>
                        {
                            Ok(false)
                        }
                        Ok(bytes) => self.open(inner, bytes.len(), pos, field_start),
                        Err(e) => Err(e),
                    }
                }
                (kind, _) => check(kind, key, msg, &mut pos, self.depth).map(|()| false),
            };
            match opened {
                Ok(false) => {}
                Ok(true) => {
                    // Walk the message just opened from its first byte.
                    msg = &buf[..self.here.end];
                    pos = self.here.start;
                }
                Err(fault) => return Err(self.located(fault, field_start)),
            }
        }
    }

    /// Makes the message of `len` bytes ending at `end` the current one.
    #[inline(always)]
    fn open(
        &mut self,
        schema: &'static Message,
        len: usize,
        end: usize,
        field_start: usize,
    ) -> Result<bool, Fault> {
        if self.depth + 1 > MAX_DEPTH {
            return Err(Fault::new(
                Reason::TooDeep,
                format!("messages nested more than {MAX_DEPTH} deep"),
            ));
        }
        if std::ptr::eq(schema, &schema::METRIC) {
            self.data_kind = 0;
        }
        self.parents[self.depth] = self.here;
        self.depth += 1;
        self.here = Open {
            schema,
            start: end - len,
            end,
            field_start,
        };
        Ok(true)
    }

    /// Notes the data field a metric's field `key` sets, if it is one. The
    /// data fields are a `oneof`, which no SDK sets twice: protobuf keeps
    /// the last kind set (merging one kind set twice), the Collector keeps
    /// the last field even of the same kind, so either drops points the walk
    /// would count, silently. A metric setting its data twice is refused.
    #[inline(always)]
    fn note_data_kind(&mut self, key: u64) -> Result<(), Fault> {
        let number = key >> 3;
        // The data fields: the level below a metric in the split layout.
        if key & 7 != 2 || !super::METRICS.levels[3].contains(&(number as u32)) {
            return Ok(());
        }
        if self.data_kind != 0 {
            return Err(Fault::new(
                Reason::DataTwice,
                format!(
                    "the metric already holds `{}` data; a metric holds its data once",
                    schema::METRIC.field(self.data_kind as u32).name
                ),
            ));
        }
        self.data_kind = number;
        Ok(())
    }

    /// The error for `fault` in the field at `field_start` of the current
    /// message: its path from the request down (only on refusal).
    #[cold]
    fn located(&self, fault: Fault, field_start: usize) -> WireError {
        let mut steps = Vec::with_capacity(self.depth + 1);
        let mut child_start = field_start;
        let mut open = self.here;
        let mut level = self.depth;
        loop {
            steps.push(step(
                &self.buf[open.start..open.end],
                child_start - open.start,
                open.schema,
            ));
            if level == 0 {
                break;
            }
            child_start = open.field_start;
            level -= 1;
            open = self.parents[level];
        }
        let mut path = String::new();
        for (name, index) in steps.iter().rev() {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
            if let Some(i) = index {
                path.push_str(&format!("[{i}]"));
            }
        }
        WireError::new(fault.reason, path, fault.detail)
    }
}

/// Why a field was refused, before its path is known.
struct Fault {
    reason: Reason,
    detail: String,
}

impl Fault {
    #[cold]
    fn new(reason: Reason, detail: String) -> Fault {
        Fault { reason, detail }
    }

    #[cold]
    fn malformed(detail: String) -> Fault {
        Fault::new(Reason::Malformed, detail)
    }
}

impl From<WireError> for Fault {
    #[cold]
    fn from(e: WireError) -> Fault {
        Fault::new(e.reason(), e.detail().to_string())
    }
}

/// Checks a field that is not a message; `pos` is just after its tag.
#[inline(always)]
fn check(kind: Kind, key: u64, msg: &[u8], pos: &mut usize, depth: usize) -> Result<(), Fault> {
    match (kind, key & 7) {
        (Kind::Str, 2) => utf8(payload(msg, pos)?),
        (Kind::Varint | Kind::PackedVarint, 0) => {
            read_varint(msg, pos)?;
            Ok(())
        }
        (Kind::Fixed64 | Kind::PackedFixed64, 1) => fixed(msg, pos, 8),
        (Kind::Fixed32, 5) => fixed(msg, pos, 4),
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
        (Kind::Unknown, _) => {
            skip_value(msg, pos, key, depth)?;
            Ok(())
        }
        (Kind::PackedFixed64, 2) => {
            let packed = payload(msg, pos)?;
            if packed.len() % 8 == 0 {
                Ok(())
            } else {
                Err(Fault::malformed(format!(
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
        (kind, _) => Err(wrong_wire_type(kind, (key & 7) as u8)),
    }
}

/// How many levels of messages below one [`flat`] may open itself.
const FLAT_DEPTH: usize = 3;

/// How far below the current message a [`flat`] check can reach: the
/// message, [`FLAT_DEPTH`] levels, then a `KeyValue` and its `AnyValue`.
const FLAT_REACH: usize = 1 + FLAT_DEPTH + 2;

/// True when `msg`, a `schema` message, is valid and of the everyday shape,
/// checked in place: ASCII strings, ids of the right length, attributes and
/// values that are not arrays or kvlists, no unknown fields, no items, at
/// most `levels` messages deep. Anything else (and anything wrong) is left
/// to the full walk, which also names what is wrong. Its helpers answer
/// with an `Option` or a `bool`: nothing to build, nothing to return through
/// memory.
fn flat(msg: &[u8], schema: &'static Message, levels: usize) -> bool {
    if std::ptr::eq(schema, &schema::KEY_VALUE) {
        return flat_key_value(msg);
    }
    if std::ptr::eq(schema, &schema::ANY_VALUE) {
        return flat_any_value(msg);
    }
    let mut pos = 0;
    while pos < msg.len() {
        let tag = msg[pos];
        pos += 1;
        // One-byte tags index the table; longer ones take the slow arm.
        let fast = if tag < 0x80 {
            schema.fast[usize::from(tag & 0x7f)]
        } else {
            Fast::Slow
        };
        let ok = match fast {
            Fast::Varint => lean_varint(msg, &mut pos).is_some(),
            Fast::Fixed64 => lean_fixed(msg, &mut pos, 8),
            Fast::Fixed32 => lean_fixed(msg, &mut pos, 4),
            Fast::Str => matches!(lean_payload(msg, &mut pos), Some(s) if ascii(s)),
            Fast::Bytes => lean_payload(msg, &mut pos).is_some(),
            Fast::Id8 => {
                matches!(lean_payload(msg, &mut pos), Some(id) if id.is_empty() || id.len() == 8)
            }
            Fast::Id16 => {
                matches!(lean_payload(msg, &mut pos), Some(id) if id.is_empty() || id.len() == 16)
            }
            Fast::KeyValue => matches!(lean_payload(msg, &mut pos), Some(kv) if flat_key_value(kv)),
            Fast::AnyValue => matches!(lean_payload(msg, &mut pos), Some(v) if flat_any_value(v)),
            Fast::Nested => match (
                lean_payload(msg, &mut pos),
                schema.field(u32::from(tag >> 3)).kind,
            ) {
                (Some(bytes), Kind::Msg(inner)) => levels > 0 && flat(bytes, inner, levels - 1),
                _ => false,
            },
            // Two-byte tags (a span's flags) and everything unusual.
            Fast::Slow => {
                pos -= 1;
                match lean_varint(msg, &mut pos) {
                    Some(key) if (8..=u64::from(u32::MAX)).contains(&key) => {
                        match (schema.field((key >> 3) as u32).kind, key & 7) {
                            (Kind::Fixed32, 5) => lean_fixed(msg, &mut pos, 4),
                            (Kind::Fixed64 | Kind::PackedFixed64, 1) => {
                                lean_fixed(msg, &mut pos, 8)
                            }
                            (Kind::Varint | Kind::PackedVarint, 0) => {
                                lean_varint(msg, &mut pos).is_some()
                            }
                            _ => false,
                        }
                    }
                    _ => false,
                }
            }
        };
        if !ok {
            return false;
        }
    }
    true
}

/// [`flat`] for a `KeyValue`: an ASCII key and a flat value.
#[inline(always)]
fn flat_key_value(kv: &[u8]) -> bool {
    let mut pos = 1;
    let Some((&0x0a, _)) = kv.split_first() else {
        return false;
    };
    match lean_payload(kv, &mut pos) {
        Some(key) if ascii(key) => {}
        _ => return false,
    }
    match kv.get(pos) {
        None => true,
        Some(0x12) => {
            pos += 1;
            matches!(lean_payload(kv, &mut pos), Some(value) if pos == kv.len() && flat_any_value(value))
        }
        Some(_) => false,
    }
}

/// [`flat`] for an `AnyValue`: an ASCII string, an integer, a bool or a
/// double.
#[inline(always)]
fn flat_any_value(value: &[u8]) -> bool {
    let mut pos = 1;
    match value {
        [] => true,
        [0x0a, ..] => {
            matches!(lean_payload(value, &mut pos), Some(s) if ascii(s) && pos == value.len())
        }
        [0x10 | 0x18, ..] => lean_varint(value, &mut pos).is_some() && pos == value.len(),
        [0x21, v @ ..] => v.len() == 8,
        _ => false,
    }
}

/// A varint as protobuf decoders take it (at most 10 bytes, 64 bits).
#[inline(always)]
fn lean_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    match buf.get(*pos) {
        Some(&b) if b < 0x80 => {
            *pos += 1;
            Some(u64::from(b))
        }
        _ => read_varint(buf, pos).ok(),
    }
}

#[inline(always)]
fn lean_payload<'a>(msg: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(lean_varint(msg, pos)?).ok()?;
    // `pos` is within `msg`: one comparison bounds the payload.
    let bytes = msg.get(*pos..)?.get(..len)?;
    *pos += len;
    Some(bytes)
}

/// True when every byte of `s` is ASCII, looked at eight at a time (the
/// standard library's check costs more on the short strings of telemetry).
#[inline(always)]
fn ascii(s: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        u64::from_ne_bytes(w)
    };
    if s.len() < 8 {
        return s.iter().fold(0, |acc, b| acc | b) < 0x80;
    }
    let mut acc = word(&s[s.len() - 8..]);
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        acc |= word(chunk);
    }
    acc & HIGH == 0
}

#[inline(always)]
fn lean_fixed(msg: &[u8], pos: &mut usize, width: usize) -> bool {
    if msg.len() - *pos < width {
        return false;
    }
    *pos += width;
    true
}

/// The payload of a length-delimited field: [`lean_payload`], with the
/// reason worked out again only when it fails.
#[inline(always)]
fn payload<'a>(msg: &'a [u8], pos: &mut usize) -> Result<&'a [u8], Fault> {
    let start = *pos;
    lean_payload(msg, pos).ok_or_else(|| payload_fault(msg, start))
}

#[cold]
fn payload_fault(msg: &[u8], start: usize) -> Fault {
    let mut at = start;
    match read_varint(msg, &mut at) {
        Err(e) => e.into(),
        Ok(len) => Fault::malformed(format!(
            "field declares {len} bytes but only {} remain",
            msg.len() - at
        )),
    }
}

/// A `string` field's bytes: ASCII (checked a word at a time) or UTF-8.
#[inline(always)]
fn utf8(s: &[u8]) -> Result<(), Fault> {
    if ascii(s) || std::str::from_utf8(s).is_ok() {
        Ok(())
    } else {
        Err(Fault::new(Reason::Utf8, "string is not valid UTF-8".into()))
    }
}

#[inline(always)]
fn fixed(msg: &[u8], pos: &mut usize, width: usize) -> Result<(), Fault> {
    if lean_fixed(msg, pos, width) {
        Ok(())
    } else {
        Err(Fault::malformed("truncated fixed-width field".into()))
    }
}

#[cold]
fn wrong_wire_type(kind: Kind, wire_type: u8) -> Fault {
    if wire_type > 5 {
        return Fault::malformed(format!("invalid wire type {wire_type}"));
    }
    let name = match wire_type {
        0 => "varint",
        1 => "64-bit",
        2 => "length-delimited",
        3 => "group start",
        4 => "group end",
        _ => "32-bit",
    };
    let expected = match kind {
        Kind::Unknown => "nothing",
        Kind::Varint => "a varint",
        Kind::Fixed64 => "a 64-bit value",
        Kind::Fixed32 => "a 32-bit value",
        Kind::Str => "a string",
        Kind::Bytes | Kind::Id(_) => "bytes",
        Kind::Msg(_) | Kind::Item(_) | Kind::KeyValue | Kind::AnyValue => "a message",
        Kind::PackedFixed64 => "repeated 64-bit values",
        Kind::PackedVarint => "repeated varints",
    };
    Fault::new(
        Reason::WireType,
        format!("wire type {wire_type} ({name}) where the schema has {expected}"),
    )
}

/// Names the field at `at` of a `schema` message `msg`, with its index when
/// it is repeated.
fn step(msg: &[u8], at: usize, schema: &Message) -> (&'static str, Option<usize>) {
    let mut pos = at;
    let number = read_tag(msg, &mut pos).map_or(0, |key| (key >> 3) as u32);
    let spec: &FieldSpec = schema.field(number);
    if spec.name.is_empty() {
        ("(unknown field)", None)
    } else if spec.repeated {
        let before = super::fields(&msg[..at])
            .filter(|f| matches!(f, Ok(f) if f.number == number))
            .count();
        (spec.name, Some(before))
    } else {
        (spec.name, None)
    }
}

#[cfg(test)]
mod tests {
    use super::ascii;

    #[test]
    fn the_word_at_a_time_ascii_check_agrees_with_the_standard_one() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..40 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Mostly ASCII, now and then a high byte.
                        if x.is_multiple_of(16) {
                            0x80 | x as u8
                        } else {
                            x as u8 & 0x7f
                        }
                    })
                    .collect();
                assert_eq!(ascii(&bytes), bytes.is_ascii(), "{bytes:?}");
            }
        }
    }
}
