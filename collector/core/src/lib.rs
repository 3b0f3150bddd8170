//! Tern's core: the data that flows ([`pdata::Batch`], OTLP kept as wire
//! bytes), protobuf walking and splitting ([`wire`]), the OTLP/JSON mapping
//! ([`json`]), bounded channels ([`queue`]), byte-accounted memory limits
//! ([`memory`]), component traits and fan-out
//! ([`component`]), the `google.rpc.Status` error shape ([`status`]) and
//! self-telemetry ([`telemetry`]).

pub mod component;
pub mod json;
pub mod memory;
pub mod pdata;
pub mod queue;
pub mod status;
pub mod telemetry;
pub mod wire;

pub use tern_config::Signal;
