//! Small URL helpers for configuration checks and logs. `sanitize_url` removes what may carry a
//! secret (userinfo, query, fragment, `{secret:…}` parts, registered secrets) so that a URL can
//! appear in a message, a log or status.
//!
//! Secret parts of output URLs (docs/ref/config.md, *Secrets in URLs*): `{key}` stands for the
//! output's key (from `key_file` or the systemd credential) and `{secret:TEXT}` marks `TEXT` as
//! a secret written in the configuration itself. [`expand_url`] builds the URL that is sent;
//! [`url_secrets`] lists what must be registered with the redactor (src/secrets.rs).

use crate::secrets;

/// Where the output's key goes in a URL.
pub const KEY_PLACEHOLDER: &str = "{key}";
/// Opens a secret written inline in a URL; closed by the next `}`.
pub const SECRET_OPEN: &str = "{secret:";

/// The URL without userinfo, query and fragment, with `{secret:…}` parts and every registered
/// secret replaced by `***`: `rtmp://user:pw@host/app?key=x` → `rtmp://host/app`. Text that is
/// not a URL is returned without anything after `?`/`#` and without anything before an `@` in
/// its first path-free part.
pub fn sanitize_url(url: &str) -> String {
    let masked = mask_inline_secrets(url);
    let url = secrets::redact(&masked);
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..cut];
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    format!("{scheme}{host}{path}")
}

/// `url` with each `{secret:…}` part replaced by `***` (an unclosed one runs to the end).
fn mask_inline_secrets(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(i) = rest.find(SECRET_OPEN) {
        out.push_str(&rest[..i]);
        out.push_str(secrets::MASK);
        let after = &rest[i + SECRET_OPEN.len()..];
        rest = after.find('}').map_or("", |j| &after[j + 1..]);
    }
    out.push_str(rest);
    out
}

/// The secret parts of a configured URL: the content of each `{secret:…}`, the password of
/// its userinfo and its query (both may come back in an error text of a peer or a library).
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = url;
    while let Some(i) = rest.find(SECRET_OPEN) {
        let after = &rest[i + SECRET_OPEN.len()..];
        let (secret, next) = after.split_once('}').unwrap_or((after, ""));
        found.push(secret.to_string());
        rest = next;
    }
    let plain = expand_inline(url);
    if let Some((_, rest)) = plain.split_once("://") {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            found.push(password.to_string());
        }
    }
    if let Some((_, query)) = plain.split_once('?') {
        found.push(query.split('#').next().unwrap_or("").to_string());
    }
    found.retain(|s| !s.is_empty());
    found
}

/// `url` with each `{secret:TEXT}` replaced by `TEXT`.
fn expand_inline(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(i) = rest.find(SECRET_OPEN) {
        out.push_str(&rest[..i]);
        let after = &rest[i + SECRET_OPEN.len()..];
        let (secret, next) = after.split_once('}').unwrap_or((after, ""));
        out.push_str(secret);
        rest = next;
    }
    out.push_str(rest);
    out
}

/// Registers every secret part of a configured URL with the redactor.
pub fn register_url_secrets(url: &str) {
    for s in url_secrets(url) {
        secrets::register(&s);
    }
}

/// Whether the URL has a place for the output's key.
pub fn wants_key(url: &str) -> bool {
    url.contains(KEY_PLACEHOLDER)
}

/// The URL that is sent, and the key that is left for the protocol's own place (appended to
/// the RTMP stream name, `Authorization: Bearer` for HTTP): `{secret:TEXT}` becomes `TEXT`,
/// and `{key}` becomes the key, which is then used up. Err when the URL has `{key}` and the
/// output has no key.
pub fn expand_url(url: &str, key: Option<String>) -> Result<(String, Option<String>), String> {
    let url = expand_inline(url);
    if !wants_key(&url) {
        return Ok((url, key));
    }
    match key {
        Some(k) => Ok((url.replace(KEY_PLACEHOLDER, &k), None)),
        None => Err(format!(
            "the URL has {KEY_PLACEHOLDER} but the output has no key (set key_file or \
             provide the systemd credential twincast_<output name>)"
        )),
    }
}

/// The parts of a URL the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    /// Lower-cased scheme.
    pub(crate) scheme: String,
    /// Host (without userinfo and port); may be empty.
    pub(crate) host: &'a str,
}

/// Splits `scheme://[userinfo@]host[:port]/…`; `None` when there is no `scheme://`.
pub(crate) fn url_parts(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = match authority.rfind('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    Some(UrlParts {
        scheme: scheme.to_ascii_lowercase(),
        host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_secrets() {
        assert_eq!(
            sanitize_url("rtmp://user:pw@ingest.example.net:1935/live?key=abc#x"),
            "rtmp://ingest.example.net:1935/live"
        );
        assert_eq!(
            sanitize_url("https://a.example/ingest.isml"),
            "https://a.example/ingest.isml"
        );
        assert_eq!(sanitize_url("http://u@h/p@q"), "http://h/p@q");
        assert_eq!(sanitize_url("not a url?secret"), "not a url");
        assert_eq!(sanitize_url("user:pw@host/x"), "host/x");
        assert_eq!(
            sanitize_url("rtmp://h/app/{secret:sk-url-inline}/x{secret:tail"),
            "rtmp://h/app/***/x***"
        );
        assert_eq!(sanitize_url("rtmp://h/app/{key}"), "rtmp://h/app/{key}");
    }

    #[test]
    fn registered_secrets_are_masked_in_the_path() {
        crate::secrets::register("sk-url-registered");
        assert_eq!(
            sanitize_url("rtmp://h/live/sk-url-registered"),
            "rtmp://h/live/***"
        );
    }

    #[test]
    fn secret_parts_are_found_and_expanded() {
        assert_eq!(
            url_secrets("https://u:pw1@h/{secret:tok}/x.isml?k=v"),
            ["tok", "pw1", "k=v"]
        );
        assert!(url_secrets("rtmp://h/app/{key}").is_empty());
        assert_eq!(
            expand_url("https://h/{secret:tok}/x", Some("k".into())).unwrap(),
            ("https://h/tok/x".to_string(), Some("k".to_string()))
        );
        assert_eq!(
            expand_url("rtmp://h/app/{key}", Some("k1".into())).unwrap(),
            ("rtmp://h/app/k1".to_string(), None)
        );
        let e = expand_url("rtmp://h/app/{key}", None).unwrap_err();
        assert!(e.contains("no key"), "{e}");
    }

    #[test]
    fn parts() {
        let p = url_parts("RTMPS://u:p@[::1]:443/live").unwrap();
        assert_eq!(p.scheme, "rtmps");
        assert_eq!(p.host, "::1");
        let p = url_parts("http://host.example:8080?x").unwrap();
        assert_eq!(p.host, "host.example");
        assert!(url_parts("host/live").is_none());
        assert!(url_parts("://host").is_none());
        assert_eq!(url_parts("http:///x").unwrap().host, "");
    }
}
