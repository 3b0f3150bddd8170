//! Builds and runs what a [`Config`] describes. Every component is built
//! through the runtime table ([`crate::components`]) into a
//! [`Built`](tern_core::build::Built), and the service starts what it
//! contributes without knowing its type: listeners (bound here, served
//! until their component stops), side tasks, exporters'
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
//! [`Service::reload`] swaps in a new configuration, rebuilding only what
//! changed ([`Plan`]): receivers read their pipeline entrances per request
//! ([`Feeds`]), so rebuilt pipelines start beside the old ones and take
//! over between two requests, and what was replaced drains in the
//! background ([`retire`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tern_config::{
    ComponentId, Config, ConfigErrors, Kind, MetricsLevel, PipelineConfig, PipelineId, graph,
};
use tern_core::build::{Built, Context, ExporterSpec, Serve, Server};
use tern_core::component::{ConnectorHandle, ExporterHandle, Fanout, Output, drive_exporter};
use tern_core::persist::{Durable, StorageMetrics};
use tern_core::queue::{BoundedQueue, Inlet, InletRx, inlet};
use tern_core::telemetry::{ExporterMetrics, Telemetry};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admin::{self, Health};
use crate::components;
use crate::file_storage::{Opened, Storages};
use crate::receiver::{Consumers, Feeds};
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
    /// An exporter's persistent queue could not be opened.
    #[error(transparent)]
    Storage(#[from] crate::file_storage::StorageError),
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

/// A component's own servers and side tasks, stopped together: a
/// receiver's listeners, a processor's or an exporter's side tasks and
/// endpoints, the extensions' endpoints (one part for all of them).
struct Part {
    stop: watch::Sender<bool>,
    tasks: Vec<Task>,
}

impl Part {
    fn new() -> Part {
        Part {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// What its tasks watch to know when to stop.
    fn lifetime(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Tells its tasks to stop.
    fn tell_stop(&self) {
        self.stop.send_replace(true);
    }
}

/// A running receiver: its listeners and side tasks, and the pipeline
/// entrances it pushes into (replaced by a reload).
struct Receiver {
    part: Part,
    feeds: Arc<Feeds>,
}

/// A running processor: what its builder gave (a stage maker and an
/// admission gate, which pipelines a reload rebuilds reuse) and its side
/// tasks.
struct Processor {
    built: Built,
    part: Part,
}

/// A running exporter: its queue, workers and side tasks.
struct ExporterTask {
    id: String,
    queue: Arc<BoundedQueue>,
    metrics: ExporterMetrics,
    /// Its workers.
    tasks: Vec<Task>,
    handle: ExporterHandle,
    block_on_overflow: bool,
    part: Part,
}

/// A running pipeline: its entrance (admission) and its tasks.
struct Pipeline {
    entry: Inlet,
    tasks: Vec<Task>,
}

/// A running collector.
pub struct Service {
    /// The configuration it runs.
    config: Config,
    telemetry: Arc<Telemetry>,
    resource: BTreeMap<String, String>,
    receivers: BTreeMap<ComponentId, Receiver>,
    processors: BTreeMap<ComponentId, Processor>,
    exporters: BTreeMap<ComponentId, ExporterTask>,
    pipelines: BTreeMap<PipelineId, Pipeline>,
    /// What reloads replaced and that still drains ([`retire`]).
    retiring: Vec<Task>,
    /// The extensions' and the self-metrics endpoints, stopped last.
    admin: Part,
    abandon: watch::Sender<bool>,
    health: Arc<Health>,
    /// The persistent queues' logs, shared by an exporter a reload
    /// rebuilds and the one it replaces.
    storages: Arc<Storages>,
    self_export: Option<SelfExport>,
}

/// Waits until every task has finished or `until` passes; true if all
/// finished. Tasks that panicked are logged and added to `panicked`.
async fn join_until(tasks: &mut [Task], until: Instant, panicked: &mut Vec<String>) -> bool {
    tokio::time::timeout_at(until, join_all(tasks, panicked))
        .await
        .is_ok()
}

/// Waits until every task not joined yet has finished; tasks that
/// panicked are logged and added to `panicked`.
async fn join_all(tasks: &mut [Task], panicked: &mut Vec<String>) {
    for task in tasks.iter_mut().filter(|t| !t.joined) {
        task.join(panicked).await;
    }
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

/// The components of `kind` that some pipeline of `config` lists, each
/// once.
fn used(config: &Config, kind: Kind) -> Vec<&tern_config::Component> {
    let mut out: Vec<&tern_config::Component> = Vec::new();
    for pipeline in config.service.pipelines.values() {
        let refs = match kind {
            Kind::Processor => &pipeline.processors,
            _ => &pipeline.exporters,
        };
        for r in refs {
            if let Some(c) = config.section(kind).get(&r.id)
                && !out.iter().any(|o| o.id == c.id)
            {
                out.push(c);
            }
        }
    }
    out
}

/// What the service builds components with.
struct Starting<'a> {
    config: &'a Config,
    telemetry: &'a Arc<Telemetry>,
    resource: &'a BTreeMap<String, String>,
    health: &'a Arc<Health>,
    storages: &'a Storages,
}

impl Starting<'_> {
    /// Builds `c` (of `kind`) with `feeds` as its pipelines' entrances;
    /// starts its side tasks, and its servers unless it is a receiver
    /// (whose servers are returned), in `part`.
    async fn build(
        &self,
        kind: Kind,
        c: &tern_config::Component,
        feeds: Arc<Feeds>,
        part: &mut Part,
    ) -> Result<Built, StartError> {
        let ctx = Context {
            id: c.id.to_string(),
            config: self.config,
            telemetry: self.telemetry,
            resource: self.resource,
            health: self.health,
            consumers: feeds,
        };
        let mut built = components::build(kind, &ctx, c)?;
        let lifetime = part.lifetime();
        for (what, job) in built.beside.drain(..) {
            part.tasks
                .push(Task::new(what, tokio::spawn(job(lifetime.clone()))));
        }
        if kind != Kind::Receiver {
            let servers = std::mem::take(&mut built.servers);
            serve_all(servers, &lifetime, &mut part.tasks).await?;
        }
        Ok(built)
    }

    /// The extensions `service.extensions` lists, in its order, and the
    /// self-metrics endpoint, in `part`: started first, so probes answer
    /// "starting" while the rest starts.
    async fn admin(&self, part: &mut Part) -> Result<(), StartError> {
        let config = self.config;
        for ext in &config.service.extensions {
            if let Some(c) = config.extensions.get(&ext.id) {
                self.build(Kind::Extension, c, Arc::default(), part).await?;
            }
        }
        let metrics_cfg = &config.service.telemetry.metrics;
        if metrics_cfg.level != MetricsLevel::None
            && let Some(address) = &metrics_cfg.address
        {
            admin::publish_target_info(self.telemetry, self.resource);
            let listener =
                serve::bind(&address.to_string(), "service.telemetry.metrics.address").await?;
            part.tasks.push(Task::new(
                "self-metrics endpoint",
                tokio::spawn(admin::run_metrics(
                    listener,
                    self.telemetry.clone(),
                    part.lifetime(),
                )),
            ));
        }
        Ok(())
    }

    /// Builds processor `c`.
    async fn processor(&self, c: &tern_config::Component) -> Result<Processor, StartError> {
        let mut part = Part::new();
        let built = self
            .build(Kind::Processor, c, Arc::default(), &mut part)
            .await?;
        Ok(Processor { built, part })
    }

    /// Builds exporter `c` and opens its persistent queue's log, if it
    /// has one; [`start_exporter`] starts its workers.
    async fn exporter(&self, c: &tern_config::Component) -> Result<BuiltExporter, StartError> {
        let mut part = Part::new();
        let built = self
            .build(Kind::Exporter, c, Arc::default(), &mut part)
            .await?;
        let spec = built
            .exporter
            .ok_or_else(|| tern_core::build::BuildError::Unregistered(c.id.to_string()))?;
        let storage = match &spec.storage {
            Some(storage) => Some(self.storages.open(self.config, storage, &c.id).await?),
            None => None,
        };
        Ok(BuiltExporter {
            spec,
            part,
            storage,
        })
    }

    /// Builds receiver `c`, feeding nothing yet; returns its servers, to
    /// be served once it feeds its pipelines.
    async fn receiver(
        &self,
        c: &tern_config::Component,
    ) -> Result<(Receiver, Vec<Server>), StartError> {
        let mut part = Part::new();
        let feeds = Arc::new(Feeds::default());
        let built = self
            .build(Kind::Receiver, c, feeds.clone(), &mut part)
            .await?;
        Ok((Receiver { part, feeds }, built.servers))
    }
}

/// A built exporter, not started yet.
struct BuiltExporter {
    spec: ExporterSpec,
    part: Part,
    /// Its persistent queue's log.
    storage: Option<Opened>,
}

/// How often the storage gauges of a persistent queue are refreshed.
const STORAGE_GAUGES_EVERY: Duration = Duration::from_secs(1);

/// Starts the queue and workers of exporter `id` built as `built` (a
/// persistent queue starts with what its log held); workers give up the
/// batch in hand when `abandon_rx` turns true.
fn start_exporter(
    telemetry: &Arc<Telemetry>,
    id: &ComponentId,
    built: BuiltExporter,
    abandon_rx: &watch::Receiver<bool>,
) -> ExporterTask {
    let BuiltExporter {
        spec,
        mut part,
        storage,
    } = built;
    let id = id.to_string();
    let metrics = ExporterMetrics::new(telemetry, &id);
    let queue = match storage {
        Some((wal, recovered)) => {
            let durable = Durable::new(
                wal,
                spec.wait_for_result,
                StorageMetrics::new(telemetry, &id),
            );
            let queue = BoundedQueue::persistent(
                spec.limits,
                metrics.queue_size.clone(),
                durable,
                &id,
                recovered,
            );
            let (gauges, mut stop) = (queue.clone(), part.lifetime());
            part.tasks.push(Task::new(
                format!("exporter {id} (storage gauges)"),
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(STORAGE_GAUGES_EVERY);
                    loop {
                        tokio::select! {
                            _ = every.tick() => {
                                if let Some(d) = gauges.durable() {
                                    d.observe();
                                }
                            }
                            _ = stop.wait_for(|s| *s) => break,
                        }
                    }
                }),
            ));
            queue
        }
        None => BoundedQueue::new(spec.limits, metrics.queue_size.clone()),
    };
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
    ExporterTask {
        id,
        queue,
        metrics,
        tasks,
        handle,
        block_on_overflow: spec.block_on_overflow,
        part,
    }
}

fn handles(exporters: &BTreeMap<ComponentId, ExporterTask>) -> Handles {
    exporters
        .iter()
        .map(|(id, e)| (id.clone(), (e.handle.clone(), e.block_on_overflow)))
        .collect()
}

/// Counts what is still in `e`'s queue as failed and logs it: the shutdown
/// deadline has passed.
fn drop_queued(e: &ExporterTask) {
    let left = e.queue.drain();
    if left.is_empty() {
        return;
    }
    if e.queue.durable().is_some() {
        // The logs are frozen: dropping the batches leaves their records.
        tracing::warn!(
            exporter = %e.id,
            batches = left.len(),
            items = left.iter().map(|b| b.items()).sum::<usize>(),
            "exporter did not finish in time; queued items stay in its persistent queue and are sent after the next start"
        );
        return;
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

/// Starts the pipelines of `config` named in `rebuild` into `running`,
/// each after the pipelines its connectors feed (reverse topological
/// order); the other pipelines of `running` keep running and are fed by
/// the new ones as before.
fn start_pipelines(
    config: &Config,
    handles: &Handles,
    processors: &BTreeMap<ComponentId, Processor>,
    rebuild: &BTreeSet<PipelineId>,
    running: &mut BTreeMap<PipelineId, Pipeline>,
) {
    let edges = graph::edges(config);
    for id in graph::order(config).into_iter().rev() {
        let Some(pipeline) = config.service.pipelines.get(id) else {
            continue;
        };
        if !rebuild.contains(id) {
            continue;
        }
        let connectors = pipeline
            .exporters
            .iter()
            .filter(|r| config.connectors.contains_key(&r.id))
            .map(|r| ConnectorHandle {
                id: r.id.to_string(),
                inlets: edges
                    .iter()
                    .filter(|e| e.from == id && e.via.id == r.id)
                    .filter_map(|e| running.get(e.to).map(|p| p.entry.clone()))
                    .collect(),
            })
            .collect();
        let started = start_pipeline(pipeline, handles, connectors, processors);
        running.insert(id.clone(), started);
    }
}

/// Each receiver's pipeline entrances in `running`.
fn consumers(
    config: &Config,
    running: &BTreeMap<PipelineId, Pipeline>,
) -> BTreeMap<ComponentId, Consumers> {
    let mut consumers: BTreeMap<ComponentId, Consumers> = BTreeMap::new();
    for pipeline in config.service.pipelines.values() {
        let Some(p) = running.get(&pipeline.id) else {
            continue;
        };
        for r in &pipeline.receivers {
            if !config.connectors.contains_key(&r.id) {
                consumers
                    .entry(r.id.clone())
                    .or_default()
                    .get_mut(pipeline.id.signal)
                    .push(p.entry.clone());
            }
        }
    }
    consumers
}

/// Starts one pipeline: entrance (admission) -> processor tasks -> fan-out
/// to its exporters' queues and to the entrances its connectors feed
/// (`connectors`, already started).
fn start_pipeline(
    pipeline: &PipelineConfig,
    handles: &Handles,
    connectors: Vec<ConnectorHandle>,
    processors: &BTreeMap<ComponentId, Processor>,
) -> Pipeline {
    let signal = pipeline.id.signal;
    let mut tasks = Vec::new();
    let used: Vec<&(ExporterHandle, bool)> = pipeline
        .exporters
        .iter()
        .filter_map(|r| handles.get(&r.id))
        .collect();
    // Senders wait for the export when an exporter, or a pipeline a
    // connector feeds, makes them wait; for the write when an exporter's
    // queue is persistent.
    let waits = used
        .iter()
        .any(|(h, _)| h.wait_for_result || h.queue.durable().is_some())
        || connectors.iter().flat_map(|c| &c.inlets).any(Inlet::waits);
    let fanout = Arc::new(
        Fanout::new(used.iter().map(|(h, _)| h.clone()).collect()).with_connectors(connectors),
    );
    let stages: Vec<_> = pipeline
        .processors
        .iter()
        .filter_map(|r| Some((&r.id, processors.get(&r.id)?.built.stage.as_ref()?(signal))))
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
        if let Some(gate) = processors.get(&r.id).and_then(|p| p.built.gate.as_ref()) {
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
    Pipeline { entry, tasks }
}

/// Drains what a reload replaced, as a shutdown does, while the new
/// components already take data: the replaced pipelines run until nothing
/// feeds them any more and their processors have flushed into their
/// exporters; then the replaced exporters' queues close and their workers
/// send what is queued; then their side tasks, and those of the replaced
/// processors, stop. Past the shutdown deadline (`abandon`), what is still
/// queued is counted as failed.
async fn retire(
    mut pipelines: Vec<Task>,
    mut exporters: Vec<ExporterTask>,
    mut parts: Vec<Part>,
    abandon: watch::Receiver<bool>,
) {
    let mut panicked = Vec::new();
    let ids: Vec<String> = exporters.iter().map(|e| e.id.clone()).collect();
    join_all(&mut pipelines, &mut panicked).await;
    for e in &exporters {
        e.queue.close();
    }
    for e in &mut exporters {
        join_all(&mut e.tasks, &mut panicked).await;
    }
    if *abandon.borrow() {
        exporters.iter().for_each(drop_queued);
    }
    parts.extend(exporters.into_iter().map(|e| e.part));
    for part in &mut parts {
        part.tell_stop();
        join_all(&mut part.tasks, &mut panicked).await;
    }
    tracing::info!(
        pipeline_tasks = pipelines.len(),
        exporters = ?ids,
        "components replaced by the reload have drained and stopped"
    );
}

/// The ids `refs` names, in order.
fn ids(refs: &[tern_config::Ref]) -> Vec<&ComponentId> {
    refs.iter().map(|r| &r.id).collect()
}

/// The (connector, pipeline) pairs pipeline `id` of `config` feeds.
fn feeds_into<'a>(
    config: &'a Config,
    id: &PipelineId,
) -> BTreeSet<(&'a ComponentId, &'a PipelineId)> {
    graph::edges(config)
        .into_iter()
        .filter(|e| e.from == id)
        .map(|e| (&e.via.id, e.to))
        .collect()
}

/// The receivers that feed some pipeline of `config` (connectors aside).
fn receivers_in(config: &Config) -> BTreeSet<&ComponentId> {
    config
        .service
        .pipelines
        .values()
        .flat_map(|p| &p.receivers)
        .map(|r| &r.id)
        .filter(|id| config.receivers.contains_key(id))
        .collect()
}

/// The pipelines receiver `id` feeds in `config`.
fn pipelines_fed_by<'a>(config: &'a Config, id: &ComponentId) -> Vec<&'a PipelineId> {
    config
        .service
        .pipelines
        .values()
        .filter(|p| p.receivers.iter().any(|r| &r.id == id))
        .map(|p| &p.id)
        .collect()
}

/// What a reload must do to turn `old` into `new`.
struct Plan {
    /// Processors to build (new or changed).
    processors: BTreeSet<ComponentId>,
    /// Exporters to build (new or changed).
    exporters: BTreeSet<ComponentId>,
    /// Receivers to build (new or changed).
    receivers: BTreeSet<ComponentId>,
    /// Pipelines to build (new, changed, using a changed component, or
    /// feeding one of these through a connector).
    pipelines: BTreeSet<PipelineId>,
    /// Settings that need a restart, changed.
    needs_restart: Vec<&'static str>,
}

impl Plan {
    fn new(old: &Config, new: &Config) -> Plan {
        let extensions_changed = ids(&old.service.extensions) != ids(&new.service.extensions)
            || old.extensions.len() != new.extensions.len()
            || old
                .extensions
                .iter()
                .any(|(id, c)| new.extensions.get(id).is_none_or(|n| !n.same_settings(c)));
        let mut needs_restart = Vec::new();
        if format!("{:?}", old.service.telemetry) != format!("{:?}", new.service.telemetry) {
            needs_restart.push("service.telemetry");
        }
        if extensions_changed {
            needs_restart.push("extensions");
        }
        // Receivers and exporters resolve their authenticators from the
        // extensions when built: rebuilt when any extension changed.
        let changed = |kind: Kind, id: &ComponentId| match (
            old.section(kind).get(id),
            new.section(kind).get(id),
        ) {
            (Some(a), Some(b)) => {
                !a.same_settings(b)
                    || (extensions_changed && matches!(kind, Kind::Receiver | Kind::Exporter))
            }
            _ => true,
        };
        let build = |kind: Kind| -> BTreeSet<ComponentId> {
            used(new, kind)
                .into_iter()
                .filter(|c| changed(kind, &c.id) || used(old, kind).iter().all(|o| o.id != c.id))
                .map(|c| c.id.clone())
                .collect()
        };
        let processors = build(Kind::Processor);
        let exporters = build(Kind::Exporter);
        let mut pipelines: BTreeSet<PipelineId> = new
            .service
            .pipelines
            .values()
            .filter(|p| {
                let Some(o) = old.service.pipelines.get(&p.id) else {
                    return true;
                };
                ids(&o.processors) != ids(&p.processors)
                    || ids(&o.exporters) != ids(&p.exporters)
                    || p.processors.iter().any(|r| processors.contains(&r.id))
                    || p.exporters.iter().any(|r| {
                        exporters.contains(&r.id)
                            || (new.connectors.contains_key(&r.id)
                                && changed(Kind::Connector, &r.id))
                    })
                    || feeds_into(old, &p.id) != feeds_into(new, &p.id)
            })
            .map(|p| p.id.clone())
            .collect();
        // A pipeline feeding a rebuilt one through a connector holds its
        // old entrance: rebuilt too.
        loop {
            let upstream: Vec<PipelineId> = graph::edges(new)
                .iter()
                .filter(|e| pipelines.contains(e.to) && !pipelines.contains(e.from))
                .map(|e| e.from.clone())
                .collect();
            if upstream.is_empty() {
                break;
            }
            pipelines.extend(upstream);
        }
        let (was, is) = (receivers_in(old), receivers_in(new));
        let receivers = is
            .into_iter()
            .filter(|id| !was.contains(id) || changed(Kind::Receiver, id))
            .cloned()
            .collect();
        Plan {
            processors,
            exporters,
            receivers,
            pipelines,
            needs_restart,
        }
    }
}

/// How a reload ended, as counted in `tern_config_reloads_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The new configuration is running.
    Applied,
    /// The new configuration asks for nothing different.
    Unchanged,
    /// The new configuration does not validate: the old one keeps running.
    Invalid,
    /// A component of the new configuration could not be built: the old
    /// configuration keeps running, untouched.
    Failed,
    /// A changed receiver could not listen on its new endpoint: the rest
    /// of the new configuration runs, without that receiver.
    Partial,
}

impl Reload {
    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reload::Applied => "applied",
            Reload::Unchanged => "unchanged",
            Reload::Invalid => "invalid",
            Reload::Failed => "failed",
            Reload::Partial => "partial",
        }
    }
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
        let storages = Arc::new(Storages::default());
        let starting = Starting {
            config,
            telemetry: &telemetry,
            resource,
            health: &health,
            storages: &storages,
        };
        let mut admin = Part::new();
        starting.admin(&mut admin).await?;
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
        let mut exporters = BTreeMap::new();
        for c in used(config, Kind::Exporter) {
            let built = starting.exporter(c).await?;
            exporters.insert(
                c.id.clone(),
                start_exporter(&telemetry, &c.id, built, &abandon_rx),
            );
        }
        for c in config.connectors.values() {
            starting
                .build(Kind::Connector, c, Arc::default(), &mut admin)
                .await?;
        }
        let mut processors = BTreeMap::new();
        for c in used(config, Kind::Processor) {
            processors.insert(c.id.clone(), starting.processor(c).await?);
        }
        let mut pipelines = BTreeMap::new();
        let all = config.service.pipelines.keys().cloned().collect();
        start_pipelines(
            config,
            &handles(&exporters),
            &processors,
            &all,
            &mut pipelines,
        );
        let mut receivers = BTreeMap::new();
        for (id, consumers) in consumers(config, &pipelines) {
            let Some(c) = config.receivers.get(&id) else {
                continue;
            };
            let (mut receiver, servers) = starting.receiver(c).await?;
            receiver.feeds.replace(consumers);
            let lifetime = receiver.part.lifetime();
            serve_all(servers, &lifetime, &mut receiver.part.tasks).await?;
            receivers.insert(id, receiver);
        }

        health.set_ready(true);
        tracing::info!(
            pipelines = config.service.pipelines.len(),
            "Tern is running"
        );
        Ok(Service {
            config: config.clone(),
            telemetry,
            resource: resource.clone(),
            receivers,
            processors,
            exporters,
            pipelines,
            retiring: Vec::new(),
            admin,
            abandon,
            health,
            storages,
            self_export: Some(self_export),
        })
    }

    /// Replaces the running configuration with `loaded` (the files read
    /// again), counting the outcome in `tern_config_reloads_total`. A
    /// configuration that does not validate is logged, one line per
    /// problem, and changes nothing. Otherwise only what changed is
    /// rebuilt, while the rest keeps running: every component whose
    /// settings changed (receivers and exporters also when an extension
    /// changed, since they resolve authenticators when built) and every
    /// pipeline using one of them, whose list of components changed, or
    /// that feeds a rebuilt pipeline through a connector. The new
    /// components are built first; if one fails, nothing is touched.
    /// Then the rebuilt pipelines start beside the old ones, receivers are
    /// pointed at the new entrances (a receiver whose settings changed is
    /// stopped, then started again), and what was replaced drains in the
    /// background ([`retire`]): nothing already accepted is dropped.
    /// `service.telemetry` and the extensions' own endpoints are not
    /// restarted: a change to them is logged as needing a restart.
    pub async fn reload(&mut self, loaded: Result<Config, ConfigErrors>) -> Reload {
        let outcome = match loaded {
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    problems = errors.0.len(),
                    "the new configuration is invalid; the running one is kept"
                );
                Reload::Invalid
            }
            Ok(config) => {
                for w in &config.warnings {
                    tracing::warn!("{w}");
                }
                match self.apply(config).await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        tracing::error!(
                            error = %e,
                            "cannot start the new configuration; the running one is kept"
                        );
                        Reload::Failed
                    }
                }
            }
        };
        self.telemetry
            .counter(
                "tern_config_reloads_total",
                "Configuration reloads (SIGHUP or --watch-config), by outcome.",
                &[("outcome", outcome.as_str())],
            )
            .add(1);
        outcome
    }

    async fn apply(&mut self, new: Config) -> Result<Reload, StartError> {
        let mut plan = Plan::new(&self.config, &new);
        // A receiver an earlier reload could not start is started again.
        plan.receivers.extend(
            receivers_in(&new)
                .into_iter()
                .filter(|id| !self.receivers.contains_key(*id))
                .cloned(),
        );
        for what in &plan.needs_restart {
            tracing::warn!(
                section = what,
                "changed settings need a restart to take effect; the running ones are kept"
            );
        }
        let retired_pipelines: Vec<PipelineId> = self
            .pipelines
            .keys()
            .filter(|id| plan.pipelines.contains(id) || !new.service.pipelines.contains_key(id))
            .cloned()
            .collect();
        let gone = |running: &mut dyn Iterator<Item = &ComponentId>,
                    rebuilt: &BTreeSet<ComponentId>,
                    kind: Kind| {
            let kept: Vec<&ComponentId> = used(&new, kind).into_iter().map(|c| &c.id).collect();
            running
                .filter(|id| rebuilt.contains(id) || !kept.contains(id))
                .cloned()
                .collect::<Vec<_>>()
        };
        let retired_processors = gone(
            &mut self.processors.keys(),
            &plan.processors,
            Kind::Processor,
        );
        let retired_exporters = gone(&mut self.exporters.keys(), &plan.exporters, Kind::Exporter);
        let stopped_receivers: Vec<ComponentId> = self
            .receivers
            .keys()
            .filter(|id| plan.receivers.contains(id) || !receivers_in(&new).contains(id))
            .cloned()
            .collect();
        let rewired = self
            .receivers
            .keys()
            .any(|id| pipelines_fed_by(&self.config, id) != pipelines_fed_by(&new, id));
        if retired_pipelines.is_empty()
            && plan.pipelines.is_empty()
            && plan.receivers.is_empty()
            && stopped_receivers.is_empty()
            && !rewired
        {
            self.config = new;
            tracing::info!("configuration reloaded: nothing to change");
            return Ok(Reload::Unchanged);
        }

        // Build everything new first: a failure leaves the service as it was.
        let starting = Starting {
            config: &new,
            telemetry: &self.telemetry,
            resource: &self.resource,
            health: &self.health,
            storages: &self.storages,
        };
        let mut processors = BTreeMap::new();
        for id in &plan.processors {
            if let Some(c) = new.processors.get(id) {
                processors.insert(id.clone(), starting.processor(c).await?);
            }
        }
        let mut exporters = BTreeMap::new();
        for id in &plan.exporters {
            if let Some(c) = new.exporters.get(id) {
                exporters.insert(id.clone(), starting.exporter(c).await?);
            }
        }
        let mut receivers = BTreeMap::new();
        for id in &plan.receivers {
            if let Some(c) = new.receivers.get(id) {
                receivers.insert(id.clone(), starting.receiver(c).await?);
            }
        }

        // Then swap: what is replaced leaves the running service (it keeps
        // running until it has drained), the new parts come in.
        let old_pipelines: Vec<Task> = retired_pipelines
            .iter()
            .filter_map(|id| self.pipelines.remove(id))
            .flat_map(|p| p.tasks)
            .collect();
        let mut old_parts: Vec<Part> = retired_processors
            .iter()
            .filter_map(|id| self.processors.remove(id))
            .map(|p| p.part)
            .collect();
        let old_exporters: Vec<ExporterTask> = retired_exporters
            .iter()
            .filter_map(|id| self.exporters.remove(id))
            .collect();
        self.processors.extend(processors);
        let abandon_rx = self.abandon.subscribe();
        for (id, built) in exporters {
            let started = start_exporter(&self.telemetry, &id, built, &abandon_rx);
            self.exporters.insert(id, started);
        }
        start_pipelines(
            &new,
            &handles(&self.exporters),
            &self.processors,
            &plan.pipelines,
            &mut self.pipelines,
        );
        let mut consumers = consumers(&new, &self.pipelines);
        let until = Instant::now() + Config::SHUTDOWN_DEADLINE;
        for id in &stopped_receivers {
            if let Some(mut r) = self.receivers.remove(id) {
                // Requests in flight finish into the entrances they had.
                r.part.tell_stop();
                let mut panicked = Vec::new();
                if !join_until(&mut r.part.tasks, until, &mut panicked).await {
                    tracing::error!(receiver = %id, "the replaced receiver did not stop in time; abandoned");
                    r.part.tasks.iter().for_each(|t| t.handle.abort());
                }
                r.feeds.replace(Consumers::default());
                old_parts.push(r.part);
            }
        }
        // Kept receivers: the same listeners, new entrances.
        for (id, r) in &self.receivers {
            r.feeds.replace(consumers.remove(id).unwrap_or_default());
        }
        let mut outcome = Reload::Applied;
        for (id, (mut receiver, servers)) in receivers {
            receiver
                .feeds
                .replace(consumers.remove(&id).unwrap_or_default());
            let lifetime = receiver.part.lifetime();
            if let Err(e) = serve_all(servers, &lifetime, &mut receiver.part.tasks).await {
                tracing::error!(receiver = %id, error = %e, "the reloaded receiver cannot listen; it stays stopped");
                receiver.feeds.replace(Consumers::default());
                receiver.part.tell_stop();
                outcome = Reload::Partial;
                continue;
            }
            self.receivers.insert(id, receiver);
        }
        self.retiring.retain(|t| !t.handle.is_finished());
        self.retiring.push(Task::new(
            "components replaced by a reload",
            tokio::spawn(retire(old_pipelines, old_exporters, old_parts, abandon_rx)),
        ));
        let names = |ids: &mut dyn Iterator<Item = &PipelineId>| {
            ids.map(ToString::to_string).collect::<Vec<_>>()
        };
        tracing::info!(
            pipelines = ?names(&mut plan.pipelines.iter()),
            removed_pipelines = ?names(&mut retired_pipelines.iter().filter(|id| !plan.pipelines.contains(*id))),
            processors = ?plan.processors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            exporters = ?plan.exporters.iter().map(ToString::to_string).collect::<Vec<_>>(),
            receivers = ?plan.receivers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "configuration reloaded; rebuilt what changed"
        );
        self.config = new;
        Ok(outcome)
    }

    /// Stops in order: receivers, processors (flush), exporters (drain),
    /// all within `deadline`. At the deadline, exporter queues are closed,
    /// workers count the batch in hand as failed and stop, and what is
    /// still queued is counted as failed and logged. A task that has still
    /// not stopped [`GIVE_UP_GRACE`] later (one stuck in CPU-bound work
    /// cannot be interrupted) is abandoned: logged, aborted where it can
    /// be, and returned by name.
    pub async fn shutdown(self, deadline: Duration) -> Stopped {
        let until = Instant::now() + deadline;
        let mut panicked = Vec::new();
        self.health.set_ready(false);
        tracing::info!("shutting down: stopping receivers");
        let mut servers = Vec::new();
        for mut r in self.receivers.into_values() {
            r.part.tell_stop();
            servers.append(&mut r.part.tasks);
            // Then only upstream fan-outs hold entrances: a pipeline
            // closes once everything feeding it has stopped.
            r.feeds.replace(Consumers::default());
        }
        let mut on_time = join_until(&mut servers, until, &mut panicked).await;
        // Pipelines were started downstream first; each drains once
        // everything feeding it (receivers, upstream connectors) has.
        tracing::info!("draining processors");
        let mut pipelines: Vec<Task> = self.pipelines.into_values().flat_map(|p| p.tasks).collect();
        on_time &= join_until(&mut pipelines, until, &mut panicked).await;
        tracing::info!("flushing exporters");
        let mut exporters: Vec<ExporterTask> = self.exporters.into_values().collect();
        for e in &exporters {
            e.queue.close();
        }
        let mut workers: Vec<Task> = exporters
            .iter_mut()
            .flat_map(|e| e.tasks.drain(..))
            .chain(self.retiring)
            .collect();
        on_time &= join_until(&mut workers, until, &mut panicked).await;
        let mut running: Vec<Task> = servers
            .into_iter()
            .chain(pipelines)
            .chain(workers)
            .collect();
        if !on_time {
            // Deadline: workers count the batch in hand as failed and stop;
            // what is still queued is counted here. Persistent queues keep
            // both on disk for the next start.
            self.storages.freeze_all();
            let _ = self.abandon.send(true);
            join_until(&mut running, Instant::now() + GIVE_UP_GRACE, &mut panicked).await;
            exporters.iter().for_each(drop_queued);
        }
        let mut admin = vec![self.admin];
        admin.extend(self.processors.into_values().map(|p| p.part));
        admin.extend(exporters.into_iter().map(|e| e.part));
        let mut admin_tasks = Vec::new();
        for part in &mut admin {
            part.tell_stop();
            admin_tasks.append(&mut part.tasks);
        }
        join_until(
            &mut admin_tasks,
            Instant::now() + GIVE_UP_GRACE,
            &mut panicked,
        )
        .await;
        let mut left = Vec::new();
        for mut t in running.into_iter().chain(admin_tasks) {
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

    /// A service running nothing but `tasks`, as one pipeline's.
    fn service(tasks: Vec<Task>, abandon: watch::Sender<bool>) -> Service {
        let pipeline = Pipeline {
            entry: inlet(1, 1).0,
            tasks,
        };
        Service {
            config: Config::default(),
            telemetry: Telemetry::new(),
            resource: BTreeMap::new(),
            receivers: BTreeMap::new(),
            processors: BTreeMap::new(),
            exporters: BTreeMap::new(),
            pipelines: BTreeMap::from([("traces".parse().unwrap(), pipeline)]),
            retiring: Vec::new(),
            admin: Part::new(),
            abandon,
            health: Arc::new(Health::default()),
            storages: Arc::default(),
            self_export: None,
        }
    }

    fn config(yaml: &str) -> Config {
        tern_config::load_sources(&[("tern.yaml".into(), yaml.into())], &|_| None).unwrap()
    }

    /// Two receivers, a processor, two exporters and a connector from
    /// pipeline `traces` into `traces/2`; `{debug}`, `{batch}`, `{grpc}` and
    /// `{level}` vary.
    const GRAPH: &str = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{grpc}\n  otlp/2:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\nprocessors:\n  batch:\n    timeout: {batch}\nexporters:\n  nop:\n  debug:\n    verbosity: {debug}\nconnectors:\n  forward:\nservice:\n  telemetry:\n    logs:\n      level: {level}\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [nop, forward]\n    traces/2:\n      receivers: [forward]\n      exporters: [debug]\n    logs:\n      receivers: [otlp/2]\n      exporters: [nop]\n";

    fn graph(debug: &str, batch: &str, grpc: u16, level: &str) -> Config {
        config(
            &GRAPH
                .replace("{debug}", debug)
                .replace("{batch}", batch)
                .replace("{grpc}", &grpc.to_string())
                .replace("{level}", level),
        )
    }

    /// (processors, exporters, receivers, pipelines, needs restart) a
    /// reload from `old` to `new` rebuilds.
    fn plan(old: &Config, new: &Config) -> [Vec<String>; 5] {
        let p = Plan::new(old, new);
        [
            p.processors.iter().map(ToString::to_string).collect(),
            p.exporters.iter().map(ToString::to_string).collect(),
            p.receivers.iter().map(ToString::to_string).collect(),
            p.pipelines.iter().map(ToString::to_string).collect(),
            p.needs_restart.iter().map(ToString::to_string).collect(),
        ]
    }

    /// A reload rebuilds only what changed: a changed exporter's pipeline
    /// and the pipeline feeding it through a connector; a changed
    /// processor's pipeline; a changed receiver alone (pipelines keep
    /// running); `service.telemetry` is reported as needing a restart.
    #[test]
    fn a_reload_plans_to_rebuild_only_what_changed() {
        let old = graph("basic", "200ms", 4317, "info");
        let none: [Vec<String>; 5] = Default::default();
        assert_eq!(plan(&old, &graph("basic", "200ms", 4317, "info")), none);
        let s = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            plan(&old, &graph("detailed", "200ms", 4317, "info")),
            [
                s(&[]),
                s(&["debug"]),
                s(&[]),
                s(&["traces", "traces/2"]),
                s(&[])
            ]
        );
        assert_eq!(
            plan(&old, &graph("basic", "1s", 4317, "info")),
            [s(&["batch"]), s(&[]), s(&[]), s(&["traces"]), s(&[])]
        );
        assert_eq!(
            plan(&old, &graph("basic", "200ms", 4318, "info")),
            [s(&[]), s(&[]), s(&["otlp"]), s(&[]), s(&[])]
        );
        assert_eq!(
            plan(&old, &graph("basic", "200ms", 4317, "debug")),
            [s(&[]), s(&[]), s(&[]), s(&[]), s(&["service.telemetry"])]
        );
    }

    /// The same settings written elsewhere in the file are no change.
    #[test]
    fn moving_a_component_in_the_file_changes_nothing() {
        let old = graph("basic", "200ms", 4317, "info");
        let moved = config(
            &GRAPH
                .replace(
                    "exporters:\n  nop:\n  debug:\n    verbosity: {debug}\n",
                    "exporters:\n  debug:\n\n    verbosity: \"basic\"\n  nop: {}\n",
                )
                .replace("{batch}", "200ms")
                .replace("{grpc}", "4317")
                .replace("{level}", "info"),
        );
        assert_ne!(
            moved.exporters[&"debug".parse().unwrap()].loc,
            old.exporters[&"debug".parse().unwrap()].loc
        );
        let none: [Vec<String>; 5] = Default::default();
        assert_eq!(plan(&old, &moved), none);
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
