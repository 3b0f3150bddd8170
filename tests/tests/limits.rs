//! The otlp receiver's limit keys against the real binary: slow clients
//! (a head or a body sent a byte at a time) are cut off at
//! `read_header_timeout` / `read_timeout` while normal clients on the same
//! receiver are served; bodies, heads and gRPC messages over their limits
//! are refused with the right status and counted; the gRPC server
//! advertises `max_concurrent_streams` and refuses a stream over it, and
//! closes a connection at `max_connection_age` with GOAWAY, and one whose
//! client pings too often (`keepalive.enforcement_policy`) likewise. The
//! Collector's limit keys are the reference Collector's (where
//! `$TERN_REFCOL` is set): both accept them, and both refuse the
//! deprecated HTTP keepalive keys beside a `keepalive` section. Outcomes and counters only: no
//! assertion on how long anything took.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use prost::Message;
use tern_e2e::{Tern, grpc_call, http_request, paths, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMITS: &str = r#"
receivers:
  otlp:
    protocols:
      http:
        read_header_timeout: 1s
        read_timeout: 1s
        max_request_body_size: 2000
        max_request_header_size: 8192
      grpc:
        max_recv_msg_size_mib: 1
exporters:
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [nop]
"#;

const HTTP: &str = r#"receiver="otlp",transport="http""#;
const GRPC: &str = r#"receiver="otlp",transport="grpc""#;

/// What a trickling client saw.
struct Trickled {
    /// Everything the server sent before closing.
    answer: String,
    /// Whether the server closed before the client ran out of bytes.
    cut: bool,
}

/// Connects to `port`, sends `head` at once and then `drip` a byte at a
/// time (one every 50 ms) until the server closes the connection.
async fn trickle(port: u16, head: Vec<u8>, drip: Vec<u8>) -> Trickled {
    let conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = read.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    });
    write.write_all(&head).await.unwrap();
    let mut cut = false;
    for byte in drip {
        if reader.is_finished() || write.write_all(&[byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = reader.await.unwrap();
    Trickled { answer, cut }
}

/// An HTTP/1.1 head posting `len` bytes of protobuf to /v1/traces.
fn post_head(len: usize) -> Vec<u8> {
    format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {len}\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_bodies_are_cut_off_while_normal_clients_are_served() {
    let tern = Tern::start(LIMITS);
    let port = tern.http;
    // 20 s worth of bytes each: far past the 1 s limits.
    let slow_head = tokio::spawn(trickle(
        port,
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n".to_vec(),
        b"x-slow: a\r\n".repeat(40),
    ));
    let slow_body = tokio::spawn(trickle(port, post_head(400), vec![0x0a; 400]));

    // Normal clients keep being served for as long as the slow ones last.
    let mut served = 0u32;
    while !(slow_head.is_finished() && slow_body.is_finished()) {
        let body = spans(served, 1).encode_to_vec();
        let reply = http_request(
            port,
            "POST",
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            body,
        )
        .await;
        assert_eq!(reply.status, 200, "a normal client was refused");
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served >= 1);

    let head = slow_head.await.unwrap();
    assert!(head.cut, "the slow head was never cut off");
    assert_eq!(head.answer, "", "a cut head gets no answer");
    let body = slow_body.await.unwrap();
    assert!(body.cut, "the slow body was never cut off");
    assert!(body.answer.starts_with("HTTP/1.1 408"), "{}", body.answer);

    let text = tern
        .self_metrics_until("the slow clients counted", |t| {
            sample(
                t,
                "tern_receiver_connections_closed_total",
                &format!(r#"{HTTP},reason="header_timeout""#),
            ) == Some(1.0)
        })
        .await;
    assert_eq!(
        sample(
            &text,
            "tern_receiver_requests_refused_total",
            &format!(r#"{HTTP},reason="body_timeout""#)
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "otelcol_receiver_accepted_spans_total", HTTP),
        Some(f64::from(served))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_heads_and_messages_are_refused_and_counted() {
    let tern = Tern::start(LIMITS);
    let proto = [("content-type", "application/x-protobuf")];

    // A body over max_request_body_size (2000 bytes): 413.
    let big = spans(1, 40).encode_to_vec();
    assert!(big.len() > 2000);
    let reply = http_request(tern.http, "POST", "/v1/traces", &proto, big).await;
    assert_eq!(reply.status, 413);
    // One under it is taken.
    let small = spans(2, 1).encode_to_vec();
    let reply = http_request(tern.http, "POST", "/v1/traces", &proto, small).await;
    assert_eq!(reply.status, 200);

    // A head over max_request_header_size (8192 bytes): 431.
    let mut conn = TcpStream::connect(("127.0.0.1", tern.http)).await.unwrap();
    let mut head = post_head(0);
    let filler = format!("x-big: {}\r\n\r\n", "a".repeat(9000));
    head.truncate(head.len() - 2);
    head.extend_from_slice(filler.as_bytes());
    conn.write_all(&head).await.unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // A gRPC message over max_recv_msg_size_mib (1 MiB): RESOURCE_EXHAUSTED.
    let huge = spans(3, 12000).encode_to_vec();
    assert!(huge.len() > 1 << 20, "{}", huge.len());
    let r = grpc_call(tern.grpc, paths::TRACES, huge, None).await;
    assert_eq!(r.code, 8, "{r:?}");
    let ok = grpc_call(tern.grpc, paths::TRACES, spans(4, 1).encode_to_vec(), None).await;
    assert_eq!(ok.code, 0, "{ok:?}");

    let text = tern
        .self_metrics_until("the refusals counted", |t| {
            sample(t, "otelcol_receiver_accepted_spans_total", GRPC) == Some(1.0)
        })
        .await;
    for labels in [HTTP, GRPC] {
        assert_eq!(
            sample(
                &text,
                "tern_receiver_requests_refused_total",
                &format!(r#"{labels},reason="too_large""#)
            ),
            Some(1.0),
            "{labels}"
        );
    }
    assert_eq!(
        sample(&text, "otelcol_receiver_accepted_spans_total", HTTP),
        Some(1.0)
    );
}

/// An HTTP/2 frame: type, stream and payload.
struct Frame {
    kind: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// Reads one HTTP/2 frame; `None` at the end of the connection.
async fn read_frame(conn: &mut TcpStream) -> Option<Frame> {
    let mut header = [0u8; 9];
    conn.read_exact(&mut header).await.ok()?;
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0u8; len];
    conn.read_exact(&mut payload).await.ok()?;
    let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
    Some(Frame {
        kind: header[3],
        stream,
        payload,
    })
}

/// A frame's bytes.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A HEADERS frame opening a gRPC export call on `stream` whose body never
/// comes: each header a literal without indexing (HPACK, no Huffman).
fn open_call(stream: u32) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", paths::TRACES),
        (":authority", "x"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0);
        block.push(u8::try_from(name.len()).unwrap());
        block.extend_from_slice(name.as_bytes());
        block.push(u8::try_from(value.len()).unwrap());
        block.extend_from_slice(value.as_bytes());
    }
    frame(HEADERS, END_HEADERS, stream, &block)
}

const HEADERS: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const ACK: u8 = 0x1;
const GOAWAY: u8 = 0x7;
const REFUSED_STREAM: u32 = 0x7;
const PING: u8 = 0x6;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_advertises_its_stream_cap_and_closes_old_connections_with_goaway() {
    let tern = Tern::start(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        max_concurrent_streams: 1
        keepalive:
          server_parameters:
            max_connection_age: 1s
            max_connection_age_grace: 1s
exporters:
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [nop]
"#,
    );
    let mut conn = TcpStream::connect(("127.0.0.1", tern.grpc)).await.unwrap();
    // The client preface and an empty SETTINGS frame.
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&frame(SETTINGS, 0, 0, &[]));
    conn.write_all(&preface).await.unwrap();

    let settings = read_frame(&mut conn).await.expect("the server's SETTINGS");
    assert_eq!(settings.kind, SETTINGS);
    let streams = settings.payload.chunks_exact(6).find_map(|p| {
        (u16::from_be_bytes([p[0], p[1]]) == SETTINGS_MAX_CONCURRENT_STREAMS)
            .then(|| u32::from_be_bytes([p[2], p[3], p[4], p[5]]))
    });
    assert_eq!(streams, Some(1));

    // With the server's settings acknowledged, two calls at once: the first
    // is served (its body is awaited), the second refused.
    let calls = [frame(SETTINGS, ACK, 0, &[]), open_call(1), open_call(3)].concat();
    conn.write_all(&calls).await.unwrap();

    // The connection is kept until its age, then gets GOAWAY and closes.
    let mut frames = Vec::new();
    while let Some(frame) = read_frame(&mut conn).await {
        frames.push(frame);
    }
    let refused = |stream: u32| {
        frames.iter().any(|f| {
            f.kind == RST_STREAM && f.stream == stream && f.payload == REFUSED_STREAM.to_be_bytes()
        })
    };
    assert!(refused(3), "the stream over the cap was not refused");
    assert!(!refused(1), "the first stream was refused");
    assert!(frames.iter().any(|f| f.kind == GOAWAY), "no GOAWAY");

    // New connections are served.
    let ok = grpc_call(tern.grpc, paths::TRACES, spans(1, 1).encode_to_vec(), None).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    tern.self_metrics_until("the aged connection counted", |t| {
        sample(
            t,
            "tern_receiver_connections_closed_total",
            &format!(r#"{GRPC},reason="max_age""#),
        )
        .is_some_and(|n| n >= 1.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pinging_too_often_gets_goaway_and_is_counted() {
    // gRPC-Go's default policy: with no call in flight, pings at most
    // every 2 h; the fourth quick ping is the third strike.
    let tern = Tern::start(LIMITS);
    let mut conn = TcpStream::connect(("127.0.0.1", tern.grpc)).await.unwrap();
    let mut start = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    start.extend_from_slice(&frame(SETTINGS, 0, 0, &[]));
    for _ in 0..4 {
        start.extend_from_slice(&frame(PING, 0, 0, &[7; 8]));
    }
    conn.write_all(&start).await.unwrap();
    let mut kinds = Vec::new();
    while let Some(frame) = read_frame(&mut conn).await {
        kinds.push(frame.kind);
    }
    assert!(kinds.contains(&GOAWAY), "{kinds:?}");

    // Other clients are served.
    let ok = grpc_call(tern.grpc, paths::TRACES, spans(1, 1).encode_to_vec(), None).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    tern.self_metrics_until("the ping flood counted", |t| {
        sample(
            t,
            "tern_receiver_connections_closed_total",
            &format!(r#"{GRPC},reason="too_many_pings""#),
        ) == Some(1.0)
    })
    .await;
}

/// Every Collector limit key of the otlp receiver (Tern's own left out).
const COLLECTOR_KEYS: &str = "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        max_recv_msg_size_mib: 1
        max_concurrent_streams: 1
        keepalive:
          server_parameters:
            max_connection_idle: 1m
            max_connection_age: 2m
            max_connection_age_grace: 3s
            time: 30s
            timeout: 5s
          enforcement_policy:
            min_time: 10s
            permit_without_stream: true
      http:
        endpoint: 127.0.0.1:0
        max_request_body_size: 2000
        read_timeout: 2s
        read_header_timeout: 1s
        write_timeout: 3s
        keepalive:
          enabled: false
          idle_timeout: 4s
exporters:
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [nop]
";

/// Whether `binary validate` accepts `config`.
fn validates(binary: &std::path::Path, config: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    std::process::Command::new(binary)
        .arg("validate")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn the_limit_keys_are_the_collectors() {
    let mixed = COLLECTOR_KEYS.replace(
        "        keepalive:\n          enabled: false",
        "        keep_alives_enabled: false\n        keepalive:\n          enabled: false",
    );
    assert_ne!(mixed, COLLECTOR_KEYS);
    let tern = tern_e2e::tern_bin();
    assert!(validates(&tern, COLLECTOR_KEYS));
    assert!(!validates(&tern, &mixed));
    let Some(refcol) = tern_e2e::refcol::refcol_bin() else {
        eprintln!("TERN_REFCOL not set: not compared with the Collector");
        return;
    };
    assert!(validates(&refcol, COLLECTOR_KEYS));
    assert!(!validates(&refcol, &mixed));
}
