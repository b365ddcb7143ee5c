//! `twincast check-config PATH`: every error at once, each with file:line:column and the legal
//! values; exit 78 when the file is invalid.

use std::path::Path;
use std::process::ExitCode;

pub fn main(path: &Path) -> ExitCode {
    crate::config::check_config_cli(path)
}
