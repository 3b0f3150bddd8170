//! `exporters.loadbalancing` (`load_balancing` in the Collector v0.161,
//! `loadbalancing` its deprecated alias): the OpenTelemetry Collector's keys
//! and defaults, which routing keys each signal takes, and the checks its
//! factory and resolvers make, as `(key path, problem)` pairs for
//! [`crate::validate`] to place at their line.

use std::time::Duration;

use serde::Deserialize;

use super::client::check_headers;
use super::{Check, ComponentConfig, Compression, check_client, check_storage};
use crate::ConfigError;
use crate::components::{OtlpExporterConfig, Protocol, QueueConfig, RetryConfig};
use crate::types::{GoDuration, Signal};

/// What keeps items together on one backend (`routing_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RoutingKey {
    /// The trace id (traces and logs).
    #[serde(rename = "traceID")]
    TraceId,
    /// The resource's `service.name` (every signal).
    #[serde(rename = "service")]
    Service,
    /// The whole resource (logs and metrics).
    #[serde(rename = "resource")]
    Resource,
    /// The metric name (metrics).
    #[serde(rename = "metric")]
    Metric,
    /// The stream: resource, scope, metric and data point attributes (metrics).
    #[serde(rename = "streamID")]
    StreamId,
    /// `routing_attributes` (not supported by Tern; refused at validate).
    #[serde(rename = "attributes")]
    Attributes,
}

impl RoutingKey {
    /// The key as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingKey::TraceId => "traceID",
            RoutingKey::Service => "service",
            RoutingKey::Resource => "resource",
            RoutingKey::Metric => "metric",
            RoutingKey::StreamId => "streamID",
            RoutingKey::Attributes => "attributes",
        }
    }

    /// The signals the Collector v0.161 routes with this key.
    pub fn signals(self) -> &'static [Signal] {
        match self {
            RoutingKey::TraceId => &[Signal::Traces, Signal::Logs],
            RoutingKey::Service | RoutingKey::Attributes => &Signal::ALL,
            RoutingKey::Resource => &[Signal::Logs, Signal::Metrics],
            RoutingKey::Metric | RoutingKey::StreamId => &[Signal::Metrics],
        }
    }

    /// What an unset `routing_key` means for `signal`: `traceID` for
    /// traces, `service` for logs and metrics (as in the Collector).
    pub fn default_for(signal: Signal) -> RoutingKey {
        match signal {
            Signal::Traces => RoutingKey::TraceId,
            Signal::Logs | Signal::Metrics => RoutingKey::Service,
        }
    }
}

/// `resolver.static`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticResolverConfig {
    /// Backends as `host:port` (`host` alone means port 4317).
    pub hostnames: Vec<String>,
}

/// `resolver.dns`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsResolverConfig {
    /// The name whose A/AAAA records are the backends.
    pub hostname: String,
    /// Port appended to each address (empty: none, and 4317 is dialled).
    pub port: String,
    /// Time between resolutions (default 5s).
    pub interval: GoDuration,
    /// Time one resolution may take (default 1s).
    pub timeout: GoDuration,
    /// Tern only: `ip:port` of a DNS server to ask over UDP instead of the
    /// system resolver (empty: the system resolver, `/etc/resolv.conf`).
    pub nameserver: String,
}

impl Default for DnsResolverConfig {
    fn default() -> Self {
        DnsResolverConfig {
            hostname: String::new(),
            port: String::new(),
            interval: GoDuration(Duration::from_secs(5)),
            timeout: GoDuration(Duration::from_secs(1)),
            nameserver: String::new(),
        }
    }
}

/// `resolver.k8s`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct K8sResolverConfig {
    /// `name.namespace` (or `name`, in this pod's namespace) of the Service
    /// whose EndpointSlices list the backends.
    pub service: String,
    /// Ports dialled on each address (empty: none, and 4317 is dialled).
    pub ports: Vec<i32>,
    /// Timeout of the list and watch calls (default 1m).
    pub timeout: GoDuration,
    /// Use the endpoints' hostnames (`host.service.namespace`) instead of
    /// their addresses.
    pub return_hostnames: bool,
}

impl Default for K8sResolverConfig {
    fn default() -> Self {
        K8sResolverConfig {
            service: String::new(),
            ports: Vec::new(),
            timeout: GoDuration(Duration::from_secs(60)),
            return_hostnames: false,
        }
    }
}

/// `resolver.aws_cloud_map`: read so that its keys are checked, refused at
/// validate (Tern has no AWS client).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsCloudMapResolverConfig {
    /// `namespace`.
    pub namespace: String,
    /// `service_name`.
    pub service_name: String,
    /// `health_status`.
    pub health_status: String,
    /// `interval`.
    pub interval: GoDuration,
    /// `timeout`.
    pub timeout: GoDuration,
    /// `port`.
    pub port: Option<u16>,
    /// `owner_account`.
    pub owner_account: Option<String>,
}

/// `resolver`: exactly one of these.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    /// A fixed list.
    #[serde(rename = "static")]
    pub static_list: Protocol<StaticResolverConfig>,
    /// DNS A/AAAA records, re-read every `interval`.
    pub dns: Protocol<DnsResolverConfig>,
    /// Kubernetes EndpointSlices of a Service, watched.
    pub k8s: Protocol<K8sResolverConfig>,
    /// AWS Cloud Map (refused).
    pub aws_cloud_map: Protocol<AwsCloudMapResolverConfig>,
}

/// `protocol`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LbProtocol {
    /// The `otlp` (gRPC) exporter's settings, used for every backend
    /// (`endpoint` is replaced by the backend's).
    pub otlp: OtlpExporterConfig,
}

/// `exporters.loadbalancing`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadBalancingConfig {
    /// Settings of each backend's exporter.
    pub protocol: LbProtocol,
    /// Where the backends come from.
    pub resolver: ResolverConfig,
    /// What keeps items together (unset: `traceID` for traces, `service`
    /// for logs and metrics).
    #[serde(deserialize_with = "routing_key")]
    pub routing_key: Option<RoutingKey>,
    /// Attributes of `routing_key: attributes` (refused).
    pub routing_attributes: Vec<String>,
    /// Time one whole export (all backends) may take (default 0: none).
    pub timeout: GoDuration,
    /// Retries of the parts that failed (default off).
    pub retry_on_failure: RetryConfig,
    /// The queue in front of the routing (default on, as the Collector's).
    pub sending_queue: QueueConfig,
}

impl Default for LoadBalancingConfig {
    fn default() -> Self {
        LoadBalancingConfig {
            protocol: LbProtocol::default(),
            resolver: ResolverConfig::default(),
            routing_key: None,
            routing_attributes: Vec::new(),
            timeout: GoDuration(Duration::ZERO),
            retry_on_failure: RetryConfig {
                enabled: false,
                ..RetryConfig::default()
            },
            sending_queue: QueueConfig::default(),
        }
    }
}

/// An empty `routing_key` is unset, as in the Collector.
fn routing_key<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RoutingKey>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    RoutingKey::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&text))
        .map(Some)
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "unsupported routing_key {text:?} (traceID, service, resource, metric or streamID)"
            ))
        })
}

/// One problem: the key path inside the exporter's settings and what is wrong.
pub type Problem = (Vec<&'static str>, String);

impl LoadBalancingConfig {
    /// The routing key used for `signal`.
    pub fn routing_key_for(&self, signal: Signal) -> RoutingKey {
        self.routing_key
            .unwrap_or_else(|| RoutingKey::default_for(signal))
    }

    /// The Collector's checks of the settings alone (no pipelines).
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let r = &self.resolver;
        let count = [
            r.static_list.as_ref().is_some(),
            r.dns.as_ref().is_some(),
            r.k8s.as_ref().is_some(),
            r.aws_cloud_map.as_ref().is_some(),
        ]
        .iter()
        .filter(|on| **on)
        .count();
        match count {
            0 => problems.push((
                vec!["resolver"],
                "no resolvers specified for the exporter (static, dns or k8s)".to_owned(),
            )),
            1 => {}
            _ => problems.push((
                vec!["resolver"],
                "only one resolver should be specified".to_owned(),
            )),
        }
        if let Some(s) = r.static_list.as_ref() {
            if s.hostnames.is_empty() {
                problems.push((
                    vec!["resolver", "static", "hostnames"],
                    "no endpoints specified for the static resolver".to_owned(),
                ));
            }
            if s.hostnames.iter().any(|h| h.trim().is_empty()) {
                problems.push((
                    vec!["resolver", "static", "hostnames"],
                    "an endpoint is empty".to_owned(),
                ));
            }
        }
        if let Some(d) = r.dns.as_ref() {
            if d.hostname.is_empty() {
                problems.push((
                    vec!["resolver", "dns", "hostname"],
                    "no hostname specified to resolve the backends".to_owned(),
                ));
            }
            if !d.port.is_empty() && d.port.parse::<u16>().is_err() {
                problems.push((
                    vec!["resolver", "dns", "port"],
                    format!("must be a port number, found {:?}", d.port),
                ));
            }
            if !d.nameserver.is_empty() && d.nameserver.parse::<std::net::SocketAddr>().is_err() {
                problems.push((
                    vec!["resolver", "dns", "nameserver"],
                    format!("must be ip:port, found {:?}", d.nameserver),
                ));
            }
        }
        if let Some(k) = r.k8s.as_ref() {
            if let Err(e) = k8s_service(&k.service) {
                problems.push((vec!["resolver", "k8s", "service"], e));
            }
            if k.ports.iter().any(|p| !(1..=65535).contains(p)) {
                problems.push((
                    vec!["resolver", "k8s", "ports"],
                    "each port must be between 1 and 65535".to_owned(),
                ));
            }
        }
        if r.aws_cloud_map.as_ref().is_some() {
            problems.push((
                vec!["resolver", "aws_cloud_map"],
                "not supported: Tern has no AWS Cloud Map client; use the static, dns or k8s resolver"
                    .to_owned(),
            ));
        }
        match (self.routing_key, self.routing_attributes.is_empty()) {
            (Some(RoutingKey::Attributes), _) => problems.push((
                vec!["routing_key"],
                "`attributes` is not supported by Tern (traceID, service, resource, metric or streamID)"
                    .to_owned(),
            )),
            (_, false) => problems.push((
                vec!["routing_attributes"],
                "can only be used when routing_key is \"attributes\", which Tern does not support"
                    .to_owned(),
            )),
            _ => {}
        }
        problems
    }
}

/// `(name, namespace)` of a `resolver.k8s.service`: `name`, `name.namespace`
/// or `name.namespace.svc.<cluster domain>`; `None` for the namespace when
/// only the name is given (the pod's own namespace is used).
pub fn k8s_service(service: &str) -> Result<(String, Option<String>), String> {
    let parts: Vec<&str> = service.split('.').collect();
    let name = parts.first().copied().unwrap_or_default();
    if name.is_empty() {
        return Err("no service specified to resolve the backends".to_owned());
    }
    if parts.len() > 1 && parts[1].is_empty() {
        return Err(format!(
            "invalid Kubernetes service FQDN: namespace segment missing in {service:?}"
        ));
    }
    if parts.len() > 2 && parts[2] != "svc" {
        return Err(format!(
            "invalid Kubernetes service FQDN: expected third DNS label to be 'svc' in {service:?}"
        ));
    }
    if parts.len() == 3 {
        return Err(format!(
            "invalid Kubernetes service FQDN: missing cluster domain in {service:?}"
        ));
    }
    Ok((name.to_owned(), parts.get(1).map(|s| (*s).to_owned())))
}

/// `load_balancing`: its own rules, the routing key of each pipeline's
/// signal, the `otlp_grpc` exporter's rules for `protocol.otlp` (whose
/// `endpoint` each backend replaces), and the queue and retry rules for its
/// own `sending_queue` and `retry_on_failure`.
impl ComponentConfig for LoadBalancingConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        let lb = self;
        for (path, message) in lb.problems() {
            errors.push(c.setting(&path, message));
        }
        if let Some(key) = lb.routing_key {
            for p in &c.pipelines {
                let signal = p.id.signal;
                if !key.signals().contains(&signal) {
                    errors.push(c.setting(
                        &["routing_key"],
                        format!(
                            "`{}` does not route {signal} (pipeline `{}`); the Collector routes {signal} by {}",
                            key.as_str(),
                            p.id,
                            [
                                RoutingKey::TraceId,
                                RoutingKey::Service,
                                RoutingKey::Resource,
                                RoutingKey::Metric,
                                RoutingKey::StreamId,
                            ]
                            .iter()
                            .filter(|k| k.signals().contains(&signal))
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                        ),
                    ));
                }
            }
        }
        let otlp = &lb.protocol.otlp;
        if matches!(otlp.compression, Compression::Zlib | Compression::Deflate) {
            errors.push(c.setting(
                &["protocol", "otlp", "compression"],
                "gRPC supports gzip, zstd, snappy or none (zlib and deflate are for otlphttp)",
            ));
        }
        // The otlp exporter's checks, run on `protocol.otlp` as if it were a
        // component of its own and reported under its real key.
        let nested = c.nested(&["protocol", "otlp"]);
        check_headers(&nested, &otlp.headers, errors);
        check_client(
            &nested,
            &otlp.timeout,
            &otlp.tls,
            &otlp.retry_on_failure,
            &otlp.sending_queue,
            errors,
        );
        // Its own queue and retry; its `timeout` may be 0 (none), which
        // `check_client` would refuse, so that check is given a set one.
        check_client(
            c,
            &GoDuration(Duration::from_secs(1)),
            &otlp.tls,
            &lb.retry_on_failure,
            &lb.sending_queue,
            errors,
        );
        check_storage(c, &["sending_queue"], &lb.sending_queue, errors);
        if otlp.sending_queue.storage.is_some() {
            errors.push(c.setting(
                &["protocol", "otlp", "sending_queue", "storage"],
                "not supported: the per-backend queues are in memory; put `storage` on the load_balancing exporter's own `sending_queue` (a record leaves its log only once its parts reached their backends)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_the_collector() {
        assert_eq!(k8s_service("gw").unwrap(), ("gw".into(), None));
        assert_eq!(
            k8s_service("gw.obs").unwrap(),
            ("gw".into(), Some("obs".into()))
        );
        assert!(k8s_service("gw.obs.svc.cluster.local").is_ok());
        assert!(k8s_service("gw.obs.svc").is_err());
        assert!(k8s_service("gw.obs.x.cluster").is_err());
        assert!(k8s_service("").is_err());
    }

    #[test]
    fn unset_routing_key_depends_on_the_signal() {
        let c = LoadBalancingConfig::default();
        assert_eq!(c.routing_key_for(Signal::Traces), RoutingKey::TraceId);
        assert_eq!(c.routing_key_for(Signal::Metrics), RoutingKey::Service);
        assert!(!RoutingKey::StreamId.signals().contains(&Signal::Traces));
        assert!(RoutingKey::TraceId.signals().contains(&Signal::Logs));
    }
}
