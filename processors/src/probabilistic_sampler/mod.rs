//! `probabilistic_sampler`: keeps a configured share of spans and log
//! records, consistently by trace (the OpenTelemetry Collector's keys,
//! modes and decisions).

pub mod decide;
pub mod threshold;
pub mod tracestate;
