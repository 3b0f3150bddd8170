//! The `debug` exporter's settings.

use serde::{Deserialize, Deserializer};

use super::ComponentConfig;

/// How much the `debug` exporter prints; read case-insensitively, as the
/// Collector does (`Detailed`, `DETAILED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// One line per batch with counts.
    #[default]
    Basic,
    /// One line per item.
    Normal,
    /// Every field of every item.
    Detailed,
}

impl<'de> Deserialize<'de> for Verbosity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const NAMES: &[&str] = &["basic", "normal", "detailed"];
        let name = String::deserialize(d)?;
        match name.to_ascii_lowercase().as_str() {
            "basic" => Ok(Verbosity::Basic),
            "normal" => Ok(Verbosity::Normal),
            "detailed" => Ok(Verbosity::Detailed),
            _ => Err(serde::de::Error::unknown_variant(&name, NAMES)),
        }
    }
}

/// `exporters.debug`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// basic | normal | detailed, any case (default basic).
    pub verbosity: Verbosity,
    /// Batches logged per signal in each second before sampling starts (default 2).
    pub sampling_initial: u64,
    /// After the first `sampling_initial` of a second, every this-many-th
    /// batch is logged; 0 logs none (default 1: all).
    pub sampling_thereafter: u64,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
        }
    }
}

impl ComponentConfig for DebugConfig {}
