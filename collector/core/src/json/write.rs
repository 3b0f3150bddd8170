//! Protobuf wire bytes to OTLP/JSON in one pass, driven by [`super::schema`],
//! written as the Collector's pdata marshaler writes it: lowerCamelCase
//! names, 64-bit integers as decimal strings, enums as numbers, ids as
//! lower-case hex, bytes as base64, NaN and infinities as `"NaN"`,
//! `"Infinity"` and `"-Infinity"`, and fields at their zero value left out
//! (except `oneof` members and `optional` fields, whose presence matters).
//!
//! The walk expects each singular field at most once and each repeated
//! field in one run, as every protobuf encoder writes them; anything else
//! (and anything malformed) stops it, and the caller retries on the request
//! re-encoded by prost ([`super::canonical`]).

use super::MAX_DEPTH;
use super::lexer::plain_run;
use super::schema::{Card, I32, I64, Kind, LEN, Msg, VARINT};

/// Why the walk stopped.
#[derive(Debug)]
pub(super) struct Stop(pub String);

type Result<T> = std::result::Result<T, Stop>;

fn stop<T>(reason: impl Into<String>) -> Result<T> {
    Err(Stop(reason.into()))
}

/// Writes the request in `wire` as one JSON object.
pub(super) fn request(root: &'static Msg, wire: &[u8], out: &mut Vec<u8>) -> Result<()> {
    message(root, wire, out, 0)
}

/// One value as it is on the wire.
#[derive(Clone, Copy)]
enum Raw<'a> {
    /// A varint or a fixed-width number.
    Int(u64),
    Len(&'a [u8]),
}

fn message(msg: &'static Msg, mut buf: &[u8], out: &mut Vec<u8>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return stop(format!("nested deeper than {MAX_DEPTH} messages"));
    }
    out.push(b'{');
    let mut first = true;
    let mut seen = 0u64;
    let mut oneof = false;
    // The repeated field whose array is open, and whether it has elements.
    let mut open: Option<usize> = None;
    let mut elements = false;
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        if key >> 3 == 0 || key > u64::from(u32::MAX) {
            return stop(format!("invalid field key {key}"));
        }
        let wire_type = (key & 7) as u8;
        let Some((index, field)) = msg.by_number(key >> 3) else {
            raw(wire_type, &mut buf)?;
            continue;
        };
        if open.is_some_and(|o| o != index) {
            out.push(b']');
            open = None;
        }
        let bit = 1u64 << index;
        if field.card == Card::Repeated {
            if open.is_none() {
                if seen & bit != 0 {
                    return stop(format!("{} is not in one run", field.json));
                }
                seen |= bit;
                name(out, &mut first, field.json);
                out.push(b'[');
                open = Some(index);
                elements = false;
            }
            let mut element = |out: &mut Vec<u8>, value: Raw<'_>| {
                if elements {
                    out.push(b',');
                }
                elements = true;
                self::value(field.kind, value, out, depth)
            };
            if field.kind.packed() && wire_type == LEN {
                let mut packed = bytes(&mut buf)?;
                while !packed.is_empty() {
                    element(out, raw(field.kind.wire_type(), &mut packed)?)?;
                }
            } else if wire_type == field.kind.wire_type() {
                element(out, raw(wire_type, &mut buf)?)?;
            } else {
                return stop(format!("{} has wire type {wire_type}", field.json));
            }
            continue;
        }
        if seen & bit != 0 || (field.card == Card::Oneof && oneof) {
            return stop(format!("{} occurs more than once", field.json));
        }
        seen |= bit;
        oneof |= field.card == Card::Oneof;
        if wire_type != field.kind.wire_type() {
            return stop(format!("{} has wire type {wire_type}", field.json));
        }
        let v = raw(wire_type, &mut buf)?;
        if field.card == Card::Single && is_zero(field.kind, v) {
            continue;
        }
        name(out, &mut first, field.json);
        value(field.kind, v, out, depth)?;
    }
    if open.is_some() {
        out.push(b']');
    }
    out.push(b'}');
    Ok(())
}

fn name(out: &mut Vec<u8>, first: &mut bool, json: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.push(b'"');
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Whether a singular field holds its zero value (and is left out).
fn is_zero(kind: Kind, v: Raw<'_>) -> bool {
    match (kind, v) {
        (Kind::Message(_), _) => false,
        (Kind::Double, Raw::Int(bits)) => f64::from_bits(bits) == 0.0,
        (_, Raw::Int(n)) => n == 0,
        (_, Raw::Len(b)) => b.is_empty(),
    }
}

fn value(kind: Kind, v: Raw<'_>, out: &mut Vec<u8>, depth: usize) -> Result<()> {
    let mut digits = itoa::Buffer::new();
    match (kind, v) {
        (Kind::Message(msg), Raw::Len(b)) => return message(msg, b, out, depth + 1),
        (Kind::String, Raw::Len(b)) => string(out, b)?,
        (Kind::Bytes, Raw::Len(b)) => {
            use base64::Engine as _;
            out.push(b'"');
            let start = out.len();
            out.resize(start + b.len().div_ceil(3) * 4, 0);
            let n = base64::engine::general_purpose::STANDARD
                .encode_slice(b, &mut out[start..])
                .or_else(|e| stop(e.to_string()))?;
            out.truncate(start + n);
            out.push(b'"');
        }
        (Kind::Id(len), Raw::Len(b)) => {
            if b.len() != len {
                return stop(format!(
                    "an id of {} bytes (OTLP/JSON ids are {len} bytes)",
                    b.len()
                ));
            }
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push(b'"');
            for &x in b {
                out.push(HEX[usize::from(x >> 4)]);
                out.push(HEX[usize::from(x & 0xf)]);
            }
            out.push(b'"');
        }
        (Kind::Bool, Raw::Int(n)) => {
            out.extend_from_slice(if n != 0 { b"true" } else { b"false" });
        }
        // Narrowing as protobuf decoders do.
        (Kind::Int32 | Kind::Enum(_), Raw::Int(n)) => {
            out.extend_from_slice(digits.format(n as i32).as_bytes());
        }
        (Kind::Sint32, Raw::Int(n)) => {
            let n = n as u32;
            let v = (n >> 1) as i32 ^ -((n & 1) as i32);
            out.extend_from_slice(digits.format(v).as_bytes());
        }
        (Kind::Uint32 | Kind::Fixed32, Raw::Int(n)) => {
            out.extend_from_slice(digits.format(n as u32).as_bytes());
        }
        (Kind::Int64 | Kind::Sfixed64, Raw::Int(n)) => {
            quoted(out, digits.format(n as i64));
        }
        (Kind::Uint64 | Kind::Fixed64, Raw::Int(n)) => {
            quoted(out, digits.format(n));
        }
        (Kind::Double, Raw::Int(bits)) => double(out, f64::from_bits(bits)),
        _ => return stop("value does not match the field's type"),
    }
    Ok(())
}

fn quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// A double as the OTLP/JSON mapping writes it: a number, or `"NaN"`,
/// `"Infinity"`, `"-Infinity"`.
fn double(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v == f64::INFINITY {
        out.extend_from_slice(b"\"Infinity\"");
    } else if v == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-Infinity\"");
    } else {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    }
}

/// A JSON string of `b`, which must be UTF-8 (as protobuf requires).
fn string(out: &mut Vec<u8>, b: &[u8]) -> Result<()> {
    out.push(b'"');
    let mut start = 0;
    loop {
        let (end, ascii) = plain_run(b, start);
        if !ascii && std::str::from_utf8(&b[start..end]).is_err() {
            return stop("invalid UTF-8 in a string");
        }
        out.extend_from_slice(&b[start..end]);
        let Some(&c) = b.get(end) else {
            break;
        };
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
            }
        }
        start = end + 1;
    }
    out.push(b'"');
    Ok(())
}

/// Reads one value of `wire_type` (skipping it, for unknown fields).
fn raw<'a>(wire_type: u8, buf: &mut &'a [u8]) -> Result<Raw<'a>> {
    match wire_type {
        VARINT => varint(buf).map(Raw::Int),
        I64 => fixed::<8>(buf).map(|b| Raw::Int(u64::from_le_bytes(b))),
        I32 => fixed::<4>(buf).map(|b| Raw::Int(u64::from(u32::from_le_bytes(b)))),
        LEN => bytes(buf).map(Raw::Len),
        _ => stop(format!("wire type {wire_type}")),
    }
}

fn varint(buf: &mut &[u8]) -> Result<u64> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *buf = &buf[i + 1..];
            return Ok(v);
        }
    }
    stop("truncated or overlong varint")
}

fn fixed<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N]> {
    let Some((head, rest)) = buf.split_first_chunk::<N>() else {
        return stop("truncated fixed-width value");
    };
    *buf = rest;
    Ok(*head)
}

fn bytes<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8]> {
    let len = varint(buf)?;
    match usize::try_from(len).ok().filter(|&n| n <= buf.len()) {
        Some(n) => {
            let (head, rest) = buf.split_at(n);
            *buf = rest;
            Ok(head)
        }
        None => stop("length beyond the end of the message"),
    }
}
