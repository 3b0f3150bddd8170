//! The limits of the `otlp` receiver's servers: the Collector's gRPC
//! `keepalive` (server parameters and client ping enforcement) and HTTP
//! `keepalive` sections, Tern's own
//! `max_connections` and `max_request_header_size`, and the rules they
//! follow. A duration left at 0 means Tern's bounded default, never "no
//! limit" (docs/configuration.md lists each against the Collector's).

use serde::Deserialize;

use super::Check;
use crate::ConfigError;
use crate::types::GoDuration;

/// Default of `max_connections`: most connections one listener serves at
/// once.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;

/// Default of `max_request_header_size`: hyper's own HTTP/1 read buffer
/// (8 KiB + 400 KiB). The same buffer holds the part of a body hyper
/// reads past an early answer (a refusal) to keep the connection, so a
/// smaller value also makes such connections close sooner.
pub const DEFAULT_MAX_REQUEST_HEADER_SIZE: u64 = 8192 + 409_600;

/// Smallest `max_request_header_size` (hyper reads HTTP/1 heads into a
/// buffer of at least this many bytes).
pub const MIN_HEADER_SIZE: u64 = 8192;

/// `receivers.otlp.protocols.grpc.keepalive`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcKeepalive {
    /// Connection lifetimes and server pings.
    pub server_parameters: Option<GrpcServerParameters>,
    /// Rules for client pings.
    pub enforcement_policy: Option<GrpcEnforcementPolicy>,
}

/// `keepalive.server_parameters` of the gRPC server.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcServerParameters {
    /// Close (GOAWAY) a connection with no call in flight for this long
    /// (0 = Tern's 120 s).
    pub max_connection_idle: GoDuration,
    /// Close (GOAWAY) a connection this long after it opened (0 = never).
    pub max_connection_age: GoDuration,
    /// How long calls in flight get after the `max_connection_age` GOAWAY
    /// (0 = Tern's 5 s).
    pub max_connection_age_grace: GoDuration,
    /// Ping the client after this long without activity (0 = 2 h; at
    /// least 1 s).
    pub time: GoDuration,
    /// Close the connection when a ping is not answered within this long
    /// (0 = 20 s).
    pub timeout: GoDuration,
}

/// `keepalive.enforcement_policy` of the gRPC server.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcEnforcementPolicy {
    /// Shortest interval between client pings (0 = 5 min, as gRPC-Go).
    pub min_time: GoDuration,
    /// Whether `min_time` applies with no call in flight too (false: then
    /// pings may come only every 2 h).
    pub permit_without_stream: bool,
}

/// `receivers.otlp.protocols.http.keepalive`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpKeepalive {
    /// Whether connections are kept open between requests (default true).
    pub enabled: bool,
    /// How long a kept-alive connection waits for its next request (0 =
    /// `read_timeout` when set, else Tern's 120 s).
    pub idle_timeout: GoDuration,
}

impl Default for HttpKeepalive {
    fn default() -> Self {
        HttpKeepalive {
            enabled: true,
            idle_timeout: GoDuration::default(),
        }
    }
}

/// The limit keys of the gRPC server.
pub(super) fn check_grpc(c: &Check<'_>, max_connections: u32, errors: &mut Vec<ConfigError>) {
    check_max_connections(c, &["protocols", "grpc"], max_connections, errors);
}

/// The limit keys of the HTTP server.
pub(super) fn check_http(
    c: &Check<'_>,
    deprecated_idle: bool,
    keepalive_section: bool,
    max_connections: u32,
    max_request_header_size: u64,
    errors: &mut Vec<ConfigError>,
) {
    let path = ["protocols", "http"];
    check_max_connections(c, &path, max_connections, errors);
    if deprecated_idle && keepalive_section {
        errors.push(c.setting(
            &["protocols", "http", "keepalive"],
            "cannot use the deprecated idle_timeout or keep_alives_enabled alongside \
             the `keepalive` section; move them into it (idle_timeout, enabled)",
        ));
    }
    if max_request_header_size < MIN_HEADER_SIZE {
        errors.push(c.setting(
            &["protocols", "http", "max_request_header_size"],
            format!("must be at least {MIN_HEADER_SIZE}"),
        ));
    }
}

fn check_max_connections(c: &Check<'_>, path: &[&str], n: u32, errors: &mut Vec<ConfigError>) {
    if n == 0 {
        let key = [path, &["max_connections"]].concat();
        errors.push(c.setting(&key, "must be at least 1"));
    }
}
