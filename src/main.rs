//! `twincast` command line: run, check-config, probe, status; each command is its own file
//! (`src/run.rs`, `src/cmd/`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use twincast::exit;

/// Default configuration path (docs/design/operations.md, *Commands and exit codes*).
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
    /// Write man pages and shell completions into a directory (scripts/build-deb).
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match cli.command {
        Command::Run { config } => twincast::run::main(&config),
        Command::Probe => twincast::cmd::probe::main(),
        Command::CheckConfig { path } => twincast::cmd::check_config::main(&path),
        Command::Status {
            control,
            config,
            json,
        } => twincast::cmd::status::main(control, &config, json),
        Command::GenerateDocs { dir } => twincast::cmd::gen_docs::main(Cli::command(), &dir),
    }
}

/// `--help` and `--version` go to stdout with exit 0; a usage error is printed by clap (what was
/// wrong, the usage line) and exits 64, EX_USAGE (clap's own code would be 2;
/// docs/design/operations.md, *Commands and exit codes*).
fn usage_error(e: &clap::Error) -> ExitCode {
    // Printing fails only when stdout/stderr is closed; the exit code still tells.
    let _ = e.print();
    if e.use_stderr() {
        exit::code(exit::EX_USAGE)
    } else {
        exit::code(exit::EX_OK)
    }
}
