//! The `pprof` and `zpages` extensions, end to end with the real binary:
//! a CPU profile in pprof format (gzip-compressed `profile.proto`) at Go's
//! `/debug/pprof/profile`, the zPages service, pipeline and extension
//! pages, the Collector's paths and answers for everything else, and
//! `tern components` listing both.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::process::Command;

use tern_e2e::{Tern, free_port, http_request, tern_bin};

/// What the test reads back of pprof's `profile.proto`.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
    }
}

/// A gzip-compressed `profile.proto`, decoded and checked for what every
/// CPU profile has: the sample and period types, a 10 ms period, and every
/// sample's stack resolving to named functions.
fn decode(body: &[u8]) -> proto::Profile {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut raw)
        .unwrap();
    let profile: proto::Profile = prost::Message::decode(&raw[..]).unwrap();
    let s = |i: i64| profile.string_table[i as usize].as_str();
    assert_eq!(profile.string_table[0], "");
    let types: Vec<(&str, &str)> = profile
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
    let period = profile.period_type.as_ref().unwrap();
    assert_eq!((s(period.r#type), s(period.unit)), ("cpu", "nanoseconds"));
    assert_eq!(profile.period, 10_000_000);
    for sample in &profile.sample {
        assert_eq!(sample.value.len(), 2);
        assert_eq!(sample.value[1], sample.value[0] * profile.period);
        for id in &sample.location_id {
            let location = &profile.location[*id as usize - 1];
            assert_eq!(location.id, *id);
            let f = &profile.function[location.line[0].function_id as usize - 1];
            assert!(!s(f.name).is_empty());
        }
    }
    profile
}

/// One span, OTLP/JSON.
const SPANS: &[u8] = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x"}]}]}]}"#;

/// Keeps Tern busy (OTLP/HTTP exports to `port`) until aborted.
fn load(port: u16) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let json = [("content-type", "application/json")];
            http_request(port, "POST", "/v1/traces", &json, SPANS.to_vec()).await;
        }
    })
}

/// Tern with `pprof` and `zpages` on the returned ports (pprof, zpages).
fn start() -> (Tern, u16, u16) {
    let (pprof, zpages) = (free_port(), free_port());
    let tern = Tern::start(&format!(
        "exporters:\n  nop:\n  debug/out:\nprocessors:\n  batch:\nextensions:\n  pprof:\n    endpoint: 127.0.0.1:{pprof}\n  zpages:\n    endpoint: 127.0.0.1:{zpages}\nservice:\n  extensions: [health_check, pprof, zpages]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [nop]\n    logs/audit:\n      receivers: [otlp]\n      exporters: [nop, debug/out, forward]\n    logs/after:\n      receivers: [forward]\n      exporters: [nop]\nconnectors:\n  forward:\n"
    ));
    (tern, pprof, zpages)
}

async fn get(port: u16, path: &str) -> (u16, String) {
    let r = http_request(port, "GET", path, &[], Vec::new()).await;
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pprof_serves_a_cpu_profile_in_pprof_format() {
    let (tern, pprof, _) = start();
    // Keep Tern busy while it profiles itself.
    let load = load(tern.http);
    // Two at once: one CPU profile at a time, as in Go, so one of them is
    // refused with a 500.
    let profile = || {
        tokio::spawn(async move {
            http_request(
                pprof,
                "GET",
                "/debug/pprof/profile?seconds=2",
                &[],
                Vec::new(),
            )
            .await
        })
    };
    let (a, b) = (profile(), profile());
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    load.abort();
    let (reply, busy) = if a.status == 200 { (a, b) } else { (b, a) };
    let busy_body = String::from_utf8_lossy(&busy.body);
    assert_eq!(busy.status, 500, "{busy_body}");
    assert!(
        busy_body.starts_with("Could not enable CPU profiling"),
        "{busy_body}"
    );

    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );
    let profile = decode(&reply.body);
    assert!(profile.duration_nanos >= 2_000_000_000);
    assert!(!profile.sample.is_empty());
    // Tern's own code is among the functions sampled.
    let s = |i: i64| profile.string_table[i as usize].as_str();
    assert!(
        profile
            .function
            .iter()
            .any(|f| s(f.name).starts_with("tern")),
        "{:?}",
        profile.string_table
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pprof_save_to_file_profiles_from_start_to_shutdown() {
    let pprof = free_port();
    let mut tern = Tern::start(&format!(
        "exporters:\n  nop:\nextensions:\n  pprof:\n    endpoint: 127.0.0.1:{pprof}\n    save_to_file: \"{{dir}}/cpu.prof\"\nservice:\n  extensions: [health_check, pprof]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n"
    ));
    // The profile runs: another one meanwhile is refused, as in Go.
    let (status, body) = get(pprof, "/debug/pprof/profile?seconds=1").await;
    assert_eq!(status, 500, "{body}");
    // Work for Tern to be sampled in.
    for _ in 0..2000 {
        let json = [("content-type", "application/json")];
        let r = http_request(tern.http, "POST", "/v1/traces", &json, SPANS.to_vec()).await;
        assert_eq!(r.status, 200);
    }
    assert!(tern.stop().success(), "{}", tern.logs());
    let profile = decode(&std::fs::read(tern.path("cpu.prof")).unwrap());
    assert!(!profile.sample.is_empty());
    assert!(profile.duration_nanos > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pprof_answers_other_paths_as_go_does() {
    let (_tern, pprof, _) = start();
    let (status, body) = get(pprof, "/debug/pprof/profile?seconds=abc").await;
    assert_eq!(
        (status, body.as_str()),
        (400, "invalid value for \"seconds\"\n")
    );
    let (status, body) = get(pprof, "/debug/pprof/").await;
    assert_eq!(status, 200);
    assert!(body.contains("profile?seconds=30"), "{body}");
    let (status, body) = get(pprof, "/debug/pprof/cmdline").await;
    assert_eq!(status, 200);
    assert!(
        body.split('\0').any(|a| a.ends_with("tern-1.yaml")),
        "{body:?}"
    );
    assert_eq!(get(pprof, "/debug/pprof/heap").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zpages_describe_the_service_pipelines_and_extensions() {
    let (_tern, _, zpages) = start();

    let (status, page) = get(zpages, "/debug/servicez").await;
    assert_eq!(status, 200);
    for needle in [
        "<td>Version</td><td>",
        "<td>Start time</td>",
        "<td>Uptime</td>",
        "<td>service.name</td><td>tern</td>",
        "<td>receivers</td><td>otlp</td>",
        "<td>processors</td><td>batch</td>",
        "<td>exporters</td><td>debug/out, nop</td>",
        "<td>connectors</td><td>forward</td>",
        "<td>service.pipelines</td><td>traces, logs/after, logs/audit</td>",
        "<td>service.extensions</td><td>health_check, pprof, zpages</td>",
    ] {
        assert!(page.contains(needle), "no {needle} in\n{page}");
    }

    let (status, page) = get(zpages, "/debug/pipelinez").await;
    assert_eq!(status, 200);
    for row in [
        "<tr><td>traces</td><td>traces</td><td>otlp</td><td>batch</td><td>nop</td></tr>",
        "<tr><td>logs/audit</td><td>logs</td><td>otlp</td><td></td><td>nop, debug/out, forward</td></tr>",
        "<tr><td>logs/after</td><td>logs</td><td>forward</td><td></td><td>nop</td></tr>",
    ] {
        assert!(page.contains(row), "no {row} in\n{page}");
    }

    let (status, page) = get(zpages, "/debug/extensionz").await;
    assert_eq!(status, 200);
    assert!(page.contains("<td>pprof</td><td>127.0.0.1:"), "{page}");
    assert!(page.contains("<td>zpages</td><td>127.0.0.1:"), "{page}");
    assert!(page.contains("<td>health_check</td>"), "{page}");

    assert_eq!(get(zpages, "/debug/tracez").await.0, 404);
    assert_eq!(get(zpages, "/").await.0, 404);
}

#[test]
fn components_lists_pprof_and_zpages() {
    let out = Command::new(tern_bin()).arg("components").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for ty in ["pprof", "zpages"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("extension") && l.split_whitespace().nth(1) == Some(ty)),
            "{text}"
        );
    }
}
