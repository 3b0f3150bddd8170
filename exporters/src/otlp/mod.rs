//! The `otlp` (gRPC) and `otlphttp` exporters. Each worker of an exporter
//! shares one [`Transport`] (kept-alive connections spread over the
//! backend's addresses); a send is: build the request once
//! ([`request`]), then POST it under `timeout`, retrying what
//! [`response`] calls retryable per `retry_on_failure`. `otlphttp` may
//! go through an HTTP proxy (`proxy_url`). With `auth`, an authenticator
//! extension's header is set on every request ([`ClientAuth::apply`]).

pub mod request;
pub mod response;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tern_config::{
    Balancer, Compression, HttpEncoding, OtlpExporterConfig, OtlpHttpExporterConfig, RetryConfig,
    Signal, Target, TlsClientConfig,
};
use tern_core::auth::ClientAuth;
use tern_core::component::{BoxFuture, Delivered, ExportError, Exporter};
use tern_core::pdata::{Batch, RequestContext};

use crate::BuildError;
use crate::retry::{Failure, with_retry};
use crate::transport::{Chunks, HttpVersion, Options, Proxy, Reply, Transport, TransportError};

const USER_AGENT: &str = concat!("tern/", env!("CARGO_PKG_VERSION"));

fn transport(
    id: &str,
    target: Target,
    version: HttpVersion,
    tls: &TlsClientConfig,
    options: Options,
) -> Result<Transport, BuildError> {
    let tls = if target.tls {
        let host = target.host.clone();
        Some(
            crate::tls::connector(tls, &host, version).map_err(|e| BuildError::Tls {
                id: id.to_string(),
                error: e,
            })?,
        )
    } else {
        None
    };
    Ok(Transport::new(target, version, tls, options))
}

pub(crate) fn header_map(
    id: &str,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<HeaderMap, BuildError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes());
        let value = HeaderValue::from_str(v);
        match (name, value) {
            (Ok(n), Ok(v)) => {
                map.insert(n, v);
            }
            _ => {
                return Err(BuildError::Config {
                    id: id.to_string(),
                    message: format!("invalid header `{k}`"),
                });
            }
        }
    }
    map.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(USER_AGENT),
    );
    Ok(map)
}

/// The proxy of `proxy_url`, with its credentials as `Proxy-Authorization: Basic`.
fn proxy(id: &str, url: &str) -> Result<Option<Proxy>, BuildError> {
    if url.is_empty() {
        return Ok(None);
    }
    let parsed = tern_config::ProxyUrl::parse(url).map_err(|message| BuildError::Config {
        id: id.to_string(),
        message,
    })?;
    let authorization = match &parsed.credentials {
        None => None,
        Some((user, password)) => {
            use base64::Engine;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Some(
                HeaderValue::from_str(&format!("Basic {token}")).map_err(|e| {
                    BuildError::Config {
                        id: id.to_string(),
                        message: format!("proxy_url credentials: {e}"),
                    }
                })?,
            )
        }
    };
    Ok(Some(Proxy {
        target: parsed.target,
        authorization,
    }))
}

/// `headers` with `auth`'s headers set, as in force now (a token file may
/// have changed since the last export), for a request of `context`.
pub(crate) fn with_auth<'a>(
    headers: &'a HeaderMap,
    auth: Option<&ClientAuth>,
    context: &RequestContext,
) -> Cow<'a, HeaderMap> {
    match auth {
        None => Cow::Borrowed(headers),
        Some(auth) => {
            let mut h = headers.clone();
            auth.apply(&mut h, context);
            Cow::Owned(h)
        }
    }
}

/// The parts of `batch` to send, each with its headers: the whole batch,
/// unless `auth` sets headers from the requests' context
/// (`headers_setter` with `from_context` / `from_attribute`); then its
/// requests are grouped by the headers they get, so that each sender's
/// data goes with its own (e.g. a tenant header).
fn by_headers<'a>(
    batch: Batch,
    headers: &'a HeaderMap,
    auth: Option<&ClientAuth>,
) -> Vec<(Cow<'a, HeaderMap>, Batch)> {
    let Some(per_request) = auth.filter(|a| a.per_request()) else {
        let h = with_auth(headers, auth, batch.context());
        return vec![(h, batch)];
    };
    type Members = Vec<(Bytes, usize, Arc<RequestContext>)>;
    let mut groups: Vec<(HeaderMap, Members)> = Vec::new();
    for r in batch.requests() {
        let mut h = headers.clone();
        per_request.apply(&mut h, r.context);
        let member = (r.bytes.clone(), r.items, r.context.clone());
        match groups.iter_mut().find(|(g, _)| *g == h) {
            Some((_, members)) => members.push(member),
            None => groups.push((h, vec![member])),
        }
    }
    if groups.len() < 2 {
        let h = groups
            .pop()
            .map_or(Cow::Borrowed(headers), |(h, _)| Cow::Owned(h));
        return vec![(h, batch)];
    }
    groups
        .into_iter()
        .map(|(h, members)| (Cow::Owned(h), batch.derive(members)))
        .collect()
}

/// The outcome of sending the parts of a batch (see [`by_headers`]). The
/// items of a part that failed count as rejected (and are logged) when
/// another part went through; when none did, the first failure is the
/// export's.
#[derive(Debug, Default)]
struct Parts {
    delivered: Delivered,
    first_error: Option<ExportError>,
    any_sent: bool,
}

impl Parts {
    fn add(&mut self, id: &str, part: &Batch, result: Result<Delivered, ExportError>) {
        match result {
            Ok(d) => {
                self.any_sent = true;
                self.delivered.rejected += d.rejected;
            }
            Err(e) => {
                tracing::warn!(exporter = id, signal = %part.signal(), items = part.items(), error = %e, "the part of a batch with its own headers (headers_setter) failed");
                self.delivered.rejected += part.items() as u64;
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn finish(self) -> Result<Delivered, ExportError> {
        match self.first_error {
            Some(e) if !self.any_sent => Err(e),
            _ => Ok(self.delivered),
        }
    }
}

/// How long `wait_for_ready` waits between connection tries.
const READY_POLL: Duration = Duration::from_millis(100);

/// One POST; with `wait_for_ready`, connection failures are tried again
/// until the attempt's timeout instead of ending it.
async fn post(
    transport: &Transport,
    path: &str,
    headers: &HeaderMap,
    body: Chunks,
    wait_for_ready: bool,
) -> Result<Reply, TransportError> {
    loop {
        match transport.post(path, headers, body.clone()).await {
            Err(
                TransportError::Resolve(..) | TransportError::Connect(..) | TransportError::Tls(..),
            ) if wait_for_ready => tokio::time::sleep(READY_POLL).await,
            other => return other,
        }
    }
}

/// One POST under `timeout`, classified by `classify`.
async fn attempt(
    transport: &Transport,
    path: &str,
    headers: &HeaderMap,
    body: Chunks,
    timeout: Duration,
    wait_for_ready: bool,
    classify: fn(http::StatusCode, &HeaderMap, Bytes) -> Result<Bytes, Failure>,
) -> Result<Bytes, Failure> {
    let sent = post(transport, path, headers, body, wait_for_ready);
    match tokio::time::timeout(timeout, sent).await {
        Err(_) => Err(Failure::Retryable {
            message: format!(
                "no answer from {} within {timeout:?}",
                transport.target().authority()
            ),
            delay: None,
        }),
        Ok(Err(e)) => Err(Failure::Retryable {
            message: e.to_string(),
            delay: None,
        }),
        Ok(Ok(Reply {
            status,
            headers,
            body,
        })) => classify(status, &headers, body),
    }
}

fn report(id: &str, signal: Signal, partial: response::Partial) -> Delivered {
    if partial.rejected > 0 {
        tracing::warn!(
            exporter = id,
            %signal,
            rejected = partial.rejected,
            message = %partial.message,
            "backend rejected part of a batch (partial success)"
        );
    }
    Delivered {
        rejected: partial.rejected,
    }
}

#[derive(Debug)]
struct GrpcInner {
    id: String,
    /// The authenticator whose header every request carries.
    auth: Option<Arc<ClientAuth>>,
    transport: Transport,
    headers: HeaderMap,
    compression: Compression,
    timeout: Duration,
    retry: RetryConfig,
    wait_for_ready: bool,
}

impl GrpcInner {
    /// Sends `batch` with `headers`, retrying per `retry_on_failure`.
    async fn send(&self, headers: &HeaderMap, batch: &Batch) -> Result<Delivered, ExportError> {
        let signal = batch.signal();
        let body = request::grpc_frame(batch, self.compression)?;
        let reply = with_retry(&self.retry, &self.id, || {
            attempt(
                &self.transport,
                grpc_path(signal),
                headers,
                body.clone(),
                self.timeout,
                self.wait_for_ready,
                response::classify_grpc,
            )
        })
        .await?;
        Ok(report(
            &self.id,
            signal,
            response::partial_from_proto(signal, &reply),
        ))
    }
}

/// `otlp`: OTLP over gRPC.
#[derive(Debug, Clone)]
pub struct OtlpGrpcExporter {
    inner: Arc<GrpcInner>,
}

fn grpc_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    }
}

/// `grpc-timeout` value: milliseconds, at most 8 digits.
fn grpc_timeout(timeout: Duration) -> HeaderValue {
    let ms = timeout.as_millis().min(99_999_999);
    HeaderValue::from_str(&format!("{ms}m")).unwrap_or(HeaderValue::from_static("5S"))
}

impl OtlpGrpcExporter {
    /// Builds exporter `id`.
    pub fn new(id: &str, config: &OtlpExporterConfig) -> Result<Self, BuildError> {
        Self::authenticated(id, config, None)
    }

    /// Builds exporter `id`, setting `auth`'s header on every request.
    pub fn authenticated(
        id: &str,
        config: &OtlpExporterConfig,
        auth: Option<Arc<ClientAuth>>,
    ) -> Result<Self, BuildError> {
        let target =
            Target::parse_grpc(&config.endpoint, config.tls.insecure).map_err(|message| {
                BuildError::Config {
                    id: id.to_string(),
                    message,
                }
            })?;
        let mut headers = header_map(id, &config.headers)?;
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        headers.insert("grpc-accept-encoding", HeaderValue::from_static("identity"));
        headers.insert("grpc-timeout", grpc_timeout(config.timeout.0));
        if let Some(name) = request::encoding_name(config.compression) {
            headers.insert("grpc-encoding", HeaderValue::from_static(name));
        }
        Ok(OtlpGrpcExporter {
            inner: Arc::new(GrpcInner {
                id: id.to_string(),
                auth,
                transport: transport(
                    id,
                    target,
                    HttpVersion::Http2,
                    &config.tls,
                    Options {
                        pick_first: config.balancer_name == Balancer::PickFirst,
                        authority: Some(config.authority.clone()).filter(|a| !a.is_empty()),
                        ..Options::default()
                    },
                )?,
                headers,
                compression: config.compression,
                timeout: config.timeout.0,
                retry: config.retry_on_failure.clone(),
                wait_for_ready: config.wait_for_ready,
            }),
        })
    }
}

impl Exporter for OtlpGrpcExporter {
    fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut outcome = Parts::default();
            for (headers, part) in by_headers(batch, &inner.headers, inner.auth.as_deref()) {
                let result = inner.send(&headers, &part).await;
                outcome.add(&inner.id, &part, result);
            }
            outcome.finish()
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}

#[derive(Debug)]
struct HttpInner {
    id: String,
    /// The authenticator whose header every request carries.
    auth: Option<Arc<ClientAuth>>,
    /// Per signal: where to send.
    /// Per signal: the transport and path, `None` for a signal with no URL
    /// (neither `endpoint` nor its own; validation keeps such a signal out
    /// of this exporter's pipelines).
    routes: [Option<(Arc<Transport>, String)>; 3],
    headers: HeaderMap,
    encoding: HttpEncoding,
    compression: Compression,
    timeout: Duration,
    retry: RetryConfig,
}

impl HttpInner {
    /// Sends `batch` with `headers` to `path` of `transport`, retrying per
    /// `retry_on_failure`.
    async fn send(
        &self,
        transport: &Transport,
        path: &str,
        headers: &HeaderMap,
        batch: &Batch,
    ) -> Result<Delivered, ExportError> {
        let signal = batch.signal();
        let body = request::http_body(batch, self.encoding, self.compression)?;
        let reply = with_retry(&self.retry, &self.id, || {
            attempt(
                transport,
                path,
                headers,
                body.clone(),
                self.timeout,
                false,
                response::classify_http,
            )
        })
        .await?;
        let partial = match self.encoding {
            HttpEncoding::Proto => response::partial_from_proto(signal, &reply),
            HttpEncoding::Json => response::partial_from_json(signal, &reply),
        };
        Ok(report(&self.id, signal, partial))
    }
}

/// `otlphttp`: OTLP over HTTP, protobuf or JSON.
#[derive(Debug, Clone)]
pub struct OtlpHttpExporter {
    inner: Arc<HttpInner>,
}

fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

impl OtlpHttpExporter {
    /// Builds exporter `id`. A signal without a URL (neither `endpoint`
    /// nor its own, valid in the Collector for an exporter that only some
    /// signals use) gets no route; validation keeps it out of pipelines of
    /// that signal, and a send of it would fail.
    pub fn new(id: &str, config: &OtlpHttpExporterConfig) -> Result<Self, BuildError> {
        Self::authenticated(id, config, None)
    }

    /// [`OtlpHttpExporter::new`], setting `auth`'s header on every request.
    pub fn authenticated(
        id: &str,
        config: &OtlpHttpExporterConfig,
        auth: Option<Arc<ClientAuth>>,
    ) -> Result<Self, BuildError> {
        let bad = |message: String| BuildError::Config {
            id: id.to_string(),
            message,
        };
        let url = |signal: Signal| config.url(signal).map_err(|(_, e)| bad(e));
        let targets = [
            url(Signal::Traces)?,
            url(Signal::Metrics)?,
            url(Signal::Logs)?,
        ];
        let proxy = proxy(id, &config.proxy_url)?;
        let mut transports: Vec<Arc<Transport>> = Vec::new();
        let mut route = |t: &Target| -> Result<(Arc<Transport>, String), BuildError> {
            let shared = transports.iter().find(|x| {
                let o = x.target();
                (o.tls, &o.host, o.port) == (t.tls, &t.host, t.port)
            });
            let transport = match shared {
                Some(x) => x.clone(),
                None => {
                    let options = Options {
                        max_idle: usize::try_from(config.max_idle_conns).unwrap_or(usize::MAX),
                        idle_timeout: Some(config.idle_conn_timeout.0).filter(|d| !d.is_zero()),
                        keep_alive: !config.disable_keep_alives,
                        proxy: proxy.clone(),
                        ..Options::default()
                    };
                    let x = Arc::new(transport(
                        id,
                        t.clone(),
                        HttpVersion::Http1,
                        &config.tls,
                        options,
                    )?);
                    transports.push(x.clone());
                    x
                }
            };
            Ok((transport, t.path.clone()))
        };
        let mut routes = [None, None, None];
        for (slot, target) in routes.iter_mut().zip(&targets) {
            if let Some(t) = target {
                *slot = Some(route(t)?);
            }
        }
        let mut headers = header_map(id, &config.headers)?;
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(match config.encoding {
                HttpEncoding::Proto => "application/x-protobuf",
                HttpEncoding::Json => "application/json",
            }),
        );
        if let Some(name) = request::encoding_name(config.compression) {
            headers.insert(
                http::header::CONTENT_ENCODING,
                HeaderValue::from_static(name),
            );
        }
        Ok(OtlpHttpExporter {
            inner: Arc::new(HttpInner {
                id: id.to_string(),
                auth,
                routes,
                headers,
                encoding: config.encoding,
                compression: config.compression,
                timeout: config.timeout.0,
                retry: config.retry_on_failure.clone(),
            }),
        })
    }
}

impl Exporter for OtlpHttpExporter {
    fn export(&mut self, batch: Batch) -> BoxFuture<'_, Result<Delivered, ExportError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let signal = batch.signal();
            let Some((transport, path)) = &inner.routes[signal_index(signal)] else {
                return Err(ExportError::Send(format!(
                    "no URL for {signal}: set `endpoint` or `{signal}_endpoint`"
                )));
            };
            let mut outcome = Parts::default();
            for (headers, part) in by_headers(batch, &inner.headers, inner.auth.as_deref()) {
                let result = inner.send(transport, path, &headers, &part).await;
                outcome.add(&inner.id, &part, result);
            }
            outcome.finish()
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Builds an `otlp_grpc` exporter.
pub fn build_grpc(
    ctx: &tern_core::build::Context<'_>,
    c: &tern_config::Component,
) -> Result<tern_core::build::Built, tern_core::build::BuildError> {
    let config = ctx.settings::<OtlpExporterConfig>(c)?;
    let mut beside = Vec::new();
    let auth = client_auth(ctx, config.auth.as_ref(), &mut beside)?;
    Ok(tern_core::build::Built {
        beside,
        ..tern_core::build::Built::exporter(crate::queued(
            OtlpGrpcExporter::authenticated(&ctx.id, config, auth)?,
            &config.sending_queue,
            tern_config::QueueConfig::DEFAULT_CONSUMERS,
        ))
    })
}

/// Builds an `otlp_http` exporter.
pub fn build_http(
    ctx: &tern_core::build::Context<'_>,
    c: &tern_config::Component,
) -> Result<tern_core::build::Built, tern_core::build::BuildError> {
    let config = ctx.settings::<OtlpHttpExporterConfig>(c)?;
    let mut beside = Vec::new();
    let auth = client_auth(ctx, config.auth.as_ref(), &mut beside)?;
    Ok(tern_core::build::Built {
        beside,
        ..tern_core::build::Built::exporter(crate::queued(
            OtlpHttpExporter::authenticated(&ctx.id, config, auth)?,
            &config.sending_queue,
            tern_config::QueueConfig::DEFAULT_CONSUMERS,
        ))
    })
}

/// The authenticator an exporter's `auth` names; its file watcher (if it
/// has one) is added to `beside`, to run beside the pipelines.
pub(crate) fn client_auth(
    ctx: &tern_core::build::Context<'_>,
    auth: Option<&tern_config::components::AuthConfig>,
    beside: &mut Vec<(String, tern_core::build::Starter)>,
) -> Result<Option<Arc<ClientAuth>>, tern_core::build::BuildError> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    let client = ClientAuth::resolve(ctx.config, auth).map_err(|e| {
        tern_core::build::BuildError::Component(format!("exporters.{}: {e}", ctx.id).into())
    })?;
    if let Some(watch) = client.watcher() {
        beside.push((
            format!("exporter {} (auth {})", ctx.id, auth.authenticator),
            watch,
        ));
    }
    Ok(Some(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_for_ready_waits_for_a_connection_until_the_timeout() {
        // A port nothing listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let target = Target::parse_url(&format!("http://127.0.0.1:{port}")).unwrap();
        let transport = Transport::new(target, HttpVersion::Http2, None, Options::default());
        let headers = HeaderMap::new();
        let send = |wait_for_ready| {
            attempt(
                &transport,
                "/",
                &headers,
                Chunks::default(),
                Duration::from_millis(300),
                wait_for_ready,
                response::classify_grpc,
            )
        };
        let message = |r: Result<Bytes, Failure>| match r {
            Err(Failure::Retryable { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert!(message(send(false).await).starts_with("cannot connect"));
        assert!(message(send(true).await).starts_with("no answer"));
    }
}
