//! The unit that flows through pipelines: a [`Batch`] of one signal, kept as
//! OTLP wire bytes, with its item count, byte size and request context.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::Signal;
use crate::ack::Ack;
use crate::component::{Delivered, ExportError};
use crate::memory::Ticket;
use crate::view::Edited;
use crate::wire::{self, WireError};

/// Who sent a batch; filled when the receiver has `include_metadata: true`
/// (the peer address is always kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// Receiver transport: `grpc` or `http`.
    pub transport: &'static str,
    /// Client address.
    pub peer: Option<SocketAddr>,
    /// Request headers / gRPC metadata (lower-case names), when kept.
    pub metadata: Vec<(String, String)>,
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
    /// Items in each chunk once there are several; empty while the batch
    /// is at most one request (that chunk holds `items`), so that receiving
    /// a request allocates nothing for it.
    chunk_items: Vec<usize>,
    items: usize,
    bytes: usize,
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
            chunk_items: Vec::new(),
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
            chunk_items: Vec::new(),
            items: 0,
            bytes: 0,
            context,
            tickets: Vec::new(),
            acks: None,
        }
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
        if self.chunks.is_empty() {
            self.context = other.context;
        }
        if !self.chunks.is_empty() && !other.chunks.is_empty() {
            if self.chunk_items.is_empty() {
                self.chunk_items.push(self.items);
            }
            if other.chunk_items.is_empty() {
                self.chunk_items.push(other.items);
            } else {
                self.chunk_items.extend(other.chunk_items);
            }
        } else if self.chunks.is_empty() {
            self.chunk_items = other.chunk_items;
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
        for (chunk, &items) in self.chunks.iter().zip(&self.chunk_items) {
            match use_request(chunk) {
                Ok(part) => usable.parts.push(part),
                Err(e) => usable.unusable.push(Unusable {
                    items,
                    error: e.to_string(),
                }),
            }
        }
        usable
    }

    /// Rewrites each request of the batch with `edit` (see
    /// [`crate::view::edit`]), keeping what the batch carries (request
    /// context, memory tickets); requests left without items are left out.
    /// A request `edit` cannot read stays as it was (receivers validate
    /// every request, so this is defence in depth) and its error is
    /// returned with the batch.
    pub fn edit(
        mut self,
        mut edit: impl FnMut(&[u8]) -> Result<Edited, WireError>,
    ) -> (Batch, Vec<WireError>) {
        let counts = if self.chunk_items.is_empty() {
            vec![self.items]
        } else {
            std::mem::take(&mut self.chunk_items)
        };
        let mut errors = Vec::new();
        let (mut chunks, mut chunk_items) = (Vec::new(), Vec::new());
        for (chunk, items) in std::mem::take(&mut self.chunks).into_iter().zip(counts) {
            let (chunk, items) = match edit(&chunk) {
                Ok(edited) => (edited.bytes, edited.items),
                Err(e) => {
                    errors.push(e);
                    (chunk, items)
                }
            };
            if items > 0 {
                chunks.push(chunk);
                chunk_items.push(items);
            }
        }
        self.items = chunk_items.iter().sum();
        self.bytes = chunks.iter().map(Bytes::len).sum();
        if chunks.len() < 2 {
            chunk_items.clear();
        }
        self.chunks = chunks;
        self.chunk_items = chunk_items;
        (self, errors)
    }

    /// Splits into batches of at most `max` items, keeping order. Item
    /// bytes are copied as they are; only envelopes are re-written.
    pub fn split(self, max: usize) -> Result<Vec<Batch>, WireError> {
        if self.items <= max {
            return Ok(vec![self]);
        }
        let whole = self.to_wire();
        let pieces = wire::split(self.signal, &whole, max)?;
        Ok(pieces
            .into_iter()
            .map(|p| {
                let bytes = p.bytes.freeze();
                Batch {
                    signal: self.signal,
                    items: p.items,
                    bytes: bytes.len(),
                    chunks: vec![bytes],
                    chunk_items: Vec::new(),
                    context: self.context.clone(),
                    tickets: self.tickets.clone(),
                    acks: self.acks.clone(),
                }
            })
            .collect())
    }
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

    #[test]
    fn nothing_usable_is_an_error_for_the_whole_batch() {
        let b = batch(&[Bytes::from_static(&[0xff])]);
        let mut usable = b.each_usable(|w| wire::count_items(Signal::Logs, w));
        assert!(matches!(
            usable.parts_or_error(),
            Err(ExportError::Encode(_))
        ));
    }
}
