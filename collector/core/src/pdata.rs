//! The unit that flows through pipelines: a [`Batch`] of one signal, kept as
//! OTLP wire bytes, with its item count, byte size, the context of each
//! request it was made of, and the memory-limiter tickets it holds; both
//! stay with the items through batching, splitting and edits.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::Signal;
use crate::ack::Ack;
use crate::auth::AuthData;
use crate::component::{Delivered, ExportError};
use crate::memory::Ticket;
use crate::view::{self, Edit, SignalView};
use crate::wire::{self, WireError};

/// Who sent a batch; the metadata is filled when the receiver has
/// `include_metadata: true` (the peer address, and what its authenticator
/// learnt of the sender, are always kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// Receiver transport: `grpc` or `http`.
    pub transport: &'static str,
    /// Client address.
    pub peer: Option<SocketAddr>,
    /// Request headers / gRPC metadata (lower-case names), when kept.
    pub metadata: Vec<(String, String)>,
    /// The sender's authentication attributes (`auth.*`), when the
    /// receiver's authenticator gave any.
    pub auth: Option<Arc<AuthData>>,
}

impl RequestContext {
    /// A value of the context by the Collector's `from_context` names:
    /// `client.address` (the peer's address), `auth.<attribute>` (a string
    /// as it is, a list joined with `;`), `metadata.<key>` or just `<key>`
    /// (the kept header, case-insensitive, several values joined with `;`).
    pub fn lookup(&self, key: &str) -> Option<String> {
        if key == "client.address" {
            return self.peer.map(|p| p.ip().to_string());
        }
        if let Some(name) = key.strip_prefix("auth.") {
            return self.auth.as_ref()?.get(name)?.context_text();
        }
        let name = key.strip_prefix("metadata.").unwrap_or(key);
        let values: Vec<&str> = self
            .metadata
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(";"))
    }
}

/// A request inside a batch that an exporter could not use (it fails to
/// decode or translate), with what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// Items it held.
    pub items: usize,
    /// Why it could not be used.
    pub error: String,
}

/// What [`Batch::each_usable`] made of a batch.
#[derive(Debug)]
pub struct Usable<T> {
    /// What the exporter's function made of each part it could use: the
    /// whole batch, or each request of it when the whole failed.
    pub parts: Vec<T>,
    /// The requests it could not use.
    pub unusable: Vec<Unusable>,
}

impl<T> Usable<T> {
    /// The parts, or the error of the first unusable request when nothing
    /// in the batch could be used (the worker then fails the whole batch).
    pub fn parts_or_error(&mut self) -> Result<Vec<T>, ExportError> {
        match self.unusable.first() {
            Some(first) if self.parts.is_empty() => Err(ExportError::Encode(first.error.clone())),
            _ => Ok(std::mem::take(&mut self.parts)),
        }
    }

    /// Logs each unusable request of `exporter` with its reason and says
    /// how many items were lost (counted as failed by the worker).
    pub fn delivered(&self, exporter: &str, signal: Signal) -> Delivered {
        let mut rejected = 0;
        for u in &self.unusable {
            tracing::warn!(
                exporter,
                %signal,
                items = u.items,
                error = %u.error,
                "dropped one request of a batch that cannot be used; the rest was exported"
            );
            rejected += u.items as u64;
        }
        Delivered { rejected }
    }
}

/// The acks a batch carries.
#[derive(Debug, Clone, Default)]
struct Acks(Vec<Arc<Ack>>);

/// Items of one signal as one or more encoded export requests.
#[derive(Debug, Clone)]
pub struct Batch {
    signal: Signal,
    chunks: Vec<Bytes>,
    /// The items and context of each chunk once there are several; empty
    /// while the batch is at most one request (that chunk holds `items`,
    /// received with `context`), so that receiving a request allocates
    /// nothing for it.
    members: Vec<(usize, Arc<RequestContext>)>,
    items: usize,
    bytes: usize,
    /// The context of the first request.
    context: Arc<RequestContext>,
    /// Memory held for this batch; released when its last copy is dropped.
    tickets: Vec<Arc<Ticket>>,
    /// The outcomes senders wait on (`wait_for_result`); `None` otherwise
    /// (boxed: most batches carry none, and a batch stays small to move).
    acks: Option<Box<Acks>>,
}

impl Batch {
    /// Checks and counts an encoded export request; no structs are built.
    pub fn from_wire(
        signal: Signal,
        request: Bytes,
        context: Arc<RequestContext>,
    ) -> Result<Batch, WireError> {
        let items = wire::count_items(signal, &request)?;
        Ok(Batch::one(signal, request, items, context))
    }

    /// A batch of one request of `items` items.
    fn one(signal: Signal, request: Bytes, items: usize, context: Arc<RequestContext>) -> Batch {
        Batch {
            signal,
            items,
            bytes: request.len(),
            chunks: vec![request],
            members: Vec::new(),
            context,
            tickets: Vec::new(),
            acks: None,
        }
    }

    /// A batch of `request` taken as it is, without validation: for tests
    /// of what exporters do with a request a receiver would have refused.
    #[cfg(any(test, feature = "testing"))]
    pub fn from_wire_unchecked(
        signal: Signal,
        request: Bytes,
        items: usize,
        context: Arc<RequestContext>,
    ) -> Batch {
        Batch::one(signal, request, items, context)
    }

    /// An empty batch of `signal`.
    pub fn empty(signal: Signal, context: Arc<RequestContext>) -> Batch {
        Batch {
            signal,
            chunks: Vec::new(),
            members: Vec::new(),
            items: 0,
            bytes: 0,
            context,
            tickets: Vec::new(),
            acks: None,
        }
    }

    /// Whether this batch holds a ticket of `gate`.
    pub fn holds(&self, gate: &Arc<crate::memory::MemoryGate>) -> bool {
        self.tickets.iter().any(|t| t.is_from(gate))
    }

    /// Ties `ticket` to this batch (and every copy and piece of it).
    pub fn hold(&mut self, ticket: Arc<Ticket>) {
        self.tickets.push(ticket);
    }

    /// Ties `ack` to this batch (and every copy and piece of it): its
    /// sender is answered once they are all done.
    pub fn wait_on(&mut self, ack: Arc<Ack>) {
        self.acks.get_or_insert_default().0.push(ack);
    }

    /// Copies of the acks (a holder that settles them apart from the
    /// batch, while the batch keeps them too).
    pub fn acks(&self) -> Vec<Arc<Ack>> {
        self.acks.as_ref().map(|a| a.0.clone()).unwrap_or_default()
    }

    /// Takes the acks out (an exporter worker holds them through the
    /// export, whatever the exporter does with the batch).
    pub fn take_acks(&mut self) -> Vec<Arc<Ack>> {
        self.acks.take().map(|a| a.0).unwrap_or_default()
    }

    /// Records a failure in every ack of this batch (it is being dropped
    /// undelivered).
    pub fn fail(&self, permanent: bool, message: &str) {
        for ack in self.acks.iter().flat_map(|a| a.0.iter()) {
            ack.fail(permanent, message);
        }
    }

    /// The signal.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// Spans, data points or log records inside.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Encoded size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when there are no items and no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The request context of the (first) request in this batch.
    pub fn context(&self) -> &Arc<RequestContext> {
        &self.context
    }

    /// The requests this batch is made of, each with its items and the
    /// context it was received with.
    pub fn requests(&self) -> impl Iterator<Item = Request<'_>> {
        let single = match self.chunks.as_slice() {
            [bytes] => Some(Request {
                bytes,
                items: self.items,
                context: &self.context,
            }),
            _ => None,
        };
        let several = if single.is_some() {
            0
        } else {
            self.chunks.len()
        };
        let each =
            self.chunks
                .iter()
                .zip(&self.members)
                .take(several)
                .map(|(bytes, (items, context))| Request {
                    bytes,
                    items: *items,
                    context,
                });
        single.into_iter().chain(each)
    }

    /// The encoded requests; concatenated they form one valid request.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// The whole batch as one encoded export request.
    pub fn to_wire(&self) -> Bytes {
        wire::concat(&self.chunks)
    }

    /// Appends `other` (same signal) to this batch.
    pub fn append(&mut self, other: Batch) {
        debug_assert_eq!(self.signal, other.signal);
        if !self.chunks.is_empty() && !other.chunks.is_empty() {
            if self.members.is_empty() {
                self.members.push((self.items, self.context.clone()));
            }
            if other.members.is_empty() {
                self.members.push((other.items, other.context));
            } else {
                self.members.extend(other.members);
            }
        } else if self.chunks.is_empty() {
            self.context = other.context;
            self.members = other.members;
        }
        self.items += other.items;
        self.bytes += other.bytes;
        self.chunks.extend(other.chunks);
        self.tickets.extend(other.tickets);
        if let Some(theirs) = other.acks {
            match self.acks.as_mut() {
                Some(ours) => ours.0.extend(theirs.0),
                None => self.acks = Some(theirs),
            }
        }
    }

    /// Runs `use_request` (decode, translate, write) over the whole batch as
    /// one request; if that fails, over each request the batch was made of,
    /// so that one member an exporter cannot use costs only its own items,
    /// never those batched with it. Receivers validate every request, so the
    /// fallback is defence in depth.
    pub fn each_usable<T, E: std::fmt::Display>(
        &self,
        mut use_request: impl FnMut(&[u8]) -> Result<T, E>,
    ) -> Usable<T> {
        let whole_error = match use_request(&self.to_wire()) {
            Ok(part) => {
                return Usable {
                    parts: vec![part],
                    unusable: Vec::new(),
                };
            }
            Err(e) => e.to_string(),
        };
        if self.chunks.len() < 2 {
            return Usable {
                parts: Vec::new(),
                unusable: vec![Unusable {
                    items: self.items,
                    error: whole_error,
                }],
            };
        }
        let mut usable = Usable {
            parts: Vec::new(),
            unusable: Vec::new(),
        };
        for request in self.requests() {
            match use_request(request.bytes) {
                Ok(part) => usable.parts.push(part),
                Err(e) => usable.unusable.push(Unusable {
                    items: request.items,
                    error: e.to_string(),
                }),
            }
        }
        usable
    }

    /// Splits into batches of at most `max` items, keeping order. Item
    /// bytes are copied as they are; only envelopes are re-written. Each
    /// request is split on its own, so every piece keeps the context of the
    /// request it came from; every batch holds the tickets.
    pub fn split(self, max: usize) -> Result<Vec<Batch>, WireError> {
        let max = max.max(1);
        if self.items <= max {
            return Ok(vec![self]);
        }
        let mut out = Vec::new();
        let mut filling = Batch::empty(self.signal, self.context.clone());
        for request in self.requests() {
            if filling.items == max {
                out.push(std::mem::replace(
                    &mut filling,
                    Batch::empty(self.signal, self.context.clone()),
                ));
            }
            let pieces = wire::split_after(self.signal, request.bytes, max - filling.items, max)?;
            for (i, piece) in pieces.into_iter().enumerate() {
                if i > 0 {
                    out.push(std::mem::replace(
                        &mut filling,
                        Batch::empty(self.signal, self.context.clone()),
                    ));
                }
                filling.append(Batch::one(
                    self.signal,
                    piece.bytes.freeze(),
                    piece.items,
                    request.context.clone(),
                ));
            }
        }
        if !filling.is_empty() {
            out.push(filling);
        }
        for batch in &mut out {
            batch.tickets.clone_from(&self.tickets);
            batch.acks.clone_from(&self.acks);
        }
        Ok(out)
    }

    /// A batch of this one's signal, memory tickets and acks, made of
    /// `requests` (encoded export request, its items, the context it was
    /// received with) that the caller cut from this batch's own requests
    /// (a split by owner): they are not checked again; empty ones are left
    /// out.
    pub fn derive(
        &self,
        requests: impl IntoIterator<Item = (Bytes, usize, Arc<RequestContext>)>,
    ) -> Batch {
        let mut out = Batch::empty(self.signal, self.context.clone());
        for (bytes, items, context) in requests {
            if !bytes.is_empty() {
                out.append(Batch::one(self.signal, bytes, items, context));
            }
        }
        out.tickets.clone_from(&self.tickets);
        out.acks.clone_from(&self.acks);
        out
    }

    /// Writes each request of the batch through `edit` (one `edit` for all,
    /// in order; see [`view::edit`]): each request keeps its context, a
    /// request left with nothing is left out, and the new batch holds this
    /// one's memory tickets.
    pub fn edit<S: SignalView, E: Edit<S>>(self, edit: &mut E) -> Result<Batch, EditError> {
        if S::SIGNAL != self.signal {
            return Err(EditError::Signal {
                edit: S::SIGNAL,
                batch: self.signal,
            });
        }
        let mut out = Batch::empty(self.signal, self.context.clone());
        for request in self.requests() {
            let edited = view::edit::<S, E>(request.bytes, edit)?;
            if !edited.bytes.is_empty() {
                out.append(Batch::one(
                    self.signal,
                    edited.bytes,
                    edited.items,
                    request.context.clone(),
                ));
            }
        }
        out.tickets = self.tickets;
        out.acks = self.acks;
        Ok(out)
    }
}

/// One request of a batch (see [`Batch::requests`]).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Its encoded bytes.
    pub bytes: &'a Bytes,
    /// Items in it.
    pub items: usize,
    /// The context it was received with.
    pub context: &'a Arc<RequestContext>,
}

/// Why [`Batch::edit`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The edit is for another signal.
    #[error("an edit of {edit} cannot change a batch of {batch}")]
    Signal {
        /// The edit's signal.
        edit: Signal,
        /// The batch's.
        batch: Signal,
    },
    /// A request of the batch is not valid protobuf.
    #[error(transparent)]
    Wire(#[from] WireError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(n: usize) -> Bytes {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use prost::Message;
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Bytes::from(req.encode_to_vec())
    }

    fn batch(parts: &[Bytes]) -> Batch {
        let ctx = Arc::new(RequestContext::default());
        let mut batch = Batch::empty(Signal::Logs, ctx.clone());
        for p in parts {
            let items = wire::count_items(Signal::Logs, p).unwrap_or(0);
            batch.append(Batch::from_wire_unchecked(
                Signal::Logs,
                p.clone(),
                items,
                ctx.clone(),
            ));
        }
        batch
    }

    #[test]
    fn a_usable_batch_is_used_whole() {
        let b = batch(&[logs(2), logs(3)]);
        let mut calls = 0;
        let usable = b.each_usable(|w| {
            calls += 1;
            wire::count_items(Signal::Logs, w)
        });
        assert_eq!((calls, usable.parts, usable.unusable), (1, vec![5], vec![]));
    }

    #[test]
    fn one_bad_member_costs_only_its_own_items() {
        // Four log records, the last with a body that is not UTF-8: what a
        // receiver refuses, here slipped into a batch between two good ones.
        let mut bad = logs(3).to_vec();
        bad.extend_from_slice(&[
            0x0a, 0x0b, 0x12, 0x09, 0x12, 0x07, 0x2a, 0x05, 0x0a, 0x03, b'a', 0xff, b'b',
        ]);
        let ctx = Arc::new(RequestContext::default());
        let mut b = batch(&[logs(2)]);
        b.append(Batch::from_wire_unchecked(
            Signal::Logs,
            Bytes::from(bad),
            4,
            ctx,
        ));
        b.append(batch(&[logs(3)]));
        let mut usable = b.each_usable(|w| {
            use prost::Message;
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(w)
                .map(|r| {
                    r.resource_logs
                        .iter()
                        .map(|r| r.scope_logs[0].log_records.len())
                        .sum::<usize>()
                })
        });
        assert_eq!(usable.parts_or_error().unwrap(), vec![2, 3]);
        assert_eq!(usable.unusable.len(), 1);
        assert!(
            usable.unusable[0].error.contains("UTF-8"),
            "{:?}",
            usable.unusable
        );
        assert_eq!(usable.delivered("file", Signal::Logs).rejected, 4);
    }

    fn from(peer: &str, n: usize) -> Batch {
        let context = Arc::new(RequestContext {
            transport: "grpc",
            peer: peer.parse().ok(),
            metadata: vec![("x-tenant".into(), peer.into())],
            auth: None,
        });
        Batch::from_wire(Signal::Logs, logs(n), context).unwrap()
    }

    /// (peer, items) of each request.
    fn members(b: &Batch) -> Vec<(String, usize)> {
        b.requests()
            .map(|r| {
                let peer = r.context.peer.map(|p| p.to_string()).unwrap_or_default();
                assert_eq!(wire::count_items(Signal::Logs, r.bytes).unwrap(), r.items);
                (peer, r.items)
            })
            .collect()
    }

    const A: &str = "10.0.0.1:5000";
    const B: &str = "10.0.0.2:5000";
    const C: &str = "10.0.0.3:5000";

    #[test]
    fn each_request_keeps_its_context_through_batching_and_splitting() {
        let mut b = Batch::empty(Signal::Logs, Arc::new(RequestContext::default()));
        for (peer, n) in [(A, 3), (B, 4), (C, 5)] {
            b.append(from(peer, n));
        }
        assert_eq!(b.context().peer, A.parse().ok());
        let expected = |v: &[(&str, usize)]| {
            v.iter()
                .map(|(p, n)| (p.to_string(), *n))
                .collect::<Vec<_>>()
        };
        assert_eq!(members(&b), expected(&[(A, 3), (B, 4), (C, 5)]));
        let pieces = b.split(5).unwrap();
        let got: Vec<_> = pieces.iter().map(members).collect();
        assert_eq!(
            got,
            vec![
                expected(&[(A, 3), (B, 2)]),
                expected(&[(B, 2), (C, 3)]),
                expected(&[(C, 2)]),
            ]
        );
        assert_eq!(pieces[1].context().peer, B.parse().ok());
        // Appending a batch of several requests keeps each one's context.
        let mut again = Batch::empty(Signal::Logs, Arc::new(RequestContext::default()));
        for piece in pieces {
            again.append(piece);
        }
        assert_eq!(again.items(), 12);
        assert_eq!(members(&again).len(), 5);
    }

    /// Drops every second log record.
    struct Halve(usize);

    impl Edit<view::Logs> for Halve {
        fn item(
            &mut self,
            _: &view::LogRecord<'_>,
            _: &mut view::Change,
        ) -> Result<view::Decision, WireError> {
            self.0 += 1;
            Ok(if self.0.is_multiple_of(2) {
                view::Decision::Drop
            } else {
                view::Decision::Keep
            })
        }
    }

    #[test]
    fn an_edit_keeps_contexts_and_tickets() {
        let telemetry = crate::telemetry::Telemetry::new();
        let gate = crate::memory::MemoryGate::new("memory_limiter", 1 << 20, 0, &telemetry);
        let mut b = from(A, 1);
        b.append(from(B, 4));
        b.append(from(C, 3));
        b.hold(gate.try_admit(100).unwrap());
        let edited = b.edit(&mut Halve(0)).unwrap();
        // One count runs over all requests: A keeps 1 of 1, B 2 of 4, C 1 of 3.
        assert_eq!(
            members(&edited),
            vec![(A.to_string(), 1), (B.to_string(), 2), (C.to_string(), 1)]
        );
        assert_eq!(edited.items(), 4);
        assert_eq!(gate.used(), 100, "the tickets moved to the edited batch");
        // A request left with nothing is left out.
        let emptied = from(A, 1).edit(&mut Halve(1)).unwrap();
        assert_eq!((emptied.items(), emptied.requests().count()), (0, 0));
        drop(edited);
        assert_eq!(gate.used(), 0);
    }

    #[test]
    fn a_derived_batch_keeps_tickets_and_acks() {
        let telemetry = crate::telemetry::Telemetry::new();
        let gate = crate::memory::MemoryGate::new("memory_limiter", 1 << 20, 0, &telemetry);
        let mut b = from(A, 2);
        b.hold(gate.try_admit(100).unwrap());
        let (ack, pending) = Ack::new();
        b.wait_on(ack);
        let ctx = Arc::new(RequestContext::default());
        let part = b.derive([(logs(1), 1, ctx.clone()), (Bytes::new(), 0, ctx)]);
        assert_eq!((part.items(), part.requests().count()), (1, 1));
        drop(b);
        assert_eq!(gate.used(), 100, "the part holds the memory");
        part.fail(false, "backend down");
        drop(part);
        assert_eq!(gate.used(), 0);
        assert_eq!(
            futures_ready(pending.outcome()).unwrap_err().message,
            "backend down"
        );
    }

    /// The output of a future that is ready at once.
    fn futures_ready<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("not ready"),
        }
    }

    #[test]
    fn an_edit_of_another_signal_is_an_error() {
        struct Nothing;
        impl Edit<view::Traces> for Nothing {}
        let err = from(A, 1).edit(&mut Nothing).unwrap_err();
        assert!(matches!(err, EditError::Signal { .. }), "{err}");
    }

    #[test]
    fn nothing_usable_is_an_error_for_the_whole_batch() {
        let b = batch(&[Bytes::from_static(&[0xff])]);
        let mut usable = b.each_usable(|w| wire::count_items(Signal::Logs, w));
        assert!(matches!(
            usable.parts_or_error(),
            Err(ExportError::Encode(_))
        ));
    }

    #[test]
    fn from_context_names_resolve_as_the_collector_does() {
        use crate::auth::AuthValue;
        let mut auth = AuthData::default();
        auth.set("subject", AuthValue::Text("me".into()));
        auth.set("membership", AuthValue::List(vec!["a".into(), "b".into()]));
        auth.set("claims.n", AuthValue::Json("5".into()));
        let ctx = RequestContext {
            transport: "http",
            peer: Some("[::1]:80".parse().unwrap()),
            metadata: vec![
                ("x-tenant".into(), "t1".into()),
                ("x-multi".into(), "1".into()),
                ("x-multi".into(), "2".into()),
            ],
            auth: Some(Arc::new(auth)),
        };
        assert_eq!(ctx.lookup("client.address").as_deref(), Some("::1"));
        assert_eq!(ctx.lookup("auth.subject").as_deref(), Some("me"));
        assert_eq!(ctx.lookup("auth.membership").as_deref(), Some("a;b"));
        assert_eq!(ctx.lookup("auth.claims.n"), None, "other types are ignored");
        assert_eq!(ctx.lookup("auth.nothing"), None);
        assert_eq!(ctx.lookup("metadata.X-Tenant").as_deref(), Some("t1"));
        assert_eq!(ctx.lookup("x-tenant").as_deref(), Some("t1"));
        assert_eq!(ctx.lookup("x-multi").as_deref(), Some("1;2"));
        assert_eq!(ctx.lookup("absent"), None);
    }
}
