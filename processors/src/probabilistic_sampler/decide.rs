//! The per-item decision of `probabilistic_sampler`, step for step as the
//! Collector (v0.161) takes it: where the randomness comes from (trace id
//! hash, trace id, `rv`, a log attribute), the consistency check of an
//! arriving threshold, the mode's threshold (`hash_seed`, `proportional`,
//! `equalizing`), `fail_closed`, the priority override, and what a kept
//! item carries on (`ot=rv:..;th:..` in `tracestate`, or the
//! `sampling.randomness` / `sampling.threshold` log attributes).

use tern_config::{AttributeSource, ProbabilisticSamplerConfig, SamplerMode};

use super::threshold::{MIN_SAMPLING_PROBABILITY, Randomness, Threshold};
use super::tracestate::{TraceStateError, W3cTraceState};

/// Why an item could not be sampled by its randomness; with
/// `fail_closed` it is dropped, otherwise kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerError {
    /// An unusable `tracestate`.
    TraceState(TraceStateError),
    /// An unusable `sampling.threshold` or `sampling.randomness` attribute.
    LogAttribute,
    /// An arriving threshold the item's randomness does not pass.
    InconsistentArrivingTValue,
    /// No trace id, `rv` or configured attribute to take randomness from.
    MissingRandomness,
    /// `hash_seed` mode on an item that carries an R-value.
    RandomnessInUse,
    /// `hash_seed` mode on an item that carries a threshold.
    ThresholdInUse,
}

impl std::fmt::Display for SamplerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SamplerError::TraceState(e) => write!(f, "{e}"),
            SamplerError::LogAttribute => {
                f.write_str("invalid sampling.threshold or sampling.randomness attribute")
            }
            SamplerError::InconsistentArrivingTValue => {
                f.write_str("inconsistent arriving t-value: span should not have been sampled")
            }
            SamplerError::MissingRandomness => f.write_str("missing randomness"),
            SamplerError::RandomnessInUse => f.write_str(
                "item has sampling randomness, equalizing or proportional mode recommended",
            ),
            SamplerError::ThresholdInUse => f.write_str(
                "item has sampling threshold, equalizing or proportional mode recommended",
            ),
        }
    }
}

/// Where an item's randomness came from: the `policy` label of the
/// Collector's `count_*_sampled` counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `missing_randomness`.
    Missing,
    /// `trace_id_hash`.
    TraceIdHash,
    /// `trace_id_w3c`.
    TraceIdW3c,
    /// `sampling_randomness`.
    SamplingRandomness,
    /// `sampling_priority`.
    SamplingPriority,
    /// The `from_attribute` name.
    Attribute,
}

/// An attribute value as the priority rules read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PriorityValue<'a> {
    /// An int value.
    Int(i64),
    /// A double value.
    Double(f64),
    /// A string value.
    Str(&'a str),
    /// Any other type.
    Other,
}

/// A span's `sampling.priority` override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// No override.
    Defer,
    /// Keep the span.
    Must,
    /// Drop the span.
    DoNot,
}

impl Priority {
    /// The Collector's reading of `sampling.priority`: 0 drops, above 0
    /// keeps, numbers in strings count, anything else defers.
    pub fn of_span(value: Option<PriorityValue<'_>>) -> Priority {
        let number = match value {
            Some(PriorityValue::Int(v)) => v as f64,
            Some(PriorityValue::Double(v)) => v,
            Some(PriorityValue::Str(s)) => match parse_go_float(s) {
                Some(v) => v,
                None => return Priority::Defer,
            },
            Some(PriorityValue::Other) | None => return Priority::Defer,
        };
        if number == 0.0 {
            Priority::DoNot
        } else if number > 0.0 {
            Priority::Must
        } else {
            Priority::Defer
        }
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms a priority attribute
/// takes: decimal and exponent forms, `inf`/`infinity`/`nan` in any case,
/// with a sign. (Go also takes hex floats and `_` separators after a base
/// prefix; those are not numbers here.)
fn parse_go_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// What a span needs for its decision.
#[derive(Debug, Clone, Copy)]
pub struct SpanInput<'a> {
    /// The trace id (16 bytes; anything else or all zeros is empty).
    pub trace_id: &'a [u8],
    /// The W3C `tracestate`.
    pub trace_state: &'a str,
    /// The `sampling.priority` override.
    pub priority: Priority,
}

/// What a log record needs for its decision.
#[derive(Debug, Clone, Copy)]
pub struct LogInput<'a> {
    /// The trace id (empty when absent).
    pub trace_id: &'a [u8],
    /// The `sampling.threshold` attribute when it is a non-empty string.
    pub threshold: Option<&'a str>,
    /// The `sampling.randomness` attribute when it is a non-empty string.
    pub randomness: Option<&'a str>,
    /// The `from_attribute` value as bytes (bytes as they are, anything
    /// else as the Collector's `AsString`), when present.
    pub source: Option<&'a [u8]>,
    /// The `sampling_priority` attribute, when configured and present.
    pub priority: Option<PriorityValue<'a>>,
}

/// The decision on one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<E> {
    /// Keep the item.
    pub sampled: bool,
    /// Where its randomness came from.
    pub policy: Policy,
    /// Why the randomness or threshold could not be used, if so.
    pub error: Option<SamplerError>,
    /// How a kept item changes.
    pub edit: E,
}

/// How a kept span changes: its new `tracestate`, when it changes.
pub type SpanEdit = Option<String>;

/// How a log record changes, applied in this order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogEdit {
    /// Remove `sampling.threshold` (an inconsistent arriving threshold).
    pub remove_threshold: bool,
    /// Put `sampling.randomness` (string; replaces the first attribute of
    /// that key, else appended).
    pub randomness: Option<String>,
    /// Put `sampling.threshold` likewise.
    pub threshold: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Never,
    Hash { seed: u32, threshold: Threshold },
    Equalizing(Threshold),
    Proportional(f64),
}

/// A configured `probabilistic_sampler` decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampler {
    kind: Kind,
    fail_closed: bool,
    precision: usize,
    logs_from_trace_id: bool,
    from_attribute: bool,
    priority_attribute: bool,
}

/// Buckets of the legacy hash: 2^14.
const HASH_BUCKETS: u32 = 0x4000;

/// A randomness and where it came from.
#[derive(Debug, Clone, Copy)]
struct Source {
    policy: Policy,
    randomness: Randomness,
}

impl Source {
    const MISSING: Source = Source {
        policy: Policy::Missing,
        randomness: Randomness::ALL_PROBABILITIES,
    };

    fn missing(self) -> bool {
        self.policy == Policy::Missing
    }
}

/// An item's sampling state: its parsed `tracestate`, or the two log
/// attributes.
trait Carrier {
    /// Whether an item without randomness still gets an R-value in
    /// `hash_seed` mode (spans do, with all ones; log records do not).
    const SETS_MISSING_RANDOMNESS: bool;
    fn randomness(&self) -> Option<Randomness>;
    fn threshold(&self) -> Option<Threshold>;
    fn set_randomness(&mut self, randomness: Randomness);
    fn clear_threshold(&mut self);
    fn update_threshold(&mut self, threshold: Threshold);
}

impl Carrier for W3cTraceState<'_> {
    const SETS_MISSING_RANDOMNESS: bool = true;
    fn randomness(&self) -> Option<Randomness> {
        self.otel().randomness()
    }
    fn threshold(&self) -> Option<Threshold> {
        self.otel().threshold()
    }
    fn set_randomness(&mut self, randomness: Randomness) {
        self.otel_mut().set_randomness(randomness);
    }
    fn clear_threshold(&mut self) {
        self.otel_mut().clear_threshold();
    }
    fn update_threshold(&mut self, threshold: Threshold) {
        // A refused update (the item was sampled at a lower probability
        // already) leaves the state as it is; the Collector logs it at
        // debug level and goes on.
        let _ = self.otel_mut().update_threshold(threshold);
    }
}

/// The log attributes as read, and the changes to make (rendered into a
/// [`LogEdit`] only for a kept record).
#[derive(Debug, Default)]
struct LogCarrier {
    randomness: Option<Randomness>,
    threshold: Option<Threshold>,
    remove_threshold: bool,
    put_randomness: Option<Randomness>,
    put_threshold: Option<Threshold>,
}

impl Carrier for LogCarrier {
    const SETS_MISSING_RANDOMNESS: bool = false;
    fn randomness(&self) -> Option<Randomness> {
        self.randomness
    }
    fn threshold(&self) -> Option<Threshold> {
        self.threshold
    }
    fn set_randomness(&mut self, randomness: Randomness) {
        self.randomness = Some(randomness);
        self.put_randomness = Some(randomness);
    }
    fn clear_threshold(&mut self) {
        self.threshold = None;
        self.remove_threshold = true;
    }
    fn update_threshold(&mut self, threshold: Threshold) {
        if matches!(self.threshold, Some(existing) if threshold < existing) {
            return;
        }
        self.put_threshold = Some(threshold);
    }
}

impl LogCarrier {
    fn read(input: &LogInput<'_>) -> (LogCarrier, Option<SamplerError>) {
        let mut carrier = LogCarrier::default();
        let mut error = None;
        if let Some(t) = input.threshold {
            carrier.threshold = Threshold::from_tvalue(t);
            if carrier.threshold.is_none() {
                error = Some(SamplerError::LogAttribute);
            }
        }
        if let Some(r) = input.randomness {
            carrier.randomness = Randomness::from_rvalue(r);
            if carrier.randomness.is_none() {
                error = Some(SamplerError::LogAttribute);
            }
        }
        (carrier, error)
    }
}

/// A trace id the Collector treats as present: 16 bytes, not all zero.
fn trace_id(bytes: &[u8]) -> Option<&[u8; 16]> {
    <&[u8; 16]>::try_from(bytes)
        .ok()
        .filter(|id| id.iter().any(|b| *b != 0))
}

/// FNV-1a (32 bits) of the seed's little-endian bytes then `bytes`, spread
/// into 56 bits so that its 14 low bits decide as the legacy sampler did.
fn hash_randomness(bytes: &[u8], seed: u32) -> Randomness {
    let step = |hash: u32, b: &u8| (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    // Two plain loops: a chained iterator costs a branch per byte.
    let hash = seed.to_le_bytes().iter().fold(0x811c_9dc5, step);
    let hash = bytes.iter().fold(hash, step);
    let hashed = u64::from(hash & (HASH_BUCKETS - 1));
    let flipped = u64::from(HASH_BUCKETS) - 1 - hashed;
    let unused = u64::from(hash >> 18);
    let mixed = unused ^ (unused << 10);
    let value = (flipped << 42) | (mixed << 14) | hashed;
    // The top 14 bits are at most 2^14 - 1: always below 2^56.
    Randomness::from_unsigned(value).unwrap_or(Randomness::ALL_PROBABILITIES)
}

impl Sampler {
    /// The sampler for `config`.
    pub fn new(config: &ProbabilisticSamplerConfig) -> Sampler {
        let percentage = config.sampling_percentage.min(100.0);
        let precision = config.sampling_precision as usize;
        // Unset, the Collector (v0.161) picks `hash_seed` for every signal.
        let mode = config.mode.unwrap_or(SamplerMode::HashSeed);
        let kind = if percentage == 0.0 {
            Kind::Never
        } else {
            let ratio = (f64::from(percentage) / 100.0).max(MIN_SAMPLING_PROBABILITY);
            match mode {
                SamplerMode::Equalizing => Kind::Equalizing(
                    Threshold::from_probability(ratio, precision).unwrap_or(Threshold::ALWAYS),
                ),
                SamplerMode::Proportional => Kind::Proportional(ratio),
                SamplerMode::HashSeed => {
                    // In 32-bit floats and truncated, as the legacy sampler.
                    let scaled = (percentage * (HASH_BUCKETS as f32 / 100.0)) as u32;
                    if scaled == 0 {
                        Kind::Never
                    } else {
                        let reject = u64::from(HASH_BUCKETS.saturating_sub(scaled)) << 42;
                        Kind::Hash {
                            seed: config.hash_seed,
                            threshold: Threshold::from_unsigned(reject).unwrap_or(Threshold::NEVER),
                        }
                    }
                }
            }
        };
        Sampler {
            kind,
            fail_closed: config.fail_closed,
            precision,
            logs_from_trace_id: config.attribute_source == AttributeSource::TraceId,
            from_attribute: !config.from_attribute.is_empty(),
            priority_attribute: !config.sampling_priority.is_empty(),
        }
    }

    /// Decides on a span.
    pub fn span(&self, input: &SpanInput<'_>) -> Outcome<SpanEdit> {
        let mut state = String::new();
        let outcome = self.span_into(input, &mut state);
        Outcome {
            sampled: outcome.sampled,
            policy: outcome.policy,
            error: outcome.error,
            edit: outcome.edit.then_some(state),
        }
    }

    /// [`Sampler::span`] writing a kept span's `tracestate` into `state`
    /// (cleared first; its room is reused from span to span): the edit
    /// is true when it was written.
    pub fn span_into(&self, input: &SpanInput<'_>, state: &mut String) -> Outcome<bool> {
        state.clear();
        let (parsed, parse_error) = W3cTraceState::parse(input.trace_state);
        let mut error = parse_error.map(SamplerError::TraceState);
        let (source, mut carrier) = match &self.kind {
            Kind::Never => (
                Source {
                    policy: Policy::SamplingPriority,
                    randomness: Randomness::ALL_PROBABILITIES,
                },
                Some(parsed),
            ),
            Kind::Hash { seed, .. } => {
                let source = trace_id(input.trace_id).map_or(Source::MISSING, |id| Source {
                    policy: Policy::TraceIdHash,
                    randomness: hash_randomness(id, *seed),
                });
                (source, self.hash_carrier(parsed, source, &mut error))
            }
            Kind::Equalizing(_) | Kind::Proportional(_) => {
                if error.is_some() {
                    (Source::MISSING, None)
                } else if let Some(randomness) = parsed.randomness() {
                    let policy = Policy::SamplingRandomness;
                    (Source { policy, randomness }, Some(parsed))
                } else if let Some(id) = trace_id(input.trace_id) {
                    let randomness = Randomness::from_trace_id(id);
                    let policy = Policy::TraceIdW3c;
                    (Source { policy, randomness }, Some(parsed))
                } else {
                    (Source::MISSING, Some(parsed))
                }
            }
        };
        let priority = match input.priority {
            Priority::Defer => None,
            Priority::Must => Some(Threshold::ALWAYS),
            Priority::DoNot => Some(Threshold::NEVER),
        };
        let (sampled, policy) = self.common(source, carrier.as_mut(), &mut error, priority);
        let edit = match carrier {
            Some(carrier) if sampled => {
                carrier.serialize_into(state);
                true
            }
            _ => false,
        };
        Outcome {
            sampled,
            policy,
            error,
            edit,
        }
    }

    /// Decides on a log record.
    pub fn log(&self, input: &LogInput<'_>) -> Outcome<LogEdit> {
        let (parsed, mut error) = LogCarrier::read(input);
        let (source, mut carrier) = match &self.kind {
            Kind::Never => (
                Source {
                    policy: Policy::SamplingPriority,
                    randomness: Randomness::ALL_PROBABILITIES,
                },
                Some(parsed),
            ),
            Kind::Hash { seed, .. } => {
                let mut source = Source::MISSING;
                if self.logs_from_trace_id
                    && let Some(id) = trace_id(input.trace_id)
                {
                    source = Source {
                        policy: Policy::TraceIdHash,
                        randomness: hash_randomness(id, *seed),
                    };
                }
                if source.missing()
                    && self.from_attribute
                    && let Some(bytes) = input.source.filter(|b| !b.is_empty())
                {
                    source = Source {
                        policy: Policy::Attribute,
                        randomness: hash_randomness(bytes, *seed),
                    };
                }
                (source, self.hash_carrier(parsed, source, &mut error))
            }
            Kind::Equalizing(_) | Kind::Proportional(_) => {
                if error.is_some() {
                    (Source::MISSING, None)
                } else if let Some(randomness) = parsed.randomness {
                    let policy = Policy::SamplingRandomness;
                    (Source { policy, randomness }, Some(parsed))
                } else if let Some(id) = trace_id(input.trace_id) {
                    let randomness = Randomness::from_trace_id(id);
                    let policy = Policy::TraceIdW3c;
                    (Source { policy, randomness }, Some(parsed))
                } else {
                    (Source::MISSING, Some(parsed))
                }
            }
        };
        let priority = self.log_priority(input.priority);
        let (sampled, policy) = self.common(source, carrier.as_mut(), &mut error, priority);
        let edit = match carrier {
            Some(c) if sampled => LogEdit {
                remove_threshold: c.remove_threshold,
                randomness: c.put_randomness.map(Randomness::rvalue),
                threshold: c.put_threshold.map(Threshold::tvalue),
            },
            _ => LogEdit::default(),
        };
        Outcome {
            sampled,
            policy,
            error,
            edit,
        }
    }

    /// `hash_seed` mode leaves items that carry consistent-sampling state
    /// alone (and fails them); others get the hash as their R-value.
    fn hash_carrier<C: Carrier>(
        &self,
        mut carrier: C,
        source: Source,
        error: &mut Option<SamplerError>,
    ) -> Option<C> {
        if error.is_some() {
            None
        } else if carrier.randomness().is_some() {
            *error = Some(SamplerError::RandomnessInUse);
            None
        } else if carrier.threshold().is_some() {
            *error = Some(SamplerError::ThresholdInUse);
            None
        } else {
            if !source.missing() || C::SETS_MISSING_RANDOMNESS {
                carrier.set_randomness(source.randomness);
            }
            Some(carrier)
        }
    }

    /// The logs' priority threshold: the attribute's number is a
    /// percentage (int or double; other types, 0 and values outside
    /// (0, 100] leave the decision to the sampler).
    fn log_priority(&self, value: Option<PriorityValue<'_>>) -> Option<Threshold> {
        if !self.priority_attribute {
            return None;
        }
        let min_probability = match value? {
            PriorityValue::Double(v) => v / 100.0,
            PriorityValue::Int(v) => v as f64 / 100.0,
            PriorityValue::Str(_) | PriorityValue::Other => 0.0,
        };
        if min_probability == 0.0 {
            return None;
        }
        Threshold::from_probability(min_probability, self.precision)
    }

    /// The steps every item goes through once its randomness and carrier
    /// are known: consistency check, threshold, priority, decision, and
    /// the threshold written on a kept item.
    fn common<C: Carrier>(
        &self,
        source: Source,
        mut carrier: Option<&mut C>,
        error: &mut Option<SamplerError>,
        priority: Option<Threshold>,
    ) -> (bool, Policy) {
        if error.is_none() {
            *error = consistency_check(source, carrier.as_deref_mut());
        }
        let threshold = if error.is_some() {
            if self.fail_closed {
                Threshold::NEVER
            } else {
                Threshold::ALWAYS
            }
        } else {
            self.threshold(carrier.as_deref())
        };
        let (threshold, policy) = match priority {
            Some(t) => (t, Policy::SamplingPriority),
            None => (threshold, source.policy),
        };
        let sampled = threshold.should_sample(source.randomness);
        if sampled && let Some(c) = carrier {
            c.update_threshold(threshold);
        }
        (sampled, policy)
    }

    fn threshold<C: Carrier>(&self, carrier: Option<&C>) -> Threshold {
        let arriving = carrier.and_then(Carrier::threshold);
        match &self.kind {
            Kind::Never => Threshold::NEVER,
            Kind::Hash { threshold, .. } => *threshold,
            Kind::Equalizing(threshold) => match arriving {
                Some(a) if *threshold < a => a,
                _ => *threshold,
            },
            Kind::Proportional(ratio) => {
                let incoming = arriving.map_or(1.0, Threshold::probability);
                Threshold::from_probability(incoming * ratio, self.precision)
                    .unwrap_or(Threshold::NEVER)
            }
        }
    }
}

fn consistency_check<C: Carrier>(source: Source, carrier: Option<&mut C>) -> Option<SamplerError> {
    if source.missing() {
        return Some(SamplerError::MissingRandomness);
    }
    let carrier = carrier?;
    match carrier.threshold() {
        Some(t) if !t.should_sample(source.randomness) => {
            carrier.clear_threshold();
            Some(SamplerError::InconsistentArrivingTValue)
        }
        _ => None,
    }
}
