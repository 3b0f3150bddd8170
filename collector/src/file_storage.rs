//! The `file_storage` extension: a directory where the exporters whose
//! `sending_queue.storage` names it keep their write-ahead logs
//! ([`tern_core::wal`]), one sub-directory per exporter. Building the
//! extension checks (or, with `create_directory`, creates) the directory.
//! [`Storages`] opens each exporter's log once per process, waiting up to
//! the extension's `timeout` for another process to let go of it: an
//! exporter that a reload rebuilds shares the log of the one still
//! draining, and at the shutdown deadline every log is frozen, so what
//! was not delivered stays on disk for the next start.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tern_config::{Component, ComponentId, Config, FileStorageConfig};
use tern_core::build::{BuildError, Built, Context};
use tern_core::wal::{Recovered, Wal, WalError, WalOptions};

/// How often a log held by another process is tried again.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// Why a storage directory or log could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The extension's directory is missing or not a directory.
    #[error("extensions.{id}: directory {dir}: {problem}")]
    Directory {
        /// The extension.
        id: String,
        /// Its directory.
        dir: String,
        /// What is wrong.
        problem: String,
    },
    /// `sending_queue.storage` names no configured `file_storage`.
    #[error("exporters.{exporter}: storage {storage:?} is not a configured file_storage extension")]
    NotFound {
        /// The exporter.
        exporter: String,
        /// The id it names.
        storage: String,
    },
    /// The exporter's log could not be opened.
    #[error("exporters.{exporter}: persistent queue in {dir}: {error}")]
    Open {
        /// The exporter.
        exporter: String,
        /// The log's directory.
        dir: String,
        /// Why.
        error: String,
    },
}

impl From<StorageError> for BuildError {
    fn from(e: StorageError) -> Self {
        BuildError::Component(Box::new(e))
    }
}

/// Builds the `file_storage` extension: its directory must exist, or is
/// created with `directory_permissions` when `create_directory` is set.
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let config = ctx.settings::<FileStorageConfig>(c)?;
    ensure_directory(&ctx.id, config)?;
    Ok(Built::default())
}

fn ensure_directory(id: &str, config: &FileStorageConfig) -> Result<(), StorageError> {
    let dir = Path::new(&config.directory);
    let problem = |problem: String| StorageError::Directory {
        id: id.to_string(),
        dir: config.directory.clone(),
        problem,
    };
    if config.create_directory && !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(config.permissions().unwrap_or(0o750))
            .create(dir)
            .map_err(|e| problem(format!("cannot create it: {e}")))?;
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(problem("is not a directory".into())),
        Err(e) => Err(problem(format!(
            "{e} (create it, or set `create_directory: true`)"
        ))),
    }
}

/// The logs this process has open, by directory.
#[derive(Debug, Default)]
pub struct Storages {
    open: Mutex<BTreeMap<PathBuf, Weak<Wal>>>,
}

/// An exporter's log, and what it held when this process opened it
/// (nothing when the log was open already).
pub type Opened = (Arc<Wal>, Recovered);

impl Storages {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Weak<Wal>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The log of `exporter` in the directory of the `file_storage`
    /// extension `storage` names: `<directory>/exporter_<id>` with `/` in
    /// the id written as `_`.
    pub async fn open(
        &self,
        config: &Config,
        storage: &str,
        exporter: &ComponentId,
    ) -> Result<Opened, StorageError> {
        let not_found = || StorageError::NotFound {
            exporter: exporter.to_string(),
            storage: storage.to_string(),
        };
        let id: ComponentId = storage.trim().parse().map_err(|_| not_found())?;
        let settings = config
            .extensions
            .get(&id)
            .and_then(|c| c.settings::<FileStorageConfig>())
            .ok_or_else(not_found)?;
        let dir = Path::new(&settings.directory).join(format!(
            "exporter_{}",
            exporter.to_string().replace('/', "_")
        ));
        if let Some(wal) = self.lock().get(&dir).and_then(Weak::upgrade) {
            return Ok((wal, Recovered::default()));
        }
        let failed = |error: &dyn std::fmt::Display| StorageError::Open {
            exporter: exporter.to_string(),
            dir: dir.display().to_string(),
            error: error.to_string(),
        };
        if settings.recreate && dir.exists() {
            // `recreate`: start empty, keeping the old log aside.
            let backup = dir.with_extension("backup");
            if backup.exists() {
                std::fs::remove_dir_all(&backup).map_err(|e| failed(&e))?;
            }
            std::fs::rename(&dir, &backup).map_err(|e| failed(&e))?;
            tracing::warn!(exporter = %exporter, backup = %backup.display(), "file_storage recreate: the persistent queue starts empty; the old one is kept aside");
        }
        std::fs::create_dir_all(&dir).map_err(|e| failed(&e))?;
        let options = WalOptions {
            fsync: settings.fsync,
            ..WalOptions::default()
        };
        let until = tokio::time::Instant::now() + settings.timeout.0;
        let (wal, recovered) = loop {
            let path = dir.clone();
            let opened = tokio::task::spawn_blocking(move || Wal::open(&path, options))
                .await
                .map_err(|e| failed(&e))?;
            match opened {
                Err(WalError::Locked(_)) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(LOCK_RETRY).await;
                }
                other => break other.map_err(|e| failed(&e))?,
            }
        };
        self.lock().insert(dir, Arc::downgrade(&wal));
        Ok((wal, recovered))
    }

    /// Freezes every open log: from now on nothing is marked delivered,
    /// so what is still queued stays on disk for the next start.
    pub fn freeze_all(&self) {
        let mut open = self.lock();
        open.retain(|_, wal| wal.strong_count() > 0);
        for wal in open.values().filter_map(Weak::upgrade) {
            wal.freeze();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, extra: &str) -> Config {
        let yaml = format!(
            "extensions:\n  file_storage/q:\n    directory: {}\n{extra}\
             exporters:\n  otlp_http:\n    endpoint: http://127.0.0.1:1\n    sending_queue:\n      storage: file_storage/q\n\
             receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\n\
             service:\n  extensions: [file_storage/q]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp_http]\n",
            dir.display()
        );
        tern_config::load_sources(&[("t.yaml".into(), yaml)], &|_| None).unwrap()
    }

    /// A second open in this process shares the log (as a reload does)
    /// and recovers nothing twice; the directory is named after the id.
    #[tokio::test]
    async fn an_exporter_log_is_opened_once_per_process() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config(tmp.path(), "");
        let storages = Storages::default();
        let exporter: ComponentId = "otlp_http".parse().unwrap();
        let (first, _) = storages
            .open(&config, "file_storage/q", &exporter)
            .await
            .unwrap();
        let (second, recovered) = storages
            .open(&config, "file_storage/q", &exporter)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert!(recovered.records.is_empty());
        assert!(tmp.path().join("exporter_otlp_http").is_dir());
    }

    /// A log another holder keeps locked is waited for up to `timeout`,
    /// then the exporter fails to start naming the directory.
    #[tokio::test]
    async fn a_log_held_elsewhere_fails_after_the_timeout() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config(tmp.path(), "    timeout: 200ms\n");
        let dir = tmp.path().join("exporter_otlp_http");
        std::fs::create_dir_all(&dir).unwrap();
        let (_held, _) = Wal::open(&dir, WalOptions::default()).unwrap();
        let err = Storages::default()
            .open(&config, "file_storage/q", &"otlp_http".parse().unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("exporter_otlp_http"), "{err}");
    }

    /// `recreate` starts empty and keeps the old log aside.
    #[tokio::test]
    async fn recreate_keeps_the_old_log_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let exporter: ComponentId = "otlp_http".parse().unwrap();
        {
            let (wal, _) = Storages::default()
                .open(&config(tmp.path(), ""), "file_storage/q", &exporter)
                .await
                .unwrap();
            wal.append(bytes::Bytes::from_static(b"kept"), Box::new(|_| {}));
        }
        let (_wal, recovered) = Storages::default()
            .open(
                &config(tmp.path(), "    recreate: true\n"),
                "file_storage/q",
                &exporter,
            )
            .await
            .unwrap();
        assert!(recovered.records.is_empty());
        let (_, aside) = Wal::open(
            &tmp.path().join("exporter_otlp_http.backup"),
            WalOptions::default(),
        )
        .unwrap();
        assert_eq!(aside.records.len(), 1);
    }

    #[test]
    fn the_directory_must_exist_unless_created() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("a/b");
        let mut settings = FileStorageConfig {
            directory: missing.display().to_string(),
            ..FileStorageConfig::default()
        };
        let err = ensure_directory("file_storage", &settings).unwrap_err();
        assert!(err.to_string().contains("create_directory"), "{err}");
        settings.create_directory = true;
        settings.directory_permissions = "0700".into();
        ensure_directory("file_storage", &settings).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&missing).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
