//! Small HTTP endpoints beside the pipelines: the `health_check` extension
//! (200 while every pipeline runs, 503 while starting or stopping) and the
//! self-metrics endpoint (`/metrics`, Prometheus text).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use tern_core::telemetry::Telemetry;

use crate::serve::{self, Shutdown, response as text};

/// Whether the collector is ready; flipped by the service.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks all pipelines running (true) or starting / stopping (false).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// True when all pipelines run.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// Serves `path` with `respond`; anything else is a 404.
async fn serve_path<F>(
    listener: tokio::net::TcpListener,
    path: String,
    shutdown: Shutdown,
    respond: F,
) where
    F: Fn(&http::Request<hyper::body::Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let state = Arc::new((path, respond));
    let make = move |_peer: SocketAddr| {
        let state = state.clone();
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (path, respond) = &*state;
            let response = if req.uri().path() == path.as_str() {
                respond(&req)
            } else {
                text(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    format!("not found; try {path}\n"),
                )
            };
            std::future::ready(Ok::<_, Infallible>(response))
        })
    };
    serve::serve(listener, serve::Protocol::Auto, None, None, shutdown, make).await;
}

/// Serves the health endpoint on `path`.
pub async fn run_health(
    listener: tokio::net::TcpListener,
    path: String,
    health: Arc<Health>,
    shutdown: Shutdown,
) {
    serve_path(listener, path, shutdown, move |_req| {
        if health.is_ready() {
            text(
                StatusCode::OK,
                "application/json",
                r#"{"status":"Server available"}"#,
            )
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                r#"{"status":"Server not available"}"#,
            )
        }
    })
    .await;
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

/// Serves a `prometheus` exporter's `/metrics` (text or OpenMetrics by
/// `Accept`, gzip by `Accept-Encoding`).
pub async fn run_scrape(
    listener: tokio::net::TcpListener,
    handler: Arc<tern_exporters::prometheus::ScrapeHandler>,
    shutdown: Shutdown,
) {
    serve_path(listener, "/metrics".into(), shutdown, move |req| {
        let header = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let scrape = handler.scrape(&header(header::ACCEPT), &header(header::ACCEPT_ENCODING));
        let mut r = text(StatusCode::OK, scrape.content_type, scrape.body);
        if let Some(encoding) = scrape.content_encoding {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        r
    })
    .await;
}
