//! Held traces as wire bytes: each span is a slice of the request it came in,
//! with its resource and scope envelope (their fields other than the child
//! list, copied once per request) and the request it keeps alive. The bytes
//! of every request still referenced are counted in one shared total, which
//! is what the byte bound (`max_held_bytes`) compares against.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tern_core::pdata::Batch;
use tern_core::view::{FromWire, ResourceView, Span, Status, Traces};
use tern_core::wire::{Reason, WireError, fields, put_varint, read_varint, schema, varint_len};
use tokio::time::Instant;

const RESOURCE_SPANS: u32 = schema::TRACES_REQUEST.number("resource_spans");
const SCOPE_SPANS: u32 = schema::RESOURCE_SPANS.number("scope_spans");
const SPANS: u32 = schema::SCOPE_SPANS.number("spans");
const TRACE_ID: u32 = schema::SPAN.number("trace_id");
const TRACE_STATE: u32 = schema::SPAN.number("trace_state");
const START: u32 = schema::SPAN.number("start_time_unix_nano");
const END: u32 = schema::SPAN.number("end_time_unix_nano");
const STATUS: u32 = schema::SPAN.number("status");
const STATUS_CODE: u32 = schema::STATUS.number("code");

/// A received batch, kept while any of its spans is held; its bytes count
/// towards the held total until then.
#[derive(Debug)]
pub struct Origin {
    /// Keeps the batch's memory tickets (and its bytes) alive.
    _batch: Batch,
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl Origin {
    /// Holds `batch` (its acks already taken), counting it in `held`.
    pub fn new(batch: Batch, held: &Arc<AtomicUsize>) -> Arc<Origin> {
        let bytes = batch.bytes();
        held.fetch_add(bytes, Ordering::Relaxed);
        Arc::new(Origin {
            _batch: batch,
            bytes,
            held: held.clone(),
        })
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A resource's or scope's fields other than its child list, encoded.
#[derive(Debug)]
pub struct Envelope {
    /// The fields.
    pub head: Bytes,
    /// The resource a scope belongs to (`None` for a resource).
    pub parent: Option<Arc<Envelope>>,
    /// The request a scope's spans are slices of (empty for a resource).
    request: Bytes,
    /// The batch these came from.
    pub _origin: Arc<Origin>,
}

/// One held span: a slice of its scope's request (16 bytes: no reference
/// count of its own besides its scope's).
#[derive(Debug, Clone)]
pub struct HeldSpan {
    /// Its scope (whose parent is its resource).
    pub scope: Arc<Envelope>,
    start: u32,
    len: u32,
}

impl HeldSpan {
    /// The span's encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        let start = self.start as usize;
        &self.scope.request[start..start + self.len as usize]
    }
}

/// The fields of `raw` other than field `child`.
fn head(raw: &[u8], child: u32) -> Result<Bytes, WireError> {
    let mut out = BytesMut::new();
    for f in fields(raw) {
        let f = f?;
        if f.number != child {
            out.extend_from_slice(f.raw);
        }
    }
    Ok(out.freeze())
}

/// `n` as a span offset or length (requests are far below 4 GiB).
fn offset(n: usize) -> Result<u32, WireError> {
    u32::try_from(n).map_err(|_| {
        WireError::new(
            Reason::Malformed,
            "resource_spans".into(),
            "a request of 4 GiB or more".into(),
        )
    })
}

/// Calls `each` with every span of `origin`'s requests and its 16-byte
/// trace id (zeros when it has none).
pub fn spans(
    origin: &Arc<Origin>,
    chunks: &[Bytes],
    mut each: impl FnMut([u8; 16], HeldSpan),
) -> Result<(), WireError> {
    for chunk in chunks {
        for resource in tern_core::view::RequestView::<Traces>::new(chunk).resources() {
            let resource: ResourceView<'_, Traces> = resource?;
            let r = Arc::new(Envelope {
                head: head(resource.raw, SCOPE_SPANS)?,
                parent: None,
                request: Bytes::new(),
                _origin: origin.clone(),
            });
            for scope in resource.scopes() {
                let scope = scope?;
                let s = Arc::new(Envelope {
                    head: head(scope.raw, SPANS)?,
                    parent: Some(r.clone()),
                    request: chunk.clone(),
                    _origin: origin.clone(),
                });
                // Only the trace id is needed here: walk each span's fields
                // without reading (or checking) the rest.
                for f in fields(scope.raw) {
                    let f = f?;
                    if f.number != SPANS || f.wire_type != 2 {
                        continue;
                    }
                    let mut id = [0u8; 16];
                    for g in fields(f.payload) {
                        let g = g?;
                        if g.number == TRACE_ID && g.wire_type == 2 {
                            id = <[u8; 16]>::try_from(g.payload).unwrap_or_default();
                        }
                    }
                    let held = HeldSpan {
                        scope: s.clone(),
                        start: offset(f.payload.as_ptr() as usize - chunk.as_ptr() as usize)?,
                        len: offset(f.payload.len())?,
                    };
                    each(id, held);
                }
            }
        }
    }
    Ok(())
}

/// A held span with only what the policies other than the attribute ones
/// read: its times, its status code and its trace state (the receiver
/// checked the rest). Its other fields are left at their defaults.
pub fn span_without_attributes(raw: &[u8]) -> Result<Span<'_>, WireError> {
    let fixed64 = |b: &[u8]| <[u8; 8]>::try_from(b).map_or(0, u64::from_le_bytes);
    let mut span = Span::default();
    span.raw = raw;
    for f in fields(raw) {
        let f = f?;
        match (f.number, f.wire_type) {
            (START, 1) => span.start_time_unix_nano = fixed64(f.payload),
            (END, 1) => span.end_time_unix_nano = fixed64(f.payload),
            (STATUS, 2) => {
                let mut status = Status::default();
                for g in fields(f.payload) {
                    let g = g?;
                    if g.number == STATUS_CODE && g.wire_type == 0 {
                        status.code = read_varint(g.payload, &mut 0)? as i32;
                    }
                }
                span.status = Some(status);
            }
            (TRACE_STATE, 2) => {
                span.trace_state = std::str::from_utf8(f.payload).map_err(|_| {
                    WireError::new(Reason::Utf8, "span.trace_state".into(), String::new())
                })?;
            }
            _ => {}
        }
    }
    Ok(span)
}

/// The resource of a held span.
pub fn resource(held: &HeldSpan) -> Result<Option<tern_core::view::Resource<'_>>, WireError> {
    Ok(match &held.scope.parent {
        Some(r) => ResourceView::<Traces>::from_wire(&r.head)?.resource,
        None => None,
    })
}

fn put_len_field(out: &mut BytesMut, number: u32, len: usize) {
    put_varint(out, u64::from(number << 3 | 2));
    put_varint(out, len as u64);
}

/// Encoded size of a length-delimited field of `len` bytes (field numbers
/// below 16: a one-byte tag).
fn len_field(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// `spans` in runs that share one resource envelope (one `ResourceSpans`
/// each).
fn by_resource(spans: &[HeldSpan]) -> impl Iterator<Item = &[HeldSpan]> {
    spans.chunk_by(|a, b| match (&a.scope.parent, &b.scope.parent) {
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    })
}

/// `spans` in runs that share one scope envelope (one `ScopeSpans` each).
fn by_scope(spans: &[HeldSpan]) -> impl Iterator<Item = &[HeldSpan]> {
    spans.chunk_by(|a, b| Arc::ptr_eq(&a.scope, &b.scope))
}

/// The resource envelope of a run from [`by_resource`].
fn resource_head(run: &[HeldSpan]) -> &[u8] {
    run.first()
        .and_then(|s| s.scope.parent.as_ref())
        .map_or(&[][..], |r| &r.head)
}

/// The scope envelope of a run from [`by_scope`].
fn scope_head(run: &[HeldSpan]) -> &[u8] {
    run.first().map_or(&[][..], |s| &s.scope.head)
}

/// Encoded size of a `ScopeSpans` (or `ResourceSpans`) body: `head` bytes
/// of its own fields, then each child run sized by `child`.
fn body_len<'a, I: Iterator<Item = &'a [HeldSpan]>>(
    head: usize,
    runs: I,
    child: impl Fn(&'a [HeldSpan]) -> usize,
) -> usize {
    head + runs.map(|run| len_field(child(run))).sum::<usize>()
}

/// Encoded size of a scope run's `ScopeSpans` with `head` bytes of its
/// own fields.
fn scope_len(run: &[HeldSpan], head: usize) -> usize {
    head + run
        .iter()
        .map(|s| len_field(s.bytes().len()))
        .sum::<usize>()
}

/// Encodes `spans` as one export request: consecutive spans of one scope
/// share a `ScopeSpans`, consecutive scopes of one resource a `ResourceSpans`.
pub fn encode(spans: &[HeldSpan]) -> Bytes {
    let resource_len = |run: &[HeldSpan]| {
        body_len(resource_head(run).len(), by_scope(run), |s| {
            scope_len(s, scope_head(s).len())
        })
    };
    let total: usize = by_resource(spans).map(|r| len_field(resource_len(r))).sum();
    let mut out = BytesMut::with_capacity(total);
    for resource in by_resource(spans) {
        put_len_field(&mut out, RESOURCE_SPANS, resource_len(resource));
        out.extend_from_slice(resource_head(resource));
        for scope in by_scope(resource) {
            let head = scope_head(scope);
            put_len_field(&mut out, SCOPE_SPANS, scope_len(scope, head.len()));
            out.extend_from_slice(head);
            for held in scope {
                let span = held.bytes();
                put_len_field(&mut out, SPANS, span.len());
                out.extend_from_slice(span);
            }
        }
    }
    out.freeze()
}

/// The size the Collector's `bytes_limiting` gives a trace of these spans:
/// the encoded size of its `ResourceSpans` as the Collector rebuilds them
/// (one per request and resource, a `ScopeSpans` per scope), which carry
/// the resource and the scope but not their `schema_url`.
pub fn collector_size(spans: &[HeldSpan]) -> u64 {
    // The encoded `resource` (or `scope`) field of an envelope; the
    // Collector writes it even when empty.
    let first_field = |head: &[u8]| {
        fields(head)
            .filter_map(Result::ok)
            .find(|f| f.number == 1)
            .map_or(2, |f| f.raw.len())
    };
    by_resource(spans)
        .map(|r| {
            len_field(body_len(first_field(resource_head(r)), by_scope(r), |s| {
                scope_len(s, first_field(scope_head(s)))
            }))
        })
        .sum::<usize>() as u64
}

/// Hashes trace ids (already random) with one multiply per word, keyed by
/// a per-process seed so that chosen ids cannot be made to collide.
#[derive(Debug, Clone, Copy)]
pub struct IdHash(u64);

impl Default for IdHash {
    fn default() -> Self {
        IdHash(std::collections::hash_map::RandomState::new().hash_one(0u8) | 1)
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

/// See [`IdHash`].
#[derive(Debug, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29);
        }
    }

    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        let h = self.0 ^ (self.0 >> 32);
        h.wrapping_mul(0xd6e8_feb8_6659_fd93) ^ (h >> 29)
    }
}

/// A map keyed by trace id.
type IdMap<V> = HashMap<[u8; 16], V, IdHash>;

/// A trace waiting for its decision.
#[derive(Debug)]
pub struct Trace {
    /// Its spans, in arrival order.
    pub spans: Vec<HeldSpan>,
    /// When its first span arrived.
    pub first: Instant,
    generation: u64,
}

/// Traces waiting, oldest first.
#[derive(Debug)]
pub struct Store {
    traces: IdMap<Trace>,
    /// Arrival order: (first span time, id, generation).
    order: VecDeque<(Instant, [u8; 16], u64)>,
    next_generation: u64,
}

impl Store {
    /// An empty store sized for `capacity` traces.
    pub fn with_capacity(capacity: usize) -> Store {
        Store {
            traces: HashMap::with_capacity_and_hasher(capacity, IdHash::default()),
            order: VecDeque::with_capacity(capacity),
            next_generation: 0,
        }
    }

    /// Traces held.
    pub fn len(&self) -> usize {
        self.traces.len()
    }

    /// True when no trace is held.
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty()
    }

    /// Moves `spans` to trace `id` if that is held (true); leaves them
    /// otherwise.
    pub fn extend_held(&mut self, id: &[u8; 16], spans: &mut Vec<HeldSpan>) -> bool {
        match self.traces.get_mut(id) {
            Some(t) => {
                t.spans.append(spans);
                true
            }
            None => false,
        }
    }

    /// Starts holding trace `id` (not held yet) with `spans`, which it
    /// takes.
    pub fn add_new(&mut self, id: [u8; 16], spans: &mut Vec<HeldSpan>, now: Instant) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let mut own = Vec::with_capacity(spans.len().max(8));
        own.append(spans);
        self.traces.insert(
            id,
            Trace {
                spans: own,
                first: now,
                generation,
            },
        );
        self.order.push_back((now, id, generation));
    }

    /// When the oldest trace arrived.
    pub fn oldest(&mut self) -> Option<Instant> {
        self.skip_stale();
        self.order.front().map(|(t, _, _)| *t)
    }

    /// Takes the oldest trace out.
    pub fn pop_oldest(&mut self) -> Option<([u8; 16], Trace)> {
        self.skip_stale();
        let (_, id, _) = self.order.pop_front()?;
        self.traces.remove(&id).map(|t| (id, t))
    }

    fn skip_stale(&mut self) {
        while let Some((_, id, generation)) = self.order.front() {
            if self
                .traces
                .get(id)
                .is_some_and(|t| t.generation == *generation)
            {
                return;
            }
            self.order.pop_front();
        }
    }
}

/// Decided trace ids, forgotten oldest first past a capacity.
#[derive(Debug)]
pub struct Decided {
    ids: IdMap<Instant>,
    order: VecDeque<[u8; 16]>,
    capacity: usize,
}

impl Decided {
    /// Remembers at most `capacity` ids (0: none).
    pub fn new(capacity: usize) -> Decided {
        Decided {
            ids: HashMap::default(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Remembers `id`, decided at `at`.
    pub fn insert(&mut self, id: [u8; 16], at: Instant) {
        if self.capacity == 0 || self.ids.insert(id, at).is_some() {
            return;
        }
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    /// When `id` was decided, if remembered.
    pub fn get(&self, id: &[u8; 16]) -> Option<Instant> {
        self.ids.get(id).copied()
    }
}
