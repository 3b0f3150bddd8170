//! The `memory_limiter` processor's settings and their rules.

use std::time::Duration;

use serde::Deserialize;

use super::{Check, ComponentConfig};
use crate::ConfigError;
use crate::types::GoDuration;

/// `processors.memory_limiter`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    /// How often a percentage-based limit is re-read from the cgroup and the
    /// limiter's state is logged (required, as in the Collector).
    pub check_interval: GoDuration,
    /// Hard limit in MiB on the bytes held by pipelines.
    pub limit_mib: u64,
    /// Headroom in MiB below the limit; new data is refused above
    /// `limit - spike` (default 20% of the limit).
    pub spike_limit_mib: u64,
    /// Limit as a percentage of the container's memory limit (cgroup).
    pub limit_percentage: u32,
    /// Spike headroom as a percentage of the container's memory limit.
    pub spike_limit_percentage: u32,
}

impl Default for MemoryLimiterConfig {
    fn default() -> Self {
        MemoryLimiterConfig {
            // No default, as in the Collector: it must be set.
            check_interval: GoDuration(Duration::ZERO),
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: 0,
            spike_limit_percentage: 0,
        }
    }
}

impl ComponentConfig for MemoryLimiterConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        let m = self;
        match (m.limit_mib > 0, m.limit_percentage > 0) {
            (false, false) => errors.push(c.here(&[], "set limit_mib or limit_percentage")),
            (true, true) => errors.push(c.setting(
                &["limit_percentage"],
                "set either limit_mib or limit_percentage, not both",
            )),
            _ => {}
        }
        if m.limit_mib > 0 && m.spike_limit_mib >= m.limit_mib {
            errors.push(c.setting(
                &["spike_limit_mib"],
                format!("must be below limit_mib ({})", m.limit_mib),
            ));
        }
        if m.limit_percentage > 100 {
            errors.push(c.setting(&["limit_percentage"], "must be at most 100"));
        }
        if m.limit_percentage > 0 && m.spike_limit_percentage >= m.limit_percentage {
            errors.push(c.setting(
                &["spike_limit_percentage"],
                format!("must be below limit_percentage ({})", m.limit_percentage),
            ));
        }
        if m.check_interval.0.is_zero() {
            errors.push(c.setting(
                &["check_interval"],
                "must be greater than zero (it has no default, as in the Collector)",
            ));
        }
    }
}
