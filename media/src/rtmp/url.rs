//! `rtmp://` and `rtmps://` URLs: host, port, application and the tcUrl sent in `connect`.

use super::RtmpError;

/// Default ports (RTMP §1, and 443 for RTMP over TLS as ingest services use it).
pub const DEFAULT_PORT: u16 = 1935;
pub const DEFAULT_TLS_PORT: u16 = 443;

/// A parsed publish URL. The stream name is not part of it: twincast names streams itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Application (the path without its leading '/'; may contain '/').
    pub app: String,
    /// `tcUrl` for `connect`: the URL without user info.
    pub tc_url: String,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<RtmpUrl, RtmpError> {
        let bad = |why: &'static str| RtmpError::Url(why);
        let (tls, rest) = if let Some(r) = url.strip_prefix("rtmps://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("rtmp://") {
            (false, r)
        } else {
            return Err(bad("scheme is not rtmp:// or rtmps://"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, after) = h.split_once(']').ok_or(bad("unterminated IPv6 address"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("port is not a number"))?,
            None if tls => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
        };
        let app = path.trim_matches('/').to_string();
        if app.is_empty() {
            return Err(bad("no application in the path"));
        }
        let scheme = if tls { "rtmps" } else { "rtmp" };
        Ok(RtmpUrl {
            tls,
            host: host.to_string(),
            port,
            tc_url: format!("{scheme}://{hostport}/{app}"),
            app,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_app() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:19350/live").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.app.as_str()),
            ("127.0.0.1", 19350, "live")
        );
        assert!(!u.tls);
        let u = RtmpUrl::parse("rtmps://user:pw@ingest.example/app/inst/").unwrap();
        assert_eq!((u.port, u.app.as_str()), (443, "app/inst"));
        assert_eq!(u.tc_url, "rtmps://ingest.example/app/inst");
        assert!(!u.tc_url.contains("pw"));
        let u = RtmpUrl::parse("rtmp://[::1]:1936/live").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1936));
    }

    #[test]
    fn rejects_bad_urls() {
        for u in [
            "http://x/live",
            "rtmp://",
            "rtmp://host",
            "rtmp://h:x/live",
            "rtmp:///a",
        ] {
            assert!(RtmpUrl::parse(u).is_err(), "{u}");
        }
    }
}
