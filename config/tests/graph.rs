//! The pipeline graph: connectors join pipelines; a connector used on one
//! side only, one whose signals do not connect, an id shared with a receiver
//! or exporter, and cycles are errors with file, line and key; the
//! topological order puts every pipeline before the ones it feeds.

#![allow(clippy::unwrap_used)]

#[path = "common/one_file.rs"]
mod one_file;
use one_file::{errors, load};

use tern_config::graph;

const HEAD: &str = "receivers:
  otlp:
    protocols:
      grpc:
exporters:
  nop:
connectors:
  forward:
  forward/2:
service:
  pipelines:
";

#[test]
fn fan_in_and_fan_out_load_in_topological_order() {
    let text = format!(
        "{HEAD}    traces/in1:
      receivers: [otlp]
      exporters: [forward]
    traces/in2:
      receivers: [otlp]
      exporters: [forward]
    traces/mid:
      receivers: [forward]
      exporters: [forward/2]
    traces/out1:
      receivers: [forward/2]
      exporters: [nop]
    traces/out2:
      receivers: [forward/2]
      exporters: [nop]
"
    );
    let c = load(&text).unwrap();
    assert_eq!(c.connectors.len(), 2);
    let order: Vec<String> = graph::order(&c).iter().map(|p| p.to_string()).collect();
    assert_eq!(
        order,
        [
            "traces/in1",
            "traces/in2",
            "traces/mid",
            "traces/out1",
            "traces/out2"
        ]
    );
    let edges: Vec<String> = graph::edges(&c)
        .iter()
        .map(|e| format!("{}-{}->{}", e.from, e.via.id, e.to))
        .collect();
    assert_eq!(
        edges,
        [
            "traces/in1-forward->traces/mid",
            "traces/in2-forward->traces/mid",
            "traces/mid-forward/2->traces/out1",
            "traces/mid-forward/2->traces/out2",
        ]
    );
}

#[test]
fn a_connector_used_on_one_side_only_is_an_error_at_its_reference() {
    let errs = errors(&format!(
        "{HEAD}    traces:
      receivers: [otlp]
      exporters: [forward]
    logs:
      receivers: [forward/2]
      exporters: [nop]
"
    ));
    assert_eq!(
        errs,
        [
            "tern.yaml:14:19: service.pipelines.traces.exporters: connector `forward` is used as exporter in pipeline `traces` but not used in any supported receiver pipeline (forward connects traces to traces, metrics to metrics, logs to logs)",
            "tern.yaml:16:19: service.pipelines.logs.receivers: connector `forward/2` is used as receiver in pipeline `logs` but not used in any supported exporter pipeline (forward connects traces to traces, metrics to metrics, logs to logs)",
        ]
    );
}

#[test]
fn signals_the_connector_type_does_not_connect_are_errors() {
    let errs = errors(&format!(
        "{HEAD}    traces:
      receivers: [otlp]
      exporters: [forward]
    metrics:
      receivers: [forward]
      exporters: [nop]
"
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "tern.yaml:14:19: service.pipelines.traces.exporters: connector `forward` is used as exporter in pipeline `traces` but not used in any supported receiver pipeline"
        ),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with(
            "tern.yaml:16:19: service.pipelines.metrics.receivers: connector `forward` is used as receiver in pipeline `metrics` but not used in any supported exporter pipeline"
        ),
        "{errs:#?}"
    );
}

#[test]
fn cycles_are_errors_naming_the_path() {
    let errs = errors(&format!(
        "{HEAD}    traces/a:
      receivers: [otlp, forward/2]
      exporters: [forward]
    traces/b:
      receivers: [forward]
      exporters: [forward/2]
    logs:
      receivers: [forward]
      exporters: [forward]
"
    ));
    assert_eq!(
        errs,
        [
            "tern.yaml:17:19: service.pipelines.traces/b.exporters: cycle in the pipeline graph: pipeline `traces/a` -> connector `forward` -> pipeline `traces/b` -> connector `forward/2` -> pipeline `traces/a`",
            "tern.yaml:20:19: service.pipelines.logs.exporters: cycle in the pipeline graph: pipeline `logs` -> connector `forward` -> pipeline `logs`",
        ],
    );
}

#[test]
fn unknown_references_and_bad_settings() {
    let errs = errors(
        "receivers:
  otlp:
    protocols:
      grpc:
exporters:
  nop:
connectors:
  forward/x:
    bogus: 1
  routing:
service:
  pipelines:
    traces:
      receivers: [otlp, forward/nope, routing]
      exporters: [nop, forward/x, routing]
",
    );
    assert_eq!(
        errs,
        [
            "tern.yaml:9:5: connectors.forward/x.bogus: unknown field `bogus`, there are no fields",
            "tern.yaml:10:3: connectors.routing: unknown connector type `routing` (built in: forward)",
            "tern.yaml:14:25: service.pipelines.traces.receivers: receiver `forward/nope` is not defined in `receivers` or `connectors`",
        ],
        "{errs:#?}"
    );
}

#[test]
fn unused_connectors_are_ignored_like_unused_receivers_and_exporters() {
    let c = load(&format!(
        "{HEAD}    traces:
      receivers: [otlp]
      exporters: [nop]
"
    ))
    .unwrap();
    assert_eq!(c.connectors.len(), 2);
    assert!(graph::edges(&c).is_empty());
}
