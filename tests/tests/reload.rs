//! Reloading the configuration while Tern runs (SIGHUP, `--watch-config`):
//! an invalid new configuration is logged with file:line for every problem
//! and the old one keeps serving; a valid one that points the exporter at
//! another backend, then changes a processor, loses nothing a client was
//! told was accepted while requests keep coming (over connections that
//! stay open: unchanged receivers keep their listeners); `--watch-config`
//! applies a changed file without a signal; a changed receiver moves to its
//! new endpoint, and one that cannot listen there is started by the next
//! reload; a changed authenticator applies to the receivers using it; a
//! configuration whose new component cannot be built changes nothing; an
//! exporter with a persistent queue is rebuilt without giving up its log
//! (the new one shares it while the old one drains), and after a clean
//! stop nothing delivered is sent again.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tern_e2e::{Backend, HttpConn, Step, Tern, sample};

/// A traces pipeline from the `otlp` receiver through a `batch` processor
/// with `batch` settings to an OTLP/HTTP backend on `port`.
fn config(port: u16, batch: &str) -> String {
    format!(
        "processors:\n  batch:\n{batch}exporters:\n  otlp_http:\n    endpoint: http://127.0.0.1:{port}\n    compression: none\n    sending_queue:\n      num_consumers: 1\n      queue_size: 50\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlp_http]\n"
    )
}

const BATCH: &str = "    timeout: 20ms\n";

/// Span ids `backend` received.
fn received_ids(backend: &Backend) -> Vec<Vec<u8>> {
    backend
        .received()
        .iter()
        .flat_map(|r| span_ids(&ExportTraceServiceRequest::decode(r.body.clone()).unwrap()))
        .collect()
}

/// Sends one request of `n` spans tagged `tag`; true when it was accepted.
async fn send(http: &mut HttpConn, tag: u32, n: u32) -> bool {
    http.post_proto("/v1/traces", spans(tag, n).encode_to_vec())
        .await
        .status
        == 200
}

/// Waits (at most 30 s) until `backend` has received span `tag`/0.
async fn wait_for(backend: &Backend, tag: u32) {
    let id = span_ids(&spans(tag, 1)).remove(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !received_ids(backend).contains(&id) {
        assert!(Instant::now() < deadline, "span {tag}/0 never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `tern_config_reloads_total{outcome}` is `n`.
async fn wait_reloads(tern: &Tern, outcome: &str, n: f64) -> String {
    let labels = format!("outcome=\"{outcome}\"");
    tern.self_metrics_until(&format!("{n} reloads {outcome}"), |m| {
        sample(m, "tern_config_reloads_total", &labels) == Some(n)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_logged_at_each_problem_and_the_old_one_keeps_serving() {
    let backend = Backend::start(Vec::new(), Step::status(200)).await;
    let tern = Tern::start(&config(backend.port, BATCH));
    let mut http = HttpConn::connect(tern.http).await;
    assert!(send(&mut http, 1, 3).await);
    wait_for(&backend, 1).await;

    tern.rewrite_config(
        1,
        "exporters:\n  otlp_http:\n    endpoint: ${env:TERN_TEST_RELOAD_UNSET}\n    compression: none\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch/missing]\n      exporters: [otlp_http]\n",
    );
    tern.signal("HUP");
    let metrics = wait_reloads(&tern, "invalid", 1.0).await;
    assert_eq!(
        sample(
            &metrics,
            "tern_config_reloads_total",
            r#"outcome="applied""#
        ),
        None
    );
    let log = tern.logs();
    for line in [
        "tern-1.yaml:3:15: exporters.otlp_http.endpoint: is required (or traces_endpoint) for pipeline `traces` (`${env:TERN_TEST_RELOAD_UNSET}` is unset)",
        "tern-1.yaml:9:20: service.pipelines.traces.processors: processor `batch/missing` is not defined in `processors`",
        "the new configuration is invalid; the running one is kept",
    ] {
        assert!(log.contains(line), "missing `{line}` in:\n{log}");
    }

    // Still serving with the old configuration, and still healthy.
    assert!(send(&mut http, 2, 3).await);
    wait_for(&backend, 2).await;
    tern.wait_healthy();
}

/// Two clients send numbered spans without pause while SIGHUP points the
/// exporter at a second backend, then changes the `batch` processor: every
/// span a client got a 200 for reaches one of the backends. The first
/// backend is slow and the first `batch` processor holds data for a while,
/// so at the reload there is data in the old processor and queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_loses_nothing_acknowledged() {
    const CLIENTS: u32 = 2;
    const MAX_REQUESTS: u32 = 3000;
    const SPANS: u32 = 5;
    let slow = Step {
        delay: Duration::from_millis(50),
        ..Step::status(200)
    };
    let first = Backend::start(Vec::new(), slow).await;
    let second = Backend::start(Vec::new(), Step::status(200)).await;
    let tern = Tern::start(&config(
        first.port,
        "    timeout: 300ms\n    send_batch_size: 50\n",
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (stop, port) = (stop.clone(), tern.http);
            tokio::spawn(async move {
                let mut http = HttpConn::connect(port).await;
                let mut acked = Vec::new();
                for i in 0..MAX_REQUESTS {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let tag = c * MAX_REQUESTS + i;
                    if send(&mut http, tag, SPANS).await {
                        acked.push(tag);
                    }
                }
                acked
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.received().is_empty() {
        assert!(
            Instant::now() < deadline,
            "nothing reached the first backend"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tern.self_metrics_until("data queued for the slow backend", |m| {
        sample(m, "otelcol_exporter_queue_size", r#"exporter="otlp_http""#).is_some_and(|n| n > 0.0)
    })
    .await;

    tern.rewrite_config(1, &config(second.port, BATCH));
    tern.signal("HUP");
    wait_reloads(&tern, "applied", 1.0).await;
    let moved = received_ids(&second).len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while received_ids(&second).len() == moved {
        assert!(Instant::now() < deadline, "nothing reached the new backend");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    tern.rewrite_config(
        1,
        &config(second.port, "    timeout: 50ms\n    send_batch_size: 16\n"),
    );
    tern.signal("HUP");
    wait_reloads(&tern, "applied", 2.0).await;
    // Some more load through the new processor.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    for c in clients {
        for tag in c.await.unwrap() {
            acked.extend(span_ids(&spans(tag, SPANS)));
        }
    }
    assert!(!acked.is_empty());

    let deadline = Instant::now() + Duration::from_secs(30);
    let (missing, duplicates) = loop {
        let all: Vec<Vec<u8>> = received_ids(&first)
            .into_iter()
            .chain(received_ids(&second))
            .collect();
        let unique: BTreeSet<&Vec<u8>> = all.iter().collect();
        let missing = acked.iter().filter(|id| !unique.contains(id)).count();
        if missing == 0 || Instant::now() > deadline {
            break (missing, all.len() - unique.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "acknowledged spans: {}, missing: {missing}, duplicates: {duplicates}, first backend: {}, second: {}",
        acked.len(),
        received_ids(&first).len(),
        received_ids(&second).len()
    );
    assert_eq!(missing, 0, "acknowledged spans lost across the reloads");
    let log = tern.logs();
    assert!(!log.contains("dropped items"), "{log}");
    assert!(
        log.contains("components replaced by the reload have drained and stopped"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_config_applies_a_changed_file() {
    let first = Backend::start(Vec::new(), Step::status(200)).await;
    let second = Backend::start(Vec::new(), Step::status(200)).await;
    let tern = Tern::start_with_args(&["--watch-config"], &config(first.port, BATCH));
    let mut http = HttpConn::connect(tern.http).await;
    assert!(send(&mut http, 1, 2).await);
    wait_for(&first, 1).await;

    tern.rewrite_config(1, &config(second.port, BATCH));
    wait_reloads(&tern, "applied", 1.0).await;
    assert!(send(&mut http, 2, 2).await);
    wait_for(&second, 2).await;
    assert!(
        tern.logs().contains(r#"trigger="config file changed""#),
        "{}",
        tern.logs()
    );
}

/// A receiver whose settings changed is restarted on its new endpoint; a
/// pipeline added by the reload gets data from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_receiver_moves_to_its_new_endpoint_and_an_added_pipeline_runs() {
    let backend = Backend::start(Vec::new(), Step::status(200)).await;
    let tern = Tern::start(&config(backend.port, BATCH));
    let mut http = HttpConn::connect(tern.http).await;
    assert!(send(&mut http, 1, 2).await);
    wait_for(&backend, 1).await;

    let port = tern_e2e::free_port();
    tern.rewrite_config(
        1,
        &format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n{}    logs:\n      receivers: [otlp]\n      exporters: [otlp_http]\n",
            config(backend.port, BATCH)
        ),
    );
    tern.signal("HUP");
    wait_reloads(&tern, "applied", 1.0).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", tern.http))
            .await
            .is_err(),
        "the old endpoint is closed"
    );
    let mut moved = HttpConn::connect(port).await;
    assert!(send(&mut moved, 2, 2).await);
    wait_for(&backend, 2).await;
    let reply = moved
        .post_proto("/v1/logs", logs(3, 2).encode_to_vec())
        .await;
    assert_eq!(reply.status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !backend.received().iter().any(|r| r.path == "/v1/logs") {
        assert!(Instant::now() < deadline, "the added pipeline sent nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A changed authenticator extension takes effect: the receivers using it
/// are rebuilt, so the old token is refused and the new one accepted; the
/// extensions' own endpoints are logged as needing a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_authenticator_applies_to_the_receivers_using_it() {
    let backend = Backend::start(Vec::new(), Step::status(200)).await;
    let with_token = |token: &str| {
        format!(
            "extensions:\n  bearertokenauth:\n    token: {token}\nreceivers:\n  otlp:\n    protocols:\n      http:\n        auth: {{authenticator: bearertokenauth}}\n{}",
            config(backend.port, BATCH).replace(
                "service:\n",
                "service:\n  extensions: [health_check, bearertokenauth]\n"
            )
        )
    };
    let tern = Tern::start(&with_token("old-token"));
    let post = |token: &'static str, tag: u32| {
        let port = tern.http;
        async move {
            let mut http = HttpConn::connect(port).await;
            let auth = format!("Bearer {token}");
            http.send(
                "POST",
                "/v1/traces",
                &[
                    ("content-type", "application/x-protobuf"),
                    ("authorization", auth.as_str()),
                ],
                spans(tag, 1).encode_to_vec(),
            )
            .await
            .status
        }
    };
    assert_eq!(post("old-token", 1).await, 200);
    assert_eq!(post("new-token", 2).await, 401);

    tern.rewrite_config(1, &with_token("new-token"));
    tern.signal("HUP");
    wait_reloads(&tern, "applied", 1.0).await;
    assert_eq!(post("old-token", 3).await, 401);
    assert_eq!(post("new-token", 4).await, 200);
    wait_for(&backend, 4).await;
    let log = tern.logs();
    assert!(
        log.contains("changed settings need a restart to take effect")
            && log.contains(r#"section="extensions""#),
        "{log}"
    );
}

/// A changed receiver whose new endpoint is taken stays stopped (outcome
/// `partial`, logged); the next reload, once the port is free, starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_cannot_listen_is_started_by_the_next_reload() {
    let backend = Backend::start(Vec::new(), Step::status(200)).await;
    let tern = Tern::start(&config(backend.port, BATCH));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    tern.rewrite_config(
        1,
        &format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n{}",
            config(backend.port, BATCH)
        ),
    );
    tern.signal("HUP");
    wait_reloads(&tern, "partial", 1.0).await;
    assert!(
        tern.logs()
            .contains("the reloaded receiver cannot listen; it stays stopped"),
        "{}",
        tern.logs()
    );

    drop(taken);
    tern.signal("HUP");
    wait_reloads(&tern, "applied", 1.0).await;
    let mut http = HttpConn::connect(port).await;
    assert!(send(&mut http, 1, 2).await);
    wait_for(&backend, 1).await;
}

/// A valid configuration whose new component cannot be built (a TLS file
/// that does not exist) changes nothing: outcome `failed`, logged, and
/// the old configuration keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_cannot_be_built_changes_nothing() {
    let backend = Backend::start(Vec::new(), Step::status(200)).await;
    let tern = Tern::start(&config(backend.port, BATCH));
    tern.rewrite_config(
        1,
        &format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        tls:\n          cert_file: {{dir}}/missing.crt\n          key_file: {{dir}}/missing.key\n{}",
            config(backend.port, BATCH)
        ),
    );
    tern.signal("HUP");
    wait_reloads(&tern, "failed", 1.0).await;
    assert!(
        tern.logs()
            .contains("cannot start the new configuration; the running one is kept"),
        "{}",
        tern.logs()
    );
    let mut http = HttpConn::connect(tern.http).await;
    assert!(send(&mut http, 1, 2).await);
    wait_for(&backend, 1).await;
}

/// [`config`] with the exporter's queue kept by a `file_storage` extension
/// in `storage`.
fn stored(port: u16, storage: &std::path::Path) -> String {
    format!(
        "extensions:\n  file_storage:\n    directory: {}\nprocessors:\n  batch:\n{BATCH}exporters:\n  otlp_http:\n    endpoint: http://127.0.0.1:{port}\n    compression: none\n    sending_queue:\n      storage: file_storage\n      num_consumers: 1\n      queue_size: 50\nservice:\n  extensions: [health_check, file_storage]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlp_http]\n",
        storage.display()
    )
}

/// Spans sent while a reload points a persistent-queue exporter at a
/// second backend all arrive (the rebuilt exporter shares the log of the
/// one draining, so the reload is applied, not refused over the log's
/// lock); after a clean stop a restart on the same directory sends
/// nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_queue_survives_a_reload_and_a_clean_restart_resends_nothing() {
    const REQUESTS: u32 = 200;
    const SPANS: u32 = 5;
    let storage = tempfile::tempdir().unwrap();
    let slow = Step {
        delay: Duration::from_millis(20),
        ..Step::status(200)
    };
    let first = Backend::start(Vec::new(), slow).await;
    let second = Backend::start(Vec::new(), Step::status(200)).await;
    let mut tern = Tern::start(&stored(first.port, storage.path()));
    let mut http = HttpConn::connect(tern.http).await;
    let mut acked = BTreeSet::new();
    for tag in 0..REQUESTS {
        if tag == REQUESTS / 2 {
            tern.rewrite_config(1, &stored(second.port, storage.path()));
            tern.signal("HUP");
        }
        if send(&mut http, tag, SPANS).await {
            acked.extend(span_ids(&spans(tag, SPANS)));
        }
    }
    wait_reloads(&tern, "applied", 1.0).await;
    assert_eq!(
        acked.len(),
        (REQUESTS * SPANS) as usize,
        "every request is accepted"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = |a: &Backend, b: &Backend| -> BTreeSet<Vec<u8>> {
        received_ids(a).into_iter().chain(received_ids(b)).collect()
    };
    while !acked.is_subset(&delivered(&first, &second)) {
        assert!(
            Instant::now() < deadline,
            "{} acknowledged spans never arrived; log:\n{}",
            acked.difference(&delivered(&first, &second)).count(),
            tern.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !received_ids(&second).is_empty(),
        "the reload moved the exporter"
    );
    assert!(tern.stop().success());
    assert!(
        !tern.logs().contains("stay in its persistent queue"),
        "{}",
        tern.logs()
    );

    let before = (received_ids(&first).len(), received_ids(&second).len());
    let restarted = Tern::start(&stored(second.port, storage.path()));
    let metrics = restarted
        .self_metrics_until("the storage gauges", |m| {
            sample(m, "tern_storage_writable", r#"exporter="otlp_http""#) == Some(1.0)
        })
        .await;
    assert_eq!(
        sample(
            &metrics,
            "otelcol_exporter_queue_size",
            r#"exporter="otlp_http""#
        ),
        Some(0.0),
        "nothing was left to send again"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (received_ids(&first).len(), received_ids(&second).len()),
        before,
        "a restart after a clean stop sent delivered spans again; log:\n{}",
        restarted.logs()
    );
    assert!(
        !restarted.logs().contains("sending again"),
        "{}",
        restarted.logs()
    );
}
