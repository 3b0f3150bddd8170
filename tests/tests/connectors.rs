//! The `forward` connector joining pipelines: two pipelines fan in to one,
//! which fans out to two file exporters; every item sent arrives at each
//! file once per path through the graph, and the reference Collector
//! (`$TERN_REFCOL`) writes the same items for the same config. With a
//! sender waiting for the export (`wait_for_result`), its answer waits for
//! the exporter behind the connector.

#![allow(clippy::unwrap_used)]

mod common;

use prost::Message;
use tern_e2e::refcol::{SideBySide, difference, items};
use tern_e2e::{Backend, HttpConn, Step, Tern, grpc_call, paths};

/// traces/a and traces/b (both fed by `otlp`) -> forward -> traces/mid ->
/// forward/out -> traces/one (file one.jsonl) and traces/two (two.jsonl),
/// and logs through the same `forward` connector (another signal pair).
const GRAPH: &str = "
processors:
  batch: {}
connectors:
  forward:
  forward/out:
exporters:
  file/one:
    path: {dir}/one.jsonl
  file/two:
    path: {dir}/two.jsonl
  file/logs:
    path: {dir}/logs.jsonl
service:
  pipelines:
    traces/a:
      receivers: [otlp]
      exporters: [forward]
    traces/b:
      receivers: [otlp]
      processors: [batch]
      exporters: [forward]
    traces/mid:
      receivers: [forward]
      exporters: [forward/out]
    traces/one:
      receivers: [forward/out]
      exporters: [file/one]
    traces/two:
      receivers: [forward/out]
      processors: [batch]
      exporters: [file/two]
    logs:
      receivers: [otlp]
      exporters: [forward]
    logs/out:
      receivers: [forward]
      exporters: [file/logs]
";

/// Sends 3 trace requests of 20 spans and 2 log requests of 10 records,
/// alternating gRPC and HTTP.
async fn send(grpc: u16, http: u16) {
    let mut conn = HttpConn::connect(http).await;
    for n in 1..=3 {
        let body = common::spans(n, 20).encode_to_vec();
        if n % 2 == 0 {
            let r = conn.post_proto("/v1/traces", body).await;
            assert_eq!(r.status, 200, "traces over HTTP to {http}");
        } else {
            let r = grpc_call(grpc, paths::TRACES, body, None).await;
            assert_eq!(r.code, 0, "traces over gRPC to {grpc}: {}", r.message);
        }
    }
    for n in 1..=2 {
        let r = grpc_call(grpc, paths::LOGS, common::logs(n, 10).encode_to_vec(), None).await;
        assert_eq!(r.code, 0, "logs over gRPC to {grpc}: {}", r.message);
    }
}

/// The span ids (hex) in OTLP/JSON lines, sorted.
fn span_ids_in(jsonl: &str) -> Vec<String> {
    let mut ids: Vec<String> = items("traces", jsonl)
        .iter()
        .map(|item| {
            let v: serde_json::Value = serde_json::from_str(item).unwrap();
            v["item"]["spanId"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_and_fan_out_deliver_every_item_once_per_path() {
    let mut tern = Tern::start(GRAPH);
    send(tern.grpc, tern.http).await;
    let status = tern.stop();
    assert!(status.success(), "{status}; log:\n{}", tern.logs());
    let read = |name: &str| std::fs::read_to_string(tern.path(name)).unwrap();
    // Each span twice (fan-in: one copy per pipeline feeding `forward`),
    // in each file (fan-out).
    let mut sent: Vec<String> = (1..=3)
        .flat_map(|n| common::span_ids(&common::spans(n, 20)))
        .flat_map(|id| {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            [hex.clone(), hex]
        })
        .collect();
    sent.sort();
    assert_eq!(sent.len(), 120);
    assert_eq!(span_ids_in(&read("one.jsonl")), sent);
    assert_eq!(span_ids_in(&read("two.jsonl")), sent);
    assert_eq!(items("logs", &read("logs.jsonl")).len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_and_fan_out_write_the_same_items_as_the_collector() {
    let Some(mut both) = SideBySide::start("connectors", GRAPH) else {
        return;
    };
    send(both.tern.grpc, both.tern.http).await;
    send(both.refcol.grpc, both.refcol.http).await;
    let files = both.stop_and_read(&["one.jsonl", "two.jsonl", "logs.jsonl"]);
    for ((tern, refcol), signal) in files.iter().zip(["traces", "traces", "logs"]) {
        let (tern, refcol) = (items(signal, tern), items(signal, refcol));
        assert_eq!(refcol.len(), if signal == "logs" { 20 } else { 120 });
        let (only_tern, only_refcol) = difference(&tern, &refcol);
        assert!(
            only_tern.is_empty() && only_refcol.is_empty(),
            "only from Tern: {only_tern:#?}\nonly from the Collector: {only_refcol:#?}"
        );
    }
}

/// A sender waiting for the export is answered with the failure of an
/// exporter two pipelines away, behind a connector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_sender_learns_the_outcome_behind_a_connector() {
    let refusing = Backend::start(vec![], Step::status(400)).await;
    let tern = Tern::start(&format!(
        "
connectors:
  forward:
exporters:
  otlp_http:
    endpoint: http://127.0.0.1:{}
    compression: none
    sending_queue:
      wait_for_result: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [forward]
    traces/out:
      receivers: [forward]
      exporters: [otlp_http]
",
        refusing.port
    ));
    let r = grpc_call(
        tern.grpc,
        paths::TRACES,
        common::spans(1, 5).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(
        r.code, 13,
        "INTERNAL, as the backend refused: {}",
        r.message
    );
    assert_eq!(refusing.received().len(), 1);
}

/// Shutdown drains through connectors: what a `batch` processor holds on
/// each side of a `forward` (each waiting an hour) reaches the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_pipelines_through_connectors_in_order() {
    let mut tern = Tern::start(
        "
processors:
  batch:
    timeout: 1h
    send_batch_size: 100000
connectors:
  forward:
exporters:
  file:
    path: {dir}/out.jsonl
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [forward]
    traces/out:
      receivers: [forward]
      processors: [batch]
      exporters: [file]
",
    );
    let req = common::spans(4, 17);
    let r = grpc_call(tern.grpc, paths::TRACES, req.encode_to_vec(), None).await;
    assert_eq!(r.code, 0, "{}", r.message);
    let status = tern.stop();
    assert!(status.success(), "{status}; log:\n{}", tern.logs());
    let written = std::fs::read_to_string(tern.path("out.jsonl")).unwrap();
    let mut want: Vec<String> = common::span_ids(&req)
        .iter()
        .map(|id| id.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    want.sort();
    assert_eq!(span_ids_in(&written), want);
}
