//! Criterion benchmarks of reading and editing an export request through
//! tern-core's views and editor, against prost decode (-> change -> encode),
//! on the realistic 512-span GenAI request the other benchmarks use.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use tern_bench::{Kind, encoded};
use tern_core::Signal;
use tern_core::view::{self, Change, Decision, Edit, RequestView, ResourceView, Traces, Value};
use tern_core::wire::{WireError, count_items};

/// Reads the name, kind and `gen_ai.operation.name` of every span.
fn read_views(request: &[u8]) -> Result<usize, WireError> {
    let mut n = 0;
    for resource in RequestView::<Traces>::new(request).resources() {
        for scope in resource?.scopes() {
            for span in scope?.items() {
                let span = span?;
                let op = span.attributes().get("gen_ai.operation.name")?;
                n += span.name.len() + span.kind as usize + usize::from(op.is_some());
            }
        }
    }
    Ok(n)
}

/// The same through prost.
fn read_prost(request: &[u8]) -> Result<usize, prost::DecodeError> {
    let decoded = ExportTraceServiceRequest::decode(request)?;
    let mut n = 0;
    for span in decoded
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        let op = span
            .attributes
            .iter()
            .find(|kv| kv.key == "gen_ai.operation.name");
        n += span.name.len() + span.kind as usize + usize::from(op.is_some());
    }
    Ok(n)
}

/// Drops every second span.
struct DropHalf(usize);

impl Edit<Traces> for DropHalf {
    fn item(&mut self, _: &view::Span<'_>, _: &mut Change) -> Result<Decision, WireError> {
        self.0 += 1;
        Ok(if self.0.is_multiple_of(2) {
            Decision::Drop
        } else {
            Decision::Keep
        })
    }
}

/// Upserts one resource attribute; scopes are copied as they are.
struct TagResource;

impl Edit<Traces> for TagResource {
    fn resource(
        &mut self,
        _: &ResourceView<'_, Traces>,
        change: &mut Change,
    ) -> Result<Decision, WireError> {
        change.upsert("k8s.pod.ip", Value::Str("10.42.7.19"));
        Ok(Decision::Keep)
    }
}

fn pod_ip() -> KeyValue {
    KeyValue {
        key: "k8s.pod.ip".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("10.42.7.19".into())),
        }),
        ..Default::default()
    }
}

fn views_vs_prost(c: &mut Criterion) {
    let req = encoded("traces", Kind::GenAi, 512, 1);
    let mut g = c.benchmark_group("views_512_spans");
    g.throughput(Throughput::Elements(512));
    g.bench_function("validating walk (what receiving already costs)", |b| {
        b.iter(|| count_items(Signal::Traces, black_box(&req)))
    });
    g.bench_function("read name+kind+attribute: views", |b| {
        b.iter(|| read_views(black_box(&req)))
    });
    g.bench_function("read name+kind+attribute: prost decode", |b| {
        b.iter(|| read_prost(black_box(&req)))
    });
    g.bench_function("drop half the spans: editor", |b| {
        b.iter(|| view::edit::<Traces, _>(black_box(&req), &mut DropHalf(0)))
    });
    g.bench_function("drop half the spans: prost decode+encode", |b| {
        b.iter(|| {
            ExportTraceServiceRequest::decode(black_box(&req[..])).map(|mut d| {
                let mut n = 0usize;
                for s in d.resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans) {
                    s.spans.retain(|_| {
                        n += 1;
                        !n.is_multiple_of(2)
                    });
                }
                d.encode_to_vec()
            })
        })
    });
    g.bench_function("upsert a resource attribute: editor", |b| {
        b.iter(|| view::edit::<Traces, _>(black_box(&req), &mut TagResource))
    });
    g.bench_function("upsert a resource attribute: prost decode+encode", |b| {
        b.iter(|| {
            ExportTraceServiceRequest::decode(black_box(&req[..])).map(|mut d| {
                for r in d.resource_spans.iter_mut() {
                    let attrs = &mut r.resource.get_or_insert_default().attributes;
                    match attrs.iter_mut().find(|kv| kv.key == "k8s.pod.ip") {
                        Some(kv) => *kv = pod_ip(),
                        None => attrs.push(pod_ip()),
                    }
                }
                d.encode_to_vec()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, views_vs_prost);
criterion_main!(benches);
