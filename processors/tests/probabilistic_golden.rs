//! Replays what the OpenTelemetry Collector's `probabilistic_sampler`
//! (contrib v0.161.0, run by `tests/sampler-golden`) decided for 12 800
//! generated spans and log records under 16 configurations: Tern's
//! decision, `tracestate` and sampling attributes must be the same for
//! every item.

use std::io::BufRead;

use serde::Deserialize;
use tern_config::{AttributeSource, ProbabilisticSamplerConfig, SamplerMode};
use tern_processors::probabilistic_sampler::decide::{
    LogEdit, LogInput, Priority, PriorityValue, Sampler, SpanInput,
};

#[derive(Deserialize)]
struct GoSettings {
    sampling_percentage: f32,
    hash_seed: u32,
    mode: String,
    fail_closed: bool,
    sampling_precision: u32,
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

fn settings(go: &GoSettings) -> ProbabilisticSamplerConfig {
    ProbabilisticSamplerConfig {
        sampling_percentage: go.sampling_percentage,
        hash_seed: go.hash_seed,
        mode: match go.mode.as_str() {
            "" => None,
            "hash_seed" => Some(SamplerMode::HashSeed),
            "proportional" => Some(SamplerMode::Proportional),
            "equalizing" => Some(SamplerMode::Equalizing),
            other => panic!("mode {other}"),
        },
        fail_closed: go.fail_closed,
        sampling_precision: go.sampling_precision,
        attribute_source: if go.attribute_source == "record" {
            AttributeSource::Record
        } else {
            AttributeSource::TraceId
        },
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
    if edit.remove_threshold
        && let Some(i) = attrs.iter().position(|a| a.key == "sampling.threshold")
    {
        attrs.swap_remove(i);
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
    let mut current: Option<(Sampler, ProbabilisticSamplerConfig)> = None;
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
            let outcome = sampler.span(&SpanInput {
                trace_id: &trace_id,
                trace_state: &item.trace_state,
                priority,
            });
            let ours = (
                outcome.sampled,
                outcome.sampled.then(|| {
                    outcome
                        .edit
                        .clone()
                        .unwrap_or_else(|| item.trace_state.clone())
                }),
            );
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
                .then(|| {
                    item.attributes
                        .iter()
                        .find(|a| a.key == settings.from_attribute)
                })
                .flatten()
                .map(source_bytes);
            let priority = (!settings.sampling_priority.is_empty())
                .then(|| {
                    item.attributes
                        .iter()
                        .find(|a| a.key == settings.sampling_priority)
                })
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

/// The golden items grouped as the generator sent them: per configuration,
/// one request of spans and one of log records.
struct Group {
    config: ProbabilisticSamplerConfig,
    spans: Vec<Item>,
    logs: Vec<Item>,
}

fn groups() -> Vec<Group> {
    let file = std::fs::File::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/probabilistic_sampler_golden.jsonl.gz"
    ))
    .expect("golden file");
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    let mut groups: Vec<Group> = Vec::new();
    for line in reader.lines() {
        match serde_json::from_str::<Line>(&line.expect("line")).expect("json") {
            Line::Config { settings: go } => groups.push(Group {
                config: settings(&go),
                spans: Vec::new(),
                logs: Vec::new(),
            }),
            Line::Item(item) => {
                let group = groups.last_mut().expect("config first");
                if item.signal == "traces" {
                    group.spans.push(item);
                } else {
                    group.logs.push(item);
                }
            }
        }
    }
    groups
}

mod wire {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

    use super::{Attr, hex};

    pub fn key_values(attrs: &[Attr]) -> Vec<KeyValue> {
        attrs
            .iter()
            .map(|a| {
                let value = match a.kind.as_str() {
                    "int" => any_value::Value::IntValue(a.value.parse().expect("int")),
                    "double" => any_value::Value::DoubleValue(a.value.parse().expect("double")),
                    "bool" => any_value::Value::BoolValue(a.value == "true"),
                    "bytes" => any_value::Value::BytesValue(hex(&a.value)),
                    _ => any_value::Value::StringValue(a.value.clone()),
                };
                KeyValue {
                    key: a.key.clone(),
                    value: Some(AnyValue { value: Some(value) }),
                    ..Default::default()
                }
            })
            .collect()
    }

    pub fn attrs(kvs: &[KeyValue]) -> Vec<Attr> {
        let mut out: Vec<Attr> = kvs
            .iter()
            .map(|kv| {
                let (kind, value) = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::IntValue(i)) => ("int", i.to_string()),
                    Some(any_value::Value::DoubleValue(d)) => ("double", d.to_string()),
                    Some(any_value::Value::BoolValue(b)) => ("bool", b.to_string()),
                    Some(any_value::Value::BytesValue(b)) => {
                        ("bytes", b.iter().map(|x| format!("{x:02x}")).collect())
                    }
                    Some(any_value::Value::StringValue(s)) => ("str", s.clone()),
                    other => panic!("unexpected value {other:?}"),
                };
                Attr {
                    key: kv.key.clone(),
                    kind: kind.to_owned(),
                    value,
                }
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[test]
fn the_wire_path_keeps_and_rewrites_what_the_collector_does() {
    use std::sync::Arc;

    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    use tern_config::Signal;
    use tern_core::pdata::{Batch, RequestContext};
    use tern_core::telemetry::Telemetry;
    use tern_processors::probabilistic_sampler::ProbabilisticSampler;

    let telemetry = Telemetry::new();
    let groups = groups();
    assert_eq!(groups.len(), 16);
    for (n, group) in groups.iter().enumerate() {
        // Spans: one request, as the Collector got them.
        let spans = group
            .spans
            .iter()
            .enumerate()
            .map(|(i, item)| Span {
                name: i.to_string(),
                trace_id: hex(&item.trace_id),
                span_id: vec![1, 2, 3, 4, 5, 6, 7, i as u8],
                trace_state: item.trace_state.clone(),
                attributes: wire::key_values(&item.attributes),
                ..Default::default()
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let id = format!("probabilistic_sampler/{n}");
        let sampler = ProbabilisticSampler::new(&id, &group.config, Signal::Traces, &telemetry);
        let batch = Batch::from_wire(
            Signal::Traces,
            request.encode_to_vec().into(),
            Arc::new(RequestContext::default()),
        )
        .expect("valid request");
        let kept = sampler.sample(batch);
        let out = ExportTraceServiceRequest::decode(kept.to_wire()).expect("valid output");
        let mut ours = vec![None; group.spans.len()];
        for span in out
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            ours[span.name.parse::<usize>().expect("index")] = Some(span.trace_state.clone());
        }
        let theirs: Vec<_> = group
            .spans
            .iter()
            .map(|i| i.out_trace_state.clone())
            .collect();
        assert_eq!(ours, theirs, "spans of configuration {n}");
        assert_eq!(kept.items(), theirs.iter().flatten().count());

        // Log records likewise.
        let records = group
            .logs
            .iter()
            .enumerate()
            .map(|(i, item)| LogRecord {
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(i.to_string())),
                }),
                trace_id: hex(&item.trace_id),
                attributes: wire::key_values(&item.attributes),
                ..Default::default()
            })
            .collect();
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let sampler = ProbabilisticSampler::new(&id, &group.config, Signal::Logs, &telemetry);
        let batch = Batch::from_wire(
            Signal::Logs,
            request.encode_to_vec().into(),
            Arc::new(RequestContext::default()),
        )
        .expect("valid request");
        let out = ExportLogsServiceRequest::decode(sampler.sample(batch).to_wire())
            .expect("valid output");
        let mut ours = vec![None; group.logs.len()];
        for record in out
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
        {
            let Some(any_value::Value::StringValue(index)) =
                record.body.as_ref().and_then(|b| b.value.as_ref())
            else {
                panic!("body");
            };
            ours[index.parse::<usize>().expect("index")] = Some(wire::attrs(&record.attributes));
        }
        let theirs: Vec<_> = group
            .logs
            .iter()
            .map(|i| {
                i.out_attributes.clone().map(|mut a| {
                    a.sort_by(|x, y| x.key.cmp(&y.key));
                    a
                })
            })
            .collect();
        assert_eq!(ours, theirs, "log records of configuration {n}");
    }
    let text = telemetry.render();
    assert!(
        text.contains("otelcol_processor_probabilistic_sampler_count_traces_sampled_total{processor=\"probabilistic_sampler/0\",policy=\"trace_id_hash\",sampled=\"true\"}"),
        "{text}"
    );
}
