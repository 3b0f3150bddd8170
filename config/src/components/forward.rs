//! The `forward` connector: no settings; it connects a signal to itself.

use serde::Deserialize;

use super::ComponentConfig;

/// `connectors.forward`: no settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {}

impl ComponentConfig for ForwardConfig {}
