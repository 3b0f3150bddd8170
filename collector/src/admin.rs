//! Small HTTP endpoints beside the pipelines: the `health_check` extension
//! (200 while every pipeline runs, 503 while starting or stopping) and the
//! self-metrics endpoint (`/metrics`, Prometheus text, with Tern's own
//! resource as `target_info`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use tern_config::{Component, HealthCheckConfig};
use tern_core::build::{Answer, BuildError, Built, Context, Serve, Server};
use tern_core::telemetry::Telemetry;

use crate::serve::{self, Shutdown, response as text};

pub use tern_core::build::Health;

/// Serves what `route` answers for a request; where it answers nothing, a
/// 404.
pub async fn serve_routes<F>(listener: tokio::net::TcpListener, shutdown: Shutdown, route: F)
where
    F: Fn(&http::Request<hyper::body::Incoming>) -> Option<Response<Full<Bytes>>>
        + Send
        + Sync
        + 'static,
{
    let route = Arc::new(route);
    let make = move |_peer: SocketAddr| {
        let route = route.clone();
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let response = route(&req).unwrap_or_else(|| {
                text(StatusCode::NOT_FOUND, "text/plain", "404 page not found\n")
            });
            std::future::ready(Ok::<_, Infallible>(response))
        })
    };
    serve::serve(
        listener,
        serve::Protocol::Auto,
        serve::Limits::default(),
        None,
        None,
        shutdown,
        make,
    )
    .await;
}

/// Serves `path` with `respond`; anything else is a 404 that names `path`.
async fn serve_path<F>(
    listener: tokio::net::TcpListener,
    path: String,
    shutdown: Shutdown,
    respond: F,
) where
    F: Fn(&http::Request<hyper::body::Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    serve_routes(listener, shutdown, move |req| {
        Some(if req.uri().path() == path.as_str() {
            respond(req)
        } else {
            text(
                StatusCode::NOT_FOUND,
                "text/plain",
                format!("not found; try {path}\n"),
            )
        })
    })
    .await;
}

/// Builds the `health_check` extension: its path answers 200 while ready,
/// 503 otherwise, with the JSON status, or with `response_body.healthy` /
/// `unhealthy` as plain text when that is set (as the Collector does).
pub fn build_health_check(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let config = ctx.settings::<HealthCheckConfig>(c)?.clone();
    let health = ctx.health.clone();
    let body = config.response_body;
    let answer = move |_: &http::HeaderMap| {
        let ready = health.is_ready();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let (content_type, text) = match (&body, ready) {
            (Some(b), true) => ("text/plain; charset=utf-8", b.healthy.clone()),
            (Some(b), false) => ("text/plain; charset=utf-8", b.unhealthy.clone()),
            (None, true) => (
                "application/json",
                r#"{"status":"Server available"}"#.into(),
            ),
            (None, false) => (
                "application/json",
                r#"{"status":"Server not available"}"#.into(),
            ),
        };
        let mut r = Response::new(Bytes::from(text));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    Ok(Built {
        servers: vec![Server {
            what: format!("extension {}", ctx.id),
            key: format!("extensions.{}.endpoint", ctx.id),
            endpoint: config.endpoint,
            serve: Serve::Get {
                path: config.path,
                answer: Arc::new(answer),
            },
        }],
        ..Built::default()
    })
}

/// Serves `path` with `answer` (a component's [`Serve::Get`]); anything
/// else is a 404 that names `path`.
pub async fn serve_get(
    listener: tokio::net::TcpListener,
    path: String,
    answer: Answer,
    shutdown: Shutdown,
) {
    serve_path(listener, path, shutdown, move |req| {
        answer(req.headers()).map(Full::new)
    })
    .await;
}

/// Tern's own resource, as the Collector builds its own: `service.name`,
/// `service.version` and a random `service.instance.id` (a UUID v4), then
/// `service.telemetry.resource` over them, where a null value removes one.
pub fn own_resource(configured: &BTreeMap<String, Option<String>>) -> BTreeMap<String, String> {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    // Version 4, variant 10xx.
    let (a, b) = ((a & !0xf000) | 0x4000, (b & !(0xc << 60)) | (0x8 << 60));
    let instance = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    );
    let mut resource = BTreeMap::from([
        ("service.name".to_string(), "tern".to_string()),
        (
            "service.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("service.instance.id".to_string(), instance),
    ]);
    for (key, value) in configured {
        match value {
            Some(value) => resource.insert(key.clone(), value.clone()),
            None => resource.remove(key),
        };
    }
    resource
}

/// Publishes `resource` as the `target_info` gauge (value 1), one label per
/// attribute, names sanitized as the Prometheus exporter does (`.` and any
/// other character outside `[a-zA-Z0-9_]` become `_`; a leading digit gets
/// `key_`).
pub fn publish_target_info(telemetry: &Telemetry, resource: &BTreeMap<String, String>) {
    let names: Vec<(String, &str)> = resource
        .iter()
        .map(|(key, value)| {
            let mut name: String = key
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            if name.starts_with(|c: char| c.is_ascii_digit()) {
                name.insert_str(0, "key_");
            }
            (name, value.as_str())
        })
        .collect();
    let labels: Vec<(&str, &str)> = names.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    telemetry
        .gauge("target_info", "Target metadata", &labels)
        .set(1);
}

/// Serves `/metrics` with Tern's own metrics.
pub async fn run_metrics(
    listener: tokio::net::TcpListener,
    telemetry: Arc<Telemetry>,
    shutdown: Shutdown,
) {
    serve_path(listener, "/metrics".into(), shutdown, move |_req| {
        text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            telemetry.render(),
        )
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(port: u16) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn health_answers_the_configured_body_for_each_state() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let health = Arc::new(Health::default());
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let yaml = "extensions:\n  health_check:\n    path: /health\n    response_body: {healthy: up, unhealthy: down}\nreceivers:\n  otlp:\n    protocols: {grpc: {endpoint: '127.0.0.1:0'}}\nexporters:\n  nop:\nservice:\n  extensions: [health_check]\n  pipelines:\n    traces: {receivers: [otlp], exporters: [nop]}\n";
        let config =
            tern_config::load_sources(&[("t.yaml".into(), yaml.into())], &|_| None).unwrap();
        let c = config.extensions.values().next().unwrap();
        let telemetry = Arc::new(Telemetry::new());
        let ctx = Context {
            id: c.id.to_string(),
            config: &config,
            telemetry: &telemetry,
            resource: &BTreeMap::new(),
            health: &health,
            consumers: Arc::default(),
        };
        let server = build_health_check(&ctx, c).unwrap().servers.remove(0);
        let Serve::Get { path, answer } = server.serve else {
            panic!("a GET endpoint");
        };
        tokio::spawn(serve_get(listener, path, answer, shutdown));
        let answer = get(port).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.ends_with("\r\n\r\ndown"), "{answer}");
        health.set_ready(true);
        let answer = get(port).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nup"), "{answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: text/plain; charset=utf-8"),
            "{answer}"
        );
    }
}
