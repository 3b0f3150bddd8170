//! Tern's processors. Each is built from its typed config and runs as one
//! task per pipeline, reading an [`tern_core::queue::InletRx`] and writing an
//! [`tern_core::component::Output`].

pub mod batch;

use std::sync::Arc;

use tern_config::{ProcessorConfig, Signal};
use tern_core::component::Processor;
use tern_core::telemetry::Telemetry;

/// Builds the processor `id` for a pipeline of `signal`.
pub fn build(
    id: &str,
    config: &ProcessorConfig,
    signal: Signal,
    telemetry: &Arc<Telemetry>,
) -> Box<dyn Processor> {
    match config {
        ProcessorConfig::Batch(c) => Box::new(batch::BatchProcessor::new(id, c, signal, telemetry)),
    }
}
