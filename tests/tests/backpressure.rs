//! A stalled exporter fills its queue and then the pipeline entrance; the
//! receiver then answers retryable errors (HTTP 503 + Retry-After, gRPC
//! UNAVAILABLE + RetryInfo) instead of buffering without end. Once the
//! exporter moves again, requests are accepted again, and every accepted
//! item is delivered exactly once.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use common::status::{RetryInfo, RpcStatus};
use common::*;
use prost::Message;
use tern_e2e::{HttpConn, Tern, grpc_call, paths, sample};

const CONFIG: &str = r#"
exporters:
  file:
    path: {dir}/pipe
    format: proto
  file/fast:
    path: {dir}/fast.pb
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file, file/fast]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_exporter_turns_into_retryable_refusals_and_nothing_is_lost() {
    // The exporter writes into a FIFO that we do not read yet: once the pipe
    // buffer is full, the exporter blocks.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let config = CONFIG.replace("{dir}/pipe", &fifo.display().to_string());
    // The reader opens the FIFO (unblocking tern's open), then waits.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::open(&reader_path).unwrap();
        go_rx.recv().unwrap();
        let mut all = Vec::new();
        f.read_to_end(&mut all).unwrap();
        all
    });
    let mut tern = Tern::start(&config);

    let mut http = HttpConn::connect(tern.http).await;
    let mut accepted: Vec<Vec<u8>> = Vec::new();
    let mut refused = 0u32;
    let mut first_refusal = None;
    for i in 0..5000u32 {
        let req = spans(i, 1);
        let r = http.post_proto("/v1/traces", req.encode_to_vec()).await;
        match r.status {
            200 => accepted.push(
                req.resource_spans[0].scope_spans[0].spans[0]
                    .span_id
                    .clone(),
            ),
            503 => {
                refused += 1;
                first_refusal.get_or_insert(r);
                if refused >= 20 {
                    break;
                }
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let r = first_refusal.expect("the pipeline never filled up");
    assert_eq!(r.header("retry-after"), Some("1"));
    let status = RpcStatus::decode(r.body.clone()).unwrap();
    assert_eq!(status.code, 14, "UNAVAILABLE");
    assert_eq!(
        status.details[0].type_url,
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    assert!(accepted.len() > 100, "some requests were accepted first");

    // gRPC gets UNAVAILABLE with RetryInfo too.
    let g = grpc_call(
        tern.grpc,
        paths::TRACES,
        spans(99_999, 1).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(g.code, 14, "{g:?}");
    let details = RpcStatus::decode(&g.details.unwrap()[..]).unwrap();
    let retry = RetryInfo::decode(&details.details[0].value[..]).unwrap();
    assert_eq!(retry.retry_delay.unwrap().seconds, 1);

    let m = tern.self_metrics().await;
    let labels = r#"receiver="otlp",transport="http""#;
    assert_eq!(
        sample(&m, "otelcol_receiver_refused_spans_total", labels),
        Some(f64::from(refused)),
        "{m}"
    );
    assert_eq!(
        sample(&m, "otelcol_receiver_accepted_spans_total", labels),
        Some(accepted.len() as f64)
    );
    assert_eq!(
        sample(&m, "otelcol_exporter_queue_size", r#"exporter="file""#),
        Some(1000.0),
        "{m}"
    );

    // The other exporter of the pipeline got its copies while the stalled
    // one still had room in its own queue (1000 batches, plus the pipe).
    let fast = r#"exporter="file/fast""#;
    tern.self_metrics_until("the fast exporter to send 1000 spans", |m| {
        sample(m, "otelcol_exporter_sent_spans_total", fast).unwrap_or(0.0) >= 1000.0
    })
    .await;

    // Unblock the exporter: requests are accepted again.
    go_tx.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let req = spans(200_000, 1);
        let r = http.post_proto("/v1/traces", req.encode_to_vec()).await;
        if r.status == 200 {
            accepted.push(
                req.resource_spans[0].scope_spans[0].spans[0]
                    .span_id
                    .clone(),
            );
            break;
        }
        assert!(Instant::now() < deadline, "pipeline never drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tern.stop().success());

    // Every accepted span arrived exactly once; no refused one did.
    let got = span_ids_in(&reader.join().unwrap());
    accepted.sort();
    assert_eq!(got.len(), accepted.len());
    assert_eq!(got, accepted);
}
