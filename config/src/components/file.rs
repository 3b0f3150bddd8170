//! The `file` exporter's settings: format, rotation, grouping by resource.

use std::time::Duration;

use serde::Deserialize;

use super::{Check, ComponentConfig, Protocol};
use crate::ConfigError;
use crate::types::GoDuration;

/// Output encoding of the `file` exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One OTLP JSON export request per line.
    #[default]
    Json,
    /// Each export request as protobuf, prefixed by its 4-byte big-endian length.
    Proto,
}

/// Compression of the `file` exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileCompression {
    /// Plain output.
    #[default]
    #[serde(rename = "")]
    None,
    /// Each record zstd-compressed and length-prefixed.
    Zstd,
}

/// `exporters.file.rotation`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotationConfig {
    /// Size at which the file is rotated, in MiB (default 100).
    pub max_megabytes: u64,
    /// Rotated files kept (default 100; 0 keeps all).
    pub max_backups: u64,
    /// Backups older than this many days (by the timestamp in their name)
    /// are removed (default 0: kept whatever their age).
    pub max_days: u64,
    /// Name backups in local time (default false; `true` is refused by validation).
    pub localtime: bool,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_megabytes: 100,
            max_backups: 100,
            max_days: 0,
            localtime: false,
        }
    }
}

/// `exporters.file.group_by`: one file per value of a resource attribute.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileGroupBy {
    /// Split the output by resource (default false).
    pub enabled: bool,
    /// The attribute whose value replaces `*` in `path`
    /// (default `fileexporter.path_segment`).
    pub resource_attribute: String,
    /// Most files open at once (default 100).
    pub max_open_files: u64,
}

impl Default for FileGroupBy {
    fn default() -> Self {
        FileGroupBy {
            enabled: false,
            resource_attribute: "fileexporter.path_segment".into(),
            max_open_files: 100,
        }
    }
}

/// `exporters.file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Output file (required).
    pub path: String,
    /// json | proto (default json).
    pub format: FileFormat,
    /// Rotation; off unless the key is present.
    pub rotation: Protocol<RotationConfig>,
    /// `zstd` or unset.
    pub compression: FileCompression,
    /// Append to an existing file instead of truncating it (default false).
    pub append: bool,
    /// How often buffered output is flushed (default 1s).
    pub flush_interval: GoDuration,
    /// Create the output file's parent directories at start (default false).
    pub create_directory: bool,
    /// Octal permissions of directories `create_directory` makes, before the
    /// umask (default `0755`; only with `create_directory`).
    pub directory_permissions: String,
    /// One output file per value of a resource attribute.
    pub group_by: FileGroupBy,
}

impl FileConfig {
    /// `directory_permissions` as mode bits, `0755` when unset; `None` when
    /// it is not an octal number of permission bits.
    pub fn directory_mode(&self) -> Option<u32> {
        if self.directory_permissions.is_empty() {
            return Some(0o755);
        }
        u32::from_str_radix(&self.directory_permissions, 8)
            .ok()
            .filter(|m| m & !0o777 == 0)
    }
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            path: String::new(),
            format: FileFormat::Json,
            rotation: Protocol::Off,
            compression: FileCompression::None,
            append: false,
            flush_interval: GoDuration(Duration::from_secs(1)),
            create_directory: false,
            directory_permissions: String::new(),
            group_by: FileGroupBy::default(),
        }
    }
}

impl ComponentConfig for FileConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        let f = self;
        if f.path.trim().is_empty() {
            errors.push(c.setting(&["path"], "is required"));
        }
        if let Some(r) = f.rotation.as_ref()
            && r.localtime
        {
            errors.push(c.setting(
                &["rotation", "localtime"],
                "not supported: Tern names rotated files in UTC",
            ));
        }
        if f.group_by.enabled {
            let stars = f.path.matches('*').count();
            if stars != 1 {
                errors.push(c.setting(&["path"],
                        format!("must contain exactly one `*` when group_by is enabled (found {stars}): the resource attribute's value replaces it"),
                    ));
            } else if f.path.starts_with('*') {
                errors.push(c.setting(&["path"],
                        "must not start with `*` when group_by is enabled: files stay under the part before it",
                    ));
            }
            if f.group_by.resource_attribute.is_empty() {
                errors.push(c.setting(
                    &["group_by", "resource_attribute"],
                    "must not be empty when group_by is enabled",
                ));
            }
            if f.group_by.max_open_files == 0 {
                errors.push(c.setting(&["group_by", "max_open_files"], "must be at least 1"));
            }
        }
        if f.create_directory {
            if f.directory_mode().is_none() {
                errors.push(c.setting(
                    &["directory_permissions"],
                    format!(
                        "must be octal permission bits such as `0755`, found `{}`",
                        f.directory_permissions
                    ),
                ));
            }
        } else if !f.directory_permissions.is_empty() {
            errors.push(c.setting(
                &["directory_permissions"],
                "only applies with `create_directory: true`",
            ));
        }
        if let Some(r) = f.rotation.as_ref()
            && r.max_megabytes == 0
        {
            errors.push(c.setting(&["rotation", "max_megabytes"], "must be at least 1"));
        }
    }
}
