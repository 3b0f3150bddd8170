//! The checks behind the sampling fuzz targets (`fuzz/`), replayed over
//! their committed corpora by `tests/fuzz_corpus.rs`. Whatever a receiver
//! accepts goes through the samplers' views without a panic, and what they
//! let through is valid OTLP made of the spans that came in:
//! - [`probabilistic_sampler`]: one request of spans or log records
//!   sampled under settings taken from the input (every mode, attribute
//!   source, precision and percentage that validation lets through);
//! - [`tail_sampling`]: two requests of spans held under one of a few
//!   policy sets, then every trace decided; nothing stays held.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tern_config::{
    AttributeSource, ProbabilisticSamplerConfig, SamplerMode, Signal, TailSamplingConfig,
};
use tern_core::pdata::Batch;
use tern_core::telemetry::Telemetry;
use tern_core::view::{RequestView, Traces};
use tern_core::wire::count_items;
use tern_processors::probabilistic_sampler::ProbabilisticSampler;
use tern_processors::tail_sampling::TailSampling;

/// The (trace id, span id) of every span of a valid traces request,
/// sorted.
fn span_ids(request: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut ids = Vec::new();
    for r in RequestView::<Traces>::new(request).resources() {
        for s in r.expect("valid").scopes() {
            for span in s.expect("valid").items() {
                let span = span.expect("valid");
                ids.push((span.trace_id.to_vec(), span.span_id.to_vec()));
            }
        }
    }
    ids.sort();
    ids
}

/// Whether every element of sorted `part` is in sorted `whole`, as often.
fn sub_multiset<T: Ord>(part: &[T], whole: &[T]) -> bool {
    let mut rest = whole.iter();
    part.iter().all(|x| rest.any(|y| y == x))
}

/// Bytes 0-7 are the settings (flags, percentage as an f32, seed,
/// precision), the rest is a traces or logs request.
pub fn probabilistic_sampler(input: &[u8]) {
    let [flags, p0, p1, p2, p3, seed, precision, _, request @ ..] = input else {
        return;
    };
    let signal = if flags & 1 == 0 {
        Signal::Traces
    } else {
        Signal::Logs
    };
    let config = ProbabilisticSamplerConfig {
        sampling_percentage: f32::from_le_bytes([*p0, *p1, *p2, *p3]),
        hash_seed: u32::from(*seed),
        mode: [
            None,
            Some(SamplerMode::HashSeed),
            Some(SamplerMode::Proportional),
            Some(SamplerMode::Equalizing),
        ][usize::from(flags >> 1 & 3)],
        fail_closed: flags & 8 != 0,
        sampling_precision: u32::from(*precision % 16),
        attribute_source: if flags & 16 != 0 {
            AttributeSource::Record
        } else {
            AttributeSource::TraceId
        },
        from_attribute: if flags & 32 != 0 { "user.id" } else { "" }.into(),
        sampling_priority: if flags & 64 != 0 { "priority" } else { "" }.into(),
    };
    if !config.problems().is_empty() {
        return;
    }
    let Ok(batch) = Batch::from_wire(signal, Bytes::copy_from_slice(request), Arc::default())
    else {
        return;
    };
    let sampler = ProbabilisticSampler::new("fuzz", &config, signal, &Telemetry::new());
    let items = batch.items();
    let kept = sampler.sample(batch);
    assert!(kept.items() <= items, "more items out than in");
    let out = kept.to_wire();
    assert_eq!(
        count_items(signal, &out).ok(),
        Some(kept.items()),
        "the sampler wrote an invalid request"
    );
    if signal == Signal::Traces {
        assert!(
            sub_multiset(&span_ids(&out), &span_ids(request)),
            "the sampler let through spans that did not come in"
        );
    }
}

/// Policy sets for [`tail_sampling`], as the processor's YAML settings.
const POLICY_SETS: [&str; 3] = [
    "policies:
  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
  - {name: slow, type: latency, latency: {threshold_ms: 1}}
  - {name: some, type: probabilistic, probabilistic: {sampling_percentage: 30}}
  - {name: route, type: string_attribute, string_attribute: {key: http.route, values: [/a, '/b.*'], enabled_regex_matching: true}}",
    "policies:
  - name: both
    type: and
    and: {and_sub_policy: [{name: n, type: numeric_attribute, numeric_attribute: {key: retries, min_value: 1, max_value: 5}}, {name: c, type: span_count, span_count: {min_spans: 2}}]}
  - {name: flag, type: boolean_attribute, boolean_attribute: {key: ok, value: true}}
  - {name: state, type: trace_state, trace_state: {key: ot, values: ['th:8']}}
  - name: never
    type: drop
    drop: {drop_sub_policy: [{name: s, type: string_attribute, string_attribute: {key: service.name, values: [drop-me]}}]}",
    "max_held_bytes: 4096
policies:
  - name: mix
    type: composite
    composite:
      max_total_spans_per_second: 5
      policy_order: [a, b]
      composite_sub_policy: [{name: a, type: always_sample}, {name: b, type: rate_limiting, rate_limiting: {spans_per_second: 2}}]
      rate_allocation: [{policy: a, percent: 50}, {policy: b, percent: 50}]
  - {name: bytes, type: bytes_limiting, bytes_limiting: {bytes_per_second: 100, burst_capacity: 200}}",
];

fn policy_sets() -> &'static [TailSamplingConfig] {
    static SETS: OnceLock<Vec<TailSamplingConfig>> = OnceLock::new();
    SETS.get_or_init(|| {
        POLICY_SETS
            .iter()
            .map(|text| {
                let node = tern_config::yaml::parse("fuzz.yaml", text).expect("YAML");
                let config: TailSamplingConfig =
                    tern_config::de::from_node(&node, "processors.tail_sampling")
                        .expect("settings");
                assert_eq!(config.problems(), Vec::new(), "{text}");
                config
            })
            .collect()
    })
}

/// Byte 0 picks the policy set, bytes 1-2 where the rest is cut in two
/// traces requests.
pub fn tail_sampling(input: &[u8]) {
    let [set, low, high, data @ ..] = input else {
        return;
    };
    let config = &policy_sets()[usize::from(*set) % POLICY_SETS.len()];
    let cut = usize::from(u16::from_le_bytes([*low, *high])).min(data.len());
    let telemetry = Telemetry::new();
    let mut processor = TailSampling::new("fuzz", config, &telemetry);
    let now = tokio::time::Instant::now();
    let (mut came_in, mut went_out) = (Vec::new(), Vec::new());
    for request in [&data[..cut], &data[cut..]] {
        let Ok(batch) = Batch::from_wire(
            Signal::Traces,
            Bytes::copy_from_slice(request),
            Arc::default(),
        ) else {
            continue;
        };
        came_in.extend(span_ids(request));
        went_out.extend(processor.ingest(batch, now));
    }
    went_out.extend(processor.tick(now + Duration::from_secs(3600)));
    assert_eq!(
        processor.held_bytes(),
        0,
        "spans still held after every decision"
    );
    let mut out_ids = Vec::new();
    for request in &went_out {
        assert!(
            count_items(Signal::Traces, request).is_ok(),
            "the processor wrote an invalid request"
        );
        out_ids.extend(span_ids(request));
    }
    came_in.sort();
    out_ids.sort();
    assert!(
        sub_multiset(&out_ids, &came_in),
        "the processor let through spans that did not come in"
    );
}
