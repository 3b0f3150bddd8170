//! `processors.tail_sampling`: the OpenTelemetry Collector's keys and
//! defaults (contrib v0.161), the checks its `Validate` makes, and Tern's
//! one extension, `max_held_bytes`. Keys Tern cannot honour (`ottl_condition`
//! until Tern has OTTL) are accepted by the parser and reported by
//! [`TailSamplingConfig::problems`] at their line.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Check, ComponentConfig};
use crate::ConfigError;
use crate::types::GoDuration;

/// `processors.tail_sampling`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailSamplingConfig {
    /// Time from a trace's first span to its decision (default 30s).
    pub decision_wait: GoDuration,
    /// Traces held at once; the oldest is dropped undecided past it (default 50000).
    pub num_traces: u64,
    /// Expected new traces per second: sizes the trace table up front (default 0).
    pub expected_new_traces_per_sec: u64,
    /// Sizes of the caches of decided trace ids (late spans).
    pub decision_cache: DecisionCacheConfig,
    /// The policies, evaluated in order.
    pub policies: Vec<PolicyConfig>,
    /// Tern extension: encoded bytes of held requests past which the oldest
    /// traces are decided early (default 256 MiB; 0 means no byte bound).
    pub max_held_bytes: u64,
    /// Drop the traces still held at shutdown instead of deciding them
    /// (default false).
    pub drop_pending_traces_on_shutdown: bool,
    /// Not supported yet (`true` is an error).
    pub sample_on_first_match: bool,
    /// Not supported yet (a non-zero value is an error).
    pub decision_wait_after_root_received: GoDuration,
    /// Not supported yet (a non-zero value is an error).
    pub maximum_trace_size_bytes: u64,
    /// Not supported yet (`true` is an error).
    pub block_on_overflow: bool,
    /// Not supported (a storage extension for held traces; an error).
    pub tail_storage: Option<IgnoredAny>,
}

impl Default for TailSamplingConfig {
    fn default() -> Self {
        TailSamplingConfig {
            decision_wait: GoDuration(std::time::Duration::from_secs(30)),
            num_traces: 50_000,
            expected_new_traces_per_sec: 0,
            decision_cache: DecisionCacheConfig::default(),
            policies: Vec::new(),
            max_held_bytes: 256 << 20,
            drop_pending_traces_on_shutdown: false,
            sample_on_first_match: false,
            decision_wait_after_root_received: GoDuration(std::time::Duration::ZERO),
            maximum_trace_size_bytes: 0,
            block_on_overflow: false,
            tail_storage: None,
        }
    }
}

/// `decision_cache`: how many decided trace ids are remembered (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionCacheConfig {
    /// Ids of sampled traces remembered.
    pub sampled_cache_size: usize,
    /// Ids of traces not sampled remembered.
    pub non_sampled_cache_size: usize,
}

/// One policy (top level, or a sub-policy of `and`, `composite`, `drop`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Its name in metrics and logs (required, unique at the top level).
    pub name: String,
    /// Its type (`always_sample`, `latency`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// `latency` settings.
    pub latency: LatencyConfig,
    /// `numeric_attribute` settings.
    pub numeric_attribute: NumericAttributeConfig,
    /// `probabilistic` settings.
    pub probabilistic: ProbabilisticConfig,
    /// `status_code` settings.
    pub status_code: StatusCodeConfig,
    /// `string_attribute` settings.
    pub string_attribute: StringAttributeConfig,
    /// `rate_limiting` settings.
    pub rate_limiting: RateLimitingConfig,
    /// `bytes_limiting` settings.
    pub bytes_limiting: BytesLimitingConfig,
    /// `span_count` settings.
    pub span_count: SpanCountConfig,
    /// `boolean_attribute` settings.
    pub boolean_attribute: BooleanAttributeConfig,
    /// `trace_state` settings.
    pub trace_state: TraceStateConfig,
    /// `ottl_condition`: needs OTTL, which Tern does not have yet (an error).
    pub ottl_condition: Option<IgnoredAny>,
    /// `and` settings.
    pub and: AndConfig,
    /// `composite` settings.
    pub composite: CompositeConfig,
    /// `drop` settings.
    pub drop: DropConfig,
}

/// `latency`: the trace's duration (first start to last end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// Lowest duration sampled, in milliseconds.
    pub threshold_ms: i64,
    /// Highest duration sampled, in milliseconds (0: no upper bound).
    pub upper_threshold_ms: i64,
}

/// `numeric_attribute`: an integer attribute within `[min_value, max_value]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NumericAttributeConfig {
    /// Attribute key (resource or span).
    pub key: String,
    /// Lowest value matched (unset: no lower bound).
    pub min_value: Option<i64>,
    /// Highest value matched (unset: no upper bound).
    pub max_value: Option<i64>,
    /// Sample traces that do not match instead.
    pub invert_match: bool,
}

/// `probabilistic`: a share of traces by a salted hash of their id.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticConfig {
    /// Salt of the hash (default `default-hash-seed`, as the Collector's).
    pub hash_salt: String,
    /// Percentage of traces sampled (default 0).
    pub sampling_percentage: f64,
}

/// `status_code`: a span with one of these status codes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusCodeConfig {
    /// `OK`, `ERROR` or `UNSET`.
    pub status_codes: Vec<String>,
}

/// `string_attribute`: a string attribute equal to (or matching) a value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StringAttributeConfig {
    /// Attribute key (resource or span).
    pub key: String,
    /// Values, or regular expressions with `enabled_regex_matching`.
    pub values: Vec<String>,
    /// Treat `values` as regular expressions.
    pub enabled_regex_matching: bool,
    /// Regex match results remembered (default 0: the Collector's 128).
    pub cache_max_size: usize,
    /// Sample traces that do not match instead.
    pub invert_match: bool,
}

/// `rate_limiting`: a token bucket over traces' span counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitingConfig {
    /// Spans per second refilled.
    pub spans_per_second: i64,
    /// Bucket size in spans (default 0: twice `spans_per_second`).
    pub burst_capacity: i64,
}

/// `bytes_limiting`: a token bucket over traces' encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BytesLimitingConfig {
    /// Bytes per second refilled.
    pub bytes_per_second: i64,
    /// Bucket size (default 0: twice `bytes_per_second`).
    pub burst_capacity: i64,
}

/// `span_count`: traces with a span count within bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanCountConfig {
    /// Fewest spans.
    pub min_spans: i32,
    /// Most spans (0: no upper bound).
    pub max_spans: i32,
}

/// `boolean_attribute`: a boolean attribute equal to `value`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BooleanAttributeConfig {
    /// Attribute key (resource or span).
    pub key: String,
    /// Value matched.
    pub value: bool,
    /// Sample traces that do not match instead.
    pub invert_match: bool,
}

/// `trace_state`: a W3C `tracestate` entry `key=value`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceStateConfig {
    /// The entry's key.
    pub key: String,
    /// Values matched.
    pub values: Vec<String>,
}

/// `and`: every sub-policy samples.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AndConfig {
    /// The sub-policies.
    pub and_sub_policy: Vec<PolicyConfig>,
}

/// `drop`: every sub-policy samples, and then the trace is dropped whatever
/// other policies say.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DropConfig {
    /// The sub-policies.
    pub drop_sub_policy: Vec<PolicyConfig>,
}

/// `composite`: the first sub-policy (in `composite_sub_policy` order, as
/// the Collector v0.161) that samples and still has span budget this second.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompositeConfig {
    /// Spans per second across the sub-policies.
    pub max_total_spans_per_second: i64,
    /// Sub-policy names; read but not used for the order (as the Collector
    /// v0.161).
    pub policy_order: Vec<String>,
    /// The sub-policies.
    pub composite_sub_policy: Vec<PolicyConfig>,
    /// Shares of `max_total_spans_per_second` per sub-policy.
    pub rate_allocation: Vec<RateAllocationConfig>,
}

/// One `rate_allocation` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateAllocationConfig {
    /// Sub-policy name.
    pub policy: String,
    /// Percent of the total (0 or unset: an equal share).
    pub percent: i64,
}

/// Policy types a policy (`top`) or a sub-policy may have.
const LEAF_TYPES: &[&str] = &[
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "rate_limiting",
    "bytes_limiting",
    "span_count",
    "boolean_attribute",
    "trace_state",
    "ottl_condition",
];

/// A problem: the key path under the processor, and what is wrong.
pub type Problem = (Vec<String>, String);

impl TailSamplingConfig {
    /// The Collector's checks and Tern's limits: `(key path, problem)`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.num_traces == 0 {
            out.push((vec!["num_traces".into()], "must be greater than 0".into()));
        }
        if self.decision_wait.0.is_zero() {
            out.push((
                vec!["decision_wait".into()],
                "must be greater than 0".into(),
            ));
        }
        let unsupported = [
            ("sample_on_first_match", self.sample_on_first_match),
            (
                "decision_wait_after_root_received",
                !self.decision_wait_after_root_received.0.is_zero(),
            ),
            (
                "maximum_trace_size_bytes",
                self.maximum_trace_size_bytes != 0,
            ),
            ("block_on_overflow", self.block_on_overflow),
            ("tail_storage", self.tail_storage.is_some()),
        ];
        for (key, set) in unsupported {
            if set {
                out.push((
                    vec![key.into()],
                    format!("{key} is not supported by Tern yet; remove it"),
                ));
            }
        }
        if self.policies.is_empty() {
            out.push((vec!["policies".into()], "no policies configured".into()));
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            let path = vec!["policies".to_owned(), i.to_string()];
            if !p.name.is_empty() && !names.insert(p.name.as_str()) {
                out.push((
                    with(&path, "name"),
                    format!("duplicate policy name {:?}", p.name),
                ));
            }
            p.problems(&path, true, &mut out);
        }
        out
    }
}

fn with(path: &[String], key: &str) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(key.to_owned());
    p
}

impl PolicyConfig {
    fn problems(&self, path: &[String], top: bool, out: &mut Vec<Problem>) {
        if self.name.is_empty() {
            out.push((with(path, "name"), "a policy needs a name".into()));
        }
        let kind = self.kind.as_str();
        let nested = matches!(kind, "and" | "composite" | "drop");
        if !LEAF_TYPES.contains(&kind) && !nested {
            out.push((with(path, "type"), format!("unknown policy type {kind:?}")));
            return;
        }
        if nested && !top {
            out.push((
                with(path, "type"),
                format!("a {kind} policy cannot be a sub-policy"),
            ));
            return;
        }
        match kind {
            "ottl_condition" => out.push((
                with(
                    path,
                    if self.ottl_condition.is_some() {
                        "ottl_condition"
                    } else {
                        "type"
                    },
                ),
                "ottl_condition is not supported: Tern has no OTTL yet".into(),
            )),
            "latency" => {
                let l = self.latency;
                if l.upper_threshold_ms != 0 && l.upper_threshold_ms < l.threshold_ms {
                    out.push((
                        with(path, "latency"),
                        "upper_threshold_ms must be greater than or equal to threshold_ms".into(),
                    ));
                }
            }
            "numeric_attribute" => {
                let n = &self.numeric_attribute;
                if n.min_value.is_none() && n.max_value.is_none() {
                    out.push((
                        with(path, "numeric_attribute"),
                        "min_value or max_value must be set".into(),
                    ));
                }
                if let (Some(min), Some(max)) = (n.min_value, n.max_value)
                    && max < min
                {
                    out.push((
                        with(path, "numeric_attribute"),
                        "max_value must be greater than or equal to min_value".into(),
                    ));
                }
            }
            "string_attribute" if self.string_attribute.enabled_regex_matching => {
                for v in &self.string_attribute.values {
                    if let Err(e) = regex::Regex::new(v) {
                        out.push((
                            with(path, "string_attribute"),
                            format!("invalid regular expression {v:?}: {e}"),
                        ));
                    }
                }
            }
            "status_code" => {
                let codes = &self.status_code.status_codes;
                if codes.is_empty() {
                    out.push((
                        with(path, "status_code"),
                        "status_codes must not be empty".into(),
                    ));
                }
                for c in codes {
                    if !matches!(c.as_str(), "OK" | "ERROR" | "UNSET") {
                        out.push((
                            with(path, "status_code"),
                            format!("unknown status code {c:?} (OK, ERROR or UNSET)"),
                        ));
                    }
                }
            }
            "rate_limiting" if self.rate_limiting.spans_per_second <= 0 => out.push((
                with(path, "rate_limiting"),
                "spans_per_second must be greater than 0".into(),
            )),
            "bytes_limiting" if self.bytes_limiting.bytes_per_second <= 0 => out.push((
                with(path, "bytes_limiting"),
                "bytes_per_second must be greater than 0".into(),
            )),
            "span_count" => {
                let s = self.span_count;
                if s.max_spans != 0 && s.max_spans < s.min_spans {
                    out.push((
                        with(path, "span_count"),
                        "max_spans must be 0 or at least min_spans".into(),
                    ));
                }
            }
            "trace_state" if self.trace_state.key.is_empty() => {
                out.push((with(path, "trace_state"), "key must be set".into()))
            }
            "and" => sub_problems(&self.and.and_sub_policy, path, "and", "and_sub_policy", out),
            "drop" => sub_problems(
                &self.drop.drop_sub_policy,
                path,
                "drop",
                "drop_sub_policy",
                out,
            ),
            "composite" => {
                let c = &self.composite;
                sub_problems(
                    &c.composite_sub_policy,
                    path,
                    "composite",
                    "composite_sub_policy",
                    out,
                );
                for name in &c.policy_order {
                    if !c.composite_sub_policy.iter().any(|s| &s.name == name) {
                        out.push((
                            with(path, "composite"),
                            format!(
                                "policy_order names {name:?}, which is not a composite_sub_policy"
                            ),
                        ));
                    }
                }
                let total: i64 = c.rate_allocation.iter().map(|r| r.percent).sum();
                if total > 100 {
                    out.push((
                        with(path, "composite"),
                        "rate_allocation percents add up to more than 100".into(),
                    ));
                }
            }
            _ => {}
        }
    }
}

fn sub_problems(
    subs: &[PolicyConfig],
    path: &[String],
    kind: &str,
    key: &str,
    out: &mut Vec<Problem>,
) {
    let here = with(&with(path, kind), key);
    if subs.is_empty() {
        out.push((here.clone(), "needs at least one sub-policy".into()));
    }
    for (i, s) in subs.iter().enumerate() {
        s.problems(&with(&here, &i.to_string()), false, out);
    }
}

impl ComponentConfig for TailSamplingConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        for (path, problem) in self.problems() {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            // Sequence indices as the parser writes them: `policies[1].name`.
            let mut key = c.key(&[]);
            for p in &path {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    key.push_str(&format!("[{p}]"));
                } else {
                    key.push('.');
                    key.push_str(p);
                }
            }
            errors.push(c.at(c.node.locate(&path), key, problem));
        }
    }
}
