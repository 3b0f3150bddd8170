//! The `oidc` extension through the real binary, where no provider
//! answers: a request with a well-formed token is answered `503` /
//! `UNAVAILABLE` (retryable: the keys have not loaded) and counted as
//! `auth_unavailable`; a request without a token, or with one that is not
//! a JWT, is refused `401` / `UNAUTHENTICATED` with a fixed message that
//! reveals nothing, counted as `unauthenticated`; nothing reaches the
//! pipeline. Valid, expired, wrongly addressed and rotated tokens are
//! covered with real clients in tests/python/test_oidc.py.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::*;
use prost::Message;
use tern_e2e::{HttpConn, Tern, free_port, grpc_call_headers, grpc_frame, paths, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_provider_oidc_answers_retry_later_and_refuses_bad_tokens() {
    // Nothing listens on the issuer's port.
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let mut tern = Tern::start(&format!(
        r#"
extensions:
  oidc:
    issuer_url: {issuer}
    audience: tern
receivers:
  otlp:
    protocols:
      grpc:
        auth: {{authenticator: oidc}}
      http:
        auth: {{authenticator: oidc}}
exporters:
  file:
    path: '{{dir}}/out.pb'
    format: proto
service:
  extensions: [health_check, oidc]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"#
    ));
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let jwt = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256","kid":"k1"}"#),
        b64(&format!(
            r#"{{"iss":"{issuer}","aud":"tern","sub":"s","exp":4000000000}}"#
        )),
        b64("signature")
    );
    let bearer = format!("Bearer {jwt}");
    let proto = ("content-type", "application/x-protobuf");
    let mut http = HttpConn::connect(tern.http).await;
    let body = || spans(1, 2).encode_to_vec();

    let r = http
        .send(
            "POST",
            "/v1/traces",
            &[proto, ("authorization", &bearer)],
            body(),
        )
        .await;
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    let s = status::RpcStatus::decode(r.body).unwrap();
    assert_eq!(
        (s.code, s.message.as_str()),
        (14, "authentication is not available yet; retry later")
    );
    let g = grpc_call_headers(
        tern.grpc,
        paths::TRACES,
        grpc_frame(&body(), false),
        None,
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(g.code, 14);

    for headers in [
        vec![proto],
        vec![proto, ("authorization", "Bearer not-a-jwt")],
    ] {
        let r = http.send("POST", "/v1/traces", &headers, body()).await;
        assert_eq!(r.status, 401);
        let s = status::RpcStatus::decode(r.body).unwrap();
        assert_eq!(
            (s.code, s.message.as_str()),
            (16, "authentication didn't succeed")
        );
    }
    let g = grpc_call_headers(
        tern.grpc,
        paths::TRACES,
        grpc_frame(&body(), false),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (g.code, g.message.as_str()),
        (16, "authentication didn't succeed")
    );

    let m = tern.self_metrics().await;
    assert!(tern.stop().success());
    let count = |transport: &str, reason: &str| {
        sample(
            &m,
            "tern_receiver_requests_refused_total",
            &format!(r#"receiver="otlp",transport="{transport}",reason="{reason}""#),
        )
    };
    assert_eq!(count("http", "auth_unavailable"), Some(1.0));
    assert_eq!(count("grpc", "auth_unavailable"), Some(1.0));
    assert_eq!(count("http", "unauthenticated"), Some(2.0));
    assert_eq!(count("grpc", "unauthenticated"), Some(1.0));
    assert!(
        read(&tern.path("out.pb")).is_empty(),
        "nothing reached the pipeline"
    );
    let logs = tern.logs();
    assert!(
        logs.contains("cannot load the OpenID provider's keys"),
        "{logs}"
    );
    assert!(
        logs.contains("refused unauthenticated request"),
        "refusals are logged (at most one line a second): {logs}"
    );
}
