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
use tern_core::view::{FromWire, ResourceView, Traces};
use tern_core::wire::{WireError, fields, put_varint, schema};
use tokio::time::Instant;

const RESOURCE_SPANS: u32 = schema::TRACES_REQUEST.number("resource_spans");
const SCOPE_SPANS: u32 = schema::RESOURCE_SPANS.number("scope_spans");
const SPANS: u32 = schema::SCOPE_SPANS.number("spans");
const TRACE_ID: u32 = schema::SPAN.number("trace_id");

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
    /// The request these came from.
    pub _origin: Arc<Origin>,
}

/// One held span.
#[derive(Debug, Clone)]
pub struct HeldSpan {
    /// The span's encoded bytes (a slice of its request).
    pub span: Bytes,
    /// Its scope (whose parent is its resource).
    pub scope: Arc<Envelope>,
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
                _origin: origin.clone(),
            });
            for scope in resource.scopes() {
                let scope = scope?;
                let s = Arc::new(Envelope {
                    head: head(scope.raw, SPANS)?,
                    parent: Some(r.clone()),
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
                        span: chunk.slice_ref(f.payload),
                        scope: s.clone(),
                    };
                    each(id, held);
                }
            }
        }
    }
    Ok(())
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

/// Encodes `spans` as one export request: consecutive spans of one scope
/// share a `ScopeSpans`, consecutive scopes of one resource a `ResourceSpans`.
pub fn encode<'a>(spans: impl IntoIterator<Item = &'a HeldSpan>) -> Bytes {
    let mut out = BytesMut::new();
    let mut resource: Option<(Arc<Envelope>, BytesMut)> = None;
    let mut scope: Option<(Arc<Envelope>, BytesMut)> = None;
    let close_scope = |scope: &mut Option<(Arc<Envelope>, BytesMut)>, rs: &mut BytesMut| {
        if let Some((_, ss)) = scope.take() {
            put_len_field(rs, SCOPE_SPANS, ss.len());
            rs.extend_from_slice(&ss);
        }
    };
    for held in spans {
        let same_scope = scope
            .as_ref()
            .is_some_and(|(s, _)| Arc::ptr_eq(s, &held.scope));
        if !same_scope {
            let parent = held.scope.parent.as_ref();
            let same_resource =
                matches!((&resource, parent), (Some((r, _)), Some(p)) if Arc::ptr_eq(r, p));
            if let Some((_, rs)) = resource.as_mut() {
                close_scope(&mut scope, rs);
            }
            if !same_resource {
                if let Some((_, rs)) = resource.take() {
                    put_len_field(&mut out, RESOURCE_SPANS, rs.len());
                    out.extend_from_slice(&rs);
                }
                if let Some(p) = parent {
                    let mut rs = BytesMut::new();
                    rs.extend_from_slice(&p.head);
                    resource = Some((p.clone(), rs));
                }
            }
            let mut ss = BytesMut::new();
            ss.extend_from_slice(&held.scope.head);
            scope = Some((held.scope.clone(), ss));
        }
        if let Some((_, ss)) = scope.as_mut() {
            put_len_field(ss, SPANS, held.span.len());
            ss.extend_from_slice(&held.span);
        }
    }
    if let Some((_, mut rs)) = resource.take() {
        close_scope(&mut scope, &mut rs);
        put_len_field(&mut out, RESOURCE_SPANS, rs.len());
        out.extend_from_slice(&rs);
    }
    out.freeze()
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
    /// Encoded bytes of its spans.
    pub bytes: u64,
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

    /// Adds a span; true when it starts a new trace.
    pub fn add(&mut self, id: [u8; 16], span: HeldSpan, now: Instant) -> bool {
        let bytes = span.span.len() as u64;
        if let Some(t) = self.traces.get_mut(&id) {
            t.spans.push(span);
            t.bytes += bytes;
            return false;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.traces.insert(
            id,
            Trace {
                spans: vec![span],
                bytes,
                first: now,
                generation,
            },
        );
        self.order.push_back((now, id, generation));
        true
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
