//! The input URIs of `[input] uri`, parsed where the configuration is checked and where the
//! network input starts (`src/input/`): `rtp://` and `udp://` for MPEG-TS over RTP or UDP,
//! `srt://` for SRT. They live in `config` so that checking a configuration does not depend on
//! the input that runs it.

use std::net::SocketAddr;

/// How the feed is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `rtp://`: MPEG-TS over RTP, RTCP on port + 1.
    Rtp,
    /// `udp://`: plain MPEG-TS over UDP.
    Udp,
}

/// `rtp://ADDRESS:PORT` or `udp://ADDRESS:PORT` (ffmpeg's `udp://@239.1.1.1:5000` too).
pub fn parse_uri(uri: &str) -> Option<(Transport, SocketAddr)> {
    let (scheme, rest) = uri.split_once("://")?;
    let transport = match scheme.to_ascii_lowercase().as_str() {
        "rtp" => Transport::Rtp,
        "udp" => Transport::Udp,
        _ => return None,
    };
    let rest = rest.strip_prefix('@').unwrap_or(rest);
    let rest = rest.split(['?', '/']).next()?;
    Some((transport, rest.parse().ok()?))
}

/// SRT connection mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Caller,
    Listener,
}

/// A parsed `srt://` input URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrtUri {
    pub host: String,
    pub port: u16,
    pub mode: Mode,
    pub latency_ms: Option<u32>,
    pub streamid: Option<String>,
}

/// Parses `srt://HOST:PORT[?mode=…&latency=…&streamid=…]`; an unknown key or value is an error
/// that names it.
pub fn parse_srt_uri(uri: &str) -> Result<SrtUri, String> {
    let rest = uri
        .strip_prefix("srt://")
        .ok_or_else(|| "an SRT uri starts with srt://".to_string())?;
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = authority.trim_end_matches('/');
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| "an SRT uri needs HOST:PORT".to_string())?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("SRT port {port:?} is not a number 1..=65535"))?;
    let mut out = SrtUri {
        host: host.trim_matches(['[', ']']).to_string(),
        port,
        mode: Mode::Caller,
        latency_ms: None,
        streamid: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "mode" => {
                out.mode = match v {
                    "caller" => Mode::Caller,
                    "listener" => Mode::Listener,
                    _ => return Err(format!("SRT mode {v:?} (legal values: caller, listener)")),
                }
            }
            "latency" => {
                out.latency_ms = Some(
                    v.parse()
                        .map_err(|_| format!("SRT latency {v:?} is not milliseconds"))?,
                )
            }
            "streamid" => out.streamid = Some(v.to_string()),
            "passphrase" => {
                return Err(
                    "an SRT passphrase never goes in the uri: use passphrase_file or the twincast_srt credential"
                        .into(),
                );
            }
            _ => {
                return Err(format!(
                    "SRT uri key {k:?} (legal keys: mode, latency, streamid)"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_uris() {
        assert_eq!(
            parse_uri("rtp://0.0.0.0:5004"),
            Some((Transport::Rtp, "0.0.0.0:5004".parse().unwrap()))
        );
        assert_eq!(
            parse_uri("udp://@239.1.1.1:5000?pkt_size=1316"),
            Some((Transport::Udp, "239.1.1.1:5000".parse().unwrap()))
        );
        assert_eq!(
            parse_uri("UDP://[::1]:5000/"),
            Some((Transport::Udp, "[::1]:5000".parse().unwrap()))
        );
        assert_eq!(parse_uri("rtsp://1.2.3.4:554"), None);
        assert_eq!(parse_uri("rtp://example.com:5004"), None);
        assert_eq!(parse_uri("rtp://1.2.3.4"), None);
    }

    #[test]
    fn srt_uris() {
        let u =
            parse_srt_uri("srt://0.0.0.0:9000?mode=listener&latency=120&streamid=cam1").unwrap();
        assert_eq!(
            u,
            SrtUri {
                host: "0.0.0.0".into(),
                port: 9000,
                mode: Mode::Listener,
                latency_ms: Some(120),
                streamid: Some("cam1".into())
            }
        );
        assert_eq!(
            parse_srt_uri("srt://10.0.0.9:9000").unwrap().mode,
            Mode::Caller
        );
        assert!(
            parse_srt_uri("srt://h:9000?mode=rendezvous")
                .unwrap_err()
                .contains("legal values")
        );
        assert!(
            parse_srt_uri("srt://h:9000?passphrase=x")
                .unwrap_err()
                .contains("never")
        );
        assert!(
            parse_srt_uri("srt://h:9000?foo=1")
                .unwrap_err()
                .contains("legal keys")
        );
        assert!(parse_srt_uri("srt://h").is_err());
        assert!(parse_srt_uri("udp://h:1").is_err());
    }
}
