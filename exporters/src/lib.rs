//! Tern's exporters: `otlp`, `otlphttp`, `file`, `debug`, `nop` and
//! `loadbalancing` (`otlp` to backends chosen by routing key). Each is
//! built from its typed config (by its line in the collector's runtime
//! registry) into an [`ExporterSpec`]: one or more
//! [`tern_core::component::Exporter`] workers and the limits of the queue
//! they share. Network exporters are split by concern: [`transport`]
//! (connections), [`tls`], [`retry`], and [`otlp`] (request building and
//! response classification).

pub mod debug;
pub mod file;
pub mod loadbalancing;
pub mod nop;
pub mod otlp;
pub mod prometheus;
pub mod retry;
pub mod tls;
pub mod transport;

use tern_config::{QueueConfig, Sizer};
use tern_core::component::Exporter;
use tern_core::queue::{QueueBatching, QueueLimits, QueueUnit};

/// Why an exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The output file could not be opened.
    #[error("exporter {id}: cannot open {path}: {error}")]
    Open {
        /// Exporter id.
        id: String,
        /// File path.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("exporter {id}: {error}")]
    Tls {
        /// Exporter id.
        id: String,
        /// The TLS problem.
        error: tls::TlsError,
    },
    /// A setting cannot be used.
    #[error("exporter {id}: {message}")]
    Config {
        /// Exporter id.
        id: String,
        /// What is wrong.
        message: String,
    },
}

use tern_core::build;
pub use tern_core::build::ExporterSpec;

impl From<BuildError> for build::BuildError {
    fn from(e: BuildError) -> Self {
        build::BuildError::Component(Box::new(e))
    }
}

/// The queue of exporters without `sending_queue` settings (file, debug, nop).
pub const DEFAULT_LIMITS: QueueLimits = QueueLimits {
    size: 1000,
    unit: QueueUnit::Batches,
    max_bytes: 256 * 1024 * 1024,
    batch: None,
};

/// Exporters with `sending_queue`: `consumers` workers unless
/// `num_consumers` says otherwise, sharing a queue that batches with
/// `sending_queue.batch`.
pub fn queued<E: Exporter + Clone>(
    exporter: E,
    queue: &QueueConfig,
    consumers: u32,
) -> ExporterSpec {
    let max_bytes =
        usize::try_from(queue.max_size_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    if !queue.enabled {
        // No queue: the pipeline waits for each send and, as in the
        // Collector, the sender is answered with its outcome.
        return ExporterSpec {
            workers: vec![Box::new(exporter)],
            limits: QueueLimits {
                size: 1,
                unit: QueueUnit::Batches,
                max_bytes,
                batch: None,
            },
            block_on_overflow: true,
            wait_for_result: true,
            storage: None,
        };
    }
    let unit = |sizer: Sizer| match sizer {
        Sizer::Requests => QueueUnit::Batches,
        Sizer::Items => QueueUnit::Items,
        Sizer::Bytes => QueueUnit::Bytes,
    };
    let batch = queue.batching().map(|(b, sizer)| QueueBatching {
        flush_timeout: b.flush_timeout.0,
        min_size: usize::try_from(b.min_size).unwrap_or(usize::MAX),
        max_size: usize::try_from(b.max_size).unwrap_or(usize::MAX),
        unit: unit(sizer),
    });
    let workers = (0..queue.consumers(consumers).max(1))
        .map(|_| Box::new(exporter.clone()) as Box<dyn Exporter>)
        .collect();
    ExporterSpec {
        workers,
        limits: QueueLimits {
            size: usize::try_from(queue.queue_size).unwrap_or(usize::MAX),
            unit: unit(queue.sizer),
            max_bytes,
            batch,
        },
        block_on_overflow: queue.block_on_overflow,
        wait_for_result: queue.wait_for_result,
        storage: queue.storage.clone(),
    }
}

/// An exporter without `sending_queue` settings: one worker, the default queue.
pub fn single(exporter: Box<dyn Exporter>) -> ExporterSpec {
    ExporterSpec {
        workers: vec![exporter],
        limits: DEFAULT_LIMITS,
        block_on_overflow: true,
        wait_for_result: false,
        storage: None,
    }
}
