//! Connections against the real binary: a listener serves at most
//! `max_connections` at once and holds further clients until one closes,
//! counting it; a gRPC unary call carrying two messages
//! is refused as a protocol violation instead of answered OK with the
//! second dropped. The timeouts (minutes by default) are proven on a
//! virtual clock in collector/src/serve.rs and the receivers' unit tests.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use prost::Message;
use tern_e2e::{Tern, grpc_call, grpc_call_body, grpc_frame, paths, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
exporters:
  file:
    path: {dir}/out.pb
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"#;

/// The HTTP server's `max_connections` in [`CAPPED`].
const MAX_CONNECTIONS: usize = 16;

/// [`CONFIG`] with the HTTP server capped at [`MAX_CONNECTIONS`].
const CAPPED: &str = r#"
receivers:
  otlp:
    protocols:
      http:
        max_connections: 16
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_with_two_messages_is_refused_and_nothing_is_delivered() {
    let mut tern = Tern::start(CONFIG);
    let first = spans(1, 2).encode_to_vec();
    let second = spans(2, 3).encode_to_vec();
    let body = [grpc_frame(&first, false), grpc_frame(&second, false)].concat();

    let r = grpc_call_body(tern.grpc, paths::TRACES, Bytes::from(body), None).await;
    assert_eq!(r.code, 13, "INTERNAL, as gRPC's servers answer: {r:?}");
    assert!(r.message.contains("one request message"), "{}", r.message);

    // One message is fine, and is the only thing delivered.
    let ok = grpc_call(tern.grpc, paths::TRACES, spans(3, 1).encode_to_vec(), None).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    let labels = r#"receiver="otlp",transport="grpc""#;
    let text = tern
        .self_metrics_until("the good call accepted", |t| {
            sample(t, "otelcol_receiver_accepted_spans_total", labels) == Some(1.0)
        })
        .await;
    assert_eq!(
        sample(
            &text,
            "tern_receiver_requests_refused_total",
            &format!(r#"{labels},reason="multiple_messages""#)
        ),
        Some(1.0)
    );
    assert!(tern.stop().success());
    assert_eq!(
        span_ids_in(&read(&tern.path("out.pb"))),
        sorted_span_ids([&spans(3, 1)])
    );
}

/// Reads from `conn` until it holds a whole HTTP/1.1 answer head.
async fn answer_head(conn: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_clients_wait_until_one_closes() {
    let tern = Tern::start_layered(&[CONFIG, CAPPED]);
    let labels = r#"receiver="otlp",transport="http""#;
    let mut held = Vec::with_capacity(MAX_CONNECTIONS);
    for _ in 0..MAX_CONNECTIONS {
        held.push(TcpStream::connect(("127.0.0.1", tern.http)).await.unwrap());
    }
    tern.self_metrics_until("the listener at its cap", |t| {
        sample(t, "tern_receiver_connections_open", labels) == Some(MAX_CONNECTIONS as f64)
            && sample(t, "tern_receiver_connection_limit_reached_total", labels) == Some(1.0)
    })
    .await;

    // One more client connects (the kernel queues it) and sends a request:
    // not served while the cap holds.
    let body = spans(1, 1).encode_to_vec();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut waiting = TcpStream::connect(("127.0.0.1", tern.http)).await.unwrap();
    waiting
        .write_all(&[head.as_bytes(), &body].concat())
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf))
            .await
            .is_err(),
        "answered above the cap"
    );
    let text = tern.self_metrics().await;
    assert_eq!(
        sample(&text, "tern_receiver_connections_open", labels),
        Some(MAX_CONNECTIONS as f64)
    );

    // One held connection closes: the waiting client is served.
    drop(held.pop());
    let answer = tokio::time::timeout(Duration::from_secs(10), answer_head(&mut waiting))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let text = tern
        .self_metrics_until("the closed connection counted", |t| {
            sample(
                t,
                "tern_receiver_connections_closed_total",
                &format!(r#"{labels},reason="closed""#),
            ) == Some(1.0)
        })
        .await;
    assert_eq!(
        sample(&text, "otelcol_receiver_accepted_spans_total", labels),
        Some(1.0)
    );
}
