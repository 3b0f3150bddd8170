//! The `prometheus` exporter against hostile attribute values and names:
//! an array nested 28 deep, the most the receiver takes on a data point
//! (its label once doubled in size per level, to gigabytes), becomes a
//! short JSON label, memory stays bounded, a name with
//! characters outside Prometheus' classic set is escaped and one with none
//! left is dropped and counted, the scrape keeps working and the process
//! exits cleanly.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;
use tern_e2e::{HttpConn, Tern, free_port, peak_rss, sample, scrape_until};

/// Array levels of a data point attribute the receiver accepts: the point
/// is at message depth 5, its attribute's value at 7, each level adds 2, and
/// messages nest at most 64 deep.
const DEPTH: usize = 28;

fn nested(depth: usize) -> KeyValue {
    let mut v = AnyValue {
        value: Some(any_value::Value::StringValue("x".into())),
    };
    for _ in 0..depth {
        v = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
        };
    }
    KeyValue {
        key: "deep".into(),
        value: Some(v),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_attributes_and_odd_names_keep_the_scrape_working_in_bounded_memory() {
    let scrape_port = free_port();
    let config = format!(
        "exporters:\n  prometheus:\n    endpoint: 127.0.0.1:{scrape_port}\nservice:\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [prometheus]\n"
    );
    let mut tern = Tern::start(&config);
    let baseline = peak_rss(tern.pid());
    let mut req = gauges(1, 3);
    let metrics = &mut req.resource_metrics[0].scope_metrics[0].metrics;
    if let Some(metric::Data::Gauge(g)) = &mut metrics[0].data {
        g.data_points[0].attributes.push(nested(DEPTH));
    }
    let mut escaped = metrics[0].clone();
    escaped.name = "größe.日本".into();
    let mut invalid = metrics[0].clone();
    invalid.name = "日本".into();
    metrics.extend([escaped, invalid]);
    let body = req.encode_to_vec();
    let mut http = HttpConn::connect(tern.http).await;
    let requests = 10;
    for _ in 0..requests {
        let r = http.post_proto("/v1/metrics", body.clone()).await;
        assert_eq!(r.status, 200);
    }
    let deep = format!(r#"deep="{}\"x\"{}""#, "[".repeat(DEPTH), "]".repeat(DEPTH));
    let text = scrape_until(scrape_port, "the nested-array series", |t| {
        t.contains(&deep) && t.contains("gr_e{")
    })
    .await;
    assert!(!text.contains("日本"), "{text}");
    tern.self_metrics_until(
        "the points with no valid name dropped, the others sent",
        |m| {
            sample(
                m,
                "tern_exporter_prometheus_dropped_points_total",
                r#"exporter="prometheus",metric="日本",reason="invalid_name""#,
            ) == Some(3.0 * f64::from(requests))
                && sample(
                    m,
                    "otelcol_exporter_sent_metric_points_total",
                    r#"exporter="prometheus""#,
                ) == Some(6.0 * f64::from(requests))
        },
    )
    .await;
    let peak = peak_rss(tern.pid());
    assert!(
        peak < baseline + 64 * 1024 * 1024,
        "peak RSS {} MiB, baseline {} MiB",
        peak >> 20,
        baseline >> 20
    );
    let status = tern.stop();
    assert!(status.success(), "{status}: {}", tern.logs());
}
