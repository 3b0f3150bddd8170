//! The `file_storage` extension's settings: the directory where exporters
//! whose `sending_queue.storage` names it keep their persistent queues,
//! with the Collector's keys. `compaction` is read (its keys are checked)
//! but has nothing to do: Tern's log deletes each segment once its records
//! are delivered, so there is no database file to compact.

use serde::Deserialize;

use super::{Check, ComponentConfig};
use crate::ConfigError;
use crate::types::GoDuration;

/// `extensions.file_storage`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileStorageConfig {
    /// The directory (default `/var/lib/otelcol/file_storage`); each
    /// exporter gets a sub-directory `exporter_<id>`.
    pub directory: String,
    /// How long to wait for another process to let go of an exporter's
    /// log (default 1s).
    pub timeout: GoDuration,
    /// fsync each group of writes before answering (default false).
    pub fsync: bool,
    /// Create `directory` when missing (default false).
    pub create_directory: bool,
    /// Permissions of a created directory, octal (default `0750`).
    pub directory_permissions: String,
    /// Start from empty logs, keeping the old ones aside as
    /// `<exporter dir>.backup` (default false).
    pub recreate: bool,
    /// The Collector's database compaction: accepted, without effect.
    pub compaction: CompactionConfig,
}

/// `extensions.file_storage.compaction`: the Collector's keys, read so
/// that a typo is still an error, without effect in Tern.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Compact at start.
    pub on_start: bool,
    /// Compact when the database shrinks.
    pub on_rebound: bool,
    /// Where compaction writes its temporary file.
    pub directory: String,
    /// Entries per compaction transaction.
    pub max_transaction_size: i64,
    /// Size above which a rebound is watched for.
    pub rebound_needed_threshold_mib: i64,
    /// Size below which a rebound compacts.
    pub rebound_trigger_threshold_mib: i64,
    /// How often the rebound is checked.
    pub check_interval: GoDuration,
    /// Remove leftover temporary files at start.
    pub cleanup_on_start: bool,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            on_start: false,
            on_rebound: false,
            directory: String::new(),
            max_transaction_size: 65_536,
            rebound_needed_threshold_mib: 100,
            rebound_trigger_threshold_mib: 10,
            check_interval: GoDuration(std::time::Duration::from_secs(5)),
            cleanup_on_start: false,
        }
    }
}

impl Default for FileStorageConfig {
    fn default() -> Self {
        FileStorageConfig {
            directory: "/var/lib/otelcol/file_storage".into(),
            timeout: GoDuration(std::time::Duration::from_secs(1)),
            fsync: false,
            create_directory: false,
            directory_permissions: "0750".into(),
            recreate: false,
            compaction: CompactionConfig::default(),
        }
    }
}

impl FileStorageConfig {
    /// `directory_permissions` as mode bits, when it is octal up to `0777`.
    pub fn permissions(&self) -> Option<u32> {
        u32::from_str_radix(&self.directory_permissions, 8)
            .ok()
            .filter(|m| *m <= 0o777)
    }
}

impl ComponentConfig for FileStorageConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        if self.directory.trim().is_empty() {
            errors.push(c.setting(&["directory"], "is required"));
        }
        if self.timeout.0.is_zero() {
            errors.push(c.setting(&["timeout"], "must be above 0"));
        }
        if self.permissions().is_none() {
            errors.push(c.setting(
                &["directory_permissions"],
                format!(
                    "`{}` is not octal permissions (such as 0750)",
                    self.directory_permissions
                ),
            ));
        }
    }
}
