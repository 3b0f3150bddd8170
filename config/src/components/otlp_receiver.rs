//! The `otlp` receiver's settings: gRPC and HTTP servers, their TLS and
//! CORS, and the rules they must follow.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::auth::{AuthConfig, AuthSide, check_auth};
use super::client::{is_header_name, is_header_value};
use super::server_limits::{
    self, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUEST_HEADER_SIZE, GrpcKeepalive, HttpKeepalive,
};
use super::{Check, ComponentConfig, Protocol};
use crate::ConfigError;
use crate::types::{Endpoint, GoDuration};

/// `receivers.otlp`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiverConfig {
    /// gRPC and HTTP settings.
    pub protocols: OtlpProtocols,
}

/// `receivers.otlp.protocols`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpProtocols {
    /// gRPC server; on when the key is present.
    pub grpc: Protocol<GrpcServerConfig>,
    /// HTTP server; on when the key is present.
    pub http: Protocol<HttpServerConfig>,
}

/// Server TLS settings of a receiver protocol (`tls`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsServerConfig {
    /// Server certificate chain (PEM file).
    pub cert_file: String,
    /// Server certificate chain, inline PEM (instead of `cert_file`).
    pub cert_pem: String,
    /// Server private key (PEM file).
    pub key_file: String,
    /// Server private key, inline PEM (instead of `key_file`).
    pub key_pem: String,
    /// When set, clients must present a certificate signed by this CA (PEM).
    pub client_ca_file: String,
    /// Accepted only to say that it has no effect on a server (validate
    /// error): the Collector ignores it there too.
    pub ca_file: String,
    /// Like `ca_file`, inline.
    pub ca_pem: String,
    /// Lowest TLS version accepted: `1.2` (default) or `1.3`.
    pub min_version: String,
    /// Highest TLS version accepted: `1.2` or `1.3` (default).
    pub max_version: String,
    /// How often `cert_file` and `key_file` are read again (0 = never).
    pub reload_interval: GoDuration,
}

/// A TLS protocol version Tern speaks (rustls has no 1.0 or 1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    V1_2,
    /// TLS 1.3.
    V1_3,
}

impl TlsVersion {
    /// Reads a `min_version` / `max_version` value; empty is `default`.
    fn parse(text: &str, default: TlsVersion) -> Result<TlsVersion, String> {
        match text.trim() {
            "" => Ok(default),
            "1.2" => Ok(TlsVersion::V1_2),
            "1.3" => Ok(TlsVersion::V1_3),
            v @ ("1.0" | "1.1") => Err(format!(
                "TLS {v} is not supported by Tern (rustls implements 1.2 and 1.3 only)"
            )),
            v => Err(format!("unknown TLS version `{v}` (use 1.2 or 1.3)")),
        }
    }

    /// The versions `min_version` to `max_version` allow (empty: 1.2 and
    /// 1.3), lowest first; on error, the key at fault and why.
    pub fn range(
        min_version: &str,
        max_version: &str,
    ) -> Result<(TlsVersion, TlsVersion), (&'static str, String)> {
        let min =
            TlsVersion::parse(min_version, TlsVersion::V1_2).map_err(|e| ("min_version", e))?;
        let max =
            TlsVersion::parse(max_version, TlsVersion::V1_3).map_err(|e| ("max_version", e))?;
        if min > max {
            return Err((
                "min_version",
                "min_version cannot be greater than max_version".into(),
            ));
        }
        Ok((min, max))
    }
}

impl TlsServerConfig {
    /// The accepted versions, lowest first; on error, the key at fault and
    /// why.
    pub fn versions(&self) -> Result<(TlsVersion, TlsVersion), (&'static str, String)> {
        TlsVersion::range(&self.min_version, &self.max_version)
    }
}

/// `receivers.otlp.protocols.grpc`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcServerConfig {
    /// Listen address (default `localhost:4317`).
    pub endpoint: Endpoint,
    /// Largest accepted message after decompression, in MiB (default 4).
    pub max_recv_msg_size_mib: u64,
    /// Most concurrent HTTP/2 streams per connection (default 0 = no limit of Tern's own).
    pub max_concurrent_streams: u32,
    /// Connection lifetimes and pings.
    pub keepalive: Option<GrpcKeepalive>,
    /// Tern: most connections served at once (default 4096); further
    /// clients wait until one closes.
    pub max_connections: u32,
    /// Keep client metadata (peer address, headers) on each batch.
    pub include_metadata: bool,
    /// TLS; plain text when absent.
    pub tls: Option<TlsServerConfig>,
    /// Bytes of the buffer each connection reads into from the socket
    /// (default 0 = none: the HTTP/2 codec buffers its reads already, and
    /// 512 KiB per connection, the Collector's default, would let 4096
    /// busy connections hold 2 GiB outside the memory limiter).
    pub read_buffer_size: u64,
    /// Bytes of answers gathered per connection before a write to the
    /// socket (default 0 = none).
    pub write_buffer_size: u64,
    /// Network of `endpoint`; only `tcp` (the default).
    pub transport: String,
    /// Authentication of every call by an authenticator extension (none
    /// when absent).
    pub auth: Option<AuthConfig>,
}

impl Default for GrpcServerConfig {
    fn default() -> Self {
        GrpcServerConfig {
            endpoint: Endpoint::new("localhost", 4317),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: 0,
            keepalive: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            include_metadata: false,
            tls: None,
            read_buffer_size: 0,
            write_buffer_size: 0,
            transport: "tcp".into(),
            auth: None,
        }
    }
}

/// `receivers.otlp.protocols.http`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Listen address (default `localhost:4318`).
    pub endpoint: Endpoint,
    /// Largest accepted body after decompression, in bytes (default 20 MiB).
    pub max_request_body_size: u64,
    /// How long the request body may take once the head is in (0 = Tern's
    /// 30 s).
    pub read_timeout: GoDuration,
    /// How long a new connection may take to send its first request head
    /// (0 = `read_timeout` when set, else Tern's 60 s).
    pub read_header_timeout: GoDuration,
    /// How long a request may take from its head to its answer (0 = no
    /// bound of its own: `read_timeout` bounds the body and the pipeline
    /// the rest).
    pub write_timeout: GoDuration,
    /// Deprecated in the Collector for `keepalive.idle_timeout`.
    pub idle_timeout: GoDuration,
    /// Deprecated in the Collector for `keepalive.enabled`.
    pub keep_alives_enabled: Option<bool>,
    /// Keeping connections open between requests.
    pub keepalive: Option<HttpKeepalive>,
    /// Tern: largest request head in bytes (default 408 KiB; larger heads
    /// are answered 431).
    pub max_request_header_size: u64,
    /// Tern: most connections served at once (default 4096); further
    /// clients wait until one closes.
    pub max_connections: u32,
    /// Keep client metadata (peer address, headers) on each batch.
    pub include_metadata: bool,
    /// Path for traces (default `/v1/traces`).
    pub traces_url_path: String,
    /// Path for metrics (default `/v1/metrics`).
    pub metrics_url_path: String,
    /// Path for logs (default `/v1/logs`).
    pub logs_url_path: String,
    /// TLS; plain text when absent.
    pub tls: Option<TlsServerConfig>,
    /// Cross-origin resource sharing for browsers; off when absent or when
    /// `allowed_origins` is empty.
    pub cors: Option<CorsConfig>,
    /// Headers added to every response (name to value).
    pub response_headers: BTreeMap<String, String>,
    /// Authentication of every request by an authenticator extension
    /// (none when absent); CORS preflights are exempt.
    pub auth: Option<AuthConfig>,
}

/// `receivers.otlp.protocols.http.cors`: the Collector's `confighttp` CORS
/// settings (credentials always allowed, methods GET, POST and HEAD).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to call; `*` stands for any run of characters
    /// (`https://*.example.com`, or `*` alone for every origin).
    pub allowed_origins: Vec<String>,
    /// Request headers a browser may send besides the ones always allowed
    /// (Accept, Accept-Language, Content-Type, Content-Language, Origin;
    /// X-Requested-With too when none are listed); `*` allows any.
    pub allowed_headers: Vec<String>,
    /// Response headers a page may read (`Access-Control-Expose-Headers`).
    pub exposed_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer
    /// (`Access-Control-Max-Age`; 0 = not sent).
    pub max_age: u32,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            endpoint: Endpoint::new("localhost", 4318),
            max_request_body_size: 20 * 1024 * 1024,
            read_timeout: GoDuration::default(),
            read_header_timeout: GoDuration::default(),
            write_timeout: GoDuration::default(),
            idle_timeout: GoDuration::default(),
            keep_alives_enabled: None,
            keepalive: None,
            max_request_header_size: DEFAULT_MAX_REQUEST_HEADER_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            include_metadata: false,
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
            tls: None,
            cors: None,
            response_headers: BTreeMap::new(),
            auth: None,
        }
    }
}

impl ComponentConfig for OtlpReceiverConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        check_keys(c, self, errors);
        let protocols = &self.protocols;
        let auths = [
            (
                "grpc",
                protocols.grpc.as_ref().and_then(|g| g.auth.as_ref()),
            ),
            (
                "http",
                protocols.http.as_ref().and_then(|h| h.auth.as_ref()),
            ),
        ];
        for (proto, auth) in auths {
            if let Some(auth) = auth {
                check_auth(c, &["protocols", proto], auth, AuthSide::Server, errors);
            }
        }
        if protocols.grpc.as_ref().is_none() && protocols.http.as_ref().is_none() {
            errors.push(c.here(&["protocols"], "must enable at least one of grpc or http"));
        }
        if let Some(http) = protocols.http.as_ref() {
            let paths = [
                ("traces_url_path", &http.traces_url_path),
                ("metrics_url_path", &http.metrics_url_path),
                ("logs_url_path", &http.logs_url_path),
            ];
            for (key, path) in paths {
                if !path.starts_with('/') {
                    errors.push(c.setting(
                        &["protocols", "http", key],
                        format!("must start with `/`, found `{path}`"),
                    ));
                }
            }
        }
        let tls = [
            ("grpc", protocols.grpc.as_ref().and_then(|g| g.tls.as_ref())),
            ("http", protocols.http.as_ref().and_then(|h| h.tls.as_ref())),
        ];
        for (proto, tls) in tls {
            let missing = tls.and_then(|t| {
                [
                    ("cert_file", &t.cert_file, &t.cert_pem),
                    ("key_file", &t.key_file, &t.key_pem),
                ]
                .into_iter()
                .find(|(_, file, pem)| file.is_empty() && pem.is_empty())
            });
            if let Some((key, _, _)) = missing {
                errors.push(c.setting(
                    &["protocols", proto, "tls", key],
                    "is required (cert_file or cert_pem, and key_file or key_pem)",
                ));
            }
            if let Some(t) = tls {
                check_server_tls(c, proto, t, errors);
            }
        }
        if let Some(grpc) = protocols.grpc.as_ref()
            && grpc.max_recv_msg_size_mib == 0
        {
            errors.push(c.setting(
                &["protocols", "grpc", "max_recv_msg_size_mib"],
                "must be at least 1",
            ));
        }
        if let Some(grpc) = protocols.grpc.as_ref() {
            server_limits::check_grpc(c, grpc.max_connections, errors);
        }
        if let Some(http) = protocols.http.as_ref() {
            server_limits::check_http(
                c,
                !http.idle_timeout.0.is_zero() || http.keep_alives_enabled.is_some(),
                http.keepalive.is_some(),
                http.max_connections,
                http.max_request_header_size,
                errors,
            );
        }
    }

    fn listens(&self) -> Vec<(Vec<&'static str>, Endpoint)> {
        let mut out = Vec::new();
        if let Some(grpc) = self.protocols.grpc.as_ref() {
            out.push((vec!["protocols", "grpc", "endpoint"], grpc.endpoint.clone()));
        }
        if let Some(http) = self.protocols.http.as_ref() {
            out.push((vec!["protocols", "http", "endpoint"], http.endpoint.clone()));
        }
        out
    }
}

/// The `tls` keys of protocol `proto` beyond the required certificate and
/// key.
fn check_server_tls(
    c: &Check<'_>,
    proto: &str,
    t: &TlsServerConfig,
    errors: &mut Vec<ConfigError>,
) {
    let mut error = |key: &str, message: String| {
        errors.push(c.setting(&["protocols", proto, "tls", key], message));
    };
    for (file, pem, file_key, pem_key) in [
        (&t.cert_file, &t.cert_pem, "cert_file", "cert_pem"),
        (&t.key_file, &t.key_pem, "key_file", "key_pem"),
    ] {
        if !file.is_empty() && !pem.is_empty() {
            error(
                pem_key,
                format!("provide either {file_key} or {pem_key}, not both"),
            );
        }
    }
    for (key, value) in [("ca_file", &t.ca_file), ("ca_pem", &t.ca_pem)] {
        if !value.is_empty() {
            error(
                key,
                "has no effect on a server (the Collector ignores it there too); \
                 to require client certificates, use client_ca_file"
                    .into(),
            );
        }
    }
    if let Err((key, message)) = t.versions() {
        error(key, message);
    }
}

/// Largest gRPC `read_buffer_size` / `write_buffer_size`: each connection
/// holds one of each.
const MAX_CONNECTION_BUFFER: u64 = 64 << 20;

/// The CORS, response header, gRPC transport and buffer keys.
fn check_keys(c: &Check<'_>, otlp: &OtlpReceiverConfig, errors: &mut Vec<ConfigError>) {
    let mut error = |path: &[&str], message: String| {
        errors.push(c.setting(path, message));
    };
    if let Some(grpc) = otlp.protocols.grpc.as_ref()
        && grpc.transport != "tcp"
    {
        error(
            &["protocols", "grpc", "transport"],
            format!(
                "transport `{}` is not supported by Tern; only `tcp` is",
                grpc.transport
            ),
        );
    }
    if let Some(grpc) = otlp.protocols.grpc.as_ref() {
        for (key, size) in [
            ("read_buffer_size", grpc.read_buffer_size),
            ("write_buffer_size", grpc.write_buffer_size),
        ] {
            if size > MAX_CONNECTION_BUFFER {
                error(
                    &["protocols", "grpc", key],
                    format!("must be at most {MAX_CONNECTION_BUFFER} (64 MiB; one per connection)"),
                );
            }
        }
    }
    if let Some(http) = otlp.protocols.http.as_ref() {
        if let Some(cors) = &http.cors {
            if let Some(o) = cors.allowed_origins.iter().find(|o| o.trim().is_empty()) {
                error(
                    &["protocols", "http", "cors", "allowed_origins"],
                    format!("`{o}` is not an origin (use `*` to allow every origin)"),
                );
            }
            let lists = [
                ("allowed_headers", &cors.allowed_headers),
                ("exposed_headers", &cors.exposed_headers),
            ];
            for (key, list) in lists {
                if let Some(h) = list.iter().find(|h| !is_header_name(h)) {
                    error(
                        &["protocols", "http", "cors", key],
                        format!("`{h}` is not an HTTP header name"),
                    );
                }
            }
        }
        for (name, value) in &http.response_headers {
            let path = ["protocols", "http", "response_headers", name.as_str()];
            if !is_header_name(name) {
                error(&path, format!("`{name}` is not an HTTP header name"));
            } else if !is_header_value(value) {
                error(
                    &path,
                    "is not a valid HTTP header value (printable ASCII only)".into(),
                );
            }
        }
    }
}
