//! The policies: built from their config (`drop` policies first, as the
//! Collector orders them), each evaluates one held trace (read through views
//! over its spans' bytes) to a [`Verdict`]. The processor combines them the
//! Collector's (v0.161) way: the first `drop` verdict ends the evaluation and
//! drops the trace; otherwise every policy is evaluated and any sampled
//! verdict keeps it. `invert_match` samples what does not match (no veto).

use std::collections::HashMap;

use regex::Regex;
use tern_config::{PolicyConfig, TailSamplingConfig};
use tern_core::view::{Resource, Span, Value};
use tern_core::wire::WireError;
use tokio::time::Instant;

/// One policy's answer for one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it.
    Sampled,
    /// This policy does not keep it.
    NotSampled,
    /// A `drop` policy matched: the trace is not sampled, whatever other
    /// policies say.
    Dropped,
}

impl Verdict {
    /// True for the verdict that keeps the trace.
    pub fn samples(self) -> bool {
        self == Verdict::Sampled
    }
}

/// A held trace as the policies read it.
#[derive(Debug, Default)]
pub struct TraceData<'a> {
    /// Each span with its resource. Where no policy reads attributes, only
    /// the spans' times, status code and trace state are read, and no
    /// resource ([`super::store::span_without_attributes`]).
    pub spans: Vec<(Span<'a>, Option<Resource<'a>>)>,
    /// Spans received for it.
    pub span_count: u64,
    /// Its size as the Collector's `bytes_limiting` counts it: the encoded
    /// size of its spans under their resources and scopes, one
    /// `ResourceSpans` per request and resource it came in
    /// ([`super::store::collector_size`]); 0 when no policy reads it.
    pub size: u64,
}

impl<'a> TraceData<'a> {
    /// True when a resource or span attribute `key` passes `test`; resources
    /// are looked at first, then spans (as the Collector does). The value
    /// is `None` when the key is absent.
    fn any_attribute(
        &self,
        key: &str,
        mut test: impl FnMut(Option<&Value<'a>>) -> bool,
    ) -> Result<bool, WireError> {
        let mut last: Option<*const u8> = None;
        for (_, resource) in &self.spans {
            let Some(r) = resource else { continue };
            if last == Some(r.raw.as_ptr()) {
                continue;
            }
            last = Some(r.raw.as_ptr());
            if test(r.attributes().get(key)?.as_ref()) {
                return Ok(true);
            }
        }
        for (span, _) in &self.spans {
            if test(span.attributes().get(key)?.as_ref()) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// How `string_attribute` matches a value.
#[derive(Debug)]
enum Matcher {
    Exact(Vec<String>),
    Regex {
        patterns: Vec<Regex>,
        /// Results remembered, cleared when `cache_max_size` is reached.
        cache: HashMap<String, bool>,
        cache_max_size: usize,
    },
}

impl Matcher {
    fn matches(&mut self, value: &str) -> bool {
        match self {
            Matcher::Exact(values) => values.iter().any(|v| v == value),
            Matcher::Regex {
                patterns,
                cache,
                cache_max_size,
            } => {
                if let Some(hit) = cache.get(value) {
                    return *hit;
                }
                let hit = patterns.iter().any(|p| p.is_match(value));
                if cache.len() >= *cache_max_size {
                    cache.clear();
                }
                cache.insert(value.to_owned(), hit);
                hit
            }
        }
    }
}

/// A span budget per second (`rate_limiting`, `composite`).
#[derive(Debug, Default)]
struct PerSecond {
    second: u64,
    spans: i64,
}

impl PerSecond {
    fn used(&mut self, second: u64) -> i64 {
        if self.second != second {
            self.second = second;
            self.spans = 0;
        }
        self.spans
    }
}

/// A token bucket as the Collector's limiters keep one (Go's
/// `rate.Limiter`): full at first, refilled continuously at `rate` per
/// second up to `capacity`; a trace passes when the bucket holds its
/// whole cost, which is then taken out.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    /// `rate` per second, holding `burst` (0 or less: twice the rate).
    fn new(rate: i64, burst: i64) -> Bucket {
        let capacity = if burst > 0 {
            burst
        } else {
            rate.saturating_mul(2)
        } as f64;
        Bucket {
            rate: rate as f64,
            capacity,
            tokens: capacity,
            last: None,
        }
    }

    /// Takes `cost` out at `now` if the bucket holds it.
    fn take(&mut self, cost: u64, now: Instant) -> bool {
        if let Some(l) = self.last {
            let refill = now.saturating_duration_since(l).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.capacity);
        }
        self.last = Some(now);
        let cost = cost as f64;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// One `composite` sub-policy with its share.
#[derive(Debug)]
struct Share {
    policy: Policy,
    max_spans_per_second: i64,
    used: PerSecond,
}

/// A built policy.
#[derive(Debug)]
enum Kind {
    AlwaysSample,
    Latency {
        threshold_ms: i64,
        upper_threshold_ms: i64,
    },
    Numeric {
        key: String,
        min: i64,
        max: i64,
        invert: bool,
    },
    Probabilistic {
        salt: Vec<u8>,
        threshold: u64,
    },
    StatusCode([bool; 3]),
    StringAttribute {
        key: String,
        matcher: Matcher,
        invert: bool,
    },
    Boolean {
        key: String,
        value: bool,
        invert: bool,
    },
    /// `rate_limiting` (a trace costs its span count) or `bytes_limiting`
    /// (a trace costs its size).
    Limiting {
        bucket: Bucket,
        bytes: bool,
    },
    SpanCount {
        min: i64,
        max: i64,
    },
    TraceState {
        key: String,
        values: Vec<String>,
    },
    And(Vec<Policy>),
    Drop(Vec<Policy>),
    Composite {
        max_total: i64,
        shares: Vec<Share>,
    },
}

/// A policy, built from its config.
#[derive(Debug)]
pub struct Policy {
    /// Its name.
    pub name: String,
    kind: Kind,
}

/// The Collector's default `hash_salt`.
const DEFAULT_SALT: &str = "default-hash-seed";

/// Builds the top-level policies (the config was validated): the `drop`
/// policies first, then the others, each group in config order.
pub fn build(config: &TailSamplingConfig) -> Vec<Policy> {
    let (drops, others): (Vec<_>, Vec<_>) = config.policies.iter().partition(|c| c.kind == "drop");
    drops.into_iter().chain(others).map(Policy::new).collect()
}

impl Policy {
    /// True when this policy or one of its sub-policies is of a `leaf`
    /// kind.
    fn any(&self, leaf: &impl Fn(&Kind) -> bool) -> bool {
        match &self.kind {
            Kind::And(subs) | Kind::Drop(subs) => subs.iter().any(|p| p.any(leaf)),
            Kind::Composite { shares, .. } => shares.iter().any(|s| s.policy.any(leaf)),
            kind => leaf(kind),
        }
    }

    /// True when this policy (or a sub-policy) reads [`TraceData::size`].
    pub fn reads_size(&self) -> bool {
        self.any(&|k| matches!(k, Kind::Limiting { bytes: true, .. }))
    }

    /// True when this policy (or a sub-policy) reads attributes (of spans
    /// and resources): the others read only a span's times, status and
    /// trace state.
    pub fn reads_attributes(&self) -> bool {
        self.any(&|k| {
            matches!(
                k,
                Kind::Numeric { .. } | Kind::StringAttribute { .. } | Kind::Boolean { .. }
            )
        })
    }

    fn new(c: &PolicyConfig) -> Policy {
        let subs = |list: &[PolicyConfig]| list.iter().map(Policy::new).collect();
        let kind = match c.kind.as_str() {
            "latency" => Kind::Latency {
                threshold_ms: c.latency.threshold_ms,
                upper_threshold_ms: c.latency.upper_threshold_ms,
            },
            "numeric_attribute" => Kind::Numeric {
                key: c.numeric_attribute.key.clone(),
                min: c.numeric_attribute.min_value.unwrap_or(i64::MIN),
                max: c.numeric_attribute.max_value.unwrap_or(i64::MAX),
                invert: c.numeric_attribute.invert_match,
            },
            "probabilistic" => Kind::Probabilistic {
                salt: if c.probabilistic.hash_salt.is_empty() {
                    DEFAULT_SALT
                } else {
                    &c.probabilistic.hash_salt
                }
                .as_bytes()
                .to_vec(),
                threshold: threshold(c.probabilistic.sampling_percentage),
            },
            "status_code" => {
                let mut codes = [false; 3];
                for s in &c.status_code.status_codes {
                    match s.as_str() {
                        "UNSET" => codes[0] = true,
                        "OK" => codes[1] = true,
                        "ERROR" => codes[2] = true,
                        _ => {}
                    }
                }
                Kind::StatusCode(codes)
            }
            "string_attribute" => {
                let s = &c.string_attribute;
                let matcher = if s.enabled_regex_matching {
                    Matcher::Regex {
                        patterns: s.values.iter().filter_map(|v| Regex::new(v).ok()).collect(),
                        cache: HashMap::new(),
                        cache_max_size: if s.cache_max_size == 0 {
                            128
                        } else {
                            s.cache_max_size
                        },
                    }
                } else {
                    Matcher::Exact(s.values.clone())
                };
                Kind::StringAttribute {
                    key: s.key.clone(),
                    matcher,
                    invert: s.invert_match,
                }
            }
            "boolean_attribute" => Kind::Boolean {
                key: c.boolean_attribute.key.clone(),
                value: c.boolean_attribute.value,
                invert: c.boolean_attribute.invert_match,
            },
            "rate_limiting" => Kind::Limiting {
                bucket: Bucket::new(
                    c.rate_limiting.spans_per_second,
                    c.rate_limiting.burst_capacity,
                ),
                bytes: false,
            },
            "bytes_limiting" => Kind::Limiting {
                bucket: Bucket::new(
                    c.bytes_limiting.bytes_per_second,
                    c.bytes_limiting.burst_capacity,
                ),
                bytes: true,
            },
            "span_count" => Kind::SpanCount {
                min: i64::from(c.span_count.min_spans),
                max: i64::from(c.span_count.max_spans),
            },
            "trace_state" => Kind::TraceState {
                key: c.trace_state.key.clone(),
                values: c.trace_state.values.clone(),
            },
            "and" => Kind::And(subs(&c.and.and_sub_policy)),
            "drop" => Kind::Drop(subs(&c.drop.drop_sub_policy)),
            "composite" => {
                // As the Collector v0.161: the sub-policies in their listed
                // order (`policy_order` is read but not used), each with its
                // `rate_allocation` percent of the total, or an equal share
                // where it has none (or 0).
                let comp = &c.composite;
                let total = comp.max_total_spans_per_second;
                let equal = total / comp.composite_sub_policy.len().max(1) as i64;
                let share_of = |name: &str| {
                    comp.rate_allocation
                        .iter()
                        .find(|r| r.policy == name && r.percent > 0)
                        .map_or(equal, |r| (r.percent as f64 / 100.0 * total as f64) as i64)
                };
                let shares = comp
                    .composite_sub_policy
                    .iter()
                    .map(|s| Share {
                        policy: Policy::new(s),
                        max_spans_per_second: share_of(&s.name),
                        used: PerSecond::default(),
                    })
                    .collect();
                Kind::Composite {
                    max_total: total,
                    shares,
                }
            }
            // `always_sample`; validation refused every other type.
            _ => Kind::AlwaysSample,
        };
        Policy {
            name: c.name.clone(),
            kind,
        }
    }

    /// This policy's verdict on `trace` (`trace_id` is its 16-byte id;
    /// `second` is the current Unix second).
    pub fn evaluate(
        &mut self,
        trace_id: &[u8; 16],
        trace: &TraceData<'_>,
        now: Instant,
        second: u64,
    ) -> Result<Verdict, WireError> {
        let sampled = |b: bool| {
            if b {
                Verdict::Sampled
            } else {
                Verdict::NotSampled
            }
        };
        Ok(match &mut self.kind {
            Kind::AlwaysSample => Verdict::Sampled,
            Kind::Latency {
                threshold_ms,
                upper_threshold_ms,
            } => {
                // As the Collector: a running first start and last end over
                // the spans in arrival order, sampled as soon as the
                // duration so far is in range (strictly above the lower
                // bound when there is an upper one).
                let (lo, hi) = (*threshold_ms, *upper_threshold_ms);
                let (mut min, mut max) = (0u64, 0u64);
                sampled(trace.spans.iter().any(|(s, _)| {
                    if min == 0 || s.start_time_unix_nano < min {
                        min = s.start_time_unix_nano;
                    }
                    if max == 0 || s.end_time_unix_nano > max {
                        max = s.end_time_unix_nano;
                    }
                    let ms = (max as i64).wrapping_sub(min as i64) / 1_000_000;
                    if hi == 0 {
                        ms >= lo
                    } else {
                        lo < ms && ms <= hi
                    }
                }))
            }
            Kind::Numeric {
                key,
                min,
                max,
                invert,
            } => {
                let (min, max) = (*min, *max);
                let matched = trace.any_attribute(key, |v| match v {
                    None => false,
                    Some(v) => {
                        let n = match v {
                            Value::Int(i) => *i,
                            _ => 0,
                        };
                        min <= n && n <= max
                    }
                })?;
                sampled(matched != *invert)
            }
            Kind::Probabilistic { salt, threshold } => {
                sampled(fnv1a64(salt, trace_id) <= *threshold)
            }
            Kind::StatusCode(codes) => sampled(trace.spans.iter().any(|(s, _)| {
                let code = s.status.map_or(0, |st| st.code);
                usize::try_from(code).ok().and_then(|c| codes.get(c)) == Some(&true)
            })),
            Kind::StringAttribute {
                key,
                matcher,
                invert,
            } => {
                let matched = trace.any_attribute(key, |v| match v {
                    Some(Value::Str(s)) if !s.is_empty() => matcher.matches(s),
                    _ => false,
                })?;
                sampled(matched != *invert)
            }
            Kind::Boolean { key, value, invert } => {
                let value = *value;
                let matched = trace.any_attribute(key, |v| match v {
                    Some(Value::Bool(b)) => *b == value,
                    Some(_) => !value,
                    None => false,
                })?;
                sampled(matched != *invert)
            }
            Kind::Limiting { bucket, bytes } => {
                sampled(bucket.take(if *bytes { trace.size } else { trace.span_count }, now))
            }
            Kind::SpanCount { min, max } => {
                let n = trace.span_count as i64;
                sampled(*min <= n && (*max == 0 || n <= *max))
            }
            Kind::TraceState { key, values } => sampled(trace.spans.iter().any(|(s, _)| {
                s.trace_state.split(',').any(|entry| {
                    entry
                        .trim()
                        .split_once('=')
                        .is_some_and(|(k, v)| k == key && values.iter().any(|w| w == v))
                })
            })),
            Kind::And(subs) => {
                for sub in subs.iter_mut() {
                    if !sub.evaluate(trace_id, trace, now, second)?.samples() {
                        return Ok(Verdict::NotSampled);
                    }
                }
                Verdict::Sampled
            }
            Kind::Drop(subs) => {
                for sub in subs.iter_mut() {
                    if !sub.evaluate(trace_id, trace, now, second)?.samples() {
                        return Ok(Verdict::NotSampled);
                    }
                }
                Verdict::Dropped
            }
            Kind::Composite { max_total, shares } => {
                for share in shares.iter_mut() {
                    if share
                        .policy
                        .evaluate(trace_id, trace, now, second)?
                        .samples()
                    {
                        let would = share.used.used(second) + trace.span_count as i64;
                        if would <= share.max_spans_per_second && would <= *max_total {
                            share.used.spans = would;
                            return Ok(Verdict::Sampled);
                        }
                        return Ok(Verdict::NotSampled);
                    }
                }
                Verdict::NotSampled
            }
        })
    }
}

/// 64-bit FNV-1a of `salt` then `id`, the Collector's trace id hash.
pub fn fnv1a64(salt: &[u8], id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.iter().chain(id) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The hash bound under which a trace is sampled: `u64::MAX` times the
/// ratio, as the Collector computes it (a product rounded to 64 bits of
/// mantissa, then truncated to an integer).
pub fn threshold(percentage: f64) -> u64 {
    let ratio = percentage / 100.0;
    if ratio.is_nan() || ratio <= 0.0 {
        return 0;
    }
    if ratio.is_infinite() {
        return u64::MAX;
    }
    let bits = ratio.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (mantissa, mut e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp - 1075)
    };
    let mut p = u128::from(u64::MAX) * u128::from(mantissa);
    let len = 128 - p.leading_zeros() as i32;
    if len > 64 {
        let shift = len - 64;
        let rem = p & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        p >>= shift;
        if rem > half || (rem == half && p & 1 == 1) {
            p += 1;
        }
        e += shift;
    }
    if e >= 0 {
        if e >= 64 || p > u128::from(u64::MAX >> e) {
            u64::MAX
        } else {
            (p << e) as u64
        }
    } else if e <= -128 {
        0
    } else {
        u64::try_from(p >> (-e)).unwrap_or(u64::MAX)
    }
}
