//! The `file` exporter. `format: json` writes one OTLP JSON export request
//! per line (what the OpenTelemetry Collector's file exporter writes);
//! `format: proto` writes each export request's protobuf bytes after a 4-byte
//! big-endian length. With `compression: zstd` each record is compressed and
//! written length-prefixed. `rotation` renames the file to
//! `<name>-<UTC timestamp><ext>` once it would exceed `max_megabytes` and
//! keeps at most `max_backups` old files, none older than `max_days` (by the
//! timestamp in their name). `create_directory` makes the file's parent
//! directories at start. Every batch is written through to
//! the OS before it counts as sent, so `flush_interval` is always met.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tern_config::{FileCompression, FileConfig, FileFormat, RotationConfig};
use tern_core::component::{BoxFuture, Delivered, ExportError, Exporter};
use tern_core::pdata::Batch;

use crate::BuildError;

/// See the module docs.
#[derive(Debug)]
pub struct FileExporter {
    /// The writer; lent to a blocking task while a batch is written.
    state: Option<FileState>,
}

#[derive(Debug)]
struct FileState {
    id: String,
    path: PathBuf,
    format: FileFormat,
    compression: FileCompression,
    rotation: Option<RotationConfig>,
    out: BufWriter<File>,
    written: u64,
    record: Vec<u8>,
}

impl FileExporter {
    /// Opens (creating, or truncating unless `append`) the output file.
    pub fn open(id: &str, config: &FileConfig) -> Result<Self, BuildError> {
        let path = PathBuf::from(&config.path);
        let open_error = |error| BuildError::Open {
            id: id.to_string(),
            path: config.path.clone(),
            error,
        };
        if config.create_directory
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            create_directory(dir, config.directory_mode().unwrap_or(0o755)).map_err(open_error)?;
        }
        let file = open(&path, config.append).map_err(open_error)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(FileExporter {
            state: Some(FileState {
                id: id.to_string(),
                path,
                format: config.format,
                compression: config.compression,
                rotation: config.rotation.as_ref().cloned(),
                out: BufWriter::with_capacity(256 * 1024, file),
                written,
                record: Vec::new(),
            }),
        })
    }

    /// Runs `work` on the writer in a blocking thread (file I/O must not
    /// stall the async workers).
    async fn with_state<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut FileState) -> Result<T, ExportError> + Send + 'static,
    ) -> Result<T, ExportError> {
        let mut state = self
            .state
            .take()
            .ok_or_else(|| ExportError::Encode("file exporter lost its writer".into()))?;
        let (state, result) = tokio::task::spawn_blocking(move || {
            let result = work(&mut state);
            (state, result)
        })
        .await
        .map_err(|e| ExportError::Encode(format!("file writer task failed: {e}")))?;
        self.state = Some(state);
        result
    }
}

impl FileState {
    fn write(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        let delivered = self.encode(batch)?;
        self.rotate_if_needed(self.record.len() as u64)?;
        self.out.write_all(&self.record)?;
        self.out.flush()?;
        self.written += self.record.len() as u64;
        Ok(delivered)
    }

    fn encode(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        self.record.clear();
        let mut delivered = Delivered::ALL;
        let mut payload = Vec::new();
        let body: &mut Vec<u8> = match self.compression {
            FileCompression::None => &mut self.record,
            FileCompression::Zstd => &mut payload,
        };
        match self.format {
            FileFormat::Json => {
                // One line per usable request if the batch as a whole fails.
                let mut usable = batch.each_usable(|wire| {
                    let mut line = Vec::new();
                    tern_core::json::wire_to_json(batch.signal(), wire, &mut line).map(|()| line)
                });
                for line in usable.parts_or_error()? {
                    body.extend_from_slice(&line);
                    body.push(b'\n');
                }
                delivered = usable.delivered(&self.id, batch.signal());
            }
            FileFormat::Proto => {
                let len = u32::try_from(batch.bytes())
                    .map_err(|_| ExportError::Encode("batch larger than 4 GiB".into()))?;
                if self.compression == FileCompression::None {
                    body.extend_from_slice(&len.to_be_bytes());
                }
                for chunk in batch.chunks() {
                    body.extend_from_slice(chunk);
                }
            }
        }
        if self.compression == FileCompression::Zstd {
            let compressed = zstd::bulk::compress(&payload, 3)?;
            let len = u32::try_from(compressed.len())
                .map_err(|_| ExportError::Encode("record larger than 4 GiB".into()))?;
            self.record.extend_from_slice(&len.to_be_bytes());
            self.record.extend_from_slice(&compressed);
        }
        Ok(delivered)
    }

    fn rotate_if_needed(&mut self, next: u64) -> Result<(), ExportError> {
        let Some(rotation) = &self.rotation else {
            return Ok(());
        };
        let limit = rotation.max_megabytes.saturating_mul(1024 * 1024);
        if self.written == 0 || self.written + next <= limit {
            return Ok(());
        }
        self.out.flush()?;
        let backup = backup_name(&self.path, SystemTime::now());
        std::fs::rename(&self.path, &backup)?;
        self.out = BufWriter::with_capacity(256 * 1024, open(&self.path, false)?);
        self.written = 0;
        prune_backups(&self.path, rotation, SystemTime::now())?;
        Ok(())
    }
}

/// Creates `dir` and its missing parents with `mode` (less the umask).
fn create_directory(dir: &Path, mode: u32) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(dir)
}

fn open(path: &Path, append: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    options.open(path)
}

/// `dir/name.ext` -> `dir/name-2026-11-28T21-03-30.123.ext` (UTC).
pub fn backup_name(path: &Path, now: SystemTime) -> PathBuf {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let stamp = format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}.{:03}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_millis()
    );
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{stamp}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{stamp}"),
    };
    path.with_file_name(name)
}

/// The time a backup name made by [`backup_name`] encodes, from the part
/// after `<stem>-`; `None` for anything else.
fn backup_time(stamp: &str) -> Option<SystemTime> {
    let b = stamp.as_bytes();
    let number = |from: usize, len: usize| -> Option<u64> {
        let digits = stamp.get(from..from + len)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b'-'),
        (16, b'-'),
        (19, b'.'),
    ];
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let (y, m, d) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (h, min, sec, ms) = (
        number(11, 2)?,
        number(14, 2)?,
        number(17, 2)?,
        number(20, 3)?,
    );
    let days = days_from_civil(y as i64, m as u32, d as u32);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + min * 60 + sec;
    UNIX_EPOCH.checked_add(std::time::Duration::from_millis(secs * 1000 + ms))
}

/// (year, month, day), proleptic Gregorian, to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Removes the backups of `path` older than `max_days` (0: no age limit),
/// then the oldest beyond `max_backups` (0 keeps all).
fn prune_backups(path: &Path, rotation: &RotationConfig, now: SystemTime) -> std::io::Result<()> {
    if rotation.max_backups == 0 && rotation.max_days == 0 {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!("{stem}-");
    let own = path.file_name().map(|n| n.to_os_string());
    let mut backups: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name() != own.as_deref()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    // Timestamps sort lexically.
    backups.sort();
    if rotation.max_days > 0 {
        let max_age = std::time::Duration::from_secs(rotation.max_days.saturating_mul(86_400));
        let cutoff = now.checked_sub(max_age).unwrap_or(UNIX_EPOCH);
        let expired = |p: &PathBuf| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.get(prefix.len()..))
                .and_then(backup_time)
                .is_some_and(|t| t < cutoff)
        };
        let (old, kept): (Vec<PathBuf>, Vec<PathBuf>) = backups.into_iter().partition(expired);
        for p in &old {
            std::fs::remove_file(p)?;
        }
        backups = kept;
    }
    if rotation.max_backups > 0 {
        let excess = backups.len().saturating_sub(rotation.max_backups as usize);
        for old in &backups[..excess] {
            std::fs::remove_file(old)?;
        }
    }
    Ok(())
}

impl Exporter for FileExporter {
    fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>> {
        Box::pin(async move { self.with_state(move |state| state.write(&batch)).await })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(self.with_state(|state| {
            state.out.flush()?;
            state.out.get_ref().sync_data()?;
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;
    use std::sync::Arc;
    use tern_config::{Protocol, Signal};
    use tern_core::pdata::RequestContext;

    fn logs(body: &str, n: usize) -> (Batch, ExportLogsServiceRequest) {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: (0..n)
                        .map(|i| LogRecord {
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(format!("{body}{i}"))),
                            }),
                            trace_id: vec![0xab; 16],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = Batch::from_wire(
            Signal::Logs,
            Bytes::from(req.encode_to_vec()),
            Arc::new(RequestContext::default()),
        )
        .unwrap();
        (batch, req)
    }

    fn config(path: &Path) -> FileConfig {
        FileConfig {
            path: path.display().to_string(),
            ..FileConfig::default()
        }
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_decoded_costs_only_its_own_items() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut exporter = FileExporter::open("file", &config(&path)).unwrap();
        let (mut batch, first) = logs("a", 2);
        // A log body that is not UTF-8: the receiver refuses it, but if one
        // ever got into a batch, the requests batched with it still go out.
        let mut bad = Vec::new();
        let body = [0x2a, 0x05, 0x0a, 0x03, b'a', 0xff, b'b'];
        for len_prefixed in [&[0x0a, 0x0b, 0x12, 0x09, 0x12, 0x07][..], &body[..]] {
            bad.extend_from_slice(len_prefixed);
        }
        batch.append(Batch::from_wire_unchecked(
            Signal::Logs,
            Bytes::from(bad),
            1,
            Arc::new(RequestContext::default()),
        ));
        let (last_batch, last) = logs("c", 3);
        batch.append(last_batch);
        let delivered = exporter.export(batch).await.unwrap();
        exporter.shutdown().await.unwrap();
        assert_eq!(delivered.rejected, 1);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for (line, want) in lines.iter().zip([first, last]) {
            let wire = tern_core::json::json_to_wire(Signal::Logs, line.as_bytes()).unwrap();
            assert_eq!(ExportLogsServiceRequest::decode(wire).unwrap(), want);
        }
    }

    #[tokio::test]
    async fn json_lines_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut e = FileExporter::open("file", &config(&path)).unwrap();
        let (a, req_a) = logs("a", 2);
        let (b, req_b) = logs("b", 1);
        e.export(a).await.unwrap();
        e.export(b).await.unwrap();
        e.shutdown().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let back: ExportLogsServiceRequest = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(back, req_a);
        let back: ExportLogsServiceRequest = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(back, req_b);
        // OTLP JSON: hex ids, camelCase.
        assert!(
            lines[0].contains("\"traceId\":\"abababababababababababababababab\""),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("\"resourceLogs\""));
    }

    #[tokio::test]
    async fn proto_is_length_prefixed_and_zstd_wraps_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pb");
        let mut cfg = config(&path);
        cfg.format = FileFormat::Proto;
        let mut e = FileExporter::open("file", &cfg).unwrap();
        let (a, req) = logs("x", 3);
        e.export(a).await.unwrap();
        e.shutdown().await.unwrap();
        let data = std::fs::read(&path).unwrap();
        let len = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        assert_eq!(len, data.len() - 4);
        assert_eq!(ExportLogsServiceRequest::decode(&data[4..]).unwrap(), req);

        let zpath = dir.path().join("out.pb.zst");
        cfg.path = zpath.display().to_string();
        cfg.compression = FileCompression::Zstd;
        let mut e = FileExporter::open("file", &cfg).unwrap();
        let (a, req) = logs("y", 3);
        e.export(a).await.unwrap();
        e.shutdown().await.unwrap();
        let data = std::fs::read(&zpath).unwrap();
        let len = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        let raw = zstd::bulk::decompress(&data[4..4 + len], 1 << 20).unwrap();
        assert_eq!(ExportLogsServiceRequest::decode(&raw[..]).unwrap(), req);
    }

    #[tokio::test]
    async fn rotation_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rot.jsonl");
        let mut cfg = config(&path);
        cfg.rotation = Protocol::On(RotationConfig {
            max_megabytes: 1,
            max_backups: 2,
            ..RotationConfig::default()
        });
        let mut e = FileExporter::open("file", &cfg).unwrap();
        let big = "z".repeat(300 * 1024);
        for _ in 0..8 {
            let (b, _) = logs(&big, 1);
            e.export(b).await.unwrap();
            // Distinct millisecond timestamps for backup names.
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        e.shutdown().await.unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let len = entry.unwrap().metadata().unwrap().len();
            assert!(len <= 1024 * 1024, "file of {len} bytes");
        }
    }

    #[test]
    fn backup_names_use_utc_timestamps() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_906_410_123);
        let name = backup_name(Path::new("/tmp/out.jsonl"), t);
        assert_eq!(
            name,
            PathBuf::from("/tmp/out-2026-11-28T22-53-30.123.jsonl")
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(backup_time("2026-11-28T22-53-30.123.jsonl"), Some(t));
        assert_eq!(backup_time("2026-11-28.jsonl"), None);
    }

    #[test]
    fn max_days_removes_backups_older_than_that_by_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let now = UNIX_EPOCH + std::time::Duration::from_secs(20_000 * 86_400);
        let day = std::time::Duration::from_secs(86_400);
        let old = backup_name(&path, now - 3 * day);
        let recent = backup_name(&path, now - day / 2);
        let unrelated = dir.path().join("out-notes.jsonl");
        for p in [&path, &old, &recent, &unrelated] {
            std::fs::write(p, b"x").unwrap();
        }
        let rotation = RotationConfig {
            max_days: 2,
            max_backups: 0,
            ..RotationConfig::default()
        };
        prune_backups(&path, &rotation, now).unwrap();
        assert!(!old.exists());
        assert!(recent.exists() && path.exists() && unrelated.exists());
    }

    #[tokio::test]
    async fn create_directory_makes_the_parent_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/out.jsonl");
        assert!(FileExporter::open("file", &config(&path)).is_err());
        let cfg = FileConfig {
            create_directory: true,
            directory_permissions: "0750".into(),
            ..config(&path)
        };
        let mut e = FileExporter::open("file", &cfg).unwrap();
        let (a, _) = logs("a", 1);
        e.export(a).await.unwrap();
        e.shutdown().await.unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("a/b"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o707, 0o700);
        }
    }
}
