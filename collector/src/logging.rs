//! Tern's own log output (`service.telemetry.logs`): the level filter, then
//! sampling (zap's sampler: per level and message, per `tick`, the first
//! `initial` lines and every `thereafter`-th after them; the rest counted
//! in `tern_telemetry_log_lines_sampled_out_total`), then every line written
//! to each of `output_paths` (stderr, stdout or files appended to, as the
//! Collector's zap logger does) in the chosen encoding with the
//! `initial_fields` and Tern's resource (unless `disable_zap_resource`)
//! added, and handed to each OTLP log record processor
//! (`processors`; see [`crate::self_export`]). As in the Collector, a line
//! sampled out is neither written nor exported, and `initial_fields` are on
//! the written lines only (an OTLP record has the resource as its own).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use tern_config::{Config, FieldValue, LogEncoding, LogOutput, LogSampling};
use tern_core::telemetry::{Counter, Telemetry};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::self_export::{self, LogSender, PendingLogs};

/// Installs the global subscriber for `config`, `resource` being Tern's
/// own; returns the export side of each log record processor, for the
/// service to start.
pub fn init(
    config: &Config,
    telemetry: &Telemetry,
    resource: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<PendingLogs>> {
    let logs = &config.service.telemetry.logs;
    // The initial fields, then the resource, as zap adds them.
    let mut fields: Vec<(String, FieldValue)> = logs
        .initial_fields
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if logs.resource_on_lines && !resource.is_empty() {
        let resource = resource
            .iter()
            .map(|(k, v)| (k.clone(), FieldValue::String(v.clone())))
            .collect();
        fields.push(("resource".to_string(), FieldValue::Map(resource)));
    }
    let filter = EnvFilter::try_new(&logs.level).with_context(|| {
        format!(
            "service.telemetry.logs.level: invalid level `{}`",
            logs.level
        )
    })?;
    let outputs = Outputs::open(&logs.outputs, inserted(logs.encoding, &fields))?;
    let ansi = logs.outputs == [LogOutput::Stderr] && io::IsTerminal::is_terminal(&io::stderr());
    let written = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(outputs);
    let written = match logs.encoding {
        LogEncoding::Json => written.json().boxed(),
        LogEncoding::Console => written.boxed(),
    };
    let (senders, pending): (Vec<LogSender>, Vec<PendingLogs>) = logs
        .processors
        .iter()
        .enumerate()
        .map(|(i, p)| self_export::log_queue(i, p.batch, p.exporter.clone(), telemetry))
        .unzip();
    let exported = (!senders.is_empty()).then_some(OtlpLogs { senders });
    let sampler = logs.sampling.map(|s| Sampler::new(s, telemetry));
    tracing_subscriber::registry()
        .with(filter)
        .with(sampler)
        .with(written)
        .with(exported)
        .try_init()
        .context("cannot install the logger")?;
    Ok(pending)
}

/// zap's sampler counters per level.
const COUNTERS_PER_LEVEL: usize = 4096;
const LEVELS: usize = 5;

/// One counter of the sampler: lines seen since `reset_at` (nanoseconds
/// since the sampler started).
#[derive(Default)]
struct SampleCounter {
    reset_at: AtomicU64,
    count: AtomicU64,
}

impl SampleCounter {
    /// Counts one line at `now`; returns its number within the current tick.
    fn inc_check_reset(&self, now: u64, tick: u64) -> u64 {
        let reset_at = self.reset_at.load(Ordering::Acquire);
        if reset_at > now {
            return self.count.fetch_add(1, Ordering::AcqRel) + 1;
        }
        self.count.store(1, Ordering::Release);
        if self
            .reset_at
            .compare_exchange(reset_at, now + tick, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another thread reset it at the same moment: count after it.
            return self.count.fetch_add(1, Ordering::AcqRel) + 1;
        }
        1
    }
}

/// `service.telemetry.logs.sampling`, as zap's sampler: keyed by level and
/// by the message's FNV-1a hash over a fixed table (messages that collide
/// share a count, as in zap).
struct Sampler {
    settings: LogSampling,
    tick: u64,
    start: Instant,
    counters: Box<[SampleCounter]>,
    sampled_out: Counter,
}

impl Sampler {
    fn new(settings: LogSampling, telemetry: &Telemetry) -> Sampler {
        Sampler {
            settings,
            tick: u64::try_from(settings.tick.as_nanos()).unwrap_or(u64::MAX),
            start: Instant::now(),
            counters: (0..LEVELS * COUNTERS_PER_LEVEL)
                .map(|_| SampleCounter::default())
                .collect(),
            sampled_out: telemetry.counter(
                "tern_telemetry_log_lines_sampled_out_total",
                "Log lines neither written nor exported because of service.telemetry.logs.sampling.",
                &[],
            ),
        }
    }

    /// Whether a line of `level` with `message` is kept.
    fn keep(&self, level: Level, message: &str) -> bool {
        let level = match level {
            Level::TRACE => 0,
            Level::DEBUG => 1,
            Level::INFO => 2,
            Level::WARN => 3,
            Level::ERROR => 4,
        };
        let hash = message.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let counter =
            &self.counters[level * COUNTERS_PER_LEVEL + hash as usize % COUNTERS_PER_LEVEL];
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let n = counter.inc_check_reset(now, self.tick);
        let LogSampling {
            initial,
            thereafter,
            ..
        } = self.settings;
        // `is_multiple_of(0)` is false past `initial`: everything is dropped.
        let keep = n <= initial || (n - initial).is_multiple_of(thereafter);
        if !keep {
            self.sampled_out.add(1);
        }
        keep
    }
}

thread_local! {
    /// The message of the event being sampled.
    static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Writes an event's `message` field into a string.
struct MessageOf<'a>(&'a mut String);

impl Visit for MessageOf<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Sampler {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let level = *event.metadata().level();
        MESSAGE.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut message) => {
                message.clear();
                event.record(&mut MessageOf(&mut message));
                self.keep(level, &message)
            }
            // An event raised while one is being sampled.
            Err(_) => {
                let mut message = String::new();
                event.record(&mut MessageOf(&mut message));
                self.keep(level, &message)
            }
        })
    }
}

/// Sends every line that passed the filter and sampling to each log record
/// processor, as an OTLP log record: severity, the message as body, the
/// fields as attributes (the resource and scope are added when sent).
struct OtlpLogs {
    senders: Vec<LogSender>,
}

/// An event's fields as OTLP: `message` as the body, the rest as attributes.
#[derive(Default)]
struct RecordFields {
    body: Option<AnyValue>,
    attributes: Vec<KeyValue>,
}

impl RecordFields {
    fn add(&mut self, field: &Field, value: any_value::Value) {
        let value = Some(AnyValue { value: Some(value) });
        if field.name() == "message" {
            self.body = value;
        } else {
            self.attributes.push(KeyValue {
                key: field.name().to_string(),
                value,
                ..KeyValue::default()
            });
        }
    }
}

impl Visit for RecordFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, any_value::Value::IntValue(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.add(field, any_value::Value::IntValue(v)),
            Err(_) => self.add(field, any_value::Value::StringValue(value.to_string())),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, any_value::Value::DoubleValue(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, any_value::Value::BoolValue(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, any_value::Value::StringValue(value.to_string()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.add(field, any_value::Value::StringValue(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.add(field, any_value::Value::StringValue(format!("{value:?}")));
    }
}

/// OTLP severity number and text (zap's level names) of a `tracing` level.
fn severity(level: Level) -> (i32, &'static str) {
    match level {
        Level::TRACE => (1, "trace"),
        Level::DEBUG => (5, "debug"),
        Level::INFO => (9, "info"),
        Level::WARN => (13, "warn"),
        Level::ERROR => (17, "error"),
    }
}

impl<S: Subscriber> Layer<S> for OtlpLogs {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if self_export::exporting_logs() {
            return;
        }
        let mut fields = RecordFields::default();
        event.record(&mut fields);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let (severity_number, severity_text) = severity(*event.metadata().level());
        let record = LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            severity_number,
            severity_text: severity_text.to_string(),
            body: fields.body,
            attributes: fields.attributes,
            ..LogRecord::default()
        };
        if let Some((last, others)) = self.senders.split_last() {
            for sender in others {
                sender.offer(record.clone());
            }
            last.offer(record);
        }
    }
}

/// `initial_fields` as written into each line: JSON members for the json
/// encoding (after the line's opening brace), ` key=value` pairs for the
/// console one (before its newline), strings quoted as the console
/// encoding quotes field strings.
enum Inserted {
    None,
    Json(Vec<u8>),
    Console(Vec<u8>),
}

fn json_value(value: &FieldValue) -> serde_json::Value {
    match value {
        FieldValue::Null => serde_json::Value::Null,
        FieldValue::Bool(b) => serde_json::Value::Bool(*b),
        FieldValue::Int(i) => serde_json::Value::from(*i),
        FieldValue::Float(f) => serde_json::Value::from(*f),
        FieldValue::String(s) => serde_json::Value::from(s.as_str()),
        FieldValue::List(items) => items.iter().map(json_value).collect(),
        FieldValue::Map(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

fn inserted(encoding: LogEncoding, fields: &[(String, FieldValue)]) -> Inserted {
    if fields.is_empty() {
        return Inserted::None;
    }
    let mut out = String::new();
    for (key, value) in fields {
        let json = json_value(value);
        match encoding {
            LogEncoding::Json => {
                let _ = write!(out, "{}:{json},", serde_json::Value::from(key.as_str()));
            }
            LogEncoding::Console => match value {
                FieldValue::String(s) => {
                    let _ = write!(out, " {key}={s:?}");
                }
                _ => {
                    let _ = write!(out, " {key}={json}");
                }
            },
        }
    }
    match encoding {
        LogEncoding::Json => Inserted::Json(out.into_bytes()),
        LogEncoding::Console => Inserted::Console(out.into_bytes()),
    }
}

enum Output {
    Stderr,
    Stdout,
    File(Mutex<File>),
}

/// Every configured output; each formatted line is written to all of them.
struct Outputs {
    outputs: Vec<Output>,
    inserted: Inserted,
}

impl Outputs {
    fn open(outputs: &[LogOutput], inserted: Inserted) -> anyhow::Result<Self> {
        let mut opened = Vec::with_capacity(outputs.len());
        for output in outputs {
            opened.push(match output {
                LogOutput::Stderr => Output::Stderr,
                LogOutput::Stdout => Output::Stdout,
                LogOutput::File(path) => Output::File(Mutex::new(
                    File::options()
                        .create(true)
                        .append(true)
                        .open(path)
                        .with_context(|| {
                            format!("service.telemetry.logs.output_paths: cannot open `{path}`")
                        })?,
                )),
            });
        }
        Ok(Outputs {
            outputs: opened,
            inserted,
        })
    }
}

impl<'a> MakeWriter<'a> for Outputs {
    type Writer = Tee<'a>;

    fn make_writer(&'a self) -> Tee<'a> {
        Tee(self)
    }
}

/// Writes one formatted line (the subscriber writes each event at once) to
/// every output, with the initial fields added.
struct Tee<'a>(&'a Outputs);

impl Tee<'_> {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        for output in &self.0.outputs {
            match output {
                Output::Stderr => io::stderr().write_all(line)?,
                Output::Stdout => io::stdout().write_all(line)?,
                Output::File(file) => file
                    .lock()
                    .map_err(|_| io::Error::other("log file lock poisoned"))?
                    .write_all(line)?,
            }
        }
        Ok(())
    }
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.0.inserted {
            Inserted::None => self.write_line(buf)?,
            Inserted::Json(fields) => match buf.split_first() {
                Some((b'{', rest)) => self.write_line(&[b"{", &fields[..], rest].concat())?,
                _ => self.write_line(buf)?,
            },
            Inserted::Console(fields) => {
                let (text, newline) = match buf.strip_suffix(b"\n") {
                    Some(text) => (text, &b"\n"[..]),
                    None => (buf, &b""[..]),
                };
                self.write_line(&[text, &fields[..], newline].concat())?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        for output in &self.0.outputs {
            match output {
                Output::Stderr => io::stderr().flush()?,
                Output::Stdout => io::stdout().flush()?,
                Output::File(file) => file
                    .lock()
                    .map_err(|_| io::Error::other("log file lock poisoned"))?
                    .flush()?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sampler(
        tick: Duration,
        initial: u64,
        thereafter: u64,
    ) -> (Sampler, std::sync::Arc<Telemetry>) {
        let t = Telemetry::new();
        let s = Sampler::new(
            LogSampling {
                tick,
                initial,
                thereafter,
            },
            &t,
        );
        (s, t)
    }

    #[test]
    fn sampling_keeps_the_first_lines_then_every_nth_per_message_and_level() {
        let (s, t) = sampler(Duration::from_secs(3600), 3, 5);
        let kept: Vec<u64> = (1..=20u64)
            .filter(|_| s.keep(Level::INFO, "same"))
            .collect();
        assert_eq!(kept, [1, 2, 3, 8, 13, 18]);
        // Another message, or the same at another level, counts apart.
        assert!(s.keep(Level::INFO, "other"));
        assert!(s.keep(Level::WARN, "same"));
        assert!(
            t.render()
                .contains("tern_telemetry_log_lines_sampled_out_total 14")
        );
    }

    #[test]
    fn thereafter_zero_drops_the_rest_of_the_tick_and_a_new_tick_starts_over() {
        let (s, _) = sampler(Duration::from_secs(3600), 2, 0);
        let kept = (0..10).filter(|_| s.keep(Level::ERROR, "x")).count();
        assert_eq!(kept, 2);
        // A tick of zero: every line starts a new tick.
        let (s, _) = sampler(Duration::ZERO, 1, 0);
        assert!((0..10).all(|_| s.keep(Level::ERROR, "x")));
    }

    #[test]
    fn initial_fields_go_into_json_objects_and_onto_console_lines() {
        let fields = [
            ("env".to_string(), FieldValue::String("prod".into())),
            ("n".to_string(), FieldValue::Int(3)),
            (
                "resource".to_string(),
                FieldValue::Map(BTreeMap::from([(
                    "service.name".to_string(),
                    FieldValue::String("tern".into()),
                )])),
            ),
        ];
        let Inserted::Json(json) = inserted(LogEncoding::Json, &fields) else {
            panic!()
        };
        assert_eq!(
            json,
            br#""env":"prod","n":3,"resource":{"service.name":"tern"},"#
        );
        let Inserted::Console(console) = inserted(LogEncoding::Console, &fields) else {
            panic!()
        };
        assert_eq!(
            console,
            br#" env="prod" n=3 resource={"service.name":"tern"}"#
        );
        assert!(matches!(inserted(LogEncoding::Json, &[]), Inserted::None));
    }
}
