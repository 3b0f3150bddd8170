//! Protobuf wire-format walking for OTLP export requests, without decoding
//! into owned structs: [`validate`] checks a request against the OTLP schema
//! ([`schema`]) and counts its items (spans, metric data points, log
//! records); [`split`] cuts a request into smaller requests by copying item
//! bytes as they are; [`concat`] joins requests of one signal.
//!
//! The OTLP envelopes nest the same way for every signal; [`Layout`] says
//! which field numbers lead from the request down to the items.

pub mod schema;
pub mod validate;

use bytes::{BufMut, Bytes, BytesMut};

use crate::Signal;
pub use validate::MAX_DEPTH;

/// Why a request is not a valid export request, for the refusal counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not protobuf: truncated, a bad varint, tag or length.
    Malformed,
    /// A known field with the wrong wire type.
    WireType,
    /// A `string` field that is not UTF-8.
    Utf8,
    /// A trace or span id of the wrong length.
    IdLength,
    /// Messages nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A metric setting its data twice (say `gauge` and `sum`, or `gauge`
    /// twice).
    DataTwice,
}

impl Reason {
    /// The `reason` label of `tern_receiver_requests_refused_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::WireType => "wrong_wire_type",
            Reason::Utf8 => "invalid_utf8",
            Reason::IdLength => "invalid_id_length",
            Reason::TooDeep => "too_deep",
            Reason::DataTwice => "data_set_twice",
        }
    }
}

/// A problem in the protobuf bytes: why, where (a field path, empty at the
/// top level) and what. One pointer wide, so that the `Result`s of the
/// field walks stay small.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct WireError(Box<Problem>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    reason: Reason,
    path: String,
    detail: String,
}

impl WireError {
    /// An error of `reason` at field `path`.
    #[cold]
    pub fn new(reason: Reason, path: String, detail: String) -> WireError {
        WireError(Box::new(Problem {
            reason,
            path,
            detail,
        }))
    }

    /// Why.
    pub fn reason(&self) -> Reason {
        self.0.reason
    }

    /// The field path, e.g. `resource_spans[0].scope_spans[0].spans[3].name`.
    pub fn path(&self) -> &str {
        &self.0.path
    }

    /// What is wrong there.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    fn describe(&self) -> String {
        let what = match self.0.reason {
            Reason::Malformed => "malformed protobuf",
            _ => "invalid protobuf",
        };
        if self.0.path.is_empty() {
            format!("{what}: {}", self.0.detail)
        } else {
            format!("{what} at {}: {}", self.0.path, self.0.detail)
        }
    }
}

fn bad(msg: impl Into<String>) -> WireError {
    WireError::new(Reason::Malformed, String::new(), msg.into())
}

/// Reads a varint at `buf[*pos..]`, advancing `pos`. Like protobuf
/// decoders, refuses one longer than 10 bytes or beyond 64 bits.
#[inline]
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or_else(|| bad("truncated varint"))?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(bad("varint larger than 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad("varint longer than 10 bytes"))
}

/// Appends `value` as a varint.
pub fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Bytes a varint of `value` takes.
pub fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// One field of a message.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    /// Field number.
    pub number: u32,
    /// Wire type (0 varint, 1 fixed64, 2 length-delimited, 3 group, 5 fixed32).
    pub wire_type: u8,
    /// For length-delimited fields, the payload; for groups, the fields and
    /// the end tag; otherwise the value bytes.
    pub payload: &'a [u8],
    /// The whole field, tag included, as it appears on the wire.
    pub raw: &'a [u8],
}

/// Iterates the fields of one message.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Walks the fields of `buf`.
pub fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf, pos: 0 }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        if let Some(field) = everyday_field(self.buf, self.pos) {
            self.pos += field.raw.len();
            return Some(Ok(field));
        }
        Some(self.step())
    }
}

/// The field at `buf[start..]` when it is of the everyday shape, read
/// inline: a one-byte tag, then a length of one or two bytes (a span, a
/// log record: up to 16 KiB), a one-byte varint or a fixed-width value;
/// `None` for anything else (left to the full read).
#[inline(always)]
fn everyday_field(buf: &[u8], start: usize) -> Option<Field<'_>> {
    // Every field takes at least two bytes.
    let rest = buf.get(start..)?;
    let [tag, first, ..] = *rest else {
        return None;
    };
    if !(0x08..0x80).contains(&tag) {
        return None;
    }
    let (head, len) = match tag & 7 {
        2 if first < 0x80 => (2, usize::from(first)),
        2 => match rest.get(2) {
            Some(&second) if second < 0x80 => {
                (3, usize::from(first & 0x7f) | usize::from(second) << 7)
            }
            _ => return None,
        },
        0 if first < 0x80 => (1, 1),
        1 => (1, 8),
        5 => (1, 4),
        _ => return None,
    };
    let raw = rest.get(..head + len)?;
    Some(Field {
        number: u32::from(tag >> 3),
        wire_type: tag & 7,
        payload: raw.get(head..)?,
        raw,
    })
}

/// Where a field lies in its message: what [`field_at`] reads.
#[derive(Debug, Clone, Copy)]
pub struct FieldAt {
    /// Field number.
    pub number: u32,
    /// Wire type.
    pub wire_type: u8,
    /// Where it starts (its tag).
    pub start: usize,
    /// Where its payload starts (as in [`Field::payload`]).
    pub payload: usize,
    /// Where it ends.
    pub end: usize,
}

impl FieldAt {
    /// The field, as slices of `buf`, the message it was read from.
    #[inline(always)]
    pub fn field<'a>(&self, buf: &'a [u8]) -> Field<'a> {
        Field {
            number: self.number,
            wire_type: self.wire_type,
            payload: &buf[self.payload..self.end],
            raw: &buf[self.start..self.end],
        }
    }
}

/// The field at `buf[start..]` (`start` below `buf.len()`) as positions,
/// for loops that look at the payload of few fields and skip the others:
/// cheaper than [`walk_fields`], which hands over each field's slices.
#[inline(always)]
pub fn field_at(buf: &[u8], start: usize) -> Result<FieldAt, WireError> {
    if let Some(&[tag, first]) = buf.get(start..start + 2)
        && (0x08..0x80).contains(&tag)
    {
        let (head, len) = match (tag & 7, buf.get(start + 2)) {
            (2, _) if first < 0x80 => (2, usize::from(first)),
            (2, Some(&second)) if second < 0x80 => {
                (3, usize::from(first & 0x7f) | usize::from(second) << 7)
            }
            (0, _) if first < 0x80 => (1, 1),
            (1, _) => (1, 8),
            (5, _) => (1, 4),
            // Anything else: the full read below.
            _ => (0, usize::MAX),
        };
        if len <= buf.len().saturating_sub(start + head) {
            return Ok(FieldAt {
                number: u32::from(tag >> 3),
                wire_type: tag & 7,
                start,
                payload: start + head,
                end: start + head + len,
            });
        }
    }
    let f = Fields { buf, pos: start }.step()?;
    let payload = f.payload.as_ptr() as usize - buf.as_ptr() as usize;
    Ok(FieldAt {
        number: f.number,
        wire_type: f.wire_type,
        start,
        payload,
        end: start + f.raw.len(),
    })
}

/// Calls `visit` with each field of `buf` in order until it returns
/// `Ok(false)`. Unlike [`Fields`], a field of the everyday shape reaches
/// `visit` without being moved through an `Option<Result<..>>`, which keeps
/// it in registers: the loop behind every view.
#[inline(always)]
pub fn walk_fields<'a>(
    buf: &'a [u8],
    mut visit: impl FnMut(Field<'a>) -> Result<bool, WireError>,
) -> Result<(), WireError> {
    let mut pos = 0;
    while pos < buf.len() {
        // One call site of `visit`, so that it is inlined into the loop.
        let field = match everyday_field(buf, pos) {
            Some(field) => field,
            None => Fields { buf, pos }.step()?,
        };
        pos += field.raw.len();
        if !visit(field)? {
            break;
        }
    }
    Ok(())
}

impl<'a> Fields<'a> {
    /// The bytes not walked yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    #[inline(never)]
    fn step(&mut self) -> Result<Field<'a>, WireError> {
        let start = self.pos;
        let walked = read_tag(self.buf, &mut self.pos)
            .and_then(|tag| Ok((tag, skip_value(self.buf, &mut self.pos, tag, 0)?)));
        match walked {
            Ok((tag, value_start)) => Ok(Field {
                number: (tag >> 3) as u32,
                wire_type: (tag & 7) as u8,
                payload: &self.buf[value_start..self.pos],
                raw: &self.buf[start..self.pos],
            }),
            Err(e) => {
                self.pos = self.buf.len();
                Err(e)
            }
        }
    }
}

/// Reads a field tag: a varint that fits 32 bits, with a field number
/// above 0 (one-byte tags, the common case, take the short path).
#[inline]
pub fn read_tag(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let tag = match buf.get(*pos) {
        Some(&b) if b < 0x80 => {
            *pos += 1;
            u64::from(b)
        }
        _ => read_varint(buf, pos)?,
    };
    if tag > u64::from(u32::MAX) {
        return Err(bad("field tag larger than 32 bits"));
    }
    if tag >> 3 == 0 {
        return Err(bad("field number 0"));
    }
    Ok(tag)
}

/// The path of field numbers from an export request down to its items.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// `levels[i]` lists the field numbers, at depth `i`, that hold the next level.
    pub levels: &'static [&'static [u32]],
}

/// request.resource_spans(1) -> scope_spans(2) -> spans(2)
pub const TRACES: Layout = Layout {
    levels: &[&[1], &[2], &[2]],
};
/// request.resource_logs(1) -> scope_logs(2) -> log_records(2)
pub const LOGS: Layout = Layout {
    levels: &[&[1], &[2], &[2]],
};
/// request.resource_metrics(1) -> scope_metrics(2) -> metrics(2) ->
/// gauge(5) | sum(7) | histogram(9) | exponential_histogram(10) | summary(11) -> data_points(1)
pub const METRICS: Layout = Layout {
    levels: &[&[1], &[2], &[2], &[5, 7, 9, 10, 11], &[1]],
};

/// The layout of a signal's export request.
pub fn layout(signal: Signal) -> Layout {
    match signal {
        Signal::Traces => TRACES,
        Signal::Metrics => METRICS,
        Signal::Logs => LOGS,
    }
}

/// Counts the items in an export request after checking all of it against
/// the OTLP schema (see [`validate`]).
pub fn count_items(signal: Signal, request: &[u8]) -> Result<usize, WireError> {
    validate::validate(signal, request)
}

/// Skips the value of the field whose tag `key` was just read at `*pos`,
/// whatever its wire type, and returns where its payload starts (after the
/// length of a length-delimited field). A group runs to its matching end
/// tag, nested at most [`MAX_DEPTH`] deep counting from `depth`.
pub fn skip_value(buf: &[u8], pos: &mut usize, key: u64, depth: usize) -> Result<usize, WireError> {
    let width = match key & 7 {
        0 => {
            let start = *pos;
            read_varint(buf, pos)?;
            return Ok(start);
        }
        1 => 8,
        5 => 4,
        2 => {
            let len = read_varint(buf, pos)?;
            usize::try_from(len).map_err(|_| bad("length too large"))?
        }
        3 => {
            if depth >= MAX_DEPTH {
                return Err(WireError::new(
                    Reason::TooDeep,
                    String::new(),
                    format!("groups nested more than {MAX_DEPTH} deep"),
                ));
            }
            let start = *pos;
            loop {
                let inner = read_tag(buf, pos)?;
                if inner & 7 == 4 {
                    if inner >> 3 != key >> 3 {
                        return Err(bad("group closed by the end tag of another field"));
                    }
                    return Ok(start);
                }
                skip_value(buf, pos, inner, depth + 1)?;
            }
        }
        4 => return Err(bad("group end tag without a start")),
        other => return Err(bad(format!("invalid wire type {other}"))),
    };
    if buf.len() - *pos < width {
        return Err(bad(format!(
            "field declares {width} bytes but only {} remain",
            buf.len() - *pos
        )));
    }
    let start = *pos;
    *pos += width;
    Ok(start)
}

/// A piece of a split request: its bytes and how many items it holds.
#[derive(Debug, Clone)]
pub struct Piece {
    /// Encoded message.
    pub bytes: BytesMut,
    /// Items inside.
    pub items: usize,
}

/// Splits an export request into requests of at most `max` items each,
/// keeping order, resources and scopes; item bytes are copied untouched.
/// The split is planned on borrowed slices and each piece written once:
/// allocations grow with the pieces, resources and scopes, not the items.
pub fn split(signal: Signal, request: &[u8], max: usize) -> Result<Vec<Piece>, WireError> {
    split_after(signal, request, max, max)
}

/// Like [`split`], the first piece holding at most `first` items (the room
/// left in a piece being filled from another request).
pub fn split_after(
    signal: Signal,
    request: &[u8],
    first: usize,
    max: usize,
) -> Result<Vec<Piece>, WireError> {
    let max = max.max(1);
    let first = first.clamp(1, max);
    let drafts = split_level(request, layout(signal).levels, first, max)?;
    Ok(drafts
        .into_iter()
        .map(|draft| {
            let mut bytes = BytesMut::with_capacity(draft.len());
            draft.write(&mut bytes);
            Piece {
                bytes,
                items: draft.items(),
            }
        })
        .collect())
}

/// A piece of a split before it is written, made of borrowed bytes.
enum Draft<'a> {
    /// One item, as it was.
    Item(&'a [u8]),
    /// A container: its other fields, then its children.
    Container {
        header: Vec<&'a [u8]>,
        children: Vec<(u32, Draft<'a>)>,
        len: usize,
        items: usize,
    },
}

impl Draft<'_> {
    /// Encoded length.
    fn len(&self) -> usize {
        match self {
            Draft::Item(raw) => raw.len(),
            Draft::Container { len, .. } => *len,
        }
    }

    fn items(&self) -> usize {
        match self {
            Draft::Item(_) => 1,
            Draft::Container { items, .. } => *items,
        }
    }

    fn write(&self, out: &mut BytesMut) {
        match self {
            Draft::Item(raw) => out.extend_from_slice(raw),
            Draft::Container {
                header, children, ..
            } => {
                for h in header {
                    out.extend_from_slice(h);
                }
                for (number, child) in children {
                    put_varint(out, (u64::from(*number) << 3) | 2);
                    put_varint(out, child.len() as u64);
                    child.write(out);
                }
            }
        }
    }
}

/// The container being filled while splitting one level.
struct Open<'a, 'h> {
    header: &'h [&'a [u8]],
    children: Vec<(u32, Draft<'a>)>,
    items: usize,
}

impl<'a> Open<'a, '_> {
    fn push(&mut self, number: u32, child: Draft<'a>) {
        self.items += child.items();
        self.children.push((number, child));
    }

    fn close(&mut self, out: &mut Vec<Draft<'a>>) {
        if self.children.is_empty() {
            return;
        }
        let mut len = self.header.iter().map(|h| h.len()).sum::<usize>();
        for (number, child) in &self.children {
            let tag = (u64::from(*number) << 3) | 2;
            len += varint_len(tag) + varint_len(child.len() as u64) + child.len();
        }
        out.push(Draft::Container {
            header: self.header.to_vec(),
            children: std::mem::take(&mut self.children),
            len,
            items: std::mem::take(&mut self.items),
        });
    }
}

/// Splits one container (`levels` non-empty) into drafts; the first holds
/// at most `first_room` items, the others at most `max`.
fn split_level<'a>(
    msg: &'a [u8],
    levels: &[&[u32]],
    first_room: usize,
    max: usize,
) -> Result<Vec<Draft<'a>>, WireError> {
    let Some((here, below)) = levels.split_first() else {
        return Ok(vec![Draft::Item(msg)]);
    };
    let is_child = |f: &Field<'_>| here.contains(&f.number) && f.wire_type == 2;
    let mut header: Vec<&[u8]> = Vec::new();
    let mut remaining = 0usize;
    for field in fields(msg) {
        let field = field?;
        if is_child(&field) {
            remaining += 1;
        } else {
            header.push(field.raw);
        }
    }
    let mut out = Vec::new();
    let mut open = Open {
        header: &header,
        children: Vec::new(),
        items: 0,
    };
    let mut limit = first_room;
    for field in fields(msg) {
        let field = field?;
        if !is_child(&field) {
            continue;
        }
        let room = limit - open.items;
        let room = if room == 0 {
            open.close(&mut out);
            limit = max;
            max
        } else {
            room
        };
        if below.is_empty() {
            // Items: size the container once for all it will take.
            if open.children.capacity() == 0 {
                open.children.reserve_exact(room.min(remaining));
            }
            open.push(field.number, Draft::Item(field.payload));
        } else {
            for (i, piece) in split_level(field.payload, below, room, max)?
                .into_iter()
                .enumerate()
            {
                if i > 0 {
                    open.close(&mut out);
                    limit = max;
                }
                open.push(field.number, piece);
            }
        }
        remaining -= 1;
    }
    open.close(&mut out);
    if out.is_empty() && levels.len() > 1 {
        // A container with no children keeps its header (e.g. an empty resource).
        out.push(Draft::Container {
            len: header.iter().map(|h| h.len()).sum(),
            header,
            children: Vec::new(),
            items: 0,
        });
    }
    Ok(out)
}

/// Concatenates encoded requests of one signal into one request: repeated
/// top-level fields concatenate on the wire.
pub fn concat(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let mut out = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
            for c in many {
                out.extend_from_slice(c);
            }
            out.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            let mut pos = 0;
            assert_eq!(read_varint(&b, &mut pos).unwrap(), v);
            assert_eq!(pos, b.len());
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        // field 1, length 10, but only 2 bytes follow
        let msg = [0x0a, 0x0a, 0x01, 0x02];
        assert!(count_items(Signal::Traces, &msg).is_err());
        assert!(count_items(Signal::Traces, &[0x80]).is_err());
        // wire type 7 does not exist
        assert!(count_items(Signal::Logs, &[0x0f]).is_err());
        // field 1 as a varint where a message is expected
        assert!(count_items(Signal::Logs, &[0x08, 0x01]).is_err());
    }

    #[test]
    fn empty_request_has_no_items() {
        assert_eq!(count_items(Signal::Metrics, &[]).unwrap(), 0);
    }
}
