//! Tern's processors. `batch`, `probabilistic_sampler` and `tail_sampling` run as one task per pipeline, reading an
//! [`tern_core::queue::InletRx`] and writing an
//! [`tern_core::component::Output`]; `memory_limiter` works at admission
//! (a [`tern_core::memory::MemoryGate`] on the pipeline's entrance) and so
//! has no task in the chain. Each module has its builder, registered by one
//! line in the collector's runtime table.

pub mod batch;
pub mod memory_limiter;
pub mod probabilistic_sampler;
pub mod tail_sampling;
