//! `tls.reload_interval` on an exporter: a Tern agent exports over mutual
//! TLS gRPC to a gateway; the gateway is replaced, on the same port, by one
//! whose certificate and trusted client CA come from a new CA, and the
//! agent's `ca_file`, `cert_file` and `key_file` are rewritten with the new
//! CA's files under the running agent. The agent reads them again and its
//! next export reaches the new gateway; without the reload it would trust
//! only the old CA and present the old client certificate, and nothing
//! would get through.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use prost::Message;
use tern_e2e::{HttpConn, Tern, free_port};

/// A gateway on `port` serving `certs`' server certificate and requiring
/// client certificates of `certs`' CA.
fn gateway(port: u16, certs: &Path) -> Tern {
    let c = certs.display();
    Tern::start(&format!(
        r#"
receivers:
  otlp/mtls:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{port}
        tls:
          cert_file: {c}/server.pem
          key_file: {c}/server.key
          client_ca_file: {c}/ca.pem
exporters:
  file:
    path: '{{dir}}/out.pb'
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp, otlp/mtls]
      exporters: [file]
"#
    ))
}

fn install(from: &Path, to: &Path) {
    for f in ["ca.pem", "client.pem", "client.key"] {
        // Written beside, then renamed: the agent never reads half a file.
        let tmp = to.join(format!("{f}.new"));
        std::fs::copy(from.join(f), &tmp).unwrap();
        std::fs::rename(&tmp, to.join(f)).unwrap();
    }
}

/// Waits (bounded) until `gw`'s output holds the spans of `tag`.
async fn delivered(gw: &Tern, tag: u32) -> bool {
    let mut want = span_ids(&spans(tag, 3));
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = span_ids_in(&read(&gw.path("out.pb")));
        if want.iter().all(|id| got.contains(id)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exporter_reads_rotated_ca_and_client_certificate_files_again() {
    let (old, new, live) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    make_certs(old.path());
    make_certs(new.path());
    install(old.path(), live.path());
    let port = free_port();
    let mut gw = gateway(port, old.path());
    let l = live.path().display();
    let mut agent = Tern::start(&format!(
        r#"
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:{port}
    tls:
      ca_file: {l}/ca.pem
      cert_file: {l}/client.pem
      key_file: {l}/client.key
      reload_interval: 100ms
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 200ms
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_grpc]
"#
    ));
    let mut http = HttpConn::connect(agent.http).await;
    let proto = ("content-type", "application/x-protobuf");
    let r = http
        .send("POST", "/v1/traces", &[proto], spans(1, 3).encode_to_vec())
        .await;
    assert_eq!(r.status, 200);
    assert!(delivered(&gw, 1).await, "{}", agent.logs());
    assert!(gw.stop().success());

    // New CA everywhere: the gateway restarts with it, the agent's files
    // are replaced under it.
    install(new.path(), live.path());
    let mut gw = gateway(port, new.path());
    let r = http
        .send("POST", "/v1/traces", &[proto], spans(2, 3).encode_to_vec())
        .await;
    assert_eq!(r.status, 200);
    let ok = delivered(&gw, 2).await;
    let logs = agent.logs();
    assert!(agent.stop().success());
    assert!(gw.stop().success());
    assert!(ok, "{logs}");
}
