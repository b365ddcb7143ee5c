//! Exit codes, in one place (sysexits(3); docs/design/operations.md, *Commands and exit codes*).
//! After start-up nothing ends the daemon but a signal: a failing source is rebuilt, failing
//! encoders are rebuilt.

use std::process::ExitCode;

/// Success (also after SIGTERM).
pub const EX_OK: u8 = 0;
/// Usage error: an unknown subcommand or option, a missing or malformed argument (`src/main.rs`
/// maps clap's errors to it).
pub const EX_USAGE: u8 = 64;
/// A required GStreamer element or device is missing at start-up; the daemon does not answer
/// (`twincast status`).
pub const EX_UNAVAILABLE: u8 = 69;
/// Internal software error: a pipeline that cannot be built at start-up.
pub const EX_SOFTWARE: u8 = 70;
/// An OS resource cannot be had at start-up (a listener port, a thread, the runtime).
pub const EX_OSERR: u8 = 71;
/// The state directory (or its lock file) cannot be created or written (`src/state_dir.rs`).
pub const EX_CANTCREAT: u8 = 73;
/// The state directory is locked by another running daemon (`src/state_dir.rs`); it may be
/// had once that daemon stops.
pub const EX_TEMPFAIL: u8 = 75;
/// The configuration is invalid or unreadable.
pub const EX_CONFIG: u8 = 78;

/// The process exit code for `code`.
pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
