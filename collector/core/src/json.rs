//! The OTLP/JSON mapping: JSON export requests to wire bytes and back, via the
//! opentelemetry-proto message types (hex ids, integer enums, 64-bit integers
//! as strings or numbers, lowerCamelCase names, unknown fields ignored).
//! Only used where JSON is asked for; the protobuf path never comes here.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use prost::Message;

use crate::Signal;

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The JSON does not follow the OTLP mapping.
    #[error("invalid OTLP JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The protobuf could not be decoded.
    #[error("malformed protobuf: {0}")]
    Proto(#[from] prost::DecodeError),
}

/// Parses an OTLP JSON export request into protobuf wire bytes.
pub fn json_to_wire(signal: Signal, body: &[u8]) -> Result<Bytes, JsonError> {
    Ok(Bytes::from(match signal {
        Signal::Traces => {
            serde_json::from_slice::<ExportTraceServiceRequest>(body)?.encode_to_vec()
        }
        Signal::Metrics => {
            serde_json::from_slice::<ExportMetricsServiceRequest>(body)?.encode_to_vec()
        }
        Signal::Logs => serde_json::from_slice::<ExportLogsServiceRequest>(body)?.encode_to_vec(),
    }))
}

/// Writes an encoded export request as one line of OTLP JSON (no newline),
/// leaving out fields that hold their default value, as the OpenTelemetry
/// Collector does (members of a `oneof` and optional numbers are kept).
pub fn wire_to_json(signal: Signal, wire: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    let mut value = match signal {
        Signal::Traces => serde_json::to_value(ExportTraceServiceRequest::decode(wire)?)?,
        Signal::Metrics => serde_json::to_value(ExportMetricsServiceRequest::decode(wire)?)?,
        Signal::Logs => serde_json::to_value(ExportLogsServiceRequest::decode(wire)?)?,
    };
    prune_defaults(&mut value);
    serde_json::to_writer(out, &value)?;
    Ok(())
}

/// Keys whose zero value carries meaning: `oneof` members and optional fields.
const KEEP_ZERO: &[&str] = &[
    "asInt",
    "asDouble",
    "intValue",
    "doubleValue",
    "boolValue",
    "stringValue",
    "bytesValue",
    "sum",
    "min",
    "max",
];

fn is_default(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || s == "0",
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

fn prune_defaults(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|k, v| !is_default(v) || (KEEP_ZERO.contains(&k.as_str()) && !v.is_null()));
            map.values_mut().for_each(prune_defaults);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(prune_defaults),
        _ => {}
    }
}
