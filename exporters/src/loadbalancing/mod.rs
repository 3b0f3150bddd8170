//! The `loadbalancing` exporter: keeps each trace (or service, resource,
//! metric, stream) on one backend, so that tail sampling and span metrics
//! behind it see all of it.
//!
//! A batch from the exporter's own queue is split by routing key
//! ([`route`], over the wire bytes) and each part goes to its owner on the
//! consistent-hashing [`ring`]. Every backend is an `otlp` (gRPC) exporter
//! built from `protocol.otlp` with its own queue and workers
//! (`protocol.otlp.sending_queue`), so a slow or down backend holds up
//! only its own share; it retries per `protocol.otlp.retry_on_failure`
//! and, when that runs out, its share fails with the reason (the senders
//! waiting on the batch learn it). The [`resolver`] publishes the backend
//! list (`static`, `dns`, `k8s` in [`k8s`], addresses looked up by
//! [`dns`]); when it changes, the ring is rebuilt, new backends start,
//! and a backend that left is closed: what was queued for it, and what it
//! was still sending, is routed again to the new owners, never dropped
//! (`tern_loadbalancer_rerouted_items_total` counts it).
//!
//! Self-metrics are the Collector's: `otelcol_loadbalancer_num_backends`,
//! `otelcol_loadbalancer_num_resolutions`,
//! `otelcol_loadbalancer_num_backend_updates`,
//! `otelcol_loadbalancer_backend_outcome{endpoint,success}` and
//! `otelcol_loadbalancer_backend_latency{endpoint}` (whole milliseconds on
//! the Collector's buckets, 5 ms to 5 s).

pub mod dns;
pub mod identity;
pub mod k8s;
pub mod resolver;
pub mod ring;
pub mod route;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use tern_config::{LoadBalancingConfig, QueueConfig, Signal};
use tern_core::ack::{Ack, Pending};
use tern_core::component::{BoxFuture, Delivered, ExportError, Exporter};
use tern_core::pdata::Batch;
use tern_core::queue::{BoundedQueue, Refusal};
use tern_core::telemetry::{Counter, Gauge, Histogram, HistogramUnit, Telemetry};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::retry::{Failure, with_retry};
use crate::{BuildError, ExporterSpec, queued};
use ring::Ring;

/// The port dialled when an endpoint has none (the Collector's).
const DEFAULT_PORT: &str = "4317";
/// How long an export waits for the first resolution before failing.
const FIRST_RESOLUTION: Duration = Duration::from_secs(5);
/// Buckets (ms) of `otelcol_loadbalancer_backend_latency`, the Collector's.
const LATENCY_BOUNDS_MS: [f64; 10] = [
    5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];
/// Times a part is routed again when its backend left meanwhile.
const REROUTES: usize = 4;

/// `host:port` to dial for a ring endpoint.
fn dial(endpoint: &str) -> String {
    let has_port = match endpoint.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        endpoint.to_string()
    } else {
        format!("{endpoint}:{DEFAULT_PORT}")
    }
}

/// One backend: its queue, workers and counters.
struct Backend {
    endpoint: String,
    queue: Arc<BoundedQueue>,
    block_on_overflow: bool,
    /// Turns true when the backend leaves the ring.
    removed: watch::Sender<bool>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    succeeded: Counter,
    failed: Counter,
    /// Exports finished (either way): whether the backend is moving.
    sent: AtomicU64,
    /// Items whose export failed, per signal.
    failed_items: [Counter; 3],
    latency: Histogram,
}

/// The ring and the backend of each of its endpoints.
#[derive(Default)]
struct State {
    ring: Ring,
    backends: Vec<Option<Arc<Backend>>>,
    /// Workers of backends that left, awaited at shutdown.
    retired: Vec<JoinHandle<()>>,
}

struct Shared {
    id: String,
    config: LoadBalancingConfig,
    telemetry: Arc<Telemetry>,
    state: RwLock<State>,
    /// Bumped at each ring change (exports wait for the first).
    generation: watch::Sender<u64>,
    rerouted: [Counter; 3],
    /// Exports wait for the backends' outcome (see [`waits`]).
    wait: bool,
    /// Exporter workers not yet shut down; the last one stops everything.
    live: AtomicUsize,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// `loadbalancing`: one per worker of the exporter's queue, sharing the
/// ring and the backends.
#[derive(Clone)]
pub struct LoadBalancingExporter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LoadBalancingExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadBalancingExporter")
            .field("id", &self.shared.id)
            .finish()
    }
}

/// Builds exporter `id` (inside the runtime: the resolver and the
/// backends' workers are tasks).
pub fn build(
    id: &str,
    config: &LoadBalancingConfig,
    telemetry: &Arc<Telemetry>,
) -> Result<ExporterSpec, BuildError> {
    let (stop, stop_rx) = watch::channel(false);
    let rerouted = Signal::ALL.map(|s| {
        telemetry.counter(
            "tern_loadbalancer_rerouted_items_total",
            "Items routed again because their backend left the ring before sending them.",
            &[("exporter", id), ("signal", s.as_str())],
        )
    });
    let shared = Arc::new(Shared {
        id: id.to_string(),
        config: config.clone(),
        telemetry: telemetry.clone(),
        state: RwLock::new(State::default()),
        generation: watch::channel(0).0,
        rerouted,
        wait: waits(config),
        live: AtomicUsize::new(0),
        stop,
        tasks: Mutex::new(Vec::new()),
    });
    let (tx, mut rx) = watch::channel(None::<Vec<String>>);
    let metrics = resolver::ResolverMetrics::new(telemetry, resolver::name(&config.resolver));
    if let Some(s) = config.resolver.static_list.as_ref() {
        // Ready before the first batch, as the Collector's static resolver.
        let mut list = s.hostnames.clone();
        list.sort();
        metrics.resolved(list.clone(), &tx);
        rx.mark_unchanged();
        shared.apply(list);
    } else {
        let resolving = tokio::spawn(resolver::run(
            id.to_string(),
            config.resolver.clone(),
            metrics,
            tx,
            stop_rx.clone(),
        ));
        let weak = Arc::downgrade(&shared);
        let applying = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let list = rx.borrow_and_update().clone().unwrap_or_default();
                let Some(shared) = weak.upgrade() else { return };
                shared.apply(list);
            }
        });
        shared.lock_tasks().extend([resolving, applying]);
    }
    let exporter = LoadBalancingExporter {
        shared: shared.clone(),
    };
    let spec = queued(
        exporter,
        &config.sending_queue,
        QueueConfig::DEFAULT_CONSUMERS,
    );
    shared.live.store(spec.workers.len(), Ordering::SeqCst);
    Ok(spec)
}

/// Whether an export waits until its parts are sent, not only queued at
/// their backends: when a sender waits for the outcome (the exporter's
/// `sending_queue.wait_for_result`, or no queue) or the backends' queues
/// answer only once sent (`protocol.otlp.sending_queue` likewise). As in
/// the Collector, an export otherwise succeeds once every part is queued.
fn waits(config: &LoadBalancingConfig) -> bool {
    let q = &config.sending_queue;
    let b = &config.protocol.otlp.sending_queue;
    q.wait_for_result || !q.enabled || b.wait_for_result || !b.enabled
}

impl Shared {
    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the backend for `endpoint`.
    fn start_backend(self: &Arc<Self>, endpoint: &str) -> Result<Arc<Backend>, BuildError> {
        let mut otlp = self.config.protocol.otlp.clone();
        otlp.endpoint = dial(endpoint);
        let exporter = crate::otlp::OtlpGrpcExporter::new(&self.id, &otlp)?;
        let spec = queued(
            exporter,
            &otlp.sending_queue,
            QueueConfig::DEFAULT_CONSUMERS,
        );
        let outcome = |success| {
            self.telemetry.counter(
                "otelcol_loadbalancer_backend_outcome_total",
                "Number of successes and failures for each endpoint.",
                &[("endpoint", endpoint), ("success", success)],
            )
        };
        let backend = Arc::new(Backend {
            endpoint: endpoint.to_string(),
            queue: BoundedQueue::new(spec.limits, Gauge::default()),
            block_on_overflow: spec.block_on_overflow,
            removed: watch::channel(false).0,
            workers: Mutex::new(Vec::new()),
            succeeded: outcome("true"),
            failed: outcome("false"),
            sent: AtomicU64::new(0),
            failed_items: Signal::ALL.map(|s| {
                self.telemetry.counter(
                    "tern_loadbalancer_backend_failed_items_total",
                    "Items a backend failed to take after its retries.",
                    &[("endpoint", endpoint), ("signal", s.as_str())],
                )
            }),
            latency: self.telemetry.histogram_in(
                "otelcol_loadbalancer_backend_latency",
                "Response latency in ms for the backends.",
                &[("endpoint", endpoint)],
                HistogramUnit::Milliseconds,
                &LATENCY_BOUNDS_MS,
            ),
        });
        let handles = spec
            .workers
            .into_iter()
            .map(|w| tokio::spawn(send_to_backend(Arc::downgrade(self), backend.clone(), w)))
            .collect();
        *backend.workers.lock().unwrap_or_else(|e| e.into_inner()) = handles;
        Ok(backend)
    }

    /// Takes a new endpoint list: rebuilds the ring, starts the backends
    /// that joined, and retires those that left, routing what they held
    /// to the new owners.
    fn apply(self: &Arc<Self>, endpoints: Vec<String>) {
        let ring = Ring::new(&endpoints);
        let mut left = Vec::new();
        {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            if state.ring == ring {
                return;
            }
            let mut old: HashMap<String, Arc<Backend>> = std::mem::take(&mut state.backends)
                .into_iter()
                .flatten()
                .map(|b| (b.endpoint.clone(), b))
                .collect();
            let backends = ring
                .endpoints()
                .iter()
                .map(|e| match old.remove(e) {
                    Some(b) => Some(b),
                    None => match self.start_backend(e) {
                        Ok(b) => Some(b),
                        Err(error) => {
                            tracing::error!(exporter = %self.id, endpoint = %e, %error, "cannot create the exporter of a backend");
                            None
                        }
                    },
                })
                .collect();
            state.ring = ring;
            state.backends = backends;
            for gone in old.into_values() {
                gone.removed.send_replace(true);
                gone.queue.close();
                state.retired.extend(
                    gone.workers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .drain(..),
                );
                left.push(gone);
            }
        }
        self.generation.send_modify(|g| *g += 1);
        for gone in left {
            let queued = gone.queue.drain();
            tracing::info!(
                exporter = %self.id,
                endpoint = %gone.endpoint,
                batches = queued.len(),
                "backend left; its queued data goes to the new owners"
            );
            let this = self.clone();
            tokio::spawn(async move {
                for batch in queued {
                    this.reroute(batch).await;
                }
            });
        }
    }

    /// Routes again a part whose backend left (it keeps its acks).
    async fn reroute(self: &Arc<Self>, batch: Batch) {
        let (signal, items) = (batch.signal(), batch.items() as u64);
        self.rerouted[signal_index(signal)].add(items);
        match self.deliver(batch, false, false).await {
            Ok(sent) => {
                for (part, reason) in sent.refused {
                    part.fail(false, &reason);
                    tracing::error!(exporter = %self.id, %signal, items = part.items(), %reason, "rerouted items dropped");
                }
            }
            Err((batch, e)) => {
                batch.fail(e.is_permanent(), &e.to_string());
                tracing::error!(exporter = %self.id, %signal, items, error = %e, "rerouted items dropped");
            }
        }
    }

    /// Splits `batch` by owner and queues each part at its backend (with
    /// `track`, each part gets an ack to await; see [`push`] for a full
    /// queue). Parts whose backend left meanwhile are routed again.
    async fn deliver(
        self: &Arc<Self>,
        batch: Batch,
        track: bool,
        bounded: bool,
    ) -> Result<Sent, (Batch, ExportError)> {
        let wait = self.config.protocol.otlp.timeout.0;
        let mut sent = Sent::default();
        let mut todo = vec![batch];
        for round in 0..REROUTES {
            let mut again = Vec::new();
            for batch in todo {
                let (parts, unroutable) = match self.split(&batch) {
                    Ok(split) => split,
                    Err(e) => return Err((batch, e)),
                };
                sent.unroutable += unroutable;
                for (backend, kept) in parts {
                    let (pushed, pending) = push(&backend, &kept, track, bounded, wait).await;
                    match (pushed, pending) {
                        (Ok(()), Some(pending)) => sent.pending.push((kept, pending)),
                        (Ok(()), None) => {}
                        (Err(Refusal::Closed), _) if round + 1 < REROUTES => again.push(kept),
                        (Err(Refusal::Full), _) => sent.refused.push((
                            kept,
                            format!(
                                "the queue of backend {} stayed full while it sent nothing for {wait:?}",
                                backend.endpoint
                            ),
                        )),
                        (Err(refusal), _) => sent
                            .refused
                            .push((kept, format!("backend {}: {refusal}", backend.endpoint))),
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            todo = again;
        }
        Ok(sent)
    }

    /// Each owner's part of `batch` with its backend, and the items that
    /// cannot be routed.
    fn split(&self, batch: &Batch) -> Result<(Parts, u64), ExportError> {
        let key = self.config.routing_key_for(batch.signal());
        let state = self.read();
        if state.ring.is_empty() {
            return Err(ExportError::Retryable("no backends resolved yet".into()));
        }
        let split = route::split(batch, key, &state.ring)
            .map_err(|e| ExportError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(split.parts.len());
        for (owner, part) in split.parts {
            match state.backends.get(usize::from(owner)).cloned().flatten() {
                Some(b) => out.push((b, part)),
                None => {
                    let endpoint = state
                        .ring
                        .endpoints()
                        .get(usize::from(owner))
                        .cloned()
                        .unwrap_or_default();
                    return Err(ExportError::Retryable(format!(
                        "couldn't find the exporter for the endpoint {endpoint:?}"
                    )));
                }
            }
        }
        Ok((out, split.unroutable as u64))
    }

    /// One attempt: sends what is left in `left`, waits for every part,
    /// and leaves the parts that failed in `left` for the next attempt.
    async fn attempt(self: &Arc<Self>, left: &Mutex<Option<Batch>>) -> Result<u64, Failure> {
        let Some(batch) = left.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(0);
        };
        self.wait_for_backends().await;
        let sent = match self.deliver(batch, self.wait, true).await {
            Ok(sent) => sent,
            Err((batch, e)) => {
                let permanent = e.is_permanent();
                *left.lock().unwrap_or_else(|e| e.into_inner()) = Some(batch);
                return Err(if permanent {
                    Failure::Permanent(e.to_string())
                } else {
                    Failure::Retryable {
                        message: e.to_string(),
                        delay: None,
                    }
                });
            }
        };
        let mut failed: Option<Batch> = None;
        let mut reasons = Vec::new();
        let mut permanent = true;
        let mut add = |part: Batch, reason: String, perm: bool, failed: &mut Option<Batch>| {
            permanent &= perm;
            reasons.push(format!("{} items: {reason}", part.items()));
            match failed {
                Some(f) => f.append(part),
                None => *failed = Some(part),
            }
        };
        for (part, reason) in sent.refused {
            add(part, reason, false, &mut failed);
        }
        for (part, pending) in sent.pending {
            if let Err(f) = pending.outcome().await {
                add(part, f.message, f.permanent, &mut failed);
            }
        }
        let Some(failed) = failed else {
            return Ok(sent.unroutable);
        };
        let message = reasons.join("; ");
        *left.lock().unwrap_or_else(|e| e.into_inner()) = Some(failed);
        Err(if permanent {
            Failure::Permanent(message)
        } else {
            Failure::Retryable {
                message,
                delay: None,
            }
        })
    }

    /// Waits (a bounded time) for the resolver's first list.
    async fn wait_for_backends(&self) {
        let mut generation = self.generation.subscribe();
        let _ = tokio::time::timeout(FIRST_RESOLUTION, generation.wait_for(|g| *g > 0)).await;
    }

    /// Stops the resolver and lets every backend send what it holds.
    async fn close(&self) {
        self.stop.send_replace(true);
        let tasks: Vec<_> = self.lock_tasks().drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        let (backends, retired) = {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            (
                std::mem::take(&mut state.backends),
                std::mem::take(&mut state.retired),
            )
        };
        let mut workers = retired;
        for b in backends.into_iter().flatten() {
            b.queue.close();
            workers.extend(
                b.workers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain(..),
            );
        }
        for w in workers {
            let _ = w.await;
        }
    }
}

/// The parts of a batch, each with its backend.
type Parts = Vec<(Arc<Backend>, Batch)>;

/// Queues a copy of `part` at `backend` (with `track`, tied to a new ack
/// whose outcome is returned). A full queue is waited for: without end
/// when the backend's `sending_queue.block_on_overflow` says so, or when
/// `bounded` is false (rerouting: the part carries its senders' acks);
/// otherwise for as long as the backend keeps sending, and refused once
/// it has sent nothing for `wait` (`protocol.otlp.timeout`), so that a
/// stuck backend does not stall the others.
async fn push(
    backend: &Backend,
    part: &Batch,
    track: bool,
    bounded: bool,
    wait: Duration,
) -> (Result<(), Refusal>, Option<Pending>) {
    loop {
        let mut copy = part.clone();
        let pending = track.then(|| {
            let (ack, pending) = Ack::new();
            copy.wait_on(ack);
            pending
        });
        if backend.block_on_overflow || !bounded {
            return (backend.queue.push(copy).await.map_err(|(_, r)| r), pending);
        }
        let sent = backend.sent.load(Ordering::Relaxed);
        match tokio::time::timeout(wait, backend.queue.push(copy)).await {
            Ok(pushed) => return (pushed.map_err(|(_, r)| r), pending),
            Err(_) if backend.sent.load(Ordering::Relaxed) != sent => {}
            Err(_) => return (Err(Refusal::Full), None),
        }
    }
}

/// What [`Shared::deliver`] did with the parts of a batch.
#[derive(Default)]
struct Sent {
    /// Queued parts (a copy) and their outcome.
    pending: Vec<(Batch, Pending)>,
    /// Parts no queue took, and why.
    refused: Vec<(Batch, String)>,
    /// Items no backend can take (a metric resource without `service.name`
    /// under `routing_key: service`).
    unroutable: u64,
}

fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

/// A backend's worker: sends what its queue holds. A failure is recorded
/// in the part's acks; a part in hand when the backend leaves the ring is
/// routed again instead.
async fn send_to_backend(
    shared: Weak<Shared>,
    backend: Arc<Backend>,
    mut exporter: Box<dyn Exporter>,
) {
    let mut removed = backend.removed.subscribe();
    while let Some(mut batch) = backend.queue.pop().await {
        let acks = batch.take_acks();
        let kept = batch.clone();
        let start = Instant::now();
        let outcome = tokio::select! {
            r = exporter.export(batch) => Some(r),
            _ = removed.wait_for(|r| *r) => None,
        };
        backend.sent.fetch_add(1, Ordering::Relaxed);
        match outcome {
            None => {
                let mut again = kept;
                for ack in acks {
                    again.wait_on(ack);
                }
                match shared.upgrade() {
                    Some(shared) => shared.reroute(again).await,
                    None => again.fail(false, "exporter stopped"),
                }
            }
            Some(Ok(_)) => {
                backend.latency.observe(start.elapsed());
                backend.succeeded.add(1);
            }
            Some(Err(e)) => {
                backend.latency.observe(start.elapsed());
                backend.failed.add(1);
                backend.failed_items[signal_index(kept.signal())].add(kept.items() as u64);
                let reason = format!("backend {}: {e}", backend.endpoint);
                for ack in &acks {
                    ack.fail(e.is_permanent(), &reason);
                }
                tracing::error!(endpoint = %backend.endpoint, signal = %kept.signal(), items = kept.items(), error = %e, "export to backend failed after its retries");
            }
        }
    }
    if let Err(e) = exporter.shutdown().await {
        tracing::error!(endpoint = %backend.endpoint, error = %e, "backend exporter shutdown failed");
    }
}

impl Exporter for LoadBalancingExporter {
    fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let left = Mutex::new(Some(batch));
            let once = || async {
                let timeout = shared.config.timeout.0;
                if timeout.is_zero() {
                    return shared.attempt(&left).await;
                }
                match tokio::time::timeout(timeout, shared.attempt(&left)).await {
                    Ok(r) => r,
                    Err(_) => Err(Failure::Retryable {
                        message: format!("no answer from every backend within {timeout:?}"),
                        delay: None,
                    }),
                }
            };
            let unroutable = with_retry(&shared.config.retry_on_failure, &shared.id, once).await?;
            if unroutable > 0 {
                tracing::warn!(
                    exporter = %shared.id,
                    items = unroutable,
                    reason = "resource without service.name",
                    "items cannot be routed and were dropped"
                );
            }
            Ok(Delivered {
                rejected: unroutable,
            })
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            if shared.live.fetch_sub(1, Ordering::SeqCst) == 1 {
                shared.close().await;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_a_port_dial_4317() {
        assert_eq!(dial("10.0.0.1"), "10.0.0.1:4317");
        assert_eq!(dial("gw:5317"), "gw:5317");
        assert_eq!(dial("[::1]"), "[::1]:4317");
        assert_eq!(dial("[::1]:4000"), "[::1]:4000");
    }
}
