//! The `loadbalancing` exporter end to end: an agent Tern in front of
//! gateway Terns on 127.0.0.2-4 (one port, as behind a headless Service),
//! each gateway writing what it receives to a file. With the `static`
//! resolver every trace lands on exactly one gateway; with the `dns`
//! resolver asking a real DNS server (dnsmasq, whose records the test
//! changes), a gateway that goes down and then leaves the records loses
//! nothing that was acknowledged: its share is routed to the others, and
//! only its traces move; the `k8s` resolver follows the EndpointSlices a
//! local server serves as the Kubernetes API does (list, then a watch
//! that drops and must resume from the last resourceVersion).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tern_e2e::{Tern, free_port, grpc_call, paths, sample};
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
    let metrics = agent
        .self_metrics_until("every span sent", |m| {
            sample(
                m,
                "otelcol_exporter_sent_spans_total",
                r#"exporter="loadbalancing""#,
            ) == Some(sent.len() as f64)
        })
        .await;
    assert_eq!(
        sample(
            &metrics,
            "otelcol_loadbalancer_num_backends",
            r#"resolver="static""#
        ),
        Some(3.0)
    );
    for h in &hostnames {
        let ok = sample(
            &metrics,
            "otelcol_loadbalancer_backend_outcome_total",
            &format!(r#"endpoint="{h}",success="true""#),
        );
        assert!(ok.unwrap_or(0.0) > 0.0, "{h}: {metrics}");
    }
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while on_live(&files) < base + for_others {
        assert!(
            std::time::Instant::now() < deadline,
            "the live gateways did not get their share of phase 2"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

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

/// What the test's Kubernetes API saw: the path of each call.
type Calls = mpsc::UnboundedSender<String>;

/// Serves the EndpointSlice list (`list`) and watches: each watch streams
/// the lines sent on `events` until a `None`, which drops it.
async fn kubernetes_api(
    listener: tokio::net::TcpListener,
    list: String,
    calls: Calls,
    events: mpsc::UnboundedReceiver<Option<String>>,
) {
    let events = std::sync::Arc::new(tokio::sync::Mutex::new(events));
    loop {
        let (mut stream, _) = listener.accept().await.unwrap();
        let (list, calls, events) = (list.clone(), calls.clone(), events.clone());
        tokio::spawn(async move {
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
            let _ = calls.send(path.clone());
            if !path.contains("watch=1") {
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{list}",
                    list.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                return;
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            let mut events = events.lock().await;
            while let Some(Some(line)) = events.recv().await {
                let chunk = format!("{:x}\r\n{line}\r\n", line.len());
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            // Dropped without the closing chunk, as a broken connection.
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_resolver_follows_endpoint_slices_and_resumes_its_watch() {
    let port = free_port();
    let mut gw = gateway("127.0.0.2", port);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let list = serde_json::json!({
        "kind": "EndpointSliceList",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"resourceVersion": "10"},
        "items": [slice("gw-a", 9, &[("127.0.0.2", true), ("127.0.0.3", true)])]
    })
    .to_string();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    tokio::spawn(kubernetes_api(listener, list, calls_tx, events_rx));
    let mut agent = Tern::start_with_env(
        &[("TERN_K8S_API", &format!("http://{api}"))],
        &agent_config(&format!(
            "      k8s:\n        service: gw.obs\n        ports: [{port}]\n        timeout: 30s"
        )),
    );
    let backends = |n: f64| {
        move |m: &str| {
            sample(m, "otelcol_loadbalancer_num_backends", r#"resolver="k8s""#) == Some(n)
        }
    };
    let first = calls.recv().await.unwrap();
    assert!(
        first.starts_with("/apis/discovery.k8s.io/v1/namespaces/obs/endpointslices?")
            && first.contains("labelSelector=kubernetes.io%2Fservice-name%3Dgw")
            && !first.contains("watch=1"),
        "{first}"
    );
    agent
        .self_metrics_until("2 backends from the list", backends(2.0))
        .await;
    let watch = calls.recv().await.unwrap();
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
    let resumed = calls.recv().await.unwrap();
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
        g.self_metrics_until("every trace decided", |m| {
            let p = r#"processor="tail_sampling""#;
            sample(
                m,
                "otelcol_processor_tail_sampling_new_trace_id_received_total",
                p,
            )
            .is_some_and(|n| n > 0.0)
                && sample(
                    m,
                    "otelcol_processor_tail_sampling_sampling_traces_on_memory",
                    p,
                ) == Some(0.0)
        })
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
