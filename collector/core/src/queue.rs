//! Bounded channels. [`Inlet`] is a pipeline's entrance: receivers push into
//! it without waiting and get a refusal when it is full (bounded in batches
//! and bytes), when a memory limiter of the pipeline is over its limit, or
//! when an exporter queue that refuses on overflow is full.
//! [`BoundedQueue`] is an exporter's queue, bounded in batches, items or
//! bytes: the fan-out waits for room, the exporter's workers pop. With
//! [`QueueBatching`] (`sending_queue.batch`) a pop merges queued batches
//! into one of at least `min_size` (or whatever is there once the oldest
//! waited `flush_timeout`) and at most `max_size`, splitting the batch at
//! the boundary with [`Batch::split`], as the `batch` processor does.
//! A persistent queue ([`BoundedQueue::persistent`], `sending_queue.storage`)
//! also writes each batch it takes to a write-ahead log ([`Durable`]), in
//! the order it queues them, and starts with what the log held.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};
use tokio::time::{Duration, Instant};

use crate::memory::MemoryGate;
use crate::pdata::Batch;
use crate::persist::Durable;
use crate::telemetry::Gauge;
use crate::wal::Recovered;

/// Why a batch was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No room now; the sender should retry later.
    #[error("pipeline is full")]
    Full,
    /// A memory limiter is over its limit; the sender should retry later.
    #[error("memory limit reached")]
    MemoryLimit,
    /// The pipeline is shutting down.
    #[error("pipeline is shutting down")]
    Closed,
}

#[derive(Debug)]
struct ByteBudget {
    in_flight: AtomicUsize,
    max: usize,
}

impl ByteBudget {
    /// Takes `n` bytes; a single batch bigger than the budget is let in when
    /// nothing else is in flight, so it can never get stuck.
    fn try_acquire(&self, n: usize) -> bool {
        let mut current = self.in_flight.load(Ordering::Relaxed);
        loop {
            if current > 0 && current.saturating_add(n) > self.max {
                return false;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    fn release(&self, n: usize) {
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The sending side of a pipeline stage.
#[derive(Debug, Clone)]
pub struct Inlet {
    tx: mpsc::Sender<Batch>,
    budget: Arc<ByteBudget>,
    gates: Vec<Arc<MemoryGate>>,
    pressure: Vec<Arc<BoundedQueue>>,
    waits: bool,
}

/// The receiving side of a pipeline stage.
#[derive(Debug)]
pub struct InletRx {
    rx: mpsc::Receiver<Batch>,
    budget: Arc<ByteBudget>,
}

/// A stage entrance holding at most `max_batches` batches and `max_bytes` bytes.
pub fn inlet(max_batches: usize, max_bytes: usize) -> (Inlet, InletRx) {
    let (tx, rx) = mpsc::channel(max_batches.max(1));
    let budget = Arc::new(ByteBudget {
        in_flight: AtomicUsize::new(0),
        max: max_bytes,
    });
    (
        Inlet {
            tx,
            budget: budget.clone(),
            gates: Vec::new(),
            pressure: Vec::new(),
            waits: false,
        },
        InletRx { rx, budget },
    )
}

impl Inlet {
    /// Admission also requires room under `gate`'s limit.
    pub fn with_gate(mut self, gate: Arc<MemoryGate>) -> Self {
        self.gates.push(gate);
        self
    }

    /// Admission also requires room in `queue` (an exporter queue that
    /// refuses rather than waits when full).
    pub fn with_pressure(mut self, queue: Arc<BoundedQueue>) -> Self {
        self.pressure.push(queue);
        self
    }

    /// Senders wait for the outcome of the export (an exporter of the
    /// pipeline has `sending_queue.wait_for_result: true`).
    pub fn waiting_for_results(mut self) -> Self {
        self.waits = true;
        self
    }

    /// Whether senders wait for the outcome of the export.
    pub fn waits(&self) -> bool {
        self.waits
    }

    /// Sends, waiting for room in batches (used between processors, where
    /// waiting is the backpressure).
    pub async fn send(&self, batch: Batch) -> Result<(), Refusal> {
        let bytes = batch.bytes();
        self.budget.in_flight.fetch_add(bytes, Ordering::AcqRel);
        self.tx.send(batch).await.map_err(|lost| {
            lost.0.fail(false, "pipeline is shutting down");
            self.budget.release(bytes);
            Refusal::Closed
        })
    }
}

impl Inlet {
    /// Sends a batch that crossed a connector into this pipeline entrance:
    /// it takes a ticket from each memory gate of the entrance it does not
    /// hold one of yet, waiting for room under the limit (the data was
    /// accepted upstream and cannot be refused any more), then waits for
    /// room in the entrance.
    pub async fn send_across(&self, mut batch: Batch) -> Result<(), Refusal> {
        for gate in &self.gates {
            if !batch.holds(gate) {
                batch.hold(gate.admit(batch.bytes()).await);
            }
        }
        self.send(batch).await
    }
}

/// Pushes `batch` into every inlet or into none: receivers use this so that a
/// refused request was not half-delivered.
pub fn admit_all(inlets: &[Inlet], mut batch: Batch) -> Result<(), Refusal> {
    let bytes = batch.bytes();
    if inlets.iter().flat_map(|i| &i.pressure).any(|q| q.is_full()) {
        return Err(Refusal::Full);
    }
    let mut gates: Vec<&Arc<MemoryGate>> = Vec::new();
    for gate in inlets.iter().flat_map(|i| &i.gates) {
        if !gates.iter().any(|g| Arc::ptr_eq(g, gate)) {
            gates.push(gate);
        }
    }
    for gate in gates {
        // Tickets taken so far go back when `batch` is dropped on refusal.
        batch.hold(gate.try_admit(bytes).ok_or(Refusal::MemoryLimit)?);
    }
    let mut permits = Vec::with_capacity(inlets.len());
    for inlet in inlets {
        match inlet.tx.try_reserve() {
            Ok(p) => permits.push(p),
            Err(mpsc::error::TrySendError::Full(())) => return Err(Refusal::Full),
            Err(mpsc::error::TrySendError::Closed(())) => return Err(Refusal::Closed),
        }
    }
    for (i, inlet) in inlets.iter().enumerate() {
        if !inlet.budget.try_acquire(bytes) {
            for taken in &inlets[..i] {
                taken.budget.release(bytes);
            }
            return Err(Refusal::Full);
        }
    }
    let mut batch = Some(batch);
    let last = permits.len().saturating_sub(1);
    for (i, permit) in permits.into_iter().enumerate() {
        let b = if i == last {
            batch.take()
        } else {
            batch.clone()
        };
        if let Some(b) = b {
            permit.send(b);
        }
    }
    Ok(())
}

impl InletRx {
    /// The next batch; `None` once every sender is gone and the channel is empty.
    pub async fn recv(&mut self) -> Option<Batch> {
        let batch = self.rx.recv().await?;
        self.budget.release(batch.bytes());
        Some(batch)
    }
}

#[derive(Debug, Default)]
struct QueueState {
    batches: VecDeque<Batch>,
    items: usize,
    bytes: usize,
    closed: bool,
    /// Since when the oldest data waits for a batch to fill (batching only).
    since: Option<Instant>,
    /// What this queue has added to its size gauge.
    published: i64,
}

impl QueueState {
    /// Queues `batch` last; the oldest data's wait starts with the first.
    fn add(&mut self, batch: Batch) {
        if self.batches.is_empty() {
            self.since = Some(Instant::now());
        }
        self.bytes += batch.bytes();
        self.items += batch.items();
        self.batches.push_back(batch);
    }

    /// What is queued, in `unit`.
    fn total(&self, unit: QueueUnit) -> usize {
        match unit {
            QueueUnit::Batches => self.batches.len(),
            QueueUnit::Items => self.items,
            QueueUnit::Bytes => self.bytes,
        }
    }
}

/// What a queue's size is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueUnit {
    /// Batches.
    Batches,
    /// Spans, data points or log records.
    Items,
    /// Encoded bytes.
    Bytes,
}

/// A queue's capacity: `size` in `unit`, and never more than `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Capacity in `unit`.
    pub size: usize,
    /// Unit of `size` (and of the size gauge).
    pub unit: QueueUnit,
    /// Byte cap whatever the unit.
    pub max_bytes: usize,
    /// Merge queued batches on pop.
    pub batch: Option<QueueBatching>,
}

/// Batching inside an exporter queue (`sending_queue.batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBatching {
    /// A batch smaller than `min_size` goes out once its oldest data waited this long.
    pub flush_timeout: Duration,
    /// Smallest batch sent before `flush_timeout`, in `unit`.
    pub min_size: usize,
    /// Largest batch, in `unit` (0: no limit); bigger data is split.
    pub max_size: usize,
    /// `Items` or `Bytes`.
    pub unit: QueueUnit,
}

fn measure(unit: QueueUnit, batch: &Batch) -> usize {
    match unit {
        QueueUnit::Batches => 1,
        QueueUnit::Items => batch.items(),
        QueueUnit::Bytes => batch.bytes(),
    }
}

/// Splits `batch` into a front of at most `room` in `unit` and the rest;
/// the front is never empty (a single item bigger than `room` goes alone).
fn split_front(
    batch: Batch,
    room: usize,
    unit: QueueUnit,
) -> Result<(Batch, Option<Batch>), crate::wire::WireError> {
    let size = measure(unit, &batch);
    let items = batch.items();
    if size <= room || items <= 1 {
        return Ok((batch, None));
    }
    let take = match unit {
        QueueUnit::Items => room,
        // Items in proportion to the bytes; a front still too big is split again.
        QueueUnit::Bytes => {
            usize::try_from(items as u128 * room as u128 / size as u128).unwrap_or(items)
        }
        QueueUnit::Batches => items,
    }
    .clamp(1, items - 1);
    let (signal, context) = (batch.signal(), batch.context().clone());
    let mut pieces = batch.split(take)?;
    let rest = if pieces.len() > 1 {
        pieces.split_off(1).into_iter().reduce(|mut a, b| {
            a.append(b);
            a
        })
    } else {
        None
    };
    // `split` gives at least one piece for a batch with items.
    let front = pieces
        .pop()
        .unwrap_or_else(|| Batch::empty(signal, context));
    let (front, more) = split_front(front, room, unit)?;
    let rest = match (more, rest) {
        (Some(mut m), Some(r)) => {
            m.append(r);
            Some(m)
        }
        (m, r) => m.or(r),
    };
    Ok((front, rest))
}

/// An exporter's queue, bounded by [`QueueLimits`].
#[derive(Debug)]
pub struct BoundedQueue {
    state: Mutex<QueueState>,
    changed: Notify,
    limits: QueueLimits,
    size_gauge: Gauge,
    /// The log of a persistent queue.
    durable: Option<Durable>,
}

impl BoundedQueue {
    /// A queue with `limits`; its size (in the limits' unit) is added to
    /// `size_gauge`, so queues sharing a gauge (an exporter's old and new
    /// queue while a configuration reload drains the old one) show their
    /// sum.
    pub fn new(limits: QueueLimits, size_gauge: Gauge) -> Arc<Self> {
        Arc::new(Self::with(limits, size_gauge, None))
    }

    fn with(limits: QueueLimits, size_gauge: Gauge, durable: Option<Durable>) -> Self {
        BoundedQueue {
            state: Mutex::new(QueueState::default()),
            changed: Notify::new(),
            limits: QueueLimits {
                size: limits.size.max(1),
                ..limits
            },
            size_gauge,
            durable,
        }
    }

    /// A queue as [`BoundedQueue::new`] that logs every batch it takes in
    /// `durable` and starts with what its log held (`recovered`, whatever
    /// the limits: it was accepted before the restart) for `exporter`.
    pub fn persistent(
        limits: QueueLimits,
        size_gauge: Gauge,
        durable: Durable,
        exporter: &str,
        recovered: Recovered,
    ) -> Arc<Self> {
        let batches = durable.recover(exporter, recovered);
        let queue = Self::with(limits, size_gauge, Some(durable));
        {
            let mut s = queue.lock();
            batches.into_iter().for_each(|b| s.add(b));
            queue.publish(&mut s);
        }
        Arc::new(queue)
    }

    /// The log of a persistent queue.
    pub fn durable(&self) -> Option<&Durable> {
        self.durable.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn size(&self, s: &QueueState) -> usize {
        s.total(self.limits.unit)
    }

    fn has_room(&self, s: &QueueState, batch: &Batch) -> bool {
        let adds = match self.limits.unit {
            QueueUnit::Batches => 1,
            QueueUnit::Items => batch.items(),
            QueueUnit::Bytes => batch.bytes(),
        };
        // An empty queue takes any one batch, so nothing can get stuck.
        s.batches.is_empty()
            || (self.size(s).saturating_add(adds) <= self.limits.size
                && s.bytes.saturating_add(batch.bytes()) <= self.limits.max_bytes)
    }

    fn publish(&self, s: &mut QueueState) {
        let size = self.size(s) as i64;
        self.size_gauge.add(size - s.published);
        s.published = size;
    }

    /// True when the queue is at or over its capacity.
    pub fn is_full(&self) -> bool {
        let s = self.lock();
        !s.batches.is_empty()
            && (self.size(&s) >= self.limits.size || s.bytes >= self.limits.max_bytes)
    }

    /// Adds without waiting (a persistent queue logs it, in queue
    /// order); gives the batch back when full or closed.
    pub fn try_push(&self, mut batch: Batch) -> Result<(), (Batch, Refusal)> {
        let mut s = self.lock();
        if s.closed {
            return Err((batch, Refusal::Closed));
        }
        if !self.has_room(&s, &batch) {
            return Err((batch, Refusal::Full));
        }
        if let Some(durable) = &self.durable {
            durable.log(&mut batch);
        }
        s.add(batch);
        self.publish(&mut s);
        drop(s);
        self.changed.notify_waiters();
        Ok(())
    }

    /// Adds, waiting for room.
    pub async fn push(&self, mut batch: Batch) -> Result<(), (Batch, Refusal)> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_push(batch) {
                Ok(()) => return Ok(()),
                Err((b, Refusal::Full)) => batch = b,
                Err(closed) => return Err(closed),
            }
            notified.await;
        }
    }

    /// Takes the oldest batch (with batching: a batch merged from the
    /// oldest ones once it is due), waiting for one; `None` once closed
    /// and empty.
    pub async fn pop(&self) -> Option<Batch> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let due = {
                let mut s = self.lock();
                if s.batches.is_empty() {
                    if s.closed {
                        return None;
                    }
                    None
                } else {
                    match self.limits.batch {
                        None => {
                            let batch = s.batches.pop_front();
                            if let Some(b) = &batch {
                                s.bytes -= b.bytes();
                                s.items -= b.items();
                            }
                            return self.taken(s, batch);
                        }
                        Some(b) => {
                            let due = s.since.map(|t| t + b.flush_timeout);
                            let full = s.total(b.unit) >= b.min_size;
                            if s.closed || full || due.is_none_or(|d| d <= Instant::now()) {
                                let batch = Self::take_batch(&mut s, b);
                                return self.taken(s, batch);
                            }
                            due
                        }
                    }
                }
            };
            match due {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Publishes the size after `batch` left the queue and hands it out.
    fn taken(
        &self,
        mut s: std::sync::MutexGuard<'_, QueueState>,
        batch: Option<Batch>,
    ) -> Option<Batch> {
        self.publish(&mut s);
        drop(s);
        self.changed.notify_waiters();
        batch
    }

    /// Merges the oldest batches into one of at most `b.max_size`,
    /// splitting the one at the boundary; what is left waits anew.
    fn take_batch(s: &mut QueueState, b: QueueBatching) -> Option<Batch> {
        let mut out: Option<Batch> = None;
        let mut size = 0usize;
        while let Some(front) = s.batches.pop_front() {
            s.bytes -= front.bytes();
            s.items -= front.items();
            let room = b.max_size.saturating_sub(size);
            let (piece, rest) = if b.max_size == 0 || measure(b.unit, &front) <= room {
                (front, None)
            } else {
                let items = front.items();
                match split_front(front.clone(), room, b.unit) {
                    Ok(split) => split,
                    Err(e) => {
                        // Receivers validated it: send it whole rather than drop it.
                        tracing::error!(items, error = %e, "cannot split a queued batch; sent whole");
                        (front, None)
                    }
                }
            };
            let n = measure(b.unit, &piece);
            if b.max_size != 0 && out.is_some() && n > room {
                // Not even one item fits in what is left: it opens the next batch.
                let mut back = piece;
                if let Some(rest) = rest {
                    back.append(rest);
                }
                s.bytes += back.bytes();
                s.items += back.items();
                s.batches.push_front(back);
                break;
            }
            if let Some(rest) = rest {
                s.bytes += rest.bytes();
                s.items += rest.items();
                s.batches.push_front(rest);
            }
            size += n;
            match out.as_mut() {
                Some(o) => o.append(piece),
                None => out = Some(piece),
            }
            if b.max_size != 0 && size >= b.max_size {
                break;
            }
        }
        s.since = (!s.batches.is_empty()).then(Instant::now);
        out
    }

    /// Stops new pushes; what is queued can still be popped.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_waiters();
    }

    /// Takes everything still queued (used when a deadline passes).
    pub fn drain(&self) -> Vec<Batch> {
        let mut s = self.lock();
        s.bytes = 0;
        s.items = 0;
        s.since = None;
        let left = s.batches.drain(..).collect();
        self.publish(&mut s);
        left
    }

    /// Capacity in the limits' unit.
    pub fn capacity(&self) -> usize {
        self.limits.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Signal;
    use crate::pdata::RequestContext;
    use bytes::Bytes;

    fn batch(n: usize) -> Batch {
        // n bytes of an unknown field (number 15, varint 0) per request: 0 items.
        let raw: Vec<u8> = std::iter::repeat_n([0x78u8, 0x00], n / 2)
            .flatten()
            .collect();
        Batch::from_wire(
            Signal::Traces,
            Bytes::from(raw),
            Arc::new(RequestContext::default()),
        )
        .unwrap()
    }

    /// A traces request of `n` spans named `first`, `first + 1`, ...
    fn spans(first: usize, n: usize) -> Batch {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        use prost::Message;
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (first..first + n)
                        .map(|i| Span {
                            name: format!("s{i}"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Batch::from_wire(
            Signal::Traces,
            Bytes::from(req.encode_to_vec()),
            Arc::new(RequestContext::default()),
        )
        .unwrap()
    }

    fn names(b: &Batch) -> Vec<String> {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;
        ExportTraceServiceRequest::decode(b.to_wire())
            .unwrap()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect()
    }

    fn batching(unit: QueueUnit, min_size: usize, max_size: usize) -> Arc<BoundedQueue> {
        let limits = QueueLimits {
            size: 1000,
            unit: QueueUnit::Batches,
            max_bytes: 1 << 20,
            batch: Some(QueueBatching {
                flush_timeout: Duration::from_secs(1),
                min_size,
                max_size,
                unit,
            }),
        };
        BoundedQueue::new(limits, Gauge::default())
    }

    #[tokio::test(start_paused = true)]
    async fn batching_merges_until_min_size_and_flushes_the_rest_on_timeout() {
        let q = batching(QueueUnit::Items, 10, 0);
        let start = Instant::now();
        for i in 0..3 {
            q.try_push(spans(i * 4, 4)).unwrap();
        }
        let merged = q.pop().await.unwrap();
        assert_eq!(merged.items(), 12, "three requests in one batch");
        assert_eq!(start.elapsed(), Duration::ZERO, "min_size reached: no wait");
        assert_eq!(
            names(&merged),
            (0..12).map(|i| format!("s{i}")).collect::<Vec<_>>()
        );
        q.try_push(spans(12, 3)).unwrap();
        let rest = q.pop().await.unwrap();
        assert_eq!(rest.items(), 3);
        assert_eq!(start.elapsed(), Duration::from_secs(1), "flush_timeout");
        q.try_push(spans(15, 2)).unwrap();
        q.close();
        assert_eq!(q.pop().await.unwrap().items(), 2, "closing flushes at once");
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(q.pop().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn batching_splits_at_max_size_keeping_order() {
        let q = batching(QueueUnit::Items, 10, 10);
        q.try_push(spans(0, 7)).unwrap();
        q.try_push(spans(7, 18)).unwrap();
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        for _ in 0..3 {
            let b = q.pop().await.unwrap();
            sizes.push(b.items());
            seen.extend(names(&b));
        }
        assert_eq!(sizes, [10, 10, 5]);
        assert_eq!(seen, (0..25).map(|i| format!("s{i}")).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn batching_by_bytes_keeps_each_batch_under_max_size() {
        let one = spans(0, 1).bytes();
        let q = batching(QueueUnit::Bytes, 1, one * 10);
        q.try_push(spans(0, 40)).unwrap();
        let mut items = 0;
        while items < 40 {
            let b = q.pop().await.unwrap();
            assert!(b.bytes() <= one * 10, "{} > {}", b.bytes(), one * 10);
            items += b.items();
        }
        assert_eq!(items, 40);
    }

    #[tokio::test]
    async fn an_ack_is_settled_only_when_every_piece_is_done() {
        let q = batching(QueueUnit::Items, 1, 5);
        let (ack, pending) = crate::ack::Ack::new();
        let mut b = spans(0, 12);
        b.wait_on(ack);
        q.try_push(b).unwrap();
        let mut pieces = Vec::new();
        for _ in 0..3 {
            pieces.push(q.pop().await.unwrap());
        }
        pieces[1].fail(true, "refused");
        let last = pieces.pop().unwrap();
        drop(pieces);
        let outcome = tokio::spawn(pending.outcome());
        tokio::task::yield_now().await;
        assert!(!outcome.is_finished(), "one piece is still out");
        drop(last);
        assert!(outcome.await.unwrap().unwrap_err().permanent);
    }

    #[tokio::test]
    async fn admit_all_is_all_or_nothing() {
        let (a, mut arx) = inlet(1, 1 << 20);
        let (b, _brx) = inlet(2, 1 << 20);
        admit_all(&[a.clone(), b.clone()], batch(10)).unwrap();
        // `a` is full now: nothing may reach `b`.
        assert_eq!(
            admit_all(&[a.clone(), b.clone()], batch(10)),
            Err(Refusal::Full)
        );
        assert_eq!(b.tx.capacity(), 1);
        assert!(arx.recv().await.is_some());
        admit_all(&[a, b], batch(10)).unwrap();
    }

    #[tokio::test]
    async fn byte_budget_refuses_and_recovers() {
        let (a, mut rx) = inlet(100, 100);
        admit_all(std::slice::from_ref(&a), batch(80)).unwrap();
        assert_eq!(
            admit_all(std::slice::from_ref(&a), batch(40)),
            Err(Refusal::Full)
        );
        rx.recv().await.unwrap();
        // Empty again: even an oversized batch gets in alone.
        admit_all(std::slice::from_ref(&a), batch(200)).unwrap();
        drop(a);
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_none());
        assert_eq!(rx.budget.in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn byte_sized_queue_and_pressure_refuse_admission() {
        let limits = QueueLimits {
            size: 10,
            unit: QueueUnit::Bytes,
            max_bytes: 1 << 20,
            batch: None,
        };
        let q = BoundedQueue::new(limits, Gauge::default());
        q.try_push(batch(8)).unwrap();
        assert!(matches!(q.try_push(batch(4)), Err((_, Refusal::Full))));
        q.try_push(batch(2)).unwrap();
        assert!(q.is_full());
        let (a, _rx) = inlet(10, 1 << 20);
        let a = a.with_pressure(q.clone());
        assert_eq!(admit_all(&[a], batch(2)), Err(Refusal::Full));
    }

    #[tokio::test]
    async fn memory_gates_refuse_and_release_with_the_batch() {
        let t = crate::telemetry::Telemetry::new();
        let gate = MemoryGate::new("memory_limiter", 100, 20, &t);
        let (a, mut rx) = inlet(10, 1 << 20);
        let (b, mut rx_b) = inlet(10, 1 << 20);
        let a = a.with_gate(gate.clone());
        let b = b.with_gate(gate.clone());
        // One gate shared by two pipelines counts a fanned-out batch once.
        admit_all(&[a.clone(), b.clone()], batch(60)).unwrap();
        assert_eq!(gate.used(), 60);
        assert_eq!(
            admit_all(&[a.clone(), b.clone()], batch(30)),
            Err(Refusal::MemoryLimit)
        );
        assert_eq!(gate.used(), 60);
        let first = rx.recv().await.unwrap();
        drop(first);
        assert_eq!(gate.used(), 60, "the other pipeline's copy still holds it");
        drop(rx_b.recv().await.unwrap());
        assert_eq!(gate.used(), 0);
        admit_all(&[a, b], batch(30)).unwrap();
    }

    /// An exporter's old and new queue during a reload share one size
    /// gauge: it shows their sum, and each takes back only its own.
    #[tokio::test]
    async fn queues_sharing_a_gauge_show_their_sum() {
        let gauge = Gauge::default();
        let limits = QueueLimits {
            size: 10,
            unit: QueueUnit::Batches,
            max_bytes: 1 << 20,
            batch: None,
        };
        let old = BoundedQueue::new(limits, gauge.clone());
        let new = BoundedQueue::new(limits, gauge.clone());
        old.try_push(batch(4)).unwrap();
        old.try_push(batch(4)).unwrap();
        new.try_push(batch(4)).unwrap();
        assert_eq!(gauge.get(), 3);
        assert!(old.pop().await.is_some());
        assert_eq!(gauge.get(), 2);
        assert_eq!(old.drain().len(), 1);
        assert_eq!(gauge.get(), 1, "the new queue's batch");
    }

    /// A persistent queue settles its senders' acks once a batch is
    /// logged; what was exported leaves the log, and after a crash (the
    /// log frozen, as at the shutdown deadline) the next queue on the
    /// directory starts with the rest, in order.
    #[tokio::test]
    async fn a_persistent_queue_starts_again_with_what_was_not_exported() {
        use crate::persist::{Durable, StorageMetrics};
        use crate::wal::{Wal, WalOptions};
        let dir = tempfile::tempdir().unwrap();
        let t = crate::telemetry::Telemetry::new();
        let limits = QueueLimits {
            size: 100,
            unit: QueueUnit::Batches,
            max_bytes: 1 << 20,
            batch: None,
        };
        let open = |t: &Arc<crate::telemetry::Telemetry>| {
            let (wal, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
            let durable = Durable::new(wal.clone(), false, StorageMetrics::new(t, "otlp"));
            let q = BoundedQueue::persistent(limits, Gauge::default(), durable, "otlp", recovered);
            (wal, q)
        };
        let (wal, q) = open(&t);
        for i in 0..3 {
            let (ack, pending) = crate::ack::Ack::new();
            let mut b = spans(i * 2, 2);
            b.wait_on(ack);
            q.try_push(b).unwrap();
            pending.outcome().await.unwrap();
        }
        drop(q.pop().await.unwrap());
        let in_flight = q.pop().await.unwrap();
        wal.freeze();
        drop((in_flight, q, wal));

        let (wal, q) = open(&t);
        let mut names_back = Vec::new();
        for _ in 0..2 {
            names_back.extend(names(&q.pop().await.unwrap()));
        }
        assert_eq!(names_back, ["s2", "s3", "s4", "s5"]);
        q.close();
        assert!(q.pop().await.is_none(), "the exported batch is not back");
        drop((q, wal));
        let (_wal, q) = open(&t);
        q.close();
        assert!(q.pop().await.is_none(), "exported after the restart: gone");
    }

    #[tokio::test]
    async fn queue_bounds_waits_and_drains_after_close() {
        let gauge = Gauge::default();
        let limits = QueueLimits {
            size: 2,
            unit: QueueUnit::Batches,
            max_bytes: 1 << 20,
            batch: None,
        };
        let q = BoundedQueue::new(limits, gauge.clone());
        q.try_push(batch(4)).unwrap();
        q.try_push(batch(4)).unwrap();
        assert_eq!(gauge.get(), 2);
        assert!(matches!(q.try_push(batch(4)), Err((_, Refusal::Full))));
        assert!(q.is_full());
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.push(batch(4)).await.is_ok() });
        tokio::task::yield_now().await;
        assert!(q.pop().await.is_some());
        assert!(waiter.await.unwrap());
        q.close();
        assert!(matches!(q.try_push(batch(4)), Err((_, Refusal::Closed))));
        assert!(q.pop().await.is_some());
        assert!(q.pop().await.is_some());
        assert!(q.pop().await.is_none());
        assert_eq!(gauge.get(), 0);
    }
}
