//! Tern's processors. `batch`, `probabilistic_sampler` and `tail_sampling` run as one task per pipeline, reading an
//! [`tern_core::queue::InletRx`] and writing an
//! [`tern_core::component::Output`]; `memory_limiter` works at admission
//! (a [`tern_core::memory::MemoryGate`] on the pipeline's entrance) and so
//! has no task in the chain.

pub mod batch;
pub mod memory_limiter;
pub mod probabilistic_sampler;
pub mod tail_sampling;

use std::sync::Arc;

use tern_config::{ProcessorConfig, Signal};
use tern_core::component::Processor;
use tern_core::telemetry::Telemetry;

/// Builds the task of processor `id` for a pipeline of `signal`; `None`
/// for processors that act at admission (`memory_limiter`).
pub fn build(
    id: &str,
    config: &ProcessorConfig,
    signal: Signal,
    telemetry: &Arc<Telemetry>,
) -> Option<Box<dyn Processor>> {
    match config {
        ProcessorConfig::Batch(c) => Some(Box::new(batch::BatchProcessor::new(
            id, c, signal, telemetry,
        ))),
        ProcessorConfig::MemoryLimiter(_) => None,
        ProcessorConfig::ProbabilisticSampler(c) => Some(Box::new(
            probabilistic_sampler::ProbabilisticSampler::new(id, c, signal, telemetry),
        )),
        ProcessorConfig::TailSampling(c) => {
            Some(Box::new(tail_sampling::TailSampling::new(id, c, telemetry)))
        }
    }
}
