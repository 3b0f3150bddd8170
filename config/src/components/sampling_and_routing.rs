//! The rules of the components whose settings live in their own modules at
//! the crate's root (`probabilistic_sampler`, `tail_sampling`,
//! `load_balancing`), as [`ComponentConfig`]s: each reports the problems
//! its module finds, at their keys. (Kept here while those modules are
//! being edited elsewhere; they belong in them.)

use super::client::check_headers;
use super::{Check, ComponentConfig, Compression, check_client};
use crate::types::GoDuration;
use crate::{
    ConfigError, LoadBalancingConfig, ProbabilisticSamplerConfig, RoutingKey, TailSamplingConfig,
};

impl ComponentConfig for ProbabilisticSamplerConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        for (key, problem) in self.problems() {
            errors.push(c.setting(&[key], problem));
        }
    }
}

impl ComponentConfig for TailSamplingConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        for (path, problem) in self.problems() {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            // Sequence indices as the parser writes them: `policies[1].name`.
            let mut key = c.key(&[]);
            for p in &path {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    key.push_str(&format!("[{p}]"));
                } else {
                    key.push('.');
                    key.push_str(p);
                }
            }
            errors.push(c.at(c.node.locate(&path), key, problem));
        }
    }
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
            &GoDuration(std::time::Duration::from_secs(1)),
            &otlp.tls,
            &lb.retry_on_failure,
            &lb.sending_queue,
            errors,
        );
    }
}
