//! twincast daemon: everything with I/O, in data-path order.
//! capture → timeline → package → hub → (publish, origin).

pub mod config;
