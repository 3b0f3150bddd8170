//! The unit that flows through pipelines: a [`Batch`] of one signal, kept as
//! OTLP wire bytes, with its item count, byte size and request context.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::Signal;
use crate::memory::Ticket;
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

/// Items of one signal as one or more encoded export requests.
#[derive(Debug, Clone)]
pub struct Batch {
    signal: Signal,
    chunks: Vec<Bytes>,
    items: usize,
    bytes: usize,
    context: Arc<RequestContext>,
    /// Memory held for this batch; released when its last copy is dropped.
    tickets: Vec<Arc<Ticket>>,
}

impl Batch {
    /// Checks and counts an encoded export request; no structs are built.
    pub fn from_wire(
        signal: Signal,
        request: Bytes,
        context: Arc<RequestContext>,
    ) -> Result<Batch, WireError> {
        let items = wire::count_items(signal, &request)?;
        Ok(Batch {
            signal,
            items,
            bytes: request.len(),
            chunks: vec![request],
            context,
            tickets: Vec::new(),
        })
    }

    /// An empty batch of `signal`.
    pub fn empty(signal: Signal, context: Arc<RequestContext>) -> Batch {
        Batch {
            signal,
            chunks: Vec::new(),
            items: 0,
            bytes: 0,
            context,
            tickets: Vec::new(),
        }
    }

    /// Ties `ticket` to this batch (and every copy and piece of it).
    pub fn hold(&mut self, ticket: Arc<Ticket>) {
        self.tickets.push(ticket);
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
        self.items += other.items;
        self.bytes += other.bytes;
        self.chunks.extend(other.chunks);
        self.tickets.extend(other.tickets);
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
                    context: self.context.clone(),
                    tickets: self.tickets.clone(),
                }
            })
            .collect())
    }
}
