//! The process-wide redactor: every secret the daemon learns (a stream key from `key_file` or
//! `$CREDENTIALS_DIRECTORY`, a `{secret:…}` part of a configured URL, URL passwords) is
//! registered here when it is loaded, and every sink that shows text to people passes it
//! through [`redact`]: the logger (so every level and every forwarded GStreamer message),
//! `sanitize_url` in src/config, and the control outputs (`/status`, `/events`, `/metrics`).
//! A sink is covered by construction, not by remembering to scrub one call site
//! (docs/guide/publishing.md, *Keys and credentials*).
//!
//! Secrets stay registered for the life of the process: a key replaced by a reload may still sit
//! in an error text. The list only holds distinct values an operator configured, so it stays
//! small; it is still capped ([`MAX_SECRETS`]), and past the cap the shortest entry goes.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Most secrets kept; one more drops the shortest (logged). Far above any real configuration.
pub const MAX_SECRETS: usize = 4096;

/// Registered secrets, longest first (so a secret that contains another is masked whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret, and the forms it takes inside a JSON string (`/status`, `/events`) and
/// in `{:?}` output (escaped quotes and backslashes) when those differ; empty strings and
/// repeats are ignored.
pub fn register(secret: &str) {
    register_one(secret);
    let debug = format!("{secret:?}");
    register_one(&debug[1..debug.len() - 1]);
    if let Ok(json) = serde_json::to_string(secret) {
        register_one(&json[1..json.len() - 1]);
    }
}

fn register_one(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let mut list = crate::sync::write(&SECRETS);
    if list.iter().any(|s| s == secret) {
        return;
    }
    let dropped = list.len() >= MAX_SECRETS;
    if dropped {
        // Sorted longest first: the last is the shortest (the cheapest to guess anyway).
        list.pop();
    }
    list.push(secret.to_string());
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    drop(list);
    if dropped {
        log::warn!("more than {MAX_SECRETS} distinct secrets registered; the shortest was dropped");
    }
}

/// `text` with every registered secret replaced by [`MASK`]; borrowed when nothing matched.
pub fn redact(text: &str) -> Cow<'_, str> {
    let list = crate::sync::read(&SECRETS);
    let mut out: Cow<'_, str> = Cow::Borrowed(text);
    for s in list.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), MASK));
        }
    }
    out
}

/// [`redact`] into an owned string.
pub fn redact_owned(text: String) -> String {
    match redact(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(t) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        register("sk-unit-short");
        register("sk-unit-short-and-longer");
        register("");
        let t = "a sk-unit-short-and-longer b sk-unit-short c";
        assert_eq!(redact(t), "a *** b *** c");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(
            redact_owned("rtmp://h/app/sk-unit-short".into()),
            "rtmp://h/app/***"
        );
    }

    #[test]
    fn escaped_forms_are_masked_too() {
        register("sk-unit-\"quoted\\");
        let json = serde_json::to_string("at rtmp://h/a/sk-unit-\"quoted\\").unwrap();
        assert_eq!(redact(&json), "\"at rtmp://h/a/***\"");
        let debug = format!("{:?}", "sk-unit-\"quoted\\");
        assert_eq!(redact(&debug), "\"***\"");
    }

    #[test]
    fn repeats_are_kept_once() {
        register("sk-unit-repeat");
        register("sk-unit-repeat");
        let n = crate::sync::read(&SECRETS)
            .iter()
            .filter(|s| *s == "sk-unit-repeat")
            .count();
        assert_eq!(n, 1);
    }
}
