//! The runtime registry: for every component type of
//! [`tern_config::components::CATALOG`], one line of [`RUNTIME`] naming its
//! builder, which lives with the component's code in the crate that runs it
//! (`tern-processors`, `tern-exporters`, [`crate::receiver`], the extensions'
//! modules, core's fan-out for `forward`) and turns its typed settings into
//! a [`Built`]: what the service starts and stops without knowing any
//! component type (see [`tern_core::build`]).
//!
//! Adding a component: its settings module and `CATALOG` line in
//! `tern-config`, its module (code and builder) in the crate that runs it,
//! and one line of [`RUNTIME`] here.

use tern_config::{Component, Kind};
use tern_core::build::{Build, BuildError, Built, Context};
use tern_exporters as exporters;
use tern_processors as processors;

use crate::{admin, file_storage, pprof, receiver, zpages};

/// How every component type is built: kind, type name (as in the catalog)
/// and builder.
#[rustfmt::skip]
pub const RUNTIME: &[(Kind, &str, Build)] = &[
    (Kind::Receiver, "otlp", receiver::build),
    (Kind::Processor, "memory_limiter", processors::memory_limiter::build),
    (Kind::Processor, "batch", processors::batch::build),
    (Kind::Processor, "probabilistic_sampler", processors::probabilistic_sampler::build),
    (Kind::Processor, "tail_sampling", processors::tail_sampling::build),
    (Kind::Exporter, "debug", exporters::debug::build),
    (Kind::Exporter, "file", exporters::file::build),
    (Kind::Exporter, "otlp_grpc", exporters::otlp::build_grpc),
    (Kind::Exporter, "otlp_http", exporters::otlp::build_http),
    (Kind::Exporter, "prometheus", exporters::prometheus::build),
    (Kind::Exporter, "prometheus_remote_write", exporters::prometheus::remote_write::build),
    (Kind::Exporter, "load_balancing", exporters::loadbalancing::build),
    (Kind::Exporter, "nop", exporters::nop::build),
    (Kind::Connector, "forward", tern_core::component::build_forward),
    (Kind::Extension, "basicauth", tern_core::auth::build_extension),
    (Kind::Extension, "file_storage", file_storage::build),
    (Kind::Extension, "bearertokenauth", tern_core::auth::build_extension),
    (Kind::Extension, "headers_setter", tern_core::auth::build_extension),
    (Kind::Extension, "health_check", admin::build_health_check),
    (Kind::Extension, "oidc", tern_core::auth::build_extension),
    (Kind::Extension, "pprof", pprof::build),
    (Kind::Extension, "zpages", zpages::build),
];

/// Builds `c`, a component of `kind`, with its registered builder.
pub fn build(kind: Kind, ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let (_, _, build) = RUNTIME
        .iter()
        .find(|(k, ty, _)| *k == kind && *ty == c.info.type_name)
        .ok_or_else(|| BuildError::Unregistered(c.id.to_string()))?;
    build(ctx, c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use tern_config::components::CATALOG;
    use tern_core::build::Health;
    use tern_core::telemetry::Telemetry;

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
    /// then stopped the start are among them. (Every type from a minimal
    /// config, started for real: `tests/tests/every_component.rs`.)
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
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
