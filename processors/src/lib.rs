//! Tern's processors. `batch`, `probabilistic_sampler` and `tail_sampling` run as one task per pipeline, reading an
//! [`tern_core::queue::InletRx`] and writing an
//! [`tern_core::component::Output`]; `memory_limiter` works at admission
//! (a [`tern_core::memory::MemoryGate`] on the pipeline's entrance) and so
//! has no task in the chain. Each module has its builder, registered by one
//! line in the collector's runtime table (the builders of the samplers are
//! here for now, beside their modules).

pub mod batch;
pub mod memory_limiter;
pub mod probabilistic_sampler;
pub mod tail_sampling;

use tern_config::{Component, ProbabilisticSamplerConfig, TailSamplingConfig};
use tern_core::build::{BuildError, Built, Context};

/// Builds a `probabilistic_sampler` (its code is in
/// [`probabilistic_sampler`]): one task per pipeline listing it.
pub fn build_probabilistic_sampler(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let (config, id, telemetry) = (
        ctx.settings::<ProbabilisticSamplerConfig>(c)?.clone(),
        ctx.id.clone(),
        ctx.telemetry.clone(),
    );
    Ok(Built::stage(move |signal| {
        Box::new(probabilistic_sampler::ProbabilisticSampler::new(
            &id, &config, signal, &telemetry,
        ))
    }))
}

/// Builds a `tail_sampling` processor (its code is in [`tail_sampling`]):
/// one task per pipeline listing it.
pub fn build_tail_sampling(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let (config, id, telemetry) = (
        ctx.settings::<TailSamplingConfig>(c)?.clone(),
        ctx.id.clone(),
        ctx.telemetry.clone(),
    );
    Ok(Built::stage(move |_| {
        Box::new(tail_sampling::TailSampling::new(&id, &config, &telemetry))
    }))
}
