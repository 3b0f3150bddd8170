//! Bad input gets the OTLP status the specification gives, a message, a
//! counter, and the process keeps serving everyone else.

#![allow(clippy::unwrap_used)]

mod common;

use common::status::RpcStatus;
use common::*;
use prost::Message;
use tern_e2e::{HttpConn, Tern, grpc_call, paths, sample};

const CONFIG: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
        max_recv_msg_size_mib: 1
      http:
        max_request_body_size: 1048576
exporters:
  file:
    path: {dir}/out.jsonl
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
    logs:
      receivers: [otlp]
      exporters: [file]
"#;

fn proto_status(body: &[u8]) -> RpcStatus {
    RpcStatus::decode(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_follow_the_spec_and_nothing_else_is_lost() {
    let mut tern = Tern::start(CONFIG);
    let mut c = HttpConn::connect(tern.http).await;
    let json = [("content-type", "application/json")];

    // Malformed protobuf -> 400 with a google.rpc.Status saying why.
    let r = c.post_proto("/v1/traces", vec![0x0a, 0xff, 0x01]).await;
    assert_eq!(r.status, 400);
    let s = proto_status(&r.body);
    assert_eq!(s.code, 3);
    assert!(s.message.contains("malformed protobuf"), "{}", s.message);

    // Malformed JSON -> 400 with a JSON status.
    let r = c
        .send(
            "POST",
            "/v1/traces",
            &json,
            b"{\"resourceSpans\": 7}".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["code"], 3);
    assert!(v["message"].as_str().unwrap().contains("invalid OTLP JSON"));

    // Wrong content type -> 415.
    let r = c
        .send(
            "POST",
            "/v1/traces",
            &[("content-type", "text/plain")],
            b"hi".to_vec(),
        )
        .await;
    assert_eq!(r.status, 415);
    assert!(proto_status(&r.body).message.contains("Content-Type"));

    // Unknown path -> 404; wrong method -> 405 with Allow.
    let r = c.post_proto("/v1/profiles", Vec::new()).await;
    assert_eq!(r.status, 404);
    let r = c.send("GET", "/v1/traces", &[], Vec::new()).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));

    // A signal with no pipeline on this receiver -> 404.
    let r = c
        .post_proto("/v1/metrics", gauges(1, 1).encode_to_vec())
        .await;
    assert_eq!(r.status, 404);

    // Too large, plain -> 413.
    let big = spans(1, 1).encode_to_vec().repeat(20_000);
    assert!(big.len() > 1 << 20);
    let r = c.post_proto("/v1/traces", big).await;
    assert_eq!(r.status, 413);
    assert_eq!(proto_status(&r.body).code, 8);

    // A gzip bomb: 256 MiB of zeros in ~256 KiB; refused at 1 MiB.
    let bomb = gzip(&vec![0u8; 256 << 20]);
    let mut c2 = HttpConn::connect(tern.http).await;
    let r = c2
        .send(
            "POST",
            "/v1/logs",
            &[
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            bomb,
        )
        .await;
    assert_eq!(r.status, 413);
    // Corrupt gzip -> 400; unknown encoding -> 415.
    let r = c2
        .send(
            "POST",
            "/v1/logs",
            &[
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            b"nope".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c2
        .send(
            "POST",
            "/v1/logs",
            &[
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "br"),
            ],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.status, 415);

    // Everyone else is still served (the 413 closed `c`: its body was not read).
    let r = c2
        .post_proto("/v1/traces", spans(2, 3).encode_to_vec())
        .await;
    assert_eq!(r.status, 200);
    let r = HttpConn::connect(tern.http)
        .await
        .post_proto("/v1/logs", logs(2, 4).encode_to_vec())
        .await;
    assert_eq!(r.status, 200);

    let m = tern.self_metrics().await;
    let l = |reason: &str| format!(r#"receiver="otlp",transport="http",reason="{reason}""#);
    for (reason, n) in [
        ("malformed", 2.0),
        ("unsupported_media_type", 1.0),
        ("unknown_path", 1.0),
        ("method_not_allowed", 1.0),
        ("no_pipeline", 1.0),
        ("too_large", 2.0),
        ("bad_compression", 1.0),
        ("unsupported_encoding", 1.0),
    ] {
        assert_eq!(
            sample(&m, "tern_receiver_requests_refused_total", &l(reason)),
            Some(n),
            "{reason}\n{m}"
        );
    }
    assert_eq!(
        sample(
            &m,
            "otelcol_receiver_accepted_spans_total",
            r#"receiver="otlp",transport="http""#
        ),
        Some(3.0)
    );
    assert!(tern.stop().success());
    let out = std::fs::read_to_string(tern.path("out.jsonl")).unwrap();
    assert_eq!(
        out.lines().count(),
        2,
        "only the two good requests were written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_errors_follow_the_spec() {
    let mut tern = Tern::start(CONFIG);
    // Malformed -> INVALID_ARGUMENT with a reason.
    let r = grpc_call(tern.grpc, paths::TRACES, vec![0x0a, 0x05, 0x01], None).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.message.contains("malformed protobuf"), "{r:?}");
    // Too large -> RESOURCE_EXHAUSTED; a zstd bomb too.
    let big = spans(1, 1).encode_to_vec().repeat(20_000);
    let r = grpc_call(tern.grpc, paths::TRACES, big, None).await;
    assert_eq!(r.code, 8, "{r:?}");
    let bomb = zstd(&vec![0u8; 64 << 20]);
    let r = grpc_call(tern.grpc, paths::LOGS, bomb, Some("zstd")).await;
    assert_eq!(r.code, 8, "{r:?}");
    // Unknown method and a signal without pipeline -> UNIMPLEMENTED.
    let r = grpc_call(
        tern.grpc,
        "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
        vec![],
        None,
    )
    .await;
    assert_eq!(r.code, 12, "{r:?}");
    let r = grpc_call(
        tern.grpc,
        paths::METRICS,
        gauges(1, 1).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.code, 12, "{r:?}");
    // Still serving.
    let r = grpc_call(tern.grpc, paths::TRACES, spans(3, 2).encode_to_vec(), None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let m = tern.self_metrics().await;
    let l = |reason: &str| format!(r#"receiver="otlp",transport="grpc",reason="{reason}""#);
    assert_eq!(
        sample(&m, "tern_receiver_requests_refused_total", &l("malformed")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "tern_receiver_requests_refused_total", &l("too_large")),
        Some(2.0),
        "{m}"
    );
    assert!(tern.stop().success());
}
