//! Exit codes, in one place (sysexits(3), design §5). After start-up nothing ends the daemon
//! but a signal: a failing source is rebuilt, failing encoders are rebuilt.

use std::process::ExitCode;

/// Success (also after SIGTERM).
pub const EX_OK: u8 = 0;
/// Usage error (clap's own exit code for bad arguments is 2; kept for scripts that test 64).
pub const EX_USAGE: u8 = 64;
/// A required GStreamer element or device is missing at start-up; the daemon does not answer
/// (`twincast status`).
pub const EX_UNAVAILABLE: u8 = 69;
/// Internal software error: a pipeline that cannot be built at start-up.
pub const EX_SOFTWARE: u8 = 70;
/// An OS resource cannot be had at start-up (a listener port, a thread, the runtime).
pub const EX_OSERR: u8 = 71;
/// The configuration is invalid or unreadable.
pub const EX_CONFIG: u8 = 78;

/// The process exit code for `code`.
pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
