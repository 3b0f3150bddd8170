//! The `zpages` extension's settings.

use serde::Deserialize;

use super::ComponentConfig;
use crate::types::Endpoint;

/// `extensions.zpages`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZPagesConfig {
    /// Listen address (default `localhost:55679`).
    pub endpoint: Endpoint,
}

impl Default for ZPagesConfig {
    fn default() -> Self {
        ZPagesConfig {
            endpoint: Endpoint::new("localhost", 55679),
        }
    }
}

impl ComponentConfig for ZPagesConfig {
    fn listens(&self) -> Vec<(Vec<&'static str>, Endpoint)> {
        vec![(vec!["endpoint"], self.endpoint.clone())]
    }
}
