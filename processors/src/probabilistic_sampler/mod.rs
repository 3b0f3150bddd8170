//! `probabilistic_sampler`: keeps a configured share of spans and log
//! records, consistently by trace, with the OpenTelemetry Collector's keys,
//! modes and per-item decisions (`decide.rs`, checked item for item against
//! the Collector's processor). It works on the wire bytes: each request is
//! read through views and written once by the editor, with dropped items
//! left out, kept spans' `tracestate` and kept log records' sampling
//! attributes rewritten, and everything else copied as bytes. Scopes and
//! resources left without items are left out, as the Collector does.

pub mod decide;
pub mod threshold;
pub mod tracestate;

use std::sync::Arc;

use tern_config::{Component, ProbabilisticSamplerConfig, Signal};
use tern_core::build::{BuildError, Built, Context};
use tern_core::component::{BoxFuture, Output, Processor};
use tern_core::pdata::Batch;
use tern_core::queue::InletRx;
use tern_core::telemetry::{Counter, LogLimiter, ProcessorMetrics, Telemetry};
use tern_core::view::{
    Change, Decision, Edit, LogRecord, Logs, ResourceView, ScopeView, SignalView, SpanPeek, Traces,
    Value,
};
use tern_core::wire::WireError;

use decide::{LogInput, Outcome, Policy, Priority, PriorityValue, Sampler, SpanInput};

/// Every [`Policy`], in the order of [`policy_index`].
const POLICIES: [Policy; 6] = [
    Policy::Missing,
    Policy::TraceIdHash,
    Policy::TraceIdW3c,
    Policy::SamplingRandomness,
    Policy::SamplingPriority,
    Policy::Attribute,
];

fn policy_index(policy: Policy) -> usize {
    match policy {
        Policy::Missing => 0,
        Policy::TraceIdHash => 1,
        Policy::TraceIdW3c => 2,
        Policy::SamplingRandomness => 3,
        Policy::SamplingPriority => 4,
        Policy::Attribute => 5,
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct ProbabilisticSampler {
    id: String,
    signal: Signal,
    sampler: Sampler,
    from_attribute: String,
    priority_attribute: String,
    metrics: ProcessorMetrics,
    /// `count_{traces,logs}_sampled` by policy, then not sampled / sampled.
    sampled: [[Counter; 2]; 6],
    /// Items whose randomness or threshold could not be used.
    unusable: LogLimiter,
}

impl ProbabilisticSampler {
    /// Builds the processor `id` for `signal` (traces or logs).
    pub fn new(
        id: &str,
        config: &ProbabilisticSamplerConfig,
        signal: Signal,
        telemetry: &Arc<Telemetry>,
    ) -> Self {
        let name = match signal {
            Signal::Logs => "otelcol_processor_probabilistic_sampler_count_logs_sampled_total",
            _ => "otelcol_processor_probabilistic_sampler_count_traces_sampled_total",
        };
        let counter = |policy: Policy, sampled: &str| {
            let policy = match policy {
                Policy::Missing => "missing_randomness",
                Policy::TraceIdHash => "trace_id_hash",
                Policy::TraceIdW3c => "trace_id_w3c",
                Policy::SamplingRandomness => "sampling_randomness",
                Policy::SamplingPriority => "sampling_priority",
                Policy::Attribute => config.from_attribute.as_str(),
            };
            telemetry.counter(
                name,
                "Items the sampler kept (sampled=\"true\") or dropped, by where their randomness came from.",
                &[("processor", id), ("policy", policy), ("sampled", sampled)],
            )
        };
        ProbabilisticSampler {
            id: id.to_owned(),
            signal,
            sampler: Sampler::new(config),
            from_attribute: config.from_attribute.clone(),
            priority_attribute: config.sampling_priority.clone(),
            metrics: ProcessorMetrics::new(telemetry, id, signal),
            sampled: POLICIES.map(|p| [counter(p, "false"), counter(p, "true")]),
            unusable: LogLimiter::default(),
        }
    }

    /// Samples one batch: what is kept, as a batch (possibly empty).
    pub fn sample(&self, batch: Batch) -> Batch {
        let (signal, items) = (batch.signal(), batch.items());
        let kept = match self.signal {
            Signal::Logs => batch.edit::<Logs, _>(&mut LogSampling {
                processor: self,
                source: String::new(),
            }),
            _ => batch.edit::<Traces, _>(&mut SpanSampling {
                processor: self,
                state: String::with_capacity(64),
            }),
        };
        kept.unwrap_or_else(|e| {
            // Receivers validated every request: this is a bug, not bad input.
            tracing::error!(processor = %self.id, %signal, items, error = %e, reason = "unreadable request", "dropped items");
            Batch::empty(signal, Arc::default())
        })
    }

    fn count<E>(&self, outcome: &Outcome<E>) {
        self.sampled[policy_index(outcome.policy)][usize::from(outcome.sampled)].add(1);
        if let Some(e) = outcome.error
            && let Some(held) = self.unusable.allow()
        {
            tracing::debug!(processor = %self.id, error = %e, held_back = held, sampled = outcome.sampled, "sampling randomness or threshold unusable");
        }
    }

    async fn run_loop(self, mut input: InletRx, output: Output) {
        while let Some(batch) = input.recv().await {
            self.metrics.incoming.add(batch.items() as u64);
            let kept = self.sample(batch);
            if kept.items() > 0 {
                self.metrics.outgoing.add(kept.items() as u64);
                output.send(kept).await;
            }
        }
    }
}

impl Processor for ProbabilisticSampler {
    fn run(self: Box<Self>, input: InletRx, output: Output) -> BoxFuture<'static, ()> {
        Box::pin(self.run_loop(input, output))
    }
}

/// Drops resources and scopes that hold nothing (the Collector removes
/// every empty one, including those that arrived empty).
fn resource_decision<S: SignalView>(resource: &ResourceView<'_, S>) -> Result<Decision, WireError> {
    Ok(match resource.scopes().next() {
        Some(scope) => {
            scope?;
            Decision::Visit
        }
        None => Decision::Drop,
    })
}

fn scope_decision<S: SignalView>(scope: &ScopeView<'_, S>) -> Result<Decision, WireError> {
    Ok(match scope.items().next() {
        Some(item) => {
            item?;
            Decision::Visit
        }
        None => Decision::Drop,
    })
}

/// A string attribute's text, when it is a non-empty string.
fn non_empty_str<'a>(value: Option<Value<'a>>) -> Option<&'a str> {
    match value {
        Some(Value::Str(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn priority_value<'a>(value: &Value<'a>) -> PriorityValue<'a> {
    match *value {
        Value::Int(v) => PriorityValue::Int(v),
        Value::Double(v) => PriorityValue::Double(v),
        Value::Str(s) => PriorityValue::Str(s),
        _ => PriorityValue::Other,
    }
}

struct SpanSampling<'p> {
    processor: &'p ProbabilisticSampler,
    /// The `tracestate` of the span decided last (one string per batch).
    state: String,
}

impl Edit<Traces> for SpanSampling<'_> {
    fn resource(
        &mut self,
        resource: &ResourceView<'_, Traces>,
        _: &mut Change,
    ) -> Result<Decision, WireError> {
        resource_decision(resource)
    }

    fn scope(
        &mut self,
        scope: &ScopeView<'_, Traces>,
        _: &mut Change,
    ) -> Result<Decision, WireError> {
        scope_decision(scope)
    }

    /// One pass over each span reads what the decision needs, and a kept
    /// span's new `tracestate` goes where that pass found the old one.
    fn item_bytes(&mut self, raw: &[u8], change: &mut Change) -> Result<Decision, WireError> {
        let span = SpanPeek::read(raw, "sampling.priority")?;
        let input = SpanInput {
            trace_id: span.trace_id,
            trace_state: span.trace_state,
            priority: Priority::of_span(span.attribute.as_ref().map(priority_value)),
        };
        let outcome = self.processor.sampler.span_into(&input, &mut self.state);
        self.processor.count(&outcome);
        if !outcome.sampled {
            return Ok(Decision::Drop);
        }
        if outcome.edit && self.state != span.trace_state {
            change.replace_trace_state(&span, &self.state);
        }
        Ok(Decision::Keep)
    }
}

struct LogSampling<'p> {
    processor: &'p ProbabilisticSampler,
    /// The `from_attribute` value as text, when it is not a string or bytes.
    source: String,
}

/// The Collector's `AsString` of a scalar value, for hashing; `None` for
/// arrays and maps (see [`LogSampling::item`]).
fn scalar_text(value: &Value<'_>, out: &mut String) -> Option<()> {
    use std::fmt::Write as _;
    out.clear();
    match value {
        Value::Empty => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Double(d) => tern_core::gotext::double(*d, out),
        Value::Str(_) | Value::Bytes(_) | Value::Array(_) | Value::KvList(_) => return None,
    }
    Some(())
}

impl Edit<Logs> for LogSampling<'_> {
    fn resource(
        &mut self,
        resource: &ResourceView<'_, Logs>,
        _: &mut Change,
    ) -> Result<Decision, WireError> {
        resource_decision(resource)
    }

    fn scope(
        &mut self,
        scope: &ScopeView<'_, Logs>,
        _: &mut Change,
    ) -> Result<Decision, WireError> {
        scope_decision(scope)
    }

    fn item(&mut self, record: &LogRecord<'_>, change: &mut Change) -> Result<Decision, WireError> {
        let p = self.processor;
        let (mut threshold, mut randomness, mut source, mut priority) = (None, None, None, None);
        // One pass over the attributes; the first of each key counts.
        for attribute in record.attributes() {
            let attribute = attribute?;
            let key = attribute.key;
            if key == "sampling.threshold" && threshold.is_none() {
                threshold = Some(attribute.value);
            } else if key == "sampling.randomness" && randomness.is_none() {
                randomness = Some(attribute.value);
            }
            if key == p.from_attribute && source.is_none() && !p.from_attribute.is_empty() {
                source = Some(attribute.value);
            }
            if key == p.priority_attribute && priority.is_none() && !p.priority_attribute.is_empty()
            {
                priority = Some(attribute.value);
            }
        }
        let source_bytes = match &source {
            Some(Value::Str(s)) => Some(s.as_bytes()),
            Some(Value::Bytes(b)) => Some(*b),
            // Arrays and maps would be hashed from the Collector's JSON
            // text; Tern hashes their encoded bytes (see the docs).
            Some(Value::Array(a)) => Some(a.raw),
            Some(Value::KvList(m)) => Some(m.raw),
            Some(other) => scalar_text(other, &mut self.source).map(|()| self.source.as_bytes()),
            None => None,
        };
        let outcome = p.sampler.log(&LogInput {
            trace_id: record.trace_id,
            threshold: non_empty_str(threshold),
            randomness: non_empty_str(randomness),
            source: source_bytes,
            priority: priority.as_ref().map(priority_value),
        });
        p.count(&outcome);
        if !outcome.sampled {
            return Ok(Decision::Drop);
        }
        let edit = outcome.edit;
        if edit.remove_threshold {
            change.delete("sampling.threshold");
        }
        if let Some(r) = &edit.randomness {
            change.upsert("sampling.randomness", Value::Str(r));
        }
        if let Some(t) = &edit.threshold {
            change.upsert("sampling.threshold", Value::Str(t));
        }
        Ok(Decision::Keep)
    }
}

/// Builds a `probabilistic_sampler`: one task per pipeline listing it.
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let (config, id, telemetry) = (
        ctx.settings::<ProbabilisticSamplerConfig>(c)?.clone(),
        ctx.id.clone(),
        ctx.telemetry.clone(),
    );
    Ok(Built::stage(move |signal| {
        Box::new(ProbabilisticSampler::new(&id, &config, signal, &telemetry))
    }))
}
