//! The `nop` exporter: no settings.

use serde::Deserialize;

use super::ComponentConfig;

/// `exporters.nop`: no settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NopConfig {}

impl ComponentConfig for NopConfig {}
