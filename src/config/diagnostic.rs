//! Diagnostics: one error or warning with its position in the file (1-based line and column),
//! printed like a compiler does: `path:line:column: error: message (legal values: …)`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is: an error makes the file invalid, a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding about a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub path: PathBuf,
    /// 1-based line, or `None` when the finding is about the whole file (e.g. unreadable).
    pub line: Option<usize>,
    /// 1-based column in characters.
    pub column: Option<usize>,
    pub severity: Severity,
    /// What is wrong, including the legal values where they apply. Never contains secrets.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.path.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, "{line}:{column}:")?;
        }
        write!(f, " {}: {}", self.severity.as_str(), self.message)
    }
}

/// Every error (and warning) found in a configuration file; returned when it is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub path: PathBuf,
    /// Sorted by position.
    pub errors: Vec<Diagnostic>,
    /// Sorted by position.
    pub warnings: Vec<Diagnostic>,
}

impl ConfigErrors {
    /// Errors and warnings together, sorted by position (file-level findings first).
    pub fn all(&self) -> Vec<&Diagnostic> {
        let mut all: Vec<&Diagnostic> = self.errors.iter().chain(&self.warnings).collect();
        all.sort_by_key(|d| (d.line, d.column, d.severity));
        all
    }

    /// The one-line summary printed after the diagnostics.
    pub fn summary(&self) -> String {
        format!(
            "{}: invalid configuration: {}, {}",
            self.path.display(),
            plural(self.errors.len(), "error"),
            plural(self.warnings.len(), "warning")
        )
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.all() {
            writeln!(f, "{d}")?;
        }
        write!(f, "{}", self.summary())
    }
}

impl std::error::Error for ConfigErrors {}

pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Maps byte offsets of the source text to 1-based line and character column.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// 1-based (line, column) of a byte offset; offsets past the end map to the end.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }
}

/// Collects findings with byte spans while a file is checked; turned into [`Diagnostic`]s at
/// the end.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) items: Vec<(Severity, Option<Range<usize>>, String)>,
}

impl Report {
    pub(crate) fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.items.push((Severity::Error, span, message.into()));
    }

    pub(crate) fn warning(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.items.push((Severity::Warning, span, message.into()));
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.items.iter().any(|(s, _, _)| *s == Severity::Error)
    }

    /// Split into sorted (errors, warnings).
    pub(crate) fn finish(self, path: &Path, text: &str) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        let index = LineIndex::new(text);
        let mut items = self.items;
        items.sort_by_key(|(sev, span, _)| (span.as_ref().map(|s| s.start), *sev));
        items.dedup();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for (severity, span, message) in items {
            let (line, column) = match span {
                Some(s) => {
                    let (l, c) = index.position(s.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            let d = Diagnostic {
                path: path.to_path_buf(),
                line,
                column,
                severity,
                message,
            };
            match severity {
                Severity::Error => errors.push(d),
                Severity::Warning => warnings.push(d),
            }
        }
        (errors, warnings)
    }
}

/// Formats a list of legal values for a message: `a, b, c`.
pub(crate) fn legal(values: &[&str]) -> String {
    values.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_in_characters() {
        let text = "a = 1\nbé = 2\n\nc";
        let idx = LineIndex::new(text);
        assert_eq!(idx.position(0), (1, 1));
        assert_eq!(idx.position(4), (1, 5));
        assert_eq!(idx.position(6), (2, 1));
        // 'é' is two bytes: the space after it is column 3.
        assert_eq!(idx.position(9), (2, 3));
        assert_eq!(idx.position(text.len() - 1), (4, 1));
        assert_eq!(idx.position(10_000), (4, 2));
    }

    #[test]
    fn display_matches_compiler_format() {
        let d = Diagnostic {
            path: PathBuf::from("a.toml"),
            line: Some(3),
            column: Some(7),
            severity: Severity::Error,
            message: "bad".into(),
        };
        assert_eq!(d.to_string(), "a.toml:3:7: error: bad");
        let d = Diagnostic {
            line: None,
            column: None,
            ..d
        };
        assert_eq!(d.to_string(), "a.toml: error: bad");
    }

    #[test]
    fn report_sorts_by_position() {
        let mut r = Report::default();
        r.error(Some(11..12), "second");
        r.warning(Some(0..1), "first");
        r.error(None, "file");
        let (errors, warnings) = r.finish(Path::new("x"), "0123456789\nabc");
        assert_eq!(errors[0].message, "file");
        assert_eq!(errors[1].line, Some(2));
        assert_eq!(warnings[0].line, Some(1));
    }
}
