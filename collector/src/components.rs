//! The runtime registry: for every component type of
//! [`tern_config::components::CATALOG`], one line of [`RUNTIME`] naming the
//! function that builds it from its typed settings into a [`Built`]: what it
//! contributes to a running service (listeners to serve, tasks beside the
//! pipelines, a processor's stage or admission gate, an exporter's workers
//! and queue). The service starts and stops what it is given without
//! knowing any component type; the components' own code lives in their
//! crates (`tern-processors`, `tern-exporters`, [`crate::receiver`], the
//! extensions' modules), and the builders here only hand it its settings.
//!
//! Adding a component: its settings module and `CATALOG` line in
//! `tern-config`, its code in the crate that runs it, and a builder and one
//! line of [`RUNTIME`] here.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tern_config::{
    BatchConfig, Component, ComponentConfig, Config, DebugConfig, Endpoint, FileConfig,
    ForwardConfig, HealthCheckConfig, Kind, LoadBalancingConfig, MemoryLimiterConfig, NopConfig,
    OtlpExporterConfig, OtlpHttpExporterConfig, OtlpReceiverConfig, PprofConfig,
    ProbabilisticSamplerConfig, PrometheusConfig, PrometheusRemoteWriteConfig, QueueConfig, Signal,
    TailSamplingConfig, ZPagesConfig,
};
use tern_core::component::Processor;
use tern_core::memory::MemoryGate;
use tern_core::telemetry::{ReceiverMetrics, Telemetry};
use tern_exporters::ExporterSpec;
use tern_processors::{batch, memory_limiter, probabilistic_sampler, tail_sampling};
use tokio::net::TcpListener;

use crate::admin::{self, Health};
use crate::receiver::{Consumers, OtlpSink, grpc, http};
use crate::serve::{self, Shutdown};
use crate::service::StartError;
use crate::{pprof, zpages};

/// A task's future.
pub type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A listener a component serves: the service binds `endpoint` (naming
/// `key` when it cannot) and runs `serve` on it until told to stop.
pub struct Server {
    /// The task's name in logs (`receiver otlp (grpc)`).
    pub what: String,
    /// The config key of the address.
    pub key: String,
    /// The address.
    pub endpoint: Endpoint,
    /// Serves the bound listener until the shutdown signal.
    pub serve: Box<dyn FnOnce(TcpListener, Shutdown) -> Job + Send>,
}

/// Starts a task that runs until the shutdown signal it is given.
pub type Starter = Box<dyn FnOnce(Shutdown) -> Job + Send>;

/// Makes a processor's task for a pipeline of a signal.
pub type Stage = Box<dyn Fn(Signal) -> Box<dyn Processor> + Send + Sync>;

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
    pub consumers: Arc<Consumers>,
}

/// Builds a component of one type.
pub type Build = fn(&Context<'_>, &Component) -> Result<Built, StartError>;

/// How every component type is built: kind, type name (as in the catalog)
/// and builder.
pub const RUNTIME: &[(Kind, &str, Build)] = &[
    (Kind::Receiver, "otlp", otlp_receiver),
    (Kind::Processor, "memory_limiter", memory_limiter),
    (Kind::Processor, "batch", batch),
    (
        Kind::Processor,
        "probabilistic_sampler",
        probabilistic_sampler,
    ),
    (Kind::Processor, "tail_sampling", tail_sampling),
    (Kind::Exporter, "debug", debug),
    (Kind::Exporter, "file", file),
    (Kind::Exporter, "otlp_grpc", otlp_grpc),
    (Kind::Exporter, "otlp_http", otlp_http),
    (Kind::Exporter, "prometheus", prometheus),
    (
        Kind::Exporter,
        "prometheus_remote_write",
        prometheus_remote_write,
    ),
    (Kind::Exporter, "load_balancing", load_balancing),
    (Kind::Exporter, "nop", nop),
    (Kind::Connector, "forward", forward),
    (Kind::Extension, "health_check", health_check),
    (Kind::Extension, "pprof", pprof_extension),
    (Kind::Extension, "zpages", zpages_extension),
];

/// Builds `c`, a component of `kind`, with its registered builder.
pub fn build(kind: Kind, ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let (_, _, build) = RUNTIME
        .iter()
        .find(|(k, ty, _)| *k == kind && *ty == c.info.type_name)
        .ok_or_else(|| StartError::Unregistered(c.id.to_string()))?;
    build(ctx, c)
}

/// `c`'s settings as `T` (its catalog entry's type).
fn settings<T: ComponentConfig>(c: &Component) -> Result<&T, StartError> {
    c.settings()
        .ok_or_else(|| StartError::Unregistered(c.id.to_string()))
}

fn spawn(job: impl Future<Output = ()> + Send + 'static) -> Job {
    Box::pin(job)
}

fn otlp_receiver(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let otlp = settings::<OtlpReceiverConfig>(c)?;
    let name = ctx.id.clone();
    let mut servers = Vec::new();
    if let Some(g) = otlp.protocols.grpc.as_ref() {
        let tls = match &g.tls {
            Some(t) => Some(serve::tls_acceptor(
                t,
                &[b"h2"],
                &format!("receivers.{name}.protocols.grpc.tls"),
            )?),
            None => None,
        };
        let sink = OtlpSink::new(
            &name,
            ctx.consumers.clone(),
            ReceiverMetrics::new(ctx.telemetry, &name, "grpc"),
        );
        let (g, id) = (g.clone(), name.clone());
        servers.push(Server {
            what: format!("receiver {name} (grpc)"),
            key: format!("receivers.{name}.protocols.grpc.endpoint"),
            endpoint: g.endpoint.clone(),
            serve: Box::new(move |listener, stop| {
                if let Ok(addr) = listener.local_addr() {
                    tracing::info!(receiver = %id, endpoint = %addr, tls = tls.is_some(), "OTLP/gRPC listening");
                }
                spawn(grpc::run(listener, g, tls, sink, stop))
            }),
        });
    }
    if let Some(h) = otlp.protocols.http.as_ref() {
        let tls = match &h.tls {
            Some(t) => Some(serve::tls_acceptor(
                t,
                &[b"h2", b"http/1.1"],
                &format!("receivers.{name}.protocols.http.tls"),
            )?),
            None => None,
        };
        let sink = OtlpSink::new(
            &name,
            ctx.consumers.clone(),
            ReceiverMetrics::new(ctx.telemetry, &name, "http"),
        );
        let (h, id) = (h.clone(), name.clone());
        servers.push(Server {
            what: format!("receiver {name} (http)"),
            key: format!("receivers.{name}.protocols.http.endpoint"),
            endpoint: h.endpoint.clone(),
            serve: Box::new(move |listener, stop| {
                if let Ok(addr) = listener.local_addr() {
                    tracing::info!(receiver = %id, endpoint = %addr, tls = tls.is_some(), "OTLP/HTTP listening");
                }
                spawn(http::run(listener, h, tls, sink, stop))
            }),
        });
    }
    Ok(Built {
        servers,
        ..Built::default()
    })
}

fn memory_limiter(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let m = settings::<MemoryLimiterConfig>(c)?.clone();
    let gate = memory_limiter::gate(&ctx.id, &m, ctx.telemetry);
    let supervised = gate.clone();
    Ok(Built {
        gate: Some(gate),
        beside: vec![(
            format!("processor {} supervisor", ctx.id),
            Box::new(move |stop| spawn(memory_limiter::supervise(supervised, m, stop))),
        )],
        ..Built::default()
    })
}

/// A processor that is one task per pipeline, made by `make`.
fn stage(make: impl Fn(Signal) -> Box<dyn Processor> + Send + Sync + 'static) -> Built {
    Built {
        stage: Some(Box::new(make)),
        ..Built::default()
    }
}

fn batch(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let (config, id, telemetry) = (
        settings::<BatchConfig>(c)?.clone(),
        ctx.id.clone(),
        ctx.telemetry.clone(),
    );
    Ok(stage(move |signal| {
        Box::new(batch::BatchProcessor::new(&id, &config, signal, &telemetry))
    }))
}

fn probabilistic_sampler(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let (config, id, telemetry) = (
        settings::<ProbabilisticSamplerConfig>(c)?.clone(),
        ctx.id.clone(),
        ctx.telemetry.clone(),
    );
    Ok(stage(move |signal| {
        Box::new(probabilistic_sampler::ProbabilisticSampler::new(
            &id, &config, signal, &telemetry,
        ))
    }))
}

fn tail_sampling(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let (config, id, telemetry) = (
        settings::<TailSamplingConfig>(c)?.clone(),
        ctx.id.clone(),
        ctx.telemetry.clone(),
    );
    Ok(stage(move |_| {
        Box::new(tail_sampling::TailSampling::new(&id, &config, &telemetry))
    }))
}

fn exporter(spec: ExporterSpec) -> Result<Built, StartError> {
    Ok(Built {
        exporter: Some(spec),
        ..Built::default()
    })
}

fn debug(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let config = settings::<DebugConfig>(c)?;
    exporter(tern_exporters::single(Box::new(
        tern_exporters::debug::DebugExporter::new(&ctx.id, config),
    )))
}

fn file(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let config = settings::<FileConfig>(c)?;
    exporter(tern_exporters::single(Box::new(
        tern_exporters::file::FileExporter::open(&ctx.id, config)?,
    )))
}

fn nop(_: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    settings::<NopConfig>(c)?;
    exporter(tern_exporters::single(Box::new(
        tern_exporters::nop::NopExporter,
    )))
}

fn otlp_grpc(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let config = settings::<OtlpExporterConfig>(c)?;
    exporter(tern_exporters::queued(
        tern_exporters::otlp::OtlpGrpcExporter::new(&ctx.id, config)?,
        &config.sending_queue,
        QueueConfig::DEFAULT_CONSUMERS,
    ))
}

fn otlp_http(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let config = settings::<OtlpHttpExporterConfig>(c)?;
    exporter(tern_exporters::queued(
        tern_exporters::otlp::OtlpHttpExporter::new(&ctx.id, config)?,
        &config.sending_queue,
        QueueConfig::DEFAULT_CONSUMERS,
    ))
}

fn prometheus_remote_write(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let config = settings::<PrometheusRemoteWriteConfig>(c)?;
    exporter(tern_exporters::queued(
        tern_exporters::prometheus::remote_write::RemoteWriteExporter::new(
            &ctx.id,
            config,
            ctx.telemetry,
        )?,
        &config.remote_write_queue.queue(),
        1,
    ))
}

fn load_balancing(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let config = settings::<LoadBalancingConfig>(c)?;
    exporter(tern_exporters::loadbalancing::build(
        &ctx.id,
        config,
        ctx.telemetry,
    )?)
}

/// The `prometheus` exporter and its scrape endpoint.
fn prometheus(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let config = settings::<PrometheusConfig>(c)?;
    let (exporter, scrape) =
        tern_exporters::prometheus::PrometheusExporter::new(&ctx.id, config, ctx.telemetry);
    let servers = scrape
        .into_iter()
        .map(|(endpoint, handler)| {
            let id = ctx.id.clone();
            Server {
                what: format!("exporter {id} scrape endpoint"),
                key: format!("exporters.{id}.endpoint"),
                endpoint,
                serve: Box::new(move |listener, stop| {
                    if let Ok(addr) = listener.local_addr() {
                        tracing::info!(exporter = %id, endpoint = %addr, "Prometheus scrape endpoint listening");
                    }
                    spawn(admin::run_scrape(listener, handler, stop))
                }),
            }
        })
        .collect();
    Ok(Built {
        servers,
        exporter: Some(tern_exporters::single(Box::new(exporter))),
        ..Built::default()
    })
}

/// `forward` has no task of its own: the fan-out of a pipeline exporting
/// to it writes into the entrances of the pipelines it feeds.
fn forward(_: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    settings::<ForwardConfig>(c)?;
    Ok(Built::default())
}

/// An extension serving `endpoint` with `serve`.
fn listening(
    ctx: &Context<'_>,
    endpoint: &Endpoint,
    serve: impl FnOnce(TcpListener, Shutdown) -> Job + Send + 'static,
) -> Server {
    Server {
        what: format!("extension {}", ctx.id),
        key: format!("extensions.{}.endpoint", ctx.id),
        endpoint: endpoint.clone(),
        serve: Box::new(serve),
    }
}

fn health_check(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let config = settings::<HealthCheckConfig>(c)?.clone();
    let health = ctx.health.clone();
    Ok(Built {
        servers: vec![listening(ctx, &config.endpoint.clone(), move |l, stop| {
            spawn(admin::run_health(l, config, health, stop))
        })],
        ..Built::default()
    })
}

fn pprof_extension(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let config = settings::<PprofConfig>(c)?;
    let mut beside: Vec<(String, Starter)> = Vec::new();
    if !config.save_to_file.is_empty() {
        let failed = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "extensions.{}.save_to_file: {}: {e}",
                    ctx.id, config.save_to_file
                ),
            )
        };
        let file = std::fs::File::create(&config.save_to_file).map_err(failed)?;
        let path = config.save_to_file.clone();
        // Profiling starts now, as the file is created; the task writes it
        // at shutdown.
        let (start, started) = tokio::sync::watch::channel(false);
        let saving = pprof::save_to_file(file, path, started).map_err(failed)?;
        beside.push((
            format!("extension {} (save_to_file)", ctx.id),
            Box::new(move |mut stop: Shutdown| {
                spawn(async move {
                    let _ = stop.wait_for(|s| *s).await;
                    let _ = start.send(true);
                    let _ = saving.await;
                })
            }),
        ));
    }
    Ok(Built {
        servers: vec![listening(ctx, &config.endpoint, |l, stop| {
            spawn(pprof::run(l, stop))
        })],
        beside,
        ..Built::default()
    })
}

fn zpages_extension(ctx: &Context<'_>, c: &Component) -> Result<Built, StartError> {
    let config = settings::<ZPagesConfig>(c)?;
    let pages = Arc::new(zpages::Pages::new(ctx.config, ctx.resource));
    Ok(Built {
        servers: vec![listening(ctx, &config.endpoint, move |l, stop| {
            spawn(zpages::run(l, pages, stop))
        })],
        ..Built::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_config::components::CATALOG;

    /// Every type the config accepts has a builder, and every builder a
    /// type: a component registered on one side only fails here.
    #[test]
    fn every_catalog_type_has_a_builder_and_back() {
        for c in CATALOG {
            assert!(
                RUNTIME
                    .iter()
                    .any(|(k, ty, _)| *k == c.kind && *ty == c.type_name),
                "{} {} has no builder",
                c.kind.noun(),
                c.type_name
            );
        }
        for (kind, ty, _) in RUNTIME {
            assert!(
                tern_config::components::lookup(*kind, ty).is_some_and(|c| c.type_name == *ty),
                "builder for {ty} has no catalog entry"
            );
        }
    }

    /// What `tern validate` accepts, every builder builds (no listener is
    /// bound here): settings valid in the Collector that once validated and
    /// then stopped the start are among them.
    #[tokio::test]
    async fn every_component_of_a_valid_config_builds() {
        let dir = std::env::temp_dir().join(format!("tern-build-{}", std::process::id()));
        let yaml = format!(
            "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 64
  batch:
  probabilistic_sampler:
    sampling_percentage: 10
  tail_sampling:
    policies: [{{name: all, type: always_sample}}]
exporters:
  debug:
  nop:
  file:
    path: {file}
  otlp_http/traces_only:
    traces_endpoint: http://127.0.0.1:1/v1/traces
    headers: {{x-tenant: a}}
  otlp_grpc:
    endpoint: 127.0.0.1:1
    headers: {{x-tenant: a}}
  prometheus:
    endpoint: 127.0.0.1:0
  prometheus_remote_write:
    endpoint: http://127.0.0.1:1/api/v1/write
  load_balancing:
    protocol: {{otlp: {{tls: {{insecure: true}}}}}}
    resolver: {{static: {{hostnames: [127.0.0.1:1]}}}}
connectors:
  forward:
extensions:
  health_check:
    endpoint: 127.0.0.1:0
  pprof:
    endpoint: 127.0.0.1:0
  zpages:
    endpoint: 127.0.0.1:0
service:
  extensions: [health_check, pprof, zpages]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, probabilistic_sampler, tail_sampling, batch]
      exporters: [otlp_http/traces_only, otlp_grpc, load_balancing, forward]
    traces/2:
      receivers: [forward]
      exporters: [file, debug, nop]
    metrics:
      receivers: [otlp]
      exporters: [prometheus, prometheus_remote_write]
",
            file = dir.join("out.jsonl").display()
        );
        std::fs::create_dir_all(&dir).unwrap();
        let config = tern_config::load_sources(&[("tern.yaml".into(), yaml)], &|_| None).unwrap();
        let telemetry = Arc::new(Telemetry::new());
        let resource = BTreeMap::new();
        let health = Arc::new(Health::default());
        let mut types = Vec::new();
        for kind in Kind::ALL {
            for c in config.section(kind).values() {
                let ctx = Context {
                    id: c.id.to_string(),
                    config: &config,
                    telemetry: &telemetry,
                    resource: &resource,
                    health: &health,
                    consumers: Arc::default(),
                };
                if let Err(e) = build(kind, &ctx, c) {
                    panic!("{} {}: {e}", kind.noun(), c.id);
                }
                types.push(c.info.type_name);
            }
        }
        for c in CATALOG {
            assert!(types.contains(&c.type_name), "{} not covered", c.type_name);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
