//! The `otlp` receiver's server keys: CORS, response headers, gRPC buffers
//! and transport, TLS versions, reloading and inline PEM; defaults, and
//! every bad value reported at its line.

#![allow(clippy::unwrap_used)]

#[path = "common/one_file.rs"]
mod one_file;
use one_file::{errors, load};

/// A config whose `otlp` receiver has `protocols` (indented 6 spaces).
fn with_protocols(protocols: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    protocols:\n{protocols}\nexporters:\n  nop:\n\
         service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n"
    )
}

fn otlp(config: &tern_config::Config) -> &tern_config::OtlpReceiverConfig {
    config
        .receivers
        .values()
        .next()
        .unwrap()
        .settings()
        .unwrap()
}

#[test]
fn cors_and_response_headers_load_with_defaults() {
    let config = load(&with_protocols(
        "      http:\n        cors:\n          allowed_origins: [\"https://*.example.com\"]\n\
         \x20       response_headers:\n          X-A: b\n",
    ))
    .unwrap();
    let http = otlp(&config).protocols.http.as_ref().unwrap();
    let cors = http.cors.as_ref().unwrap();
    assert_eq!(cors.allowed_origins, ["https://*.example.com"]);
    assert!(cors.allowed_headers.is_empty());
    assert_eq!(cors.max_age, 0);
    assert_eq!(http.response_headers["X-A"], "b");
    let plain = load(&with_protocols("      http:\n")).unwrap();
    let http = otlp(&plain).protocols.http.as_ref().unwrap();
    assert!(http.cors.is_none() && http.response_headers.is_empty());
}

#[test]
fn bad_cors_and_response_headers_are_reported_at_their_line() {
    let errs = errors(&with_protocols(
        "      http:\n        cors:\n          allowed_origins: [\"\"]\n\
         \x20         allowed_headers: [\"bad header\"]\n\
         \x20       response_headers:\n          \"X A\": b\n          X-B: \"a\\nb\"\n",
    ));
    let expected = [
        "tern.yaml:6:11: receivers.otlp.protocols.http.cors.allowed_origins: `` is not an origin",
        "tern.yaml:7:11: receivers.otlp.protocols.http.cors.allowed_headers: `bad header` is not an HTTP header name",
        "tern.yaml:9:18: receivers.otlp.protocols.http.response_headers.X A: `X A` is not an HTTP header name",
        "tern.yaml:10:16: receivers.otlp.protocols.http.response_headers.X-B: is not a valid HTTP header value",
    ];
    for e in expected {
        assert!(errs.iter().any(|m| m.starts_with(e)), "{e}\nin {errs:#?}");
    }
}

#[test]
fn grpc_buffers_and_transport() {
    let plain = load(&with_protocols("      grpc:\n")).unwrap();
    let grpc = otlp(&plain).protocols.grpc.as_ref().unwrap();
    assert_eq!(grpc.read_buffer_size, 0);
    assert_eq!(grpc.write_buffer_size, 0);
    assert_eq!(grpc.transport, "tcp");
    let set = load(&with_protocols(
        "      grpc:\n        read_buffer_size: 65536\n        write_buffer_size: 32768\n        transport: tcp\n",
    ))
    .unwrap();
    let grpc = otlp(&set).protocols.grpc.as_ref().unwrap();
    assert_eq!(
        (grpc.read_buffer_size, grpc.write_buffer_size),
        (65536, 32768)
    );
    let errs = errors(&with_protocols(
        "      grpc:\n        transport: unix\n        read_buffer_size: 100000000\n",
    ));
    let expected = [
        "tern.yaml:5:20: receivers.otlp.protocols.grpc.transport: transport `unix` is not supported by Tern; only `tcp` is",
        "tern.yaml:6:27: receivers.otlp.protocols.grpc.read_buffer_size: must be at most 67108864",
    ];
    for e in expected {
        assert!(errs.iter().any(|m| m.starts_with(e)), "{e}\nin {errs:#?}");
    }
}

#[test]
fn a_negative_buffer_size_is_a_type_error_at_its_line() {
    let errs = errors(&with_protocols(
        "      grpc:\n        write_buffer_size: -1\n",
    ));
    assert!(
        errs[0].starts_with("tern.yaml:5:28: receivers.otlp.protocols.grpc.write_buffer_size:"),
        "{errs:#?}"
    );
}

#[test]
fn tls_versions_inline_pem_and_reload_interval() {
    let config = load(&with_protocols(
        "      http:\n        tls:\n          cert_pem: \"x\"\n          key_pem: \"y\"\n\
         \x20         min_version: \"1.3\"\n          reload_interval: 10m\n",
    ))
    .unwrap();
    let tls = otlp(&config)
        .protocols
        .http
        .as_ref()
        .unwrap()
        .tls
        .as_ref()
        .unwrap();
    assert_eq!(
        tls.versions().unwrap(),
        (
            tern_config::components::TlsVersion::V1_3,
            tern_config::components::TlsVersion::V1_3
        )
    );
    assert_eq!(tls.reload_interval.0, std::time::Duration::from_secs(600));
    let errs = errors(&with_protocols(
        "      http:\n        tls:\n          cert_file: a\n          cert_pem: b\n          key_pem: c\n\
         \x20         min_version: \"1.1\"\n          ca_pem: d\n      grpc:\n        tls:\n\
         \x20         key_file: k\n          max_version: 1.4\n",
    ));
    let expected = [
        "tern.yaml:7:21: receivers.otlp.protocols.http.tls.cert_pem: provide either cert_file or cert_pem, not both",
        "tern.yaml:9:24: receivers.otlp.protocols.http.tls.min_version: TLS 1.1 is not supported by Tern",
        "tern.yaml:10:19: receivers.otlp.protocols.http.tls.ca_pem: has no effect on a server",
        "tern.yaml:13:11: receivers.otlp.protocols.grpc.tls.cert_file: is required (cert_file or cert_pem",
        "tern.yaml:14:24: receivers.otlp.protocols.grpc.tls.max_version: unknown TLS version `1.4`",
    ];
    for e in expected {
        assert!(errs.iter().any(|m| m.starts_with(e)), "{e}\nin {errs:#?}");
    }
    let errs = errors(&with_protocols(
        "      http:\n        tls:\n          cert_file: a\n          key_file: b\n\
         \x20         min_version: \"1.3\"\n          max_version: \"1.2\"\n",
    ));
    assert!(
        errs[0].starts_with("tern.yaml:8:24: receivers.otlp.protocols.http.tls.min_version: min_version cannot be greater than max_version"),
        "{errs:#?}"
    );
}
