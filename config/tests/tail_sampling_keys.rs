//! `processors.tail_sampling`: the Collector's keys and defaults, Tern's
//! `max_held_bytes`, and the errors `tern validate` reports at their line.

#![allow(clippy::unwrap_used)]

#[path = "common/one_file.rs"]
mod one_file;
use one_file::{errors, load};

use std::time::Duration;

use tern_config::{ComponentId, TailSamplingConfig};

/// A config with `processor` (YAML under `processors.tail_sampling:`,
/// indented by four) in a pipeline of `signal`.
fn with(processor: &str, signal: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nprocessors:\n  tail_sampling:\n{processor}exporters:\n  debug:\nservice:\n  pipelines:\n    {signal}:\n      receivers: [otlp]\n      processors: [tail_sampling]\n      exporters: [debug]\n"
    )
}

fn has(errs: &[String], needle: &str) {
    assert!(
        errs.iter().any(|e| e.contains(needle)),
        "missing {needle:?} in {errs:#?}"
    );
}

const ERRORS: &str = "    policies:\n      - name: errors\n        type: status_code\n        status_code: {status_codes: [ERROR]}\n";

#[test]
fn defaults_are_the_collectors() {
    let config = load(&with(ERRORS, "traces")).unwrap();
    let Some(t) =
        config.processors[&ComponentId::new("tail_sampling")].settings::<TailSamplingConfig>()
    else {
        panic!("not tail_sampling");
    };
    assert_eq!(t.decision_wait.0, Duration::from_secs(30));
    assert_eq!(t.num_traces, 50_000);
    assert_eq!(t.expected_new_traces_per_sec, 0);
    assert_eq!(t.decision_cache.sampled_cache_size, 0);
    assert_eq!(
        t.max_held_bytes,
        TailSamplingConfig::default().max_held_bytes
    );
    assert_eq!(t.policies[0].status_code.status_codes, ["ERROR"]);
}

#[test]
fn every_key_is_read() {
    let text = with(
        "    decision_wait: 5s\n    num_traces: 10\n    expected_new_traces_per_sec: 100\n    max_held_bytes: 1000000\n    decision_cache: {sampled_cache_size: 7, non_sampled_cache_size: 8}\n    policies:\n      - {name: a, type: always_sample}\n      - {name: l, type: latency, latency: {threshold_ms: 5, upper_threshold_ms: 9}}\n      - {name: n, type: numeric_attribute, numeric_attribute: {key: k, min_value: 1, max_value: 2, invert_match: true}}\n      - {name: p, type: probabilistic, probabilistic: {hash_salt: s, sampling_percentage: 10}}\n      - {name: s, type: string_attribute, string_attribute: {key: k, values: [a.*], enabled_regex_matching: true, cache_max_size: 9, invert_match: true}}\n      - {name: b, type: boolean_attribute, boolean_attribute: {key: k, value: true, invert_match: true}}\n      - {name: r, type: rate_limiting, rate_limiting: {spans_per_second: 3, burst_capacity: 4}}\n      - {name: y, type: bytes_limiting, bytes_limiting: {bytes_per_second: 3, burst_capacity: 9}}\n      - {name: c, type: span_count, span_count: {min_spans: 2, max_spans: 3}}\n      - {name: t, type: trace_state, trace_state: {key: k, values: [v]}}\n      - {name: and, type: and, and: {and_sub_policy: [{name: x, type: always_sample}]}}\n      - {name: d, type: drop, drop: {drop_sub_policy: [{name: x, type: always_sample}]}}\n      - {name: co, type: composite, composite: {max_total_spans_per_second: 10, policy_order: [x], composite_sub_policy: [{name: x, type: always_sample}], rate_allocation: [{policy: x, percent: 50}]}}\n",
        "traces",
    );
    let config = load(&text).unwrap();
    let Some(t) =
        config.processors[&ComponentId::new("tail_sampling")].settings::<TailSamplingConfig>()
    else {
        panic!("not tail_sampling");
    };
    assert_eq!(t.decision_wait.0, Duration::from_secs(5));
    assert_eq!((t.num_traces, t.expected_new_traces_per_sec), (10, 100));
    assert_eq!(t.max_held_bytes, 1_000_000);
    assert_eq!(t.decision_cache.non_sampled_cache_size, 8);
    assert_eq!(t.policies.len(), 13);
    assert_eq!(t.policies[1].latency.upper_threshold_ms, 9);
    assert_eq!(t.policies[2].numeric_attribute.max_value, Some(2));
    assert!(t.policies[4].string_attribute.invert_match);
    assert_eq!(t.policies[12].composite.rate_allocation[0].percent, 50);
    assert_eq!(t.policies[6].rate_limiting.burst_capacity, 4);
}

#[test]
fn refusals_name_the_key_and_line() {
    let errs = errors(&with(
        "    policies:\n      - name: o\n        type: ottl_condition\n        ottl_condition:\n          span: ['true']\n",
        "traces",
    ));
    has(
        &errs,
        "tern.yaml:10:9: processors.tail_sampling.policies[0].ottl_condition: ottl_condition is not supported",
    );
    let errs = errors(&with(
        "    policies:\n      - {name: a, type: and, and: {and_sub_policy: [{name: c, type: composite}]}}\n      - {name: a, type: nope}\n      - {name: r, type: string_attribute, string_attribute: {key: k, values: ['('], enabled_regex_matching: true}}\n",
        "traces",
    ));
    has(
        &errs,
        "policies[0].and.and_sub_policy[0].type: a composite policy cannot be a sub-policy",
    );
    has(&errs, "policies[1].name: duplicate policy name");
    has(&errs, "policies[1].type: unknown policy type \"nope\"");
    has(
        &errs,
        "policies[2].string_attribute: invalid regular expression",
    );
    has(
        &errors(&with("    bogus: 1\n", "traces")),
        "unknown field `bogus`",
    );
    let errs = errors(&with(
        &format!(
            "    sample_on_first_match: true\n    maximum_trace_size_bytes: 10\n    tail_storage: file_storage\n{ERRORS}"
        ),
        "traces",
    ));
    has(
        &errs,
        "tern.yaml:7:28: processors.tail_sampling.sample_on_first_match: sample_on_first_match is not supported by Tern yet",
    );
    has(
        &errs,
        "processors.tail_sampling.maximum_trace_size_bytes: maximum_trace_size_bytes is not supported",
    );
    has(
        &errs,
        "processors.tail_sampling.tail_storage: tail_storage is not supported",
    );
    assert!(load(&with(&format!("    drop_pending_traces_on_shutdown: true\n    sample_on_first_match: false\n{ERRORS}"), "traces")).is_ok());
    has(
        &errors(&with(ERRORS, "metrics")),
        "does not support metrics",
    );
    has(
        &errors(&with("    num_traces: 0\n", "traces")),
        "policies: no policies configured",
    );
}
