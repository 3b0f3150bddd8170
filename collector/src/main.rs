//! The `tern` binary: parses the command line, loads and validates the
//! configuration, then runs the [`service::Service`] until SIGINT or SIGTERM
//! and shuts it down in order.
//!
//! - `tern [--config FILE]...`: run (the embedded default config when no file is given)
//! - `tern validate --config FILE...`: check the configuration and exit
//! - `tern components`: list built-in components and their signals

mod admin;
mod logging;
mod receiver;
mod serve;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;

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

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => { r.context("cannot listen for SIGINT")?; Ok("SIGINT") }
        _ = term.recv() => Ok("SIGTERM"),
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    logging::init(&config)?;
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
    runtime.block_on(async {
        let service = service::Service::start(&config).await?;
        let signal = wait_for_signal().await?;
        tracing::info!(signal, "received signal");
        service.shutdown(Config::SHUTDOWN_DEADLINE).await;
        Ok(())
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
            Ok(config) => match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tern: {e:#}");
                    ExitCode::FAILURE
                }
            },
        },
    }
}
