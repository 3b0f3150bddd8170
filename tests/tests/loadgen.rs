//! The benchmark instruments measure what they claim: `tern-loadgen send`
//! through a real Tern into `tern-loadgen sink` — the sink counts exactly
//! the items the generator says were accepted.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tern_e2e::{Tern, free_port, tern_bin};

fn loadgen() -> std::path::PathBuf {
    tern_bin().with_file_name("tern-loadgen")
}

fn field(json: &str, key: &str) -> f64 {
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json}"));
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {json}"))
}

#[test]
fn every_item_the_generator_counts_reaches_the_sink() {
    let sink_port = free_port();
    let sink = Command::new(loadgen())
        .args(["sink", "--listen", &format!("127.0.0.1:{sink_port}")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", sink_port)).is_err() {
        assert!(Instant::now() < deadline, "sink never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let config = format!(
        "processors:\n  batch:\n    timeout: 50ms\nexporters:\n  otlp:\n    endpoint: 127.0.0.1:{sink_port}\n    compression: zstd\n    tls:\n      insecure: true\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlp]\n    logs:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlp]\n"
    );
    let mut tern = Tern::start(&config);
    let mut sent = 0.0;
    for (signal, protocol, compression) in [("traces", "grpc", "gzip"), ("logs", "http", "none")] {
        let port = if protocol == "grpc" {
            tern.grpc
        } else {
            tern.http
        };
        let out = Command::new(loadgen())
            .args([
                "send",
                "--target",
                &format!("127.0.0.1:{port}"),
                "--protocol",
                protocol,
                "--signal",
                signal,
                "--items-per-request",
                "100",
                "--connections",
                "2",
                "--in-flight",
                "2",
                "--requests",
                "150",
                "--compression",
                compression,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = String::from_utf8(out.stdout).unwrap();
        assert_eq!(field(&report, "requests_ok"), 150.0, "{report}");
        assert_eq!(field(&report, "items_ok"), 15_000.0, "{report}");
        assert!(field(&report, "p99_ms") > 0.0);
        sent += field(&report, "items_ok");
    }
    assert!(tern.stop().success());
    Command::new("kill")
        .arg("-TERM")
        .arg(sink.id().to_string())
        .status()
        .unwrap();
    let out = sink.wait_with_output().unwrap();
    let totals = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        field(&totals, "traces") + field(&totals, "logs"),
        sent,
        "{totals}"
    );
    assert_eq!(field(&totals, "malformed"), 0.0, "{totals}");
}
