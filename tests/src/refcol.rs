//! The reference OpenTelemetry Collector beside Tern: `tests/refcol` (the
//! Collector's own Go modules at one release), built by
//! `tests/refcol/build.sh` and found through `$TERN_REFCOL`. [`SideBySide`]
//! starts it and `tern` with the same config on ports of their own, and
//! [`items`] reads what a file exporter wrote as OTLP/JSON lines into a
//! multiset of items that two writers of the same content agree on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Tern, free_port};

/// The reference Collector's binary: `$TERN_REFCOL` when it is set and
/// names a file. `None` means the comparisons are skipped (the caller says
/// so): `tests/run.sh` sets it wherever Go is installed.
pub fn refcol_bin() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("TERN_REFCOL")?);
    path.is_file().then_some(path)
}

/// `pdata-json` (`tests/refcol/pdata-json`: the Collector's pdata JSON
/// decoder and encoder), built beside the reference Collector.
pub fn pdata_json_bin() -> Option<PathBuf> {
    let path = refcol_bin()?.with_file_name("pdata-json");
    path.is_file().then_some(path)
}

/// What the reference Collector starts from, like `tern`'s base config:
/// the `otlp` receiver on the harness's ports, quiet logs and no
/// self-telemetry server (its default port would clash between tests).
const BASE: &str = "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
";

/// A running reference Collector.
pub struct RefCol {
    child: Option<Child>,
    /// Scratch directory (config, output files, log).
    pub dir: tempfile::TempDir,
    /// OTLP/gRPC port.
    pub grpc: u16,
    /// OTLP/HTTP port.
    pub http: u16,
    log: PathBuf,
}

impl RefCol {
    /// Starts `bin --config base.yaml --config test.yaml`, the template
    /// filled in as [`Tern::start`] fills it (`{grpc}`, `{http}`, `{dir}`),
    /// and waits until both OTLP ports accept connections: the Collector
    /// opens its receivers after the rest of the pipelines have started.
    pub fn start(bin: &Path, template: &str) -> RefCol {
        let dir = tempfile::tempdir().unwrap();
        let (grpc, http) = (free_port(), free_port());
        let fill = |text: &str| {
            text.replace("{grpc}", &grpc.to_string())
                .replace("{http}", &http.to_string())
                .replace("{dir}", &dir.path().display().to_string())
        };
        let mut command = Command::new(bin);
        for (i, text) in [BASE, template].into_iter().enumerate() {
            let path = dir.path().join(format!("otelcol-{i}.yaml"));
            std::fs::write(&path, fill(text)).unwrap();
            command.arg("--config").arg(path);
        }
        let log = dir.path().join("otelcol.log");
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut refcol = RefCol {
            child: Some(child),
            dir,
            grpc,
            http,
            log,
        };
        refcol.wait_listening();
        refcol
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [self.grpc, self.http] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                let exited = self.child.as_mut().unwrap().try_wait().unwrap();
                assert!(
                    exited.is_none() && Instant::now() < deadline,
                    "the reference Collector is not listening on {port} ({exited:?}); log:\n{}",
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// What it wrote to stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Sends SIGTERM and waits (at most 30 s) for a clean exit, which
    /// flushes its processors and file exporters.
    pub fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{status}; log:\n{}", self.logs());
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the reference Collector did not exit; log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RefCol {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `tern` and the reference Collector, started with the same config.
pub struct SideBySide {
    /// Tern, on top of its base config.
    pub tern: Tern,
    /// The reference Collector, on top of its own base config.
    pub refcol: RefCol,
}

impl SideBySide {
    /// Starts both with `template` (see [`Tern::start`]; each gets its own
    /// ports and `{dir}`), or `None` after printing a skip line where the
    /// reference Collector is not built.
    pub fn start(test: &str, template: &str) -> Option<SideBySide> {
        let Some(bin) = refcol_bin() else {
            println!(
                "skipped {test}: TERN_REFCOL is not set (tests/run.sh builds it where Go is installed)"
            );
            return None;
        };
        Some(SideBySide {
            tern: Tern::start(template),
            refcol: RefCol::start(&bin, template),
        })
    }

    /// Stops both (SIGTERM, so that each flushes what it holds) and returns
    /// the contents of `name` in each scratch directory, Tern's first.
    pub fn stop_and_read(&mut self, names: &[&str]) -> Vec<(String, String)> {
        let status = self.tern.stop();
        assert!(
            status.success(),
            "tern: {status}; log:\n{}",
            self.tern.logs()
        );
        self.refcol.stop();
        let read = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        names
            .iter()
            .map(|name| (read(self.tern.path(name)), read(self.refcol.path(name))))
            .collect()
    }
}

/// The OTLP/JSON field names of a signal's resource list, scope list and
/// item list.
fn lists(signal: &str) -> (&'static str, &'static str, &'static str) {
    match signal {
        "traces" => ("resourceSpans", "scopeSpans", "spans"),
        "metrics" => ("resourceMetrics", "scopeMetrics", "metrics"),
        "logs" => ("resourceLogs", "scopeLogs", "logRecords"),
        other => panic!("unknown signal {other}"),
    }
}

/// Sub-messages that the Collector's pdata cannot hold as absent: it writes
/// an absent one as `{}`, where Tern writes what was sent (no key). Both
/// mean the same in OTLP, so an empty one counts as absent.
const EMPTY_IS_ABSENT: [&str; 6] = [
    "resource", "scope", "status", "positive", "negative", "body",
];

/// `value` as JSON text in one form for one content: every object's keys
/// in order, whichever order a writer chose; every number as a double
/// (OTLP/JSON numbers are doubles or 32-bit integers, written `1` by the
/// Collector and `1.0` by Tern); without the empty sub-messages of
/// [`EMPTY_IS_ABSENT`].
fn canonical(value: &serde_json::Value) -> String {
    fn sort(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let empty = |k: &str, v: &serde_json::Value| {
                    EMPTY_IS_ABSENT.contains(&k) && v.as_object().is_some_and(|o| o.is_empty())
                };
                let sorted: BTreeMap<&String, serde_json::Value> = map
                    .iter()
                    .map(|(k, v)| (k, sort(v)))
                    .filter(|(k, v)| !empty(k, v))
                    .collect();
                serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            serde_json::Value::Number(n) => n
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| value.clone(), serde_json::Value::Number),
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sort).collect())
            }
            other => other.clone(),
        }
    }
    serde_json::to_string(&sort(value)).unwrap()
}

/// Every item (span, metric, log record) in OTLP/JSON lines of `signal`,
/// each as one canonical JSON object `{"resource", "scope", "item"}`
/// carrying its resource and scope (without their item lists), sorted: the
/// same multiset whichever way a writer grouped or ordered the items.
pub fn items(signal: &str, jsonl: &str) -> Vec<String> {
    let (resources, scopes, items) = lists(signal);
    let empty = Vec::new();
    let list = |v: &serde_json::Value, key: &str| -> Vec<serde_json::Value> {
        v.get(key)
            .and_then(serde_json::Value::as_array)
            .unwrap_or(&empty)
            .clone()
    };
    let mut out = Vec::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let request: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{signal}: not JSON ({e}): {line}"));
        for mut resource in list(&request, resources) {
            let scope_list = list(&resource, scopes);
            resource.as_object_mut().unwrap().remove(scopes);
            for mut scope in scope_list {
                let item_list = list(&scope, items);
                scope.as_object_mut().unwrap().remove(items);
                for item in item_list {
                    out.push(canonical(&serde_json::json!({
                        "resource": resource,
                        "scope": scope,
                        "item": item,
                    })));
                }
            }
        }
    }
    out.sort();
    out
}

/// The items of two sorted multisets that the other lacks: `(only in a,
/// only in b)`.
pub fn difference(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
    for x in a {
        *count.entry(x).or_default() += 1;
    }
    for x in b {
        *count.entry(x).or_default() -= 1;
    }
    let mut only_a = Vec::new();
    let mut only_b = Vec::new();
    for (item, n) in count {
        let side = if n > 0 { &mut only_a } else { &mut only_b };
        side.extend(std::iter::repeat_n(
            item.to_string(),
            n.unsigned_abs() as usize,
        ));
    }
    (only_a, only_b)
}
