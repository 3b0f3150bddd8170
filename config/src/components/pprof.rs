//! The `pprof` extension's settings.

use serde::Deserialize;

use super::{Check, ComponentConfig};
use crate::ConfigError;
use crate::types::Endpoint;

/// `extensions.pprof`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PprofConfig {
    /// Listen address (default `localhost:1777`).
    pub endpoint: Endpoint,
    /// Go's block profile sampling; only 0 (off) is accepted.
    pub block_profile_fraction: i64,
    /// Go's mutex profile sampling; only 0 (off) is accepted.
    pub mutex_profile_fraction: i64,
    /// Profile the CPU from start to shutdown into this file (pprof
    /// format); empty for none.
    pub save_to_file: String,
}

impl Default for PprofConfig {
    fn default() -> Self {
        PprofConfig {
            endpoint: Endpoint::new("localhost", 1777),
            block_profile_fraction: 0,
            mutex_profile_fraction: 0,
            save_to_file: String::new(),
        }
    }
}

impl ComponentConfig for PprofConfig {
    /// Go's block and mutex profiles have no counterpart.
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        for (key, value) in [
            ("block_profile_fraction", self.block_profile_fraction),
            ("mutex_profile_fraction", self.mutex_profile_fraction),
        ] {
            if value != 0 {
                errors.push(c.setting(
                    &[key],
                    "not supported: Go's block and mutex profiles have no counterpart in Tern (only 0 is accepted)",
                ));
            }
        }
    }

    fn listens(&self) -> Vec<(Vec<&'static str>, Endpoint)> {
        vec![(vec!["endpoint"], self.endpoint.clone())]
    }
}
