//! The text writer of the exposition: `# HELP`/`# TYPE` lines and samples with the daemon's
//! `encoder` and `pair` labels first.

use std::fmt::Write;

pub(super) struct Writer {
    pub(super) out: String,
    pub(super) base: String,
}

impl Writer {
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP twincast_{name} {help}");
        let _ = writeln!(self.out, "# TYPE twincast_{name} {kind}");
    }

    pub(super) fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) {
        let mut l = self.base.clone();
        for (k, v) in labels {
            let _ = write!(l, ",{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(self.out, "twincast_{name}{{{l}}} {value}");
    }

    /// A family with one sample.
    pub(super) fn one(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        value: impl std::fmt::Display,
    ) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

pub(super) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A 0/1 gauge.
pub(super) fn b(v: bool) -> u8 {
    u8::from(v)
}
