//! Logging: the `log` facade to journald (with structured fields) when stderr is connected to
//! the journal, otherwise plain lines on stderr.
//!
//! Structured fields go through `log`'s key-values: `log::info!(output = name, dest = "primary";
//! "...")` becomes `OUTPUT=`/`DEST=` in the journal (keys are upper-cased by the journal logger).
//!
//! Both sinks sit behind [`Redacting`]: the message and every field value go through
//! [`crate::secrets::redact`] first, so no registered secret reaches the journal or stderr at
//! any level, whoever logged it (our code, rustls, GStreamer messages forwarded by the capture).

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
        && log::set_boxed_logger(Box::new(Redacting(
            logger.with_syslog_identifier("twincast".to_string()),
        )))
        .is_ok()
    {
        log::set_max_level(level);
        return;
    }
    if log::set_boxed_logger(Box::new(Redacting(StderrLog { level }))).is_ok() {
        log::set_max_level(level);
    }
}

/// A logger that hands the inner one a copy of each record with every secret masked.
pub struct Redacting<L>(pub L);

/// Collects a record's fields as text.
struct Fields(Vec<(String, String)>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let value = crate::secrets::redact_owned(value.to_string());
        self.0.push((key.as_str().to_string(), value));
        Ok(())
    }
}

/// Log targets kept to errors whatever the level: `mpeg2ts_reader` warns once per TS packet it
/// cannot use, which the front end counts already (`input.counters.malformed`).
const QUIET_TARGETS: &[&str] = &["mpeg2ts_reader"];

/// Whether a record of `metadata` passes the per-target limits of [`QUIET_TARGETS`].
fn target_allows(metadata: &Metadata) -> bool {
    let target = metadata.target();
    let quiet = QUIET_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    !quiet || metadata.level() <= Level::Error
}

impl<L: Log> Log for Redacting<L> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        target_allows(metadata) && self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = crate::secrets::redact_owned(record.args().to_string());
        let mut fields = Fields(Vec::new());
        let _ = record.key_values().visit(&mut fields);
        let pairs: Vec<(&str, &str)> = fields
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.0.log(
            &Record::builder()
                .args(format_args!("{message}"))
                .metadata(record.metadata().clone())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .key_values(&pairs)
                .build(),
        );
    }

    fn flush(&self) {
        self.0.flush();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps what reaches it, as the journal would.
    struct Keep(Mutex<Vec<String>>);

    impl Log for Keep {
        fn enabled(&self, _: &Metadata) -> bool {
            true
        }
        fn log(&self, record: &Record) {
            let mut fields = KvLine(String::new());
            let _ = record.key_values().visit(&mut fields);
            crate::sync::lock(&self.0).push(format!(
                "{} {}{}",
                record.level(),
                record.args(),
                fields.0
            ));
        }
        fn flush(&self) {}
    }

    #[test]
    fn the_ts_reader_logs_only_errors() {
        let meta = |target, level| Metadata::builder().target(target).level(level).build();
        assert!(!target_allows(&meta(
            "mpeg2ts_reader::demultiplex",
            Level::Warn
        )));
        assert!(!target_allows(&meta("mpeg2ts_reader", Level::Info)));
        assert!(target_allows(&meta("mpeg2ts_reader::pes", Level::Error)));
        assert!(target_allows(&meta("mpeg2ts_reader_x", Level::Warn)));
        assert!(target_allows(&meta("twincast::input", Level::Warn)));
    }

    #[test]
    fn secrets_are_masked_in_messages_and_fields_at_every_level() {
        crate::secrets::register("sk-logging-test-key");
        let logger = Redacting(Keep(Mutex::new(Vec::new())));
        for level in [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ] {
            let kvs = [("url", "rtmp://h/app/sk-logging-test-key")];
            logger.log(
                &Record::builder()
                    .level(level)
                    .args(format_args!(
                        "connect rtmp://h/app/sk-logging-test-key failed"
                    ))
                    .key_values(&kvs)
                    .build(),
            );
        }
        let lines = logger.0.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 5);
        for l in &lines {
            assert!(!l.contains("sk-logging-test-key"), "{l}");
            assert!(
                l.contains("rtmp://h/app/*** failed URL=rtmp://h/app/***"),
                "{l}"
            );
        }
    }
}
