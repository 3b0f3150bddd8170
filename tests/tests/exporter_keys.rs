//! The Collector's exporter keys, honoured end to end by the real binary.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::gauges;
use prost::Message;
use tern_e2e::{Backend, HttpConn, Step, Tern};

/// Waits (at most 30 s) until `backend` has received `n` requests.
async fn wait_for_requests(backend: &Backend, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while backend.received().len() < n {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_sends_num_consumers_requests_of_a_split_batch_at_once() {
    // The first two requests are never answered: a third request can only
    // arrive if two were in flight together.
    let held = Step {
        delay: Duration::from_secs(3600),
        ..Step::status(200)
    };
    let backend = Backend::start(vec![held.clone(), held], Step::status(200)).await;
    let config = format!(
        "exporters:\n  prometheusremotewrite:\n    endpoint: http://127.0.0.1:{}/api/v1/write\n    timeout: 1h\n    max_batch_size_bytes: 1024\n    remote_write_queue:\n      num_consumers: 3\nservice:\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [prometheusremotewrite]\n",
        backend.port
    );
    let tern = Tern::start(&config);
    let mut http = HttpConn::connect(tern.http).await;
    let reply = http
        .post_proto("/v1/metrics", gauges(1, 200).encode_to_vec())
        .await;
    assert_eq!(reply.status, 200);
    assert!(
        wait_for_requests(&backend, 3).await,
        "only {} requests arrived: the split batch was sent one request at a time\n{}",
        backend.received().len(),
        tern.logs()
    );
}
