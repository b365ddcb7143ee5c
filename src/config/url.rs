//! Small URL helpers for configuration checks and logs. `sanitize_url` removes what may carry a
//! secret (userinfo, query, fragment) so that a URL can appear in a message, a log or status.

/// The URL without userinfo, query and fragment: `rtmp://user:pw@host/app?key=x` →
/// `rtmp://host/app`. Text that is not a URL is returned without anything after `?`/`#` and
/// without anything before an `@` in its first path-free part.
pub fn sanitize_url(url: &str) -> String {
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
