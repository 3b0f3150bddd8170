//! Shutdown ends the process whatever a pipeline is doing: with an exporter
//! stalled on a backend that never answers and the pipeline blocked behind
//! its full queue (`block_on_overflow`), SIGTERM still ends Tern once the
//! deadline has passed, and what could not be delivered is reported.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use prost::Message;
use tern_e2e::{Backend, HttpConn, Step, Tern, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_exporter_does_not_keep_the_process_alive() {
    // The backend takes requests and never answers.
    let stalled = Step {
        delay: Duration::from_secs(3600),
        ..Step::status(200)
    };
    let backend = Backend::start(Vec::new(), stalled).await;
    let config = format!(
        "exporters:\n  otlphttp:\n    endpoint: http://127.0.0.1:{}\n    compression: none\n    timeout: 1h\n    sending_queue:\n      num_consumers: 1\n      queue_size: 1\n      block_on_overflow: true\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [otlphttp]\n",
        backend.port
    );
    let mut tern = Tern::start(&config);
    // One request held by the worker, one in the queue, the rest waiting in
    // the pipeline in front of the full queue.
    let port = tern.http;
    let senders: Vec<_> = (0..6)
        .map(|tag| {
            tokio::spawn(async move {
                let mut http = HttpConn::connect(port).await;
                http.post_proto("/v1/logs", logs(tag, 5).encode_to_vec())
                    .await
            })
        })
        .collect();
    // The queue holds one while the worker is still connecting too: wait
    // for the backend to see the worker's request as well.
    tern.self_metrics_until(
        "every request in the pipeline, the queue full and the worker sending",
        |m| {
            sample(
                m,
                "otelcol_receiver_accepted_log_records_total",
                r#"receiver="otlp",transport="http""#,
            ) == Some(30.0)
                && sample(m, "otelcol_exporter_queue_size", r#"exporter="otlphttp""#) == Some(1.0)
                && !backend.received().is_empty()
        },
    )
    .await;
    // Exits at all (the harness allows 30 s; the deadline is 10 s).
    let status = tern.stop();
    let log = tern.logs();
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains("shutdown deadline"),
        "undelivered items are reported:\n{log}"
    );
    assert!(log.contains("shutdown complete"), "{log}");
    for s in senders {
        s.abort();
    }
}
