//! Where the backends come from: `static` (the list, once), `dns` (the
//! name's addresses every `interval`) and `k8s` ([`super::k8s`]). Each
//! resolver publishes the sorted endpoint list on a watch channel whenever
//! it changes, and counts as the Collector does:
//! `otelcol_loadbalancer_num_resolutions{resolver,success}`,
//! `otelcol_loadbalancer_num_backends{resolver}` and
//! `otelcol_loadbalancer_num_backend_updates{resolver}`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tern_config::{DnsResolverConfig, ResolverConfig};
use tern_core::telemetry::{Counter, Gauge, Telemetry};
use tokio::sync::watch;

use super::{dns, k8s};

/// A resolver's counters.
#[derive(Debug, Clone)]
pub struct ResolverMetrics {
    name: &'static str,
    succeeded: Counter,
    failed: Counter,
    backends: Gauge,
    updates: Counter,
}

impl ResolverMetrics {
    /// The counters of resolver `name` (`static`, `dns`, `k8s`).
    pub fn new(t: &Arc<Telemetry>, name: &'static str) -> Self {
        let resolutions = |success| {
            t.counter(
                "otelcol_loadbalancer_num_resolutions_total",
                "Number of times the resolver has triggered new resolutions.",
                &[("resolver", name), ("success", success)],
            )
        };
        ResolverMetrics {
            name,
            succeeded: resolutions("true"),
            failed: resolutions("false"),
            backends: t.gauge(
                "otelcol_loadbalancer_num_backends",
                "Current number of backends in use.",
                &[("resolver", name)],
            ),
            updates: t.counter(
                "otelcol_loadbalancer_num_backend_updates_total",
                "Number of times the list of backends was updated.",
                &[("resolver", name)],
            ),
        }
    }

    /// A resolution that failed.
    pub fn failed(&self) {
        self.failed.add(1);
    }

    /// A resolution that found `endpoints` (sorted): published when they
    /// differ from what `tx` holds.
    pub fn resolved(&self, endpoints: Vec<String>, tx: &watch::Sender<Option<Vec<String>>>) {
        self.succeeded.add(1);
        let n = endpoints.len();
        let changed = tx.send_if_modified(|current| {
            if current.as_ref() == Some(&endpoints) {
                return false;
            }
            *current = Some(endpoints);
            true
        });
        if changed {
            self.backends.set(n as i64);
            self.updates.add(1);
            tracing::info!(resolver = self.name, backends = n, "backends changed");
        }
    }
}

/// The resolver's name for metrics.
pub fn name(config: &ResolverConfig) -> &'static str {
    if config.dns.as_ref().is_some() {
        "dns"
    } else if config.k8s.as_ref().is_some() {
        "k8s"
    } else {
        "static"
    }
}

/// Runs the `dns` or `k8s` resolver until `stop` turns true, publishing on
/// `tx` (the `static` list is published once, when the exporter is built).
pub async fn run(
    exporter: String,
    config: ResolverConfig,
    metrics: ResolverMetrics,
    tx: watch::Sender<Option<Vec<String>>>,
    stop: watch::Receiver<bool>,
) {
    if let Some(d) = config.dns.as_ref() {
        run_dns(&exporter, d, &metrics, &tx, stop).await;
    } else if let Some(k) = config.k8s.as_ref() {
        k8s::run(&exporter, k, &metrics, &tx, stop).await;
    }
}

/// `host:port` of an address (IPv6 in brackets), or the bare address when
/// `port` is empty (the Collector's form, which the ring hashes).
pub fn endpoint(ip: IpAddr, port: &str) -> String {
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    if port.is_empty() {
        host
    } else {
        format!("{host}:{port}")
    }
}

async fn run_dns(
    exporter: &str,
    config: &DnsResolverConfig,
    metrics: &ResolverMetrics,
    tx: &watch::Sender<Option<Vec<String>>>,
    mut stop: watch::Receiver<bool>,
) {
    let nameserver: Option<SocketAddr> = config.nameserver.parse().ok();
    let mut tick =
        tokio::time::interval(config.interval.0.max(std::time::Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match dns::lookup(&config.hostname, nameserver, config.timeout.0).await {
            Ok(ips) => {
                let mut list: Vec<String> = ips
                    .into_iter()
                    .map(|ip| endpoint(ip, &config.port))
                    .collect();
                list.sort();
                metrics.resolved(list, tx);
            }
            Err(e) => {
                metrics.failed();
                tracing::warn!(exporter, hostname = %config.hostname, error = %e, "failed to resolve");
            }
        }
    }
}
