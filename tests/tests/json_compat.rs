//! OTLP/JSON through the real binary, against what the OpenTelemetry
//! Collector's pdata decoder does with the same bodies: every form it
//! accepts is answered 200 and reaches the file exporter with its values
//! (compared item by item), every form it refuses is answered 400 and
//! counted as refused, and nothing is answered 200 and dropped. Then the
//! round trip: what Tern writes as JSON (file exporter, `otlphttp` with
//! `encoding: json`) Tern reads back to identical content, NaN and
//! infinities, empty arrays and maps and keyless attributes included. The
//! comparison with pdata runs where `$TERN_REFCOL` is set (tests/run.sh).

#![allow(clippy::unwrap_used)]

mod common;
mod json_cases;

use common::{proto_records, read};
use json_cases::{SIGNALS, Signal, cases, hard_logs, hard_metrics, hard_traces};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tern_e2e::{HttpConn, Tern, sample};

/// Each signal to its own file, as protobuf.
const TO_FILES: &str = r#"
exporters:
  file/traces:
    path: {dir}/traces.pb
    format: proto
  file/metrics:
    path: {dir}/metrics.pb
    format: proto
  file/logs:
    path: {dir}/logs.pb
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file/traces]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
    logs:
      receivers: [otlp]
      exporters: [file/logs]
"#;

/// [`TO_FILES`], and each signal also as OTLP JSON lines to
/// `<signal>.jsonl` and to the `otlphttp` exporter when `otlphttp` (its
/// config, indented under `exporters`) is given.
fn with_json_files(otlphttp: &str) -> String {
    let to = if otlphttp.is_empty() {
        ""
    } else {
        ", otlphttp"
    };
    let exporters = "exporters:
  file/traces_json:
    path: {dir}/traces.jsonl
  file/metrics_json:
    path: {dir}/metrics.jsonl
  file/logs_json:
    path: {dir}/logs.jsonl"
        .to_string()
        + otlphttp;
    let mut config = TO_FILES.replacen("exporters:", &exporters, 1);
    for signal in ["traces", "metrics", "logs"] {
        config = config.replace(
            &format!("[file/{signal}]"),
            &format!("[file/{signal}, file/{signal}_json{to}]"),
        );
    }
    config
}

/// The protobuf records in `tern`'s file of `signal` once there are
/// `count` of them (at most 30 s).
async fn records(tern: &Tern, signal: Signal, count: usize) -> Vec<Vec<u8>> {
    let path = tern.path(&format!("{}.pb", signal.name()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let data = read(&path);
        let records: Vec<Vec<u8>> = proto_records(&data)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        if records.len() >= count {
            assert_eq!(records.len(), count, "{signal:?}");
            return records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{signal:?}: {} of {count} records; log:\n{}",
            records.len(),
            tern.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_form_is_kept_or_refused_as_the_collector_does() {
    let cases = cases();
    let tern = Tern::start(TO_FILES);
    let mut http = HttpConn::connect(tern.http).await;
    let json = [("content-type", "application/json")];
    for case in &cases {
        let r = http
            .send(
                "POST",
                &case.signal.path(),
                &json,
                case.body.clone().into_bytes(),
            )
            .await;
        let message = String::from_utf8_lossy(&r.body).into_owned();
        match case.expect {
            Ok(_) => assert_eq!((r.status, &message[..]), (200, "{}"), "{}", case.name),
            Err(needle) => {
                assert_eq!(r.status, 400, "{}: {message}", case.name);
                let status: serde_json::Value = serde_json::from_str(&message).unwrap();
                assert_eq!(status["code"], 3, "{}", case.name);
                let text = status["message"].as_str().unwrap();
                assert!(text.contains(needle), "{}: {text}", case.name);
            }
        }
    }

    let refused = cases.iter().filter(|c| c.expect.is_err()).count();
    let labels = r#"receiver="otlp",transport="http",reason="malformed""#;
    tern.self_metrics_until("the refusals to be counted", |m| {
        sample(m, "tern_receiver_requests_refused_total", labels) == Some(refused as f64)
    })
    .await;
    for signal in SIGNALS {
        // Each accepted request is one record of its signal's file.
        let accepted = cases
            .iter()
            .filter(|c| c.signal == signal && c.expect.is_ok())
            .count();
        let mut found: Vec<(String, Vec<u8>)> = Vec::new();
        for record in records(&tern, signal, accepted).await {
            found.extend(signal.items(&record));
        }
        for case in cases.iter().filter(|c| c.signal == signal) {
            let items: Vec<u8> = found
                .iter()
                .filter(|(name, _)| name == case.name)
                .flat_map(|(_, item)| item.clone())
                .collect();
            match &case.expect {
                Ok(expected) => assert_eq!(&items, expected, "{}", case.name),
                Err(_) => assert!(items.is_empty(), "{} was refused but delivered", case.name),
            }
        }
    }
}

/// The request in `record` as prost encodes it: equal bytes, same content.
fn canonical(signal: Signal, record: &[u8]) -> Vec<u8> {
    match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(record)
            .unwrap()
            .encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceRequest::decode(record)
            .unwrap()
            .encode_to_vec(),
        Signal::Logs => ExportLogsServiceRequest::decode(record)
            .unwrap()
            .encode_to_vec(),
    }
}

fn sorted(signal: Signal, records: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = records.iter().map(|r| canonical(signal, r)).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_tern_writes_as_json_tern_reads_back_identically() {
    // B reads JSON: from A's `otlphttp` exporter, then A's JSON files.
    let b = Tern::start(TO_FILES);
    let a_config = with_json_files(&format!(
        "
  otlphttp:
    endpoint: http://127.0.0.1:{}
    encoding: json",
        b.http
    ));
    let a = Tern::start(&a_config);
    let mut http = HttpConn::connect(a.http).await;
    const REQUESTS: u32 = 3;
    for n in 0..REQUESTS {
        for (signal, body) in [
            (Signal::Traces, hard_traces(n)),
            (Signal::Metrics, hard_metrics(n)),
            (Signal::Logs, hard_logs(n)),
        ] {
            let r = http.post_proto(&signal.path(), body).await;
            assert_eq!(r.status, 200, "{signal:?}");
        }
    }
    let count = REQUESTS as usize;
    let mut to_b = HttpConn::connect(b.http).await;
    let json = [("content-type", "application/json")];
    for signal in SIGNALS {
        let sent = records(&a, signal, count).await;
        // What A's file exporter wrote, posted to B as it is.
        let lines = String::from_utf8(read(&a.path(&format!("{}.jsonl", signal.name())))).unwrap();
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(lines.len(), count, "{signal:?}");
        for line in &lines {
            let r = to_b
                .send("POST", &signal.path(), &json, line.as_bytes().to_vec())
                .await;
            assert_eq!(r.status, 200, "{signal:?}: {:?}", r.body);
        }
        let got = records(&b, signal, 2 * count).await;
        let twice = [sent.clone(), sent].concat();
        assert_eq!(sorted(signal, &got), sorted(signal, &twice), "{signal:?}");
    }
    let m = a.self_metrics().await;
    for line in m
        .lines()
        .filter(|l| l.starts_with("otelcol_exporter_send_failed"))
    {
        assert!(line.ends_with(" 0"), "{line}");
    }
}

/// What the Collector's own pdata code (`pdata`: `tests/refcol/pdata-json`,
/// built beside the reference Collector) makes of each `(signal, "json" or
/// "proto", body)`: the request as the Collector writes it as JSON, or its
/// decoder's error.
fn collector_reads(
    pdata: &std::path::Path,
    inputs: &[(Signal, &str, Vec<u8>)],
) -> Vec<Result<String, String>> {
    use std::fmt::Write as _;
    let mut lines = String::new();
    for (signal, format, body) in inputs {
        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(lines, "{}\t{format}\t{hex}", signal.name()).unwrap();
    }
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), lines).unwrap();
    let out = std::process::Command::new(pdata)
        .stdin(std::fs::File::open(input.path()).unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let verdicts: Vec<Result<String, String>> = text
        .lines()
        .map(|line| match line.split_once('\t') {
            Some(("OK", json)) => Ok(json.to_string()),
            Some((_, error)) => Err(error.to_string()),
            None => Err(line.to_string()),
        })
        .collect();
    assert_eq!(verdicts.len(), inputs.len());
    verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collectors_decoder_reads_every_case_and_tern_output_as_tern_does() {
    let Some(pdata) = tern_e2e::refcol::pdata_json_bin() else {
        println!(
            "skipped: TERN_REFCOL is not set (tests/run.sh builds pdata-json beside it where Go is installed)"
        );
        return;
    };
    let cases = cases();
    let tern = Tern::start(&with_json_files(""));
    let mut http = HttpConn::connect(tern.http).await;
    let json = [("content-type", "application/json")];
    let mut inputs = Vec::new();
    let mut statuses = Vec::new();
    for case in &cases {
        let body = case.body.clone().into_bytes();
        let r = http
            .send("POST", &case.signal.path(), &json, body.clone())
            .await;
        statuses.push(r.status);
        inputs.push((case.signal, "json", body));
    }
    let verdicts = collector_reads(&pdata, &inputs);
    // Tern answers 200 exactly where the Collector decodes, except for a
    // second request in one body, which the Collector ignores and Tern
    // refuses rather than drop.
    for ((case, status), verdict) in cases.iter().zip(&statuses).zip(&verdicts) {
        let expected = match case.name {
            "two requests in one body" => 400,
            _ if verdict.is_ok() => 200,
            _ => 400,
        };
        assert_eq!(
            *status, expected,
            "{}: the Collector says {verdict:?}",
            case.name
        );
    }
    for signal in SIGNALS {
        let accepted = cases
            .iter()
            .zip(&statuses)
            .filter(|(c, s)| c.signal == signal && **s == 200)
            .count();
        let records = records(&tern, signal, accepted).await;
        let lines =
            String::from_utf8(read(&tern.path(&format!("{}.jsonl", signal.name())))).unwrap();
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(lines.len(), accepted, "{signal:?}");
        // Per record: what Tern kept, what Tern wrote as JSON, and the body
        // it came from, all read by the Collector to the same request.
        let mut inputs = Vec::new();
        for (record, line) in records.iter().zip(&lines) {
            let (name, _) = signal.items(record).into_iter().next().unwrap();
            let case = cases.iter().find(|c| c.name == name).unwrap();
            inputs.push((signal, "proto", record.clone()));
            inputs.push((signal, "json", line.as_bytes().to_vec()));
            inputs.push((signal, "json", case.body.clone().into_bytes()));
        }
        let read_back = collector_reads(&pdata, &inputs);
        for (i, three) in read_back.chunks(3).enumerate() {
            let kept = three[0].as_ref().unwrap();
            assert_eq!(
                three[1].as_ref(),
                Ok(kept),
                "{signal:?} record {i}: Tern's JSON"
            );
            assert_eq!(
                three[2].as_ref(),
                Ok(kept),
                "{signal:?} record {i}: the body sent"
            );
        }
    }
}
