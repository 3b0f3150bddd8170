//! Bounded channels. [`Inlet`] is a pipeline's entrance: receivers push into
//! it without waiting and get a refusal when it is full (bounded in batches
//! and bytes). [`BoundedQueue`] is an exporter's queue: the fan-out waits for
//! room, the exporter's driver pops.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::pdata::Batch;
use crate::telemetry::Gauge;

/// Why a batch was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No room now; the sender should retry later.
    #[error("pipeline is full")]
    Full,
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
        },
        InletRx { rx, budget },
    )
}

impl Inlet {
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
pub fn admit_all(inlets: &[Inlet], batch: Batch) -> Result<(), Refusal> {
    let bytes = batch.bytes();
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
    bytes: usize,
    closed: bool,
}

/// An exporter's queue, bounded in batches and bytes.
#[derive(Debug)]
pub struct BoundedQueue {
    state: Mutex<QueueState>,
    changed: Notify,
    max_batches: usize,
    max_bytes: usize,
    size_gauge: Gauge,
}

impl BoundedQueue {
    /// A queue of at most `max_batches` batches and `max_bytes` bytes; its
    /// length is published on `size_gauge`.
    pub fn new(max_batches: usize, max_bytes: usize, size_gauge: Gauge) -> Arc<Self> {
        Arc::new(BoundedQueue {
            state: Mutex::new(QueueState::default()),
            changed: Notify::new(),
            max_batches: max_batches.max(1),
            max_bytes,
            size_gauge,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_room(&self, s: &QueueState, bytes: usize) -> bool {
        s.batches.is_empty()
            || (s.batches.len() < self.max_batches
                && s.bytes.saturating_add(bytes) <= self.max_bytes)
    }

    /// Adds without waiting; gives the batch back when full or closed.
    pub fn try_push(&self, batch: Batch) -> Result<(), (Batch, Refusal)> {
        let mut s = self.lock();
        if s.closed {
            return Err((batch, Refusal::Closed));
        }
        if !self.has_room(&s, batch.bytes()) {
            return Err((batch, Refusal::Full));
        }
        s.bytes += batch.bytes();
        s.batches.push_back(batch);
        self.size_gauge.set(s.batches.len() as i64);
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
                    self.size_gauge.set(s.batches.len() as i64);
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
        self.size_gauge.set(0);
        s.batches.drain(..).collect()
    }

    /// Capacity in batches.
    pub fn capacity(&self) -> usize {
        self.max_batches
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

    #[tokio::test]
    async fn queue_bounds_waits_and_drains_after_close() {
        let gauge = Gauge::default();
        let q = BoundedQueue::new(2, 1 << 20, gauge.clone());
        q.try_push(batch(4)).unwrap();
        q.try_push(batch(4)).unwrap();
        assert_eq!(gauge.get(), 2);
        assert!(matches!(q.try_push(batch(4)), Err((_, Refusal::Full))));
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
