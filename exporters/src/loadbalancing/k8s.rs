//! The `k8s` resolver: the ready addresses of a Service's EndpointSlices,
//! listed and then watched on the Kubernetes API as an informer does. A
//! list (`labelSelector=kubernetes.io/service-name=<name>`) gives the
//! slices and a `resourceVersion`; a watch from that version streams
//! `ADDED`, `MODIFIED` and `DELETED` events (and bookmarks) as JSON lines.
//! When the watch ends (its `timeoutSeconds`, a dropped connection) it is
//! resumed from the last version seen; when the API says that version is
//! gone (`410`), everything is listed again.
//!
//! The API and its credentials are found where the Collector's client
//! (client-go, through controller-runtime's `GetConfig`) finds them
//! ([`Environment`]): the kubeconfig files `$KUBECONFIG` lists; else, in a
//! pod, the in-cluster API (`KUBERNETES_SERVICE_HOST` and
//! `KUBERNETES_SERVICE_PORT` over HTTPS, verified with the service
//! account's `ca.crt`, its `token` as bearer, read again for each call as
//! projected tokens rotate); else `~/.kube/config`. A kubeconfig gives the
//! current context's cluster (`server`, `certificate-authority[-data]`,
//! `insecure-skip-tls-verify`, `tls-server-name`) and user (`token`,
//! `tokenFile`, `client-certificate[-data]` and `client-key[-data]`,
//! `username` and `password`); `exec` and `auth-provider` plugins are not
//! run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value as Json;
use tern_config::K8sResolverConfig;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

use super::resolver::ResolverMetrics;

/// The service account's files in a pod.
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

/// Where the resolver looks for the API and its credentials: the
/// standard Kubernetes variables and paths, read once by
/// [`Environment::from_process`]; tests give their own.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `$KUBECONFIG`: kubeconfig files, separated by `:`.
    pub kubeconfig: Option<String>,
    /// `$KUBERNETES_SERVICE_HOST`.
    pub service_host: Option<String>,
    /// `$KUBERNETES_SERVICE_PORT`.
    pub service_port: Option<String>,
    /// The service account's directory (`token`, `ca.crt`, `namespace`).
    pub service_account: PathBuf,
    /// `$HOME`, for `~/.kube/config`.
    pub home: Option<PathBuf>,
}

impl Environment {
    /// This process's: its environment and the pod's service account.
    pub fn from_process() -> Environment {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        Environment {
            kubeconfig: var("KUBECONFIG"),
            service_host: var("KUBERNETES_SERVICE_HOST"),
            service_port: var("KUBERNETES_SERVICE_PORT"),
            service_account: PathBuf::from(ACCOUNT),
            home: var("HOME").map(PathBuf::from),
        }
    }

    /// The pod's namespace (its service account's), if it has one.
    fn namespace(&self) -> Option<String> {
        std::fs::read_to_string(self.service_account.join("namespace"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

/// How calls are authorised.
#[derive(Debug)]
enum Auth {
    None,
    /// A bearer token read from this file for each call.
    TokenFile(PathBuf),
    /// The `Authorization` header value.
    Header(String),
}

/// Where the API is and how to talk to it.
struct Api {
    host: String,
    port: u16,
    /// A path the API is served under (`server: https://h/prefix`).
    prefix: String,
    tls: Option<(TlsConnector, rustls_pki_types::ServerName<'static>)>,
    auth: Auth,
}

/// A kubeconfig file, as far as the resolver reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KubeConfig {
    #[serde(rename = "current-context")]
    current_context: String,
    clusters: Vec<NamedCluster>,
    users: Vec<NamedUser>,
    contexts: Vec<NamedContext>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct Cluster {
    server: String,
    #[serde(rename = "certificate-authority")]
    ca_file: String,
    #[serde(rename = "certificate-authority-data")]
    ca_data: String,
    #[serde(rename = "insecure-skip-tls-verify")]
    insecure: bool,
    #[serde(rename = "tls-server-name")]
    server_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamedUser {
    name: String,
    user: User,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct User {
    token: String,
    #[serde(rename = "tokenFile")]
    token_file: String,
    #[serde(rename = "client-certificate")]
    cert_file: String,
    #[serde(rename = "client-certificate-data")]
    cert_data: String,
    #[serde(rename = "client-key")]
    key_file: String,
    #[serde(rename = "client-key-data")]
    key_data: String,
    username: String,
    password: String,
    exec: Option<serde::de::IgnoredAny>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Context {
    cluster: String,
    user: String,
}

/// Reads a file named in a kubeconfig (relative to the kubeconfig's
/// directory) or its `*-data` twin (base64).
fn material(data: &str, file: &str, dir: &Path, what: &str) -> Result<Option<Vec<u8>>, String> {
    if !data.is_empty() {
        return base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map(Some)
            .map_err(|e| format!("{what} data is not base64: {e}"));
    }
    if file.is_empty() {
        return Ok(None);
    }
    let path = dir.join(file);
    std::fs::read(&path)
        .map(Some)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

impl Api {
    /// Finds the API as client-go's `GetConfig` does: `$KUBECONFIG`, else
    /// the in-cluster service account, else `~/.kube/config`.
    fn discover(env: &Environment) -> Result<Api, String> {
        if let Some(list) = &env.kubeconfig {
            let files: Vec<PathBuf> = std::env::split_paths(list).collect();
            return Api::from_kubeconfig(&files);
        }
        if let (Some(host), Some(port)) = (&env.service_host, &env.service_port) {
            return Api::in_cluster(env, host, port);
        }
        if let Some(home) = &env.home {
            let file = home.join(".kube").join("config");
            if file.exists() {
                return Api::from_kubeconfig(&[file]);
            }
        }
        Err("no Kubernetes API found: not in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set), no KUBECONFIG and no ~/.kube/config".into())
    }

    /// The pod's API: HTTPS to the service address, the service account's
    /// CA and token.
    fn in_cluster(env: &Environment, host: &str, port: &str) -> Result<Api, String> {
        let port = port
            .parse()
            .map_err(|_| format!("KUBERNETES_SERVICE_PORT is not a port: {port:?}"))?;
        let token = env.service_account.join("token");
        if let Err(e) = std::fs::metadata(&token) {
            return Err(format!(
                "in a pod, but the service account token {} cannot be read: {e}",
                token.display()
            ));
        }
        let ca_file = env.service_account.join("ca.crt");
        let ca = std::fs::read(&ca_file)
            .map_err(|e| format!("cannot read {}: {e}", ca_file.display()))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = crate::tls::connector_pem(&ca, None, false, &host)
            .map_err(|e| format!("service account CA {}: {e}", ca_file.display()))?;
        Ok(Api {
            host,
            port,
            prefix: String::new(),
            tls: Some(tls),
            auth: Auth::TokenFile(token),
        })
    }

    /// The current context's cluster and user of the kubeconfig `files`
    /// (merged as client-go merges them: the first file to name an entry,
    /// or to set `current-context`, wins; missing files are skipped).
    fn from_kubeconfig(files: &[PathBuf]) -> Result<Api, String> {
        let mut current = String::new();
        let mut clusters: Vec<(String, Cluster, PathBuf)> = Vec::new();
        let mut users: Vec<(String, User, PathBuf)> = Vec::new();
        let mut contexts: Vec<(String, Context)> = Vec::new();
        let mut read_any = false;
        for file in files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            read_any = true;
            let shown = file.display().to_string();
            let node = tern_config::yaml::parse(&shown, &text)
                .map_err(|e| format!("kubeconfig {shown}: {}", e[0].message))?;
            let config: KubeConfig = match tern_config::de::from_node_partial(&node, "") {
                (Some(c), _) => c,
                (None, e) => return Err(format!("kubeconfig {shown}: {}", e[0].message)),
            };
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            if current.is_empty() {
                current = config.current_context;
            }
            for c in config.clusters {
                if !clusters.iter().any(|(n, ..)| *n == c.name) {
                    clusters.push((c.name, c.cluster, dir.clone()));
                }
            }
            for u in config.users {
                if !users.iter().any(|(n, ..)| *n == u.name) {
                    users.push((u.name, u.user, dir.clone()));
                }
            }
            for c in config.contexts {
                if !contexts.iter().any(|(n, _)| *n == c.name) {
                    contexts.push((c.name, c.context));
                }
            }
        }
        if !read_any {
            return Err(format!("no kubeconfig file could be read: {files:?}"));
        }
        let (_, context) = contexts
            .iter()
            .find(|(n, _)| *n == current)
            .ok_or_else(|| format!("kubeconfig: current-context {current:?} is not defined"))?;
        let (_, cluster, cluster_dir) = clusters
            .iter()
            .find(|(n, ..)| *n == context.cluster)
            .ok_or_else(|| format!("kubeconfig: cluster {:?} is not defined", context.cluster))?;
        let user = users
            .iter()
            .find(|(n, ..)| *n == context.user)
            .map(|(_, u, d)| (u.clone(), d.clone()))
            .unwrap_or_default();
        Api::from_entries(cluster, cluster_dir, &user.0, &user.1)
    }

    fn from_entries(
        cluster: &Cluster,
        cluster_dir: &Path,
        user: &User,
        user_dir: &Path,
    ) -> Result<Api, String> {
        if user.exec.is_some() || user.auth_provider.is_some() {
            return Err("kubeconfig: the user's exec and auth-provider plugins are not supported; give a token, tokenFile or client certificate".into());
        }
        let (https, rest) = match cluster.server.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            _ => {
                return Err(format!(
                    "kubeconfig: server must be an http(s) URL, found {:?}",
                    cluster.server
                ));
            }
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/').to_string()),
            None => (rest, String::new()),
        };
        let default_port = if https { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && (h.starts_with('[') || !h.contains(':')) => {
                let port = p
                    .parse()
                    .map_err(|_| format!("kubeconfig: bad port in {:?}", cluster.server))?;
                (h, port)
            }
            _ => (authority, default_port),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = if https {
            let ca = material(
                &cluster.ca_data,
                &cluster.ca_file,
                cluster_dir,
                "certificate-authority",
            )?
            .or_else(|| {
                [
                    "/etc/ssl/certs/ca-certificates.crt",
                    "/etc/pki/tls/certs/ca-bundle.crt",
                ]
                .iter()
                .find_map(|f| std::fs::read(f).ok())
            })
            .unwrap_or_default();
            let cert = material(
                &user.cert_data,
                &user.cert_file,
                user_dir,
                "client-certificate",
            )?;
            let key = material(&user.key_data, &user.key_file, user_dir, "client-key")?;
            let name = if cluster.server_name.is_empty() {
                &host
            } else {
                &cluster.server_name
            };
            let client = cert.as_deref().zip(key.as_deref());
            Some(
                crate::tls::connector_pem(&ca, client, cluster.insecure, name)
                    .map_err(|e| format!("kubeconfig TLS: {e}"))?,
            )
        } else {
            None
        };
        let auth = if !user.token.is_empty() {
            Auth::Header(format!("Bearer {}", user.token.trim()))
        } else if !user.token_file.is_empty() {
            Auth::TokenFile(user_dir.join(&user.token_file))
        } else if !user.username.is_empty() {
            let pair = format!("{}:{}", user.username, user.password);
            Auth::Header(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        } else {
            Auth::None
        };
        Ok(Api {
            host,
            port,
            prefix,
            tls,
            auth,
        })
    }

    /// The `Authorization` header for the next call, if any.
    fn authorization(&self) -> Option<String> {
        match &self.auth {
            Auth::None => None,
            Auth::Header(h) => Some(h.clone()),
            Auth::TokenFile(path) => std::fs::read_to_string(path)
                .ok()
                .map(|t| format!("Bearer {}", t.trim())),
        }
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
        let mut request = http::Request::get(format!("{}{path_and_query}", self.prefix))
            .header(http::header::HOST, &authority)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("tern/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(authorization) = self.authorization() {
            request = request.header(http::header::AUTHORIZATION, authorization);
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

/// Runs the resolver until `stop` turns true, with the API of this
/// process's [`Environment`].
pub async fn run(
    exporter: &str,
    config: &K8sResolverConfig,
    metrics: &ResolverMetrics,
    tx: &watch::Sender<Option<Vec<String>>>,
    stop: watch::Receiver<bool>,
) {
    run_in(
        &Environment::from_process(),
        exporter,
        config,
        metrics,
        tx,
        stop,
    )
    .await;
}

/// Runs the resolver until `stop` turns true, with the API `env` names.
pub async fn run_in(
    env: &Environment,
    exporter: &str,
    config: &K8sResolverConfig,
    metrics: &ResolverMetrics,
    tx: &watch::Sender<Option<Vec<String>>>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = resolve(env, exporter, config, metrics, tx) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

async fn resolve(
    env: &Environment,
    exporter: &str,
    config: &K8sResolverConfig,
    metrics: &ResolverMetrics,
    tx: &watch::Sender<Option<Vec<String>>>,
) {
    let (name, namespace) = match tern_config::k8s_service(&config.service) {
        Ok((n, Some(ns))) => (n, ns),
        // As the Collector: the pod's namespace, else `default`.
        Ok((n, None)) => (n, env.namespace().unwrap_or_else(|| "default".into())),
        Err(e) => {
            tracing::error!(exporter, error = %e, "k8s resolver cannot start");
            return;
        }
    };
    let api = match Api::discover(env) {
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

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const KUBECONFIG: &str = "current-context: a
clusters:
- name: one
  cluster:
    server: https://api.example:6443/k8s/clusters/c-1/
    insecure-skip-tls-verify: true
- name: two
  cluster: {server: 'http://[::1]'}
users:
- name: u
  user: {tokenFile: token}
- name: basic
  user: {username: ann, password: pw}
contexts:
- {name: a, context: {cluster: one, user: u}}
- {name: b, context: {cluster: two, user: basic}}
";

    /// `$KUBECONFIG` comes first (its files merged, the first to say
    /// something winning), then the pod's service account, then
    /// `~/.kube/config`, as client-go's `GetConfig` looks.
    #[test]
    fn the_api_is_found_where_client_go_looks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let main = write(d, "main", KUBECONFIG);
        write(d, "token", "t0k3n\n");
        let over = write(
            d,
            "over",
            "current-context: b\nclusters:\n- name: one\n  cluster: {server: 'http://ignored'}\n",
        );
        let in_pod = Environment {
            service_host: Some("10.96.0.1".into()),
            service_port: Some("443".into()),
            service_account: d.join("no-account"),
            home: Some(d.to_path_buf()),
            ..Environment::default()
        };
        // KUBECONFIG wins over the pod; `over`, listed first, sets the
        // context (b), whose cluster and user only `main` defines.
        let list = std::env::join_paths([&over, &main]).unwrap();
        let env = Environment {
            kubeconfig: Some(list.to_string_lossy().into_owned()),
            ..in_pod.clone()
        };
        let api = Api::discover(&env).unwrap();
        assert_eq!(
            (api.host.as_str(), api.port, api.prefix.as_str()),
            ("::1", 80, "")
        );
        assert!(api.tls.is_none());
        assert_eq!(api.authorization().as_deref(), Some("Basic YW5uOnB3"));
        let env = Environment {
            kubeconfig: Some(main.display().to_string()),
            ..in_pod.clone()
        };
        let api = Api::discover(&env).unwrap();
        assert_eq!(
            (api.host.as_str(), api.port, api.prefix.as_str()),
            ("api.example", 6443, "/k8s/clusters/c-1")
        );
        assert!(api.tls.is_some());
        // The token file is relative to the kubeconfig and read per call.
        assert_eq!(api.authorization().as_deref(), Some("Bearer t0k3n"));
        write(d, "token", "rotated");
        assert_eq!(api.authorization().as_deref(), Some("Bearer rotated"));
        // In a pod without KUBECONFIG: the service account, which must be there.
        let e = Api::discover(&in_pod).err().unwrap();
        assert!(e.contains("service account token"), "{e}");
        // Outside a pod: ~/.kube/config.
        std::fs::create_dir(d.join(".kube")).unwrap();
        std::fs::copy(&main, d.join(".kube/config")).unwrap();
        let home = Environment {
            home: Some(d.to_path_buf()),
            ..Environment::default()
        };
        assert_eq!(Api::discover(&home).unwrap().port, 6443);
        let nothing = Api::discover(&Environment::default()).err().unwrap();
        assert!(nothing.contains("no Kubernetes API"), "{nothing}");
    }

    #[test]
    fn credential_plugins_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "config",
            "current-context: a\nclusters: [{name: c, cluster: {server: 'https://h'}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n",
        );
        let e = Api::from_kubeconfig(&[file]).err().unwrap();
        assert!(e.contains("exec"), "{e}");
    }

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
