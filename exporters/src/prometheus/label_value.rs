//! Attribute values as Prometheus label values, written the way the
//! Collector's `pcommon.Value.AsString` writes them: a string as it is,
//! booleans and integers as text, doubles as JSON numbers (`NaN`,
//! `Infinity`, `-Infinity` for the others), bytes in base64, and arrays and
//! maps as compact JSON (map keys sorted, the last of a repeated key kept,
//! no HTML escaping). An array or map holding a non-finite double gives the
//! empty string, as Go's JSON encoder fails on it and the Collector then
//! writes nothing.
//!
//! The text grows linearly with the value, and every label value is capped
//! at [`MAX_LABEL_VALUE_BYTES`]: rendering stops at the cap, so a huge or
//! deeply nested attribute costs at most the cap to turn into a label.

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

/// The longest label value Tern writes, in bytes. Longer values are cut at
/// the last whole character that fits, and counted.
pub const MAX_LABEL_VALUE_BYTES: usize = 2048;

/// A label value, at most [`MAX_LABEL_VALUE_BYTES`] long.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelValue {
    /// The text.
    pub text: String,
    /// Whether the value was longer than the cap and was cut.
    pub truncated: bool,
}

impl LabelValue {
    /// `text`, cut to the cap.
    pub fn capped(text: &str) -> LabelValue {
        let mut out = Capped::default();
        let _ = out.push(text);
        out.done()
    }

    /// Appends `;` and `other` (attributes whose names collide), keeping the cap.
    pub fn join(&mut self, other: &LabelValue) {
        let mut out = Capped {
            text: std::mem::take(&mut self.text),
            truncated: self.truncated || other.truncated,
        };
        let _ = out.push(";").and_then(|()| out.push(&other.text));
        *self = out.done();
    }
}

/// The cap was reached: stop writing.
struct Full;

/// A string that refuses to grow past the cap.
#[derive(Default)]
struct Capped {
    text: String,
    truncated: bool,
}

impl Capped {
    fn push(&mut self, s: &str) -> Result<(), Full> {
        let room = MAX_LABEL_VALUE_BYTES - self.text.len();
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        self.text.push_str(&s[..s.floor_char_boundary(room)]);
        self.truncated = true;
        Err(Full)
    }

    fn done(self) -> LabelValue {
        LabelValue {
            text: self.text,
            truncated: self.truncated,
        }
    }
}

/// The label value of an attribute value (see the module docs).
pub fn label_value(v: Option<&AnyValue>) -> LabelValue {
    use any_value::Value;
    let mut out = Capped::default();
    let _ = match v.and_then(|v| v.value.as_ref()) {
        // String-table references only mean something inside profiles.
        None | Some(Value::StringValueStrindex(_)) => Ok(()),
        Some(Value::StringValue(s)) => out.push(s),
        Some(Value::DoubleValue(d)) if d.is_nan() => out.push("NaN"),
        Some(Value::DoubleValue(d)) if d.is_infinite() => {
            out.push(if *d > 0.0 { "Infinity" } else { "-Infinity" })
        }
        Some(Value::BytesValue(b)) => base64(b, &mut out),
        Some(v @ (Value::ArrayValue(_) | Value::KvlistValue(_))) if !finite(v) => Ok(()),
        Some(v) => json(Some(v), &mut out),
    };
    out.done()
}

/// Whether every double inside `v` is finite (JSON can hold it).
fn finite(v: &any_value::Value) -> bool {
    use any_value::Value;
    let inner = |v: Option<&AnyValue>| v.and_then(|v| v.value.as_ref()).is_none_or(finite);
    match v {
        Value::DoubleValue(d) => d.is_finite(),
        Value::ArrayValue(a) => a.values.iter().all(|v| inner(Some(v))),
        Value::KvlistValue(kv) => kv.values.iter().all(|p| inner(p.value.as_ref())),
        _ => true,
    }
}

/// Writes `v` as JSON (Go's `encoding/json` without HTML escaping).
fn json(v: Option<&any_value::Value>, out: &mut Capped) -> Result<(), Full> {
    use any_value::Value;
    match v {
        None | Some(Value::StringValueStrindex(_)) => out.push("null"),
        Some(Value::StringValue(s)) => json_string(s, out),
        Some(Value::BoolValue(b)) => out.push(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => out.push(&i.to_string()),
        Some(Value::DoubleValue(d)) => {
            let mut number = String::new();
            tern_core::gotext::double(*d, &mut number);
            out.push(&number)
        }
        Some(Value::BytesValue(b)) => {
            out.push("\"")?;
            base64(b, out)?;
            out.push("\"")
        }
        Some(Value::ArrayValue(a)) => {
            out.push("[")?;
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(",")?;
                }
                json(item.value.as_ref(), out)?;
            }
            out.push("]")
        }
        Some(Value::KvlistValue(kv)) => {
            // Sorted by key; a stable sort keeps a repeated key's entries in
            // order, and the last one wins (as in a Go map built in order).
            let mut entries: Vec<&KeyValue> = kv.values.iter().collect();
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            out.push("{")?;
            let mut first = true;
            for (i, entry) in entries.iter().enumerate() {
                if entries.get(i + 1).is_some_and(|next| next.key == entry.key) {
                    continue;
                }
                if !first {
                    out.push(",")?;
                }
                first = false;
                json_string(&entry.key, out)?;
                out.push(":")?;
                json(entry.value.as_ref().and_then(|v| v.value.as_ref()), out)?;
            }
            out.push("}")
        }
    }
}

/// A JSON string: `"` and `\` escaped, control characters as `\n`, `\r`,
/// `\t`, `\b`, `\f` or `\u00XX`, and U+2028 / U+2029 escaped.
fn json_string(s: &str, out: &mut Capped) -> Result<(), Full> {
    out.push("\"")?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escaped: String = match c {
            '"' => "\\\"".into(),
            '\\' => "\\\\".into(),
            '\n' => "\\n".into(),
            '\r' => "\\r".into(),
            '\t' => "\\t".into(),
            '\u{8}' => "\\b".into(),
            '\u{c}' => "\\f".into(),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                format!("\\u{:04x}", u32::from(c))
            }
            _ => continue,
        };
        out.push(&s[start..i])?;
        out.push(&escaped)?;
        start = i + c.len_utf8();
    }
    out.push(&s[start..])?;
    out.push("\"")
}

/// Standard base64 of `bytes`, encoding no more of them than the cap can show.
fn base64(bytes: &[u8], out: &mut Capped) -> Result<(), Full> {
    // Each 3 bytes become 4 characters, so a prefix that is a multiple of 3
    // encodes to a prefix of the whole encoding.
    let shown = bytes.len().min((MAX_LABEL_VALUE_BYTES / 4 + 1) * 3);
    out.push(&base64::engine::general_purpose::STANDARD.encode(&bytes[..shown]))?;
    if shown < bytes.len() {
        out.truncated = true;
        return Err(Full);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn any(v: Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    fn text(v: Value) -> String {
        let out = label_value(Some(&any(v)));
        assert!(!out.truncated);
        out.text
    }

    fn array(values: Vec<Value>) -> Value {
        Value::ArrayValue(ArrayValue {
            values: values.into_iter().map(any).collect(),
        })
    }

    fn map(pairs: Vec<(&str, Value)>) -> Value {
        Value::KvlistValue(KeyValueList {
            values: pairs
                .into_iter()
                .map(|(k, v)| KeyValue {
                    key: k.into(),
                    value: Some(any(v)),
                    ..Default::default()
                })
                .collect(),
        })
    }

    #[test]
    fn scalars_are_written_as_the_collector_writes_them() {
        assert_eq!(text(Value::StringValue("a \"b\"".into())), "a \"b\"");
        assert_eq!(text(Value::BoolValue(true)), "true");
        assert_eq!(text(Value::IntValue(-42)), "-42");
        assert_eq!(text(Value::DoubleValue(2.5)), "2.5");
        assert_eq!(text(Value::DoubleValue(1_000_000.0)), "1000000");
        assert_eq!(text(Value::DoubleValue(1e21)), "1e+21");
        assert_eq!(text(Value::DoubleValue(1.5e-7)), "1.5e-7");
        assert_eq!(text(Value::DoubleValue(0.000001)), "0.000001");
        assert_eq!(text(Value::DoubleValue(f64::NAN)), "NaN");
        assert_eq!(text(Value::DoubleValue(f64::INFINITY)), "Infinity");
        assert_eq!(text(Value::DoubleValue(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(
            text(Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])),
            "3q2+7w=="
        );
        assert_eq!(label_value(None).text, "");
    }

    #[test]
    fn arrays_and_maps_are_compact_json() {
        let v = array(vec![
            Value::StringValue("x\"y\\z\n<&>\u{1}\u{2028}é".into()),
            Value::IntValue(1),
            Value::DoubleValue(1.5),
            Value::BoolValue(false),
            Value::BytesValue(vec![1, 2]),
            array(vec![]),
            map(vec![]),
        ]);
        assert_eq!(
            text(v),
            r#"["x\"y\\z\n<&>\u0001\u2028é",1,1.5,false,"AQI=",[],{}]"#
        );
        let v = map(vec![
            ("b", Value::IntValue(1)),
            ("a", array(vec![Value::StringValue("s".into())])),
            ("b", Value::IntValue(2)),
        ]);
        assert_eq!(
            text(v),
            r#"{"a":["s"],"b":2}"#,
            "keys sorted, last repeat wins"
        );
        let with_empty = Value::ArrayValue(ArrayValue {
            values: vec![AnyValue { value: None }],
        });
        assert_eq!(text(with_empty), "[null]");
        let nan = array(vec![Value::IntValue(1), Value::DoubleValue(f64::NAN)]);
        assert_eq!(text(nan), "", "Go's JSON encoder refuses NaN");
    }

    /// Each level adds two bytes: the text is linear in the depth (it
    /// doubled with every level before).
    #[test]
    fn nested_arrays_grow_linearly() {
        let mut v = Value::StringValue("x".into());
        for _ in 0..30 {
            v = array(vec![v]);
        }
        let out = text(v);
        assert_eq!(out.len(), 3 + 2 * 30);
        assert_eq!(out, format!("{}\"x\"{}", "[".repeat(30), "]".repeat(30)));
    }

    #[test]
    fn values_are_cut_at_the_cap_on_a_character_boundary() {
        let long = "é".repeat(MAX_LABEL_VALUE_BYTES);
        let out = label_value(Some(&any(Value::StringValue(long))));
        assert!(out.truncated);
        assert_eq!(out.text.len(), MAX_LABEL_VALUE_BYTES);
        let exact = "a".repeat(MAX_LABEL_VALUE_BYTES);
        assert!(!LabelValue::capped(&exact).truncated);
        let out = label_value(Some(&any(Value::BytesValue(vec![7; 1 << 20]))));
        assert!(out.truncated);
        assert_eq!(out.text.len(), MAX_LABEL_VALUE_BYTES);
        // A wide and deep value stops at the cap.
        let mut v = array(
            (0..100_000)
                .map(|_| Value::StringValue("abcdef".into()))
                .collect(),
        );
        for _ in 0..60 {
            v = map(vec![("k", v)]);
        }
        let out = label_value(Some(&any(v)));
        assert!(out.truncated);
        assert_eq!(out.text.len(), MAX_LABEL_VALUE_BYTES);
        let mut joined = LabelValue::capped(&exact[1..]);
        joined.join(&LabelValue::capped("bc"));
        assert!(joined.truncated);
        assert_eq!(joined.text.len(), MAX_LABEL_VALUE_BYTES);
        assert!(joined.text.ends_with("a;"));
    }
}
