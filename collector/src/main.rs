//! The `tern` binary: parses the command line, loads and validates the
//! configuration, then runs the [`service::Service`] until SIGINT, SIGTERM
//! or a panicking task, and shuts it down in order. SIGHUP, and with
//! `--watch-config` a change to a config file, reloads the configuration
//! ([`service::Service::reload`]). The process exits
//! within the shutdown deadline plus [`EXIT_GRACE`] whatever a pipeline is
//! doing: 0 when everything stopped, 1 when some task panicked or had to be
//! abandoned.
//!
//! - `tern [--config FILE]... [--watch-config]`: run (the embedded default config when no file is given)
//! - `tern validate --config FILE...`: check the configuration and exit
//! - `tern components`: list built-in components and their signals

mod admin;
mod components;
mod file_storage;
mod logging;
mod pprof;
mod receiver;
mod self_export;
mod serve;
mod service;
mod zpages;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tern_config::{Config, ConfigErrors, components::CATALOG};

#[derive(Debug, Parser)]
#[command(
    name = "tern",
    version,
    about = "Tern: a fast, bounded OpenTelemetry collector"
)]
struct Cli {
    /// Configuration file (repeatable; later files override earlier ones).
    /// Without it, Tern runs its embedded default configuration.
    #[arg(long = "config", short = 'c', global = true, value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Reload the configuration when a `--config` file changes (checked
    /// every 500 ms; a change is applied once the files have stayed the
    /// same for one check). SIGHUP always reloads.
    #[arg(long = "watch-config")]
    watch_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the configuration without starting; prints one line per problem.
    Validate,
    /// List the built-in components and the signals each supports.
    Components,
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn load(files: &[PathBuf]) -> Result<Config, ConfigErrors> {
    if files.is_empty() {
        tern_config::load_sources(
            &[(
                "<embedded default config>".into(),
                tern_config::DEFAULT_CONFIG.into(),
            )],
            &env_lookup,
        )
    } else {
        tern_config::load_files(files, &env_lookup)
    }
}

fn print_errors(errors: &ConfigErrors) {
    for e in &errors.0 {
        eprintln!("{e}");
    }
    eprintln!(
        "{} problem{} found in the configuration",
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
}

/// Prints every built-in type, then each deprecated alias on its own line.
fn components() {
    println!(
        "{:<11} {:<24} {:<22} description",
        "kind", "type", "signals"
    );
    for c in CATALOG {
        let signals: Vec<&str> = c.signals.iter().map(|s| s.as_str()).collect();
        let signals = if signals.is_empty() {
            "-".to_string()
        } else {
            signals.join(",")
        };
        println!(
            "{:<11} {:<24} {:<22} {}",
            c.kind.noun(),
            c.type_name,
            signals,
            c.description
        );
        for alias in c.aliases {
            println!(
                "{:<11} {:<24} {:<22} deprecated alias of `{}`",
                c.kind.noun(),
                alias,
                signals,
                c.type_name
            );
        }
    }
}

/// Time past the shutdown deadline for what follows it (tasks told to give
/// up, endpoints closed, the runtime stopped) before the process exits
/// regardless.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How long the runtime waits for its tasks once the service has shut down;
/// a task stuck in CPU-bound work never returns, and is left behind.
const RUNTIME_STOP: Duration = Duration::from_secs(1);

/// What the stop channel carries when a task panicked.
const PANIC: &str = "panic";

/// What the stop channel carries when a config file changed (`--watch-config`).
const CHANGED: &str = "config file changed";

/// How often `--watch-config` reads the config files.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Listens for SIGINT, SIGTERM and SIGHUP on a thread of its own, so that a
/// signal is seen even when every runtime worker is busy; the receiver gets
/// the signal's name, and whatever else is sent on the returned sender.
/// The thread ends after SIGINT or SIGTERM.
fn listen_for_signals() -> anyhow::Result<(mpsc::Receiver<&'static str>, mpsc::Sender<&'static str>)>
{
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot start the signal thread's runtime")?;
    let (mut int, mut term, mut hup) = {
        let _inside = runtime.enter();
        (
            signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
        )
    };
    let (tx, rx) = mpsc::channel();
    let stop = tx.clone();
    std::thread::Builder::new()
        .name("tern-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                loop {
                    let name = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                        _ = hup.recv() => "SIGHUP",
                    };
                    if tx.send(name).is_err() || name != "SIGHUP" {
                        return;
                    }
                }
            });
        })
        .context("cannot start the signal thread")?;
    Ok((rx, stop))
}

/// The contents of `files` (a file that cannot be read counts as empty,
/// and its error shows when the configuration is loaded).
fn contents(files: &[PathBuf]) -> Vec<Vec<u8>> {
    files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

/// `--watch-config`: reads `files` every [`WATCH_INTERVAL`] on a thread of
/// its own and sends [`CHANGED`] once they differ from what was last
/// loaded and have stayed the same for one interval (an editor or a
/// config-map update writing in several steps triggers one reload).
fn watch_config(files: Vec<PathBuf>, changed: mpsc::Sender<&'static str>) -> anyhow::Result<()> {
    let mut loaded = contents(&files);
    let mut seen = loaded.clone();
    std::thread::Builder::new()
        .name("tern-config-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(WATCH_INTERVAL);
                let now = contents(&files);
                if now == seen && now != loaded {
                    if changed.send(CHANGED).is_err() {
                        return;
                    }
                    loaded = now.clone();
                }
                seen = now;
            }
        })
        .context("cannot start the config watcher")?;
    Ok(())
}

/// Ends the process with status 1 if it is still running after `bound`:
/// the last resort when every runtime worker is stuck, so that not even the
/// shutdown's own timers fire.
fn exit_after(bound: Duration) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("tern-exit-watchdog".into())
        .spawn(move || {
            std::thread::sleep(bound);
            tracing::error!(
                after_seconds = bound.as_secs(),
                "shutdown did not finish: every runtime worker is stuck; the last stage logged did not complete; exiting"
            );
            std::process::exit(1);
        })
        .context("cannot start the exit watchdog")?;
    Ok(())
}

fn run(config: Config, files: &[PathBuf], watch: bool) -> anyhow::Result<ExitCode> {
    let telemetry = tern_core::telemetry::Telemetry::new();
    let resource = admin::own_resource(&config.service.telemetry.resource);
    let own_logs = logging::init(&config, &telemetry, &resource)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // One worker per CPU the process may use: `available_parallelism`
    // follows the cgroup CPU quota (a container limited to 2 CPUs gets 2
    // workers even on a 64-core node).
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .thread_name("tern-worker")
        .build()
        .context("cannot start the async runtime")?;
    let (signals, stop) = listen_for_signals()?;
    if watch {
        watch_config(files.to_vec(), stop.clone())?;
    }
    // A panicking task is logged and stops the process, which then exits 1
    // (as a panic ends the Collector): shut down in order, since the rest
    // of the graph can still deliver what it holds.
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "a task panicked; shutting down");
        let _ = stop.send(PANIC);
    }));
    let mut service = runtime.block_on(service::Service::start(
        &config, telemetry, &resource, own_logs,
    ))?;
    let signal = loop {
        let signal = signals.recv().context("the signal thread stopped")?;
        if signal != "SIGHUP" && signal != CHANGED {
            break signal;
        }
        tracing::info!(trigger = signal, "reloading the configuration");
        runtime.block_on(service.reload(load(files)));
    };
    if signal != PANIC {
        tracing::info!(signal, "received signal");
    }
    exit_after(Config::SHUTDOWN_DEADLINE + EXIT_GRACE)?;
    let stopped = runtime.block_on(service.shutdown(Config::SHUTDOWN_DEADLINE));
    runtime.shutdown_timeout(RUNTIME_STOP);
    Ok(if stopped.is_clean() && signal != PANIC {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Components) => {
            components();
            ExitCode::SUCCESS
        }
        Some(Command::Validate) => match load(&cli.config) {
            Ok(config) => {
                for w in &config.warnings {
                    eprintln!("warning: {w}");
                }
                println!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                print_errors(&errors);
                ExitCode::FAILURE
            }
        },
        None => match load(&cli.config) {
            Err(errors) => {
                print_errors(&errors);
                ExitCode::FAILURE
            }
            Ok(_) if cli.watch_config && cli.config.is_empty() => {
                eprintln!("tern: --watch-config needs at least one --config file");
                ExitCode::FAILURE
            }
            Ok(config) => match run(config, &cli.config, cli.watch_config) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("tern: {e:#}");
                    ExitCode::FAILURE
                }
            },
        },
    }
}
