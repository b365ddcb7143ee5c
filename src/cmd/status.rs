//! `twincast status`: the running daemon's status from its control listener, for a person (or
//! the raw JSON with `--json`); exit 69 when the daemon does not answer.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

pub fn main(control: Option<SocketAddr>, config: &Path, json: bool) -> ExitCode {
    crate::control::client::status_cli(control, config, json)
}
