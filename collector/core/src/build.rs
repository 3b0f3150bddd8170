//! What building a component gives the service. Every component type has
//! a builder (`fn(&Context, &Component) -> Result<Built, BuildError>`) in
//! its own module, in the crate that runs it, registered by one line of the
//! collector's runtime table. A [`Built`] says what the component
//! contributes: listeners to serve ([`Server`]), tasks beside the
//! pipelines, a processor's stage or admission gate, an exporter's workers
//! and queue ([`ExporterSpec`]). The service starts and stops these without
//! knowing any component type.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tern_config::{Component, ComponentConfig, Config, Endpoint, Signal};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::component::{Exporter, Processor};
use crate::memory::MemoryGate;
use crate::queue::{Inlet, QueueLimits};
use crate::telemetry::Telemetry;

/// A task's future.
pub type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Turns true when a task must stop.
pub type Shutdown = watch::Receiver<bool>;

/// Starts a task that runs until the shutdown signal it is given.
pub type Starter = Box<dyn FnOnce(Shutdown) -> Job + Send>;

/// Answers an HTTP GET from its request headers.
pub type Answer = Arc<dyn Fn(&http::HeaderMap) -> http::Response<Bytes> + Send + Sync>;

/// How a [`Server`]'s listener is served.
pub enum Serve {
    /// By the component's own task.
    Task(Box<dyn FnOnce(TcpListener, Shutdown) -> Job + Send>),
    /// By the service's HTTP server: `path` answered by `answer`, any other
    /// path a 404 naming it.
    Get {
        /// The path served.
        path: String,
        /// The answer.
        answer: Answer,
    },
}

/// A listener a component serves: the service binds `endpoint` (naming
/// `key` when it cannot) and serves it until told to stop.
pub struct Server {
    /// The task's name in logs (`receiver otlp (grpc)`).
    pub what: String,
    /// The config key of the address.
    pub key: String,
    /// The address.
    pub endpoint: Endpoint,
    /// How it is served.
    pub serve: Serve,
}

/// Makes a processor's task for a pipeline of a signal.
pub type Stage = Box<dyn Fn(Signal) -> Box<dyn Processor> + Send + Sync>;

/// A built exporter: its workers and its queue.
pub struct ExporterSpec {
    /// Workers sharing the queue (one per `num_consumers`).
    pub workers: Vec<Box<dyn Exporter>>,
    /// Queue capacity.
    pub limits: QueueLimits,
    /// Wait for room when full (true) or make receivers refuse (false).
    pub block_on_overflow: bool,
    /// Senders are answered with the outcome of the export
    /// (`sending_queue.wait_for_result`).
    pub wait_for_result: bool,
    /// The `file_storage` extension keeping the queue on disk
    /// (`sending_queue.storage`).
    pub storage: Option<String>,
}

/// What a built component contributes to the running service.
#[derive(Default)]
pub struct Built {
    /// Listeners to serve: a receiver's until receivers stop, any other
    /// component's until the admin endpoints stop (last).
    pub servers: Vec<Server>,
    /// Tasks that run beside the pipelines until the admin endpoints stop,
    /// each with its name.
    pub beside: Vec<(String, Starter)>,
    /// A processor's task in each pipeline listing it.
    pub stage: Option<Stage>,
    /// A processor acting at admission: a memory gate on the entrance of
    /// each pipeline listing it (one budget for all of them).
    pub gate: Option<Arc<MemoryGate>>,
    /// An exporter's workers and queue.
    pub exporter: Option<ExporterSpec>,
}

impl Built {
    /// A processor that is one task per pipeline, made by `make`.
    pub fn stage(make: impl Fn(Signal) -> Box<dyn Processor> + Send + Sync + 'static) -> Built {
        Built {
            stage: Some(Box::new(make)),
            ..Built::default()
        }
    }

    /// An exporter.
    pub fn exporter(spec: ExporterSpec) -> Built {
        Built {
            exporter: Some(spec),
            ..Built::default()
        }
    }
}

/// Whether the collector is ready; flipped by the service.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks all pipelines running (true) or starting / stopping (false).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// True when all pipelines run.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

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

/// A receiver's pipeline entrances as they are now: a configuration reload
/// that rebuilds pipelines replaces them under the running receiver, which
/// reads them once per request.
#[derive(Debug, Default)]
pub struct Feeds(RwLock<Arc<Consumers>>);

impl Feeds {
    /// Entrances `consumers`.
    pub fn new(consumers: Consumers) -> Arc<Feeds> {
        Arc::new(Feeds(RwLock::new(Arc::new(consumers))))
    }

    /// The entrances now.
    pub fn current(&self) -> Arc<Consumers> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the entrances; requests already admitted keep the old ones
    /// until they are done with them.
    pub fn replace(&self, consumers: Consumers) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(consumers);
    }
}

/// What a builder is given besides the component.
pub struct Context<'a> {
    /// The component's id, as written.
    pub id: String,
    /// The whole config (for pages describing it).
    pub config: &'a Config,
    /// Where counters go.
    pub telemetry: &'a Arc<Telemetry>,
    /// Tern's own resource.
    pub resource: &'a BTreeMap<String, String>,
    /// Readiness, for health endpoints.
    pub health: &'a Arc<Health>,
    /// For a receiver: the entrances of the pipelines it feeds.
    pub consumers: Arc<Feeds>,
}

impl Context<'_> {
    /// `c`'s settings as `T`, the type its catalog entry reads.
    pub fn settings<'c, T: ComponentConfig>(&self, c: &'c Component) -> Result<&'c T, BuildError> {
        c.settings()
            .ok_or_else(|| BuildError::Unregistered(self.id.clone()))
    }
}

/// Why a component could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file or socket could not be opened.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The component's own reason (bad TLS material, a file it cannot
    /// open, ...), which names it.
    #[error(transparent)]
    Component(Box<dyn std::error::Error + Send + Sync>),
    /// A component whose type has no builder, or whose settings are not of
    /// the type its builder expects.
    #[error("{0}: no builder registered for its type")]
    Unregistered(String),
}

/// Builds a component of one type.
pub type Build = fn(&Context<'_>, &Component) -> Result<Built, BuildError>;
