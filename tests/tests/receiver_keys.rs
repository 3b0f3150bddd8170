//! The `otlp` receiver's server keys, end to end with the real binary:
//! CORS as a browser exercises it (a preflight, then the actual request)
//! `response_headers` on every answer, and gRPC `include_metadata` (over
//! tiny connection buffers).

#![allow(clippy::unwrap_used)]

mod common;

use prost::Message;
use tern_e2e::{Tern, http_request};

const CORS: &str = "
receivers:
  otlp:
    protocols:
      http:
        cors:
          allowed_origins: [\"https://*.example.com\", \"http://localhost:3000\"]
          allowed_headers: [X-Tenant]
          exposed_headers: [X-Trace-Hint]
          max_age: 7200
        response_headers:
          X-Served-By: tern
exporters:
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [nop]
";

/// A browser's preflight for a POST from `origin` that sends `headers`.
async fn preflight(port: u16, origin: &str, headers: &str) -> tern_e2e::Reply {
    let asked = [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", headers),
    ];
    http_request(port, "OPTIONS", "/v1/traces", &asked, Vec::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_cors_answers_and_every_answer_the_response_headers() {
    let tern = Tern::start(CORS);
    let origin = "https://app.example.com";

    let ok = preflight(tern.http, origin, "content-type,x-tenant").await;
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some(origin));
    assert_eq!(ok.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("content-type, x-tenant")
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-max-age"), Some("7200"));
    assert_eq!(ok.header("x-served-by"), Some("tern"));
    let vary: Vec<_> = ok.headers.get_all("vary").iter().collect();
    assert!(vary.iter().any(|v| *v == "origin"), "{vary:?}");

    // Another origin, or a header not allowed: no permission to read.
    for (origin, headers) in [
        ("https://evil.test", "content-type"),
        ("https://example.com", "content-type"),
        (origin, "x-other"),
    ] {
        let no = preflight(tern.http, origin, headers).await;
        assert_eq!(no.status, 204, "{origin} {headers}");
        assert_eq!(
            no.header("access-control-allow-origin"),
            None,
            "{origin} {headers}"
        );
        assert_eq!(no.header("x-served-by"), Some("tern"));
    }

    // The actual request.
    let body = common::spans(1, 2).encode_to_vec();
    let post = |origin: &'static str| {
        let body = body.clone();
        async move {
            let h = [
                ("content-type", "application/x-protobuf"),
                ("origin", origin),
            ];
            http_request(tern.http, "POST", "/v1/traces", &h, body).await
        }
    };
    let sent = post("http://localhost:3000").await;
    assert_eq!(sent.status, 200);
    assert_eq!(
        sent.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(
        sent.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        sent.header("access-control-expose-headers"),
        Some("X-Trace-Hint")
    );
    assert_eq!(sent.header("vary"), Some("origin"));
    assert_eq!(sent.header("x-served-by"), Some("tern"));
    // From an origin not allowed the data is still taken (as by the
    // Collector); the browser just hides the answer.
    let foreign = post("https://evil.test").await;
    assert_eq!(foreign.status, 200);
    assert_eq!(foreign.header("access-control-allow-origin"), None);

    // Errors carry the response headers too.
    let missing = http_request(tern.http, "POST", "/nowhere", &[], Vec::new()).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("x-served-by"), Some("tern"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_include_metadata_keeps_the_callers_metadata_through_tiny_buffers() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let config = "
receivers:
  otlp:
    protocols:
      grpc:
        include_metadata: true
        # Odd sizes: frames cross buffer boundaries both ways.
        read_buffer_size: 7
        write_buffer_size: 3
exporters:
  debug:
    verbosity: detailed
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
";
    let mut tern = Tern::start(config);
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", tern.grpc))
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let body = tern_e2e::grpc_frame(&common::spans(7, 1).encode_to_vec(), false);
    let req = http::Request::post(format!(
        "http://127.0.0.1:{}{}",
        tern.grpc,
        tern_e2e::paths::TRACES
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("x-tenant-id", "acme")
    .body(Full::new(body))
    .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let trailers = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .trailers()
        .cloned();
    assert_eq!(trailers.unwrap().get("grpc-status").unwrap(), "0");
    assert!(tern.stop().success());
    let logs = tern.logs();
    let grpc_ctx = logs
        .lines()
        .find(|l| l.contains("request context") && l.contains("transport=\"grpc\""))
        .unwrap_or_else(|| panic!("no grpc context in\n{logs}"));
    assert!(grpc_ctx.contains("x-tenant-id=acme"), "{grpc_ctx}");
}
