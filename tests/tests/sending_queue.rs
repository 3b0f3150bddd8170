//! `sending_queue.wait_for_result`, `sending_queue.batch` and `otlphttp`'s
//! `proxy_url`, end to end with the real binary: the client's answer
//! carries the export's outcome and comes after delivery; the exporter
//! queue merges small requests and splits big ones; data reaches an http
//! endpoint through a proxy in absolute form and an https one through a
//! CONNECT tunnel.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::spans;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tern_e2e::{Backend, HttpConn, Step, Tern, grpc_call, paths};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Waits (at most 30 s) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Span names in an uncompressed OTLP/HTTP protobuf traces body.
fn span_names(body: &[u8]) -> Vec<String> {
    ExportTraceServiceRequest::decode(body)
        .unwrap()
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.name.clone())
        .collect()
}

fn exporter(name: &str, port: u16, keys: &str) -> String {
    format!(
        "  otlphttp/{name}:\n    endpoint: http://127.0.0.1:{port}\n    compression: none\n{keys}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_result_answers_with_the_exports_outcome() {
    let refusing = Backend::start(vec![], Step::status(400)).await;
    let unavailable = Backend::start(vec![], Step::status(503)).await;
    let waits = "    sending_queue:\n      wait_for_result: true\n";
    let no_retry = "    retry_on_failure:\n      enabled: false\n";
    let config = format!(
        "processors:\n  batch:\n    timeout: 20ms\nexporters:\n{}{}{}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlphttp/refusing]\n    logs:\n      receivers: [otlp]\n      exporters: [otlphttp/unavailable]\n    metrics:\n      receivers: [otlp]\n      exporters: [otlphttp/queued]\n",
        exporter("refusing", refusing.port, waits),
        exporter(
            "unavailable",
            unavailable.port,
            &format!("{waits}{no_retry}")
        ),
        exporter("queued", refusing.port, ""),
    );
    let tern = Tern::start(&config);
    let mut http = HttpConn::connect(tern.http).await;

    // A permanent refusal by the backend: not retryable for the client,
    // through the batch processor.
    let reply = http
        .post_proto("/v1/traces", spans(1, 3).encode_to_vec())
        .await;
    assert_eq!(reply.status, 500, "{}", tern.logs());
    assert!(String::from_utf8_lossy(&reply.body).contains("HTTP 400"));
    let grpc = grpc_call(tern.grpc, paths::TRACES, spans(2, 3).encode_to_vec(), None).await;
    assert_eq!(grpc.code, 13, "INTERNAL: {}", grpc.message);

    // A retryable failure that retries did not overcome: retryable.
    let reply = http
        .post_proto("/v1/logs", common::logs(1, 2).encode_to_vec())
        .await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    let grpc = grpc_call(
        tern.grpc,
        paths::LOGS,
        common::logs(2, 2).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(grpc.code, 14, "UNAVAILABLE: {}", grpc.message);

    // Without wait_for_result the sender is answered once its data is queued.
    let reply = http
        .post_proto("/v1/metrics", common::gauges(1, 2).encode_to_vec())
        .await;
    assert_eq!(reply.status, 200);

    let metrics = tern
        .self_metrics_until("refused counts", |m| m.contains("export_failed"))
        .await;
    assert!(
        metrics.contains(
            "otelcol_receiver_refused_spans_total{receiver=\"otlp\",transport=\"http\"} 3"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_queue_the_sender_gets_the_outcome_as_in_the_collector() {
    let refusing = Backend::start(vec![], Step::status(400)).await;
    let config = format!(
        "exporters:\n{}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlphttp/direct]\n",
        exporter(
            "direct",
            refusing.port,
            "    sending_queue:\n      enabled: false\n"
        ),
    );
    let tern = Tern::start(&config);
    let mut http = HttpConn::connect(tern.http).await;
    let reply = http
        .post_proto("/v1/traces", spans(1, 3).encode_to_vec())
        .await;
    assert_eq!(reply.status, 500, "{}", tern.logs());
}

/// An OTLP/HTTP backend whose answers wait until `release` is set.
struct GatedBackend {
    port: u16,
    items: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    release: tokio::sync::watch::Sender<bool>,
}

async fn gated_backend() -> GatedBackend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let items = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (release, gate) = tokio::sync::watch::channel(false);
    let (i, r) = (items.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (i, r, gate) = (i.clone(), r.clone(), gate.clone());
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (i, r, mut gate) = (i.clone(), r.clone(), gate.clone());
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        i.fetch_add(span_names(&body).len(), Ordering::SeqCst);
                        r.fetch_add(1, Ordering::SeqCst);
                        gate.wait_for(|open| *open).await.unwrap();
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    GatedBackend {
        port,
        items,
        requests,
        release,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_result_answers_after_delivery_of_every_merged_request() {
    let backend = gated_backend().await;
    let config = format!(
        "processors:\n  batch:\n    timeout: 200ms\nexporters:\n{}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlphttp/slow]\n",
        exporter(
            "slow",
            backend.port,
            "    sending_queue:\n      wait_for_result: true\n"
        ),
    );
    let tern = Tern::start(&config);
    let released = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2u32)
        .map(|tag| {
            let (port, released) = (tern.http, released.clone());
            tokio::spawn(async move {
                let mut http = HttpConn::connect(port).await;
                let reply = http
                    .post_proto("/v1/traces", spans(tag, 4).encode_to_vec())
                    .await;
                (reply.status, released.load(Ordering::SeqCst))
            })
        })
        .collect();
    until("both requests at the backend", || {
        backend.items.load(Ordering::SeqCst) == 8
    })
    .await;
    // Time for a wrong answer to arrive early; the right one cannot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        clients.iter().all(|c| !c.is_finished()),
        "a client was answered before its data was delivered"
    );
    released.store(true, Ordering::SeqCst);
    backend.release.send(true).unwrap();
    for client in clients {
        assert_eq!(client.await.unwrap(), (200, true));
    }
    assert!(backend.requests.load(Ordering::SeqCst) <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_batching_merges_small_requests_and_splits_at_max_size() {
    let backend = Backend::start(vec![], Step::status(200)).await;
    let config = format!(
        "exporters:\n{}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlphttp/batched]\n",
        exporter(
            "batched",
            backend.port,
            "    sending_queue:\n      batch:\n        flush_timeout: 1h\n        min_size: 50\n        max_size: 50\n"
        ),
    );
    let tern = Tern::start(&config);
    let mut http = HttpConn::connect(tern.http).await;
    let mut sent = Vec::new();
    let mut post = async |tag: u32, n: u32| {
        let request = spans(tag, n);
        sent.extend(span_names(&request.encode_to_vec()));
        let reply = http.post_proto("/v1/traces", request.encode_to_vec()).await;
        assert_eq!(reply.status, 200);
    };
    // Ten requests of 10 spans: two sends of 50.
    for tag in 0..10 {
        post(tag, 10).await;
    }
    // 120 spans: split into 50 + 50, the last 20 wait for 30 more.
    post(10, 120).await;
    post(11, 30).await;
    let received = || backend.received();
    until("250 spans at the backend", || {
        received()
            .iter()
            .map(|r| span_names(&r.body).len())
            .sum::<usize>()
            == 250
    })
    .await;
    let received = received();
    let sizes: Vec<usize> = received.iter().map(|r| span_names(&r.body).len()).collect();
    assert_eq!(sizes, [50; 5], "{sizes:?}");
    let mut got: Vec<String> = received.iter().flat_map(|r| span_names(&r.body)).collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
}

/// A forward proxy on 127.0.0.1 that counts CONNECT tunnels and
/// absolute-form requests, records their first lines and
/// `Proxy-Authorization`, and relays bytes both ways.
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A request line (or CONNECT line) and its `Proxy-Authorization`.
type Seen = (String, Option<String>);

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") {
                        head.push(client.read_u8().await.unwrap());
                    }
                    let text = String::from_utf8(head.clone()).unwrap();
                    let first = text.lines().next().unwrap().to_string();
                    let auth = text.lines().find_map(|l| {
                        let (name, value) = l.split_once(": ")?;
                        name.eq_ignore_ascii_case("proxy-authorization")
                            .then(|| value.to_string())
                    });
                    log.lock().unwrap().push((first.clone(), auth));
                    let target = first.split(' ').nth(1).unwrap().to_string();
                    let mut upstream = if first.starts_with("CONNECT ") {
                        let upstream = tokio::net::TcpStream::connect(&target).await.unwrap();
                        client
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await
                            .unwrap();
                        upstream
                    } else {
                        let authority = target
                            .strip_prefix("http://")
                            .unwrap()
                            .split('/')
                            .next()
                            .unwrap();
                        let mut upstream = tokio::net::TcpStream::connect(authority).await.unwrap();
                        upstream.write_all(&head).await.unwrap();
                        upstream
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        Proxy { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// `Basic` credentials of `user:pa@ss`, as the proxy URL below spells them.
const PROXY_AUTH: &str = "Basic dXNlcjpwYUBzcw==";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_url_carries_http_requests_in_absolute_form() {
    let backend = Backend::start(vec![], Step::status(200)).await;
    let proxy = Proxy::start().await;
    let config = format!(
        "exporters:\n{}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlphttp/proxied]\n",
        exporter(
            "proxied",
            backend.port,
            &format!(
                "    proxy_url: http://user:pa%40ss@127.0.0.1:{}\n",
                proxy.port
            )
        ),
    );
    let tern = Tern::start(&config);
    let mut http = HttpConn::connect(tern.http).await;
    let reply = http
        .post_proto("/v1/traces", spans(1, 3).encode_to_vec())
        .await;
    assert_eq!(reply.status, 200);
    until("the request at the backend", || {
        !backend.received().is_empty()
    })
    .await;
    assert_eq!(span_names(&backend.received()[0].body).len(), 3);
    assert_eq!(
        proxy.seen(),
        [(
            format!("POST http://127.0.0.1:{}/v1/traces HTTP/1.1", backend.port),
            Some(PROXY_AUTH.to_string())
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_url_tunnels_https_requests_with_connect() {
    // The https backend: a second Tern serving OTLP/HTTP over TLS into a file.
    let scratch = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(scratch.path())
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs = scratch.path().display();
    let backend = Tern::start(&format!(
        "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{{http}}\n        tls:\n          cert_file: {certs}/cert.pem\n          key_file: {certs}/key.pem\nexporters:\n  file:\n    path: {{dir}}/spans.jsonl\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [file]\n"
    ));
    let proxy = Proxy::start().await;
    let tern = Tern::start(&format!(
        "exporters:\n  otlphttp:\n    endpoint: https://127.0.0.1:{}\n    tls:\n      insecure_skip_verify: true\n    proxy_url: http://user:pa%40ss@127.0.0.1:{}/\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlphttp]\n",
        backend.http, proxy.port
    ));
    let mut http = HttpConn::connect(tern.http).await;
    let reply = http
        .post_proto("/v1/traces", spans(7, 2).encode_to_vec())
        .await;
    assert_eq!(reply.status, 200);
    let file = backend.path("spans.jsonl");
    until("the spans in the https backend's file", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("tool.call 7/1"))
    })
    .await;
    assert_eq!(
        proxy.seen(),
        [(
            format!("CONNECT 127.0.0.1:{} HTTP/1.1", backend.http),
            Some(PROXY_AUTH.to_string())
        )]
    );
}
