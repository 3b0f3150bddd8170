//! The `batch` processor, with the OpenTelemetry Collector's semantics:
//! `send_batch_size` items trigger a send, `timeout` sends whatever is
//! pending, `send_batch_max_size` splits bigger batches (by copying item
//! bytes into new envelopes, no decode). Input closing flushes everything.

use std::sync::Arc;
use std::time::Duration;

use tern_config::{BatchConfig, Signal};
use tern_core::component::{BoxFuture, Output, Processor};
use tern_core::pdata::{Batch, RequestContext};
use tern_core::queue::InletRx;
use tern_core::telemetry::{Counter, ProcessorMetrics, Telemetry};
use tokio::time::Instant;

/// See the module docs.
#[derive(Debug)]
pub struct BatchProcessor {
    id: String,
    send_batch_size: usize,
    send_batch_max_size: usize,
    timeout: Duration,
    signal: Signal,
    metrics: ProcessorMetrics,
    /// Batches sent because `send_batch_size` was reached.
    size_trigger: Counter,
    /// Batches sent because `timeout` elapsed.
    timeout_trigger: Counter,
}

impl BatchProcessor {
    /// Builds the processor `id` for `signal`.
    pub fn new(id: &str, config: &BatchConfig, signal: Signal, telemetry: &Arc<Telemetry>) -> Self {
        BatchProcessor {
            id: id.to_string(),
            send_batch_size: config.send_batch_size as usize,
            send_batch_max_size: config.send_batch_max_size as usize,
            timeout: config.timeout.0,
            signal,
            metrics: ProcessorMetrics::new(telemetry, id, signal),
            size_trigger: telemetry.counter(
                "otelcol_processor_batch_batch_size_trigger_send_total",
                "Times the batch was sent due to a size trigger.",
                &[("processor", id)],
            ),
            timeout_trigger: telemetry.counter(
                "otelcol_processor_batch_timeout_trigger_send_total",
                "Times the batch was sent due to a timeout trigger.",
                &[("processor", id)],
            ),
        }
    }

    /// Sends `pending` (or, when `keep_small_tail`, all but a last piece
    /// smaller than `send_batch_size`, which is returned).
    async fn emit(&self, pending: Batch, output: &Output, keep_small_tail: bool) -> Option<Batch> {
        if pending.is_empty() {
            return None;
        }
        let mut pieces = if self.send_batch_max_size > 0
            && pending.items() > self.send_batch_max_size
        {
            let items = pending.items();
            match pending.clone().split(self.send_batch_max_size) {
                Ok(pieces) => pieces,
                Err(e) => {
                    // Receivers validated the envelope; this is a bug, not bad input.
                    pending.fail(true, &format!("cannot split batch: {e}"));
                    tracing::error!(processor = %self.id, items, error = %e, "cannot split batch; items dropped");
                    return None;
                }
            }
        } else {
            vec![pending]
        };
        let tail = if keep_small_tail
            && pieces.len() > 1
            && pieces
                .last()
                .is_some_and(|p| p.items() < self.send_batch_size)
        {
            pieces.pop()
        } else {
            None
        };
        for piece in pieces {
            self.metrics.outgoing.add(piece.items() as u64);
            output.send(piece).await;
        }
        tail
    }

    async fn run_loop(self, mut input: InletRx, output: Output) {
        let fresh = || Batch::empty(self.signal, Arc::new(RequestContext::default()));
        let mut pending = fresh();
        let mut deadline: Option<Instant> = None;
        loop {
            let next = match deadline {
                Some(at) => tokio::select! {
                    b = input.recv() => Some(b),
                    _ = tokio::time::sleep_until(at) => None,
                },
                None => Some(input.recv().await),
            };
            match next {
                // Timeout: send everything pending.
                None => {
                    self.timeout_trigger.add(1);
                    let batch = std::mem::replace(&mut pending, fresh());
                    self.emit(batch, &output, false).await;
                    deadline = None;
                }
                // Input closed: flush and stop.
                Some(None) => {
                    let batch = std::mem::replace(&mut pending, fresh());
                    self.emit(batch, &output, false).await;
                    return;
                }
                Some(Some(batch)) => {
                    self.metrics.incoming.add(batch.items() as u64);
                    if self.timeout.is_zero() {
                        self.emit(batch, &output, false).await;
                        continue;
                    }
                    if pending.is_empty() {
                        deadline = Some(Instant::now() + self.timeout);
                    }
                    pending.append(batch);
                    if self.send_batch_size > 0 && pending.items() >= self.send_batch_size {
                        self.size_trigger.add(1);
                        let batch = std::mem::replace(&mut pending, fresh());
                        match self.emit(batch, &output, true).await {
                            Some(tail) => {
                                pending = tail;
                                deadline = Some(Instant::now() + self.timeout);
                            }
                            None => deadline = None,
                        }
                    }
                }
            }
        }
    }
}

impl Processor for BatchProcessor {
    fn run(self: Box<Self>, input: InletRx, output: Output) -> BoxFuture<'static, ()> {
        Box::pin(self.run_loop(input, output))
    }
}

/// Builds a `batch` processor: one task per pipeline listing it.
pub fn build(
    ctx: &tern_core::build::Context<'_>,
    c: &tern_config::Component,
) -> Result<tern_core::build::Built, tern_core::build::BuildError> {
    let (config, id, telemetry) = (
        ctx.settings::<BatchConfig>(c)?.clone(),
        ctx.id.clone(),
        ctx.telemetry.clone(),
    );
    Ok(tern_core::build::Built::stage(move |signal| {
        Box::new(BatchProcessor::new(&id, &config, signal, &telemetry))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    use tern_config::GoDuration;
    use tern_core::component::{ExporterHandle, Fanout};
    use tern_core::queue::{BoundedQueue, QueueLimits, QueueUnit, admit_all, inlet};
    use tern_core::telemetry::{ExporterMetrics, Gauge};

    fn spans(first: u32, n: u32) -> Batch {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (first..first + n)
                        .map(|i| Span {
                            name: format!("s{i}"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Batch::from_wire(
            Signal::Traces,
            Bytes::from(req.encode_to_vec()),
            Arc::new(RequestContext::default()),
        )
        .unwrap()
    }

    fn names(b: &Batch) -> Vec<String> {
        let req = ExportTraceServiceRequest::decode(b.to_wire()).unwrap();
        req.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect()
    }

    struct Rig {
        input: tern_core::queue::Inlet,
        out: Arc<BoundedQueue>,
        task: tokio::task::JoinHandle<()>,
        telemetry: Arc<Telemetry>,
    }

    fn rig(size: u32, max: u32, timeout: Duration) -> Rig {
        let telemetry = Telemetry::new();
        let cfg = BatchConfig {
            send_batch_size: size,
            send_batch_max_size: max,
            timeout: GoDuration(timeout),
        };
        let p = Box::new(BatchProcessor::new(
            "batch",
            &cfg,
            Signal::Traces,
            &telemetry,
        ));
        let (input, rx) = inlet(16, 1 << 30);
        let limits = QueueLimits {
            size: 1000,
            unit: QueueUnit::Batches,
            max_bytes: 1 << 30,
            batch: None,
        };
        let out = BoundedQueue::new(limits, Gauge::default());
        let fanout = Fanout::new(vec![ExporterHandle {
            id: "test".into(),
            queue: out.clone(),
            metrics: ExporterMetrics::new(&telemetry, "test"),
            wait_for_result: false,
        }]);
        let task = tokio::spawn(p.run(rx, Output::Fanout(Arc::new(fanout))));
        Rig {
            input,
            out,
            task,
            telemetry,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn size_trigger_sends_without_waiting_for_timeout() {
        let r = rig(10, 0, Duration::from_secs(3600));
        admit_all(std::slice::from_ref(&r.input), spans(0, 6)).unwrap();
        admit_all(std::slice::from_ref(&r.input), spans(6, 6)).unwrap();
        let b = r.out.pop().await.unwrap();
        assert_eq!(b.items(), 12);
        assert_eq!(
            names(&b),
            (0..12).map(|i| format!("s{i}")).collect::<Vec<_>>()
        );
        drop(r.input);
        r.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_sends_partial_batch() {
        let r = rig(100, 0, Duration::from_millis(200));
        let start = Instant::now();
        admit_all(std::slice::from_ref(&r.input), spans(0, 3)).unwrap();
        let b = r.out.pop().await.unwrap();
        assert_eq!(b.items(), 3);
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        assert!(
            r.telemetry.render().contains(
                "otelcol_processor_batch_timeout_trigger_send_total{processor=\"batch\"} 1"
            )
        );
        drop(r.input);
        r.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn max_size_splits_and_keeps_order() {
        let r = rig(4, 5, Duration::from_millis(200));
        admit_all(std::slice::from_ref(&r.input), spans(0, 12)).unwrap();
        // 12 items, max 5: pieces of 5, 5 and a tail of 2 (< 4) kept for the timeout.
        let a = r.out.pop().await.unwrap();
        let b = r.out.pop().await.unwrap();
        assert_eq!((a.items(), b.items()), (5, 5));
        let start = Instant::now();
        let c = r.out.pop().await.unwrap();
        assert_eq!(c.items(), 2);
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        let all: Vec<String> = [a, b, c].iter().flat_map(names).collect();
        assert_eq!(all, (0..12).map(|i| format!("s{i}")).collect::<Vec<_>>());
        drop(r.input);
        r.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn close_flushes_pending() {
        let r = rig(1000, 0, Duration::from_secs(3600));
        admit_all(std::slice::from_ref(&r.input), spans(0, 7)).unwrap();
        tokio::task::yield_now().await;
        drop(r.input);
        r.task.await.unwrap();
        assert_eq!(r.out.pop().await.unwrap().items(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_timeout_passes_through() {
        let r = rig(1000, 0, Duration::ZERO);
        admit_all(std::slice::from_ref(&r.input), spans(0, 2)).unwrap();
        assert_eq!(r.out.pop().await.unwrap().items(), 2);
        drop(r.input);
        r.task.await.unwrap();
    }
}
