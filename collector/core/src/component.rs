//! What components implement and how pipelines connect them: the
//! [`Exporter`] and [`Processor`] traits, the [`Output`] a processor emits to,
//! the [`Fanout`] that copies a batch into each exporter's own queue and
//! into the entrances of the pipelines a connector feeds
//! ([`ConnectorHandle`]), and [`drive_exporter`], the task that feeds an
//! exporter from its queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::pdata::Batch;
use crate::queue::{BoundedQueue, Inlet, InletRx, Refusal};
use crate::telemetry::ExporterMetrics;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The data could not be encoded as asked.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The backend refused it for good (not retryable).
    #[error("{0}")]
    Send(String),
    /// A retryable failure that retries did not overcome (they ran out or
    /// are disabled).
    #[error("{0}")]
    Retryable(String),
}

impl ExportError {
    /// Whether sending the same data again cannot succeed.
    pub fn is_permanent(&self) -> bool {
        match self {
            ExportError::Encode(_) | ExportError::Send(_) => true,
            ExportError::Io(_) | ExportError::Retryable(_) => false,
        }
    }
}

/// What a backend said about an exported batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Items the backend rejected (OTLP `partial_success`); logged by the exporter.
    pub rejected: u64,
}

impl Delivered {
    /// Everything was accepted.
    pub const ALL: Delivered = Delivered { rejected: 0 };

    /// Items accepted out of `items`.
    pub fn accepted(&self, items: u64) -> u64 {
        items.saturating_sub(self.rejected)
    }
}

/// Sends batches somewhere. Each instance is driven by one worker task.
pub trait Exporter: Send + 'static {
    /// Exports one batch (retrying inside when the exporter retries).
    fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>>;
    /// Flushes and releases resources; called once, after the last export.
    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>>;
}

/// Where a processor sends its output.
#[derive(Debug, Clone)]
pub enum Output {
    /// The next processor.
    Next(Inlet),
    /// The pipeline's exporters.
    Fanout(Arc<Fanout>),
}

impl Output {
    /// Sends, waiting for room (backpressure).
    pub async fn send(&self, batch: Batch) {
        match self {
            Output::Next(inlet) => {
                let items = batch.items();
                if inlet.send(batch).await.is_err() {
                    tracing::error!(items, "next processor is gone; batch dropped");
                }
            }
            Output::Fanout(f) => f.send(batch).await,
        }
    }
}

/// A processor stage: reads its input until it closes, writes to `output`.
pub trait Processor: Send + 'static {
    /// Runs the stage to completion (input closed and everything flushed).
    fn run(self: Box<Self>, input: InletRx, output: Output) -> BoxFuture<'static, ()>;
}

/// One exporter as seen by a fan-out.
#[derive(Debug, Clone)]
pub struct ExporterHandle {
    /// Exporter id.
    pub id: String,
    /// Its queue.
    pub queue: Arc<BoundedQueue>,
    /// Its counters.
    pub metrics: ExporterMetrics,
    /// Senders wait for its exports (`sending_queue.wait_for_result`);
    /// other exporters' copies do not carry the senders' acks, except
    /// into a persistent queue, which settles them once it has logged the
    /// batch.
    pub wait_for_result: bool,
}

/// A connector (`forward`) as seen by the fan-out of a pipeline that
/// exports to it: the entrances of the pipelines it feeds. A batch crossing
/// it keeps its memory tickets and request contexts; it keeps its senders'
/// acks only into pipelines whose senders wait for the export, as an
/// exporter queue does; and it waits for room in each entrance and under
/// the memory limiters guarding it, so a full pipeline downstream slows the
/// one upstream (no queue of its own).
#[derive(Debug, Clone)]
pub struct ConnectorHandle {
    /// Connector id.
    pub id: String,
    /// Entrances of the pipelines it feeds.
    pub inlets: Vec<Inlet>,
}

/// Copies each batch into every exporter's queue and every connector's
/// pipelines.
#[derive(Debug)]
pub struct Fanout {
    exporters: Vec<ExporterHandle>,
    connectors: Vec<ConnectorHandle>,
}

impl Fanout {
    /// A fan-out to `exporters`.
    pub fn new(exporters: Vec<ExporterHandle>) -> Self {
        Fanout {
            exporters,
            connectors: Vec::new(),
        }
    }

    /// Also fans out to the pipelines `connectors` feed.
    pub fn with_connectors(mut self, connectors: Vec<ConnectorHandle>) -> Self {
        self.connectors = connectors;
        self
    }

    /// Delivers to every queue with room at once, then to the connectors'
    /// pipelines, then waits for room in the full queues, so a slow
    /// exporter delays only its own copy.
    pub async fn send(&self, batch: Batch) {
        let mut waiting = Vec::new();
        let n = self.exporters.len()
            + self
                .connectors
                .iter()
                .map(|c| c.inlets.len())
                .sum::<usize>();
        let mut batch = Some(batch);
        let mut sent = 0;
        let mut copy = || {
            sent += 1;
            if sent == n {
                batch.take()
            } else {
                batch.clone()
            }
        };
        for e in &self.exporters {
            let Some(mut b) = copy() else { continue };
            // A persistent queue settles the acks once the batch is logged.
            if !e.wait_for_result && e.queue.durable().is_none() {
                drop(b.take_acks());
            }
            match e.queue.try_push(b) {
                Ok(()) => {}
                Err((b, Refusal::Full)) => waiting.push((e, b)),
                Err((b, _)) => Self::lost(e, &b),
            }
        }
        for c in &self.connectors {
            for inlet in &c.inlets {
                let Some(mut b) = copy() else { continue };
                if !inlet.waits() {
                    drop(b.take_acks());
                }
                let (signal, items) = (b.signal(), b.items());
                // A closed entrance has failed the batch's acks already.
                if inlet.send_across(b).await.is_err() {
                    tracing::error!(
                        connector = %c.id,
                        %signal,
                        items,
                        reason = "pipeline is shutting down",
                        "dropped items"
                    );
                }
            }
        }
        for (e, b) in waiting {
            if let Err((b, _)) = e.queue.push(b).await {
                Self::lost(e, &b);
            }
        }
    }

    fn lost(e: &ExporterHandle, b: &Batch) {
        b.fail(false, "exporter queue closed");
        e.metrics
            .enqueue_failed
            .get(b.signal())
            .add(b.items() as u64);
        tracing::error!(
            exporter = %e.id,
            signal = %b.signal(),
            items = b.items(),
            reason = "exporter queue closed",
            "dropped items"
        );
    }
}

/// One exporter worker: feeds `exporter` from `queue` until the queue is
/// closed and empty, then shuts the exporter down. Several workers may share
/// a queue. Counts sent and failed items; when `abandon` turns true (the
/// shutdown deadline), the batch in hand is counted as failed and the
/// worker stops. The batch's acks are held until its export is over and
/// get its failure, so waiting senders learn the outcome.
pub async fn drive_exporter(
    id: String,
    mut exporter: Box<dyn Exporter>,
    queue: Arc<BoundedQueue>,
    metrics: ExporterMetrics,
    mut abandon: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let mut batch = tokio::select! {
            b = queue.pop() => match b {
                Some(b) => b,
                None => break,
            },
            _ = abandon.wait_for(|a| *a) => return,
        };
        let acks = batch.take_acks();
        let fail = |permanent: bool, message: &str| {
            for ack in &acks {
                ack.fail(permanent, message);
            }
        };
        let (signal, items) = (batch.signal(), batch.items() as u64);
        let result = tokio::select! {
            r = exporter.export(batch) => r,
            _ = abandon.wait_for(|a| *a) => {
                fail(false, "shutdown deadline");
                if queue.durable().is_some() {
                    tracing::warn!(exporter = %id, %signal, items, "shutdown deadline: the batch in flight stays in the persistent queue");
                } else {
                    metrics.send_failed.get(signal).add(items);
                    tracing::error!(exporter = %id, %signal, items, reason = "shutdown deadline", "dropped items");
                }
                return;
            }
        };
        match result {
            Ok(report) => {
                metrics.sent.get(signal).add(report.accepted(items));
                if report.rejected > 0 {
                    metrics.send_failed.get(signal).add(report.rejected);
                }
            }
            Err(e) => {
                fail(e.is_permanent(), &e.to_string());
                metrics.send_failed.get(signal).add(items);
                tracing::error!(exporter = %id, %signal, items, error = %e, "export failed; items dropped");
            }
        }
        drop(acks);
    }
    if let Err(e) = exporter.shutdown().await {
        tracing::error!(exporter = %id, error = %e, "exporter shutdown failed");
    }
}

/// Builds a `forward` connector: it has no task of its own; the fan-out of
/// a pipeline exporting to it writes into the entrances of the pipelines it
/// feeds ([`ConnectorHandle`]).
pub fn build_forward(
    ctx: &crate::build::Context<'_>,
    c: &tern_config::Component,
) -> Result<crate::build::Built, crate::build::BuildError> {
    ctx.settings::<tern_config::ForwardConfig>(c)?;
    Ok(crate::build::Built::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Signal;
    use crate::ack::Ack;
    use crate::pdata::RequestContext;
    use crate::queue::inlet;

    fn batch(items: usize) -> Batch {
        Batch::from_wire_unchecked(
            Signal::Traces,
            bytes::Bytes::from(vec![0u8; items]),
            items,
            Arc::new(RequestContext::default()),
        )
    }

    /// A connector copies each batch into every pipeline it feeds; the
    /// sender's ack travels only into pipelines whose senders wait.
    #[tokio::test]
    async fn connectors_copy_into_each_pipeline_with_acks_where_senders_wait() {
        let (waits, mut waits_rx) = inlet(4, usize::MAX);
        let waits = waits.waiting_for_results();
        let (plain, mut plain_rx) = inlet(4, usize::MAX);
        let fanout = Fanout::new(Vec::new()).with_connectors(vec![ConnectorHandle {
            id: "forward".into(),
            inlets: vec![plain, waits],
        }]);
        let (ack, pending) = Ack::new();
        let mut b = batch(3);
        b.wait_on(ack);
        fanout.send(b).await;
        let mut plain_copy = plain_rx.recv().await.unwrap();
        let mut waiting_copy = waits_rx.recv().await.unwrap();
        assert_eq!((plain_copy.items(), waiting_copy.items()), (3, 3));
        assert!(plain_copy.take_acks().is_empty());
        let acks = waiting_copy.take_acks();
        assert_eq!(acks.len(), 1);
        acks[0].fail(true, "refused downstream");
        drop(acks);
        let failure = pending.outcome().await.unwrap_err();
        assert_eq!(failure.message, "refused downstream");
    }

    /// A full pipeline behind a connector makes the fan-out wait (no queue
    /// of its own), and a closed one fails the batch.
    #[tokio::test]
    async fn a_full_pipeline_behind_a_connector_makes_the_sender_wait() {
        let (tx, mut rx) = inlet(1, usize::MAX);
        let fanout = Arc::new(
            Fanout::new(Vec::new()).with_connectors(vec![ConnectorHandle {
                id: "forward".into(),
                inlets: vec![tx],
            }]),
        );
        fanout.send(batch(1)).await;
        let second = tokio::spawn({
            let fanout = fanout.clone();
            async move { fanout.send(batch(2)).await }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "waits for room downstream");
        assert_eq!(rx.recv().await.unwrap().items(), 1);
        second.await.unwrap();
        assert_eq!(rx.recv().await.unwrap().items(), 2);
        drop(rx);
        let (ack, pending) = Ack::new();
        let mut b = batch(1);
        b.wait_on(ack);
        let fanout = Fanout::new(Vec::new()).with_connectors(vec![ConnectorHandle {
            id: "forward".into(),
            inlets: vec![fanout.connectors[0].inlets[0].clone().waiting_for_results()],
        }]);
        fanout.send(b).await;
        assert!(
            pending.outcome().await.is_err(),
            "a closed pipeline fails it"
        );
    }

    /// The memory limiter of a pipeline fed by a connector counts what
    /// enters through the connector, and the connector waits while that
    /// limiter is full; a limiter the batch already passed upstream is not
    /// counted twice.
    #[tokio::test]
    async fn a_memory_limiter_behind_a_connector_applies_to_what_crosses_it() {
        let t = crate::telemetry::Telemetry::new();
        let gate = crate::memory::MemoryGate::new("memory_limiter", 100, 0, &t);
        let (tx, mut rx) = inlet(8, usize::MAX);
        let fanout = Arc::new(
            Fanout::new(Vec::new()).with_connectors(vec![ConnectorHandle {
                id: "forward".into(),
                inlets: vec![tx.with_gate(gate.clone())],
            }]),
        );
        fanout.send(batch(60)).await;
        assert_eq!(gate.used(), 60, "what crossed the connector is counted");
        let second = tokio::spawn({
            let fanout = fanout.clone();
            async move { fanout.send(batch(60)).await }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "waits for room under the limit");
        drop(rx.recv().await.unwrap());
        second.await.unwrap();
        assert_eq!(gate.used(), 60);
        drop(rx.recv().await.unwrap());
        assert_eq!(gate.used(), 0);
        let mut upstream = batch(30);
        upstream.hold(gate.try_admit(30).unwrap());
        fanout.send(upstream).await;
        assert_eq!(gate.used(), 30, "one ticket per limiter");
        assert_eq!(gate.refusals(), 0);
    }
}
