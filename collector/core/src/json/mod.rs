//! The OTLP/JSON mapping, both ways, as the OTLP specification and the
//! OpenTelemetry Collector's pdata JSON code define it. Only used where JSON
//! is asked for (the HTTP receiver, the `file`, `debug` and `otlphttp`
//! exporters); the protobuf path never comes here.
//!
//! - [`schema`]: the OTLP messages as one table (names, numbers, types);
//! - [`lexer`]: a strict JSON scanner;
//! - [`read`]: JSON to protobuf wire bytes ([`json_to_wire`]), accepting
//!   what the Collector accepts and refusing, with the field's path,
//!   whatever it cannot represent: nothing is silently dropped;
//! - [`write`]: protobuf wire bytes to JSON ([`wire_to_json`]), the single
//!   JSON writer, whose output [`json_to_wire`] reads back to the same
//!   content (NaN and infinities included).
//!
//! Neither direction builds message structs: both walk their input once,
//! guided by the table. prost re-encodes a request only in the rare case
//! that its fields are not in the usual shape (a repeated JSON key, a
//! protobuf field sent twice), which gives exactly protobuf's merge rules.

mod lexer;
mod read;
mod schema;
mod write;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use prost::Message;

use crate::Signal;

/// How many messages deep a request may nest (the request itself is level
/// 0), in both directions: prost's own decoding limit, so whatever one
/// accepts the other does too.
pub const MAX_DEPTH: usize = 100;

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The JSON does not follow the OTLP mapping.
    #[error("invalid OTLP JSON: {0}")]
    Json(PathError),
    /// The protobuf could not be decoded.
    #[error("malformed protobuf: {0}")]
    Proto(#[from] prost::DecodeError),
    /// The data has no OTLP/JSON form (an id of the wrong length).
    #[error("cannot be written as OTLP JSON: {0}")]
    Unrepresentable(String),
}

/// Where in the JSON body a problem is, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// Byte offset into the body.
    pub offset: usize,
    /// Field names and array indexes from the innermost out.
    path: Vec<Segment>,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Field(&'static str),
    Index(usize),
}

impl PathError {
    /// The same error, one level further out.
    fn within(mut self, segment: Segment) -> PathError {
        self.path.push(segment);
        self
    }

    /// The field path, such as `resourceSpans[0].scopeSpans[0].spans[3].traceId`.
    pub fn path(&self) -> String {
        let mut text = String::new();
        for segment in self.path.iter().rev() {
            match segment {
                Segment::Field(name) if text.is_empty() => text.push_str(name),
                Segment::Field(name) => {
                    text.push('.');
                    text.push_str(name);
                }
                Segment::Index(i) => text.push_str(&format!("[{i}]")),
            }
        }
        text
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} (at byte {})", self.reason, self.offset)
        } else {
            let path = self.path();
            write!(f, "{path}: {} (at byte {})", self.reason, self.offset)
        }
    }
}

fn root(signal: Signal) -> &'static schema::Msg {
    match signal {
        Signal::Traces => &schema::TRACES_REQUEST,
        Signal::Metrics => &schema::METRICS_REQUEST,
        Signal::Logs => &schema::LOGS_REQUEST,
    }
}

/// The request in `wire` decoded and encoded again by prost: each field
/// once, repeated fields in one run, repeated singular fields merged as
/// protobuf says, unknown fields dropped.
fn canonical(signal: Signal, wire: &[u8]) -> Result<Vec<u8>, prost::DecodeError> {
    Ok(match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(wire)?.encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceRequest::decode(wire)?.encode_to_vec(),
        Signal::Logs => ExportLogsServiceRequest::decode(wire)?.encode_to_vec(),
    })
}

/// Parses an OTLP JSON export request into protobuf wire bytes.
pub fn json_to_wire(signal: Signal, body: &[u8]) -> Result<Bytes, JsonError> {
    let (wire, repeated_keys) = read::transcode(root(signal), body).map_err(JsonError::Json)?;
    if repeated_keys {
        return Ok(Bytes::from(canonical(signal, &wire)?));
    }
    Ok(Bytes::from(wire))
}

/// Writes an encoded export request as one line of OTLP JSON (no newline)
/// at the end of `out`; on error `out` is left as it was.
pub fn wire_to_json(signal: Signal, wire: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    let start = out.len();
    if write::request(root(signal), wire, out).is_ok() {
        return Ok(());
    }
    out.truncate(start);
    let wire = canonical(signal, wire)?;
    write::request(root(signal), &wire, out).map_err(|write::Stop(reason)| {
        out.truncate(start);
        JsonError::Unrepresentable(reason)
    })
}
