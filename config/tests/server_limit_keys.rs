//! The `otlp` receiver's limit keys: HTTP timeouts, keepalive, header size
//! and connection cap; gRPC keepalive (server parameters and ping
//! enforcement) and connection cap; their defaults, and every bad value
//! reported at its line.

#![allow(clippy::unwrap_used)]

#[path = "common/one_file.rs"]
mod one_file;
use one_file::{errors, load};

use std::time::Duration;

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

fn assert_has(errs: &[String], expected: &[&str]) {
    for e in expected {
        assert!(errs.iter().any(|m| m.starts_with(e)), "{e}\nin {errs:#?}");
    }
}

#[test]
fn defaults_are_the_collectors_keys_with_terns_caps() {
    let config = load(&with_protocols("      grpc:\n      http:\n")).unwrap();
    let http = otlp(&config).protocols.http.as_ref().unwrap();
    assert_eq!(http.max_request_body_size, 20 << 20);
    for d in [
        &http.read_timeout,
        &http.read_header_timeout,
        &http.write_timeout,
        &http.idle_timeout,
    ] {
        assert_eq!(d.0, Duration::ZERO);
    }
    assert!(http.keepalive.is_none());
    assert_eq!(http.max_request_header_size, 417_792);
    assert_eq!(http.max_connections, 4096);
    let grpc = otlp(&config).protocols.grpc.as_ref().unwrap();
    assert_eq!(grpc.max_recv_msg_size_mib, 4);
    assert_eq!(grpc.max_concurrent_streams, 0);
    assert!(grpc.keepalive.is_none());
    assert_eq!(grpc.max_connections, 4096);
}

#[test]
fn every_limit_key_loads() {
    let config = load(&with_protocols(
        "      http:\n        read_timeout: 2s\n        read_header_timeout: 1s\n\
         \x20       write_timeout: 3s\n        keepalive:\n          enabled: false\n\
         \x20         idle_timeout: 4s\n        max_request_header_size: 16384\n\
         \x20       max_connections: 10\n\
         \x20     grpc:\n        max_concurrent_streams: 7\n        max_connections: 11\n\
         \x20       keepalive:\n          server_parameters:\n\
         \x20           max_connection_idle: 1m\n            max_connection_age: 2m\n\
         \x20           max_connection_age_grace: 3s\n            time: 30s\n            timeout: 5s\n\
         \x20         enforcement_policy:\n            min_time: 10s\n            permit_without_stream: true\n",
    ))
    .unwrap();
    let http = otlp(&config).protocols.http.as_ref().unwrap();
    assert_eq!(http.read_timeout.0, Duration::from_secs(2));
    assert_eq!(http.read_header_timeout.0, Duration::from_secs(1));
    assert_eq!(http.write_timeout.0, Duration::from_secs(3));
    let keepalive = http.keepalive.as_ref().unwrap();
    assert!(!keepalive.enabled);
    assert_eq!(keepalive.idle_timeout.0, Duration::from_secs(4));
    assert_eq!(
        (http.max_request_header_size, http.max_connections),
        (16384, 10)
    );
    let grpc = otlp(&config).protocols.grpc.as_ref().unwrap();
    assert_eq!((grpc.max_concurrent_streams, grpc.max_connections), (7, 11));
    let params = grpc
        .keepalive
        .as_ref()
        .unwrap()
        .server_parameters
        .as_ref()
        .unwrap();
    assert_eq!(params.max_connection_idle.0, Duration::from_secs(60));
    assert_eq!(params.max_connection_age.0, Duration::from_secs(120));
    assert_eq!(params.max_connection_age_grace.0, Duration::from_secs(3));
    assert_eq!(params.time.0, Duration::from_secs(30));
    assert_eq!(params.timeout.0, Duration::from_secs(5));
    let policy = grpc
        .keepalive
        .as_ref()
        .unwrap()
        .enforcement_policy
        .as_ref()
        .unwrap();
    assert_eq!(policy.min_time.0, Duration::from_secs(10));
    assert!(policy.permit_without_stream);
}

#[test]
fn bad_limits_are_reported_at_their_line() {
    let errs = errors(&with_protocols(
        "      http:\n        idle_timeout: 1s\n        keepalive:\n          enabled: true\n\
         \x20       max_request_header_size: 100\n        max_connections: 0\n\
         \x20     grpc:\n        max_connections: 0\n",
    ));
    assert_has(
        &errs,
        &[
            "tern.yaml:6:9: receivers.otlp.protocols.http.keepalive: cannot use the deprecated idle_timeout or keep_alives_enabled alongside the `keepalive` section",
            "tern.yaml:8:34: receivers.otlp.protocols.http.max_request_header_size: must be at least 8192",
            "tern.yaml:9:26: receivers.otlp.protocols.http.max_connections: must be at least 1",
            "tern.yaml:11:26: receivers.otlp.protocols.grpc.max_connections: must be at least 1",
        ],
    );
    let typo = errors(&with_protocols(
        "      grpc:\n        keepalive:\n          server_parameters:\n            max_age: 1s\n",
    ));
    assert!(typo[0].contains("max_age"), "{typo:#?}");
}
