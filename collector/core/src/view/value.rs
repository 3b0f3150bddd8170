//! Attributes (`KeyValue`) and their typed values (`AnyValue`), borrowed
//! from the request; [`Value::encode`] writes one back for the editor.

use bytes::BytesMut;

use super::{FromWire, Repeated, double, message, repeated, string, varint};
use crate::wire::{WireError, put_varint, schema, varint_len, walk_fields};

const KEY: u32 = schema::KEY_VALUE.number("key");
const VALUE: u32 = schema::KEY_VALUE.number("value");
const STRING: u32 = schema::ANY_VALUE.number("string_value");
const BOOL: u32 = schema::ANY_VALUE.number("bool_value");
const INT: u32 = schema::ANY_VALUE.number("int_value");
const DOUBLE: u32 = schema::ANY_VALUE.number("double_value");
const ARRAY: u32 = schema::ANY_VALUE.number("array_value");
const KVLIST: u32 = schema::ANY_VALUE.number("kvlist_value");
const BYTES: u32 = schema::ANY_VALUE.number("bytes_value");
const ARRAY_VALUES: u32 = schema::ARRAY_VALUE.number("values");
const KVLIST_VALUES: u32 = schema::KEY_VALUE_LIST.number("values");

/// An attribute value or log body (`AnyValue`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Value<'a> {
    /// No value set.
    #[default]
    Empty,
    /// `string_value`.
    Str(&'a str),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `bytes_value`.
    Bytes(&'a [u8]),
    /// `array_value`.
    Array(ArrayValue<'a>),
    /// `kvlist_value`.
    KvList(KvList<'a>),
}

impl<'a> FromWire<'a> for Value<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut value = Value::Empty;
        // A oneof: the last member on the wire wins.
        walk_fields(raw, |f| {
            value = match f.number {
                STRING => Value::Str(string(&f)?),
                BOOL => Value::Bool(varint(&f)? != 0),
                INT => Value::Int(varint(&f)? as i64),
                DOUBLE => Value::Double(double(&f)?),
                ARRAY => Value::Array(ArrayValue { raw: message(&f)? }),
                KVLIST => Value::KvList(KvList { raw: message(&f)? }),
                BYTES => Value::Bytes(message(&f)?),
                _ => return Ok(true),
            };
            Ok(true)
        })?;
        Ok(value)
    }
}

impl Value<'_> {
    /// Appends this value as the bytes of an `AnyValue` message (without
    /// its length); an array or kvlist is copied as it is.
    pub fn encode(&self, out: &mut BytesMut) {
        let tag = |out: &mut BytesMut, number: u32, wire_type: u64| {
            put_varint(out, (u64::from(number) << 3) | wire_type)
        };
        let delimited = |out: &mut BytesMut, number: u32, bytes: &[u8]| {
            tag(out, number, 2);
            put_varint(out, bytes.len() as u64);
            out.extend_from_slice(bytes);
        };
        match *self {
            Value::Empty => {}
            Value::Str(s) => delimited(out, STRING, s.as_bytes()),
            Value::Bool(b) => {
                tag(out, BOOL, 0);
                put_varint(out, u64::from(b));
            }
            Value::Int(i) => {
                tag(out, INT, 0);
                put_varint(out, i as u64);
            }
            Value::Double(d) => {
                tag(out, DOUBLE, 1);
                out.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            Value::Bytes(b) => delimited(out, BYTES, b),
            Value::Array(a) => delimited(out, ARRAY, a.raw),
            Value::KvList(k) => delimited(out, KVLIST, k.raw),
        }
    }
}

impl Value<'_> {
    /// Bytes [`Value::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let delimited = |number: u32, len: usize| {
            varint_len(u64::from(number) << 3) + varint_len(len as u64) + len
        };
        match *self {
            Value::Empty => 0,
            Value::Str(s) => delimited(STRING, s.len()),
            Value::Bool(b) => varint_len(u64::from(BOOL) << 3) + varint_len(u64::from(b)),
            Value::Int(i) => varint_len(u64::from(INT) << 3) + varint_len(i as u64),
            Value::Double(_) => varint_len(u64::from(DOUBLE) << 3) + 8,
            Value::Bytes(b) => delimited(BYTES, b.len()),
            Value::Array(a) => delimited(ARRAY, a.raw.len()),
            Value::KvList(k) => delimited(KVLIST, k.raw.len()),
        }
    }
}

/// An `ArrayValue`: values in order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrayValue<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
}

impl<'a> ArrayValue<'a> {
    /// The values.
    pub fn values(&self) -> Repeated<'a, Value<'a>> {
        repeated(self.raw, ARRAY_VALUES)
    }
}

/// A `KeyValueList`: key-value pairs in order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvList<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
}

impl<'a> KvList<'a> {
    /// The pairs.
    pub fn values(&self) -> Attributes<'a> {
        Attributes::new(self.raw, KVLIST_VALUES)
    }
}

/// One attribute (`KeyValue`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attribute<'a> {
    /// `key`.
    pub key: &'a str,
    /// `value` ([`Value::Empty`] when absent).
    pub value: Value<'a>,
}

impl<'a> FromWire<'a> for Attribute<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut attribute = Attribute {
            key: "",
            value: Value::Empty,
        };
        walk_fields(raw, |f| {
            match f.number {
                KEY => attribute.key = string(&f)?,
                VALUE => attribute.value = Value::from_wire(message(&f)?)?,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(attribute)
    }
}

/// The attributes of a message, in wire order; [`Attributes::get`] finds
/// one by key.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    inner: Repeated<'a, Attribute<'a>>,
}

impl<'a> Attributes<'a> {
    /// The attributes in field `number` of the message `raw`.
    pub(super) fn new(raw: &'a [u8], number: u32) -> Attributes<'a> {
        Attributes {
            inner: repeated(raw, number),
        }
    }

    /// The value of the first attribute called `key` (as the Collector's
    /// `Map.Get`), reading values only of the key that matches.
    pub fn get(self, key: &str) -> Result<Option<Value<'a>>, WireError> {
        let number = self.inner.number;
        let mut found = None;
        walk_fields(self.inner.fields.rest(), |f| {
            if f.number != number {
                return Ok(true);
            }
            let kv = message(&f)?;
            if key_of(kv)? != key.as_bytes() {
                return Ok(true);
            }
            found = Some(Attribute::from_wire(kv)?.value);
            Ok(false)
        })?;
        Ok(found)
    }
}

/// The key of an encoded `KeyValue`, as bytes (the last `key` field wins).
#[inline(always)]
pub(super) fn key_of(kv: &[u8]) -> Result<&[u8], WireError> {
    // Fast path for the layout every SDK writes: `key` then `value`, each
    // with a one-byte length, and nothing after.
    const KEY_TAG: u8 = (KEY << 3 | 2) as u8;
    const VALUE_TAG: u8 = (VALUE << 3 | 2) as u8;
    if let [KEY_TAG, len, rest @ ..] = kv
        && *len < 0x80
        && let Some((key, after)) = rest.split_at_checked(usize::from(*len))
        && let [VALUE_TAG, value_len, value @ ..] = after
        && *value_len < 0x80
        && value.len() == usize::from(*value_len)
    {
        return Ok(key);
    }
    any_key_of(kv)
}

/// [`key_of`] for any layout.
fn any_key_of(kv: &[u8]) -> Result<&[u8], WireError> {
    let mut key: &[u8] = &[];
    walk_fields(kv, |f| {
        if f.number == KEY {
            key = message(&f)?;
        }
        Ok(true)
    })?;
    Ok(key)
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<Attribute<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

/// Writes the bytes of a `KeyValue` message (without its length).
pub(super) fn encode_key_value(out: &mut BytesMut, key: &[u8], value: &Value<'_>) {
    put_varint(out, (u64::from(KEY) << 3) | 2);
    put_varint(out, key.len() as u64);
    out.extend_from_slice(key);
    put_varint(out, (u64::from(VALUE) << 3) | 2);
    put_varint(out, value.encoded_len() as u64);
    value.encode(out);
}
