//! The `health_check` extension's settings.

use std::time::Duration;

use serde::Deserialize;

use super::{Check, ComponentConfig};
use crate::ConfigError;
use crate::types::{Endpoint, GoDuration};

/// `extensions.health_check`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// Listen address (default `localhost:13133`).
    pub endpoint: Endpoint,
    /// Path answered (default `/`).
    pub path: String,
    /// Plain-text bodies instead of the JSON status.
    pub response_body: Option<HealthResponseBody>,
    /// The Collector's deprecated pipeline check: only `enabled: false`.
    pub check_collector_pipeline: CheckCollectorPipeline,
}

/// `extensions.health_check.response_body`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthResponseBody {
    /// Body while healthy.
    pub healthy: String,
    /// Body while not healthy.
    pub unhealthy: String,
}

/// `extensions.health_check.check_collector_pipeline` (deprecated in the
/// Collector, which ignores it): accepted with `enabled: false` only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckCollectorPipeline {
    /// Only false is accepted (default false).
    pub enabled: bool,
    /// Check interval (default 5m); unused while disabled.
    pub interval: GoDuration,
    /// Failures that make the check fail (default 5); unused while disabled.
    pub exporter_failure_threshold: u64,
}

impl Default for CheckCollectorPipeline {
    fn default() -> Self {
        CheckCollectorPipeline {
            enabled: false,
            interval: GoDuration(Duration::from_secs(300)),
            exporter_failure_threshold: 5,
        }
    }
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: Endpoint::new("localhost", 13133),
            path: "/".into(),
            response_body: None,
            check_collector_pipeline: CheckCollectorPipeline::default(),
        }
    }
}

impl ComponentConfig for HealthCheckConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        if self.check_collector_pipeline.enabled {
            errors.push(c.setting(
                &["check_collector_pipeline", "enabled"],
                "not supported: the Collector deprecated this check and ignores it; remove it or set `enabled: false`",
            ));
        }
    }

    fn listens(&self) -> Vec<(Vec<&'static str>, Endpoint)> {
        vec![(vec!["endpoint"], self.endpoint.clone())]
    }
}
