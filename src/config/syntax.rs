//! The first pass (docs/design/config.md, *From text to a validated `Config`*): TOML text → a
//! document whose every key and value carries its byte span. The document is parsed with
//! recovery, so every syntax error is reported with its position; with any, the later passes
//! do not run.

use toml::Spanned;
use toml::de::DeTable;

use super::diagnostic::Report;

/// The spanned document of `text`, or `None` (with every syntax error in `report`).
pub(crate) fn parse<'i>(text: &'i str, report: &mut Report) -> Option<Spanned<DeTable<'i>>> {
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if syntax_errors.is_empty() {
        return Some(doc);
    }
    for e in syntax_errors {
        report.error(
            e.span(),
            format!("TOML syntax error: {}", e.message().trim_end()),
        );
    }
    None
}
