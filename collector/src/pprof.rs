//! The `pprof` extension: CPU profiles of Tern in the pprof format (a
//! gzip-compressed `profile.proto`, what `go tool pprof` reads), at the
//! paths of Go's `net/http/pprof`: `/debug/pprof/profile?seconds=N`
//! (default 30) samples every thread for N seconds, `/debug/pprof/` lists
//! what is served, `/debug/pprof/cmdline` gives the command line; other
//! paths are a 404. With `save_to_file`, the CPU is profiled from start to
//! shutdown into that file, as the Collector does. One CPU profile runs at
//! a time; a second one meanwhile gets a 500, as in Go.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::serve::{self, Shutdown, response};
use tern_config::{Component, PprofConfig};
use tern_core::build::{BuildError, Built, Context, Serve, Server, Starter};

/// Samples per second, as Go's CPU profiler takes them.
const FREQUENCY: i32 = 100;

/// The messages of pprof's `profile.proto` that a CPU profile uses.
mod proto {
    /// `perftools.profiles.Profile`.
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
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
    }

    /// `ValueType`: indices into the string table.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    /// `Sample`: a stack (leaf first) and its values.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    /// `Label`: a string label (indices into the string table).
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
    }

    /// `Location`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    /// `Line`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    /// `Function`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
    }
}

/// Why a profile could not be taken.
#[derive(Debug, thiserror::Error)]
enum ProfileError {
    /// The sampler could not start (another profile runs) or report.
    #[error("Could not enable CPU profiling: {0}")]
    Profiler(#[from] ::pprof::Error),
    /// Compression failed.
    #[error("could not write the profile: {0}")]
    Io(#[from] std::io::Error),
}

/// Interns strings into the profile's string table (index 0 is "").
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        let mut s = Strings::default();
        s.get("");
        s
    }

    fn get(&mut self, text: &str) -> i64 {
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(text.to_string());
        self.index.insert(text.to_string(), i);
        i
    }
}

/// `report` as a gzip-compressed `profile.proto`: sample counts and CPU
/// nanoseconds per stack, labelled with the thread.
fn encode(report: &::pprof::Report) -> Result<Vec<u8>, std::io::Error> {
    let mut strings = Strings::new();
    let period = 1_000_000_000 / i64::from(report.timing.frequency.max(1));
    let samples_type = proto::ValueType {
        r#type: strings.get("samples"),
        unit: strings.get("count"),
    };
    let cpu_type = proto::ValueType {
        r#type: strings.get("cpu"),
        unit: strings.get("nanoseconds"),
    };
    let thread = strings.get("thread");
    let mut functions: HashMap<(String, String), u64> = HashMap::new();
    let mut locations: HashMap<(u64, u32), u64> = HashMap::new();
    let mut profile = proto::Profile {
        sample_type: vec![samples_type, cpu_type],
        time_nanos: report
            .timing
            .start_time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64),
        duration_nanos: report.timing.duration.as_nanos() as i64,
        period_type: Some(cpu_type),
        period,
        ..Default::default()
    };
    for (frames, count) in &report.data {
        let mut stack = Vec::new();
        // Leaf first, inlined symbols innermost first, as pprof expects.
        for symbol in frames.frames.iter().flatten() {
            let name = symbol.name();
            let file = symbol.filename().into_owned();
            let function_id = match functions.get(&(name.clone(), file.clone())) {
                Some(&id) => id,
                None => {
                    let id = profile.function.len() as u64 + 1;
                    profile.function.push(proto::Function {
                        id,
                        name: strings.get(&name),
                        system_name: strings.get(&symbol.sys_name()),
                        filename: strings.get(&file),
                    });
                    functions.insert((name, file), id);
                    id
                }
            };
            let line = symbol.lineno();
            let location_id = *locations.entry((function_id, line)).or_insert_with(|| {
                let id = profile.location.len() as u64 + 1;
                profile.location.push(proto::Location {
                    id,
                    address: symbol.addr.map_or(0, |a| a as u64),
                    line: vec![proto::Line {
                        function_id,
                        line: i64::from(line),
                    }],
                });
                id
            });
            stack.push(location_id);
        }
        let count = *count as i64;
        profile.sample.push(proto::Sample {
            location_id: stack,
            value: vec![count, count * period],
            label: vec![proto::Label {
                key: thread,
                str: strings.get(&frames.thread_name_or_id()),
            }],
        });
    }
    profile.string_table = strings.table;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&prost::Message::encode_to_vec(&profile))?;
    gz.finish()
}

/// A running CPU profile (the sampler is process-wide: one at a time).
struct CpuProfile(::pprof::ProfilerGuard<'static>);

impl CpuProfile {
    /// Starts sampling every thread.
    fn start() -> Result<CpuProfile, ProfileError> {
        Ok(CpuProfile(
            ::pprof::ProfilerGuardBuilder::default()
                .frequency(FREQUENCY)
                .blocklist(&["libc", "libgcc", "pthread", "vdso"])
                .build()?,
        ))
    }

    /// Stops sampling; the profile so far, gzip-compressed `profile.proto`.
    fn finish(self) -> Result<Vec<u8>, ProfileError> {
        let report = self.0.report().build()?;
        Ok(encode(&report)?)
    }
}

/// `save_to_file`: starts profiling now (before anything else can take
/// the sampler) and returns the task that, at `shutdown`, writes the
/// profile into `file` (created at start, so a bad path stops the start).
pub fn save_to_file(
    file: std::fs::File,
    path: String,
    mut shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, std::io::Error> {
    let running = CpuProfile::start().map_err(std::io::Error::other)?;
    Ok(tokio::spawn(async move {
        serve::stopped(&mut shutdown).await;
        let written = tokio::task::spawn_blocking(move || -> Result<(), ProfileError> {
            let mut file = file;
            file.write_all(&running.finish()?)?;
            Ok(())
        })
        .await;
        match written {
            Ok(Ok(())) => tracing::info!(path, "pprof: CPU profile saved"),
            Ok(Err(e)) => tracing::error!(path, error = %e, "pprof: cannot write save_to_file"),
            Err(e) => tracing::error!(path, error = %e, "pprof: cannot write save_to_file"),
        }
    }))
}

/// `seconds` from a query string (Go's default 30); `None` if it is not a
/// positive integer.
fn seconds(query: Option<&str>) -> Option<u64> {
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("seconds="));
    match value {
        None | Some("") => Some(30),
        Some(v) => v.parse::<u64>().ok().filter(|&s| s > 0),
    }
}

/// Profiles for `seconds` (cut short by `shutdown`) and answers with it.
async fn profile(seconds: u64, mut shutdown: Shutdown) -> Response<Full<Bytes>> {
    let failed = |e: ProfileError| {
        response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("{e}\n"),
        )
    };
    let running = match CpuProfile::start() {
        Ok(running) => running,
        Err(e) => return failed(e),
    };
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        () = serve::stopped(&mut shutdown) => {}
    }
    // Symbolizing takes a while: off the async threads.
    let finished = tokio::task::spawn_blocking(move || running.finish()).await;
    match finished {
        Ok(Ok(body)) => {
            let mut r = response(StatusCode::OK, "application/octet-stream", body);
            r.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"profile\""),
            );
            r
        }
        Ok(Err(e)) => failed(e),
        Err(e) => failed(ProfileError::Io(std::io::Error::other(e))),
    }
}

const INDEX: &str = "<html>\n<head><title>/debug/pprof/</title></head>\n<body>\n/debug/pprof/\n<ul>\n<li><a href=\"cmdline\">cmdline</a>: the command line of the running program</li>\n<li><a href=\"profile?seconds=30\">profile</a>: CPU profile (pprof format); `seconds` sets the duration (default 30)</li>\n</ul>\n</body>\n</html>\n";

/// Serves the pprof paths until `shutdown`.
pub async fn run(listener: tokio::net::TcpListener, shutdown: Shutdown) {
    let stop = shutdown.clone();
    let make = move |_peer: SocketAddr| {
        let stop = stop.clone();
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let stop = stop.clone();
            async move {
                let r = match req.uri().path() {
                    "/debug/pprof/profile" => match seconds(req.uri().query()) {
                        Some(s) => profile(s, stop).await,
                        None => response(
                            StatusCode::BAD_REQUEST,
                            "text/plain; charset=utf-8",
                            "invalid value for \"seconds\"\n",
                        ),
                    },
                    "/debug/pprof/" => response(StatusCode::OK, "text/html; charset=utf-8", INDEX),
                    "/debug/pprof/cmdline" => response(
                        StatusCode::OK,
                        "text/plain; charset=utf-8",
                        std::env::args().collect::<Vec<_>>().join("\0"),
                    ),
                    _ => response(StatusCode::NOT_FOUND, "text/plain", "404 page not found\n"),
                };
                Ok::<_, Infallible>(r)
            }
        })
    };
    serve::serve(
        listener,
        serve::Protocol::Auto,
        serve::Limits::default(),
        None,
        None,
        shutdown,
        make,
    )
    .await;
}

/// Builds the `pprof` extension: its endpoint, and with `save_to_file` a
/// CPU profile from now to shutdown written into that file.
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let config = ctx.settings::<PprofConfig>(c)?;
    let mut beside: Vec<(String, Starter)> = Vec::new();
    if !config.save_to_file.is_empty() {
        let failed = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "extensions.{}.save_to_file: {}: {e}",
                    ctx.id, config.save_to_file
                ),
            )
        };
        let file = std::fs::File::create(&config.save_to_file).map_err(failed)?;
        // Profiling starts now; the task writes the file once told to stop.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let saving = save_to_file(file, config.save_to_file.clone(), stopped).map_err(failed)?;
        beside.push((
            format!("extension {} (save_to_file)", ctx.id),
            Box::new(move |mut shutdown: Shutdown| {
                Box::pin(async move {
                    serve::stopped(&mut shutdown).await;
                    let _ = stop.send(true);
                    let _ = saving.await;
                })
            }),
        ));
    }
    Ok(Built {
        servers: vec![Server {
            what: format!("extension {}", ctx.id),
            key: format!("extensions.{}.endpoint", ctx.id),
            endpoint: config.endpoint.clone(),
            serve: Serve::Task(Box::new(|l, stop| Box::pin(run(l, stop)))),
        }],
        beside,
        ..Built::default()
    })
}
