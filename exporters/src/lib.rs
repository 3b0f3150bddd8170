//! Tern's exporters: `file`, `debug` and `nop`. Each is built from its typed
//! config into a [`tern_core::component::Exporter`]; the service gives it a
//! bounded queue and a driver task.

pub mod debug;
pub mod file;
pub mod nop;

use tern_config::ExporterConfig;
use tern_core::component::Exporter;

/// Why an exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The output file could not be opened.
    #[error("exporter {id}: cannot open {path}: {source}")]
    Open {
        /// Exporter id.
        id: String,
        /// File path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Builds exporter `id` from its config.
pub fn build(id: &str, config: &ExporterConfig) -> Result<Box<dyn Exporter>, BuildError> {
    Ok(match config {
        ExporterConfig::Debug(c) => Box::new(debug::DebugExporter::new(id, c)),
        ExporterConfig::File(c) => Box::new(file::FileExporter::open(id, c)?),
        ExporterConfig::Nop(_) => Box::new(nop::NopExporter),
    })
}
