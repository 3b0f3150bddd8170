//! Tern's core: the data that flows ([`pdata::Batch`], OTLP kept as wire
//! bytes, with the [`ack`]s of senders waiting for its export), protobuf
//! validation, walking and splitting ([`wire`]), views of a request's fields
//! and the editor that writes a changed one ([`view`]), the OTLP/JSON mapping
//! ([`json`]), bounded channels ([`queue`]) and the write-ahead log
//! ([`wal`]) a persistent exporter queue keeps its batches in
//! ([`persist`]), byte-accounted memory limits
//! ([`memory`]), component traits and fan-out
//! ([`component`]), what building a component gives the service
//! ([`build`]), the `google.rpc.Status` error shape ([`status`]) and
//! self-telemetry ([`telemetry`]).

pub mod ack;
pub mod auth;
pub mod build;
pub mod component;
pub mod gotext;
pub mod json;
pub mod memory;
pub mod oidc;
pub mod pdata;
pub mod persist;
pub mod queue;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod view;
pub mod wal;
pub mod wire;

pub use tern_config::Signal;

/// Lower-case hex of `bytes` (trace and span ids as OTLP/JSON writes them).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}
