//! `service.telemetry.resource`, end to end: Tern describes itself on its
//! self-metrics endpoint as the Collector does, with a `target_info` series
//! carrying `service.name`, `service.version`, a `service.instance.id` and
//! the configured attributes (a null value removes a default).

#![allow(clippy::unwrap_used)]

use tern_e2e::{Tern, sample};

const PIPELINE: &str = "exporters:\n  nop:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n";

/// The label set of the `target_info` sample, as text between the braces.
fn target_info(metrics: &str) -> String {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("target_info{"))
        .unwrap_or_else(|| panic!("no target_info in:\n{metrics}"));
    let labels = &line["target_info{".len()..line.rfind('}').unwrap()];
    assert_eq!(sample(metrics, "target_info", labels), Some(1.0), "{line}");
    labels.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_info_has_the_default_resource() {
    let tern = Tern::start(PIPELINE);
    let metrics = tern.self_metrics().await;
    assert!(metrics.contains("# TYPE target_info gauge"), "{metrics}");
    let labels = target_info(&metrics);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        labels.starts_with("service_instance_id=\"")
            && labels.ends_with(&format!(
                "\",service_name=\"tern\",service_version=\"{version}\""
            )),
        "{labels}"
    );
    // A UUID v4.
    let id = &labels["service_instance_id=\"".len()..][..36];
    let groups: Vec<&str> = id.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12],
        "{id}"
    );
    assert!(groups[2].starts_with('4'), "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_attributes_override_add_and_remove() {
    let tern = Tern::start_layered(&[
        PIPELINE,
        "service:\n  telemetry:\n    resource:\n      service.name: edge-gateway\n      service.instance.id: null\n      k8s.pod.name: tern-0\n      1st.attr: \"a \\\"quoted\\\" value\"\n",
    ]);
    let metrics = tern.self_metrics().await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        target_info(&metrics),
        format!(
            "key_1st_attr=\"a \\\"quoted\\\" value\",k8s_pod_name=\"tern-0\",service_name=\"edge-gateway\",service_version=\"{version}\""
        )
    );
}
