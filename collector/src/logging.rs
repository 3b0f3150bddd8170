//! Tern's own log output (`service.telemetry.logs`): the level filter, the
//! encoding, and every line written to each of `output_paths` (stderr,
//! stdout or files appended to, as the Collector's zap logger does).

use std::fs::File;
use std::io::{self, Write};
use std::sync::Mutex;

use anyhow::Context;
use tern_config::{Config, LogEncoding, LogOutput};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global subscriber for `config`.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let logs = &config.service.telemetry.logs;
    let filter = EnvFilter::try_new(&logs.level).with_context(|| {
        format!(
            "service.telemetry.logs.level: invalid level `{}`",
            logs.level
        )
    })?;
    let outputs = Outputs::open(&logs.outputs)?;
    let ansi = logs.outputs == [LogOutput::Stderr] && io::IsTerminal::is_terminal(&io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(outputs);
    match logs.encoding {
        LogEncoding::Json => builder.json().init(),
        LogEncoding::Console => builder.init(),
    }
    Ok(())
}

enum Output {
    Stderr,
    Stdout,
    File(Mutex<File>),
}

/// Every configured output; each formatted line is written to all of them.
struct Outputs(Vec<Output>);

impl Outputs {
    fn open(outputs: &[LogOutput]) -> anyhow::Result<Self> {
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
        Ok(Outputs(opened))
    }
}

impl<'a> MakeWriter<'a> for Outputs {
    type Writer = Tee<'a>;

    fn make_writer(&'a self) -> Tee<'a> {
        Tee(&self.0)
    }
}

/// Writes one formatted line (the subscriber writes each event at once) to
/// every output.
struct Tee<'a>(&'a [Output]);

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for output in self.0 {
            match output {
                Output::Stderr => io::stderr().write_all(buf)?,
                Output::Stdout => io::stdout().write_all(buf)?,
                Output::File(file) => file
                    .lock()
                    .map_err(|_| io::Error::other("log file lock poisoned"))?
                    .write_all(buf)?,
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        for output in self.0 {
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
