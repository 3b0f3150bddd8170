//! Authentication through the real binary: the otlp receiver with
//! `auth: {authenticator: bearertokenauth}` on both protocols accepts a
//! good token and refuses a missing credential, a wrong scheme and a wrong
//! token with 401 / `UNAUTHENTICATED` and the Collector's messages, counts
//! each refusal, delivers nothing of them, lets CORS preflights through,
//! and picks up a rotated token file. A Tern agent sends to a Tern gateway
//! with a bearer token over TLS gRPC (`otlp_grpc` and `load_balancing`)
//! and with basic auth over HTTP.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use prost::Message;
use tern_e2e::{
    Backend, HttpConn, Step, Tern, free_port, grpc_call_headers, grpc_frame, paths, sample,
};

/// Refusals of the receiver's `transport` counted as unauthenticated.
fn refused(metrics: &str, transport: &str) -> Option<f64> {
    sample(
        metrics,
        "tern_receiver_requests_refused_total",
        &format!(r#"receiver="otlp",transport="{transport}",reason="unauthenticated""#),
    )
}

async fn grpc_export(port: u16, tag: u32, headers: &[(&str, &str)]) -> (i32, String) {
    let body = grpc_frame(&spans(tag, 2).encode_to_vec(), false);
    let r = grpc_call_headers(port, paths::TRACES, body, None, headers).await;
    (r.code, r.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_receiver_refuses_bad_credentials_and_follows_the_token_file() {
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, "first-token  the agents' token\n").unwrap();
    let mut tern = Tern::start(&format!(
        r#"
extensions:
  bearertokenauth:
    filename: {file}
receivers:
  otlp:
    protocols:
      grpc:
        auth: {{authenticator: bearertokenauth}}
      http:
        auth: {{authenticator: bearertokenauth}}
        cors:
          allowed_origins: [https://app.example]
exporters:
  file:
    path: {{dir}}/out.pb
    format: proto
service:
  extensions: [health_check, bearertokenauth]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"#,
        file = token_file.display()
    ));

    // HTTP: refused with 401 and a google.rpc.Status, before the body is read.
    let mut http = HttpConn::connect(tern.http).await;
    let proto = ("content-type", "application/x-protobuf");
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[], "missing or empty authorization header: Authorization"),
        (
            &[("authorization", "bearer first-token")],
            "provided authorization does not match expected scheme or token",
        ),
        (
            &[("authorization", "Bearer second-token")],
            "provided authorization does not match expected scheme or token",
        ),
    ];
    for (tag, (headers, message)) in (1..).zip(cases) {
        let mut h = vec![proto];
        h.extend_from_slice(headers);
        let r = http
            .send("POST", "/v1/traces", &h, spans(tag, 2).encode_to_vec())
            .await;
        assert_eq!(r.status, 401, "{headers:?}");
        let s = status::RpcStatus::decode(r.body).unwrap();
        assert_eq!((s.code, s.message.as_str()), (16, message));
    }
    // A JSON request is answered in JSON.
    let json = [("content-type", "application/json")];
    let r = http.send("POST", "/v1/traces", &json, b"{}".to_vec()).await;
    assert_eq!(r.status, 401);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["code"], 16, "{body}");
    // No path is exempt: an unknown path is 401 too, not 404.
    let r = http.send("GET", "/nothing", &[], Vec::new()).await;
    assert_eq!(r.status, 401);
    // A CORS preflight needs no credentials; a refusal still carries CORS headers.
    let origin = ("origin", "https://app.example");
    let preflight = [origin, ("access-control-request-method", "POST")];
    let r = http
        .send("OPTIONS", "/v1/traces", &preflight, Vec::new())
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.status);
    let r = http
        .send(
            "POST",
            "/v1/traces",
            &[proto, origin],
            spans(9, 1).encode_to_vec(),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let good = [proto, ("authorization", "Bearer first-token")];
    let r = http
        .send("POST", "/v1/traces", &good, spans(10, 2).encode_to_vec())
        .await;
    assert_eq!(r.status, 200);

    // gRPC: UNAUTHENTICATED with the same messages.
    let (code, message) = grpc_export(tern.grpc, 20, &[]).await;
    assert_eq!(
        (code, message.as_str()),
        (16, "missing or empty authorization header: Authorization")
    );
    let (code, _) = grpc_export(tern.grpc, 21, &[("authorization", "Bearer nope")]).await;
    assert_eq!(code, 16);
    let (code, _) = grpc_export(tern.grpc, 22, &[("authorization", "Bearer first-token")]).await;
    assert_eq!(code, 0);

    let m = tern
        .self_metrics_until("the refusals to be counted", |m| {
            refused(m, "http") == Some(6.0) && refused(m, "grpc") == Some(2.0)
        })
        .await;
    assert_eq!(
        sample(
            &m,
            "otelcol_receiver_accepted_spans_total",
            r#"receiver="otlp",transport="http""#
        ),
        Some(2.0)
    );

    // Rotation: the new token is taken up, the old one refused from then on.
    std::fs::write(&token_file, "second-token\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) =
            grpc_export(tern.grpc, 30, &[("authorization", "Bearer second-token")]).await;
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated token was never accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _) = grpc_export(tern.grpc, 31, &[("authorization", "Bearer first-token")]).await;
    assert_eq!(code, 16, "the old token is refused after rotation");
    // An emptied file keeps the last token.
    std::fs::write(&token_file, "").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, _) = grpc_export(tern.grpc, 32, &[("authorization", "Bearer second-token")]).await;
    assert_eq!(code, 0, "an empty token file keeps the last token");

    assert!(tern.stop().success());
    let delivered = span_ids_in(&read(&tern.path("out.pb")));
    let want = sorted_span_ids(&[spans(10, 2), spans(22, 2), spans(30, 2), spans(32, 2)]);
    assert_eq!(
        delivered, want,
        "only the authenticated requests are delivered"
    );
    assert!(tern.logs().contains("refused unauthenticated request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_authenticates_to_a_gateway_with_bearer_over_tls_and_basic_auth() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let c = certs.path().display().to_string();
    let (grpc_port, http_port) = (free_port(), free_port());
    let gateway = format!(
        r#"
extensions:
  bearertokenauth:
    tokens: [agent-token, other-token]
  basicauth:
    htpasswd:
      inline: |
        agent:{hash}
receivers:
  otlp/grpc:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
        tls:
          cert_file: {c}/server.pem
          key_file: {c}/server.key
        auth:
          authenticator: bearertokenauth
  otlp/http:
    protocols:
      http:
        endpoint: 127.0.0.1:{http_port}
        auth:
          authenticator: basicauth
exporters:
  file/grpc:
    path: {{dir}}/grpc.pb
    format: proto
  file/http:
    path: {{dir}}/http.pb
    format: proto
service:
  extensions: [health_check, bearertokenauth, basicauth]
  pipelines:
    traces/grpc:
      receivers: [otlp/grpc]
      exporters: [file/grpc]
    traces/http:
      receivers: [otlp/http]
      exporters: [file/http]
"#,
        hash = apr1("agent-password"),
    );
    let agent = format!(
        r#"
extensions:
  bearertokenauth/client:
    token: agent-token
  basicauth/client:
    client_auth:
      username: agent
      password: agent-password
  basicauth/wrong:
    client_auth:
      username: agent
      password: guessed
exporters:
  otlp_grpc:
    endpoint: localhost:{grpc_port}
    tls:
      ca_file: {c}/ca.pem
    auth:
      authenticator: bearertokenauth/client
  otlp_http:
    endpoint: http://127.0.0.1:{http_port}
    auth:
      authenticator: basicauth/client
  load_balancing:
    protocol:
      otlp:
        tls:
          ca_file: {c}/ca.pem
        auth:
          authenticator: bearertokenauth/client
    resolver:
      static:
        hostnames: [localhost:{grpc_port}]
  otlp_http/wrong:
    endpoint: http://127.0.0.1:{http_port}
    retry_on_failure:
      enabled: false
    auth:
      authenticator: basicauth/wrong
service:
  extensions: [health_check, bearertokenauth/client, basicauth/client, basicauth/wrong]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_grpc, load_balancing, otlp_http, otlp_http/wrong]
"#
    );
    let mut gw = Tern::start(&gateway);
    let mut up = Tern::start(&agent);
    let req = spans(7, 5);
    let r = HttpConn::connect(up.http)
        .await
        .post_proto("/v1/traces", req.encode_to_vec())
        .await;
    assert_eq!(r.status, 200);
    let m = gw
        .self_metrics_until(
            "both transports to deliver and the wrong password to be refused",
            |m| {
                let accepted = |r: &str, t: &str| {
                    sample(
                        m,
                        "otelcol_receiver_accepted_spans_total",
                        &format!(r#"receiver="{r}",transport="{t}""#),
                    )
                };
                accepted("otlp/grpc", "grpc") == Some(10.0)
                    && accepted("otlp/http", "http") == Some(5.0)
                    && sample(
                        m,
                        "tern_receiver_requests_refused_total",
                        r#"receiver="otlp/http",transport="http",reason="unauthenticated""#,
                    ) == Some(1.0)
            },
        )
        .await;
    assert!(m.contains("tern_receiver_requests_refused_total"));
    assert!(up.stop().success());
    assert!(gw.stop().success());
    let want = sorted_span_ids(std::slice::from_ref(&req));
    // Over gRPC twice: from `otlp_grpc` and from `load_balancing`.
    assert_eq!(
        span_ids_in(&read(&gw.path("grpc.pb"))),
        sorted_span_ids(&[req.clone(), req])
    );
    assert_eq!(span_ids_in(&read(&gw.path("http.pb"))), want);
    let logs = up.logs();
    assert!(logs.contains("exporter=otlp_http/wrong"), "{logs}");
}

/// An htpasswd hash of `password` in Apache's default format (`$apr1$`),
/// made by the `openssl` command (so the test does not use Tern's code).
fn apr1(password: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args(["passwd", "-apr1", password])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_write_sends_the_token_of_its_file_as_it_changes() {
    let backend = Backend::start(vec![], Step::status(200)).await;
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, "v1\n").unwrap();
    let tern = Tern::start(&format!(
        r#"
extensions:
  bearertokenauth:
    filename: {file}
    scheme: Token
exporters:
  prometheus_remote_write:
    endpoint: http://127.0.0.1:{port}/api/v1/write
    auth:
      authenticator: bearertokenauth
service:
  extensions: [health_check, bearertokenauth]
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [prometheus_remote_write]
"#,
        file = token_file.display(),
        port = backend.port
    ));
    let send = |tag: u32| async move {
        let r = HttpConn::connect(tern.http)
            .await
            .post_proto("/v1/metrics", gauges(tag, 1).encode_to_vec())
            .await;
        assert_eq!(r.status, 200);
    };
    let seen = |value: &'static str| {
        let backend = &backend;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let got = backend.received().iter().any(|r| {
                    r.headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(value)
                });
                if got {
                    return;
                }
                assert!(Instant::now() < deadline, "no request with `{value}`");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    send(1).await;
    seen("Token v1").await;
    std::fs::write(&token_file, "v2\n").unwrap();
    // Send until a request carries the new token.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut tag = 2;
    while !backend.received().iter().any(|r| {
        r.headers
            .get("authorization")
            .is_some_and(|v| v == "Token v2")
    }) {
        assert!(Instant::now() < deadline, "the new token was never sent");
        send(tag).await;
        tag += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    seen("Token v2").await;
    assert!(
        backend
            .received()
            .iter()
            .all(|r| r.headers.contains_key("authorization")),
        "every request carries the token"
    );
}
