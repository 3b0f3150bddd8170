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
//! (`tern_loadbalancer_rerouted_items_total` counts it), waiting for a new
//! list while there is no backend. An export keeps what its backends have
//! not taken yet (`Left`), so a retry after a `timeout` resends only that
//! and nothing is answered as exported that was not handed over.
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

use tern_config::{Component, LoadBalancingConfig, QueueConfig, Signal};
use tern_core::ack::{Ack, Pending};
use tern_core::build::{Built, Context};
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

impl Drop for Backend {
    /// What is still queued when the backend goes without its workers
    /// having sent it (the exporter was abandoned at the shutdown deadline)
    /// is failed, counted and logged, not lost without a word.
    fn drop(&mut self) {
        let left = self.queue.drain();
        if left.is_empty() {
            return;
        }
        let items: usize = left.iter().map(Batch::items).sum();
        for batch in &left {
            batch.fail(false, "shutdown deadline");
            self.failed_items[signal_index(batch.signal())].add(batch.items() as u64);
        }
        tracing::error!(
            endpoint = %self.endpoint,
            batches = left.len(),
            items,
            reason = "shutdown deadline",
            "backend queue not sent; items dropped"
        );
    }
}

/// The ring and the backend of each of its endpoints.
#[derive(Default)]
struct State {
    ring: Ring,
    backends: Vec<Option<Arc<Backend>>>,
    /// Workers of backends that left, awaited at shutdown.
    retired: Vec<JoinHandle<()>>,
}

/// Makes the exporter (workers and queue limits) of one backend endpoint.
type Connect = dyn Fn(&str) -> Result<ExporterSpec, BuildError> + Send + Sync;

struct Shared {
    id: String,
    config: LoadBalancingConfig,
    telemetry: Arc<Telemetry>,
    connect: Box<Connect>,
    state: RwLock<State>,
    /// Bumped at each ring change (exports wait for the first).
    generation: watch::Sender<u64>,
    rerouted: [Counter; 3],
    /// Items dropped, per signal, because no backend could take them.
    dropped: [Counter; 3],
    /// Routing again what backends that left held (awaited at shutdown).
    reroutes: Mutex<Vec<JoinHandle<()>>>,
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

/// Builds a `load_balancing` exporter from its settings (the runtime
/// registry's builder).
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, tern_core::build::BuildError> {
    let config = ctx.settings::<LoadBalancingConfig>(c)?;
    let mut beside = Vec::new();
    let auth = crate::otlp::client_auth(ctx, config.protocol.otlp.auth.as_ref(), &mut beside)?;
    Ok(Built {
        beside,
        ..Built::exporter(spec(&ctx.id, config, auth, ctx.telemetry)?)
    })
}

/// Builds exporter `id` (inside the runtime: the resolver and the
/// backends' workers are tasks).
fn spec(
    id: &str,
    config: &LoadBalancingConfig,
    auth: Option<Arc<tern_core::auth::ClientAuth>>,
    telemetry: &Arc<Telemetry>,
) -> Result<ExporterSpec, BuildError> {
    let (exporter_id, otlp) = (id.to_string(), config.protocol.otlp.clone());
    let connect = move |endpoint: &str| {
        let mut otlp = otlp.clone();
        otlp.endpoint = dial(endpoint);
        let exporter =
            crate::otlp::OtlpGrpcExporter::authenticated(&exporter_id, &otlp, auth.clone())?;
        Ok(queued(
            exporter,
            &otlp.sending_queue,
            QueueConfig::DEFAULT_CONSUMERS,
        ))
    };
    Ok(build_with(id, config, telemetry, Box::new(connect)).0)
}

/// [`build`] with the backends' exporters made by `connect`; also returns
/// what the exporter's workers share.
fn build_with(
    id: &str,
    config: &LoadBalancingConfig,
    telemetry: &Arc<Telemetry>,
    connect: Box<Connect>,
) -> (ExporterSpec, Arc<Shared>) {
    let (stop, stop_rx) = watch::channel(false);
    let rerouted = Signal::ALL.map(|s| {
        telemetry.counter(
            "tern_loadbalancer_rerouted_items_total",
            "Items routed again because their backend left the ring before sending them.",
            &[("exporter", id), ("signal", s.as_str())],
        )
    });
    let dropped = Signal::ALL.map(|s| {
        telemetry.counter(
            "tern_loadbalancer_dropped_items_total",
            "Items dropped because no backend could take them (none left at shutdown, or not routable).",
            &[("exporter", id), ("signal", s.as_str())],
        )
    });
    let shared = Arc::new(Shared {
        id: id.to_string(),
        config: config.clone(),
        telemetry: telemetry.clone(),
        connect,
        state: RwLock::new(State::default()),
        generation: watch::channel(0).0,
        rerouted,
        dropped,
        reroutes: Mutex::new(Vec::new()),
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
    (spec, shared)
}

/// Whether an export waits until its parts are sent, not only queued at
/// their backends: when a sender waits for the outcome (the exporter's
/// `sending_queue.wait_for_result`, or no queue), when the exporter's
/// queue is persistent (a record leaves the log only once its parts
/// reached their backends, since the backends' queues are in memory) or
/// the backends' queues answer only once sent
/// (`protocol.otlp.sending_queue` likewise). As in the Collector, an
/// export otherwise succeeds once every part is queued.
fn waits(config: &LoadBalancingConfig) -> bool {
    let q = &config.sending_queue;
    let b = &config.protocol.otlp.sending_queue;
    q.wait_for_result || !q.enabled || q.storage.is_some() || b.wait_for_result || !b.enabled
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
        let spec = (self.connect)(endpoint)?;
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
            let task = tokio::spawn(async move {
                for batch in queued {
                    this.reroute(batch).await;
                }
            });
            let mut reroutes = self.reroutes.lock().unwrap_or_else(|e| e.into_inner());
            reroutes.retain(|t| !t.is_finished());
            reroutes.push(task);
        }
    }

    /// Routes again a part whose backend left (it keeps its acks): queued
    /// at the new owners, waiting as long as it takes for room, and for a
    /// new backend list while there is no backend to take it (the resolver
    /// found none, or the new owner's exporter could not be made). Dropped,
    /// counted and logged only when the exporter stops with no backend for
    /// it.
    async fn reroute(self: &Arc<Self>, batch: Batch) {
        let (signal, items) = (batch.signal(), batch.items() as u64);
        self.rerouted[signal_index(signal)].add(items);
        let wait = self.config.protocol.otlp.timeout.0;
        let mut todo = vec![batch];
        loop {
            let seen = *self.generation.borrow();
            let mut again = Vec::new();
            let mut why = String::new();
            for piece in todo {
                match self.split(&piece) {
                    Ok((parts, unroutable)) => {
                        self.drop_unroutable(signal, unroutable);
                        for (backend, part) in parts {
                            // Unbounded: only a backend that left refuses.
                            if let (Err(refusal), _) =
                                push(&backend, &part, false, false, wait).await
                            {
                                why = format!("backend {}: {refusal}", backend.endpoint);
                                again.push(part);
                            }
                        }
                    }
                    Err(e) if e.is_permanent() => self.drop_items(&piece, &e.to_string()),
                    Err(e) => {
                        why = e.to_string();
                        again.push(piece);
                    }
                }
            }
            if again.is_empty() {
                return;
            }
            if !self.next_ring(seen).await {
                let reason =
                    format!("the exporter stopped with no backend for rerouted items ({why})");
                for piece in again {
                    self.drop_items(&piece, &reason);
                }
                return;
            }
            todo = again;
        }
    }

    /// Waits for a ring newer than generation `seen`; false when the
    /// exporter stops without one (no newer ring will come).
    async fn next_ring(&self, seen: u64) -> bool {
        let mut generation = self.generation.subscribe();
        let mut stop = self.stop.subscribe();
        tokio::select! {
            // A new ring wins over the stop that may follow it at once.
            biased;
            r = generation.wait_for(|g| *g > seen) => r.is_ok(),
            _ = stop.wait_for(|s| *s) => false,
        }
    }

    /// Fails, counts and logs items no backend can take.
    fn drop_items(&self, batch: &Batch, reason: &str) {
        let (signal, items) = (batch.signal(), batch.items());
        batch.fail(false, reason);
        self.dropped[signal_index(signal)].add(items as u64);
        tracing::error!(exporter = %self.id, %signal, items, %reason, "dropped items");
    }

    /// Counts items that cannot be routed (the Collector drops them too).
    fn drop_unroutable(&self, signal: Signal, items: u64) {
        if items > 0 {
            self.dropped[signal_index(signal)].add(items);
            tracing::warn!(
                exporter = %self.id,
                %signal,
                items,
                reason = "resource without service.name",
                "items cannot be routed and were dropped"
            );
        }
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

    /// One attempt: hands what is left in `left` to the backends (queued
    /// there; with [`Shared::wait`], sent), and fails with the reasons of
    /// what is still left. `left` only ever loses a part once its backend
    /// has it, so an attempt cut short (the exporter's `timeout`) leaves
    /// the rest for the next one: nothing is answered as exported that was
    /// not. Parts whose backend left meanwhile are routed again at once.
    async fn attempt(self: &Arc<Self>, left: &Left) -> Result<(), Failure> {
        self.wait_for_backends().await;
        let wait = self.config.protocol.otlp.timeout.0;
        let mut todo: Vec<usize> = left.remaining();
        let mut pending = Vec::new();
        let mut reasons = Vec::new();
        let mut permanent = true;
        for _ in 0..REROUTES {
            let mut closed = Vec::new();
            for i in todo {
                let Some(piece) = left.get(i) else { continue };
                let (parts, unroutable) = match self.split(&piece) {
                    Ok(split) => split,
                    Err(e) => {
                        permanent &= e.is_permanent();
                        reasons.push(e.to_string());
                        continue;
                    }
                };
                self.drop_unroutable(piece.signal(), unroutable);
                left.unroutable.fetch_add(unroutable, Ordering::Relaxed);
                let first = left.replace(i, parts.iter().map(|(_, p)| p.clone()));
                for (k, (backend, part)) in parts.into_iter().enumerate() {
                    let j = first + k;
                    match push(&backend, &part, self.wait, true, wait).await {
                        (Ok(()), Some(p)) => pending.push((j, p)),
                        (Ok(()), None) => left.done(j),
                        (Err(Refusal::Closed), _) => closed.push(j),
                        (Err(Refusal::Full), _) => {
                            permanent = false;
                            reasons.push(format!(
                                "{} items: the queue of backend {} stayed full while it sent nothing for {wait:?}",
                                part.items(),
                                backend.endpoint
                            ));
                        }
                        (Err(refusal), _) => {
                            permanent = false;
                            reasons.push(format!(
                                "{} items: backend {}: {refusal}",
                                part.items(),
                                backend.endpoint
                            ));
                        }
                    }
                }
            }
            if closed.is_empty() {
                break;
            }
            todo = closed;
        }
        for (j, p) in pending {
            match p.outcome().await {
                Ok(()) => left.done(j),
                Err(f) => {
                    permanent &= f.permanent;
                    reasons.push(format!("{} items: {}", left.items(j), f.message));
                }
            }
        }
        if left.remaining().is_empty() {
            return Ok(());
        }
        if reasons.is_empty() {
            permanent = false;
            reasons.push("the backend list kept changing".into());
        }
        let message = reasons.join("; ");
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

    /// Stops the resolver, lets what is being routed again reach its new
    /// owners, then lets every backend send what it holds.
    async fn close(&self) {
        self.stop.send_replace(true);
        let tasks: Vec<_> = self.lock_tasks().drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        // Backends that left route what they had in hand again, as do the
        // reroutes of their queues: both need the live backends' queues
        // open.
        let retired = std::mem::take(
            &mut self
                .state
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retired,
        );
        for w in retired {
            let _ = w.await;
        }
        loop {
            let reroutes: Vec<_> = self
                .reroutes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
                .collect();
            if reroutes.is_empty() {
                break;
            }
            for t in reroutes {
                let _ = t.await;
            }
        }
        let backends = std::mem::take(
            &mut self
                .state
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .backends,
        );
        let mut workers = Vec::new();
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

/// The parts of one export not yet handed to their backends, by index
/// (a part split again is replaced by its pieces, appended; a part handed
/// over is emptied), and the items that could not be routed.
struct Left {
    parts: Mutex<Vec<Option<Batch>>>,
    unroutable: AtomicU64,
}

impl Left {
    fn new(batch: Batch) -> Left {
        Left {
            parts: Mutex::new(vec![Some(batch)]),
            unroutable: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Batch>>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Indexes of the parts still to hand over.
    fn remaining(&self) -> Vec<usize> {
        let parts = self.lock();
        (0..parts.len()).filter(|i| parts[*i].is_some()).collect()
    }

    fn get(&self, i: usize) -> Option<Batch> {
        self.lock().get(i).cloned().flatten()
    }

    fn items(&self, i: usize) -> usize {
        self.lock()
            .get(i)
            .and_then(|p| p.as_ref().map(Batch::items))
            .unwrap_or(0)
    }

    /// Replaces part `i` with `pieces`; returns the index of the first.
    fn replace(&self, i: usize, pieces: impl Iterator<Item = Batch>) -> usize {
        let mut parts = self.lock();
        if let Some(p) = parts.get_mut(i) {
            *p = None;
        }
        let first = parts.len();
        parts.extend(pieces.map(Some));
        first
    }

    /// Part `i` is with its backend.
    fn done(&self, i: usize) {
        if let Some(p) = self.lock().get_mut(i) {
            *p = None;
        }
    }
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
            let left = Left::new(batch);
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
            with_retry(&shared.config.retry_on_failure, &shared.id, once).await?;
            Ok(Delivered {
                rejected: left.unroutable.load(Ordering::Relaxed),
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
    use std::collections::HashMap;

    use bytes::Bytes;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    use tern_config::{GoDuration, StaticResolverConfig};
    use tern_core::pdata::RequestContext;
    use tern_core::queue::QueueUnit;

    use super::*;

    #[test]
    fn endpoints_without_a_port_dial_4317() {
        assert_eq!(dial("10.0.0.1"), "10.0.0.1:4317");
        assert_eq!(dial("gw:5317"), "gw:5317");
        assert_eq!(dial("[::1]"), "[::1]:4317");
        assert_eq!(dial("[::1]:4000"), "[::1]:4000");
    }

    /// (endpoint, span ids) of each batch a fake backend sent.
    type Sent = Arc<Mutex<Vec<(String, Vec<Vec<u8>>)>>>;

    /// Backends in memory: each takes one batch at a time (a queue of one
    /// batch, one worker) and sends only while its gate is open.
    #[derive(Clone, Default)]
    struct Fakes {
        gates: Arc<Mutex<HashMap<String, watch::Sender<bool>>>>,
        sent: Sent,
    }

    struct Fake {
        endpoint: String,
        gate: watch::Receiver<bool>,
        sent: Sent,
    }

    impl Exporter for Fake {
        fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>> {
            Box::pin(async move {
                let _ = self.gate.wait_for(|open| *open).await;
                let req = ExportTraceServiceRequest::decode(batch.to_wire()).unwrap();
                let ids = req
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                    .map(|s| s.span_id.clone())
                    .collect();
                self.sent.lock().unwrap().push((self.endpoint.clone(), ids));
                Ok(Delivered::ALL)
            })
        }

        fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
            Box::pin(async { Ok(()) })
        }
    }

    impl Fakes {
        fn gate(&self, endpoint: &str) -> watch::Sender<bool> {
            self.gates
                .lock()
                .unwrap()
                .entry(endpoint.to_string())
                .or_insert_with(|| watch::channel(false).0)
                .clone()
        }

        fn connect(&self) -> Box<Connect> {
            let fakes = self.clone();
            Box::new(move |endpoint: &str| {
                Ok(ExporterSpec {
                    workers: vec![Box::new(Fake {
                        endpoint: endpoint.to_string(),
                        gate: fakes.gate(endpoint).subscribe(),
                        sent: fakes.sent.clone(),
                    })],
                    limits: tern_core::queue::QueueLimits {
                        size: 1,
                        unit: QueueUnit::Batches,
                        max_bytes: usize::MAX,
                        batch: None,
                    },
                    block_on_overflow: false,
                    wait_for_result: false,
                    storage: None,
                })
            })
        }

        /// Span ids sent, sorted.
        fn ids(&self) -> Vec<Vec<u8>> {
            let mut ids: Vec<Vec<u8>> = self
                .sent
                .lock()
                .unwrap()
                .iter()
                .flat_map(|(_, ids)| ids.clone())
                .collect();
            ids.sort();
            ids
        }
    }

    /// A batch of 8 spans of 8 traces, ids tagged with `tag`.
    fn spans(tag: u8) -> (Batch, Vec<Vec<u8>>) {
        let spans: Vec<Span> = (0..8u8)
            .map(|i| Span {
                trace_id: vec![i; 16],
                span_id: vec![tag, i, 0, 0, 0, 0, 0, 0],
                ..Default::default()
            })
            .collect();
        let ids = spans.iter().map(|s| s.span_id.clone()).collect();
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = Batch::from_wire(
            Signal::Traces,
            Bytes::from(req.encode_to_vec()),
            Arc::new(RequestContext::default()),
        )
        .unwrap();
        (batch, ids)
    }

    fn config(hostnames: &[&str]) -> LoadBalancingConfig {
        let mut c = LoadBalancingConfig::default();
        c.resolver.static_list = tern_config::Protocol::On(StaticResolverConfig {
            hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
        });
        c.protocol.otlp.timeout = GoDuration(Duration::from_secs(10));
        c
    }

    /// An export cut short by the exporter's `timeout` while a backend's
    /// queue is full leaves what it had not queued for the retry: once the
    /// backend sends again, every span of every acknowledged export is
    /// sent (an export answered as done had lost its unqueued part).
    #[tokio::test(start_paused = true)]
    async fn an_export_cut_short_by_its_timeout_keeps_what_it_had_not_queued() {
        let fakes = Fakes::default();
        let mut c = config(&["a"]);
        c.timeout = GoDuration(Duration::from_millis(50));
        c.retry_on_failure.enabled = true;
        c.retry_on_failure.initial_interval = GoDuration(Duration::from_millis(10));
        c.retry_on_failure.max_interval = GoDuration(Duration::from_millis(10));
        c.retry_on_failure.max_elapsed_time = GoDuration(Duration::ZERO);
        let (mut spec, shared) = build_with("lb", &c, &Telemetry::new(), fakes.connect());
        let mut lb = spec.workers.remove(0);
        let mut sent = Vec::new();
        // The first is in the backend's hands (held at its gate), the
        // second fills its queue.
        for tag in 0..2 {
            let (b, ids) = spans(tag);
            lb.export(b).await.unwrap();
            sent.extend(ids);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (b, ids) = spans(2);
        sent.extend(ids);
        let third = tokio::spawn(async move { lb.export(b).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !third.is_finished(),
            "answered while its spans were not queued"
        );
        fakes.gate("a").send_replace(true);
        third.await.unwrap().unwrap();
        shared.close().await;
        sent.sort();
        assert_eq!(fakes.ids(), sent);
    }

    /// What a backend that left held (in its queue and in hand) waits for
    /// a backend while the resolver lists none, and goes to the next one
    /// listed; with none listed at shutdown it is dropped, counted.
    #[tokio::test(start_paused = true)]
    async fn a_backend_list_that_empties_for_a_while_loses_nothing() {
        let fakes = Fakes::default();
        fakes.gate("b").send_replace(true);
        let telemetry = Telemetry::new();
        let (mut spec, shared) = build_with("lb", &config(&["a"]), &telemetry, fakes.connect());
        let mut lb = spec.workers.remove(0);
        let mut sent = Vec::new();
        for tag in 0..2 {
            let (b, ids) = spans(tag);
            lb.export(b).await.unwrap();
            sent.extend(ids);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The resolver finds nothing (a DNS answer without records, every
        // pod restarting), then a new backend.
        shared.apply(Vec::new());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(fakes.ids().is_empty());
        shared.apply(vec!["b".to_string()]);
        shared.close().await;
        sent.sort();
        assert_eq!(fakes.ids(), sent);
        assert!(fakes.sent.lock().unwrap().iter().all(|(e, _)| e == "b"));
        assert_eq!(shared.rerouted[0].get(), 16);
        assert_eq!(shared.dropped[0].get(), 0);

        // Nothing listed when the exporter stops: dropped and counted.
        let fakes = Fakes::default();
        let (mut spec, shared) = build_with("lb", &config(&["a"]), &telemetry, fakes.connect());
        let mut lb = spec.workers.remove(0);
        lb.export(spans(5).0).await.unwrap();
        shared.apply(Vec::new());
        shared.close().await;
        assert!(fakes.ids().is_empty());
        assert_eq!(shared.dropped[0].get(), 8);
    }
}
