//! Every component `tern components` lists, from a minimal config: `tern
//! validate` accepts it, and Tern starts with it, serves, and stops cleanly
//! (validation and building agree). A component added to the catalog
//! without a minimal config here fails the test.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use tern_e2e::{Tern, free_port, tern_bin};

/// The settings of a minimal instance of `kind` `ty` (YAML flow mapping),
/// with `{dir}` and `{port}` filled in.
fn minimal(kind: &str, ty: &str) -> Option<&'static str> {
    Some(match (kind, ty) {
        ("receiver", "otlp") => "{protocols: {grpc: {endpoint: '127.0.0.1:{port}'}}}",
        ("processor", "batch") => "{}",
        ("processor", "memory_limiter") => "{check_interval: 1s, limit_mib: 512}",
        ("processor", "probabilistic_sampler") => "{sampling_percentage: 50}",
        ("processor", "tail_sampling") => {
            "{decision_wait: 1s, policies: [{name: all, type: always_sample}]}"
        }
        ("exporter", "load_balancing") => {
            "{protocol: {otlp: {tls: {insecure: true}}}, resolver: {static: {hostnames: ['127.0.0.1:{port}']}}}"
        }
        ("exporter", "debug" | "nop") => "{}",
        ("exporter", "file") => "{path: '{dir}/out.jsonl'}",
        ("exporter", "otlp_grpc") => "{endpoint: '127.0.0.1:{port}'}",
        ("exporter", "otlp_http") => "{endpoint: 'http://127.0.0.1:{port}'}",
        ("exporter", "prometheus") => "{endpoint: '127.0.0.1:{port}'}",
        ("exporter", "prometheus_remote_write") => {
            "{endpoint: 'http://127.0.0.1:{port}/api/v1/write'}"
        }
        ("extension", "pprof" | "zpages" | "health_check") => "{endpoint: '127.0.0.1:{port}'}",
        ("extension", "bearertokenauth") => "{token: s3cret}",
        ("extension", "basicauth") => "{htpasswd: {inline: 'user:pw'}}",
        ("extension", "oidc") => "{issuer_url: 'http://127.0.0.1:{port}', audience: tern}",
        ("extension", "headers_setter") => "{headers: [{key: x-tenant, from_context: x-tenant}]}",
        ("extension", "file_storage") => "{directory: '{dir}'}",
        ("connector", "forward") => "{}",
        _ => return None,
    })
}

/// A config using the component once, in a pipeline of `signal`.
fn config(kind: &str, ty: &str, signal: &str, settings: &str) -> String {
    let id = format!("{ty}/under_test");
    let (section, pipelines, extensions) = match kind {
        "receiver" => (
            "receivers",
            format!("    {signal}:\n      receivers: [{id}]\n      exporters: [nop]\n"),
            "[health_check]".to_string(),
        ),
        "processor" => (
            "processors",
            format!(
                "    {signal}:\n      receivers: [otlp]\n      processors: [{id}]\n      exporters: [nop]\n"
            ),
            "[health_check]".to_string(),
        ),
        "exporter" => (
            "exporters",
            format!("    {signal}:\n      receivers: [otlp]\n      exporters: [{id}]\n"),
            "[health_check]".to_string(),
        ),
        "connector" => (
            "connectors",
            format!(
                "    {signal}:\n      receivers: [otlp]\n      exporters: [{id}]\n    {signal}/out:\n      receivers: [{id}]\n      exporters: [nop]\n"
            ),
            "[health_check]".to_string(),
        ),
        "extension" => (
            "extensions",
            format!("    {signal}:\n      receivers: [otlp]\n      exporters: [nop]\n"),
            format!("[health_check, {id}]"),
        ),
        other => panic!("unknown kind {other}"),
    };
    let extra_nop = if section == "exporters" {
        String::new()
    } else {
        "exporters:\n  nop:\n".to_string()
    };
    let exporters = if section == "exporters" {
        format!("exporters:\n  nop:\n  {id}: {settings}\n")
    } else {
        format!("{extra_nop}{section}:\n  {id}: {settings}\n")
    };
    format!("{exporters}service:\n  extensions: {extensions}\n  pipelines:\n{pipelines}")
}

#[test]
fn every_listed_component_validates_and_starts_from_a_minimal_config() {
    let out = Command::new(tern_bin()).arg("components").output().unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    let mut tried = 0;
    for line in listing.lines().skip(1) {
        if line.contains("deprecated alias of") {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, ty, signals) = (fields[0], fields[1], fields[2]);
        let settings = minimal(kind, ty)
            .unwrap_or_else(|| panic!("no minimal config for {kind} {ty}: add one here"));
        let signal = if signals == "-" {
            "traces"
        } else {
            signals.split(',').next().unwrap()
        };
        let settings = settings.replace("{port}", &free_port().to_string());
        let text = config(kind, ty, signal, &settings);
        let mut tern = Tern::start(&text);
        let files: Vec<_> = (0..2)
            .map(|i| tern.dir.path().join(format!("tern-{i}.yaml")))
            .collect();
        let validate = Command::new(tern_bin())
            .arg("validate")
            .args(
                files
                    .iter()
                    .flat_map(|f| [std::ffi::OsStr::new("--config"), f.as_os_str()]),
            )
            .output()
            .unwrap();
        assert!(
            validate.status.success(),
            "{kind} {ty}: {}\n{text}",
            String::from_utf8_lossy(&validate.stderr)
        );
        let status = tern.stop();
        assert!(
            status.success(),
            "{kind} {ty}: {status}\n{text}\n{}",
            tern.logs()
        );
        tried += 1;
    }
    assert!(tried >= 15, "{listing}");
}
