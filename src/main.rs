//! `twincast` command line: run, check-config, probe, status; each command is its own file
//! (`src/run.rs`, `src/cmd/`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Default configuration path (design §5).
const DEFAULT_CONFIG: &str = "/etc/twincast/twincast.toml";

#[derive(Parser)]
#[command(
    name = "twincast",
    version,
    about = "Epoch-locked live encoder: ladder, double push, local origin"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show which sources, encoders and devices this box has.
    Probe,
    /// Check a configuration file: every error at once, exit 78 when invalid.
    CheckConfig {
        /// Configuration file.
        path: PathBuf,
    },
    /// Show the running daemon's status (from its control listener).
    Status {
        /// Control listener address; default: `[control] listen` of the config file.
        #[arg(long)]
        control: Option<std::net::SocketAddr>,
        /// Configuration file to find the control listener in.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the raw JSON document.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => twincast::run::main(&config),
        Command::Probe => twincast::cmd::probe::main(),
        Command::CheckConfig { path } => twincast::cmd::check_config::main(&path),
        Command::Status {
            control,
            config,
            json,
        } => twincast::cmd::status::main(control, &config, json),
    }
}
