//! twincast daemon: everything with I/O, in data-path order.
//! capture → timeline → package → hub → (publish, origin).

pub mod captions;
pub mod capture;
pub mod cmd;
pub mod config;
pub mod control;
pub mod daemon;
pub mod exit;
pub mod hub;
pub mod input;
pub mod logging;
pub mod notify;
pub mod origin;
pub mod package;
pub mod publish;
pub mod reload;
pub mod run;
pub mod secrets;
pub mod signals;
pub mod source;
pub mod state_dir;
pub mod status;
pub mod sync;
