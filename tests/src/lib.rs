//! Harness for Tern's end-to-end tests: starts the real `tern` binary on
//! ephemeral ports with a config, waits for its health check, and talks to
//! it with plain HTTP/1.1 and HTTP/2 gRPC clients built on hyper (no Tern
//! code on the client side). Every wait is bounded.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

pub mod refcol;

/// The `tern` binary: `$TERN_BIN`, or `tern` next to the test's target dir.
pub fn tern_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TERN_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test> -> target/<profile>/tern
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("tern");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --bins` first or set TERN_BIN",
        bin.display()
    );
    bin
}

/// A port that was free a moment ago and that no earlier call in this test
/// process returned. Ports are drawn at random below Linux's ephemeral range
/// (32768 and up), so neither a `bind(0)` elsewhere nor the source port of
/// some client's outgoing connection can take it between the pick and the
/// server's bind; and never twice, so two ports picked one after another (a
/// Tern's gRPC and health ports, a backend's) are never the same.
pub fn free_port() -> u16 {
    use std::hash::BuildHasher;
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let random = std::collections::hash_map::RandomState::new();
    let mut draw = 0u32;
    loop {
        let port = 10_000 + (random.hash_one(draw) % 22_000) as u16;
        draw += 1;
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
}

/// `N` distinct ports that were free a moment ago.
pub fn free_ports<const N: usize>() -> [u16; N] {
    std::array::from_fn(|_| free_port())
}

/// `text` with `{grpc}`, `{http}`, `{health}`, `{metrics}` (`ports`, in
/// that order) and `{dir}` replaced.
fn fill(text: &str, ports: [u16; 4], dir: &std::path::Path) -> String {
    let [grpc, http, health, metrics] = ports;
    text.replace("{grpc}", &grpc.to_string())
        .replace("{http}", &http.to_string())
        .replace("{health}", &health.to_string())
        .replace("{metrics}", &metrics.to_string())
        .replace("{dir}", &dir.display().to_string())
}

/// The config every test instance starts from.
pub const BASE_CONFIG: &str = include_str!("../base-config.yaml");

/// A running `tern`.
pub struct Tern {
    child: Option<Child>,
    /// Scratch directory (config, output files, logs).
    pub dir: tempfile::TempDir,
    /// OTLP/gRPC port.
    pub grpc: u16,
    /// OTLP/HTTP port.
    pub http: u16,
    /// Health check port.
    pub health: u16,
    /// Self-metrics port.
    pub metrics: u16,
    log: PathBuf,
}

impl Tern {
    /// Starts `tern --config tern-0.yaml --config tern-1.yaml`: the base file
    /// ([`BASE_CONFIG`]) sets up the `otlp` receiver, the health check and
    /// self-metrics on free ports; `template` (with `{grpc}`, `{http}`,
    /// `{health}`, `{metrics}` and `{dir}` replaced) adds pipelines and may
    /// override any of it (later files win). Waits until healthy.
    pub fn start(template: &str) -> Tern {
        Tern::start_layered(&[template])
    }

    /// Like [`Tern::start`] with several files after the base, in order.
    pub fn start_layered(templates: &[&str]) -> Tern {
        let tern = Tern::spawn(templates);
        tern.wait_healthy();
        tern
    }

    /// Like [`Tern::start_layered`] without waiting for health.
    pub fn spawn(templates: &[&str]) -> Tern {
        Tern::spawn_wrapped(&[], templates, &[], &[])
    }

    /// Like [`Tern::start`] with extra command-line arguments after the
    /// `--config` files (such as `--watch-config`).
    pub fn start_with_args(args: &[&str], template: &str) -> Tern {
        let tern = Tern::spawn_wrapped(&[], &[template], &[], args);
        tern.wait_healthy();
        tern
    }

    /// Like [`Tern::start`] with extra environment variables.
    pub fn start_with_env(env: &[(&str, &str)], template: &str) -> Tern {
        let tern = Tern::spawn_wrapped(&[], &[template], env, &[]);
        tern.wait_healthy();
        tern
    }

    /// Like [`Tern::start`], run through `wrapper` (a command that ends by
    /// exec'ing its arguments, such as `taskset -c 0`), so the process
    /// keeps the pid. Waits until healthy.
    pub fn start_wrapped(wrapper: &[&str], template: &str) -> Tern {
        let tern = Tern::spawn_wrapped(wrapper, &[template], &[], &[]);
        tern.wait_healthy();
        tern
    }

    fn spawn_wrapped(
        wrapper: &[&str],
        templates: &[&str],
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Tern {
        let dir = tempfile::tempdir().unwrap();
        let [grpc, http, health, metrics] = free_ports();
        let fill = |text: &str| fill(text, [grpc, http, health, metrics], dir.path());
        let mut command = match wrapper.split_first() {
            None => Command::new(tern_bin()),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(tern_bin());
                c
            }
        };
        for (i, text) in std::iter::once(&BASE_CONFIG).chain(templates).enumerate() {
            let path = dir.path().join(format!("tern-{i}.yaml"));
            std::fs::write(&path, fill(text)).unwrap();
            command.arg("--config").arg(path);
        }
        command.args(args);
        let log = dir.path().join("tern.log");
        command.envs(env.iter().copied());
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Tern {
            child: Some(child),
            dir,
            grpc,
            http,
            health,
            metrics,
            log,
        }
    }

    /// Waits (at most 30 s) for the health check to answer 200.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.health)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tern did not become healthy; log:\n{}", self.logs());
    }

    /// What tern wrote to stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Replaces config file `i` (0 is the base file, 1 the first
    /// template) with `template`, filled in as at start.
    pub fn rewrite_config(&self, i: usize, template: &str) {
        let text = fill(
            template,
            [self.grpc, self.http, self.health, self.metrics],
            self.dir.path(),
        );
        // Written whole and renamed into place, as a config map update is.
        let tmp = self.path(&format!("tern-{i}.yaml.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path(&format!("tern-{i}.yaml"))).unwrap();
    }

    /// Sends signal `name` (`HUP`, `TERM`, ...) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends SIGTERM and waits (at most 30 s) for exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tern did not exit after SIGTERM; log:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Scrapes the self-metrics endpoint.
    pub async fn self_metrics(&self) -> String {
        scrape(self.metrics).await
    }

    /// Scrapes the self-metrics until `done` holds for them (at most 30 s,
    /// then panics naming `what`); returns that scrape.
    pub async fn self_metrics_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        scrape_until(self.metrics, what, done).await
    }

    /// Like `self_metrics_until` for values a component updates one after
    /// another (a scrape may fall between two updates, and a scrape reads
    /// its metrics one at a time): waits until `read` gives the same values
    /// on two scrapes in a row and `done` holds for them; returns the
    /// second scrape.
    pub async fn self_metrics_settled<T: PartialEq>(
        &self,
        what: &str,
        read: impl Fn(&str) -> T,
        done: impl Fn(&T) -> bool,
    ) -> String {
        let last = std::cell::RefCell::new(None::<T>);
        scrape_until(self.metrics, what, |m| {
            let now = read(m);
            let settled = last.borrow().as_ref() == Some(&now) && done(&now);
            *last.borrow_mut() = Some(now);
            settled
        })
        .await
    }
}

/// Polls `ok` every 20 ms until it holds (at most 30 s, then panics naming
/// `what`).
pub async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /metrics` on 127.0.0.1:`port`, as text.
pub async fn scrape(port: u16) -> String {
    let r = http_request(port, "GET", "/metrics", &[], Vec::new()).await;
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Scrapes 127.0.0.1:`port` until `done` holds for the text (at most 30 s,
/// then panics naming `what` with the last scrape); returns that scrape.
pub async fn scrape_until(port: u16, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(port).await;
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:
{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for Tern {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of the sample `name{labels}` in Prometheus text, labels given
/// as the exact text between the braces.
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&key).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A kept-alive HTTP/1.1 connection.
pub struct HttpConn {
    port: u16,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl HttpConn {
    /// Connects to 127.0.0.1:`port`.
    pub async fn connect(port: u16) -> HttpConn {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        HttpConn { port, sender }
    }

    /// POSTs an OTLP protobuf body to `path` (`/v1/traces`, ...).
    pub async fn post_proto(&mut self, path: &str, body: Vec<u8>) -> Reply {
        let proto = [("content-type", "application/x-protobuf")];
        self.send("POST", path, &proto, body).await
    }

    /// Sends one request.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.port));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        self.sender.ready().await.unwrap();
        let resp = self.sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    HttpConn::connect(port)
        .await
        .send(method, path, headers, body)
        .await
}

/// A gRPC reply.
#[derive(Debug)]
pub struct GrpcReply {
    /// `grpc-status`.
    pub code: i32,
    /// `grpc-message`, percent-decoded.
    pub message: String,
    /// `grpc-status-details-bin`, base64-decoded.
    pub details: Option<Vec<u8>>,
    /// The response message (unframed).
    pub message_bytes: Bytes,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Calls a unary gRPC method with an already-encoded message; `encoding` is
/// `None`, `Some("gzip")` or `Some("zstd")` (the caller compresses).
pub async fn grpc_call(
    port: u16,
    path: &str,
    message: Vec<u8>,
    encoding: Option<&str>,
) -> GrpcReply {
    let frame = grpc_frame(&message, encoding.is_some());
    grpc_call_body(port, path, frame, encoding).await
}

/// One length-prefixed gRPC message (`compressed` sets its flag).
pub fn grpc_frame(message: &[u8], compressed: bool) -> Bytes {
    let mut frame = BytesMut::with_capacity(message.len() + 5);
    frame.put_u8(u8::from(compressed));
    frame.put_u32(message.len() as u32);
    frame.extend_from_slice(message);
    frame.freeze()
}

/// Calls a gRPC method with `body` as the whole request body, framed by
/// the caller (length-prefixed messages, as many as it likes).
pub async fn grpc_call_body(
    port: u16,
    path: &str,
    body: Bytes,
    encoding: Option<&str>,
) -> GrpcReply {
    grpc_call_headers(port, path, body, encoding, &[]).await
}

/// [`grpc_call_body`] with extra request `headers` (gRPC metadata).
pub async fn grpc_call_headers(
    port: u16,
    path: &str,
    body: Bytes,
    encoding: Option<&str>,
    headers: &[(&str, &str)],
) -> GrpcReply {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-accept-encoding", "identity");
    if let Some(e) = encoding {
        req = req.header("grpc-encoding", e);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "gRPC responses are HTTP 200");
    let mut headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    if let Some(trailers) = collected.trailers() {
        headers.extend(trailers.clone());
    }
    let mut body = collected.to_bytes();
    let message_bytes = if body.len() >= 5 {
        body.advance(1);
        let len = body.get_u32() as usize;
        body.slice(..len)
    } else {
        Bytes::new()
    };
    let get = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    GrpcReply {
        code: get("grpc-status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1),
        message: get("grpc-message")
            .map(|m| percent_decode(&m))
            .unwrap_or_default(),
        details: get("grpc-status-details-bin").map(|d| {
            // gRPC sends it unpadded.
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(d.trim_end_matches('='))
                .unwrap()
        }),
        message_bytes,
    }
}

/// gRPC paths of the three OTLP services.
pub mod paths {
    /// Traces.
    pub const TRACES: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    /// Metrics.
    pub const METRICS: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    /// Logs.
    pub const LOGS: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
}

/// How the scripted backend answers one request.
#[derive(Debug, Clone)]
pub struct Step {
    /// HTTP status.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Step {
    /// An answer with `status` and nothing else.
    pub fn status(status: u16) -> Step {
        Step {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

/// A request the scripted backend received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// Path.
    pub path: String,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body as sent (still compressed if it was).
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
}

/// An OTLP/HTTP backend on 127.0.0.1 that answers from a script (then 200
/// with an empty body forever) and records what it received.
pub struct Backend {
    /// Its port.
    pub port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    after: std::sync::Arc<std::sync::Mutex<Step>>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    /// Starts the backend; `after` is the answer once `script` is used up.
    pub async fn start(script: Vec<Step>, after: Step) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let script = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
            script,
        )));
        let rec = received.clone();
        let after = std::sync::Arc::new(std::sync::Mutex::new(after));
        let answer = after.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (rec, script, after) = (rec.clone(), script.clone(), answer.clone());
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (rec, script, after) = (rec.clone(), script.clone(), after.clone());
                        async move {
                            let at = Instant::now();
                            let path = req.uri().path().to_string();
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let step = script
                                .lock()
                                .unwrap()
                                .pop_front()
                                .unwrap_or_else(|| after.lock().unwrap().clone());
                            rec.lock().unwrap().push(Received {
                                at,
                                path,
                                headers,
                                body,
                                status: step.status,
                            });
                            tokio::time::sleep(step.delay).await;
                            let mut resp = http::Response::new(Full::new(Bytes::from(step.body)));
                            *resp.status_mut() = http::StatusCode::from_u16(step.status).unwrap();
                            for (k, v) in step.headers {
                                resp.headers_mut().insert(k, v.parse().unwrap());
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend {
            port,
            received,
            after,
            task,
        }
    }

    /// Answers with `step` from now on, once the script is used up (a
    /// backend going down and coming back).
    pub fn set_after(&self, step: Step) {
        *self.after.lock().unwrap() = step;
    }

    /// What it received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the peak resident set size (VmHWM) of process `pid`, in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}
