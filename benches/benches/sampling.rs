//! Criterion benchmarks of `probabilistic_sampler` on a realistic
//! 512-span request: sampling it at 25% (views, decision, one rewrite),
//! next to what pass-through does with it (validate and count), and to
//! doing the same with prost (decode, drop spans, rewrite `tracestate`,
//! encode).

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tern_bench::{Kind, encoded};
use tern_config::{ProbabilisticSamplerConfig, SamplerMode};
use tern_core::Signal;
use tern_core::pdata::{Batch, RequestContext};
use tern_core::telemetry::Telemetry;
use tern_core::wire::count_items;
use tern_processors::probabilistic_sampler::ProbabilisticSampler;

fn sampler(c: &mut Criterion) {
    let req = Bytes::from(encoded("traces", Kind::GenAi, 512, 1));
    let context = Arc::new(RequestContext::default());
    let telemetry = Telemetry::new();
    let mut g = c.benchmark_group("sample_512_spans_25pct");
    g.throughput(Throughput::Elements(512));
    g.bench_function("pass-through (validate + count)", |b| {
        b.iter(|| count_items(Signal::Traces, black_box(&req)))
    });
    for (name, mode) in [
        ("probabilistic_sampler hash_seed", SamplerMode::HashSeed),
        (
            "probabilistic_sampler proportional",
            SamplerMode::Proportional,
        ),
    ] {
        let config = ProbabilisticSamplerConfig {
            sampling_percentage: 25.0,
            mode: Some(mode),
            ..ProbabilisticSamplerConfig::default()
        };
        let p = ProbabilisticSampler::new("p", &config, Signal::Traces, &telemetry);
        g.bench_function(name, |b| {
            b.iter(|| {
                let batch =
                    Batch::from_wire(Signal::Traces, black_box(req.clone()), context.clone());
                batch.map(|batch| p.sample(batch).items())
            })
        });
    }
    g.bench_function("prost decode + drop 75% + tracestate + encode", |b| {
        b.iter(|| {
            let mut r = ExportTraceServiceRequest::decode(black_box(&req[..])).ok()?;
            for rs in &mut r.resource_spans {
                for ss in &mut rs.scope_spans {
                    ss.spans
                        .retain(|s| s.trace_id.last().is_some_and(|b| b & 3 == 0));
                    for s in &mut ss.spans {
                        s.trace_state = "ot=th:c".to_owned();
                    }
                }
            }
            Some(r.encode_to_vec())
        })
    });
    g.finish();
}

criterion_group!(benches, sampler);
criterion_main!(benches);
