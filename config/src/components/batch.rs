//! The `batch` processor's settings.

use serde::Deserialize;
use std::time::Duration;

use super::{Check, ComponentConfig};
use crate::ConfigError;
use crate::types::GoDuration;

/// `processors.batch`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Items that trigger a send (default 8192).
    pub send_batch_size: u32,
    /// Longest wait before sending a partial batch (default 200ms).
    pub timeout: GoDuration,
    /// Largest batch sent; bigger ones are split (default 0 = no limit).
    pub send_batch_max_size: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: 8192,
            timeout: GoDuration(Duration::from_millis(200)),
            send_batch_max_size: 0,
        }
    }
}

impl ComponentConfig for BatchConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            errors.push(c.setting(
                &["send_batch_max_size"],
                format!(
                    "must be 0 or at least send_batch_size ({})",
                    self.send_batch_size
                ),
            ));
        }
        if self.send_batch_size == 0 && self.timeout.0.is_zero() {
            errors.push(c.here(&[], "send_batch_size and timeout cannot both be 0"));
        }
    }
}
