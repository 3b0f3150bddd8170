//! Protobuf wire-format walking for OTLP export requests, without decoding
//! into owned structs. Counts items (spans, metric data points, log records),
//! checks that the envelope down to each item is well-formed, and splits a
//! request into smaller requests by copying item bytes as they are.
//!
//! The OTLP envelopes nest the same way for every signal; [`Layout`] says
//! which field numbers lead from the request down to the items.

use bytes::{BufMut, Bytes, BytesMut};

use crate::Signal;

/// A problem in the protobuf bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf: {0}")]
pub struct WireError(pub String);

fn bad(msg: impl Into<String>) -> WireError {
    WireError(msg.into())
}

/// Reads a varint at `buf[*pos..]`, advancing `pos`.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or_else(|| bad("truncated varint"))?;
        *pos += 1;
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
    /// Wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
    pub wire_type: u8,
    /// For length-delimited fields, the payload; otherwise the value bytes.
    pub payload: &'a [u8],
    /// The whole field, tag included, as it appears on the wire.
    pub raw: &'a [u8],
}

/// True when `msg` is a sequence of well-formed fields (tags, varints,
/// fixed-width values and lengths that fit). The fast path of
/// [`count_items`]: no allocation, no per-field structs.
#[inline]
pub fn well_framed(msg: &[u8]) -> bool {
    let mut pos = 0;
    let len = msg.len();
    while pos < len {
        // Tag (usually one byte).
        let b = msg[pos];
        let tag = if b < 0x80 {
            pos += 1;
            u64::from(b)
        } else {
            match read_varint(msg, &mut pos) {
                Ok(t) => t,
                Err(_) => return false,
            }
        };
        if tag >> 3 == 0 {
            return false;
        }
        match tag & 7 {
            0 => {
                // Varint: skip to the byte without the continuation bit.
                let mut n = 0;
                loop {
                    match msg.get(pos) {
                        Some(b) => {
                            pos += 1;
                            n += 1;
                            if b & 0x80 == 0 {
                                break;
                            }
                            if n == 10 {
                                return false;
                            }
                        }
                        None => return false,
                    }
                }
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let b = match msg.get(pos) {
                    Some(b) => *b,
                    None => return false,
                };
                let l = if b < 0x80 {
                    pos += 1;
                    u64::from(b)
                } else {
                    match read_varint(msg, &mut pos) {
                        Ok(l) => l,
                        Err(_) => return false,
                    }
                };
                match usize::try_from(l) {
                    Ok(l) if l <= len - pos.min(len) => pos += l,
                    _ => return false,
                }
            }
            _ => return false,
        }
        if pos > len {
            return false;
        }
    }
    true
}

/// Iterates the fields of one message.
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

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        Some(self.step())
    }
}

impl<'a> Fields<'a> {
    fn step(&mut self) -> Result<Field<'a>, WireError> {
        let start = self.pos;
        let tag = read_varint(self.buf, &mut self.pos)?;
        let number = u32::try_from(tag >> 3).map_err(|_| bad("field number too large"))?;
        if number == 0 {
            return Err(bad("field number 0"));
        }
        let wire_type = (tag & 7) as u8;
        let value_start;
        match wire_type {
            0 => {
                value_start = self.pos;
                read_varint(self.buf, &mut self.pos)?;
            }
            1 | 5 => {
                value_start = self.pos;
                let n = if wire_type == 1 { 8 } else { 4 };
                if self.buf.len() - self.pos < n {
                    self.pos = self.buf.len();
                    return Err(bad("truncated fixed-width field"));
                }
                self.pos += n;
            }
            2 => {
                let len = read_varint(self.buf, &mut self.pos)?;
                value_start = self.pos;
                let len = usize::try_from(len).map_err(|_| bad("length too large"))?;
                if self.buf.len() - self.pos < len {
                    self.pos = self.buf.len();
                    return Err(bad(format!(
                        "field {number} declares {len} bytes but only {} remain",
                        self.buf.len() - value_start
                    )));
                }
                self.pos += len;
            }
            other => {
                self.pos = self.buf.len();
                return Err(bad(format!(
                    "unsupported wire type {other} in field {number}"
                )));
            }
        }
        Ok(Field {
            number,
            wire_type,
            payload: &self.buf[value_start..self.pos],
            raw: &self.buf[start..self.pos],
        })
    }
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

/// Counts the items in an export request and checks its envelope, down to
/// the fields of each item, is well-formed.
pub fn count_items(signal: Signal, request: &[u8]) -> Result<usize, WireError> {
    count_level(request, layout(signal).levels)
}

fn count_level(msg: &[u8], levels: &[&[u32]]) -> Result<usize, WireError> {
    let Some((here, below)) = levels.split_first() else {
        // An item: check its own fields are well framed.
        return if well_framed(msg) {
            Ok(1)
        } else {
            // Walk again to say what is wrong.
            fields(msg).find_map(Result::err).map_or(Ok(1), Err)
        };
    };
    let mut total = 0;
    for field in fields(msg) {
        let field = field?;
        if here.contains(&field.number) {
            if field.wire_type != 2 {
                return Err(bad(format!(
                    "field {} has wire type {} where a message was expected",
                    field.number, field.wire_type
                )));
            }
            total += count_level(field.payload, below)?;
        }
    }
    Ok(total)
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
    let max = max.max(1);
    let drafts = split_level(request, layout(signal).levels, max, max)?;
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
    fn well_framed_agrees_with_the_field_walk() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x08, 0x96, 0x01],             // field 1 varint 150
            &[0x12, 0x02, b'h', b'i'],       // field 2 bytes "hi"
            &[0x19, 1, 2, 3, 4, 5, 6, 7, 8], // field 3 fixed64
            &[0x25, 1, 2, 3, 4],             // field 4 fixed32
            &[0x12, 0x05, b'h'],             // length past the end
            &[0x19, 1, 2],                   // truncated fixed64
            &[0x08, 0x80],                   // truncated varint
            &[0x0f],                         // wire type 7
            &[0x00, 0x01],                   // field number 0
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ], // 11-byte varint
            &[0xa0, 0x06, 0x01],             // two-byte tag, field 100
        ];
        for case in cases {
            let walk = fields(case).all(|f| f.is_ok());
            assert_eq!(well_framed(case), walk, "{case:?}");
        }
        // And on many random byte strings (a fixed LCG, so reproducible).
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..50_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let len = (x >> 58) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    (x.rotate_left(i as u32 * 7) >> 13) as u8 & if i % 3 == 0 { 0x7f } else { 0xff }
                })
                .collect();
            let walk = fields(&bytes).all(|f| f.is_ok());
            assert_eq!(well_framed(&bytes), walk, "{bytes:?}");
        }
    }

    #[test]
    fn empty_request_has_no_items() {
        assert_eq!(count_items(Signal::Metrics, &[]).unwrap(), 0);
    }
}
