//! Logging: the `log` facade to journald (with structured fields) when stderr is connected to
//! the journal, otherwise plain lines on stderr.
//!
//! Structured fields go through `log`'s key-values: `log::info!(output = name, dest = "primary";
//! "...")` becomes `OUTPUT=`/`DEST=` in the journal (keys are upper-cased by the journal logger).

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Environment variable that sets the level (`error`, `warn`, `info`, `debug`, `trace`).
pub const LEVEL_ENV: &str = "TWINCAST_LOG";

fn level_from_env() -> LevelFilter {
    std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LevelFilter::Info)
}

/// Installs the logger once; later calls do nothing.
pub fn init() {
    let level = level_from_env();
    if systemd_journal_logger::connected_to_journal()
        && let Ok(logger) = systemd_journal_logger::JournalLog::new()
        && logger
            .with_syslog_identifier("twincast".to_string())
            .install()
            .is_ok()
    {
        log::set_max_level(level);
        return;
    }
    if log::set_boxed_logger(Box::new(StderrLog { level })).is_ok() {
        log::set_max_level(level);
    }
}

struct StderrLog {
    level: LevelFilter,
}

struct KvLine(String);

impl<'kvs> log::kv::VisitSource<'kvs> for KvLine {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0
            .push_str(&format!(" {}={}", key.as_str().to_ascii_uppercase(), value));
        Ok(())
    }
}

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        let mut fields = KvLine(String::new());
        let _ = record.key_values().visit(&mut fields);
        let _ = writeln!(
            std::io::stderr().lock(),
            "twincast {level}: {}{}",
            record.args(),
            fields.0
        );
    }

    fn flush(&self) {}
}
