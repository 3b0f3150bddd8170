//! Pure checks over a typed [`Config`]: the pipeline graph, signal support,
//! required settings and listen-port clashes. No I/O; every problem is
//! returned, each pointing at the line that causes it.

use crate::components::{self, Kind};
use crate::yaml::{Loc, Node};
use crate::{
    ComponentId, Config, ConfigError, Endpoint, ExporterConfig, ExtensionConfig, MetricsLevel,
    ProcessorConfig, ReceiverConfig, Ref, Target,
};

fn at(loc: &Loc, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        loc: Some(loc.clone()),
        key: key.into(),
        message: message.into(),
    }
}

/// A problem with the setting at `path` of component `c` in `section`
/// (`receivers`, `processors`, `exporters`): keyed `section.id.path`, at the
/// line of the deepest key of `path` that is written, or of the component's
/// id when none is.
fn setting<T>(
    section: &str,
    c: &crate::Component<T>,
    path: &[&str],
    message: impl Into<String>,
) -> ConfigError {
    let key = format!("{section}.{}.{}", c.id, path.join("."));
    let loc = if path.is_empty() || c.node.get(path[0]).is_none() {
        &c.loc
    } else {
        c.node.locate(path)
    };
    at(loc, key, message)
}

/// Returns every problem in `config`; empty means it can run.
pub fn validate(config: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    check_settings(config, &mut errors);
    check_pipelines(config, &mut errors);
    check_ports(config, &mut errors);
    errors
}

fn check_settings(config: &Config, errors: &mut Vec<ConfigError>) {
    for c in config.receivers.values() {
        let ReceiverConfig::Otlp(otlp) = &c.config;
        check_receiver_keys(c, otlp, errors);
        if otlp.protocols.grpc.as_ref().is_none() && otlp.protocols.http.as_ref().is_none() {
            errors.push(at(
                &c.loc,
                format!("receivers.{}.protocols", c.id),
                "must enable at least one of grpc or http",
            ));
        }
        if let Some(http) = otlp.protocols.http.as_ref() {
            let paths = [
                ("traces_url_path", &http.traces_url_path),
                ("metrics_url_path", &http.metrics_url_path),
                ("logs_url_path", &http.logs_url_path),
            ];
            for (key, path) in paths {
                if !path.starts_with('/') {
                    errors.push(setting(
                        "receivers",
                        c,
                        &["protocols", "http", key],
                        format!("must start with `/`, found `{path}`"),
                    ));
                }
            }
        }
        let tls = [
            (
                "grpc",
                otlp.protocols.grpc.as_ref().and_then(|g| g.tls.as_ref()),
            ),
            (
                "http",
                otlp.protocols.http.as_ref().and_then(|h| h.tls.as_ref()),
            ),
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
                errors.push(setting(
                    "receivers",
                    c,
                    &["protocols", proto, "tls", key],
                    "is required (cert_file or cert_pem, and key_file or key_pem)",
                ));
            }
            if let Some(t) = tls {
                check_server_tls(c, proto, t, errors);
            }
        }
        if let Some(grpc) = otlp.protocols.grpc.as_ref()
            && grpc.max_recv_msg_size_mib == 0
        {
            errors.push(setting(
                "receivers",
                c,
                &["protocols", "grpc", "max_recv_msg_size_mib"],
                "must be at least 1",
            ));
        }
    }
    for c in config.processors.values() {
        let b = match &c.config {
            ProcessorConfig::Batch(b) => b,
            ProcessorConfig::MemoryLimiter(m) => {
                check_memory_limiter(c, m, errors);
                continue;
            }
            ProcessorConfig::ProbabilisticSampler(p) => {
                for (key, problem) in p.problems() {
                    errors.push(setting("processors", c, &[key], problem));
                }
                continue;
            }
            ProcessorConfig::TailSampling(t) => {
                for (path, problem) in t.problems() {
                    let path: Vec<&str> = path.iter().map(String::as_str).collect();
                    // Sequence indices as the parser writes them: `policies[1].name`.
                    let mut key = format!("processors.{}", c.id);
                    for p in &path {
                        if p.bytes().all(|b| b.is_ascii_digit()) {
                            key.push_str(&format!("[{p}]"));
                        } else {
                            key.push('.');
                            key.push_str(p);
                        }
                    }
                    errors.push(at(c.node.locate(&path), key, problem));
                }
                continue;
            }
        };
        if b.send_batch_max_size != 0 && b.send_batch_max_size < b.send_batch_size {
            errors.push(setting(
                "processors",
                c,
                &["send_batch_max_size"],
                format!(
                    "must be 0 or at least send_batch_size ({})",
                    b.send_batch_size
                ),
            ));
        }
        if b.send_batch_size == 0 && b.timeout.0.is_zero() {
            errors.push(at(
                &c.loc,
                format!("processors.{}", c.id),
                "send_batch_size and timeout cannot both be 0",
            ));
        }
    }
    for c in config.extensions.values() {
        match &c.config {
            ExtensionConfig::HealthCheck(h) => check_health_check(c, h, errors),
            ExtensionConfig::Pprof(p) => check_pprof(c, p, errors),
            ExtensionConfig::ZPages(_) => {}
        }
    }
    for c in config.exporters.values() {
        match &c.config {
            ExporterConfig::Otlp(o) => {
                if matches!(
                    o.compression,
                    crate::Compression::Zlib | crate::Compression::Deflate
                ) {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["compression"],
                        "gRPC supports gzip, zstd, snappy or none (zlib and deflate are for otlphttp)",
                    ));
                }
                if o.endpoint.trim().is_empty() {
                    errors.push(setting("exporters", c, &["endpoint"], "is required"));
                } else if let Err(e) = Target::parse_grpc(&o.endpoint, o.tls.insecure) {
                    errors.push(setting("exporters", c, &["endpoint"], e));
                }
                check_client(
                    c,
                    &o.timeout,
                    &o.tls,
                    &o.retry_on_failure,
                    &o.sending_queue,
                    errors,
                );
            }
            ExporterConfig::OtlpHttp(h) => {
                if !h.proxy_url.is_empty()
                    && let Err(e) = crate::ProxyUrl::parse(&h.proxy_url)
                {
                    errors.push(setting("exporters", c, &["proxy_url"], e));
                }
                check_otlphttp(config, c, h, errors);
                check_client(
                    c,
                    &h.timeout,
                    &h.tls,
                    &h.retry_on_failure,
                    &h.sending_queue,
                    errors,
                );
            }
            ExporterConfig::Prometheus(p) => {
                if p.endpoint.is_none() {
                    errors.push(setting("exporters", c, &["endpoint"], "is required"));
                }
                if p.max_series == 0 {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["max_series"],
                        "must be at least 1",
                    ));
                }
            }
            ExporterConfig::PrometheusRemoteWrite(p) => {
                if p.endpoint.trim().is_empty() {
                    errors.push(setting("exporters", c, &["endpoint"], "is required"));
                } else if let Err(e) = Target::parse_url(&p.endpoint) {
                    errors.push(setting("exporters", c, &["endpoint"], e));
                }
                let q = &p.remote_write_queue;
                if q.enabled && q.queue_size == 0 {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["remote_write_queue", "queue_size"],
                        "must be at least 1 while the queue is enabled",
                    ));
                }
                if q.num_consumers == 0 {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["remote_write_queue", "num_consumers"],
                        "must be at least 1",
                    ));
                }
                if p.wal.as_ref().is_some() {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["wal"],
                        "not supported: Tern keeps no write-ahead log; unsent batches wait in `remote_write_queue` (in memory)",
                    ));
                }
                if p.max_batch_size_bytes < 1024 {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["max_batch_size_bytes"],
                        "must be at least 1024",
                    ));
                }
                if p.max_series == 0 {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["max_series"],
                        "must be at least 1",
                    ));
                }
                check_client(
                    c,
                    &p.timeout,
                    &p.tls,
                    &p.retry_on_failure,
                    &q.queue(),
                    errors,
                );
            }
            ExporterConfig::LoadBalancing(lb) => check_loadbalancing(config, c, lb, errors),
            ExporterConfig::File(_) | ExporterConfig::Debug(_) | ExporterConfig::Nop(_) => {}
        }
        if let ExporterConfig::File(f) = &c.config {
            if f.path.trim().is_empty() {
                errors.push(setting("exporters", c, &["path"], "is required"));
            }
            if let Some(r) = f.rotation.as_ref()
                && r.localtime
            {
                errors.push(setting(
                    "exporters",
                    c,
                    &["rotation", "localtime"],
                    "not supported: Tern names rotated files in UTC",
                ));
            }
            if f.group_by.enabled {
                let stars = f.path.matches('*').count();
                if stars != 1 {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["path"],
                        format!("must contain exactly one `*` when group_by is enabled (found {stars}): the resource attribute's value replaces it"),
                    ));
                } else if f.path.starts_with('*') {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["path"],
                        "must not start with `*` when group_by is enabled: files stay under the part before it",
                    ));
                }
                if f.group_by.resource_attribute.is_empty() {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["group_by", "resource_attribute"],
                        "must not be empty when group_by is enabled",
                    ));
                }
                if f.group_by.max_open_files == 0 {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["group_by", "max_open_files"],
                        "must be at least 1",
                    ));
                }
            }
            if f.create_directory {
                if f.directory_mode().is_none() {
                    errors.push(setting(
                        "exporters",
                        c,
                        &["directory_permissions"],
                        format!(
                            "must be octal permission bits such as `0755`, found `{}`",
                            f.directory_permissions
                        ),
                    ));
                }
            } else if !f.directory_permissions.is_empty() {
                errors.push(setting(
                    "exporters",
                    c,
                    &["directory_permissions"],
                    "only applies with `create_directory: true`",
                ));
            }
            if let Some(r) = f.rotation.as_ref()
                && r.max_megabytes == 0
            {
                errors.push(setting(
                    "exporters",
                    c,
                    &["rotation", "max_megabytes"],
                    "must be at least 1",
                ));
            }
        }
    }
}

fn check_health_check(
    c: &crate::Component<ExtensionConfig>,
    h: &crate::HealthCheckConfig,
    errors: &mut Vec<ConfigError>,
) {
    if h.check_collector_pipeline.enabled {
        errors.push(setting(
            "extensions",
            c,
            &["check_collector_pipeline", "enabled"],
            "not supported: the Collector deprecated this check and ignores it; remove it or set `enabled: false`",
        ));
    }
}

/// Whether `name` is an HTTP header name (an RFC 9110 token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` can be sent as an HTTP header value.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The `tls` keys of receiver `c`'s protocol `proto` beyond the required
/// certificate and key.
fn check_server_tls(
    c: &crate::Component<ReceiverConfig>,
    proto: &str,
    t: &crate::TlsServerConfig,
    errors: &mut Vec<ConfigError>,
) {
    let mut error = |key: &str, message: String| {
        errors.push(setting(
            "receivers",
            c,
            &["protocols", proto, "tls", key],
            message,
        ));
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

/// The `otlp` receiver's CORS, response header, gRPC transport and TLS keys.
fn check_receiver_keys(
    c: &crate::Component<ReceiverConfig>,
    otlp: &crate::OtlpReceiverConfig,
    errors: &mut Vec<ConfigError>,
) {
    let mut error = |path: &[&str], message: String| {
        errors.push(setting("receivers", c, path, message));
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

fn check_memory_limiter(
    c: &crate::Component<ProcessorConfig>,
    m: &crate::MemoryLimiterConfig,
    errors: &mut Vec<ConfigError>,
) {
    match (m.limit_mib > 0, m.limit_percentage > 0) {
        (false, false) => errors.push(at(
            &c.loc,
            format!("processors.{}", c.id),
            "set limit_mib or limit_percentage",
        )),
        (true, true) => errors.push(setting(
            "processors",
            c,
            &["limit_percentage"],
            "set either limit_mib or limit_percentage, not both",
        )),
        _ => {}
    }
    if m.limit_mib > 0 && m.spike_limit_mib >= m.limit_mib {
        errors.push(setting(
            "processors",
            c,
            &["spike_limit_mib"],
            format!("must be below limit_mib ({})", m.limit_mib),
        ));
    }
    if m.limit_percentage > 100 {
        errors.push(setting(
            "processors",
            c,
            &["limit_percentage"],
            "must be at most 100",
        ));
    }
    if m.limit_percentage > 0 && m.spike_limit_percentage >= m.limit_percentage {
        errors.push(setting(
            "processors",
            c,
            &["spike_limit_percentage"],
            format!("must be below limit_percentage ({})", m.limit_percentage),
        ));
    }
    if m.check_interval.0.is_zero() {
        errors.push(setting(
            "processors",
            c,
            &["check_interval"],
            "must be greater than zero (it has no default, as in the Collector)",
        ));
    }
}

fn check_client(
    c: &crate::Component<ExporterConfig>,
    timeout: &crate::GoDuration,
    tls: &crate::TlsClientConfig,
    retry: &crate::RetryConfig,
    queue: &crate::QueueConfig,
    errors: &mut Vec<ConfigError>,
) {
    if timeout.0.is_zero() {
        errors.push(setting("exporters", c, &["timeout"], "must be above 0"));
    }
    if tls.cert_file.is_empty() != tls.key_file.is_empty() {
        errors.push(setting(
            "exporters",
            c,
            &["tls"],
            "cert_file and key_file must be set together",
        ));
    }
    if retry.enabled {
        if retry.initial_interval.0.is_zero() {
            errors.push(setting(
                "exporters",
                c,
                &["retry_on_failure", "initial_interval"],
                "must be above 0",
            ));
        }
        if retry.max_interval < retry.initial_interval {
            errors.push(setting(
                "exporters",
                c,
                &["retry_on_failure", "max_interval"],
                "must be at least initial_interval",
            ));
        }
        if retry.multiplier < 1.0 {
            errors.push(setting(
                "exporters",
                c,
                &["retry_on_failure", "multiplier"],
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&retry.randomization_factor) {
            errors.push(setting(
                "exporters",
                c,
                &["retry_on_failure", "randomization_factor"],
                "must be between 0 and 1",
            ));
        }
    }
    check_queue_batch(c, queue, errors);
    if queue.enabled {
        if queue.num_consumers == Some(0) {
            errors.push(setting(
                "exporters",
                c,
                &["sending_queue", "num_consumers"],
                "must be at least 1",
            ));
        }
        if queue.queue_size == 0 {
            errors.push(setting(
                "exporters",
                c,
                &["sending_queue", "queue_size"],
                "must be at least 1",
            ));
        }
        if queue.max_size_mib == 0 {
            errors.push(setting(
                "exporters",
                c,
                &["sending_queue", "max_size_mib"],
                "must be at least 1",
            ));
        }
    }
}

/// `exporters.loadbalancing`: its own rules, the routing key of each
/// pipeline's signal, the `otlp` exporter's rules for `protocol.otlp`
/// (whose `endpoint` each backend replaces), and the queue and retry
/// rules for its own `sending_queue` and `retry_on_failure`.
fn check_loadbalancing(
    config: &Config,
    c: &crate::Component<ExporterConfig>,
    lb: &crate::LoadBalancingConfig,
    errors: &mut Vec<ConfigError>,
) {
    for (path, message) in lb.problems() {
        errors.push(setting("exporters", c, &path, message));
    }
    if let Some(key) = lb.routing_key {
        for p in config.service.pipelines.values() {
            let signal = p.id.signal;
            if p.exporters.iter().any(|r| r.id == c.id) && !key.signals().contains(&signal) {
                errors.push(setting(
                    "exporters",
                    c,
                    &["routing_key"],
                    format!(
                        "`{}` does not route {signal} (pipeline `{}`); the Collector routes {signal} by {}",
                        key.as_str(),
                        p.id,
                        [
                            crate::RoutingKey::TraceId,
                            crate::RoutingKey::Service,
                            crate::RoutingKey::Resource,
                            crate::RoutingKey::Metric,
                            crate::RoutingKey::StreamId,
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
    if matches!(
        otlp.compression,
        crate::Compression::Zlib | crate::Compression::Deflate
    ) {
        errors.push(setting(
            "exporters",
            c,
            &["protocol", "otlp", "compression"],
            "gRPC supports gzip, zstd, snappy or none (zlib and deflate are for otlphttp)",
        ));
    }
    // The otlp exporter's checks, run on `protocol.otlp` as if it were a
    // component of its own and reported under its real key.
    let node = c.node.get("protocol").and_then(|p| p.get("otlp"));
    let inner = crate::Component {
        id: c.id.clone(),
        config: ExporterConfig::Otlp(otlp.clone()),
        loc: node.map_or_else(|| c.loc.clone(), |n| n.loc.clone()),
        node: node.cloned().unwrap_or_else(|| Node {
            kind: crate::yaml::NodeKind::Null,
            loc: c.loc.clone(),
        }),
    };
    let mut found = Vec::new();
    check_client(
        &inner,
        &otlp.timeout,
        &otlp.tls,
        &otlp.retry_on_failure,
        &otlp.sending_queue,
        &mut found,
    );
    let own = format!("exporters.{}.", c.id);
    let nested = format!("exporters.{}.protocol.otlp.", c.id);
    errors.extend(found.into_iter().map(|mut e| {
        e.key = e.key.replacen(&own, &nested, 1);
        e
    }));
    // Its own queue and retry; its `timeout` may be 0 (none), which
    // `check_client` would refuse, so that check is given a set one.
    check_client(
        c,
        &crate::GoDuration(std::time::Duration::from_secs(1)),
        &otlp.tls,
        &lb.retry_on_failure,
        &lb.sending_queue,
        errors,
    );
}

/// `sending_queue.batch`, with the Collector's rules.
fn check_queue_batch(
    c: &crate::Component<ExporterConfig>,
    queue: &crate::QueueConfig,
    errors: &mut Vec<ConfigError>,
) {
    let Some((b, sizer)) = queue.batching() else {
        return;
    };
    if !queue.enabled {
        errors.push(setting(
            "exporters",
            c,
            &["sending_queue", "batch"],
            "batching happens in the queue: it needs `sending_queue.enabled: true`",
        ));
    }
    let mut bad = |key: &str, message: String| {
        errors.push(setting(
            "exporters",
            c,
            &["sending_queue", "batch", key],
            message,
        ));
    };
    if sizer == crate::Sizer::Requests {
        bad(
            "sizer",
            "`batch` supports only `items` or `bytes` sizer, found `requests`".into(),
        );
    }
    if b.flush_timeout.0.is_zero() {
        bad("flush_timeout", "must be above 0".into());
    }
    if b.max_size > 0 && b.max_size < b.min_size {
        bad(
            "max_size",
            format!(
                "({}) must be at least min_size ({})",
                b.max_size, b.min_size
            ),
        );
    }
    if sizer == queue.sizer && b.min_size > queue.queue_size {
        bad(
            "min_size",
            format!(
                "({}) must be at most sending_queue.queue_size ({}), or the queue never holds a full batch",
                b.min_size, queue.queue_size
            ),
        );
    }
    if !b.partition.metadata_keys.is_empty() {
        errors.push(setting(
            "exporters",
            c,
            &["sending_queue", "batch", "partition", "metadata_keys"],
            "not supported: Tern batches all of an exporter's data together",
        ));
    }
}

fn check_otlphttp(
    config: &Config,
    c: &crate::Component<ExporterConfig>,
    h: &crate::OtlpHttpExporterConfig,
    errors: &mut Vec<ConfigError>,
) {
    let urls = [
        ("endpoint", &h.endpoint, None),
        (
            "traces_endpoint",
            &h.traces_endpoint,
            Some(crate::Signal::Traces),
        ),
        (
            "metrics_endpoint",
            &h.metrics_endpoint,
            Some(crate::Signal::Metrics),
        ),
        ("logs_endpoint", &h.logs_endpoint, Some(crate::Signal::Logs)),
    ];
    for (k, url, _) in &urls {
        if !url.is_empty()
            && let Err(e) = Target::parse_url(url)
        {
            errors.push(setting("exporters", c, &[k], e));
        }
    }
    if h.endpoint.is_empty() {
        for p in config.service.pipelines.values() {
            if !p.exporters.iter().any(|r| r.id == c.id) {
                continue;
            }
            let missing = urls
                .iter()
                .any(|(_, url, signal)| *signal == Some(p.id.signal) && url.is_empty());
            if missing {
                errors.push(setting(
                    "exporters",
                    c,
                    &["endpoint"],
                    format!(
                        "is required (or {}_endpoint) for pipeline `{}`",
                        p.id.signal, p.id
                    ),
                ));
            }
        }
    }
}

fn check_refs(
    config: &Config,
    refs: &[Ref],
    kind: Kind,
    pipeline: &crate::PipelineConfig,
    errors: &mut Vec<ConfigError>,
) {
    let key = format!("service.pipelines.{}.{}", pipeline.id, kind.section());
    // Receivers and exporters may also be connectors (checked as one graph
    // by `graph::check`).
    let connector = matches!(kind, Kind::Receiver | Kind::Exporter);
    for r in refs {
        let defined = match kind {
            Kind::Receiver => config.receivers.contains_key(&r.id),
            Kind::Processor => config.processors.contains_key(&r.id),
            Kind::Exporter => config.exporters.contains_key(&r.id),
            Kind::Extension => config.extensions.contains_key(&r.id),
            Kind::Connector => config.connectors.contains_key(&r.id),
        };
        if config.invalid.contains(&(kind, r.id.clone()))
            || (connector && config.invalid.contains(&(Kind::Connector, r.id.clone())))
        {
            continue;
        }
        if connector && !defined && config.connectors.contains_key(&r.id) {
            continue;
        }
        if !defined {
            let also = if connector { " or `connectors`" } else { "" };
            errors.push(at(
                &r.loc,
                key.clone(),
                format!(
                    "{} `{}` is not defined in `{}`{also}",
                    kind.noun(),
                    r.id,
                    kind.section()
                ),
            ));
            continue;
        }
        let signal = pipeline.id.signal;
        if let Some(info) = components::lookup(kind, &r.id.kind)
            && !info.signals.contains(&signal)
        {
            errors.push(at(
                &r.loc,
                key.clone(),
                format!("{} `{}` does not support {signal}", kind.noun(), r.id),
            ));
        }
    }
}

fn check_pipelines(config: &Config, errors: &mut Vec<ConfigError>) {
    let service = &config.service;
    for ext in &service.extensions {
        if !config.extensions.contains_key(&ext.id)
            && !config.invalid.contains(&(Kind::Extension, ext.id.clone()))
        {
            errors.push(at(
                &ext.loc,
                "service.extensions",
                format!("extension `{}` is not defined in `extensions`", ext.id),
            ));
        }
    }
    if service.pipelines.is_empty() {
        errors.push(ConfigError {
            loc: service.loc.clone(),
            key: "service.pipelines".into(),
            message: "at least one pipeline is required".into(),
        });
    }
    for p in service.pipelines.values() {
        let key = format!("service.pipelines.{}", p.id);
        if p.receivers.is_empty() {
            errors.push(at(
                &p.loc,
                format!("{key}.receivers"),
                "at least one receiver is required",
            ));
        }
        if p.exporters.is_empty() {
            errors.push(at(
                &p.loc,
                format!("{key}.exporters"),
                "at least one exporter is required",
            ));
        }
        check_refs(config, &p.receivers, Kind::Receiver, p, errors);
        check_refs(config, &p.processors, Kind::Processor, p, errors);
        check_refs(config, &p.exporters, Kind::Exporter, p, errors);
    }
    crate::graph::check(config, errors);
}

/// Every address Tern will listen on with this config, with where it is set.
pub fn listen_endpoints(config: &Config) -> Vec<(String, Endpoint, Loc)> {
    let mut out = Vec::new();
    let used = |id: &ComponentId| {
        config
            .service
            .pipelines
            .values()
            .any(|p| p.receivers.iter().any(|r| &r.id == id))
    };
    let loc_of = |node: &Node, path: &[&str]| node.locate(path).clone();
    for c in config.receivers.values().filter(|c| used(&c.id)) {
        let ReceiverConfig::Otlp(otlp) = &c.config;
        if let Some(grpc) = otlp.protocols.grpc.as_ref() {
            out.push((
                format!("receivers.{}.protocols.grpc.endpoint", c.id),
                grpc.endpoint.clone(),
                loc_of(&c.node, &["protocols", "grpc", "endpoint"]),
            ));
        }
        if let Some(http) = otlp.protocols.http.as_ref() {
            out.push((
                format!("receivers.{}.protocols.http.endpoint", c.id),
                http.endpoint.clone(),
                loc_of(&c.node, &["protocols", "http", "endpoint"]),
            ));
        }
    }
    for c in config.exporters.values() {
        let used = config
            .service
            .pipelines
            .values()
            .any(|p| p.exporters.iter().any(|r| r.id == c.id));
        if let (true, ExporterConfig::Prometheus(p)) = (used, &c.config)
            && let Some(endpoint) = &p.endpoint
        {
            out.push((
                format!("exporters.{}.endpoint", c.id),
                endpoint.clone(),
                loc_of(&c.node, &["endpoint"]),
            ));
        }
    }
    for ext in &config.service.extensions {
        if let Some(c) = config.extensions.get(&ext.id) {
            out.push((
                format!("extensions.{}.endpoint", c.id),
                c.config.endpoint().clone(),
                loc_of(&c.node, &["endpoint"]),
            ));
        }
    }
    let telemetry = &config.service.telemetry.metrics;
    if telemetry.level != MetricsLevel::None
        && let Some(address) = &telemetry.address
    {
        let (key, loc) = match &telemetry.loc {
            Some(loc) => ("service.telemetry.metrics", loc.clone()),
            // The default reader: point at `service` (or the document).
            None => (
                "service.telemetry.metrics (default reader)",
                config.service.loc.clone().unwrap_or(Loc {
                    file: "<defaults>".into(),
                    line: 0,
                    col: 0,
                }),
            ),
        };
        out.push((key.into(), address.clone(), loc));
    }
    out
}

fn check_ports(config: &Config, errors: &mut Vec<ConfigError>) {
    let endpoints = listen_endpoints(config);
    for (i, (key, endpoint, loc)) in endpoints.iter().enumerate() {
        if let Some((other_key, other, _)) = endpoints[..i]
            .iter()
            .find(|(_, other, _)| other.clashes_with(endpoint))
        {
            errors.push(at(
                loc,
                key.clone(),
                format!("`{endpoint}` clashes with {other_key} (`{other}`)"),
            ));
        }
    }
}

/// Extension settings Tern cannot honour.
/// `pprof`: Go's block and mutex profiles have no counterpart.
fn check_pprof(
    c: &crate::Component<ExtensionConfig>,
    p: &crate::PprofConfig,
    errors: &mut Vec<ConfigError>,
) {
    for (key, value) in [
        ("block_profile_fraction", p.block_profile_fraction),
        ("mutex_profile_fraction", p.mutex_profile_fraction),
    ] {
        if value != 0 {
            errors.push(setting(
                "extensions",
                c,
                &[key],
                "not supported: Go's block and mutex profiles have no counterpart in Tern (only 0 is accepted)",
            ));
        }
    }
}
