//! The `otlp_grpc` exporter's settings (alias `otlp`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::auth::{AuthConfig, AuthSide, check_auth};
use super::client::{
    Compression, QueueConfig, RetryConfig, TlsClientConfig, check_client, check_headers,
    check_storage,
};
use super::{Check, ComponentConfig};
use crate::ConfigError;
use crate::types::{GoDuration, Target};

/// gRPC load balancing over the addresses an endpoint resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    /// Rotate over every address (the Collector's default).
    #[default]
    RoundRobin,
    /// Use the first address only.
    PickFirst,
}

/// `exporters.otlp`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpExporterConfig {
    /// `host:port`, or a URL with `http://` (plain) or `https://` (TLS).
    pub endpoint: String,
    /// Headers (gRPC metadata) sent with every request.
    pub headers: BTreeMap<String, String>,
    /// gzip | zstd | none (default gzip).
    pub compression: Compression,
    /// Per-request timeout (default 5s).
    pub timeout: GoDuration,
    /// TLS settings.
    pub tls: TlsClientConfig,
    /// Retry settings.
    pub retry_on_failure: RetryConfig,
    /// Queue settings.
    pub sending_queue: QueueConfig,
    /// round_robin | pick_first (default round_robin).
    pub balancer_name: Balancer,
    /// `:authority` sent instead of the endpoint's `host:port`.
    pub authority: String,
    /// Wait for a connection until `timeout` instead of failing the attempt
    /// at the first connection error (default false).
    pub wait_for_ready: bool,
    /// Credentials added to every request by an authenticator extension
    /// (none when absent).
    pub auth: Option<AuthConfig>,
}

impl Default for OtlpExporterConfig {
    fn default() -> Self {
        OtlpExporterConfig {
            endpoint: String::new(),
            headers: BTreeMap::new(),
            compression: Compression::Gzip,
            timeout: GoDuration(Duration::from_secs(5)),
            tls: TlsClientConfig::default(),
            retry_on_failure: RetryConfig::default(),
            sending_queue: QueueConfig::default(),
            balancer_name: Balancer::RoundRobin,
            authority: String::new(),
            wait_for_ready: false,
            auth: None,
        }
    }
}

impl ComponentConfig for OtlpExporterConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        let o = self;
        if matches!(o.compression, Compression::Zlib | Compression::Deflate) {
            errors.push(c.setting(
                &["compression"],
                "gRPC supports gzip, zstd, snappy or none (zlib and deflate are for otlphttp)",
            ));
        }
        if o.endpoint.trim().is_empty() {
            errors.push(c.setting(&["endpoint"], "is required"));
        } else if let Err(e) = Target::parse_grpc(&o.endpoint, o.tls.insecure) {
            errors.push(c.setting(&["endpoint"], e));
        }
        check_headers(c, &o.headers, errors);
        if let Some(auth) = &o.auth {
            check_auth(c, &[], auth, AuthSide::Client, errors);
        }
        check_client(
            c,
            &o.timeout,
            &o.tls,
            &o.retry_on_failure,
            &o.sending_queue,
            errors,
        );
        check_storage(c, &["sending_queue"], &o.sending_queue, errors);
    }
}
