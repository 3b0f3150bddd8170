//! Replays what the OpenTelemetry Collector's `probabilistic_sampler`
//! (contrib v0.161.0, run by `tests/sampler-golden`) decided for 12 800
//! generated spans and log records under 16 configurations: Tern's
//! decision, `tracestate` and sampling attributes must be the same for
//! every item.

use std::io::BufRead;

use serde::Deserialize;
use tern_processors::probabilistic_sampler::decide::{
    LogEdit, LogInput, Mode, Priority, PriorityValue, Sampler, Settings,
};

#[derive(Deserialize)]
struct GoSettings {
    sampling_percentage: f32,
    hash_seed: u32,
    mode: String,
    fail_closed: bool,
    sampling_precision: usize,
    attribute_source: String,
    from_attribute: String,
    sampling_priority: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
struct Attr {
    key: String,
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct Item {
    signal: String,
    trace_id: String,
    #[serde(default)]
    trace_state: String,
    attributes: Vec<Attr>,
    kept: bool,
    out_trace_state: Option<String>,
    out_attributes: Option<Vec<Attr>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Config { settings: GoSettings },
    Item(Item),
}

fn settings(go: &GoSettings) -> Settings {
    Settings {
        percentage: go.sampling_percentage,
        hash_seed: go.hash_seed,
        mode: match go.mode.as_str() {
            "" => None,
            "hash_seed" => Some(Mode::HashSeed),
            "proportional" => Some(Mode::Proportional),
            "equalizing" => Some(Mode::Equalizing),
            other => panic!("mode {other}"),
        },
        fail_closed: go.fail_closed,
        precision: go.sampling_precision,
        logs_from_trace_id: go.attribute_source != "record",
        from_attribute: go.from_attribute.clone(),
        sampling_priority: go.sampling_priority.clone(),
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn value(a: &Attr) -> PriorityValue<'_> {
    match a.kind.as_str() {
        "int" => PriorityValue::Int(a.value.parse().expect("int")),
        "double" => PriorityValue::Double(a.value.parse().expect("double")),
        "str" => PriorityValue::Str(&a.value),
        _ => PriorityValue::Other,
    }
}

/// The bytes the Collector hashes for a `from_attribute` value.
fn source_bytes(a: &Attr) -> Vec<u8> {
    match a.kind.as_str() {
        "bytes" => hex(&a.value),
        _ => a.value.clone().into_bytes(),
    }
}

fn string_attr<'a>(attrs: &'a [Attr], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .filter(|a| a.kind == "str" && !a.value.is_empty())
        .map(|a| a.value.as_str())
}

/// Applies a log edit as pcommon's `PutStr` and `Remove` would (remove
/// swaps the last attribute into the removed one's place).
fn apply(mut attrs: Vec<Attr>, edit: &LogEdit) -> Vec<Attr> {
    if edit.remove_threshold {
        if let Some(i) = attrs.iter().position(|a| a.key == "sampling.threshold") {
            attrs.swap_remove(i);
        }
    }
    let mut put = |key: &str, value: &Option<String>| {
        if let Some(v) = value {
            let new = Attr {
                key: key.to_owned(),
                kind: "str".to_owned(),
                value: v.clone(),
            };
            match attrs.iter_mut().find(|a| a.key == key) {
                Some(a) => *a = new,
                None => attrs.push(new),
            }
        }
    };
    put("sampling.randomness", &edit.randomness);
    put("sampling.threshold", &edit.threshold);
    attrs
}

#[test]
fn decisions_match_the_collector_item_for_item() {
    let file = std::fs::File::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/probabilistic_sampler_golden.jsonl.gz"
    ))
    .expect("golden file");
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    let mut current: Option<(Sampler, Settings)> = None;
    let (mut spans, mut logs, mut kept) = (0, 0, 0);
    let mut mismatches = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.expect("line");
        let item = match serde_json::from_str::<Line>(&line).expect("json") {
            Line::Config { settings: go } => {
                let s = settings(&go);
                current = Some((Sampler::new(&s), s));
                continue;
            }
            Line::Item(item) => item,
        };
        let (sampler, settings) = current.as_ref().expect("config first");
        let trace_id = hex(&item.trace_id);
        kept += usize::from(item.kept);
        if item.signal == "traces" {
            spans += 1;
            let priority = Priority::of_span(
                item.attributes
                    .iter()
                    .find(|a| a.key == "sampling.priority")
                    .map(value),
            );
            let outcome = sampler.span(&tern_processors::probabilistic_sampler::decide::SpanInput {
                trace_id: &trace_id,
                trace_state: &item.trace_state,
                priority,
            });
            let ours = (outcome.sampled, outcome.sampled.then(|| {
                outcome.edit.clone().unwrap_or_else(|| item.trace_state.clone())
            }));
            if ours != (item.kept, item.out_trace_state.clone()) {
                mismatches.push(format!(
                    "line {}: span {} {:?}: Collector {:?}, Tern {:?} ({:?})",
                    n + 1,
                    item.trace_id,
                    item.trace_state,
                    (item.kept, &item.out_trace_state),
                    ours,
                    outcome.error
                ));
            }
        } else {
            logs += 1;
            let source = (!settings.from_attribute.is_empty())
                .then(|| item.attributes.iter().find(|a| a.key == settings.from_attribute))
                .flatten()
                .map(source_bytes);
            let priority = (!settings.sampling_priority.is_empty())
                .then(|| item.attributes.iter().find(|a| a.key == settings.sampling_priority))
                .flatten()
                .map(value);
            let outcome = sampler.log(&LogInput {
                trace_id: &trace_id,
                threshold: string_attr(&item.attributes, "sampling.threshold"),
                randomness: string_attr(&item.attributes, "sampling.randomness"),
                source: source.as_deref(),
                priority,
            });
            let ours = (
                outcome.sampled,
                outcome
                    .sampled
                    .then(|| apply(item.attributes.clone(), &outcome.edit)),
            );
            if ours != (item.kept, item.out_attributes.clone()) {
                mismatches.push(format!(
                    "line {}: log {} {:?}: Collector {:?}, Tern {:?} ({:?})",
                    n + 1,
                    item.trace_id,
                    item.attributes,
                    (item.kept, &item.out_attributes),
                    ours,
                    outcome.error
                ));
            }
        }
    }
    assert_eq!((spans, logs), (6400, 6400), "the whole file was read");
    assert!(kept > 1000, "the file keeps and drops items");
    assert!(
        mismatches.is_empty(),
        "{} of {} items differ:\n{}",
        mismatches.len(),
        spans + logs,
        mismatches[..mismatches.len().min(20)].join("\n")
    );
}
