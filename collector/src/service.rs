//! Builds and runs what a [`Config`] describes: exporters with their queues
//! and driver tasks, one chain of processor tasks per pipeline ending in a
//! fan-out (started in reverse topological order of the pipeline graph, so
//! the pipelines a connector feeds exist before the ones feeding it),
//! receivers pushing into pipeline entrances, the extensions
//! (health check, pprof, zPages), the self-metrics endpoint and the push
//! of Tern's own metrics and logs ([`crate::self_export`]).
//! [`Service::shutdown`] stops them in order: receivers, then processors
//! (which flush), then exporters (which drain their queues) within one
//! deadline, and names what it had to abandon.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tern_config::{
    ComponentId, Config, ExtensionConfig, MetricsLevel, PipelineConfig, PipelineId,
    ProcessorConfig, ReceiverConfig, graph,
};
use tern_core::component::{ConnectorHandle, ExporterHandle, Fanout, Output, drive_exporter};
use tern_core::memory::MemoryGate;
use tern_core::queue::{BoundedQueue, Inlet, InletRx, inlet};
use tern_core::telemetry::{ExporterMetrics, ReceiverMetrics, Telemetry};
use tern_processors::memory_limiter;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admin::{self, Health};
use crate::receiver::{Consumers, OtlpSink, grpc, http};
use crate::self_export::{PendingLogs, SelfExport};
use crate::{pprof, serve, zpages};

/// Batches a pipeline entrance holds before receivers are told to retry.
pub const PIPELINE_QUEUE_BATCHES: usize = 128;
/// Bytes a pipeline entrance holds before receivers are told to retry.
pub const PIPELINE_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Batches between two processors.
pub const STAGE_QUEUE_BATCHES: usize = 16;
/// How long, after the shutdown deadline, tasks get to notice that they
/// must give up, and how long the admin endpoints get to close.
pub const GIVE_UP_GRACE: Duration = Duration::from_secs(1);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] std::io::Error),
    /// An exporter could not be built.
    #[error(transparent)]
    Exporter(#[from] tern_exporters::BuildError),
    /// Receiver TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] serve::ServerTlsError),
}

/// A spawned task and what it is, for the shutdown log.
struct Task {
    what: String,
    handle: JoinHandle<()>,
    /// Its outcome has been collected (a `JoinHandle` is awaited once).
    joined: bool,
}

impl Task {
    fn new(what: impl Into<String>, handle: JoinHandle<()>) -> Task {
        Task {
            what: what.into(),
            handle,
            joined: false,
        }
    }

    /// Collects the outcome of a finished task; a panic is logged and
    /// added to `panicked`.
    async fn join(&mut self, panicked: &mut Vec<String>) {
        let outcome = (&mut self.handle).await;
        self.joined = true;
        if let Err(e) = outcome
            && e.is_panic()
        {
            tracing::error!(task = %self.what, "task panicked");
            panicked.push(self.what.clone());
        }
    }
}

/// How a shutdown went.
#[derive(Debug, Default, PartialEq)]
pub struct Stopped {
    /// Tasks that had not stopped by the deadline (and its grace).
    pub abandoned: Vec<String>,
    /// Tasks that had panicked.
    pub panicked: Vec<String>,
}

impl Stopped {
    /// Every task stopped on time and none panicked.
    pub fn is_clean(&self) -> bool {
        self.abandoned.is_empty() && self.panicked.is_empty()
    }
}

/// Each exporter's handle, and whether its queue blocks when full
/// (`sending_queue.block_on_overflow`).
type Handles = BTreeMap<ComponentId, (ExporterHandle, bool)>;

struct ExporterTask {
    id: String,
    queue: Arc<BoundedQueue>,
    metrics: ExporterMetrics,
    tasks: Vec<Task>,
}

/// A running collector.
pub struct Service {
    stop: watch::Sender<bool>,
    servers: Vec<Task>,
    pipelines: Vec<Task>,
    exporters: Vec<ExporterTask>,
    admin: Vec<Task>,
    stop_admin: watch::Sender<bool>,
    abandon: watch::Sender<bool>,
    health: Arc<Health>,
    self_export: Option<SelfExport>,
}

/// Waits until every task has finished or `until` passes; true if all
/// finished. Tasks that panicked are logged and added to `panicked`.
async fn join_until(tasks: &mut [Task], until: Instant, panicked: &mut Vec<String>) -> bool {
    let all = async {
        for task in tasks.iter_mut().filter(|t| !t.joined) {
            task.join(panicked).await;
        }
    };
    tokio::time::timeout_at(until, all).await.is_ok()
}

fn forward(mut rx: InletRx, fanout: Arc<Fanout>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            fanout.send(batch).await;
        }
    })
}

/// Extensions and the self-metrics endpoint: started first, so probes
/// answer "starting" while the rest starts.
async fn start_admin(
    config: &Config,
    telemetry: &Arc<Telemetry>,
    resource: &BTreeMap<String, String>,
    health: &Arc<Health>,
    admin_rx: &watch::Receiver<bool>,
    admin: &mut Vec<Task>,
) -> Result<(), StartError> {
    for ext in &config.service.extensions {
        if let Some(c) = config.extensions.get(&ext.id) {
            let key = format!("extensions.{}.endpoint", c.id);
            let listener = serve::bind(&c.config.endpoint().to_string(), &key).await?;
            let stop = admin_rx.clone();
            let handle = match &c.config {
                ExtensionConfig::HealthCheck(h) => {
                    tokio::spawn(admin::run_health(listener, h.clone(), health.clone(), stop))
                }
                ExtensionConfig::Pprof(p) => {
                    if !p.save_to_file.is_empty() {
                        let failed = |e: std::io::Error| {
                            std::io::Error::new(
                                e.kind(),
                                format!(
                                    "extensions.{}.save_to_file: {}: {e}",
                                    c.id, p.save_to_file
                                ),
                            )
                        };
                        let file = std::fs::File::create(&p.save_to_file).map_err(failed)?;
                        let saving =
                            pprof::save_to_file(file, p.save_to_file.clone(), stop.clone())
                                .map_err(failed)?;
                        admin.push(Task::new(
                            format!("extension {} (save_to_file)", c.id),
                            saving,
                        ));
                    }
                    tokio::spawn(pprof::run(listener, stop))
                }
                ExtensionConfig::ZPages(_) => tokio::spawn(zpages::run(
                    listener,
                    Arc::new(zpages::Pages::new(config, resource)),
                    stop,
                )),
            };
            admin.push(Task::new(format!("extension {}", c.id), handle));
        }
    }
    let metrics_cfg = &config.service.telemetry.metrics;
    if metrics_cfg.level != MetricsLevel::None
        && let Some(address) = &metrics_cfg.address
    {
        admin::publish_target_info(telemetry, resource);
        let listener =
            serve::bind(&address.to_string(), "service.telemetry.metrics.address").await?;
        admin.push(Task::new(
            "self-metrics endpoint",
            tokio::spawn(admin::run_metrics(
                listener,
                telemetry.clone(),
                admin_rx.clone(),
            )),
        ));
    }

    Ok(())
}

/// Exporters used by some pipeline, each with its own queue, workers and
/// (Prometheus) scrape endpoint; returns the handles pipelines fan out to.
async fn start_exporters(
    config: &Config,
    telemetry: &Arc<Telemetry>,
    abandon_rx: &watch::Receiver<bool>,
    admin_rx: &watch::Receiver<bool>,
    admin: &mut Vec<Task>,
) -> Result<(Handles, Vec<ExporterTask>), StartError> {
    let mut handles = Handles::new();
    let mut exporters = Vec::new();
    for pipeline in config.service.pipelines.values() {
        for r in &pipeline.exporters {
            if handles.contains_key(&r.id) {
                continue;
            }
            let Some(c) = config.exporters.get(&r.id) else {
                continue;
            };
            let id = r.id.to_string();
            let spec = tern_exporters::build(&id, &c.config, telemetry)?;
            if let Some((endpoint, handler)) = &spec.scrape {
                let key = format!("exporters.{id}.endpoint");
                let listener = serve::bind(&endpoint.to_string(), &key).await?;
                tracing::info!(exporter = %id, endpoint = %listener.local_addr()?, "Prometheus scrape endpoint listening");
                admin.push(Task::new(
                    format!("exporter {id} scrape endpoint"),
                    tokio::spawn(admin::run_scrape(
                        listener,
                        handler.clone(),
                        admin_rx.clone(),
                    )),
                ));
            }
            let metrics = ExporterMetrics::new(telemetry, &id);
            let queue = BoundedQueue::new(spec.limits, metrics.queue_size.clone());
            metrics.queue_capacity.set(queue.capacity() as i64);
            let tasks = spec
                .workers
                .into_iter()
                .map(|worker| {
                    Task::new(
                        format!("exporter {id}"),
                        tokio::spawn(drive_exporter(
                            id.clone(),
                            worker,
                            queue.clone(),
                            metrics.clone(),
                            abandon_rx.clone(),
                        )),
                    )
                })
                .collect();
            let handle = ExporterHandle {
                id: id.clone(),
                queue: queue.clone(),
                metrics: metrics.clone(),
                wait_for_result: spec.wait_for_result,
            };
            handles.insert(r.id.clone(), (handle, spec.block_on_overflow));
            exporters.push(ExporterTask {
                id,
                queue,
                metrics,
                tasks,
            });
        }
    }

    Ok((handles, exporters))
}

/// Memory limiters: one budget per id, shared by the pipelines listing it,
/// each with its supervisor task.
fn start_memory_limiters(
    config: &Config,
    telemetry: &Arc<Telemetry>,
    admin_rx: &watch::Receiver<bool>,
    admin: &mut Vec<Task>,
) -> BTreeMap<ComponentId, Arc<MemoryGate>> {
    let mut gates: BTreeMap<ComponentId, Arc<MemoryGate>> = BTreeMap::new();
    for c in config.processors.values() {
        if let ProcessorConfig::MemoryLimiter(m) = &c.config {
            let gate = memory_limiter::gate(&c.id.to_string(), m, telemetry);
            admin.push(Task::new(
                format!("processor {} supervisor", c.id),
                tokio::spawn(memory_limiter::supervise(
                    gate.clone(),
                    m.clone(),
                    admin_rx.clone(),
                )),
            ));
            gates.insert(c.id.clone(), gate);
        }
    }

    gates
}

/// Pipelines, each after the pipelines its connectors feed (reverse
/// topological order); returns each receiver's pipeline entrances.
fn start_pipelines(
    config: &Config,
    handles: &Handles,
    gates: &BTreeMap<ComponentId, Arc<MemoryGate>>,
    telemetry: &Arc<Telemetry>,
    pipelines: &mut Vec<Task>,
) -> BTreeMap<ComponentId, Consumers> {
    let mut consumers: BTreeMap<ComponentId, Consumers> = BTreeMap::new();
    let edges = graph::edges(config);
    let mut entrances: BTreeMap<&PipelineId, Inlet> = BTreeMap::new();
    for id in graph::order(config).into_iter().rev() {
        let Some(pipeline) = config.service.pipelines.get(id) else {
            continue;
        };
        let connectors = pipeline
            .exporters
            .iter()
            .filter(|r| config.connectors.contains_key(&r.id))
            .map(|r| ConnectorHandle {
                id: r.id.to_string(),
                inlets: edges
                    .iter()
                    .filter(|e| e.from == id && e.via.id == r.id)
                    .filter_map(|e| entrances.get(e.to).cloned())
                    .collect(),
            })
            .collect();
        let entry = start_pipeline(
            config, pipeline, handles, connectors, gates, telemetry, pipelines,
        );
        for r in &pipeline.receivers {
            if !config.connectors.contains_key(&r.id) {
                consumers
                    .entry(r.id.clone())
                    .or_default()
                    .get_mut(pipeline.id.signal)
                    .push(entry.clone());
            }
        }
        entrances.insert(id, entry);
    }
    // Only receivers and upstream fan-outs hold entrances now, so a
    // pipeline closes once everything feeding it has stopped.
    drop(entrances);

    consumers
}

/// Receivers, last: each listens and pushes into its pipelines' entrances.
async fn start_receivers(
    config: &Config,
    consumers: BTreeMap<ComponentId, Consumers>,
    telemetry: &Arc<Telemetry>,
    stop_rx: &watch::Receiver<bool>,
) -> Result<Vec<Task>, StartError> {
    let mut servers = Vec::new();
    for (id, consumers) in consumers {
        let Some(c) = config.receivers.get(&id) else {
            continue;
        };
        let ReceiverConfig::Otlp(otlp) = &c.config;
        let consumers = Arc::new(consumers);
        let name = id.to_string();
        if let Some(g) = otlp.protocols.grpc.as_ref() {
            let key = format!("receivers.{name}.protocols.grpc.endpoint");
            let tls = match &g.tls {
                Some(t) => Some(serve::tls_acceptor(
                    t,
                    &[b"h2"],
                    &format!("receivers.{name}.protocols.grpc.tls"),
                )?),
                None => None,
            };
            let listener = serve::bind(&g.endpoint.to_string(), &key).await?;
            tracing::info!(receiver = %name, endpoint = %listener.local_addr()?, tls = tls.is_some(), "OTLP/gRPC listening");
            let sink = OtlpSink::new(
                &name,
                consumers.clone(),
                ReceiverMetrics::new(telemetry, &name, "grpc"),
            );
            servers.push(Task::new(
                format!("receiver {name} (grpc)"),
                tokio::spawn(grpc::run(listener, g.clone(), tls, sink, stop_rx.clone())),
            ));
        }
        if let Some(h) = otlp.protocols.http.as_ref() {
            let key = format!("receivers.{name}.protocols.http.endpoint");
            let tls = match &h.tls {
                Some(t) => Some(serve::tls_acceptor(
                    t,
                    &[b"h2", b"http/1.1"],
                    &format!("receivers.{name}.protocols.http.tls"),
                )?),
                None => None,
            };
            let listener = serve::bind(&h.endpoint.to_string(), &key).await?;
            tracing::info!(receiver = %name, endpoint = %listener.local_addr()?, tls = tls.is_some(), "OTLP/HTTP listening");
            let sink = OtlpSink::new(
                &name,
                consumers.clone(),
                ReceiverMetrics::new(telemetry, &name, "http"),
            );
            servers.push(Task::new(
                format!("receiver {name} (http)"),
                tokio::spawn(http::run(listener, h.clone(), tls, sink, stop_rx.clone())),
            ));
        }
    }

    Ok(servers)
}

/// Starts one pipeline: entrance (admission) -> processor tasks -> fan-out
/// to its exporters' queues and to the entrances its connectors feed
/// (`connectors`, already started). Returns the entrance.
fn start_pipeline(
    config: &Config,
    pipeline: &PipelineConfig,
    handles: &Handles,
    connectors: Vec<ConnectorHandle>,
    gates: &BTreeMap<ComponentId, Arc<MemoryGate>>,
    telemetry: &Arc<Telemetry>,
    tasks: &mut Vec<Task>,
) -> Inlet {
    let signal = pipeline.id.signal;
    let used: Vec<&(ExporterHandle, bool)> = pipeline
        .exporters
        .iter()
        .filter_map(|r| handles.get(&r.id))
        .collect();
    // Senders wait for the export when an exporter, or a pipeline a
    // connector feeds, makes them wait.
    let waits = used.iter().any(|(h, _)| h.wait_for_result)
        || connectors.iter().flat_map(|c| &c.inlets).any(Inlet::waits);
    let fanout = Arc::new(
        Fanout::new(used.iter().map(|(h, _)| h.clone()).collect()).with_connectors(connectors),
    );
    let stages: Vec<_> = pipeline
        .processors
        .iter()
        .filter_map(|r| {
            let c = config.processors.get(&r.id)?;
            let stage = tern_processors::build(&r.id.to_string(), &c.config, signal, telemetry)?;
            Some((&r.id, stage))
        })
        .collect();
    let mut output = Output::Fanout(fanout);
    for (i, (id, stage)) in stages.into_iter().enumerate().rev() {
        let (tx, rx) = if i == 0 {
            inlet(PIPELINE_QUEUE_BATCHES, PIPELINE_QUEUE_BYTES)
        } else {
            inlet(STAGE_QUEUE_BATCHES, usize::MAX)
        };
        tasks.push(Task::new(
            format!("pipeline {} processor {id}", pipeline.id),
            tokio::spawn(stage.run(rx, output)),
        ));
        output = Output::Next(tx);
    }
    let mut entry = match output {
        Output::Next(tx) => tx,
        Output::Fanout(fanout) => {
            let (tx, rx) = inlet(PIPELINE_QUEUE_BATCHES, PIPELINE_QUEUE_BYTES);
            tasks.push(Task::new(
                format!("pipeline {}", pipeline.id),
                forward(rx, fanout),
            ));
            tx
        }
    };
    for r in &pipeline.processors {
        if let Some(gate) = gates.get(&r.id) {
            entry = entry.with_gate(gate.clone());
        }
    }
    for (handle, block_on_overflow) in &used {
        if !block_on_overflow {
            entry = entry.with_pressure(handle.queue.clone());
        }
    }
    if waits {
        entry = entry.waiting_for_results();
    }
    entry
}

impl Service {
    /// Starts everything in `config`, counting into `telemetry`, with
    /// `resource` as Tern's own; `own_logs` are the log record processors
    /// the logger feeds.
    pub async fn start(
        config: &Config,
        telemetry: Arc<Telemetry>,
        resource: &BTreeMap<String, String>,
        own_logs: Vec<PendingLogs>,
    ) -> Result<Service, StartError> {
        let health = Arc::new(Health::default());
        let (stop_admin, admin_rx) = watch::channel(false);
        let mut admin = Vec::new();

        start_admin(config, &telemetry, resource, &health, &admin_rx, &mut admin).await?;
        let metrics_cfg = &config.service.telemetry.metrics;
        let periodic = if metrics_cfg.level == MetricsLevel::None {
            &[][..]
        } else {
            &metrics_cfg.periodic[..]
        };
        let self_export = SelfExport::start(periodic, own_logs, &telemetry, resource)?;
        // Then the graph in reverse topological order: exporters, memory
        // limiters, pipelines (downstream first), receivers.
        let (abandon, abandon_rx) = watch::channel(false);
        let (handles, exporters) =
            start_exporters(config, &telemetry, &abandon_rx, &admin_rx, &mut admin).await?;
        let gates = start_memory_limiters(config, &telemetry, &admin_rx, &mut admin);
        let mut pipelines = Vec::new();
        let consumers = start_pipelines(config, &handles, &gates, &telemetry, &mut pipelines);
        let (stop, stop_rx) = watch::channel(false);
        let servers = start_receivers(config, consumers, &telemetry, &stop_rx).await?;

        health.set_ready(true);
        tracing::info!(
            pipelines = config.service.pipelines.len(),
            "Tern is running"
        );
        Ok(Service {
            stop,
            servers,
            pipelines,
            exporters,
            admin,
            stop_admin,
            abandon,
            health,
            self_export: Some(self_export),
        })
    }

    /// Stops in order: receivers, processors (flush), exporters (drain),
    /// all within `deadline`. At the deadline, exporter queues are closed,
    /// workers count the batch in hand as failed and stop, and what is
    /// still queued is counted as failed and logged. A task that has still
    /// not stopped [`GIVE_UP_GRACE`] later (one stuck in CPU-bound work
    /// cannot be interrupted) is abandoned: logged, aborted where it can
    /// be, and returned by name.
    pub async fn shutdown(mut self, deadline: Duration) -> Stopped {
        let until = Instant::now() + deadline;
        let mut panicked = Vec::new();
        self.health.set_ready(false);
        tracing::info!("shutting down: stopping receivers");
        let _ = self.stop.send(true);
        let mut on_time = join_until(&mut self.servers, until, &mut panicked).await;
        // Pipelines were started downstream first; each drains once
        // everything feeding it (receivers, upstream connectors) has.
        tracing::info!("draining processors");
        on_time &= join_until(&mut self.pipelines, until, &mut panicked).await;
        tracing::info!("flushing exporters");
        for e in &self.exporters {
            e.queue.close();
        }
        let mut workers: Vec<Task> = self
            .exporters
            .iter_mut()
            .flat_map(|e| e.tasks.drain(..))
            .collect();
        on_time &= join_until(&mut workers, until, &mut panicked).await;
        let mut running: Vec<Task> = self
            .servers
            .into_iter()
            .chain(self.pipelines)
            .chain(workers)
            .collect();
        if !on_time {
            // Deadline: workers count the batch in hand as failed and stop;
            // what is still queued is counted here.
            let _ = self.abandon.send(true);
            join_until(&mut running, Instant::now() + GIVE_UP_GRACE, &mut panicked).await;
            for e in &self.exporters {
                let left = e.queue.drain();
                if left.is_empty() {
                    continue;
                }
                for batch in &left {
                    batch.fail(false, "shutdown deadline");
                    e.metrics
                        .send_failed
                        .get(batch.signal())
                        .add(batch.items() as u64);
                }
                tracing::error!(
                    exporter = %e.id,
                    batches = left.len(),
                    items = left.iter().map(|b| b.items()).sum::<usize>(),
                    reason = "shutdown deadline",
                    "exporter did not finish in time; queued items dropped"
                );
            }
        }
        let _ = self.stop_admin.send(true);
        join_until(
            &mut self.admin,
            Instant::now() + GIVE_UP_GRACE,
            &mut panicked,
        )
        .await;
        let mut left = Vec::new();
        for mut t in running.into_iter().chain(self.admin) {
            if t.joined {
                continue;
            }
            if t.handle.is_finished() {
                t.join(&mut panicked).await;
            } else {
                left.push(t);
            }
        }
        let abandoned: Vec<String> = left
            .into_iter()
            .map(|t| {
                t.handle.abort();
                tracing::error!(
                    task = %t.what,
                    reason = "shutdown deadline",
                    "did not stop in time; abandoned"
                );
                t.what
            })
            .collect();
        if abandoned.is_empty() && panicked.is_empty() {
            tracing::info!("shutdown complete");
        } else {
            tracing::error!(
                abandoned = abandoned.len(),
                panicked = panicked.len(),
                "shutdown complete, with tasks abandoned or panicked"
            );
        }
        // Last: the final self-metrics and every log line up to here.
        if let Some(self_export) = self.self_export {
            self_export
                .shutdown(until.max(Instant::now() + GIVE_UP_GRACE))
                .await;
        }
        Stopped {
            abandoned,
            panicked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn service(pipelines: Vec<Task>, abandon: watch::Sender<bool>) -> Service {
        Service {
            stop: watch::channel(false).0,
            servers: Vec::new(),
            pipelines,
            exporters: Vec::new(),
            admin: Vec::new(),
            stop_admin: watch::channel(false).0,
            abandon,
            health: Arc::new(Health::default()),
            self_export: None,
        }
    }

    /// A task spinning in CPU-bound work cannot be interrupted: shutdown
    /// returns anyway, naming it; a task that gives up when told to at the
    /// deadline is not abandoned.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_returns_past_a_task_stuck_in_cpu_work_and_names_it() {
        static SPIN: AtomicBool = AtomicBool::new(true);
        let (abandon, mut told) = watch::channel(false);
        let stuck = tokio::spawn(async {
            while SPIN.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        let waits_for_the_deadline = tokio::spawn(async move {
            let _ = told.wait_for(|a| *a).await;
        });
        let tasks = vec![
            Task::new("pipeline metrics", stuck),
            Task::new("pipeline logs", waits_for_the_deadline),
        ];
        let abandoned = service(tasks, abandon)
            .shutdown(Duration::from_millis(50))
            .await;
        SPIN.store(false, Ordering::Relaxed);
        assert_eq!(abandoned.abandoned, ["pipeline metrics"]);
        assert!(abandoned.panicked.is_empty());
    }

    #[tokio::test]
    async fn nothing_is_abandoned_when_every_task_stops() {
        let (abandon, _) = watch::channel(false);
        let done = tokio::spawn(async {});
        let stopped = service(vec![Task::new("pipeline traces", done)], abandon)
            .shutdown(Duration::from_secs(10))
            .await;
        assert!(stopped.is_clean());
    }

    /// A task that panicked, before shutdown or during it, is named and
    /// makes the shutdown unclean (the process exits non-zero).
    #[tokio::test]
    async fn panicked_tasks_are_named() {
        let (abandon, _) = watch::channel(false);
        let early = tokio::spawn(async { panic!("a component bug") });
        tokio::task::yield_now().await;
        let (go, gone) = tokio::sync::oneshot::channel::<()>();
        let late = tokio::spawn(async move {
            let _ = gone.await;
            panic!("another component bug");
        });
        let drained = tokio::spawn(async move {
            let _ = go.send(());
        });
        let stopped = service(
            vec![
                Task::new("pipeline traces processor batch", early),
                Task::new("pipeline logs", drained),
                Task::new("pipeline metrics", late),
            ],
            abandon,
        )
        .shutdown(Duration::from_secs(10))
        .await;
        assert_eq!(
            stopped,
            Stopped {
                abandoned: Vec::new(),
                panicked: vec![
                    "pipeline traces processor batch".to_string(),
                    "pipeline metrics".to_string()
                ],
            }
        );
        assert!(!stopped.is_clean());
    }
}
