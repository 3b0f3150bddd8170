//! The persistent exporter queue (`sending_queue.storage: file_storage`),
//! end to end with the real binary: a request answered 200 survives
//! SIGKILL at any moment and reaches the backend after a restart; damaged
//! records in the write-ahead log are skipped and counted while the rest is
//! delivered; a full disk turns into retryable refusals (HTTP 503, gRPC
//! UNAVAILABLE) and heals without a restart once delivered segments are
//! deleted.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::spans;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tern_e2e::{Tern, free_port, grpc_call, paths};

/// The key of span `i` of the request built by `spans(tag, _)`.
fn key(tag: u32, i: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(i)
}

/// A span as the sink received it.
#[derive(Debug, Clone)]
struct Arrival {
    /// Its id, as [`key`].
    key: u64,
    name: String,
    at: Instant,
}

/// An OTLP/HTTP traces backend that records every span it receives and
/// can be stopped and started again on the same port; stopping also drops
/// every open connection.
struct SpanSink {
    port: u16,
    received: Arc<Mutex<Vec<Arrival>>>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl SpanSink {
    /// A sink on a free port, not listening yet.
    fn new() -> SpanSink {
        SpanSink {
            port: free_port(),
            received: Arc::default(),
            tasks: Arc::default(),
        }
    }

    /// Starts listening (retrying the bind for up to 5 s).
    async fn start(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "bind {}: {e}", self.port);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let (received, tasks) = (self.received.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let received = received.clone();
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let received = received.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            let at = Instant::now();
                            let request = ExportTraceServiceRequest::decode(body).unwrap();
                            let spans = request
                                .resource_spans
                                .iter()
                                .flat_map(|r| &r.scope_spans)
                                .flat_map(|s| &s.spans)
                                .map(|s| Arrival {
                                    key: u64::from_be_bytes(s.span_id[..].try_into().unwrap()),
                                    name: s.name.clone(),
                                    at,
                                });
                            received.lock().unwrap().extend(spans);
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::new())))
                        }
                    });
                let conn = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Stops listening and closes every connection.
    fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Every span received so far (duplicates included), in arrival order.
    fn received(&self) -> Vec<Arrival> {
        self.received.lock().unwrap().clone()
    }

    /// The distinct span keys received so far.
    fn distinct(&self) -> HashSet<u64> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.key)
            .collect()
    }

    /// Waits (at most `limit`) until every key of `expected` was received;
    /// returns those still missing.
    async fn wait_for(&self, expected: &HashSet<u64>, limit: Duration) -> Vec<u64> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.distinct();
            let mut missing: Vec<u64> = expected.difference(&got).copied().collect();
            if missing.is_empty() || Instant::now() > deadline {
                missing.sort_unstable();
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SpanSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// POSTs one OTLP/HTTP protobuf traces request to 127.0.0.1:`port` on a
/// fresh connection; the status, or none when the connection failed or no
/// whole answer came within 5 s (the request was then not acknowledged).
async fn try_post(port: u16, body: Vec<u8>) -> Option<u16> {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = http::Request::post("/v1/traces")
            .header("host", format!("127.0.0.1:{port}"))
            .header("content-type", "application/x-protobuf")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await.ok()?;
        Some(status)
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}

/// Tern's config: OTLP in, `otlp_http` out to the sink on `backend_port`
/// through a queue kept in `storage` by `file_storage` (`fsync` as given),
/// retrying quickly and for ever.
fn config(storage: &Path, backend_port: u16, fsync: bool, consumers: u32) -> String {
    format!(
        r#"
extensions:
  file_storage:
    directory: {storage}
    fsync: {fsync}
exporters:
  otlp_http:
    endpoint: http://127.0.0.1:{backend_port}
    compression: none
    timeout: 2s
    retry_on_failure:
      initial_interval: 20ms
      max_interval: 200ms
      max_elapsed_time: 0s
    sending_queue:
      storage: file_storage
      num_consumers: {consumers}
      queue_size: 1000000
service:
  extensions: [health_check, file_storage]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_http]
"#,
        storage = storage.display()
    )
}

/// The sum of every sample of metric `name` (any labels) in Prometheus
/// text; none when there is none.
fn metric(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = if let Some(labelled) = rest.strip_prefix('{') {
                labelled.split_once("} ")?.1
            } else {
                rest.strip_prefix(' ')?
            };
            value.split_whitespace().next()?.parse().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Every `*.wal` file under `dir`, sorted by path.
fn wal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "wal") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Sends `spans(tag, per_request)` requests with fresh tags for as long as
/// `stop` is unset and tags below `max_tag` are left, to the OTLP/HTTP
/// port in `port` (which changes at each restart); records the tags of
/// requests answered 200. Failures and refusals are not acknowledged: they
/// are only counted, and slow the sender a little.
async fn sender(
    port: Arc<AtomicU16>,
    next_tag: Arc<AtomicU32>,
    max_tag: u32,
    per_request: u32,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u32>>>,
) -> u32 {
    let mut failed = 0;
    while !stop.load(Ordering::SeqCst) {
        let tag = next_tag.fetch_add(1, Ordering::SeqCst);
        if tag >= max_tag {
            break;
        }
        let body = spans(tag, per_request).encode_to_vec();
        match try_post(port.load(Ordering::SeqCst), body).await {
            Some(200) => acked.lock().unwrap().push(tag),
            _ => {
                failed += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_sigkill_at_random_moments() {
    const ROUNDS: u32 = 12;
    const SENDERS: usize = 4;
    const PER_REQUEST: u32 = 10;
    const CONSUMERS: u32 = 4;
    /// Bounds the load whatever the timing: 4 senders, at most 60 000
    /// requests of 10 spans in all.
    const MAX_TAG: u32 = 60_000;
    /// See the bound on duplicates at the end.
    const WINDOW: Duration = Duration::from_millis(100);
    let storage = tempfile::tempdir().unwrap();
    let sink = SpanSink::new();
    sink.start().await;
    let config = config(storage.path(), sink.port, false, CONSUMERS);

    let mut tern = Tern::start(&config);
    let port = Arc::new(AtomicU16::new(tern.http));
    let next_tag = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            tokio::spawn(sender(
                port.clone(),
                next_tag.clone(),
                MAX_TAG,
                PER_REQUEST,
                stop.clone(),
                acked.clone(),
            ))
        })
        .collect();

    let mut logs = Vec::new();
    let seed = std::env::var("TERN_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("seed {seed} (set TERN_TEST_SEED to run these moments again)");
    let mut rng = fastrand::Rng::with_seed(seed);
    // The backend is down from round 3 through round 6: what is accepted
    // then piles up on disk and crosses several kills before delivery.
    let (down_from, down_to) = (3, 6);
    // When a kill or a backend stop cut deliveries short.
    let mut moments = Vec::new();
    for round in 1..=ROUNDS {
        if round == down_from {
            moments.push((Instant::now(), format!("backend stop in round {round}")));
            sink.stop();
        }
        if round == down_to + 1 {
            sink.start().await;
        }
        let run = Duration::from_millis(rng.u64(300..=1500));
        tokio::time::sleep(run).await;
        moments.push((Instant::now(), format!("kill at the end of round {round}")));
        tern.signal("KILL");
        logs.push(tern.logs());
        drop(tern);
        let acked_now = acked.lock().unwrap().len();
        let segments = wal_segments(storage.path());
        println!(
            "round {round}: ran {run:?}, backend {}, {acked_now} requests acknowledged so far, {} segment(s) on disk",
            if (down_from..=down_to).contains(&round) {
                "down"
            } else {
                "up"
            },
            segments.len()
        );
        tern = Tern::start(&config);
        port.store(tern.http, Ordering::SeqCst);
    }
    stop.store(true, Ordering::SeqCst);
    let mut failed = 0;
    for s in senders {
        failed += s.await.unwrap();
    }

    let acked_tags = acked.lock().unwrap().clone();
    let expected: HashSet<u64> = acked_tags
        .iter()
        .flat_map(|&tag| (0..PER_REQUEST).map(move |i| key(tag, i)))
        .collect();
    let missing = sink.wait_for(&expected, Duration::from_secs(60)).await;
    let received = sink.received();
    let distinct = sink.distinct();
    let duplicates = received.len() - distinct.len();
    let unacked: Vec<&u64> = distinct.difference(&expected).collect();
    // Per moment: the repeats that arrived after it (before the next one),
    // and what the backend got in the WINDOW before it.
    let mut seen = HashSet::new();
    let mut repeats = vec![0usize; moments.len() + 1];
    for a in &received {
        if !seen.insert(a.key) {
            repeats[moments.iter().filter(|(m, _)| *m <= a.at).count()] += 1;
        }
    }
    let mut recent_total = 0;
    for (i, (m, what)) in moments.iter().enumerate() {
        let recent = received
            .iter()
            .filter(|a| a.at <= *m && m.duration_since(a.at) <= WINDOW)
            .count();
        recent_total += recent;
        println!(
            "{what}: {recent} spans delivered in the {WINDOW:?} before, {} repeats after",
            repeats[i + 1]
        );
    }
    println!(
        "acknowledged: {} requests, {} spans; failed or refused: {failed}; received: {} spans, {} distinct, {duplicates} duplicates, {} never acknowledged; missing: {}",
        acked_tags.len(),
        expected.len(),
        received.len(),
        distinct.len(),
        unacked.len(),
        missing.len()
    );
    assert!(
        !acked_tags.is_empty() && acked_tags.len() > ROUNDS as usize,
        "too little was acknowledged to test anything; last log:\n{}",
        tern.logs()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged spans never arrived (first: tag {} span {}); log of the last run:\n{}\nlog of the run before:\n{}",
        missing.len(),
        missing[0] >> 32,
        missing[0] & 0xffff_ffff,
        tail(&tern.logs(), 40),
        tail(logs.last().unwrap(), 40)
    );
    // Every span that arrived was one that was sent (acknowledged or not:
    // one killed between writing to the log and answering is delivered
    // without having been acknowledged).
    let sent = next_tag.load(Ordering::SeqCst);
    assert!(distinct.iter().all(|k| (k >> 32) < u64::from(sent)));
    // A span arrives twice only if its delivery was not yet recorded as
    // done on disk when a kill or a backend stop cut things short. What can
    // be in that state at such a moment: (1) what is in flight, at most
    // CONSUMERS exports of one request (queue batching is off) of
    // PER_REQUEST spans; (2) what was delivered shortly before: the log
    // saves its done watermark at most every 50 ms (MAINTENANCE_EVERY in
    // tern-core's wal/writer.rs), after the export's answer came back, and
    // a delivery finished out of order waits for the lower ones. WINDOW,
    // twice the 50 ms, leaves room for the answer's way back and the
    // writer thread's wake-up on a loaded machine.
    let in_flight = moments.len() * CONSUMERS as usize * PER_REQUEST as usize;
    let bound = in_flight + recent_total;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicate spans, more than {bound}: {in_flight} in flight ({} moments x {CONSUMERS} requests x {PER_REQUEST} spans) + {recent_total} delivered within {WINDOW:?} before a moment",
        moments.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_tail_is_skipped_counted_and_the_rest_delivered() {
    const REQUESTS: u32 = 40;
    const PER_REQUEST: u32 = 5;
    let storage = tempfile::tempdir().unwrap();
    let sink = SpanSink::new(); // down for now
    let config = config(storage.path(), sink.port, false, 2);
    let tern = Tern::start(&config);
    for tag in 0..REQUESTS {
        let status = try_post(tern.http, spans(tag, PER_REQUEST).encode_to_vec()).await;
        assert_eq!(status, Some(200), "request {tag}: {}", tern.logs());
    }
    tern.signal("KILL");
    drop(tern);

    let segments = wal_segments(storage.path());
    assert!(!segments.is_empty(), "no *.wal under {:?}", storage.path());
    for s in &segments {
        println!(
            "{}: {} bytes",
            s.display(),
            std::fs::metadata(s).unwrap().len()
        );
    }
    // Damage one record in the middle: flip a byte of a span name inside
    // its payload (found by its text), so its length and framing stay
    // whole and only a checksum can tell. Where payloads are not plain
    // OTLP bytes, tear the last record instead (cut its last bytes off).
    let victim = 10;
    let needle = format!("tool.call {victim}/0");
    let flipped = segments.iter().find_map(|s| {
        let mut data = std::fs::read(s).unwrap();
        let at = data
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())?;
        data[at] ^= 0x20; // 't' -> 'T'
        std::fs::write(s, data).unwrap();
        Some(s.clone())
    });
    let newest = segments.last().unwrap();
    let damaged = match &flipped {
        Some(s) => {
            println!("flipped a byte of request {victim} in {}", s.display());
            victim
        }
        None => {
            let len = std::fs::metadata(newest).unwrap().len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(newest)
                .unwrap();
            f.set_len(len - 3).unwrap();
            println!(
                "payloads not found as text: cut 3 bytes off {}",
                newest.display()
            );
            REQUESTS - 1
        }
    };
    // And a torn, garbage tail on the newest segment.
    let mut garbage = vec![0u8; 300];
    fastrand::Rng::with_seed(7).fill(&mut garbage);
    let mut data = std::fs::read(newest).unwrap();
    data.extend_from_slice(&garbage);
    std::fs::write(newest, data).unwrap();

    sink.start().await;
    let tern = Tern::start(&config);
    let expected: HashSet<u64> = (0..REQUESTS)
        .filter(|&tag| tag != damaged)
        .flat_map(|tag| (0..PER_REQUEST).map(move |i| key(tag, i)))
        .collect();
    let missing = sink.wait_for(&expected, Duration::from_secs(30)).await;
    assert!(
        missing.is_empty(),
        "{} spans of undamaged records never arrived (first: tag {}); log:\n{}",
        missing.len(),
        missing[0] >> 32,
        tern.logs()
    );
    let m = tern
        .self_metrics_until("corrupt records counted", |m| {
            metric(m, "tern_storage_corrupt_records_total").unwrap_or(0.0) > 0.0
        })
        .await;
    let corrupt = metric(&m, "tern_storage_corrupt_records_total").unwrap();
    // Nothing damaged is delivered as if it were whole.
    let received = sink.received();
    for a in &received {
        let (tag, i) = (a.key >> 32, a.key & 0xffff_ffff);
        assert_eq!(
            a.name,
            format!("tool.call {tag}/{i}"),
            "a damaged span arrived"
        );
    }
    let damaged_arrived = received
        .iter()
        .filter(|a| a.key >> 32 == u64::from(damaged))
        .count();
    println!(
        "corrupt records counted: {corrupt}; received {} spans of {} sent; damaged request {damaged}: {damaged_arrived} of its spans arrived",
        received.len(),
        REQUESTS * PER_REQUEST
    );
    assert!(
        flipped.is_none() || damaged_arrived == 0,
        "the flipped record was delivered"
    );
    // One for the flipped record, at least one for the garbage tail.
    assert!(corrupt >= 2.0, "{m}");

    // The log takes new data after the damage, and delivers it.
    let fresh: HashSet<u64> = (1000..1005)
        .flat_map(|tag| (0..PER_REQUEST).map(move |i| key(tag, i)))
        .collect();
    for tag in 1000..1005 {
        let status = try_post(tern.http, spans(tag, PER_REQUEST).encode_to_vec()).await;
        assert_eq!(
            status,
            Some(200),
            "request {tag} after recovery: {}",
            tern.logs()
        );
    }
    let missing = sink.wait_for(&fresh, Duration::from_secs(30)).await;
    assert!(
        missing.is_empty(),
        "new data was not delivered: {}",
        tern.logs()
    );
}

/// A tmpfs of a given size, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one of `size` (as `mount -o size=` takes it) on a fresh
    /// temporary folder; the error when that is impossible here.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes used on it.
    fn used(&self) -> u64 {
        let out = std::process::Command::new("df")
            .args(["--output=used", "-B1"])
            .arg(self.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |args: &[&str]| {
            std::process::Command::new("umount")
                .args(args)
                .arg(self.dir.path())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !umount(&[]) {
            umount(&["-l"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_with_retryable_errors_and_recovers() {
    // Room for two closed 8 MiB segments and part of a third.
    full_disk_recovers("20m").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runtime bug: a log smaller than one segment (8 MiB) never frees the disk: its only \
            segment is the current one, which is not deleted while the process runs, and the \
            `done` file cannot be created on the full disk"]
async fn a_full_disk_smaller_than_a_segment_recovers_too() {
    full_disk_recovers("1m").await;
}

/// On a tmpfs of `size` with the backend down: requests are taken until
/// the disk is full, then refused retryably while the process keeps
/// serving; with the backend back, everything taken is delivered, the
/// disk frees up and requests are taken again, without a restart.
async fn full_disk_recovers(size: &str) {
    const PER_REQUEST: u32 = 100;
    /// About 10 KB each: 2000 fill 20 MiB.
    const MAX_REQUESTS: u32 = 4000;
    let disk = match Tmpfs::mount(size) {
        Ok(d) => d,
        Err(e) => {
            println!("SKIPPED: cannot mount tmpfs: {e}");
            return;
        }
    };
    let sink = SpanSink::new(); // down for now
    let tern = Tern::start(&config(disk.path(), sink.port, false, 2));

    // Fill the disk: requests are taken until the log cannot grow.
    let mut acked = Vec::new();
    let mut refusal = None;
    for tag in 0..MAX_REQUESTS {
        match try_post(tern.http, spans(tag, PER_REQUEST).encode_to_vec()).await {
            Some(200) => acked.push(tag),
            Some(status) => {
                refusal = Some((tag, status));
                break;
            }
            None => panic!("request {tag} got no answer; log:\n{}", tern.logs()),
        }
    }
    let (refused_tag, status) = refusal.unwrap_or_else(|| {
        panic!(
            "{MAX_REQUESTS} requests of {PER_REQUEST} spans all accepted on a {size} disk; log:\n{}",
            tern.logs()
        )
    });
    let full = disk.used();
    println!(
        "{} requests accepted, then request {refused_tag} got {status} with {full} bytes used on the {size} disk",
        acked.len(),
    );
    assert!(
        !acked.is_empty(),
        "the log took nothing at all; log:\n{}",
        tern.logs()
    );
    assert_eq!(
        status,
        503,
        "a full disk is a retryable refusal; log:\n{}",
        tern.logs()
    );
    let m = tern.self_metrics().await;
    assert_eq!(metric(&m, "tern_storage_writable"), Some(0.0), "{m}");
    let write_failures = metric(&m, "tern_storage_write_failures_total").unwrap_or(0.0);
    assert!(write_failures > 0.0, "{m}");
    // gRPC clients are told to come back too.
    let g = grpc_call(
        tern.grpc,
        paths::TRACES,
        spans(50_000, PER_REQUEST).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(g.code, 14, "UNAVAILABLE during disk-full: {g:?}");
    // The process keeps serving: healthy, and its metrics answer.
    tern.wait_healthy();

    // The backend comes back: what was taken is delivered, its segments
    // deleted, and there is room again; nothing is restarted.
    sink.start().await;
    let expected: HashSet<u64> = acked
        .iter()
        .flat_map(|&tag| (0..PER_REQUEST).map(move |i| key(tag, i)))
        .collect();
    let missing = sink.wait_for(&expected, Duration::from_secs(60)).await;
    assert!(
        missing.is_empty(),
        "{} acknowledged spans never arrived; log:\n{}",
        missing.len(),
        tail(&tern.logs(), 40)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = Vec::new();
    let mut tag = 100_000;
    while after.is_empty() {
        match try_post(tern.http, spans(tag, PER_REQUEST).encode_to_vec()).await {
            Some(200) => after.push(tag),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "still refused ({other:?}) 30 s after delivery, {} bytes used; log:\n{}",
                    disk.used(),
                    tail(&tern.logs(), 40)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tag += 1;
    }
    for tag in tag..tag + 5 {
        let status = try_post(tern.http, spans(tag, PER_REQUEST).encode_to_vec()).await;
        assert_eq!(status, Some(200), "request {tag} after recovery");
        after.push(tag);
    }
    let m = tern
        .self_metrics_until("tern_storage_writable back to 1", |m| {
            metric(m, "tern_storage_writable") == Some(1.0)
        })
        .await;
    let fresh: HashSet<u64> = after
        .iter()
        .flat_map(|&tag| (0..PER_REQUEST).map(move |i| key(tag, i)))
        .collect();
    let missing = sink.wait_for(&fresh, Duration::from_secs(30)).await;
    assert!(
        missing.is_empty(),
        "{} new spans never arrived",
        missing.len()
    );
    let used = disk.used();
    assert!(used < full, "{used} bytes used, {full} when full");
    let received = sink.received().len();
    let duplicates = received - sink.distinct().len();
    println!(
        "recovered: {} requests accepted after the disk freed up; {} bytes used; write failures {}; received {received} spans, {duplicates} duplicates",
        after.len(),
        used,
        metric(&m, "tern_storage_write_failures_total").unwrap_or(0.0)
    );
}
