//! Byte-accounted memory limiting (the `memory_limiter` processor's engine).
//! A [`MemoryGate`] counts the wire bytes of every batch it admitted until
//! the last copy of that batch (after fan-out, batching and splitting) is
//! dropped: each batch carries [`Ticket`]s that give their bytes back when
//! dropped. Above the soft limit (`limit - spike`) new data is refused with a
//! retryable error; below it, accepted again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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

    /// Takes `bytes` unless that would pass the soft limit.
    pub fn try_admit(self: &Arc<Self>, bytes: usize) -> Option<Arc<Ticket>> {
        let soft = self.soft_limit();
        let mut current = self.used.load(Ordering::Acquire);
        loop {
            if current.saturating_add(bytes) > soft {
                self.refusals.fetch_add(1, Ordering::Relaxed);
                self.refused_bytes.add(bytes as u64);
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
}
