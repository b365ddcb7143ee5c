//! One file per CLI command; `src/main.rs` parses the command line and dispatches here.
//! `twincast run` is `crate::run` (the daemon itself is `crate::daemon`).

pub mod check_config;
pub mod gen_docs;
pub mod probe;
pub mod status;
