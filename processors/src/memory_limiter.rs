//! The `memory_limiter` processor. Unlike the Collector's, it does not watch
//! the heap: it counts the bytes of telemetry the pipelines hold (from
//! admission until the last exporter is done with them) and refuses new
//! requests at the receiver, with a retryable error, while that count is
//! above `limit - spike`. One limiter id is one budget, shared by every
//! pipeline that lists it. This module computes the limits and runs the
//! periodic check; the accounting is [`tern_core::memory`].

use std::sync::Arc;
use std::time::Duration;

use tern_config::MemoryLimiterConfig;
use tern_core::memory::{MemoryGate, cgroup_memory_limit};
use tern_core::telemetry::Telemetry;

const MIB: u64 = 1024 * 1024;

/// Total memory of the machine, from /proc/meminfo.
fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `(limit, spike)` in bytes for `config`; percentages apply to the
/// container's memory limit, or the machine's memory when none is set.
pub fn limits(config: &MemoryLimiterConfig) -> (usize, usize) {
    let (limit, spike) = if config.limit_mib > 0 {
        let limit = config.limit_mib * MIB;
        let spike = if config.spike_limit_mib > 0 {
            config.spike_limit_mib * MIB
        } else {
            limit / 5
        };
        (limit, spike)
    } else {
        let total = cgroup_memory_limit().or_else(total_memory).unwrap_or(0);
        let limit = total / 100 * u64::from(config.limit_percentage);
        let spike = if config.spike_limit_percentage > 0 {
            total / 100 * u64::from(config.spike_limit_percentage)
        } else {
            limit / 5
        };
        (limit, spike)
    };
    (
        usize::try_from(limit).unwrap_or(usize::MAX),
        usize::try_from(spike).unwrap_or(usize::MAX),
    )
}

/// Builds the gate for limiter `id`.
pub fn gate(id: &str, config: &MemoryLimiterConfig, telemetry: &Telemetry) -> Arc<MemoryGate> {
    let (limit, spike) = limits(config);
    tracing::info!(
        processor = id,
        limit_mib = limit / MIB as usize,
        spike_mib = spike / MIB as usize,
        "memory limiter: refusing new data above {} MiB held",
        limit.saturating_sub(spike) / MIB as usize
    );
    MemoryGate::new(id, limit, spike, telemetry)
}

/// Every `check_interval` until `stop` turns true: re-reads a
/// percentage-based limit and logs once per interval while requests are
/// being refused.
pub async fn supervise(
    gate: Arc<MemoryGate>,
    config: MemoryLimiterConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval: Duration = config.check_interval.0;
    let mut seen = gate.refusals();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if config.limit_percentage > 0 {
            let (limit, spike) = limits(&config);
            gate.set_limits(limit, spike);
        }
        let now = gate.refusals();
        if now > seen {
            tracing::warn!(
                processor = gate.id(),
                refused_requests = now - seen,
                used_mib = gate.used() / MIB as usize,
                soft_limit_mib = gate.soft_limit() / MIB as usize,
                reason = "memory limit",
                "refused requests in the last {interval:?}; clients were told to retry"
            );
        }
        seen = now;
    }
}

/// Builds a `memory_limiter`: one gate for every pipeline listing it,
/// and its supervisor beside the pipelines.
pub fn build(
    ctx: &tern_core::build::Context<'_>,
    c: &tern_config::Component,
) -> Result<tern_core::build::Built, tern_core::build::BuildError> {
    let config = ctx.settings::<MemoryLimiterConfig>(c)?.clone();
    let limiter = gate(&ctx.id, &config, ctx.telemetry);
    let supervised = limiter.clone();
    Ok(tern_core::build::Built {
        gate: Some(limiter),
        beside: vec![(
            format!("processor {} supervisor", ctx.id),
            Box::new(move |stop| Box::pin(supervise(supervised, config, stop))),
        )],
        ..tern_core::build::Built::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_config::GoDuration;

    #[test]
    fn spike_defaults_to_a_fifth_of_the_limit() {
        let c = MemoryLimiterConfig {
            limit_mib: 100,
            ..MemoryLimiterConfig::default()
        };
        assert_eq!(limits(&c), (100 << 20, 20 << 20));
        let c = MemoryLimiterConfig {
            limit_mib: 100,
            spike_limit_mib: 10,
            check_interval: GoDuration(Duration::from_secs(1)),
            ..MemoryLimiterConfig::default()
        };
        assert_eq!(limits(&c), (100 << 20, 10 << 20));
    }

    #[test]
    fn percentages_use_the_container_or_machine_memory() {
        let c = MemoryLimiterConfig {
            limit_percentage: 50,
            spike_limit_percentage: 10,
            ..MemoryLimiterConfig::default()
        };
        let total = cgroup_memory_limit().or_else(total_memory).unwrap();
        let (limit, spike) = limits(&c);
        assert_eq!(limit as u64, total / 100 * 50);
        assert_eq!(spike as u64, total / 100 * 10);
    }
}
