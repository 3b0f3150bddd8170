//! `tail_sampling`: holds every span of a trace for `decision_wait` after
//! its first span, then lets the policies decide the whole trace, with the
//! OpenTelemetry Collector's keys, policies and combination rules
//! (`policy.rs`). Held spans stay wire bytes (`store.rs`): slices of the
//! received requests with their resource and scope. Spans of a trace already
//! decided follow the remembered decision. Beyond `num_traces`, Tern bounds
//! the bytes held (`max_held_bytes`): past it the oldest traces are decided
//! early, logged and counted with reason `max_held_bytes`.
//!
//! The sender is answered when its spans are held (as the Collector does);
//! memory-limiter tickets stay with the held requests until released.

pub mod policy;
pub mod store;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;

use tern_config::{Component, Signal, TailSamplingConfig};
use tern_core::build::{BuildError, Built, Context};
use tern_core::component::{BoxFuture, Output, Processor};
use tern_core::pdata::Batch;
use tern_core::queue::InletRx;
use tern_core::telemetry::{Counter, Gauge, Histogram, LogLimiter, ProcessorMetrics, Telemetry};
use tern_core::view::{FromWire, Resource, Span};
use tern_core::wire;
use tokio::time::Instant;

use policy::{Policy, TraceData};
use store::{Decided, HeldSpan, Origin, Store, Trace};

/// Builds a `tail_sampling` processor: one task per pipeline listing it.
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let (config, id, telemetry) = (
        ctx.settings::<TailSamplingConfig>(c)?.clone(),
        ctx.id.clone(),
        ctx.telemetry.clone(),
    );
    Ok(Built::stage(move |_| {
        Box::new(TailSampling::new(&id, &config, &telemetry))
    }))
}

const PREFIX_HELP: &str = "Traces sampled (sampled=\"true\") or not by each policy.";

/// The processor's own metrics, named as the Collector's.
#[derive(Debug)]
struct Metrics {
    /// Per policy: [not sampled, sampled].
    per_policy: Vec<[Counter; 2]>,
    global: [Counter; 2],
    decision_latency: Histogram,
    dropped_too_early: Counter,
    late_span_age: Histogram,
    new_trace: Counter,
    on_memory: Gauge,
    early_release: [Counter; 2],
    evaluation_error: Counter,
    early_decisions: Counter,
    held_bytes: Gauge,
}

/// See the module docs.
#[derive(Debug)]
pub struct TailSampling {
    id: String,
    decision_wait: Duration,
    num_traces: usize,
    max_held_bytes: usize,
    drop_pending_on_shutdown: bool,
    policies: Vec<Policy>,
    /// Whether a policy reads a trace's size (which costs a walk of it).
    reads_size: bool,
    /// Whether a policy reads attributes (which costs a full read of each
    /// span and of its resource).
    reads_attributes: bool,
    store: Store,
    sampled: Decided,
    not_sampled: Decided,
    /// Bytes of the requests still referenced by held spans.
    held: Arc<AtomicUsize>,
    /// When the processor started, and the Unix time then: `composite`
    /// budgets are per Unix second, as the Collector's.
    start: (Instant, Duration),
    processor: ProcessorMetrics,
    metrics: Metrics,
    logs: LogLimiter,
}

impl TailSampling {
    /// Builds processor `id` (traces only; the config was validated).
    pub fn new(id: &str, config: &TailSamplingConfig, telemetry: &Arc<Telemetry>) -> Self {
        let start = (
            Instant::now(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let policies = policy::build(config);
        let t = telemetry;
        let p = [("processor", id)];
        let two = |name: &'static str, help: &'static str, extra: &[(&str, &str)]| {
            ["false", "true"].map(|s| {
                let mut labels = vec![("processor", id), ("sampled", s)];
                labels.extend_from_slice(extra);
                t.counter(name, help, &labels)
            })
        };
        let metrics = Metrics {
            per_policy: policies
                .iter()
                .map(|pol| {
                    two(
                        "otelcol_processor_tail_sampling_count_traces_sampled_total",
                        PREFIX_HELP,
                        &[("policy", pol.name.as_str())],
                    )
                })
                .collect(),
            global: two(
                "otelcol_processor_tail_sampling_global_count_traces_sampled_total",
                "Traces sampled (sampled=\"true\") or not by the processor as a whole.",
                &[],
            ),
            decision_latency: t.histogram(
                "otelcol_processor_tail_sampling_sampling_decision_latency_seconds",
                "Time to decide the traces due at one tick.",
                &p,
            ),
            dropped_too_early: t.counter(
                "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total",
                "Traces dropped undecided because num_traces newer traces arrived.",
                &p,
            ),
            late_span_age: t.histogram(
                "otelcol_processor_tail_sampling_sampling_late_span_age_seconds",
                "Time from a trace's decision to a late span of it.",
                &p,
            ),
            new_trace: t.counter(
                "otelcol_processor_tail_sampling_new_trace_id_received_total",
                "Traces seen for the first time.",
                &p,
            ),
            on_memory: t.gauge(
                "otelcol_processor_tail_sampling_sampling_traces_on_memory",
                "Traces held, waiting for their decision.",
                &p,
            ),
            early_release: two(
                "otelcol_processor_tail_sampling_early_releases_from_cache_decision_total",
                "Spans released or dropped at once because their trace's decision was remembered.",
                &[],
            ),
            evaluation_error: t.counter(
                "otelcol_processor_tail_sampling_sampling_policy_evaluation_error_total",
                "Policy evaluations that failed (the trace is not sampled by that policy).",
                &p,
            ),
            early_decisions: t.counter(
                "tern_processor_tail_sampling_early_decisions_total",
                "Traces decided before decision_wait, by reason.",
                &[("processor", id), ("reason", "max_held_bytes")],
            ),
            held_bytes: t.gauge(
                "tern_processor_tail_sampling_held_bytes",
                "Encoded bytes of the requests held spans keep alive.",
                &p,
            ),
        };
        let capacity = usize::try_from(config.expected_new_traces_per_sec)
            .unwrap_or(0)
            .saturating_mul(config.decision_wait.0.as_secs().max(1) as usize)
            .min(config.num_traces as usize);
        TailSampling {
            id: id.to_owned(),
            decision_wait: config.decision_wait.0,
            num_traces: usize::try_from(config.num_traces).unwrap_or(usize::MAX),
            max_held_bytes: usize::try_from(config.max_held_bytes).unwrap_or(usize::MAX),
            drop_pending_on_shutdown: config.drop_pending_traces_on_shutdown,
            reads_size: policies.iter().any(Policy::reads_size),
            reads_attributes: policies.iter().any(Policy::reads_attributes),
            policies,
            store: Store::with_capacity(capacity),
            sampled: Decided::new(config.decision_cache.sampled_cache_size),
            not_sampled: Decided::new(config.decision_cache.non_sampled_cache_size),
            held: Arc::default(),
            start,
            processor: ProcessorMetrics::new(telemetry, id, Signal::Traces),
            metrics,
            logs: LogLimiter::default(),
        }
    }

    /// Bytes of received requests still held.
    pub fn held_bytes(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes in one batch at `now`; returns the requests released at once
    /// (late spans of traces remembered as sampled, traces decided early),
    /// encoded so that what they held is let go.
    pub fn ingest(&mut self, mut batch: Batch, now: Instant) -> Vec<Bytes> {
        // The sender is answered now: its spans are held here.
        drop(batch.take_acks());
        let chunks = batch.chunks().to_vec();
        let origin = Origin::new(batch, &self.held);
        let mut out = Vec::new();
        let mut late = Vec::new();
        let mut intake = Intake {
            store: &mut self.store,
            sampled: &self.sampled,
            not_sampled: &self.not_sampled,
            metrics: &self.metrics,
            logs: &mut self.logs,
            processor: &self.id,
            num_traces: self.num_traces,
            now,
            run_id: [0; 16],
            run: Vec::new(),
            late: &mut late,
        };
        let read = store::spans(&origin, &chunks, |id, held| intake.span(id, held));
        intake.flush();
        drop(origin);
        if let Err(e) = read {
            // Receivers validated every request: this is a bug, not bad input.
            tracing::error!(processor = %self.id, error = %e, reason = "unreadable request", "dropped the spans after an unreadable part of a request");
            return out;
        }
        if !late.is_empty() {
            out.push(store::encode(&late));
        }
        while self.held_bytes() > self.max_held_bytes && self.max_held_bytes > 0 {
            let Some((id, trace)) = self.store.pop_oldest() else {
                break;
            };
            self.metrics.early_decisions.add(1);
            if let Some(held) = self.logs.allow() {
                tracing::warn!(processor = %self.id, trace_id = %hex(&id), held_back = held, reason = "max_held_bytes", "decided a trace before decision_wait");
            }
            if self.decide(id, &trace, now) {
                out.push(store::encode(&trace.spans));
            }
        }
        self.metrics.on_memory.set(self.store.len() as i64);
        self.metrics.held_bytes.set(self.held_bytes() as i64);
        out
    }

    /// Decides every trace whose wait ended by `now`; returns the kept
    /// traces as one encoded request (empty when none).
    pub fn tick(&mut self, now: Instant) -> Vec<Bytes> {
        let began = std::time::Instant::now();
        let mut out = Vec::new();
        while let Some(first) = self.store.oldest() {
            if first + self.decision_wait > now {
                break;
            }
            let Some((id, trace)) = self.store.pop_oldest() else {
                break;
            };
            if self.decide(id, &trace, now) {
                out.extend(trace.spans);
            }
        }
        // Written out first, so that the requests they held are let go.
        let requests = encoded(&out);
        drop(out);
        self.metrics.decision_latency.observe(began.elapsed());
        self.metrics.on_memory.set(self.store.len() as i64);
        self.metrics.held_bytes.set(self.held_bytes() as i64);
        requests
    }

    /// When the next trace is due.
    pub fn next_due(&mut self) -> Option<Instant> {
        self.store.oldest().map(|t| t + self.decision_wait)
    }

    /// Runs the policies over one trace, counts and remembers the outcome.
    fn decide(&mut self, id: [u8; 16], trace: &Trace, now: Instant) -> bool {
        let mut data = TraceData {
            spans: Vec::with_capacity(trace.spans.len()),
            span_count: trace.spans.len() as u64,
            size: if self.reads_size {
                store::collector_size(&trace.spans)
            } else {
                0
            },
        };
        if self.reads_attributes {
            // Spans of one resource envelope share it: read it once for them.
            let mut resource: Option<(&Arc<store::Envelope>, Option<Resource<'_>>)> = None;
            for held in &trace.spans {
                let r = match (resource, &held.scope.parent) {
                    (Some((last, r)), Some(p)) if Arc::ptr_eq(last, p) => Ok(r),
                    _ => store::resource(held),
                };
                match r.and_then(|r| Ok((Span::from_wire(held.bytes())?, r))) {
                    Ok((span, r)) => {
                        if let Some(p) = &held.scope.parent {
                            resource = Some((p, r));
                        }
                        data.spans.push((span, r));
                    }
                    Err(e) => {
                        tracing::error!(processor = %self.id, error = %e, "unreadable held span");
                    }
                }
            }
        } else {
            for held in &trace.spans {
                match store::span_without_attributes(held.bytes()) {
                    Ok(span) => data.spans.push((span, None)),
                    Err(e) => {
                        tracing::error!(processor = %self.id, error = %e, "unreadable held span");
                    }
                }
            }
        }
        let second = (self.start.1 + now.saturating_duration_since(self.start.0)).as_secs();
        // As the Collector: `drop` policies come first and the first that
        // matches ends the evaluation; otherwise every policy is evaluated
        // (each counts its verdict) and any that samples keeps the trace.
        let (mut keep, mut dropped) = (false, false);
        for (i, p) in self.policies.iter_mut().enumerate() {
            let v = match p.evaluate(&id, &data, now, second) {
                Ok(v) => v,
                Err(e) => {
                    self.metrics.evaluation_error.add(1);
                    tracing::debug!(processor = %self.id, policy = %p.name, error = %e, "policy evaluation failed");
                    continue;
                }
            };
            self.metrics.per_policy[i][usize::from(v.samples())].add(1);
            match v {
                policy::Verdict::Dropped => {
                    dropped = true;
                    break;
                }
                policy::Verdict::Sampled => keep = true,
                policy::Verdict::NotSampled => {}
            }
        }
        let keep = keep && !dropped;
        self.metrics.global[usize::from(keep)].add(1);
        if keep {
            self.sampled.insert(id, now);
        } else {
            self.not_sampled.insert(id, now);
        }
        keep
    }

    async fn emit(&self, requests: Vec<Bytes>, output: &Output) {
        if requests.is_empty() {
            return;
        }
        match Batch::from_wire(Signal::Traces, wire::concat(&requests), Arc::default()) {
            Ok(batch) => {
                self.processor.outgoing.add(batch.items() as u64);
                output.send(batch).await;
            }
            Err(e) => {
                tracing::error!(processor = %self.id, error = %e, reason = "unencodable trace", "dropped spans");
            }
        }
    }

    async fn run_loop(mut self, mut input: InletRx, output: Output) {
        loop {
            let due = self.next_due();
            let batch = match due {
                Some(at) => tokio::select! {
                    b = input.recv() => b,
                    () = tokio::time::sleep_until(at) => {
                        let out = self.tick(Instant::now());
                        self.emit(out, &output).await;
                        continue;
                    }
                },
                None => input.recv().await,
            };
            let Some(batch) = batch else { break };
            self.processor.incoming.add(batch.items() as u64);
            let out = self.ingest(batch, Instant::now());
            self.emit(out, &output).await;
        }
        // Input closed (shutdown): decide what is held now rather than lose
        // it, unless told to drop it.
        if self.drop_pending_on_shutdown {
            if !self.store.is_empty() {
                tracing::warn!(processor = %self.id, traces = self.store.len(), reason = "drop_pending_traces_on_shutdown", "dropped traces held at shutdown");
            }
            return;
        }
        let mut out = Vec::new();
        let now = Instant::now();
        while let Some((id, trace)) = self.store.pop_oldest() {
            if self.decide(id, &trace, now) {
                out.extend(trace.spans);
            }
        }
        self.emit(encoded(&out), &output).await;
    }
}

/// Takes the spans of one batch into the trace table, run by run: the
/// spans an SDK sends of one trace usually come one after another, and a
/// run costs one look-up.
struct Intake<'a> {
    store: &'a mut Store,
    sampled: &'a Decided,
    not_sampled: &'a Decided,
    metrics: &'a Metrics,
    logs: &'a mut LogLimiter,
    processor: &'a str,
    num_traces: usize,
    now: Instant,
    /// The trace id of the spans in `run`.
    run_id: [u8; 16],
    run: Vec<HeldSpan>,
    /// Spans of traces remembered as sampled: released at once.
    late: &'a mut Vec<HeldSpan>,
}

impl Intake<'_> {
    /// One span, with its trace id.
    fn span(&mut self, id: [u8; 16], held: HeldSpan) {
        if id != self.run_id {
            self.flush();
            self.run_id = id;
        }
        self.run.push(held);
    }

    /// Files the current run under its trace.
    fn flush(&mut self) {
        if self.run.is_empty() {
            return;
        }
        let id = self.run_id;
        // A held trace is never in a decision cache: look there only for
        // a trace not held.
        if self.store.extend_held(&id, &mut self.run) {
            return;
        }
        let remembered = match (self.sampled.get(&id), self.not_sampled.get(&id)) {
            (Some(at), _) => Some((true, at)),
            (None, Some(at)) => Some((false, at)),
            (None, None) => None,
        };
        if let Some((keep, at)) = remembered {
            let m = self.metrics;
            m.early_release[usize::from(keep)].add(self.run.len() as u64);
            for _ in 0..self.run.len() {
                m.late_span_age
                    .observe(self.now.saturating_duration_since(at));
            }
            if keep {
                self.late.append(&mut self.run);
            }
            self.run.clear();
            return;
        }
        self.store.add_new(id, &mut self.run, self.now);
        self.metrics.new_trace.add(1);
        if self.store.len() > self.num_traces
            && let Some((old, _)) = self.store.pop_oldest()
        {
            self.metrics.dropped_too_early.add(1);
            if let Some(held) = self.logs.allow() {
                tracing::warn!(processor = %self.processor, trace_id = %hex(&old), held_back = held, reason = "num_traces", "dropped a trace before its decision");
            }
        }
    }
}

/// `spans` as one encoded request, or nothing.
fn encoded(spans: &[HeldSpan]) -> Vec<Bytes> {
    if spans.is_empty() {
        Vec::new()
    } else {
        vec![store::encode(spans)]
    }
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Processor for TailSampling {
    fn run(self: Box<Self>, input: InletRx, output: Output) -> BoxFuture<'static, ()> {
        Box::pin(self.run_loop(input, output))
    }
}
