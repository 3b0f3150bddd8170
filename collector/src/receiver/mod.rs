//! The `otlp` receiver: [`grpc`] and [`http`] servers that hand each export
//! request, still as wire bytes, to an [`OtlpSink`]. The sink counts the
//! items, pushes the batch into every pipeline of its signal (all or none)
//! and says what to answer: accepted, malformed, or retry later. When an
//! exporter of those pipelines has `sending_queue.wait_for_result`, the
//! answer waits for the export ([`OtlpSink::outcome`]) and carries its
//! failure: permanent or retryable. With `auth` set on a protocol, the sink
//! first checks each request's headers ([`OtlpSink::authenticate`]): a
//! refused request is answered 401 / `UNAUTHENTICATED` and its body is
//! never read.

pub mod cors;
pub mod decompress;
pub mod grpc;
pub mod http;

use std::sync::Arc;

use bytes::Bytes;
use tern_config::{Component, OtlpReceiverConfig, Signal};
use tern_core::ack::{Ack, ExportFailure, Pending};
use tern_core::auth::{AuthData, ServerAuth};
use tern_core::build::{BuildError, Built, Context, Serve, Server};
use tern_core::pdata::{Batch, RequestContext};
use tern_core::queue::{Inlet, Refusal, admit_all};
use tern_core::telemetry::ReceiverMetrics;

use crate::serve;

pub use tern_core::build::{Consumers, Feeds};

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The payload is not a valid export request.
    #[error("{0}")]
    Malformed(String),
    /// No pipeline of this signal is fed by this receiver.
    #[error("this receiver feeds no {0} pipeline")]
    NoPipeline(Signal),
    /// The pipelines cannot take it now.
    #[error("{0}; retry later")]
    Refused(Refusal),
    /// Its export failed (the sender waited for it: `wait_for_result`).
    #[error("export failed: {0}")]
    Failed(ExportFailure),
}

/// A request the pipelines took.
#[derive(Debug)]
pub struct Admitted {
    items: usize,
    signal: Signal,
    /// What to await before answering, when the sender waits for the export.
    pending: Option<Pending>,
}

impl Admitted {
    /// Whether it can be answered now (nobody waits for its export).
    pub fn settled(&self) -> bool {
        self.pending.is_none()
    }
}

/// Hands requests to the pipelines and counts them.
#[derive(Debug, Clone)]
pub struct OtlpSink {
    id: String,
    consumers: Arc<Feeds>,
    metrics: ReceiverMetrics,
    /// The protocol's authenticator (`auth`), if any.
    auth: Option<Arc<ServerAuth>>,
}

impl OtlpSink {
    /// A sink for receiver `id` on one transport.
    pub fn new(id: &str, consumers: Arc<Feeds>, metrics: ReceiverMetrics) -> Self {
        OtlpSink {
            id: id.to_string(),
            consumers,
            metrics,
            auth: None,
        }
    }

    /// The same sink, checking each request with `auth` first.
    pub fn with_auth(self, auth: Option<Arc<ServerAuth>>) -> Self {
        OtlpSink { auth, ..self }
    }

    /// Checks a request's headers with the protocol's authenticator (none:
    /// every request passes); what it learnt of the sender goes in the
    /// request's context. A refusal is counted (reason `unauthenticated`,
    /// or `auth_unavailable` while an `oidc` provider's keys have not
    /// loaded) and logged at most once a second with its detail; the
    /// error's message is what the client is told.
    pub async fn authenticate(
        &self,
        headers: &::http::HeaderMap,
        peer: std::net::SocketAddr,
    ) -> Result<Option<Arc<AuthData>>, tern_core::auth::AuthError> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        auth.authenticate(headers).await.inspect_err(|e| {
            self.metrics.request_refused(if e.retryable() {
                "auth_unavailable"
            } else {
                "unauthenticated"
            });
            if let Some(held_back) = self.metrics.refusal_log.allow() {
                tracing::warn!(
                    receiver = %self.id,
                    %peer,
                    reason = %e.detail(),
                    similar_since_last_line = held_back,
                    "refused unauthenticated request"
                );
            }
        })
    }

    /// The counters, for refusals a transport detects itself.
    pub fn metrics(&self) -> &ReceiverMetrics {
        &self.metrics
    }

    /// Counts the items of `request` and pushes it into every pipeline of
    /// `signal`. Unless [`Admitted::settled`], the answer must wait for
    /// [`OtlpSink::outcome`].
    pub fn consume(
        &self,
        signal: Signal,
        request: Bytes,
        context: Arc<RequestContext>,
    ) -> Result<Admitted, ReceiveError> {
        let consumers = self.consumers.current();
        let inlets = consumers.get(signal);
        if inlets.is_empty() {
            self.metrics.request_refused("no_pipeline");
            return Err(ReceiveError::NoPipeline(signal));
        }
        let mut batch = Batch::from_wire(signal, request, context).map_err(|e| {
            self.metrics.request_refused(e.reason().as_str());
            tracing::debug!(receiver = %self.id, %signal, error = %e, "refused invalid request");
            ReceiveError::Malformed(e.to_string())
        })?;
        let items = batch.items();
        let mut admitted = Admitted {
            items,
            signal,
            pending: None,
        };
        if items == 0 {
            return Ok(admitted);
        }
        if inlets.iter().any(Inlet::waits) {
            let (ack, pending) = Ack::new();
            batch.wait_on(ack);
            admitted.pending = Some(pending);
        }
        match admit_all(inlets, batch) {
            Ok(()) => {
                if admitted.settled() {
                    self.metrics.accepted.get(signal).add(items as u64);
                }
                Ok(admitted)
            }
            Err(refusal) => {
                self.metrics.refused.get(signal).add(items as u64);
                self.metrics.request_refused(match refusal {
                    Refusal::Full => "pipeline_full",
                    Refusal::MemoryLimit => "memory_limit",
                    Refusal::Closed => "shutting_down",
                });
                if let Some(held_back) = self.metrics.refusal_log.allow() {
                    tracing::warn!(
                        receiver = %self.id,
                        %signal,
                        items,
                        reason = %refusal,
                        similar_since_last_line = held_back,
                        "refused request; the client was told to retry"
                    );
                }
                Err(ReceiveError::Refused(refusal))
            }
        }
    }

    /// Waits for the export of an admitted request and counts it as
    /// accepted or, when its export failed, refused. Returns its items.
    pub async fn outcome(&self, admitted: Admitted) -> Result<usize, ReceiveError> {
        let Admitted {
            items,
            signal,
            pending,
        } = admitted;
        let Some(pending) = pending else {
            return Ok(items);
        };
        match pending.outcome().await {
            Ok(()) => {
                self.metrics.accepted.get(signal).add(items as u64);
                Ok(items)
            }
            Err(failure) => {
                self.metrics.refused.get(signal).add(items as u64);
                self.metrics.request_refused("export_failed");
                tracing::debug!(receiver = %self.id, %signal, items, error = %failure, "export failed; told the waiting client");
                Err(ReceiveError::Failed(failure))
            }
        }
    }
}

/// Lower-cased header pairs kept when `include_metadata` is on.
pub fn metadata_pairs(headers: &::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// Builds an `otlp` receiver: a gRPC and/or an HTTP server pushing into
/// the pipelines it feeds.
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let otlp = ctx.settings::<OtlpReceiverConfig>(c)?;
    let name = ctx.id.clone();
    let mut servers = Vec::new();
    let mut beside = Vec::new();
    let mut resolved = Vec::new();
    if let Some(g) = otlp.protocols.grpc.as_ref() {
        let tls = match &g.tls {
            Some(t) => Some(
                serve::tls_acceptor(t, &[b"h2"], &format!("receivers.{name}.protocols.grpc.tls"))
                    .map_err(|e| BuildError::Component(Box::new(e)))?,
            ),
            None => None,
        };
        let auth = server_auth(ctx, g.auth.as_ref(), &mut beside, &mut resolved)?;
        let sink = OtlpSink::new(
            &name,
            ctx.consumers.clone(),
            ReceiverMetrics::new(ctx.telemetry, &name, "grpc"),
        )
        .with_auth(auth);
        let (g, id) = (g.clone(), name.clone());
        servers.push(Server {
            what: format!("receiver {name} (grpc)"),
            key: format!("receivers.{name}.protocols.grpc.endpoint"),
            endpoint: g.endpoint.clone(),
            serve: Serve::Task(Box::new(move |listener, stop| {
                if let Ok(addr) = listener.local_addr() {
                    tracing::info!(receiver = %id, endpoint = %addr, tls = tls.is_some(), "OTLP/gRPC listening");
                }
                Box::pin(grpc::run(listener, g, tls, sink, stop))
            })),
        });
    }
    if let Some(h) = otlp.protocols.http.as_ref() {
        let tls = match &h.tls {
            Some(t) => Some(
                serve::tls_acceptor(
                    t,
                    &[b"h2", b"http/1.1"],
                    &format!("receivers.{name}.protocols.http.tls"),
                )
                .map_err(|e| BuildError::Component(Box::new(e)))?,
            ),
            None => None,
        };
        let auth = server_auth(ctx, h.auth.as_ref(), &mut beside, &mut resolved)?;
        let sink = OtlpSink::new(
            &name,
            ctx.consumers.clone(),
            ReceiverMetrics::new(ctx.telemetry, &name, "http"),
        )
        .with_auth(auth);
        let (h, id) = (h.clone(), name.clone());
        servers.push(Server {
            what: format!("receiver {name} (http)"),
            key: format!("receivers.{name}.protocols.http.endpoint"),
            endpoint: h.endpoint.clone(),
            serve: Serve::Task(Box::new(move |listener, stop| {
                if let Ok(addr) = listener.local_addr() {
                    tracing::info!(receiver = %id, endpoint = %addr, tls = tls.is_some(), "OTLP/HTTP listening");
                }
                Box::pin(http::run(listener, h, tls, sink, stop))
            })),
        });
    }
    Ok(Built {
        servers,
        beside,
        ..Built::default()
    })
}

/// The authenticator a protocol's `auth` names, its watcher (if any)
/// added to `beside`; both protocols naming the same one share it
/// (`resolved`), so an `oidc` provider's keys are loaded once.
fn server_auth(
    ctx: &Context<'_>,
    auth: Option<&tern_config::components::AuthConfig>,
    beside: &mut Vec<(String, tern_core::build::Starter)>,
    resolved: &mut Vec<(String, Arc<ServerAuth>)>,
) -> Result<Option<Arc<ServerAuth>>, BuildError> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    if let Some((_, same)) = resolved.iter().find(|(id, _)| *id == auth.authenticator) {
        return Ok(Some(same.clone()));
    }
    let server = ServerAuth::resolve(ctx.config, auth)
        .map_err(|e| BuildError::Component(format!("receivers.{}: {e}", ctx.id).into()))?;
    if let Some(watch) = server.watcher() {
        beside.push((
            format!("receiver {} (auth {})", ctx.id, auth.authenticator),
            watch,
        ));
    }
    resolved.push((auth.authenticator.clone(), server.clone()));
    Ok(Some(server))
}
