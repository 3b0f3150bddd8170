//! The pipeline graph: pipelines are nodes, and a connector that is an
//! exporter in pipeline A and a receiver in pipeline B is an edge A -> B
//! (when the connector type supports A's signal to B's, as the Collector's
//! "supported pairs of data types"). [`check`] reports what the Collector's
//! service graph refuses (a connector used on one side only or between
//! signals it does not connect, cycles), each at the line that causes it; [`edges`] and [`order`] are what the service builds from.

use std::collections::{BTreeMap, BTreeSet};

use crate::components::{self, Kind};
use crate::{ComponentId, Config, ConfigError, PipelineConfig, PipelineId, Ref};

/// One connection: pipeline `from` exports to connector `via` (written at
/// `via.loc`), which feeds pipeline `to`.
#[derive(Debug, Clone)]
pub struct Edge<'a> {
    /// The exporting pipeline.
    pub from: &'a PipelineId,
    /// The connector, as written in `from`'s exporters.
    pub via: &'a Ref,
    /// The receiving pipeline.
    pub to: &'a PipelineId,
}

/// The connector type `id` names (resolved from aliases), if it is a
/// defined connector.
fn connector_type<'a>(config: &Config, id: &'a ComponentId) -> Option<&'a str> {
    config.connectors.get(id)?;
    Some(components::lookup(Kind::Connector, &id.kind).map_or(id.kind.as_str(), |i| i.type_name))
}

fn receiving<'a>(
    config: &'a Config,
    id: &'a ComponentId,
) -> impl Iterator<Item = &'a PipelineConfig> {
    config
        .service
        .pipelines
        .values()
        .filter(move |p| p.receivers.iter().any(|r| &r.id == id))
}

/// Every connection between pipelines, in pipeline order.
pub fn edges(config: &Config) -> Vec<Edge<'_>> {
    let mut out = Vec::new();
    for p in config.service.pipelines.values() {
        for via in &p.exporters {
            let Some(ty) = connector_type(config, &via.id) else {
                continue;
            };
            for q in receiving(config, &via.id) {
                if components::connects(ty, p.id.signal, q.id.signal) {
                    out.push(Edge {
                        from: &p.id,
                        via,
                        to: &q.id,
                    });
                }
            }
        }
    }
    out
}

/// The pipelines in topological order: every pipeline comes before the
/// pipelines its connectors feed. Start goes through it backwards (a
/// pipeline's consumers exist before it does); shutdown follows it. A
/// config with a cycle does not validate; were one here, its pipelines
/// would come last, in id order.
pub fn order(config: &Config) -> Vec<&PipelineId> {
    let edges = edges(config);
    let mut incoming: BTreeMap<&PipelineId, usize> =
        config.service.pipelines.keys().map(|id| (id, 0)).collect();
    for e in &edges {
        *incoming.entry(e.to).or_default() += 1;
    }
    let mut ready: BTreeSet<&PipelineId> = incoming
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut out = Vec::new();
    while let Some(id) = ready.pop_first() {
        out.push(id);
        for e in edges.iter().filter(|e| e.from == id) {
            if let Some(n) = incoming.get_mut(e.to) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(e.to);
                }
            }
        }
    }
    let placed: BTreeSet<&PipelineId> = out.iter().copied().collect();
    let rest: Vec<&PipelineId> = config
        .service
        .pipelines
        .keys()
        .filter(|id| !placed.contains(id))
        .collect();
    out.extend(rest);
    out
}

fn at(r: &Ref, key: String, message: String) -> ConfigError {
    ConfigError {
        loc: Some(r.loc.clone()),
        key,
        message,
    }
}

/// Every problem with the graph as a whole.
pub fn check(config: &Config, errors: &mut Vec<ConfigError>) {
    check_sides(config, errors);
    check_cycles(config, errors);
}

/// A connector must be an exporter in a pipeline whose data it can emit
/// into a pipeline that lists it as a receiver, and the other way round.
fn check_sides(config: &Config, errors: &mut Vec<ConfigError>) {
    let pipelines = &config.service.pipelines;
    for p in pipelines.values() {
        for (r, as_exporter) in p
            .exporters
            .iter()
            .map(|r| (r, true))
            .chain(p.receivers.iter().map(|r| (r, false)))
        {
            let Some(ty) = connector_type(config, &r.id) else {
                continue;
            };
            let (side, other) = if as_exporter {
                ("exporter", "receiver")
            } else {
                ("receiver", "exporter")
            };
            let served = pipelines.values().any(|q| {
                let listed = if as_exporter {
                    &q.receivers
                } else {
                    &q.exporters
                };
                let (from, to) = if as_exporter {
                    (p.id.signal, q.id.signal)
                } else {
                    (q.id.signal, p.id.signal)
                };
                listed.iter().any(|x| x.id == r.id) && components::connects(ty, from, to)
            });
            if !served {
                let section = if as_exporter {
                    "exporters"
                } else {
                    "receivers"
                };
                errors.push(at(
                    r,
                    format!("service.pipelines.{}.{section}", p.id),
                    format!(
                        "connector `{}` is used as {side} in pipeline `{}` but not used in any supported {other} pipeline ({ty} connects {})",
                        r.id,
                        p.id,
                        supported(ty)
                    ),
                ));
            }
        }
    }
}

/// The signal pairs a connector type supports, for messages.
fn supported(ty: &str) -> String {
    let mut pairs = Vec::new();
    for from in crate::Signal::ALL {
        for to in crate::Signal::ALL {
            if components::connects(ty, from, to) {
                pairs.push(format!("{from} to {to}"));
            }
        }
    }
    pairs.join(", ")
}

/// Every cycle, once, reported at the connector that closes it.
fn check_cycles(config: &Config, errors: &mut Vec<ConfigError>) {
    let edges = edges(config);
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks: BTreeMap<&PipelineId, Mark> = config
        .service
        .pipelines
        .keys()
        .map(|id| (id, Mark::New))
        .collect();
    // Depth-first, iteratively: the path of (pipeline, index of next edge).
    for start in config.service.pipelines.keys() {
        if marks.get(start) != Some(&Mark::New) {
            continue;
        }
        let mut path: Vec<(&PipelineId, usize, Option<&Edge<'_>>)> = vec![(start, 0, None)];
        marks.insert(start, Mark::Open);
        while let Some(&(node, next, _)) = path.last() {
            let Some(e) = edges.iter().filter(|e| e.from == node).nth(next) else {
                marks.insert(node, Mark::Done);
                path.pop();
                continue;
            };
            if let Some(top) = path.last_mut() {
                top.1 += 1;
            }
            match marks.get(e.to).copied() {
                Some(Mark::New) => {
                    marks.insert(e.to, Mark::Open);
                    path.push((e.to, 0, Some(e)));
                }
                Some(Mark::Open) => {
                    let first = path.iter().position(|(id, _, _)| *id == e.to).unwrap_or(0);
                    let mut cycle = format!("pipeline `{}`", e.to);
                    for (_, _, via) in &path[first + 1..] {
                        if let Some(via) = via {
                            cycle.push_str(&format!(
                                " -> connector `{}` -> pipeline `{}`",
                                via.via.id, via.to
                            ));
                        }
                    }
                    cycle.push_str(&format!(
                        " -> connector `{}` -> pipeline `{}`",
                        e.via.id, e.to
                    ));
                    errors.push(at(
                        e.via,
                        format!("service.pipelines.{}.exporters", e.from),
                        format!("cycle in the pipeline graph: {cycle}"),
                    ));
                }
                _ => {}
            }
        }
    }
}
