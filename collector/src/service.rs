//! Builds and runs what a [`Config`] describes. Every component is built
//! through the runtime table ([`crate::components`]) into a
//! [`Built`](tern_core::build::Built), and the service starts what it
//! contributes without knowing its type: listeners (bound here, served
//! until receivers or the admin endpoints stop), side tasks, exporters'
//! queues and driver tasks, one chain of processor tasks per pipeline with
//! the memory gates of its processors on its entrance, ending in a fan-out
//! (pipelines started in reverse topological order of the graph, so the
//! pipelines a connector feeds exist before the ones feeding it), and
//! receivers pushing into pipeline entrances. Beside them: the
//! self-metrics endpoint and the push of Tern's own metrics and logs
//! ([`crate::self_export`]).
//! [`Service::shutdown`] stops them in order: receivers, then processors
//! (which flush), then exporters (which drain their queues) within one
//! deadline, and names what it had to abandon.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tern_config::{ComponentId, Config, Kind, MetricsLevel, PipelineConfig, PipelineId, graph};
use tern_core::build::{Built, Context, Serve, Server};
use tern_core::component::{ConnectorHandle, ExporterHandle, Fanout, Output, drive_exporter};
use tern_core::queue::{BoundedQueue, Inlet, InletRx, inlet};
use tern_core::telemetry::{ExporterMetrics, Telemetry};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admin::{self, Health};
use crate::components;
use crate::receiver::Consumers;
use crate::self_export::{PendingLogs, SelfExport};
use crate::serve;

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
    /// Tern's own telemetry exporter could not be built.
    #[error(transparent)]
    Exporter(#[from] tern_exporters::BuildError),
    /// A component could not be built.
    #[error(transparent)]
    Build(#[from] tern_core::build::BuildError),
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

/// Binds each of `servers` and spawns its task into `tasks`, stopped by
/// `stop`.
async fn serve_all(
    servers: Vec<Server>,
    stop: &watch::Receiver<bool>,
    tasks: &mut Vec<Task>,
) -> Result<(), StartError> {
    for s in servers {
        let listener = serve::bind(&s.endpoint.to_string(), &s.key).await?;
        let stop = stop.clone();
        let job = match s.serve {
            Serve::Task(serve) => serve(listener, stop),
            Serve::Get { path, answer } => Box::pin(admin::serve_get(listener, path, answer, stop)),
        };
        tasks.push(Task::new(s.what, tokio::spawn(job)));
    }
    Ok(())
}

/// What the service has started so far, besides pipelines and receivers.
struct Starting<'a> {
    config: &'a Config,
    telemetry: &'a Arc<Telemetry>,
    resource: &'a BTreeMap<String, String>,
    health: &'a Arc<Health>,
    admin_rx: watch::Receiver<bool>,
    /// Tasks stopped last: extensions, scrape endpoints, supervisors.
    admin: Vec<Task>,
}

impl Starting<'_> {
    /// Builds `c` (of `kind`) with `consumers` as its pipelines' entrances;
    /// starts its servers and side tasks with the admin endpoints' lifetime
    /// (a receiver's servers are returned instead) and returns the rest.
    async fn build(
        &mut self,
        kind: Kind,
        c: &tern_config::Component,
        consumers: Arc<Consumers>,
    ) -> Result<Built, StartError> {
        let ctx = Context {
            id: c.id.to_string(),
            config: self.config,
            telemetry: self.telemetry,
            resource: self.resource,
            health: self.health,
            consumers,
        };
        let mut built = components::build(kind, &ctx, c)?;
        for (what, job) in built.beside.drain(..) {
            self.admin
                .push(Task::new(what, tokio::spawn(job(self.admin_rx.clone()))));
        }
        if kind != Kind::Receiver {
            let servers = std::mem::take(&mut built.servers);
            serve_all(servers, &self.admin_rx.clone(), &mut self.admin).await?;
        }
        Ok(built)
    }

    /// The extensions `service.extensions` lists, in its order, and the
    /// self-metrics endpoint: started first, so probes answer "starting"
    /// while the rest starts.
    async fn admin(&mut self) -> Result<(), StartError> {
        let config = self.config;
        for ext in &config.service.extensions {
            if let Some(c) = config.extensions.get(&ext.id) {
                self.build(Kind::Extension, c, Arc::default()).await?;
            }
        }
        let metrics_cfg = &config.service.telemetry.metrics;
        if metrics_cfg.level != MetricsLevel::None
            && let Some(address) = &metrics_cfg.address
        {
            admin::publish_target_info(self.telemetry, self.resource);
            let listener =
                serve::bind(&address.to_string(), "service.telemetry.metrics.address").await?;
            self.admin.push(Task::new(
                "self-metrics endpoint",
                tokio::spawn(admin::run_metrics(
                    listener,
                    self.telemetry.clone(),
                    self.admin_rx.clone(),
                )),
            ));
        }
        Ok(())
    }

    /// Each component of `kind` some pipeline lists, built once.
    async fn used(&mut self, kind: Kind) -> Result<BTreeMap<ComponentId, Built>, StartError> {
        let config = self.config;
        let mut built = BTreeMap::new();
        for pipeline in config.service.pipelines.values() {
            let refs = match kind {
                Kind::Processor => &pipeline.processors,
                _ => &pipeline.exporters,
            };
            for r in refs {
                let Some(c) = config.section(kind).get(&r.id) else {
                    continue;
                };
                if !built.contains_key(&r.id) {
                    let b = self.build(kind, c, Arc::default()).await?;
                    built.insert(r.id.clone(), b);
                }
            }
        }
        Ok(built)
    }

    /// Exporters used by some pipeline, each with its own queue and
    /// workers; returns the handles pipelines fan out to.
    async fn exporters(
        &mut self,
        abandon_rx: &watch::Receiver<bool>,
    ) -> Result<(Handles, Vec<ExporterTask>), StartError> {
        let mut handles = Handles::new();
        let mut exporters = Vec::new();
        for (r, built) in self.used(Kind::Exporter).await? {
            let Some(spec) = built.exporter else {
                continue;
            };
            let id = r.to_string();
            let metrics = ExporterMetrics::new(self.telemetry, &id);
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
            handles.insert(r, (handle, spec.block_on_overflow));
            exporters.push(ExporterTask {
                id,
                queue,
                metrics,
                tasks,
            });
        }
        Ok((handles, exporters))
    }
}

/// Pipelines, each after the pipelines its connectors feed (reverse
/// topological order); returns each receiver's pipeline entrances.
fn start_pipelines(
    config: &Config,
    handles: &Handles,
    processors: &BTreeMap<ComponentId, Built>,
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
        let entry = start_pipeline(pipeline, handles, connectors, processors, pipelines);
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

/// Starts one pipeline: entrance (admission) -> processor tasks -> fan-out
/// to its exporters' queues and to the entrances its connectors feed
/// (`connectors`, already started). Returns the entrance.
fn start_pipeline(
    pipeline: &PipelineConfig,
    handles: &Handles,
    connectors: Vec<ConnectorHandle>,
    processors: &BTreeMap<ComponentId, Built>,
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
        .filter_map(|r| Some((&r.id, processors.get(&r.id)?.stage.as_ref()?(signal))))
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
        if let Some(gate) = processors.get(&r.id).and_then(|p| p.gate.as_ref()) {
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
        let mut starting = Starting {
            config,
            telemetry: &telemetry,
            resource,
            health: &health,
            admin_rx,
            admin: Vec::new(),
        };
        starting.admin().await?;
        let metrics_cfg = &config.service.telemetry.metrics;
        let periodic = if metrics_cfg.level == MetricsLevel::None {
            &[][..]
        } else {
            &metrics_cfg.periodic[..]
        };
        let self_export = SelfExport::start(periodic, own_logs, &telemetry, resource)?;
        // Then the graph in reverse topological order: exporters,
        // connectors, processors, pipelines (downstream first), receivers.
        let (abandon, abandon_rx) = watch::channel(false);
        let (handles, exporters) = starting.exporters(&abandon_rx).await?;
        for c in config.connectors.values() {
            starting.build(Kind::Connector, c, Arc::default()).await?;
        }
        let processors = starting.used(Kind::Processor).await?;
        let mut pipelines = Vec::new();
        let consumers = start_pipelines(config, &handles, &processors, &mut pipelines);
        let (stop, stop_rx) = watch::channel(false);
        let mut servers = Vec::new();
        for (id, consumers) in consumers {
            let Some(c) = config.receivers.get(&id) else {
                continue;
            };
            let built = starting
                .build(Kind::Receiver, c, Arc::new(consumers))
                .await?;
            serve_all(built.servers, &stop_rx, &mut servers).await?;
        }
        let admin = starting.admin;

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
