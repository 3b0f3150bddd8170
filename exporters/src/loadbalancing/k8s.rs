//! The `k8s` resolver: the ready addresses of a Service's EndpointSlices,
//! listed and then watched on the Kubernetes API as an informer does. A
//! list (`labelSelector=kubernetes.io/service-name=<name>`) gives the
//! slices and a `resourceVersion`; a watch from that version streams
//! `ADDED`, `MODIFIED` and `DELETED` events (and bookmarks) as JSON lines.
//! When the watch ends (its `timeoutSeconds`, a dropped connection) it is
//! resumed from the last version seen; when the API says that version is
//! gone (`410`), everything is listed again.
//!
//! The API is the in-cluster one: `KUBERNETES_SERVICE_HOST` and
//! `KUBERNETES_SERVICE_PORT` over HTTPS, verified with the service
//! account's `ca.crt` and authorised with its `token` (read again for each
//! call, as projected tokens rotate). `TERN_K8S_API` (for example
//! `http://127.0.0.1:8001` of `kubectl proxy`) replaces it with a plain
//! HTTP address; a service-account token is still sent when present.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value as Json;
use tern_config::{K8sResolverConfig, TlsClientConfig};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

use super::resolver::ResolverMetrics;
use crate::transport::HttpVersion;

const ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Wait before calling the API again after a failure.
const BACKOFF: Duration = Duration::from_secs(1);

/// Why a call to the API failed.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("cannot reach the Kubernetes API at {0}: {1}")]
    Connect(String, String),
    #[error("Kubernetes API: {0}")]
    Http(String),
    #[error("Kubernetes API answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("Kubernetes API sent something that is not JSON: {0}")]
    Json(String),
    #[error("the watched version is gone (410); listing again")]
    Gone,
}

/// Where the API is and how to talk to it.
struct Api {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, rustls_pki_types::ServerName<'static>)>,
    token_file: String,
}

impl Api {
    fn from_env() -> Result<Api, String> {
        let token_file = format!("{ACCOUNT}/token");
        if let Ok(url) = std::env::var("TERN_K8S_API") {
            let rest = url
                .strip_prefix("http://")
                .ok_or_else(|| format!("TERN_K8S_API must be http://host:port, found {url:?}"))?;
            let (host, port) = rest
                .trim_end_matches('/')
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
                .ok_or_else(|| format!("TERN_K8S_API must be http://host:port, found {url:?}"))?;
            return Ok(Api {
                host,
                port,
                tls: None,
                token_file,
            });
        }
        let host = std::env::var("KUBERNETES_SERVICE_HOST")
            .map_err(|_| "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST is not set (TERN_K8S_API gives the API's address outside a cluster)".to_string())?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(443);
        let tls = TlsClientConfig {
            ca_file: format!("{ACCOUNT}/ca.crt"),
            ..TlsClientConfig::default()
        };
        let tls = crate::tls::connector(&tls, &host, HttpVersion::Http1)
            .map_err(|e| format!("service account CA: {e}"))?;
        Ok(Api {
            host,
            port,
            tls: Some(tls),
            token_file,
        })
    }

    /// Sends a GET of `path_and_query`; the response body to read.
    async fn get(&self, path_and_query: &str) -> Result<hyper::body::Incoming, ApiError> {
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| ApiError::Connect(authority.clone(), e.to_string()))?;
        let mut request = http::Request::get(path_and_query)
            .header(http::header::HOST, &authority)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("tern/", env!("CARGO_PKG_VERSION")),
            );
        if let Ok(token) = std::fs::read_to_string(&self.token_file) {
            request = request.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            );
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| ApiError::Http(e.to_string()))?;
        let response = match &self.tls {
            None => send(TokioIo::new(tcp), request).await?,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| ApiError::Connect(authority.clone(), e.to_string()))?;
                send(TokioIo::new(tls), request).await?
            }
        };
        let status = response.status();
        if status == http::StatusCode::GONE {
            return Err(ApiError::Gone);
        }
        if !status.is_success() {
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            return Err(ApiError::Status {
                status: status.as_u16(),
                body,
            });
        }
        Ok(response.into_body())
    }
}

async fn send<IO>(
    io: IO,
    request: http::Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, ApiError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| ApiError::Http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| ApiError::Http(e.to_string()))
}

/// The ready endpoints of each slice, by slice name.
#[derive(Debug, Default)]
struct Slices {
    by_name: BTreeMap<String, BTreeSet<String>>,
}

impl Slices {
    /// Reads one EndpointSlice object: its name and ready endpoints
    /// (addresses, or hostnames with `return_hostnames`).
    fn read(object: &Json, hostnames: bool) -> (String, BTreeSet<String>) {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut out = BTreeSet::new();
        for e in object["endpoints"].as_array().into_iter().flatten() {
            if e["conditions"]["ready"].as_bool() == Some(false) {
                continue;
            }
            if hostnames {
                if let Some(h) = e["hostname"].as_str().filter(|h| !h.is_empty()) {
                    out.insert(h.to_string());
                }
                continue;
            }
            for a in e["addresses"].as_array().into_iter().flatten() {
                if let Some(a) = a.as_str() {
                    out.insert(a.to_string());
                }
            }
        }
        (name, out)
    }

    /// The backends: each endpoint with each port, sorted.
    fn endpoints(&self, config: &K8sResolverConfig, name: &str, namespace: &str) -> Vec<String> {
        let mut out = Vec::new();
        for host in self.by_name.values().flatten() {
            let host = if config.return_hostnames {
                format!("{host}.{name}.{namespace}")
            } else if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            if config.ports.is_empty() {
                out.push(host.clone());
            }
            for port in &config.ports {
                out.push(format!("{host}:{port}"));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Runs the resolver until `stop` turns true.
pub async fn run(
    exporter: &str,
    config: &K8sResolverConfig,
    metrics: &ResolverMetrics,
    tx: &watch::Sender<Option<Vec<String>>>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = resolve(exporter, config, metrics, tx) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

async fn resolve(
    exporter: &str,
    config: &K8sResolverConfig,
    metrics: &ResolverMetrics,
    tx: &watch::Sender<Option<Vec<String>>>,
) {
    let (name, namespace) = match tern_config::k8s_service(&config.service) {
        Ok((n, Some(ns))) => (n, ns),
        Ok((n, None)) => (
            n,
            std::fs::read_to_string(format!("{ACCOUNT}/namespace"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "default".to_string()),
        ),
        Err(e) => {
            tracing::error!(exporter, error = %e, "k8s resolver cannot start");
            return;
        }
    };
    let api = match Api::from_env() {
        Ok(api) => api,
        Err(e) => {
            metrics.failed();
            tracing::error!(exporter, error = %e, "k8s resolver cannot start");
            return;
        }
    };
    let timeout = config.timeout.0.as_secs().max(1);
    let base = format!(
        "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{name}&timeoutSeconds={timeout}"
    );
    let publish = |slices: &Slices| {
        metrics.resolved(slices.endpoints(config, &name, &namespace), tx);
    };
    loop {
        let mut slices = Slices::default();
        let mut version = match list(&api, &base, config.return_hostnames, &mut slices).await {
            Ok(v) => v,
            Err(e) => {
                metrics.failed();
                tracing::warn!(exporter, error = %e, "k8s resolver: listing EndpointSlices failed");
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        publish(&slices);
        loop {
            let path = format!("{base}&watch=1&allowWatchBookmarks=true&resourceVersion={version}");
            match watch_once(
                &api,
                &path,
                config.return_hostnames,
                &mut slices,
                &mut version,
                &publish,
            )
            .await
            {
                Ok(()) => {
                    tracing::debug!(exporter, %version, "k8s resolver: watch ended; resuming")
                }
                Err(ApiError::Gone) => {
                    tracing::info!(
                        exporter,
                        "k8s resolver: watched version expired; listing again"
                    );
                    break;
                }
                Err(e) => {
                    metrics.failed();
                    tracing::warn!(exporter, error = %e, "k8s resolver: watch failed; resuming");
                    tokio::time::sleep(BACKOFF).await;
                }
            }
        }
    }
}

/// Lists the slices into `slices`; returns the list's `resourceVersion`.
async fn list(
    api: &Api,
    path: &str,
    hostnames: bool,
    slices: &mut Slices,
) -> Result<String, ApiError> {
    let body = api
        .get(path)
        .await?
        .collect()
        .await
        .map_err(|e| ApiError::Http(e.to_string()))?
        .to_bytes();
    let doc: Json = serde_json::from_slice(&body).map_err(|e| ApiError::Json(e.to_string()))?;
    for item in doc["items"].as_array().into_iter().flatten() {
        let (name, endpoints) = Slices::read(item, hostnames);
        slices.by_name.insert(name, endpoints);
    }
    Ok(doc["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Follows one watch until it ends, applying each event to `slices`.
async fn watch_once(
    api: &Api,
    path: &str,
    hostnames: bool,
    slices: &mut Slices,
    version: &mut String,
    publish: &impl Fn(&Slices),
) -> Result<(), ApiError> {
    let mut body = api.get(path).await?;
    let mut pending = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::Http(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line = pending.split_to(end + 1);
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: Json =
                serde_json::from_slice(line).map_err(|e| ApiError::Json(e.to_string()))?;
            apply(&event, hostnames, slices, version, publish)?;
        }
    }
    if pending.has_remaining() && !pending.iter().all(u8::is_ascii_whitespace) {
        let event: Json =
            serde_json::from_slice(&pending).map_err(|e| ApiError::Json(e.to_string()))?;
        apply(&event, hostnames, slices, version, publish)?;
    }
    Ok(())
}

/// Applies one watch event.
fn apply(
    event: &Json,
    hostnames: bool,
    slices: &mut Slices,
    version: &mut String,
    publish: &impl Fn(&Slices),
) -> Result<(), ApiError> {
    let object = &event["object"];
    let kind = event["type"].as_str().unwrap_or_default();
    if kind == "ERROR" {
        return Err(match object["code"].as_u64() {
            Some(410) => ApiError::Gone,
            code => ApiError::Status {
                status: code.and_then(|c| u16::try_from(c).ok()).unwrap_or(0),
                body: object["message"].as_str().unwrap_or_default().to_string(),
            },
        });
    }
    if let Some(v) = object["metadata"]["resourceVersion"].as_str() {
        *version = v.to_string();
    }
    match kind {
        "ADDED" | "MODIFIED" => {
            let (name, endpoints) = Slices::read(object, hostnames);
            slices.by_name.insert(name, endpoints);
            publish(slices);
        }
        "DELETED" => {
            let (name, _) = Slices::read(object, hostnames);
            slices.by_name.remove(&name);
            publish(slices);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ready_endpoints_count() {
        let slice: Json = serde_json::json!({
            "metadata": {"name": "gw-abc", "resourceVersion": "7"},
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "hostname": "gw-0"},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"]}
            ]
        });
        let (name, eps) = Slices::read(&slice, false);
        assert_eq!(name, "gw-abc");
        assert_eq!(
            eps.into_iter().collect::<Vec<_>>(),
            ["10.0.0.1", "10.0.0.3"]
        );
        let mut slices = Slices::default();
        slices.by_name.insert(name, Slices::read(&slice, false).1);
        let config = K8sResolverConfig {
            ports: vec![4317, 4318],
            ..K8sResolverConfig::default()
        };
        assert_eq!(
            slices.endpoints(&config, "gw", "obs"),
            [
                "10.0.0.1:4317",
                "10.0.0.1:4318",
                "10.0.0.3:4317",
                "10.0.0.3:4318"
            ]
        );
        let (_, names) = Slices::read(&slice, true);
        let mut by_host = Slices::default();
        by_host.by_name.insert("s".into(), names);
        let config = K8sResolverConfig {
            return_hostnames: true,
            ..K8sResolverConfig::default()
        };
        assert_eq!(by_host.endpoints(&config, "gw", "obs"), ["gw-0.gw.obs"]);
    }
}
