//! TLS between Tern instances: the receiver serves TLS (optionally requiring
//! client certificates), the `otlp` and `otlphttp` exporters verify it with
//! `ca_file`, present `cert_file`/`key_file`, or skip verification; a server
//! that cannot be verified is a counted, logged failure. Certificates are
//! made by the `openssl` command for each run.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use prost::Message;
use tern_e2e::{Tern, free_port, grpc_call, paths, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporters_speak_tls_and_mutual_tls_to_a_tls_receiver() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let c = certs.path().display().to_string();
    let (grpc_port, https_port) = (free_port(), free_port());
    let downstream = format!(
        r#"
receivers:
  otlp/grpc:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
        tls:
          cert_file: {c}/server.pem
          key_file: {c}/server.key
          client_ca_file: {c}/ca.pem
  otlp/https:
    protocols:
      http:
        endpoint: 127.0.0.1:{https_port}
        tls:
          cert_file: {c}/server.pem
          key_file: {c}/server.key
exporters:
  file/grpc:
    path: {{dir}}/grpc.pb
    format: proto
  file/https:
    path: {{dir}}/https.pb
    format: proto
service:
  pipelines:
    traces/grpc:
      receivers: [otlp/grpc]
      exporters: [file/grpc]
    traces/https:
      receivers: [otlp/https]
      exporters: [file/https]
"#
    );
    let upstream = format!(
        r#"
exporters:
  otlp/mtls:
    endpoint: localhost:{grpc_port}
    tls:
      ca_file: {c}/ca.pem
      cert_file: {c}/client.pem
      key_file: {c}/client.key
  otlp/nocert:
    endpoint: localhost:{grpc_port}
    tls:
      ca_file: {c}/ca.pem
    retry_on_failure:
      enabled: false
  otlphttp/ca:
    endpoint: https://localhost:{https_port}
    tls:
      ca_file: {c}/ca.pem
  otlphttp/skip:
    endpoint: https://127.0.0.1:{https_port}
    tls:
      insecure_skip_verify: true
  otlphttp/unverified:
    endpoint: https://localhost:{https_port}
    retry_on_failure:
      enabled: false
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp/mtls, otlp/nocert, otlphttp/ca, otlphttp/skip, otlphttp/unverified]
"#
    );
    let mut down = Tern::start(&downstream);
    let mut up = Tern::start(&upstream);
    let req = spans(7, 10);
    assert_eq!(
        grpc_call(up.grpc, paths::TRACES, req.encode_to_vec(), None)
            .await
            .code,
        0
    );
    assert!(up.stop().success());
    let m = down.self_metrics().await;
    assert!(down.stop().success());

    let ids = |file: &str| span_ids_in(&read(&down.path(file)));
    let mut want: Vec<Vec<u8>> = req.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| s.span_id.clone())
        .collect();
    want.sort();
    // mTLS gRPC: once. HTTPS: once verified with the CA, once unverified.
    assert_eq!(ids("grpc.pb"), want);
    let mut twice: Vec<Vec<u8>> = want.iter().chain(want.iter()).cloned().collect();
    twice.sort();
    assert_eq!(ids("https.pb"), twice);
    assert_eq!(
        sample(
            &m,
            "otelcol_receiver_accepted_spans_total",
            r#"receiver="otlp/grpc",transport="grpc""#
        ),
        Some(10.0)
    );
    // Without a client certificate the mTLS server refuses; with the system
    // roots our test CA is unknown. Both are counted and logged.
    let logs = up.logs();
    assert!(logs.contains("exporter=otlp/nocert"), "{logs}");
    assert!(logs.contains("exporter=otlphttp/unverified"), "{logs}");
    assert!(
        logs.contains("UnknownIssuer") || logs.contains("invalid peer certificate"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporters_offer_only_the_tls_versions_they_are_given() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let c = certs.path().display().to_string();
    let (old_port, new_port) = (free_port(), free_port());
    let downstream = format!(
        r#"
receivers:
  otlp/old:
    protocols:
      http:
        endpoint: 127.0.0.1:{old_port}
        tls: {{cert_file: {c}/server.pem, key_file: {c}/server.key, max_version: "1.2"}}
  otlp/new:
    protocols:
      http:
        endpoint: 127.0.0.1:{new_port}
        tls: {{cert_file: {c}/server.pem, key_file: {c}/server.key, min_version: "1.3"}}
exporters:
  file/old:
    path: {{dir}}/old.pb
    format: proto
  file/new:
    path: {{dir}}/new.pb
    format: proto
service:
  pipelines:
    traces/old:
      receivers: [otlp/old]
      exporters: [file/old]
    traces/new:
      receivers: [otlp/new]
      exporters: [file/new]
"#
    );
    let exporter = |name: &str, port: u16, versions: &str| {
        format!(
            "  otlphttp/{name}:\n    endpoint: https://localhost:{port}\n    \
             tls: {{ca_file: {c}/ca.pem{versions}}}\n    retry_on_failure:\n      enabled: false\n"
        )
    };
    let upstream = format!(
        "exporters:\n{}{}{}{}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      \
         exporters: [otlphttp/to_old, otlphttp/to_new, otlphttp/only13, otlphttp/only12]\n",
        exporter("to_old", old_port, ""),
        exporter("to_new", new_port, ""),
        exporter("only13", old_port, r#", min_version: "1.3""#),
        exporter("only12", new_port, r#", max_version: "1.2""#),
    );
    let mut down = Tern::start(&downstream);
    let mut up = Tern::start(&upstream);
    let req = spans(3, 4);
    let answer = grpc_call(up.grpc, paths::TRACES, req.encode_to_vec(), None).await;
    assert_eq!(answer.code, 0);
    assert!(up.stop().success());
    assert!(down.stop().success());
    // Offering both versions reaches either server once; offering only a
    // version the server refuses reaches nothing and is logged.
    let ids = |file: &str| span_ids_in(&read(&down.path(file)));
    assert_eq!(ids("old.pb").len(), 4);
    assert_eq!(ids("new.pb").len(), 4);
    let logs = up.logs();
    assert!(logs.contains("exporter=otlphttp/only13"), "{logs}");
    assert!(logs.contains("exporter=otlphttp/only12"), "{logs}");
    assert!(!logs.contains("exporter=otlphttp/to_old"), "{logs}");
    assert!(!logs.contains("exporter=otlphttp/to_new"), "{logs}");
}
