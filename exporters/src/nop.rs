//! The `nop` exporter: accepts every batch and discards it (benchmarks, tests).

use tern_config::{Component, NopConfig};
use tern_core::build::{BuildError, Built, Context};
use tern_core::component::{BoxFuture, Delivered, ExportError, Exporter};
use tern_core::pdata::Batch;

/// See the module docs.
#[derive(Debug, Default)]
pub struct NopExporter;

impl Exporter for NopExporter {
    fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>> {
        drop(batch);
        Box::pin(async { Ok(Delivered::ALL) })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Builds a `nop` exporter.
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    ctx.settings::<NopConfig>(c)?;
    Ok(Built::exporter(crate::single(Box::new(NopExporter))))
}
