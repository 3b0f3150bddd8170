//! Criterion benchmarks of Tern's hot paths: counting items in a request
//! by walking its bytes (vs decoding it with prost), batching (concatenation)
//! and splitting, the OTLP/JSON mapping, and request compression.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tern_bench::{Kind, encoded};
use tern_core::Signal;
use tern_core::wire::{concat, count_items, split};

fn walk_vs_decode(c: &mut Criterion) {
    let req = encoded("traces", Kind::GenAi, 512, 1);
    let mut g = c.benchmark_group("traces_512_spans");
    g.throughput(Throughput::Elements(512));
    g.bench_function("count_items (validating walk)", |b| {
        b.iter(|| count_items(Signal::Traces, black_box(&req)))
    });
    g.bench_function("prost decode", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(&req[..])))
    });
    let decoded = ExportTraceServiceRequest::decode(&req[..]).ok();
    g.bench_function("prost encode", |b| {
        b.iter(|| decoded.as_ref().map(|d| d.encode_to_vec()))
    });
    g.finish();
}

fn batching(c: &mut Criterion) {
    let chunks: Vec<Bytes> = (0..16)
        .map(|s| Bytes::from(encoded("traces", Kind::GenAi, 512, s)))
        .collect();
    let whole = concat(&chunks);
    let mut g = c.benchmark_group("batch_8192_spans");
    g.throughput(Throughput::Elements(8192));
    g.bench_function("concat 16 requests", |b| {
        b.iter(|| concat(black_box(&chunks)))
    });
    for max in [1000usize, 4096] {
        g.bench_with_input(BenchmarkId::new("split", max), &max, |b, &max| {
            b.iter(|| split(Signal::Traces, black_box(&whole), max))
        });
    }
    g.finish();
}

fn json(c: &mut Criterion) {
    let req = encoded("traces", Kind::GenAi, 512, 1);
    let mut text = Vec::new();
    let _ = tern_core::json::wire_to_json(Signal::Traces, &req, &mut text);
    let mut g = c.benchmark_group("otlp_json_512_spans");
    g.throughput(Throughput::Elements(512));
    g.bench_function("wire -> json", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(text.len());
            tern_core::json::wire_to_json(Signal::Traces, black_box(&req), &mut out)
        })
    });
    g.bench_function("json -> wire", |b| {
        b.iter(|| tern_core::json::json_to_wire(Signal::Traces, black_box(&text)))
    });
    g.finish();
}

fn compression(c: &mut Criterion) {
    let req = encoded("traces", Kind::GenAi, 512, 1);
    let mut g = c.benchmark_group("compress_512_spans");
    g.throughput(Throughput::Bytes(req.len() as u64));
    for level in [1u32, 6] {
        g.bench_with_input(BenchmarkId::new("gzip", level), &level, |b, &level| {
            b.iter(|| {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                std::io::Write::write_all(&mut e, black_box(&req)).ok();
                e.finish().ok()
            })
        });
    }
    for level in [1i32, 3] {
        g.bench_with_input(BenchmarkId::new("zstd", level), &level, |b, &level| {
            b.iter(|| zstd::bulk::compress(black_box(&req), level))
        });
    }
    g.finish();
}

criterion_group!(benches, walk_vs_decode, batching, json, compression);
criterion_main!(benches);
