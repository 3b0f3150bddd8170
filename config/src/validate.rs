//! Pure checks over a typed [`Config`]: each component's own rules (its
//! [`ComponentConfig::check`](crate::components::ComponentConfig::check)),
//! the pipeline graph, signal support and listen-port clashes. No I/O;
//! every problem is returned, each pointing at the line that causes it.

use crate::components::{self, Check, Kind};
use crate::yaml::Loc;
use crate::{Config, ConfigError, Endpoint, MetricsLevel, Ref};

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

/// Each component's own rules.
fn check_settings(config: &Config, errors: &mut Vec<ConfigError>) {
    for kind in Kind::ALL {
        for c in config.section(kind).values() {
            c.config.check(&Check::new(kind, c, config), errors);
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
    // Receivers and exporters may also be connectors (checked as one graph
    // by `graph::check`).
    let connector = matches!(kind, Kind::Receiver | Kind::Exporter);
    for r in refs {
        let defined = config.section(kind).contains_key(&r.id);
        if config.invalid.contains(&(kind, r.id.clone()))
            || (connector && config.invalid.contains(&(Kind::Connector, r.id.clone())))
        {
            continue;
        }
        if connector && !defined && config.connectors.contains_key(&r.id) {
            continue;
        }
        if !defined {
            let also = if connector { " or `connectors`" } else { "" };
            errors.push(at(
                &r.loc,
                key.clone(),
                format!(
                    "{} `{}` is not defined in `{}`{also}",
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
            loc: service.loc.clone(),
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
    crate::graph::check(config, errors);
}

/// Every address Tern will listen on with this config, with where it is
/// set: the components in use (in a pipeline, or listed in
/// `service.extensions`), then Tern's own metrics endpoint.
pub fn listen_endpoints(config: &Config) -> Vec<(String, Endpoint, Loc)> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        // Extensions in the order `service.extensions` lists them.
        let components: Vec<_> = match kind {
            Kind::Extension => config
                .service
                .extensions
                .iter()
                .filter_map(|r| config.extensions.get(&r.id))
                .collect(),
            _ => config.section(kind).values().collect(),
        };
        for c in components {
            let check = Check::new(kind, c, config);
            if kind != Kind::Extension && check.pipelines.is_empty() {
                continue;
            }
            for (path, endpoint) in c.config.listens() {
                out.push((check.key(&path), endpoint, c.node.locate(&path).clone()));
            }
        }
    }
    let telemetry = &config.service.telemetry.metrics;
    if telemetry.level != MetricsLevel::None
        && let Some(address) = &telemetry.address
    {
        let (key, loc) = match &telemetry.loc {
            Some(loc) => ("service.telemetry.metrics", loc.clone()),
            // The default reader: point at `service` (or the document).
            None => (
                "service.telemetry.metrics (default reader)",
                config.service.loc.clone().unwrap_or(Loc {
                    file: "<defaults>".into(),
                    line: 0,
                    col: 0,
                }),
            ),
        };
        out.push((key.into(), address.clone(), loc));
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
