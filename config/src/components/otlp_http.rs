//! The `otlp_http` exporter's settings (alias `otlphttp`), its proxy URL,
//! and the rule that every signal it sends has a URL.

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
use crate::types::{GoDuration, Signal, Target};

/// Body encoding of `otlphttp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpEncoding {
    /// `application/x-protobuf` (the default).
    #[default]
    Proto,
    /// `application/json`.
    Json,
}

/// `exporters.otlphttp`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpHttpExporterConfig {
    /// Base URL; `/v1/traces` etc. are appended.
    pub endpoint: String,
    /// Full URL for traces (overrides `endpoint`).
    pub traces_endpoint: String,
    /// Full URL for metrics (overrides `endpoint`).
    pub metrics_endpoint: String,
    /// Full URL for logs (overrides `endpoint`).
    pub logs_endpoint: String,
    /// proto | json (default proto).
    pub encoding: HttpEncoding,
    /// Headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// gzip | zstd | none (default gzip).
    pub compression: Compression,
    /// Per-request timeout (default 5s).
    pub timeout: GoDuration,
    /// TLS settings (used for `https://` URLs).
    pub tls: TlsClientConfig,
    /// Retry settings.
    pub retry_on_failure: RetryConfig,
    /// Queue settings.
    pub sending_queue: QueueConfig,
    /// An `http://` proxy (`http://user:password@host:port`): plain
    /// requests go to it in absolute form, `https` ones through a CONNECT
    /// tunnel (default none: connect directly; no environment variable is read).
    pub proxy_url: String,
    /// Most idle connections kept over all addresses (default 100; 0: no
    /// limit but 32 per address).
    pub max_idle_conns: u64,
    /// Idle connections older than this are not reused (default 90s; 0: no limit).
    pub idle_conn_timeout: GoDuration,
    /// One connection per request, closed after it (default false).
    pub disable_keep_alives: bool,
    /// Credentials added to every request by an authenticator extension
    /// (none when absent).
    pub auth: Option<AuthConfig>,
}

impl Default for OtlpHttpExporterConfig {
    fn default() -> Self {
        OtlpHttpExporterConfig {
            endpoint: String::new(),
            traces_endpoint: String::new(),
            metrics_endpoint: String::new(),
            logs_endpoint: String::new(),
            encoding: HttpEncoding::Proto,
            headers: BTreeMap::new(),
            compression: Compression::Gzip,
            timeout: GoDuration(Duration::from_secs(5)),
            tls: TlsClientConfig::default(),
            retry_on_failure: RetryConfig::default(),
            sending_queue: QueueConfig::default(),
            proxy_url: String::new(),
            max_idle_conns: 100,
            idle_conn_timeout: GoDuration(Duration::from_secs(90)),
            disable_keep_alives: false,
            auth: None,
        }
    }
}

/// `proxy_url` of `otlphttp`, parsed: an `http://` proxy and the
/// credentials in its URL (sent as `Proxy-Authorization: Basic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// The proxy's address (its path, if any, is not used).
    pub target: Target,
    /// `user` and `password` from the URL, percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl ProxyUrl {
    /// Parses `http://[user[:password]@]host[:port][/]`.
    pub fn parse(url: &str) -> Result<ProxyUrl, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(if url.starts_with("https://") {
                format!(
                    "invalid proxy URL `{url}`: only http:// proxies are supported (https endpoints reach their backend through them in a CONNECT tunnel)"
                )
            } else {
                format!("invalid proxy URL `{url}`: must start with http://")
            });
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (
                    Some((percent_decode(user), percent_decode(password))),
                    host_port,
                )
            }
            None => (None, authority),
        };
        if host_port.is_empty() {
            return Err(format!("invalid proxy URL `{url}`: no host"));
        }
        let target = Target::parse_url(&format!("http://{host_port}{path}"))
            .map_err(|e| format!("invalid proxy URL: {e}"))?;
        Ok(ProxyUrl {
            target,
            credentials,
        })
    }
}

/// `%XX` escapes decoded (as Go's URL parser does for user info).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ComponentConfig for OtlpHttpExporterConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        let h = self;
        if !h.proxy_url.is_empty()
            && let Err(e) = ProxyUrl::parse(&h.proxy_url)
        {
            errors.push(c.setting(&["proxy_url"], e));
        }
        check_urls(c, h, errors);
        check_headers(c, &h.headers, errors);
        if let Some(auth) = &h.auth {
            check_auth(c, &[], auth, AuthSide::Client, errors);
        }
        check_client(
            c,
            &h.timeout,
            &h.tls,
            &h.retry_on_failure,
            &h.sending_queue,
            errors,
        );
        check_storage(c, &["sending_queue"], &h.sending_queue, errors);
    }
}

impl OtlpHttpExporterConfig {
    /// The URL `signal` is sent to: its own `<signal>_endpoint`, else
    /// `endpoint` with `/v1/<signal>` appended, else none. On error, the
    /// key at fault and why. Validation and the exporter both use this.
    pub fn url(&self, signal: Signal) -> Result<Option<Target>, (&'static str, String)> {
        let (key, own) = match signal {
            Signal::Traces => ("traces_endpoint", &self.traces_endpoint),
            Signal::Metrics => ("metrics_endpoint", &self.metrics_endpoint),
            Signal::Logs => ("logs_endpoint", &self.logs_endpoint),
        };
        if !own.is_empty() {
            return Target::parse_url(own).map(Some).map_err(|e| (key, e));
        }
        if self.endpoint.is_empty() {
            return Ok(None);
        }
        let mut base = Target::parse_url(&self.endpoint).map_err(|e| ("endpoint", e))?;
        base.path = format!("{}/v1/{}", base.path.trim_end_matches('/'), signal.as_str());
        Ok(Some(base))
    }
}

/// Every URL parses, and each signal of the pipelines using it has one.
fn check_urls(c: &Check<'_>, h: &OtlpHttpExporterConfig, errors: &mut Vec<ConfigError>) {
    let urls = [
        ("endpoint", &h.endpoint),
        ("traces_endpoint", &h.traces_endpoint),
        ("metrics_endpoint", &h.metrics_endpoint),
        ("logs_endpoint", &h.logs_endpoint),
    ];
    for (key, url) in urls {
        if !url.is_empty()
            && let Err(e) = Target::parse_url(url)
        {
            errors.push(c.setting(&[key], e));
        }
    }
    // A URL that does not parse was reported above; `url` is what the
    // exporter sends to.
    for p in &c.pipelines {
        if let Ok(None) = h.url(p.id.signal) {
            errors.push(c.setting(
                &["endpoint"],
                format!(
                    "is required (or {}_endpoint) for pipeline `{}`",
                    p.id.signal, p.id
                ),
            ));
        }
    }
}
