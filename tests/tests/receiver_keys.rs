//! The `otlp` receiver's server keys, end to end with the real binary:
//! CORS as a browser exercises it (a preflight, then the actual request)
//! `response_headers` on every answer, gRPC `include_metadata` (over tiny
//! connection buffers), and TLS versions, inline PEM and a certificate
//! reloaded from disk (handshakes by the `openssl` command).

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
          Content-Type: text/plain
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
    // The answer's own Content-Type wins over response_headers.
    assert_eq!(sent.header("content-type"), Some("application/x-protobuf"));
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

/// Makes a self-signed certificate for 127.0.0.1 named `name` in `dir`:
/// `{name}.pem` and `{name}.key`.
fn self_signed(dir: &std::path::Path, name: &str) {
    let subject = format!("/CN={name}");
    let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", &subject, "-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-keyout", &key, "-out", &cert])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TLS handshake with `openssl s_client` limited to `version`
/// (`-tls1_2`, `-tls1_3`, or `""` for any): the served certificate's
/// subject line, or `None` when the handshake failed.
fn handshake(port: u16, version: &str) -> Option<String> {
    let mut command = std::process::Command::new("openssl");
    command.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    if !version.is_empty() {
        command.arg(version);
    }
    let out = command.stdin(std::process::Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return None;
    }
    text.lines()
        .find(|l| l.starts_with("subject="))
        .map(str::to_string)
}

/// `text` as a YAML block scalar indented by `indent` spaces.
fn block(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

#[test]
fn tls_versions_inline_pem_and_a_reloaded_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    for name in ["one", "two", "inline"] {
        self_signed(dir, name);
    }
    let (served_cert, served_key) = (dir.join("served.pem"), dir.join("served.key"));
    std::fs::copy(dir.join("one.pem"), &served_cert).unwrap();
    std::fs::copy(dir.join("one.key"), &served_key).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let config = format!(
        "
receivers:
  otlp:
    protocols:
      http:
        tls:
          cert_file: {}
          key_file: {}
          reload_interval: 1s
          min_version: \"1.3\"
      grpc:
        tls:
          max_version: \"1.2\"
          cert_pem: |
{}          key_pem: |
{}exporters:
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [nop]
",
        served_cert.display(),
        served_key.display(),
        block(&read("inline.pem"), 12),
        block(&read("inline.key"), 12),
    );
    let tern = Tern::start(&config);

    // min_version 1.3: a 1.2-only client is turned away.
    let first = handshake(tern.http, "-tls1_3").unwrap();
    assert!(first.contains("one"), "{first}");
    assert_eq!(handshake(tern.http, "-tls1_2"), None);
    // max_version 1.2, and the inline certificate.
    let inline = handshake(tern.grpc, "-tls1_2").unwrap();
    assert!(inline.contains("inline"), "{inline}");
    assert_eq!(handshake(tern.grpc, "-tls1_3"), None);

    // Replace the files: after reload_interval, new handshakes get the new
    // certificate.
    std::fs::copy(dir.join("two.key"), &served_key).unwrap();
    std::fs::copy(dir.join("two.pem"), &served_cert).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let subject = handshake(tern.http, "").unwrap();
        if subject.contains("two") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {subject}; log:\n{}",
            tern.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(tern.logs().contains("TLS certificate reloaded"));
}
