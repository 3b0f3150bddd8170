//! The strings the Collector v0.161 hashes onto the ring for the keys that
//! are not plain fields, computed the way it computes them, so that the
//! same data picks the same backend:
//!
//! - `resource`: `resource/<hex>`, the 64-bit FNV-1a of the resource's
//!   attribute hash (its `identity.OfResource`);
//! - `streamID`: `stream/<hex>`, the FNV-1a of the resource's attribute
//!   hash, the scope's name, version and attribute hash, the metric's
//!   name, unit, type, monotonicity and temporality, and the data point's
//!   attribute hash (its `identity.OfStream`);
//! - `service` on traces: `service.name=<value as text>|`.
//!
//! An attribute hash ([`map_hash`], its `pdatautil.MapHash`) is 16 bytes:
//! the keys sorted, each written with a marker byte and followed by its
//! (first) value in a typed encoding, hashed with XXH64 twice (the second
//! time with one byte more); no attributes hash to 16 zero bytes. A value
//! as text ([`as_string`]) is pdata's `AsString`.

use std::fmt::Write as _;

use tern_core::view::{Attributes, Metric, MetricType, Value};
use tern_core::wire::WireError;

const EXTRA: u8 = 0xf3;
const KEY: u8 = 0xf4;
const EMPTY: u8 = 0xf5;
const BYTES: u8 = 0xf6;
const STR: u8 = 0xf7;
const TRUE: u8 = 0xf8;
const FALSE: u8 = 0xf9;
const INT: u8 = 0xfa;
const DOUBLE: u8 = 0xfb;
const MAP: u8 = 0xfc;
const MAP_END: u8 = 0xfd;
const SLICE: u8 = 0xfe;
const SLICE_END: u8 = 0xff;

/// The 16-byte hash of a set of attributes (`None`: no message, hashed as
/// no attributes).
pub fn map_hash(attributes: Option<Attributes<'_>>) -> Result<[u8; 16], WireError> {
    let mut buf = Vec::with_capacity(256);
    let mut any = false;
    if let Some(a) = attributes {
        any = write_map(a, &mut buf)?;
    }
    if !any {
        return Ok([0; 16]);
    }
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&xxh64(&buf).to_le_bytes());
    buf.push(EXTRA);
    out[8..].copy_from_slice(&xxh64(&buf).to_le_bytes());
    Ok(out)
}

/// Writes a map's keys in order, each with the first value of that key
/// (a key given twice is written twice); false when it has none.
fn write_map(attributes: Attributes<'_>, out: &mut Vec<u8>) -> Result<bool, WireError> {
    let mut pairs = Vec::new();
    for a in attributes {
        let a = a?;
        pairs.push((a.key, a.value));
    }
    // Stable: the first of equal keys stays first, and its value is the
    // one every copy of the key gets (the Collector's `Map.Get`).
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut i = 0;
    while i < pairs.len() {
        let (key, value) = pairs[i];
        let same = pairs[i..].iter().take_while(|(k, _)| *k == key).count();
        for _ in 0..same {
            out.push(KEY);
            out.extend_from_slice(key.as_bytes());
            write_value(&value, out)?;
        }
        i += same;
    }
    Ok(!pairs.is_empty())
}

fn write_value(value: &Value<'_>, out: &mut Vec<u8>) -> Result<(), WireError> {
    match value {
        Value::Str(s) => {
            out.push(STR);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
        Value::Int(i) => {
            out.push(INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Double(d) => {
            out.push(DOUBLE);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::KvList(k) => {
            out.push(MAP);
            write_map(k.values(), out)?;
            out.push(MAP_END);
        }
        Value::Array(a) => {
            out.push(SLICE);
            for v in a.values() {
                write_value(&v?, out)?;
            }
            out.push(SLICE_END);
        }
        Value::Bytes(b) => {
            out.push(BYTES);
            out.extend_from_slice(b);
        }
        Value::Empty => out.push(EMPTY),
    }
    Ok(())
}

/// `resource/<hex>` of a resource's attribute hash.
pub fn resource(attributes: Option<Attributes<'_>>, out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut h = Fnv::new();
    h.write(&map_hash(attributes)?);
    hex_key("resource", h.0, out);
    Ok(())
}

/// FNV-1a (64 bits) of the part of a stream shared by a metric's points:
/// resource and scope (given as their attribute hashes and the scope's
/// name and version) and the metric's identity.
pub fn metric_hash(
    resource: &[u8; 16],
    scope: (&str, &str, &[u8; 16]),
    metric: &Metric<'_>,
) -> u64 {
    let mut h = Fnv::new();
    h.write(resource);
    h.write(scope.0.as_bytes());
    h.write(scope.1.as_bytes());
    h.write(scope.2);
    h.write(metric.name.as_bytes());
    h.write(metric.unit.as_bytes());
    let (ty, monotonic, temporality) = match metric.metric_type {
        MetricType::Empty => (0u8, false, 0),
        MetricType::Gauge => (1, false, 0),
        MetricType::Sum => (2, metric.is_monotonic, metric.aggregation_temporality),
        MetricType::Histogram => (3, true, metric.aggregation_temporality),
        MetricType::ExponentialHistogram => (4, true, metric.aggregation_temporality),
        MetricType::Summary => (5, false, 0),
    };
    // A Go `byte(int32)`: the low byte.
    h.write(&[ty, u8::from(monotonic), temporality.to_le_bytes()[0]]);
    h.0
}

/// `stream/<hex>` of a data point of the metric hashed by [`metric_hash`].
pub fn stream(metric: u64, point: Attributes<'_>, out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut h = Fnv(metric);
    h.write(&map_hash(Some(point))?);
    hex_key("stream", h.0, out);
    Ok(())
}

fn hex_key(kind: &str, hash: u64, out: &mut Vec<u8>) {
    out.clear();
    let mut s = String::with_capacity(kind.len() + 17);
    let _ = write!(s, "{kind}/{hash:x}");
    out.extend_from_slice(s.as_bytes());
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn read64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

/// XXH64 with seed 0.
pub fn xxh64(input: &[u8]) -> u64 {
    let mut rest = input;
    let mut h = if input.len() >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        while rest.len() >= 32 {
            for (i, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, read64(&rest[i * 8..]));
            }
            rest = &rest[32..];
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = merge(h, lane);
        }
        h
    } else {
        P5
    };
    h = h.wrapping_add(input.len() as u64);
    while rest.len() >= 8 {
        h ^= round(0, read64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        let mut a = [0u8; 4];
        a.copy_from_slice(&rest[..4]);
        h ^= u64::from(u32::from_le_bytes(a)).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for b in rest {
        h ^= u64::from(*b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// A value as text, as pdata's `AsString` writes it: strings as they are,
/// numbers as Go (and ES6) print them, bytes in base64, arrays and maps as
/// JSON.
pub fn as_string(value: &Value<'_>, out: &mut String) -> Result<(), WireError> {
    match value {
        Value::Empty => {}
        Value::Str(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Double(d) => tern_core::gotext::double(*d, out),
        Value::Bytes(b) => {
            use base64::Engine;
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
        }
        Value::Array(_) | Value::KvList(_) => {
            let mut json = String::new();
            // A NaN or infinity makes Go's JSON encoder fail: no text.
            if write_json(value, &mut json)? {
                out.push_str(&json);
            }
        }
    }
    Ok(())
}

/// A value as Go's JSON encoder writes its raw form (maps with sorted keys,
/// the last of equal keys winning; HTML characters not escaped); false
/// when it cannot (a NaN or infinite double).
fn write_json(value: &Value<'_>, out: &mut String) -> Result<bool, WireError> {
    match value {
        Value::Empty => out.push_str("null"),
        Value::Str(s) => json_string(s, out),
        Value::Bool(_) | Value::Int(_) => as_string(value, out)?,
        Value::Double(d) if !d.is_finite() => return Ok(false),
        Value::Double(d) => tern_core::gotext::double(*d, out),
        Value::Bytes(b) => {
            use base64::Engine;
            out.push('"');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push('"');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.values().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !write_json(&v?, out)? {
                    return Ok(false);
                }
            }
            out.push(']');
        }
        Value::KvList(k) => {
            let mut pairs: Vec<(&str, Value<'_>)> = Vec::new();
            for a in k.values() {
                let a = a?;
                match pairs.iter_mut().find(|(key, _)| *key == a.key) {
                    Some(p) => p.1 = a.value,
                    None => pairs.push((a.key, a.value)),
                }
            }
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(key, out);
                out.push(':');
                if !write_json(v, out)? {
                    return Ok(false);
                }
            }
            out.push('}');
        }
    }
    Ok(true)
}

/// A JSON string as Go writes it without HTML escaping.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
    };
    use opentelemetry_proto::tonic::metrics::v1::Metric as PMetric;
    use opentelemetry_proto::tonic::metrics::v1::{
        AggregationTemporality, NumberDataPoint, Sum, metric,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    use tern_core::view::{self, FromWire};

    use super::*;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn resource_key(attributes: Vec<KeyValue>) -> String {
        let raw = Resource {
            attributes,
            ..Default::default()
        }
        .encode_to_vec();
        let r = view::Resource::from_wire(&raw).unwrap();
        let mut out = Vec::new();
        resource(Some(r.attributes()), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Keys the Collector's code (`pdatautil.MapHash`, `identity`) gives
    /// for the same attributes, in any order.
    #[test]
    fn resource_keys_are_the_collectors() {
        assert_eq!(resource_key(vec![]), "resource/88201fb960ff6465");
        assert_eq!(
            resource_key(vec![
                kv("pid", any_value::Value::IntValue(42)),
                kv("service.name", s("checkout")),
            ]),
            "resource/925d6a02299f053f"
        );
        let list = ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(s("a")),
                },
                AnyValue {
                    value: Some(any_value::Value::IntValue(7)),
                },
            ],
        };
        let nested = KeyValueList {
            values: vec![kv("k", s("v"))],
        };
        assert_eq!(
            resource_key(vec![
                kv("x", any_value::Value::DoubleValue(1.5)),
                kv("b", any_value::Value::BoolValue(true)),
                kv("raw", any_value::Value::BytesValue(vec![1, 2, 3])),
                kv("list", any_value::Value::ArrayValue(list)),
                kv("nested", any_value::Value::KvlistValue(nested)),
                KeyValue {
                    key: "nothing".into(),
                    ..Default::default()
                },
            ]),
            "resource/986881c196af9ac0"
        );
    }

    #[test]
    fn stream_keys_are_the_collectors() {
        let resource = Resource {
            attributes: vec![kv("service.name", s("db"))],
            ..Default::default()
        }
        .encode_to_vec();
        let scope = InstrumentationScope {
            name: "lib".into(),
            version: "1.0".into(),
            attributes: vec![kv("a", s("b"))],
            ..Default::default()
        }
        .encode_to_vec();
        let point = NumberDataPoint {
            attributes: vec![kv("host", s("h1"))],
            ..Default::default()
        };
        let m = PMetric {
            name: "requests".into(),
            unit: "1".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![point.clone()],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        }
        .encode_to_vec();
        let r = view::Resource::from_wire(&resource).unwrap();
        let sc = view::Scope::from_wire(&scope).unwrap();
        let m = Metric::from_wire(&m).unwrap();
        let hash = metric_hash(
            &map_hash(Some(r.attributes())).unwrap(),
            (
                sc.name,
                sc.version,
                &map_hash(Some(sc.attributes())).unwrap(),
            ),
            &m,
        );
        let p = m.data_points().next().unwrap().unwrap();
        let mut out = Vec::new();
        stream(hash, p.attributes(), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "stream/dbb883598e2b11a3");
    }

    #[test]
    fn maps_read_as_go_json() {
        let raw = KeyValue {
            key: "m".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![
                        kv("z", s("<&>")),
                        kv("a", any_value::Value::DoubleValue(0.5)),
                    ],
                })),
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let a = view::Attribute::from_wire(&raw).unwrap();
        let mut text = String::new();
        as_string(&a.value, &mut text).unwrap();
        assert_eq!(text, r#"{"a":0.5,"z":"<&>"}"#);
    }

    #[test]
    fn xxh64_matches_the_reference_vectors() {
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc"), 0x44BC_2CF5_AD77_0999);
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition"),
            0xFBCE_A83C_8A37_8BF1
        );
    }
}
