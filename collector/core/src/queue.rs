//! Bounded channels. [`Inlet`] is a pipeline's entrance: receivers push into
//! it without waiting and get a refusal when it is full (bounded in batches
//! and bytes), when a memory limiter of the pipeline is over its limit, or
//! when an exporter queue that refuses on overflow is full.
//! [`BoundedQueue`] is an exporter's queue, bounded in batches, items or
//! bytes: the fan-out waits for room, the exporter's workers pop.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::memory::MemoryGate;
use crate::pdata::Batch;
use crate::telemetry::Gauge;

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

    /// Sends, waiting for room in batches (used between processors, where
    /// waiting is the backpressure).
    pub async fn send(&self, batch: Batch) -> Result<(), Refusal> {
        let bytes = batch.bytes();
        self.budget.in_flight.fetch_add(bytes, Ordering::AcqRel);
        self.tx.send(batch).await.map_err(|_| {
            self.budget.release(bytes);
            Refusal::Closed
        })
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
}

/// An exporter's queue, bounded by [`QueueLimits`].
#[derive(Debug)]
pub struct BoundedQueue {
    state: Mutex<QueueState>,
    changed: Notify,
    limits: QueueLimits,
    size_gauge: Gauge,
}

impl BoundedQueue {
    /// A queue with `limits`; its size (in the limits' unit) is published on
    /// `size_gauge`.
    pub fn new(limits: QueueLimits, size_gauge: Gauge) -> Arc<Self> {
        Arc::new(BoundedQueue {
            state: Mutex::new(QueueState::default()),
            changed: Notify::new(),
            limits: QueueLimits {
                size: limits.size.max(1),
                ..limits
            },
            size_gauge,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn size(&self, s: &QueueState) -> usize {
        match self.limits.unit {
            QueueUnit::Batches => s.batches.len(),
            QueueUnit::Items => s.items,
            QueueUnit::Bytes => s.bytes,
        }
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

    fn publish(&self, s: &QueueState) {
        self.size_gauge.set(self.size(s) as i64);
    }

    /// True when the queue is at or over its capacity.
    pub fn is_full(&self) -> bool {
        let s = self.lock();
        !s.batches.is_empty()
            && (self.size(&s) >= self.limits.size || s.bytes >= self.limits.max_bytes)
    }

    /// Adds without waiting; gives the batch back when full or closed.
    pub fn try_push(&self, batch: Batch) -> Result<(), (Batch, Refusal)> {
        let mut s = self.lock();
        if s.closed {
            return Err((batch, Refusal::Closed));
        }
        if !self.has_room(&s, &batch) {
            return Err((batch, Refusal::Full));
        }
        s.bytes += batch.bytes();
        s.items += batch.items();
        s.batches.push_back(batch);
        self.publish(&s);
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

    /// Takes the oldest batch, waiting for one; `None` once closed and empty.
    pub async fn pop(&self) -> Option<Batch> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if let Some(batch) = s.batches.pop_front() {
                    s.bytes -= batch.bytes();
                    s.items -= batch.items();
                    self.publish(&s);
                    drop(s);
                    self.changed.notify_waiters();
                    return Some(batch);
                }
                if s.closed {
                    return None;
                }
            }
            notified.await;
        }
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
        self.size_gauge.set(0);
        s.batches.drain(..).collect()
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

    #[tokio::test]
    async fn queue_bounds_waits_and_drains_after_close() {
        let gauge = Gauge::default();
        let limits = QueueLimits {
            size: 2,
            unit: QueueUnit::Batches,
            max_bytes: 1 << 20,
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
