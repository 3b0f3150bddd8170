//! `processors.probabilistic_sampler`: the OpenTelemetry Collector's keys
//! and defaults (contrib v0.161), and the checks its `Validate` makes.

use serde::Deserialize;

use super::{Check, ComponentConfig};
use crate::ConfigError;

/// How the sampling threshold is chosen (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerMode {
    /// FNV hash of the trace id (or a log attribute) with `hash_seed`;
    /// 14 bits. What an unset mode means.
    HashSeed,
    /// The configured ratio of whatever arrives (OpenTelemetry consistent
    /// sampling, 56 bits).
    Proportional,
    /// The configured threshold unless an arriving one is already lower
    /// in probability.
    Equalizing,
}

/// Where log records take their randomness from (`attribute_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum AttributeSource {
    /// The trace id (then `from_attribute` when the record has none).
    #[default]
    #[serde(rename = "traceID")]
    TraceId,
    /// The `from_attribute` attribute only.
    #[serde(rename = "record")]
    Record,
}

/// `processors.probabilistic_sampler`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticSamplerConfig {
    /// Share of items kept, in percent (default 0; above 100 means 100).
    pub sampling_percentage: f32,
    /// Seed of the `hash_seed` mode's hash (default 0).
    pub hash_seed: u32,
    /// `hash_seed`, `proportional` or `equalizing` (unset: `hash_seed`).
    #[serde(deserialize_with = "mode")]
    pub mode: Option<SamplerMode>,
    /// Drop items whose randomness or threshold cannot be used (default true).
    pub fail_closed: bool,
    /// Hex digits of the thresholds written (1-14, default 4).
    pub sampling_precision: u32,
    /// Logs: `traceID` (default) or `record`.
    pub attribute_source: AttributeSource,
    /// Logs: the attribute hashed when there is no trace id (or with `record`).
    pub from_attribute: String,
    /// Logs: an attribute whose number is the percentage to keep that record at.
    pub sampling_priority: String,
}

impl Default for ProbabilisticSamplerConfig {
    fn default() -> Self {
        ProbabilisticSamplerConfig {
            sampling_percentage: 0.0,
            hash_seed: 0,
            mode: None,
            fail_closed: true,
            sampling_precision: 4,
            attribute_source: AttributeSource::TraceId,
            from_attribute: String::new(),
            sampling_priority: String::new(),
        }
    }
}

/// An empty `mode` is unset, as in the Collector.
fn mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SamplerMode>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    SamplerMode::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&text))
        .map(Some)
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "unsupported sampler mode {text:?} (hash_seed, proportional or equalizing)"
            ))
        })
}

/// Smallest share the OpenTelemetry thresholds express: 2^-56.
const MIN_SAMPLING_PROBABILITY: f64 = 1.0 / (1u64 << 56) as f64;

impl ProbabilisticSamplerConfig {
    /// The Collector's checks: `(key, problem)` for each.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let percentage = f64::from(self.sampling_percentage);
        let ratio = percentage / 100.0;
        if !percentage.is_finite() {
            problems.push(("sampling_percentage", "must be a finite number".to_owned()));
        } else if ratio < 0.0 {
            problems.push(("sampling_percentage", "must not be negative".to_owned()));
        } else if ratio > 0.0 && ratio < MIN_SAMPLING_PROBABILITY {
            problems.push((
                "sampling_percentage",
                format!(
                    "is too small: the smallest share is 2^-56 ({}%)",
                    MIN_SAMPLING_PROBABILITY * 100.0
                ),
            ));
        }
        if self.sampling_precision == 0 {
            problems.push(("sampling_precision", "must be at least 1".to_owned()));
        } else if self.sampling_precision > 14 {
            problems.push((
                "sampling_precision",
                "must be at most 14 (hex digits)".to_owned(),
            ));
        }
        problems
    }
}

impl ComponentConfig for ProbabilisticSamplerConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        for (key, problem) in self.problems() {
            errors.push(c.setting(&[key], problem));
        }
    }
}
