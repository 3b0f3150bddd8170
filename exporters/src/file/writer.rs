//! One output file: encodes a batch as a record (JSON lines, or
//! length-prefixed protobuf, zstd-wrapped when asked), writes it through to
//! the OS and rotates the file by size.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tern_config::{FileCompression, FileConfig, FileFormat, RotationConfig};
use tern_core::component::{Delivered, ExportError};
use tern_core::pdata::Batch;

use super::rotation::{backup_name, prune_backups};

/// An open output file and what it needs to write and rotate it.
#[derive(Debug)]
pub struct Writer {
    id: String,
    path: PathBuf,
    format: FileFormat,
    compression: FileCompression,
    rotation: Option<RotationConfig>,
    out: BufWriter<File>,
    written: u64,
    record: Vec<u8>,
}

impl Writer {
    /// Opens `path` for exporter `id` (creating it; truncating it unless
    /// `append`), to write as `config` says.
    pub fn open(
        id: &str,
        path: PathBuf,
        append: bool,
        config: &FileConfig,
    ) -> std::io::Result<Writer> {
        let file = open(&path, append)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            id: id.to_string(),
            path,
            format: config.format,
            compression: config.compression,
            rotation: config.rotation.as_ref().cloned(),
            out: BufWriter::with_capacity(256 * 1024, file),
            written,
            record: Vec::new(),
        })
    }

    /// Writes `batch` as one record and flushes it to the OS.
    pub fn write(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        let delivered = self.encode(batch)?;
        self.rotate_if_needed(self.record.len() as u64)?;
        self.out.write_all(&self.record)?;
        self.out.flush()?;
        self.written += self.record.len() as u64;
        Ok(delivered)
    }

    /// Flushes and syncs the file to disk.
    pub fn sync(&mut self) -> Result<(), ExportError> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        Ok(())
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
pub fn create_directory(dir: &Path, mode: u32) -> std::io::Result<()> {
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
