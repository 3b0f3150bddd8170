//! Byte-accounted memory limiting (the `memory_limiter` processor's engine).
//! A [`MemoryGate`] counts the wire bytes of every batch it admitted until
//! the last copy of that batch (after fan-out, batching and splitting) is
//! dropped: each batch carries [`Ticket`]s that give their bytes back when
//! dropped. Above the soft limit (`limit - spike`) new data is refused with a
//! retryable error; below it, accepted again. Data that is already inside
//! Tern and crosses a connector into a guarded pipeline cannot be refused
//! to its sender: it waits for room instead ([`MemoryGate::admit`]), which
//! slows the pipeline feeding the connector.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::telemetry::{Counter, Gauge, Telemetry};

/// Limits and usage of one `memory_limiter`.
#[derive(Debug)]
pub struct MemoryGate {
    id: String,
    limit: AtomicUsize,
    spike: AtomicUsize,
    used: AtomicUsize,
    refusals: AtomicU64,
    used_gauge: Gauge,
    limit_gauge: Gauge,
    refused_bytes: Counter,
    /// Tasks waiting in [`MemoryGate::admit`]; tickets wake them only
    /// while there are some.
    waiting: AtomicUsize,
    freed: Notify,
}

/// Bytes held on behalf of a batch; given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<MemoryGate>,
    bytes: usize,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let now = self.gate.used.fetch_sub(self.bytes, Ordering::AcqRel) - self.bytes;
        self.gate.used_gauge.set(now as i64);
        if self.gate.waiting.load(Ordering::Acquire) > 0 {
            self.gate.freed.notify_waiters();
        }
    }
}

impl Ticket {
    /// Whether this ticket was taken from `gate`.
    pub fn is_from(&self, gate: &Arc<MemoryGate>) -> bool {
        Arc::ptr_eq(&self.gate, gate)
    }
}

impl MemoryGate {
    /// A gate refusing above `limit - spike` bytes.
    pub fn new(id: &str, limit: usize, spike: usize, telemetry: &Telemetry) -> Arc<Self> {
        let labels = [("processor", id)];
        let gate = MemoryGate {
            id: id.to_string(),
            limit: AtomicUsize::new(limit),
            spike: AtomicUsize::new(spike),
            used: AtomicUsize::new(0),
            refusals: AtomicU64::new(0),
            used_gauge: telemetry.gauge(
                "tern_memory_limiter_used_bytes",
                "Bytes of telemetry held by the pipelines this limiter guards.",
                &labels,
            ),
            limit_gauge: telemetry.gauge(
                "tern_memory_limiter_soft_limit_bytes",
                "Bytes above which new data is refused.",
                &labels,
            ),
            refused_bytes: telemetry.counter(
                "tern_memory_limiter_refused_bytes_total",
                "Bytes of requests refused because the limit was reached.",
                &labels,
            ),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        };
        gate.limit_gauge.set(limit.saturating_sub(spike) as i64);
        Arc::new(gate)
    }

    /// The processor id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Changes the limits (a percentage-based limit re-read from the cgroup).
    pub fn set_limits(&self, limit: usize, spike: usize) {
        self.limit.store(limit, Ordering::Relaxed);
        self.spike.store(spike, Ordering::Relaxed);
        self.limit_gauge.set(limit.saturating_sub(spike) as i64);
        self.freed.notify_waiters();
    }

    /// Bytes above which data is refused.
    pub fn soft_limit(&self) -> usize {
        self.limit
            .load(Ordering::Relaxed)
            .saturating_sub(self.spike.load(Ordering::Relaxed))
    }

    /// Bytes currently held.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Refusals so far (for the periodic log line).
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// Takes `bytes` unless that would pass the soft limit; a refusal is
    /// counted.
    pub fn try_admit(self: &Arc<Self>, bytes: usize) -> Option<Arc<Ticket>> {
        let ticket = self.take(bytes, false);
        if ticket.is_none() {
            self.refusals.fetch_add(1, Ordering::Relaxed);
            self.refused_bytes.add(bytes as u64);
        }
        ticket
    }

    /// Takes `bytes`, waiting until they fit under the soft limit (for data
    /// already accepted upstream, which cannot be refused). A batch larger
    /// than the whole limit passes once nothing else is held, rather than
    /// waiting forever.
    pub async fn admit(self: &Arc<Self>, bytes: usize) -> Arc<Ticket> {
        if let Some(ticket) = self.take(bytes, true) {
            return ticket;
        }
        let _waiting = Waiting::new(&self.waiting);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the retry, so a ticket dropped in between
            // still wakes this task.
            freed.as_mut().enable();
            if let Some(ticket) = self.take(bytes, true) {
                return ticket;
            }
            freed.await;
        }
    }

    /// Takes `bytes` if they fit under the soft limit (or, when
    /// `alone_fits`, if nothing else is held).
    fn take(self: &Arc<Self>, bytes: usize, alone_fits: bool) -> Option<Arc<Ticket>> {
        let soft = self.soft_limit();
        let mut current = self.used.load(Ordering::Acquire);
        loop {
            if current.saturating_add(bytes) > soft && !(alone_fits && current == 0) {
                return None;
            }
            match self.used.compare_exchange_weak(
                current,
                current + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.used_gauge.set((current + bytes) as i64);
                    return Some(Arc::new(Ticket {
                        gate: self.clone(),
                        bytes,
                    }));
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// Counts a task in [`MemoryGate::admit`] while it waits (also when its
/// future is dropped mid-wait).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The container's memory limit from cgroup v2 (`memory.max`) or v1
/// (`memory.limit_in_bytes`), if one is set.
pub fn cgroup_memory_limit() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    if let Some(v) = read("/sys/fs/cgroup/memory.max") {
        return v.trim().parse().ok();
    }
    let v: u64 = read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?
        .trim()
        .parse()
        .ok()?;
    // v1 reports a huge number when unlimited.
    (v < (1 << 62)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_above_the_soft_limit_and_recovers_when_tickets_drop() {
        let t = Telemetry::new();
        let gate = MemoryGate::new("memory_limiter", 1000, 200, &t);
        let a = gate.try_admit(500).unwrap();
        let b = gate.try_admit(300).unwrap();
        assert_eq!(gate.used(), 800);
        assert!(gate.try_admit(1).is_none());
        let a2 = a.clone();
        drop(a);
        assert_eq!(gate.used(), 800, "a copy still holds the bytes");
        drop(a2);
        assert_eq!(gate.used(), 300);
        assert!(gate.try_admit(400).is_some());
        drop(b);
        assert_eq!(gate.refusals(), 1);
        assert!(
            t.render().contains(
                "tern_memory_limiter_refused_bytes_total{processor=\"memory_limiter\"} 1"
            )
        );
    }

    /// `admit` waits for room instead of refusing, wakes when a ticket is
    /// dropped, and lets a batch above the whole limit pass alone.
    #[tokio::test]
    async fn admit_waits_for_room_and_is_not_a_refusal() {
        let t = Telemetry::new();
        let gate = MemoryGate::new("memory_limiter", 1000, 200, &t);
        let held = gate.try_admit(700).unwrap();
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.admit(300).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no room for 300 more under 800");
        drop(held);
        let ticket = waiting.await.unwrap();
        assert_eq!(gate.used(), 300);
        assert_eq!(gate.refusals(), 0);
        drop(ticket);
        let huge = gate.admit(5000).await;
        assert_eq!(gate.used(), 5000, "alone, a batch above the limit passes");
        assert!(huge.is_from(&gate));
    }
}
