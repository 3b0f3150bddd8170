//! The `file` exporter. `format: json` writes one OTLP JSON export request
//! per line (what the OpenTelemetry Collector's file exporter writes);
//! `format: proto` writes each export request's protobuf bytes after a 4-byte
//! big-endian length. With `compression: zstd` each record is compressed and
//! written length-prefixed. `rotation` renames the file to
//! `<name>-<UTC timestamp><ext>` once it would exceed `max_megabytes` and
//! keeps at most `max_backups` old files, none older than `max_days` (by the
//! timestamp in their name). `create_directory` makes the file's parent
//! directories at start. `group_by` writes one file per value of a resource
//! attribute ([`group`]). Every batch is written through to the OS before it
//! counts as sent, so `flush_interval` is always met.
//!
//! [`writer`] writes one file, [`rotation`] names and prunes rotated files.

mod group;
mod rotation;
mod writer;

use std::path::PathBuf;

use tern_config::Component;
use tern_config::FileConfig;
use tern_core::build::{self, Built, Context};
use tern_core::component::{BoxFuture, Delivered, ExportError, Exporter};
use tern_core::pdata::Batch;

use crate::BuildError;
use group::Groups;
use writer::{Writer, create_directory};

/// See the module docs.
#[derive(Debug)]
pub struct FileExporter {
    /// Where batches go; lent to a blocking task while a batch is written.
    output: Option<Output>,
}

/// One file, or one per `group_by` value.
#[derive(Debug)]
enum Output {
    Single(Writer),
    Grouped(Groups),
}

impl Output {
    fn write(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        match self {
            Output::Single(w) => w.write(batch),
            Output::Grouped(g) => g.write(batch),
        }
    }

    fn sync(&mut self) -> Result<(), ExportError> {
        match self {
            Output::Single(w) => w.sync(),
            Output::Grouped(g) => g.sync(),
        }
    }
}

impl FileExporter {
    /// Opens (creating, or truncating unless `append`) the output file;
    /// with `group_by`, files are opened as their values come.
    pub fn open(id: &str, config: &FileConfig) -> Result<Self, BuildError> {
        if config.group_by.enabled {
            return Ok(FileExporter {
                output: Some(Output::Grouped(Groups::new(id, config))),
            });
        }
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
        let writer = Writer::open(id, path, config.append, config).map_err(open_error)?;
        Ok(FileExporter {
            output: Some(Output::Single(writer)),
        })
    }

    /// Runs `work` on the output in a blocking thread (file I/O must not
    /// stall the async workers).
    async fn with_output<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Output) -> Result<T, ExportError> + Send + 'static,
    ) -> Result<T, ExportError> {
        let mut output = self
            .output
            .take()
            .ok_or_else(|| ExportError::Encode("file exporter lost its writer".into()))?;
        let (output, result) = tokio::task::spawn_blocking(move || {
            let result = work(&mut output);
            (output, result)
        })
        .await
        .map_err(|e| ExportError::Encode(format!("file writer task failed: {e}")))?;
        self.output = Some(output);
        result
    }
}

impl Exporter for FileExporter {
    fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>> {
        Box::pin(async move { self.with_output(move |out| out.write(&batch)).await })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(self.with_output(Output::sync))
    }
}

/// Builds a `file` exporter (opening its file).
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, build::BuildError> {
    let config = ctx.settings::<FileConfig>(c)?;
    Ok(Built::exporter(crate::single(Box::new(
        FileExporter::open(&ctx.id, config)?,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;
    use std::path::Path;
    use std::sync::Arc;
    use tern_config::{FileCompression, FileFormat, RotationConfig};
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
