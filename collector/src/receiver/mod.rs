//! The `otlp` receiver: [`grpc`] and [`http`] servers that hand each export
//! request, still as wire bytes, to an [`OtlpSink`]. The sink counts the
//! items, pushes the batch into every pipeline of its signal (all or none)
//! and says what to answer: accepted, malformed, or retry later.

pub mod cors;
pub mod grpc;
pub mod http;

use std::sync::Arc;

use bytes::Bytes;
use tern_config::Signal;
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
    /// `signal`. Returns the item count on success.
    pub fn consume(
        &self,
        signal: Signal,
        request: Bytes,
        context: Arc<RequestContext>,
    ) -> Result<usize, ReceiveError> {
        let inlets = self.consumers.get(signal);
        if inlets.is_empty() {
            self.metrics.request_refused("no_pipeline");
            return Err(ReceiveError::NoPipeline(signal));
        }
        let batch = Batch::from_wire(signal, request, context).map_err(|e| {
            self.metrics.request_refused(e.reason().as_str());
            tracing::debug!(receiver = %self.id, %signal, error = %e, "refused invalid request");
            ReceiveError::Malformed(e.to_string())
        })?;
        let items = batch.items();
        if items == 0 {
            return Ok(0);
        }
        match admit_all(inlets, batch) {
            Ok(()) => {
                self.metrics.accepted.get(signal).add(items as u64);
                Ok(items)
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
}

/// Lower-cased header pairs kept when `include_metadata` is on.
pub fn metadata_pairs(headers: &::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}
