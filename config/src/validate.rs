//! Pure checks over a typed [`Config`]: the pipeline graph, signal support,
//! required settings and listen-port clashes. No I/O; every problem is
//! returned, each pointing at the line that causes it.

use crate::components::{self, Kind};
use crate::yaml::{Loc, Node};
use crate::{
    ComponentId, Config, ConfigError, Endpoint, ExporterConfig, ExtensionConfig, MetricsLevel,
    ReceiverConfig, Ref,
};

fn at(loc: &Loc, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        loc: Some(loc.clone()),
        key: key.into(),
        message: message.into(),
    }
}

/// Returns every problem in `config`; empty means it can run.
pub fn validate(config: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    check_settings(config, &mut errors);
    check_pipelines(config, &mut errors);
    check_ports(config, &mut errors);
    errors
}

fn check_settings(config: &Config, errors: &mut Vec<ConfigError>) {
    for c in config.receivers.values() {
        let ReceiverConfig::Otlp(otlp) = &c.config;
        if otlp.protocols.grpc.as_ref().is_none() && otlp.protocols.http.as_ref().is_none() {
            errors.push(at(
                &c.loc,
                format!("receivers.{}.protocols", c.id),
                "must enable at least one of grpc or http",
            ));
        }
        if let Some(http) = otlp.protocols.http.as_ref() {
            let paths = [
                ("traces_url_path", &http.traces_url_path),
                ("metrics_url_path", &http.metrics_url_path),
                ("logs_url_path", &http.logs_url_path),
            ];
            for (key, path) in paths {
                if !path.starts_with('/') {
                    let node = c.node.deepest(&["protocols", "http", key]);
                    errors.push(at(
                        &node.loc,
                        format!("receivers.{}.protocols.http.{key}", c.id),
                        format!("must start with `/`, found `{path}`"),
                    ));
                }
            }
        }
        if let Some(grpc) = otlp.protocols.grpc.as_ref()
            && grpc.max_recv_msg_size_mib == 0
        {
            let node = c
                .node
                .deepest(&["protocols", "grpc", "max_recv_msg_size_mib"]);
            errors.push(at(
                &node.loc,
                format!("receivers.{}.protocols.grpc.max_recv_msg_size_mib", c.id),
                "must be at least 1",
            ));
        }
    }
    for c in config.processors.values() {
        let crate::ProcessorConfig::Batch(b) = &c.config;
        if b.send_batch_max_size != 0 && b.send_batch_max_size < b.send_batch_size {
            let node = c.node.deepest(&["send_batch_max_size"]);
            errors.push(at(
                &node.loc,
                format!("processors.{}.send_batch_max_size", c.id),
                format!(
                    "must be 0 or at least send_batch_size ({})",
                    b.send_batch_size
                ),
            ));
        }
        if b.send_batch_size == 0 && b.timeout.0.is_zero() {
            errors.push(at(
                &c.loc,
                format!("processors.{}", c.id),
                "send_batch_size and timeout cannot both be 0",
            ));
        }
    }
    for c in config.exporters.values() {
        if let ExporterConfig::File(f) = &c.config {
            if f.path.trim().is_empty() {
                errors.push(at(
                    &c.loc,
                    format!("exporters.{}.path", c.id),
                    "is required",
                ));
            }
            if let Some(r) = f.rotation.as_ref()
                && r.localtime
            {
                let node = c.node.deepest(&["rotation", "localtime"]);
                errors.push(at(
                    &node.loc,
                    format!("exporters.{}.rotation.localtime", c.id),
                    "not supported: Tern names rotated files in UTC",
                ));
            }
            if let Some(r) = f.rotation.as_ref()
                && r.max_megabytes == 0
            {
                let node = c.node.deepest(&["rotation", "max_megabytes"]);
                errors.push(at(
                    &node.loc,
                    format!("exporters.{}.rotation.max_megabytes", c.id),
                    "must be at least 1",
                ));
            }
        }
    }
}

fn check_refs(
    config: &Config,
    refs: &[Ref],
    kind: Kind,
    pipeline: &crate::PipelineConfig,
    errors: &mut Vec<ConfigError>,
) {
    let key = format!("service.pipelines.{}.{}", pipeline.id, kind.section());
    for r in refs {
        let defined = match kind {
            Kind::Receiver => config.receivers.contains_key(&r.id),
            Kind::Processor => config.processors.contains_key(&r.id),
            Kind::Exporter => config.exporters.contains_key(&r.id),
            Kind::Extension => config.extensions.contains_key(&r.id),
        };
        if config.invalid.contains(&(kind, r.id.clone())) {
            continue;
        }
        if !defined {
            errors.push(at(
                &r.loc,
                key.clone(),
                format!(
                    "{} `{}` is not defined in `{}`",
                    kind.noun(),
                    r.id,
                    kind.section()
                ),
            ));
            continue;
        }
        let signal = pipeline.id.signal;
        if let Some(info) = components::lookup(kind, &r.id.kind)
            && !info.signals.contains(&signal)
        {
            errors.push(at(
                &r.loc,
                key.clone(),
                format!("{} `{}` does not support {signal}", kind.noun(), r.id),
            ));
        }
    }
}

fn check_pipelines(config: &Config, errors: &mut Vec<ConfigError>) {
    let service = &config.service;
    for ext in &service.extensions {
        if !config.extensions.contains_key(&ext.id)
            && !config.invalid.contains(&(Kind::Extension, ext.id.clone()))
        {
            errors.push(at(
                &ext.loc,
                "service.extensions",
                format!("extension `{}` is not defined in `extensions`", ext.id),
            ));
        }
    }
    if service.pipelines.is_empty() {
        errors.push(ConfigError {
            loc: None,
            key: "service.pipelines".into(),
            message: "at least one pipeline is required".into(),
        });
    }
    for p in service.pipelines.values() {
        let key = format!("service.pipelines.{}", p.id);
        if p.receivers.is_empty() {
            errors.push(at(
                &p.loc,
                format!("{key}.receivers"),
                "at least one receiver is required",
            ));
        }
        if p.exporters.is_empty() {
            errors.push(at(
                &p.loc,
                format!("{key}.exporters"),
                "at least one exporter is required",
            ));
        }
        check_refs(config, &p.receivers, Kind::Receiver, p, errors);
        check_refs(config, &p.processors, Kind::Processor, p, errors);
        check_refs(config, &p.exporters, Kind::Exporter, p, errors);
    }
}

/// Every address Tern will listen on with this config, with where it is set.
pub fn listen_endpoints(config: &Config) -> Vec<(String, Endpoint, Loc)> {
    let mut out = Vec::new();
    let used = |id: &ComponentId| {
        config
            .service
            .pipelines
            .values()
            .any(|p| p.receivers.iter().any(|r| &r.id == id))
    };
    let loc_of = |node: &Node, path: &[&str]| node.deepest(path).loc.clone();
    for c in config.receivers.values().filter(|c| used(&c.id)) {
        let ReceiverConfig::Otlp(otlp) = &c.config;
        if let Some(grpc) = otlp.protocols.grpc.as_ref() {
            out.push((
                format!("receivers.{}.protocols.grpc.endpoint", c.id),
                grpc.endpoint.clone(),
                loc_of(&c.node, &["protocols", "grpc", "endpoint"]),
            ));
        }
        if let Some(http) = otlp.protocols.http.as_ref() {
            out.push((
                format!("receivers.{}.protocols.http.endpoint", c.id),
                http.endpoint.clone(),
                loc_of(&c.node, &["protocols", "http", "endpoint"]),
            ));
        }
    }
    for ext in &config.service.extensions {
        if let Some(c) = config.extensions.get(&ext.id) {
            let ExtensionConfig::HealthCheck(h) = &c.config;
            out.push((
                format!("extensions.{}.endpoint", c.id),
                h.endpoint.clone(),
                loc_of(&c.node, &["endpoint"]),
            ));
        }
    }
    let telemetry = &config.service.telemetry.metrics;
    if telemetry.level != MetricsLevel::None {
        let loc = match &config.service.telemetry_node {
            Some(node) => loc_of(node, &["metrics", "address"]),
            None => Loc {
                file: "<defaults>".into(),
                line: 0,
                col: 0,
            },
        };
        out.push((
            "service.telemetry.metrics.address".into(),
            telemetry.address.clone(),
            loc,
        ));
    }
    out
}

fn check_ports(config: &Config, errors: &mut Vec<ConfigError>) {
    let endpoints = listen_endpoints(config);
    for (i, (key, endpoint, loc)) in endpoints.iter().enumerate() {
        if let Some((other_key, other, _)) = endpoints[..i]
            .iter()
            .find(|(_, other, _)| other.clashes_with(endpoint))
        {
            errors.push(at(
                loc,
                key.clone(),
                format!("`{endpoint}` clashes with {other_key} (`{other}`)"),
            ));
        }
    }
}
