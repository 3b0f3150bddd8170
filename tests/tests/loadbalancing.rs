//! The `loadbalancing` exporter end to end: an agent Tern in front of
//! gateway Terns on 127.0.0.2-4 (one port, as behind a headless Service),
//! each gateway writing what it receives to a file. With the `static`
//! resolver every trace lands on exactly one gateway; with the `dns`
//! resolver asking a real DNS server (dnsmasq, whose records the test
//! changes), a gateway that goes down and then leaves the records loses
//! nothing that was acknowledged: its share is routed to the others, and
//! only its traces move; the `k8s` resolver follows the EndpointSlices a
//! local HTTPS server serves as the Kubernetes API does (list, then a
//! watch that drops and must resume from the last resourceVersion), found
//! through a kubeconfig or, as in a pod, through the service account. The
//! same traffic through Tern and the reference Collector lands on the same
//! backends for every routing key.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tern_e2e::{Tern, free_port, grpc_call, paths, sample, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const GATEWAYS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

/// A gateway: OTLP/gRPC on `ip:port`, every span to `spans.pb`.
fn gateway(ip: &str, port: u16) -> Tern {
    gateway_with(ip, port, "", "[]")
}

/// A gateway with `processors` (YAML of the section) in its pipeline.
fn gateway_with(ip: &str, port: u16, section: &str, pipeline: &str) -> Tern {
    Tern::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {ip}:{port}
{section}
exporters:
  file:
    path: "{{dir}}/spans.pb"
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: {pipeline}
      exporters: [file]
"#
    ))
}

/// The agent: `loadbalancing` with `resolver` (YAML under `resolver:`).
fn agent_config(resolver: &str) -> String {
    format!(
        r#"
exporters:
  loadbalancing:
    protocol:
      otlp:
        tls:
          insecure: true
        retry_on_failure:
          initial_interval: 20ms
          max_interval: 100ms
          max_elapsed_time: 0s
    resolver:
{resolver}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [loadbalancing]
"#
    )
}

fn trace_id(trace: u32) -> Vec<u8> {
    [[0xab; 4], trace.to_be_bytes(), [7; 4], [9; 4]].concat()
}

/// Request `r` of a phase: 15 spans of traces spread over every request.
fn request(phase: u32, r: u32, traces: u32) -> ExportTraceServiceRequest {
    let spans = (0..15u32)
        .map(|j| Span {
            trace_id: trace_id((r * 7 + j) % traces),
            span_id: [phase.to_be_bytes(), (r * 100 + j).to_be_bytes()].concat(),
            name: format!("step {phase}/{r}/{j}"),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_100_000_000,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Sends `n` requests of `phase`; returns the span ids acknowledged.
async fn send_phase(agent: &Tern, phase: u32, n: u32, traces: u32) -> Vec<Vec<u8>> {
    let mut acked = Vec::new();
    for r in 0..n {
        let req = request(phase, r, traces);
        let reply = grpc_call(agent.grpc, paths::TRACES, req.encode_to_vec(), None).await;
        assert_eq!(reply.code, 0, "{}", reply.message);
        acked.extend(span_ids(&req));
    }
    acked
}

/// (trace id -> span ids) of what a gateway wrote.
fn received(path: &Path) -> BTreeMap<Vec<u8>, Vec<Vec<u8>>> {
    let mut out: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for record in proto_records(&read(path)) {
        let req = ExportTraceServiceRequest::decode(record).unwrap();
        for span in req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            out.entry(span.trace_id.clone())
                .or_default()
                .push(span.span_id.clone());
        }
    }
    out
}

/// The gateways (indexes) each trace id was found on.
type Owners = BTreeMap<Vec<u8>, BTreeSet<usize>>;

/// Span ids written by all gateways, sorted; and the gateways of each trace.
fn gathered(files: &[PathBuf]) -> (Vec<Vec<u8>>, Owners) {
    let mut spans = Vec::new();
    let mut owners = Owners::new();
    for (g, f) in files.iter().enumerate() {
        for (trace, ids) in received(f) {
            owners.entry(trace).or_default().insert(g);
            spans.extend(ids);
        }
    }
    spans.sort();
    (spans, owners)
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_resolver_keeps_each_trace_on_one_gateway() {
    let port = free_port();
    let mut gateways: Vec<Tern> = GATEWAYS.iter().map(|ip| gateway(ip, port)).collect();
    let hostnames: Vec<String> = GATEWAYS.iter().map(|ip| format!("{ip}:{port}")).collect();
    let mut agent = Tern::start(&agent_config(&format!(
        "      static:\n        hostnames: [{}]",
        hostnames.join(", ")
    )));
    let sent = send_phase(&agent, 1, 30, 50).await;
    // An export counts as sent once its parts are in the backends' queues;
    // each backend's outcome and latency are recorded when its part is
    // answered, so the wait is for those too.
    let every_backend_answered = |m: &str| {
        hostnames.iter().all(|h| {
            let ok = sample(
                m,
                "otelcol_loadbalancer_backend_outcome_total",
                &format!(r#"endpoint="{h}",success="true""#),
            );
            // The Collector's latency histogram: milliseconds, its buckets.
            let exports = sample(
                m,
                "otelcol_loadbalancer_backend_latency_bucket",
                &format!(r#"endpoint="{h}",le="5000""#),
            );
            ok.unwrap_or(0.0) > 0.0 && exports.unwrap_or(0.0) > 0.0
        })
    };
    let metrics = agent
        .self_metrics_until(
            "every span sent and each backend's success and latency recorded",
            |m| {
                sample(
                    m,
                    "otelcol_exporter_sent_spans_total",
                    r#"exporter="loadbalancing""#,
                ) == Some(sent.len() as f64)
                    && every_backend_answered(m)
            },
        )
        .await;
    assert_eq!(
        sample(
            &metrics,
            "otelcol_loadbalancer_num_backends",
            r#"resolver="static""#
        ),
        Some(3.0)
    );
    assert!(metrics.contains("# TYPE otelcol_loadbalancer_backend_latency histogram"));
    assert!(agent.stop().success(), "{}", agent.logs());
    for g in &mut gateways {
        assert!(g.stop().success());
    }
    let files: Vec<PathBuf> = gateways.iter().map(|g| g.path("spans.pb")).collect();
    let (spans, owners) = gathered(&files);
    assert_eq!(spans, sorted(sent), "every span arrives exactly once");
    assert_eq!(owners.len(), 50);
    for (trace, gs) in &owners {
        assert_eq!(gs.len(), 1, "trace {trace:x?} on gateways {gs:?}");
    }
    let per_gateway: Vec<usize> = (0..3)
        .map(|g| owners.values().filter(|gs| gs.contains(&g)).count())
        .collect();
    assert!(per_gateway.iter().all(|n| *n > 0), "{per_gateway:?}");
}

/// dnsmasq answering for `gw.tern.test` from a hosts file the test edits.
struct Dns {
    child: Child,
    hosts: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Dns {
    fn start(ips: &[&str]) -> Option<Dns> {
        let binary = ["dnsmasq", "/usr/sbin/dnsmasq"]
            .into_iter()
            .find(|b| Command::new(b).arg("--version").output().is_ok())?;
        let dir = tempfile::tempdir().unwrap();
        // dnsmasq reads the file again on SIGHUP, possibly as another user.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, hosts_file(ips)).unwrap();
        // dnsmasq listens on UDP and TCP: a port another test holds for
        // TCP makes it exit, so it is started again on another one until
        // it answers.
        for _ in 0..10 {
            let port = free_port();
            let mut child = Command::new(binary)
                .args([
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    "--cache-size=0",
                ])
                .arg(format!("--port={port}"))
                .arg(format!("--addn-hosts={}", hosts.display()))
                .arg(format!("--pid-file={}", dir.path().join("pid").display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if answers(port) {
                return Some(Dns {
                    child,
                    hosts,
                    port,
                    _dir: dir,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start");
    }

    /// Makes `gw.tern.test` resolve to `ips` (rewrites the file, SIGHUP).
    fn set(&self, ips: &[&str]) {
        std::fs::write(&self.hosts, hosts_file(ips)).unwrap();
        Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

/// Whether a DNS server on 127.0.0.1:`port` answers a query (within ~5 s).
fn answers(port: u16) -> bool {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    // A query for the A records of gw.tern.test.
    let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02gw\x04tern\x04test\x00\x00\x01\x00\x01";
    let mut buf = [0u8; 512];
    for _ in 0..50 {
        let _ = socket.send_to(query, ("127.0.0.1", port));
        if let Ok(n) = socket.recv(&mut buf)
            && n >= 2
            && buf[..2] == [0x12, 0x34]
        {
            return true;
        }
    }
    false
}

fn hosts_file(ips: &[&str]) -> String {
    ips.iter()
        .map(|ip| format!("{ip} gw.tern.test\n"))
        .collect()
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_leaving_dns_loses_nothing_and_moves_only_its_traces() {
    let Some(dns) = Dns::start(&GATEWAYS) else {
        eprintln!(
            "SKIPPED: dnsmasq is not installed (Debian package dnsmasq-base; tests/run.sh installs it)"
        );
        return;
    };
    let port = free_port();
    let mut gateways: Vec<Tern> = GATEWAYS.iter().map(|ip| gateway(ip, port)).collect();
    let files: Vec<PathBuf> = gateways.iter().map(|g| g.path("spans.pb")).collect();
    let mut agent = Tern::start(&agent_config(&format!(
        "      dns:\n        hostname: gw.tern.test\n        port: \"{port}\"\n        interval: 50ms\n        nameserver: 127.0.0.1:{}",
        dns.port
    )));
    let backends = |n: f64| {
        move |m: &str| {
            sample(m, "otelcol_loadbalancer_num_backends", r#"resolver="dns""#) == Some(n)
        }
    };
    agent.self_metrics_until("3 backends", backends(3.0)).await;

    // Phase 1: every gateway up; ownership of each trace is settled.
    let mut acked = send_phase(&agent, 1, 20, 60).await;
    let n = acked.len() as f64;
    agent
        .self_metrics_until("phase 1 sent", |m| {
            sample(
                m,
                "otelcol_exporter_sent_spans_total",
                r#"exporter="loadbalancing""#,
            ) == Some(n)
        })
        .await;
    // Sent means in the backends' queues: wait for the gateways' files.
    wait_until("phase 1 on the gateways", || {
        gathered(&files).0.len() == acked.len()
    })
    .await;
    let (_, before) = gathered(&files);
    let on_third: BTreeSet<Vec<u8>> = before
        .iter()
        .filter(|(_, gs)| gs.contains(&2))
        .map(|(t, _)| t.clone())
        .collect();
    assert!(!on_third.is_empty());

    // Phase 2: the third gateway is down but still in DNS: its share waits
    // in retries while the others get theirs.
    assert!(gateways[2].stop().success());
    let on_live = |files: &[PathBuf]| -> usize {
        files[..2]
            .iter()
            .map(|f| received(f).values().map(Vec::len).sum::<usize>())
            .sum()
    };
    let base = on_live(&files);
    let phase2 = send_phase(&agent, 2, 20, 60).await;
    let for_others = (0..20u32)
        .flat_map(|r| (0..15u32).map(move |j| trace_id((r * 7 + j) % 60)))
        .filter(|t| !on_third.contains(t))
        .count();
    acked.extend(phase2);
    wait_until("the live gateways' share of phase 2", || {
        on_live(&files) >= base + for_others
    })
    .await;

    // The third gateway leaves DNS: what waited for it goes to the others.
    dns.set(&GATEWAYS[..2]);
    agent.self_metrics_until("2 backends", backends(2.0)).await;
    acked.extend(send_phase(&agent, 3, 10, 60).await);
    let metrics = agent
        .self_metrics_until("rerouted spans", |m| {
            sample(
                m,
                "tern_loadbalancer_rerouted_items_total",
                r#"exporter="loadbalancing",signal="traces""#,
            )
            .unwrap_or(0.0)
                > 0.0
        })
        .await;
    assert!(
        sample(
            &metrics,
            "otelcol_loadbalancer_num_resolutions_total",
            r#"resolver="dns",success="true""#
        )
        .unwrap_or(0.0)
            >= 2.0
    );
    assert!(agent.stop().success(), "{}", agent.logs());
    for g in gateways.iter_mut().take(2) {
        assert!(g.stop().success());
    }
    let (spans, after) = gathered(&files);
    assert_eq!(
        spans,
        sorted(acked),
        "every acknowledged span arrives exactly once"
    );
    let mut moved = 0;
    for (trace, gs) in &after {
        if on_third.contains(trace) {
            // Phase 1 on the third gateway, then on its new owner.
            assert_eq!(gs.len(), 2, "trace {trace:x?}: {gs:?}");
            moved += 1;
        } else {
            assert_eq!(
                gs.len(),
                1,
                "a trace that was not on the third gateway moved: {gs:?}"
            );
            assert_eq!(gs, &before[trace]);
        }
    }
    eprintln!("{moved} traces moved from the gateway that left");
    assert_eq!(moved, on_third.len());
}

/// An EndpointSlice of Service `gw` with `endpoints` (address, ready).
fn slice(name: &str, version: u32, endpoints: &[(&str, bool)]) -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|(ip, ready)| serde_json::json!({"addresses": [ip], "conditions": {"ready": ready}}))
        .collect();
    serde_json::json!({
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": "obs",
            "resourceVersion": version.to_string(),
            "labels": {"kubernetes.io/service-name": "gw"}
        },
        "addressType": "IPv4",
        "endpoints": endpoints
    })
}

fn event(kind: &str, object: serde_json::Value) -> String {
    serde_json::json!({"type": kind, "object": object}).to_string() + "\n"
}

/// What the test's Kubernetes API saw: the path and `Authorization` of
/// each call.
type Calls = mpsc::UnboundedSender<(String, String)>;

/// A TLS acceptor for `dir`'s `server.pem` and `server.key` (see
/// [`make_certs`]).
fn tls_acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

/// Serves, over HTTPS, the EndpointSlice list (`list`) and watches: each
/// watch streams the lines sent on `events` until a `None`, which drops it.
async fn kubernetes_api(
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    list: String,
    calls: Calls,
    events: mpsc::UnboundedReceiver<Option<String>>,
) {
    let events = std::sync::Arc::new(tokio::sync::Mutex::new(events));
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let (list, calls, events, tls) = (list.clone(), calls.clone(), events.clone(), tls.clone());
        tokio::spawn(async move {
            let Ok(mut stream) = tls.accept(tcp).await else {
                return;
            };
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split(' ').nth(1).unwrap_or_default().to_string();
            let authorization = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().to_string())
                })
                .unwrap_or_default();
            let _ = calls.send((path.clone(), authorization));
            if !path.contains("watch=1") {
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{list}",
                    list.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.flush().await;
                return;
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            let _ = stream.flush().await;
            let mut events = events.lock().await;
            while let Some(Some(line)) = events.recv().await {
                let chunk = format!("{:x}\r\n{line}\r\n", line.len());
                if stream.write_all(chunk.as_bytes()).await.is_err()
                    || stream.flush().await.is_err()
                {
                    return;
                }
            }
            // Dropped without the closing chunk, as a broken connection.
        });
    }
}

/// The test's Kubernetes API with one slice (127.0.0.2 and .3 ready) at
/// version 10: its address, the calls it sees, the watch events to send,
/// and the directory of its certificates (`ca.pem` verifies it).
async fn start_kubernetes_api() -> (
    std::net::SocketAddr,
    mpsc::UnboundedReceiver<(String, String)>,
    mpsc::UnboundedSender<Option<String>>,
    tempfile::TempDir,
) {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let list = serde_json::json!({
        "kind": "EndpointSliceList",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"resourceVersion": "10"},
        "items": [slice("gw-a", 9, &[("127.0.0.2", true), ("127.0.0.3", true)])]
    })
    .to_string();
    let (calls_tx, calls) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    tokio::spawn(kubernetes_api(
        listener,
        tls_acceptor(certs.path()),
        list,
        calls_tx,
        events_rx,
    ));
    (api, calls, events, certs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_resolver_follows_endpoint_slices_and_resumes_its_watch() {
    let port = free_port();
    let mut gw = gateway("127.0.0.2", port);
    let (api, mut calls, events, certs) = start_kubernetes_api().await;
    // A kubeconfig as kubectl writes one, the CA file named relative to it.
    let kubeconfig = certs.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: local\n  cluster:\n    server: https://{api}\n    certificate-authority: ca.pem\nusers:\n- name: agent\n  user:\n    token: kube-token\ncontexts:\n- name: test\n  context:\n    cluster: local\n    user: agent\n"
        ),
    )
    .unwrap();
    let mut agent = Tern::start_with_env(
        &[("KUBECONFIG", &kubeconfig.display().to_string())],
        &agent_config(&format!(
            "      k8s:\n        service: gw.obs\n        ports: [{port}]\n        timeout: 30s"
        )),
    );
    let backends = |n: f64| {
        move |m: &str| {
            sample(m, "otelcol_loadbalancer_num_backends", r#"resolver="k8s""#) == Some(n)
        }
    };
    let (first, authorization) = calls.recv().await.unwrap();
    assert_eq!(authorization, "Bearer kube-token");
    assert!(
        first.starts_with("/apis/discovery.k8s.io/v1/namespaces/obs/endpointslices?")
            && first.contains("labelSelector=kubernetes.io%2Fservice-name%3Dgw")
            && !first.contains("watch=1"),
        "{first}"
    );
    agent
        .self_metrics_until("2 backends from the list", backends(2.0))
        .await;
    let (watch, _) = calls.recv().await.unwrap();
    assert!(
        watch.contains("watch=1") && watch.contains("resourceVersion=10"),
        "{watch}"
    );

    events
        .send(Some(event(
            "ADDED",
            slice("gw-b", 11, &[("127.0.0.4", true)]),
        )))
        .unwrap();
    agent
        .self_metrics_until("3 backends after ADDED", backends(3.0))
        .await;
    // The watch drops; the resolver resumes from the last version it saw.
    events.send(None).unwrap();
    let (resumed, _) = calls.recv().await.unwrap();
    assert!(
        resumed.contains("watch=1") && resumed.contains("resourceVersion=11"),
        "{resumed}"
    );
    events
        .send(Some(event(
            "MODIFIED",
            slice("gw-a", 12, &[("127.0.0.2", true), ("127.0.0.3", false)]),
        )))
        .unwrap();
    events
        .send(Some(event(
            "DELETED",
            slice("gw-b", 13, &[("127.0.0.4", true)]),
        )))
        .unwrap();
    agent
        .self_metrics_until("1 backend after MODIFIED and DELETED", backends(1.0))
        .await;

    let sent = send_phase(&agent, 1, 10, 20).await;
    let n = sent.len() as f64;
    agent
        .self_metrics_until("every span sent", |m| {
            sample(
                m,
                "otelcol_exporter_sent_spans_total",
                r#"exporter="loadbalancing""#,
            ) == Some(n)
        })
        .await;
    assert!(agent.stop().success(), "{}", agent.logs());
    assert!(gw.stop().success());
    let (spans, _) = gathered(&[gw.path("spans.pb")]);
    assert_eq!(spans, sorted(sent), "every span on the one ready backend");
}

/// In a pod: the API at `KUBERNETES_SERVICE_HOST:PORT` over HTTPS verified
/// with the service account's `ca.crt`, its `token` as bearer (read again
/// for each call: a rotated token is used at the next one), and its
/// `namespace` for a service named without one. The resolver runs as the
/// exporter runs it, with the standard paths pointed at the test's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_resolver_in_a_pod_uses_the_service_account() {
    use tern_exporters::loadbalancing::k8s;
    use tern_exporters::loadbalancing::resolver::ResolverMetrics;
    let (api, mut calls, events, certs) = start_kubernetes_api().await;
    let account = tempfile::tempdir().unwrap();
    std::fs::copy(certs.path().join("ca.pem"), account.path().join("ca.crt")).unwrap();
    std::fs::write(account.path().join("token"), "sa-token-1\n").unwrap();
    std::fs::write(account.path().join("namespace"), "obs").unwrap();
    let env = k8s::Environment {
        kubeconfig: None,
        service_host: Some(api.ip().to_string()),
        service_port: Some(api.port().to_string()),
        service_account: account.path().to_path_buf(),
        home: None,
    };
    let config = tern_config::K8sResolverConfig {
        service: "gw".into(),
        ports: vec![4317],
        ..Default::default()
    };
    let metrics = ResolverMetrics::new(&tern_core::telemetry::Telemetry::new(), "k8s");
    let (tx, mut rx) = tokio::sync::watch::channel(None);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let resolver = tokio::spawn(async move {
        k8s::run_in(&env, "loadbalancing", &config, &metrics, &tx, stop_rx).await;
    });
    let (list, authorization) = calls.recv().await.unwrap();
    assert!(
        list.starts_with("/apis/discovery.k8s.io/v1/namespaces/obs/endpointslices?"),
        "{list}"
    );
    assert_eq!(authorization, "Bearer sa-token-1");
    let endpoints = rx.wait_for(Option::is_some).await.unwrap().clone();
    assert_eq!(
        endpoints,
        Some(vec![
            "127.0.0.2:4317".to_string(),
            "127.0.0.3:4317".to_string()
        ])
    );
    let (watch, authorization) = calls.recv().await.unwrap();
    assert!(watch.contains("watch=1"), "{watch}");
    assert_eq!(authorization, "Bearer sa-token-1");
    // The kubelet rotates the token; the watch drops and resumes with it.
    std::fs::write(account.path().join("token"), "sa-token-2\n").unwrap();
    events.send(None).unwrap();
    let (resumed, authorization) = calls.recv().await.unwrap();
    assert!(resumed.contains("resourceVersion=10"), "{resumed}");
    assert_eq!(authorization, "Bearer sa-token-2");
    stop.send_replace(true);
    resolver.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_backend_that_stays_down_fails_its_share_and_waiting_senders_learn_why() {
    let port = free_port();
    let mut up = gateway("127.0.0.2", port);
    // Nothing listens on 127.0.0.3.
    let down = format!("127.0.0.3:{port}");
    let mut agent = Tern::start(&format!(
        r#"
exporters:
  loadbalancing:
    sending_queue:
      wait_for_result: true
    protocol:
      otlp:
        tls:
          insecure: true
        retry_on_failure:
          initial_interval: 10ms
          max_interval: 20ms
          max_elapsed_time: 300ms
    resolver:
      static:
        hostnames: [127.0.0.2:{port}, {down}]
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [loadbalancing]
"#
    ));
    let req = request(1, 0, 50);
    let reply = grpc_call(agent.grpc, paths::TRACES, req.encode_to_vec(), None).await;
    assert_eq!(reply.code, 14, "UNAVAILABLE: {}", reply.message);
    assert!(reply.message.contains(&down), "{}", reply.message);
    let metrics = agent.self_metrics().await;
    let failed = sample(
        &metrics,
        "tern_loadbalancer_backend_failed_items_total",
        &format!(r#"endpoint="{down}",signal="traces""#),
    )
    .unwrap_or(0.0);
    assert!(failed > 0.0 && failed < 15.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "otelcol_loadbalancer_backend_outcome_total",
            &format!(r#"endpoint="{down}",success="false""#)
        ),
        Some(1.0)
    );
    assert!(agent.stop().success());
    assert!(up.stop().success());
    // The live backend got its share all the same.
    let (spans, _) = gathered(&[up.path("spans.pb")]);
    assert_eq!(spans.len() as f64, 15.0 - failed);
}

/// The gateway tier as deployed: the agent keeps each trace on one gateway,
/// so `tail_sampling` there sees whole traces although their spans arrive
/// spread over many requests; traces with an error span are kept whole on
/// exactly one gateway, the others dropped everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_sampling_gateways_behind_the_agent_keep_whole_traces() {
    let port = free_port();
    let tail = r#"
processors:
  tail_sampling:
    decision_wait: 1s
    policies:
      - name: errors
        type: status_code
        status_code:
          status_codes: [ERROR]
"#;
    let mut gateways: Vec<Tern> = GATEWAYS
        .iter()
        .map(|ip| gateway_with(ip, port, tail, "[tail_sampling]"))
        .collect();
    let hostnames: Vec<String> = GATEWAYS.iter().map(|ip| format!("{ip}:{port}")).collect();
    let mut agent = Tern::start(&agent_config(&format!(
        "      static:\n        hostnames: [{}]",
        hostnames.join(", ")
    )));
    // 60 traces, each spread over several of the 40 requests; the span with
    // index 3 of every third trace failed.
    let traces = 60;
    let mut all: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for r in 0..40 {
        let mut req = request(1, r, traces);
        for span in req
            .resource_spans
            .iter_mut()
            .flat_map(|r| &mut r.scope_spans)
            .flat_map(|s| &mut s.spans)
        {
            let trace = u32::from_be_bytes(span.trace_id[4..8].try_into().unwrap());
            let n = all.entry(span.trace_id.clone()).or_default();
            if trace % 3 == 0 && n.len() == 3 {
                span.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
                    code: 2,
                    message: "tool call failed".into(),
                });
            }
            n.push(span.span_id.clone());
        }
        let reply = grpc_call(agent.grpc, paths::TRACES, req.encode_to_vec(), None).await;
        assert_eq!(reply.code, 0, "{}", reply.message);
    }
    let failed: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = all
        .iter()
        .filter(|(t, spans)| {
            u32::from_be_bytes(t[4..8].try_into().unwrap()) % 3 == 0 && spans.len() > 3
        })
        .map(|(t, spans)| (t.clone(), sorted(spans.clone())))
        .collect();
    assert!(
        failed.len() >= 15,
        "the traffic has failed traces: {}",
        failed.len()
    );
    let total: usize = all.values().map(Vec::len).sum();
    agent
        .self_metrics_until("every span sent", |m| {
            sample(
                m,
                "otelcol_exporter_sent_spans_total",
                r#"exporter="loadbalancing""#,
            ) == Some(total as f64)
        })
        .await;
    for g in &gateways {
        let p = r#"processor="tail_sampling""#;
        g.self_metrics_settled(
            "every trace decided",
            |m| {
                let new = "otelcol_processor_tail_sampling_new_trace_id_received_total";
                let held = "otelcol_processor_tail_sampling_sampling_traces_on_memory";
                (sample(m, new, p), sample(m, held, p))
            },
            |(new, held)| new.is_some_and(|n| n > 0.0) && *held == Some(0.0),
        )
        .await;
    }
    assert!(agent.stop().success(), "{}", agent.logs());
    for g in &mut gateways {
        assert!(g.stop().success(), "{}", g.logs());
    }
    let mut kept: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    let mut owners = Owners::new();
    for (g, gw) in gateways.iter().enumerate() {
        for (trace, ids) in received(&gw.path("spans.pb")) {
            owners.entry(trace.clone()).or_default().insert(g);
            kept.entry(trace).or_default().extend(ids);
        }
    }
    for ids in kept.values_mut() {
        ids.sort();
    }
    assert_eq!(kept, failed, "exactly the failed traces, each whole");
    for (trace, gs) in &owners {
        assert_eq!(gs.len(), 1, "trace {trace:x?} on gateways {gs:?}");
    }
    let used: BTreeSet<usize> = owners.values().flatten().copied().collect();
    assert_eq!(
        used.len(),
        3,
        "every gateway sampled some traces: {owners:?}"
    );
}

/// The routing keys compared with the reference Collector: (signal, key).
const KEYS: [(&str, &str); 9] = [
    ("traces", "traceID"),
    ("traces", "service"),
    ("logs", "traceID"),
    ("logs", "service"),
    ("logs", "resource"),
    ("metrics", "service"),
    ("metrics", "resource"),
    ("metrics", "metric"),
    ("metrics", "streamID"),
];

fn any(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn kv_of(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: any(v),
        ..Default::default()
    }
}

fn str_kv(key: &str, v: &str) -> KeyValue {
    kv_of(key, any_value::Value::StringValue(v.into()))
}

/// Resource attributes of resource `r`: a service name (a string, an
/// integer or none) and attributes of several types.
fn routing_resource(r: u32) -> Option<Resource> {
    let mut attributes = vec![
        kv_of("pod.index", any_value::Value::IntValue(i64::from(r))),
        kv_of("ratio", any_value::Value::DoubleValue(f64::from(r) / 4.0)),
        str_kv("host.name", &format!("node-{}", r % 3)),
    ];
    match r % 5 {
        0 => {}
        1 => attributes.push(kv_of("service.name", any_value::Value::IntValue(7))),
        _ => attributes.push(str_kv("service.name", &format!("svc-{}", r % 4))),
    }
    Some(Resource {
        attributes,
        ..Default::default()
    })
}

/// Traces in which every way the Collector finds a trace's service
/// happens: on the resource, on the scope, on the first span of each trace
/// (later spans say otherwise), and nowhere.
fn routing_traces(n: u32) -> ExportTraceServiceRequest {
    let span = |r: u32, s: u32, i: u32, service: Option<String>| Span {
        trace_id: trace_id((r * 13 + i * 5) % 40),
        span_id: [r, s * 1000 + i].map(u32::to_be_bytes).concat(),
        name: format!("op-{i}"),
        attributes: service
            .map(|v| vec![str_kv("service.name", &v)])
            .unwrap_or_default(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_100_000_000,
        ..Default::default()
    };
    let resource_spans = (0..n)
        .map(|r| {
            let scope_service = ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    attributes: vec![str_kv("service.name", &format!("scope-{}", r % 3))],
                    ..Default::default()
                }),
                spans: (0..6).map(|i| span(r, 1, i, None)).collect(),
                ..Default::default()
            };
            let span_service = ScopeSpans {
                spans: (0..12)
                    .map(|i| span(r, 2, i, (i % 4 != 3).then(|| format!("span-{}", i % 5))))
                    .collect(),
                ..Default::default()
            };
            ResourceSpans {
                resource: routing_resource(r),
                scope_spans: vec![scope_service, span_service],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// Log records, each with a trace id and a body naming it.
fn routing_logs(n: u32) -> ExportLogsServiceRequest {
    let resource_logs = (0..n)
        .map(|r| ResourceLogs {
            resource: routing_resource(r),
            scope_logs: vec![ScopeLogs {
                log_records: (0..8)
                    .map(|i| LogRecord {
                        trace_id: trace_id(r * 8 + i),
                        body: any(any_value::Value::StringValue(format!("log {r}/{i}"))),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// Gauges, sums and histograms whose points each carry a `point` id.
fn routing_metrics(n: u32) -> ExportMetricsServiceRequest {
    let number = |r: u32, m: u32, p: u32| NumberDataPoint {
        attributes: vec![
            str_kv("point", &format!("{r}/{m}/{p}")),
            str_kv("host", &format!("h{}", p % 3)),
        ],
        value: Some(number_data_point::Value::AsInt(i64::from(p))),
        ..Default::default()
    };
    let metric = |r: u32, m: u32| {
        let points: Vec<NumberDataPoint> = (0..4).map(|p| number(r, m, p)).collect();
        let data = match m % 3 {
            0 => metric::Data::Gauge(Gauge {
                data_points: points,
            }),
            1 => metric::Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
            _ => metric::Data::Histogram(Histogram {
                data_points: (0..4)
                    .map(|p| HistogramDataPoint {
                        attributes: vec![str_kv("point", &format!("{r}/{m}/{p}"))],
                        count: 1,
                        bucket_counts: vec![1],
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: 1,
            }),
        };
        Metric {
            name: format!("metric.{}", (r + m) % 7),
            unit: if m.is_multiple_of(2) {
                "ms".into()
            } else {
                String::new()
            },
            data: Some(data),
            ..Default::default()
        }
    };
    let resource_metrics = (0..n)
        .map(|r| ResourceMetrics {
            resource: routing_resource(r),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: format!("meter-{}", r % 2),
                    version: "1.2".into(),
                    attributes: vec![str_kv("tier", "gold")],
                    ..Default::default()
                }),
                metrics: (0..6).map(|m| metric(r, m)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// A gateway for the comparison: one OTLP/gRPC receiver per routing key
/// on `ip:ports[k]`, each written to `k.pb`.
fn routing_gateway(ip: &str, ports: &[u16]) -> Tern {
    let mut receivers = String::new();
    let mut exporters = String::new();
    let mut pipelines = String::new();
    for (k, ((signal, _), port)) in KEYS.iter().zip(ports).enumerate() {
        receivers.push_str(&format!(
            "  otlp/{k}:\n    protocols:\n      grpc:\n        endpoint: {ip}:{port}\n"
        ));
        exporters.push_str(&format!(
            "  file/{k}:\n    path: \"{{dir}}/{k}.pb\"\n    format: proto\n"
        ));
        pipelines.push_str(&format!(
            "    {signal}/{k}:\n      receivers: [otlp/{k}]\n      exporters: [file/{k}]\n"
        ));
    }
    Tern::start(&format!(
        "receivers:\n{receivers}exporters:\n{exporters}service:\n  pipelines:\n{pipelines}"
    ))
}

/// The agent (Tern's or the Collector's): one `load_balancing` exporter per
/// routing key, to the three gateways on that key's port.
fn routing_agent(ports: &[u16]) -> String {
    let mut exporters = String::new();
    let mut by_signal: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (k, ((signal, key), port)) in KEYS.iter().zip(ports).enumerate() {
        let hostnames: Vec<String> = GATEWAYS.iter().map(|ip| format!("{ip}:{port}")).collect();
        exporters.push_str(&format!(
            "  load_balancing/{k}:\n    routing_key: {key}\n    protocol:\n      otlp:\n        tls:\n          insecure: true\n    resolver:\n      static:\n        hostnames: [{}]\n",
            hostnames.join(", ")
        ));
        by_signal
            .entry(signal)
            .or_default()
            .push(format!("load_balancing/{k}"));
    }
    let mut pipelines = String::new();
    for (signal, names) in by_signal {
        pipelines.push_str(&format!(
            "    {signal}:\n      receivers: [otlp]\n      exporters: [{}]\n",
            names.join(", ")
        ));
    }
    format!("exporters:\n{exporters}service:\n  pipelines:\n{pipelines}")
}

/// The items (span ids, log bodies, metric name and point id) in a
/// gateway's file for routing key `k`.
fn routed_items(path: &Path, signal: &str) -> Vec<String> {
    let mut out = Vec::new();
    for record in proto_records(&read(path)) {
        match signal {
            "traces" => {
                let req = ExportTraceServiceRequest::decode(record).unwrap();
                for s in req
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                {
                    out.push(format!("{:x?}", s.span_id));
                }
            }
            "logs" => {
                let req = ExportLogsServiceRequest::decode(record).unwrap();
                for l in req
                    .resource_logs
                    .iter()
                    .flat_map(|r| &r.scope_logs)
                    .flat_map(|s| &s.log_records)
                {
                    out.push(format!("{:?}", l.body));
                }
            }
            _ => {
                let req = ExportMetricsServiceRequest::decode(record).unwrap();
                for m in req
                    .resource_metrics
                    .iter()
                    .flat_map(|r| &r.scope_metrics)
                    .flat_map(|s| &s.metrics)
                {
                    let points: Vec<&Vec<KeyValue>> = match &m.data {
                        Some(metric::Data::Gauge(g)) => {
                            g.data_points.iter().map(|p| &p.attributes).collect()
                        }
                        Some(metric::Data::Sum(s)) => {
                            s.data_points.iter().map(|p| &p.attributes).collect()
                        }
                        Some(metric::Data::Histogram(h)) => {
                            h.data_points.iter().map(|p| &p.attributes).collect()
                        }
                        _ => Vec::new(),
                    };
                    for attributes in points {
                        let id = attributes.iter().find(|a| a.key == "point");
                        out.push(format!("{} {:?}", m.name, id.and_then(|a| a.value.clone())));
                    }
                }
            }
        }
    }
    out
}

/// An agent under test: its OTLP/gRPC port, and how to stop it (flushing).
trait Agent {
    fn grpc(&self) -> u16;
    fn stop_flushing(&mut self);
}

impl Agent for Tern {
    fn grpc(&self) -> u16 {
        self.grpc
    }

    fn stop_flushing(&mut self) {
        assert!(self.stop().success(), "{}", self.logs());
    }
}

impl Agent for tern_e2e::refcol::RefCol {
    fn grpc(&self) -> u16 {
        self.grpc
    }

    fn stop_flushing(&mut self) {
        self.stop();
    }
}

/// (key index, item) -> gateways, after sending the routing traffic
/// through the agent `start` starts once the gateways listen.
async fn route_through<A: Agent>(
    ports: &[u16],
    start: impl FnOnce() -> A,
) -> (BTreeMap<(usize, String), BTreeSet<usize>>, A) {
    let mut gateways: Vec<Tern> = GATEWAYS
        .iter()
        .map(|ip| routing_gateway(ip, ports))
        .collect();
    let mut agent = start();
    for n in [3, 10] {
        for (path, body) in [
            (paths::TRACES, routing_traces(n).encode_to_vec()),
            (paths::LOGS, routing_logs(n).encode_to_vec()),
            (paths::METRICS, routing_metrics(n).encode_to_vec()),
        ] {
            let reply = grpc_call(agent.grpc(), path, body, None).await;
            assert_eq!(reply.code, 0, "{path}: {}", reply.message);
        }
    }
    agent.stop_flushing();
    let mut placed: BTreeMap<(usize, String), BTreeSet<usize>> = BTreeMap::new();
    for (g, gateway) in gateways.iter_mut().enumerate() {
        assert!(gateway.stop().success(), "{}", gateway.logs());
        for (k, (signal, _)) in KEYS.iter().enumerate() {
            for item in routed_items(&gateway.path(&format!("{k}.pb")), signal) {
                placed.entry((k, item)).or_default().insert(g);
            }
        }
    }
    (placed, agent)
}

/// The same traffic through Tern's `load_balancing` and the reference
/// Collector's, to the same three backends, for every routing key: each
/// span, log record and data point lands on the same backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routing_key_picks_the_backend_the_collector_picks() {
    let Some(bin) = tern_e2e::refcol::refcol_bin() else {
        println!("skipped: TERN_REFCOL is not set (tests/run.sh builds it where Go is installed)");
        return;
    };
    // The ring's positions come from the backends' addresses, whose ports
    // are drawn at random: a draw that puts every item of some key on one
    // backend cannot tell routings apart, so it is drawn again (at most
    // three times); Tern and the Collector must agree on every draw.
    const DRAWS: usize = 3;
    for draw in 1..=DRAWS {
        let ports: Vec<u16> = KEYS.iter().map(|_| free_port()).collect();
        let config = routing_agent(&ports);
        let (by_tern, _) = route_through(&ports, || Tern::start(&config)).await;
        let (by_refcol, refcol) =
            route_through(&ports, || tern_e2e::refcol::RefCol::start(&bin, &config)).await;
        let refcol_log = refcol.logs();
        let mut one_backend = Vec::new();
        for (k, (signal, key)) in KEYS.iter().enumerate() {
            let of = |placed: &BTreeMap<(usize, String), BTreeSet<usize>>| {
                placed
                    .iter()
                    .filter(|((i, _), _)| *i == k)
                    .map(|((_, item), g)| (item.clone(), g.clone()))
                    .collect::<BTreeMap<String, BTreeSet<usize>>>()
            };
            let (tern, refcol) = (of(&by_tern), of(&by_refcol));
            assert!(
                !refcol.is_empty(),
                "{signal} by {key}: nothing arrived; the Collector's log:\n{refcol_log}"
            );
            let differ: Vec<_> = refcol
                .iter()
                .filter(|(item, g)| tern.get(*item) != Some(*g))
                .map(|(item, g)| (item, g, tern.get(item)))
                .take(5)
                .collect();
            assert!(
                differ.is_empty() && tern.len() == refcol.len(),
                "{signal} by {key}: {} items placed, {} by the Collector; (item, Collector's, Tern's): {differ:?}",
                tern.len(),
                refcol.len()
            );
            let used: BTreeSet<usize> = refcol.values().flatten().copied().collect();
            if used.len() < 2 {
                one_backend.push(format!("{signal} by {key}"));
            }
        }
        if one_backend.is_empty() {
            return;
        }
        println!("draw {draw}: one backend only for {one_backend:?}; drawing new ports");
        assert!(
            draw < DRAWS,
            "{one_backend:?}: one backend only in {DRAWS} draws"
        );
    }
}
