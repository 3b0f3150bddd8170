//! The `prometheus` exporter's settings (a scrape endpoint).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{Check, ComponentConfig};
use crate::ConfigError;
use crate::types::{Endpoint, GoDuration};

/// `resource_to_telemetry_conversion`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceToTelemetry {
    /// Copy every resource attribute onto every series (default false).
    pub enabled: bool,
}

/// `exporters.prometheus`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Where `/metrics` is served (required), e.g. `0.0.0.0:8889`.
    pub endpoint: Option<Endpoint>,
    /// Prefix for every metric name.
    pub namespace: String,
    /// Labels added to every series.
    pub const_labels: BTreeMap<String, String>,
    /// Write each sample's timestamp (default false).
    pub send_timestamps: bool,
    /// Forget series not updated for this long (default 5m).
    pub metric_expiration: GoDuration,
    /// Resource attributes as labels.
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    /// Answer OpenMetrics (with exemplars) to scrapers that ask for it (default true).
    pub enable_open_metrics: bool,
    /// Unit and type suffixes on names (default true).
    pub add_metric_suffixes: bool,
    /// Most series kept; new series beyond are dropped and counted (default 100000).
    pub max_series: u64,
    /// Leave out the `otel_scope_name` / `otel_scope_version` labels (default false).
    pub without_scope_info: bool,
    /// How names are translated; when set it overrides `add_metric_suffixes`.
    pub translation_strategy: Option<TranslationStrategy>,
}

/// The Collector's `translation_strategy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TranslationStrategy {
    /// Escape to `[a-zA-Z0-9_:]`, add unit and type suffixes.
    UnderscoreEscapingWithSuffixes,
    /// Escape to `[a-zA-Z0-9_:]`, no suffixes.
    UnderscoreEscapingWithoutSuffixes,
    /// UTF-8 names kept, with suffixes.
    #[serde(rename = "NoUTF8EscapingWithSuffixes")]
    NoUtf8EscapingWithSuffixes,
    /// Names passed through: UTF-8, no suffixes.
    NoTranslation,
}

impl PrometheusConfig {
    /// Whether unit and type suffixes are added: `translation_strategy`
    /// when set, else `add_metric_suffixes`.
    pub fn metric_suffixes(&self) -> bool {
        match self.translation_strategy {
            Some(
                TranslationStrategy::UnderscoreEscapingWithoutSuffixes
                | TranslationStrategy::NoTranslation,
            ) => false,
            Some(_) => true,
            None => self.add_metric_suffixes,
        }
    }

    /// Whether metric and label names stay UTF-8 (escaped at scrape time
    /// for scrapers that do not take them).
    pub fn utf8_names(&self) -> bool {
        matches!(
            self.translation_strategy,
            Some(
                TranslationStrategy::NoUtf8EscapingWithSuffixes
                    | TranslationStrategy::NoTranslation
            )
        )
    }
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            endpoint: None,
            namespace: String::new(),
            const_labels: BTreeMap::new(),
            send_timestamps: false,
            metric_expiration: GoDuration(Duration::from_secs(300)),
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            enable_open_metrics: true,
            add_metric_suffixes: true,
            max_series: 100_000,
            without_scope_info: false,
            translation_strategy: None,
        }
    }
}

impl ComponentConfig for PrometheusConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        if self.endpoint.is_none() {
            errors.push(c.setting(&["endpoint"], "is required"));
        }
        if self.max_series == 0 {
            errors.push(c.setting(&["max_series"], "must be at least 1"));
        }
    }

    fn listens(&self) -> Vec<(Vec<&'static str>, Endpoint)> {
        self.endpoint
            .iter()
            .map(|e| (vec!["endpoint"], e.clone()))
            .collect()
    }
}
