//! The `otlp` receiver: [`grpc`] and [`http`] servers that hand each export
//! request, still as wire bytes, to an [`OtlpSink`]. The sink counts the
//! items, pushes the batch into every pipeline of its signal (all or none)
//! and says what to answer: accepted, malformed, or retry later. When an
//! exporter of those pipelines has `sending_queue.wait_for_result`, the
//! answer waits for the export ([`OtlpSink::outcome`]) and carries its
//! failure: permanent or retryable.

pub mod cors;
pub mod decompress;
pub mod grpc;
pub mod http;

use std::sync::Arc;

use bytes::Bytes;
use tern_config::Signal;
use tern_core::ack::{Ack, ExportFailure, Pending};
use tern_core::pdata::{Batch, RequestContext};
use tern_core::queue::{Inlet, Refusal, admit_all};
use tern_core::telemetry::ReceiverMetrics;

/// Pipeline entrances of one receiver, by signal.
#[derive(Debug, Clone, Default)]
pub struct Consumers {
    /// Traces pipelines.
    pub traces: Vec<Inlet>,
    /// Metrics pipelines.
    pub metrics: Vec<Inlet>,
    /// Logs pipelines.
    pub logs: Vec<Inlet>,
}

impl Consumers {
    /// The entrances for `signal`.
    pub fn get(&self, signal: Signal) -> &[Inlet] {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
        }
    }

    /// Mutable entrances for `signal`.
    pub fn get_mut(&mut self, signal: Signal) -> &mut Vec<Inlet> {
        match signal {
            Signal::Traces => &mut self.traces,
            Signal::Metrics => &mut self.metrics,
            Signal::Logs => &mut self.logs,
        }
    }
}

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The payload is not a valid export request.
    #[error("{0}")]
    Malformed(String),
    /// No pipeline of this signal is fed by this receiver.
    #[error("this receiver feeds no {0} pipeline")]
    NoPipeline(Signal),
    /// The pipelines cannot take it now.
    #[error("{0}; retry later")]
    Refused(Refusal),
    /// Its export failed (the sender waited for it: `wait_for_result`).
    #[error("export failed: {0}")]
    Failed(ExportFailure),
}

/// A request the pipelines took.
#[derive(Debug)]
pub struct Admitted {
    items: usize,
    signal: Signal,
    /// What to await before answering, when the sender waits for the export.
    pending: Option<Pending>,
}

impl Admitted {
    /// Whether it can be answered now (nobody waits for its export).
    pub fn settled(&self) -> bool {
        self.pending.is_none()
    }
}

/// Hands requests to the pipelines and counts them.
#[derive(Debug, Clone)]
pub struct OtlpSink {
    id: String,
    consumers: Arc<Consumers>,
    metrics: ReceiverMetrics,
}

impl OtlpSink {
    /// A sink for receiver `id` on one transport.
    pub fn new(id: &str, consumers: Arc<Consumers>, metrics: ReceiverMetrics) -> Self {
        OtlpSink {
            id: id.to_string(),
            consumers,
            metrics,
        }
    }

    /// The counters, for refusals a transport detects itself.
    pub fn metrics(&self) -> &ReceiverMetrics {
        &self.metrics
    }

    /// Counts the items of `request` and pushes it into every pipeline of
    /// `signal`. Unless [`Admitted::settled`], the answer must wait for
    /// [`OtlpSink::outcome`].
    pub fn consume(
        &self,
        signal: Signal,
        request: Bytes,
        context: Arc<RequestContext>,
    ) -> Result<Admitted, ReceiveError> {
        let inlets = self.consumers.get(signal);
        if inlets.is_empty() {
            self.metrics.request_refused("no_pipeline");
            return Err(ReceiveError::NoPipeline(signal));
        }
        let mut batch = Batch::from_wire(signal, request, context).map_err(|e| {
            self.metrics.request_refused(e.reason().as_str());
            tracing::debug!(receiver = %self.id, %signal, error = %e, "refused invalid request");
            ReceiveError::Malformed(e.to_string())
        })?;
        let items = batch.items();
        let mut admitted = Admitted {
            items,
            signal,
            pending: None,
        };
        if items == 0 {
            return Ok(admitted);
        }
        if inlets.iter().any(Inlet::waits) {
            let (ack, pending) = Ack::new();
            batch.wait_on(ack);
            admitted.pending = Some(pending);
        }
        match admit_all(inlets, batch) {
            Ok(()) => {
                if admitted.settled() {
                    self.metrics.accepted.get(signal).add(items as u64);
                }
                Ok(admitted)
            }
            Err(refusal) => {
                self.metrics.refused.get(signal).add(items as u64);
                self.metrics.request_refused(match refusal {
                    Refusal::Full => "pipeline_full",
                    Refusal::MemoryLimit => "memory_limit",
                    Refusal::Closed => "shutting_down",
                });
                if let Some(held_back) = self.metrics.refusal_log.allow() {
                    tracing::warn!(
                        receiver = %self.id,
                        %signal,
                        items,
                        reason = %refusal,
                        similar_since_last_line = held_back,
                        "refused request; the client was told to retry"
                    );
                }
                Err(ReceiveError::Refused(refusal))
            }
        }
    }

    /// Waits for the export of an admitted request and counts it as
    /// accepted or, when its export failed, refused. Returns its items.
    pub async fn outcome(&self, admitted: Admitted) -> Result<usize, ReceiveError> {
        let Admitted {
            items,
            signal,
            pending,
        } = admitted;
        let Some(pending) = pending else {
            return Ok(items);
        };
        match pending.outcome().await {
            Ok(()) => {
                self.metrics.accepted.get(signal).add(items as u64);
                Ok(items)
            }
            Err(failure) => {
                self.metrics.refused.get(signal).add(items as u64);
                self.metrics.request_refused("export_failed");
                tracing::debug!(receiver = %self.id, %signal, items, error = %failure, "export failed; told the waiting client");
                Err(ReceiveError::Failed(failure))
            }
        }
    }
}

/// Lower-cased header pairs kept when `include_metadata` is on.
pub fn metadata_pairs(headers: &::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}
