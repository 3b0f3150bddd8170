//! OTLP/JSON to protobuf wire bytes in one pass, driven by [`super::schema`],
//! accepting what the OpenTelemetry Collector's pdata decoder accepts:
//! lowerCamelCase and snake_case names; 64- and 32-bit integers as numbers
//! or decimal strings; doubles as numbers or strings (`"1.5"`, `"NaN"`,
//! `"Infinity"`, `"-Infinity"`); enums by number or name; hex ids of exactly
//! 16 or 8 bytes (or empty); standard base64 bytes; `null` for an empty
//! string, message or array. Unknown fields are skipped. Everything else is
//! refused with the field's path, never dropped: a fractional or overflowing
//! integer, a string where a number belongs, a wrong-length id.

use super::lexer::{Lexer, Next, SyntaxError};
use super::schema::{Card, Field, Kind, LEN, Msg};
use super::{MAX_DEPTH, PathError, Segment};

type Result<T> = std::result::Result<T, PathError>;

impl From<SyntaxError> for PathError {
    fn from(e: SyntaxError) -> PathError {
        PathError {
            offset: e.offset,
            path: Vec::new(),
            reason: e.reason,
        }
    }
}

/// The wire bytes of the request in `body`, and whether they need to be
/// re-encoded because a key was repeated (the wire then holds a field more
/// than once, in protobuf merge order).
pub(super) fn transcode(root: &'static Msg, body: &[u8]) -> Result<(Vec<u8>, bool)> {
    let mut r = Reader {
        lex: Lexer::new(body),
        out: Vec::with_capacity(body.len() / 2),
        scratch: Vec::new(),
        repeated_keys: false,
    };
    match r.lex.peek() {
        // The Collector reads `null` as an empty request.
        Next::Null => r.lex.literal("null")?,
        Next::Object => r.message(root, 0)?,
        _ => r.lex.unexpected("an object")?,
    }
    // What follows the request is ignored, as the Collector does, unless it
    // is another object or array: that would be data dropped.
    if let Next::Object | Next::Array = r.lex.peek() {
        return r.fail("a second JSON value after the request");
    }
    Ok((r.out, r.repeated_keys))
}

struct Reader<'a> {
    lex: Lexer<'a>,
    out: Vec<u8>,
    /// Unescaped keys and number strings.
    scratch: Vec<u8>,
    repeated_keys: bool,
}

impl Reader<'_> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T> {
        self.fail_at(self.lex.offset(), reason.into())
    }

    /// One message object; `depth` counts the messages around it.
    fn message(&mut self, msg: &'static Msg, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return self.fail(format!("nested deeper than {MAX_DEPTH} messages"));
        }
        self.lex.expect(b'{')?;
        if self.lex.eat(b'}') {
            return Ok(());
        }
        let mut seen = 0u64;
        let mut oneof = false;
        loop {
            self.scratch.clear();
            let field = match self.lex.string(&mut self.scratch)? {
                Some(key) => msg.by_name(key),
                None => msg.by_name(&self.scratch),
            };
            self.lex.expect(b':')?;
            match field {
                None => self.lex.skip()?,
                Some((index, field)) => {
                    let bit = 1u64 << index;
                    if seen & bit != 0 || (field.card == Card::Oneof && oneof) {
                        self.repeated_keys = true;
                    }
                    seen |= bit;
                    oneof |= field.card == Card::Oneof;
                    self.field(field, depth)
                        .map_err(|e| e.within(Segment::Field(field.json)))?;
                }
            }
            if !self.lex.eat(b',') {
                self.lex.expect(b'}')?;
                return Ok(());
            }
        }
    }

    fn field(&mut self, field: &'static Field, depth: usize) -> Result<()> {
        if field.card != Card::Repeated {
            return self.value(field, depth);
        }
        match self.lex.peek() {
            Next::Null => return Ok(self.lex.literal("null")?),
            Next::Array => self.lex.expect(b'[')?,
            _ => return Ok(self.lex.unexpected("an array")?),
        }
        if self.lex.eat(b']') {
            return Ok(());
        }
        let packed = field.kind.packed().then(|| {
            self.tag(field.number, LEN);
            self.begin()
        });
        let mut index = 0;
        loop {
            let element = match packed {
                Some(_) => self.scalar(field.kind, Card::Repeated).map(drop),
                None => self.value(field, depth),
            };
            element.map_err(|e| e.within(Segment::Index(index)))?;
            index += 1;
            if !self.lex.eat(b',') {
                self.lex.expect(b']')?;
                break;
            }
        }
        if let Some(start) = packed {
            self.end(start);
        }
        Ok(())
    }

    /// One value of `field` (an element, for a repeated field), with its tag.
    fn value(&mut self, field: &'static Field, depth: usize) -> Result<()> {
        let keep_zero = field.card != Card::Single;
        match field.kind {
            Kind::Message(msg) => {
                if self.lex.peek() == Next::Null {
                    // The Collector reads `null` as an empty message.
                    self.lex.literal("null")?;
                    if keep_zero {
                        self.tag(field.number, LEN);
                        self.out.push(0);
                    }
                    return Ok(());
                }
                self.tag(field.number, LEN);
                let start = self.begin();
                self.message(msg, depth + 1)?;
                self.end(start);
            }
            Kind::String => {
                let mark = self.out.len();
                self.tag(field.number, LEN);
                let start = self.begin();
                if self.lex.peek() == Next::Null {
                    self.lex.literal("null")?;
                } else if self.lex.peek() == Next::String {
                    if let Some(s) = self.lex.string(&mut self.out)? {
                        self.out.extend_from_slice(s);
                    }
                } else {
                    return self.lex.unexpected("a string").map_err(Into::into);
                }
                if !keep_zero && self.out.len() == start + 1 {
                    self.out.truncate(mark);
                } else {
                    self.end(start);
                }
            }
            Kind::Bytes => {
                let bytes = self.base64()?;
                if keep_zero || !bytes.is_empty() {
                    self.tag(field.number, LEN);
                    self.varint(bytes.len() as u64);
                    self.out.extend_from_slice(&bytes);
                }
            }
            Kind::Id(len) => self.id(field.number, len)?,
            kind => {
                let mark = self.out.len();
                self.tag(field.number, kind.wire_type());
                if !self.scalar(kind, field.card)? {
                    self.out.truncate(mark);
                }
            }
        }
        Ok(())
    }

    /// A numeric or boolean value, without a tag; returns false if it is the
    /// zero value of a field that leaves zero out (nothing is written then).
    fn scalar(&mut self, kind: Kind, card: Card) -> Result<bool> {
        let start = self.out.len();
        match kind {
            Kind::Bool => match self.lex.peek() {
                Next::True => {
                    self.lex.literal("true")?;
                    self.out.push(1);
                }
                Next::False => {
                    self.lex.literal("false")?;
                    self.out.push(0);
                }
                _ => return self.lex.unexpected("true or false").map_err(Into::into),
            },
            Kind::Double => {
                let v = self.double()?;
                if card == Card::Single && v == 0.0 {
                    return Ok(false);
                }
                self.out.extend_from_slice(&v.to_le_bytes());
                return Ok(true);
            }
            Kind::Enum(names) => {
                let v = if self.lex.peek() == Next::String {
                    self.scratch.clear();
                    let name = match self.lex.string(&mut self.scratch)? {
                        Some(s) => s,
                        None => &self.scratch[..],
                    };
                    match names.iter().find(|(n, _)| n.as_bytes() == name) {
                        Some(&(_, v)) => v,
                        None => {
                            let name = String::from_utf8_lossy(name).into_owned();
                            return self.fail(format!("unknown enum value \"{name}\""));
                        }
                    }
                } else {
                    self.integer(i32::MIN.into(), i32::MAX.into())? as i32
                };
                self.varint(i64::from(v) as u64);
            }
            Kind::Int32 => {
                let v = self.integer(i32::MIN.into(), i32::MAX.into())?;
                self.varint(v as u64);
            }
            Kind::Sint32 => {
                let v = self.integer(i32::MIN.into(), i32::MAX.into())? as i32;
                self.varint(u64::from(((v << 1) ^ (v >> 31)) as u32));
            }
            Kind::Uint32 => {
                let v = self.integer(0, u32::MAX.into())?;
                self.varint(v as u64);
            }
            Kind::Fixed32 => {
                let v = self.integer(0, u32::MAX.into())? as u32;
                self.out.extend_from_slice(&v.to_le_bytes());
            }
            Kind::Int64 => {
                let v = self.integer(i64::MIN.into(), i64::MAX.into())?;
                self.varint(v as u64);
            }
            Kind::Uint64 => {
                let v = self.integer(0, u64::MAX.into())?;
                self.varint(v as u64);
            }
            Kind::Fixed64 => {
                let v = self.integer(0, u64::MAX.into())? as u64;
                self.out.extend_from_slice(&v.to_le_bytes());
            }
            Kind::Sfixed64 => {
                let v = self.integer(i64::MIN.into(), i64::MAX.into())? as i64;
                self.out.extend_from_slice(&v.to_le_bytes());
            }
            Kind::Message(_) | Kind::String | Kind::Bytes | Kind::Id(_) => {
                return self.fail("not a scalar field");
            }
        }
        Ok(card != Card::Single || self.out[start..].iter().any(|&b| b != 0))
    }

    /// An integer given as a JSON number or a decimal string, within
    /// `min..=max`. Like the Collector, refuses fractions and exponents;
    /// unsigned fields take no sign.
    fn integer(&mut self, min: i128, max: i128) -> Result<i128> {
        let offset = self.lex.offset();
        let (text, quoted) = match self.lex.peek() {
            Next::Number => (self.lex.number()?.as_bytes(), false),
            Next::String => {
                self.scratch.clear();
                match self.lex.string(&mut self.scratch)? {
                    Some(s) => (s, true),
                    None => (&self.scratch[..], true),
                }
            }
            _ => return self.lex.unexpected("an integer").map_err(Into::into),
        };
        // Go's ParseInt takes a sign, ParseUint none; JSON numbers only '-'.
        let (negative, digits) = match text.first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') if quoted && min < 0 => (false, &text[1..]),
            _ => (false, text),
        };
        let shown = || String::from_utf8_lossy(text);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return self.fail_at(offset, format!("\"{}\" is not an integer", shown()));
        }
        if negative && min == 0 {
            let reason = format!("{}: negative value for an unsigned field", shown());
            return self.fail_at(offset, reason);
        }
        let magnitude = digits.iter().try_fold(0u64, |v, d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        match magnitude.map(|m| {
            if negative {
                -i128::from(m)
            } else {
                i128::from(m)
            }
        }) {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            _ => self.fail_at(offset, format!("{} is out of range {min}..={max}", shown())),
        }
    }

    fn fail_at<T>(&self, offset: usize, reason: String) -> Result<T> {
        Err(PathError {
            offset,
            path: Vec::new(),
            reason,
        })
    }

    /// A double given as a JSON number or a string: a decimal number, or
    /// `NaN`, `Infinity`, `-Infinity` (also `inf` and any letter case, as
    /// the Collector's decoder reads them). Out of range is refused, and so
    /// are Go's hexadecimal float strings (`"0x1p-2"`), which no OTLP
    /// writer emits.
    fn double(&mut self) -> Result<f64> {
        let offset = self.lex.offset();
        let (text, quoted) = match self.lex.peek() {
            Next::Number => (self.lex.number()?, false),
            Next::String => {
                self.scratch.clear();
                let s = match self.lex.string(&mut self.scratch)? {
                    Some(s) => s,
                    None => &self.scratch[..],
                };
                // Checked as UTF-8 by the lexer.
                (std::str::from_utf8(s).unwrap_or_default(), true)
            }
            _ => return self.lex.unexpected("a number").map_err(Into::into),
        };
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        let special = quoted
            && (unsigned.eq_ignore_ascii_case("inf")
                || unsigned.eq_ignore_ascii_case("infinity")
                || (unsigned.len() == text.len() && unsigned.eq_ignore_ascii_case("nan")));
        let decimal = unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
        match text.parse::<f64>() {
            Ok(v) if special => Ok(v),
            Ok(v) if decimal && v.is_finite() => Ok(v),
            Ok(_) if decimal => {
                self.fail_at(offset, format!("{text} is out of range for a double"))
            }
            _ => self.fail_at(offset, format!("\"{text}\" is not a number")),
        }
    }

    /// Standard base64 (padded), as the Collector's decoder reads it.
    fn base64(&mut self) -> Result<Vec<u8>> {
        use base64::Engine as _;
        let offset = self.lex.offset();
        if self.lex.peek() != Next::String {
            return self.lex.unexpected("a base64 string").map_err(Into::into);
        }
        self.scratch.clear();
        let text = match self.lex.string(&mut self.scratch)? {
            Some(s) => s,
            None => &self.scratch[..],
        };
        // Go's decoder skips line breaks.
        let text: std::borrow::Cow<'_, [u8]> = if text.iter().any(|b| matches!(b, b'\r' | b'\n')) {
            text.iter()
                .copied()
                .filter(|b| !matches!(b, b'\r' | b'\n'))
                .collect()
        } else {
            text.into()
        };
        BASE64
            .decode(&text)
            .or_else(|e| self.fail_at(offset, format!("invalid base64: {e}")))
    }

    /// A hex id of exactly `len` bytes, or empty (no id).
    fn id(&mut self, number: u32, len: usize) -> Result<()> {
        let offset = self.lex.offset();
        if self.lex.peek() != Next::String {
            return self.lex.unexpected("a hex id string").map_err(Into::into);
        }
        self.scratch.clear();
        let text = match self.lex.string(&mut self.scratch)? {
            Some(s) => s,
            None => &self.scratch[..],
        };
        if text.is_empty() {
            return Ok(());
        }
        if text.len() != 2 * len {
            let got = text.len();
            return self.fail_at(
                offset,
                format!("expected {} hex digits, got {got}", 2 * len),
            );
        }
        let mut id = [0u8; 16];
        for (i, pair) in text.chunks_exact(2).enumerate() {
            let digit = |b: u8| char::from(b).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => id[i] = (hi * 16 + lo) as u8,
                _ => return self.fail_at(offset, "invalid hex digit in an id".to_string()),
            }
        }
        self.tag(number, LEN);
        self.varint(len as u64);
        self.out.extend_from_slice(&id[..len]);
        Ok(())
    }

    fn tag(&mut self, number: u32, wire_type: u8) {
        self.varint(u64::from(number) << 3 | u64::from(wire_type));
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// Reserves one byte for a length that [`Reader::end`] fills in.
    fn begin(&mut self) -> usize {
        self.out.push(0);
        self.out.len() - 1
    }

    /// Writes the length of what follows `start`, widening its varint (and
    /// moving the content) when it needs more than the byte reserved.
    fn end(&mut self, start: usize) {
        let len = self.out.len() - start - 1;
        if len < 0x80 {
            self.out[start] = len as u8;
            return;
        }
        let mut width = 1;
        while len >> (7 * width) != 0 {
            width += 1;
        }
        let old = self.out.len();
        self.out.resize(old + width - 1, 0);
        self.out.copy_within(start + 1..old, start + width);
        let mut v = len;
        for b in &mut self.out[start..start + width] {
            *b = (v as u8 & 0x7f) | 0x80;
            v >>= 7;
        }
        self.out[start + width - 1] &= 0x7f;
    }
}

/// Go's `base64.StdEncoding`: padded, standard alphabet, lenient about
/// unused trailing bits.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
);
