//! What a CMAF ingest receiver profile (`output.profile`) asks of an output's URLs and ladder,
//! as the receivers document it (docs/guide/publishing.md, one table per profile, with the
//! pages used). Each check returns the problem as text; `validate.rs` turns it into a
//! warning or an error at the right key.

use std::time::Duration;

/// Longest media segment AWS Elemental Inference accepts (its "Streaming requirements").
pub const ELEMENTAL_INFERENCE_MAX_SEGMENT: Duration = Duration::from_millis(1200);

/// `(host, path)` of `scheme://[userinfo@]host[:port][/path][?query]`: the path without its
/// query, fragment and trailing '/'. `None` when there is no `://`.
fn host_path(url: &str) -> Option<(&str, &str)> {
    let (_, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => hostport.split(':').next().unwrap_or(""),
    };
    let tail = &rest[end..];
    let path = &tail[..tail.find(['?', '#']).unwrap_or(tail.len())];
    Some((host, path.trim_end_matches('/')))
}

/// MediaPackage v2 gives a channel two ingest URLs that differ only in `-1` / `-2` at the end
/// of the first host label (`…-1.ingest.…` / `…-2.ingest.…`); the primary is the `-1` one.
pub fn mediapackage_pair(primary: &str, secondary: &str) -> Result<(), String> {
    let (Some((ph, pp)), Some((sh, sp))) = (host_path(primary), host_path(secondary)) else {
        return Ok(()); // Not URLs: reported by the URL check.
    };
    let (p_label, p_rest) = ph.split_once('.').unwrap_or((ph, ""));
    let (s_label, s_rest) = sh.split_once('.').unwrap_or((sh, ""));
    let paired = match (p_label.strip_suffix("-1"), s_label.strip_suffix("-2")) {
        (Some(p), Some(s)) => p == s && p_rest == s_rest,
        _ => false,
    };
    if !paired {
        let swapped = p_label.ends_with("-2") && s_label.ends_with("-1");
        return Err(if swapped {
            format!(
                "MediaPackage v2's `-1` URL is the primary: `primary` has host \"{ph}\", `secondary` \"{sh}\"; swap them"
            )
        } else {
            format!(
                "MediaPackage v2 gives a channel two ingest URLs whose hosts differ only in `-1` (primary) / `-2` (secondary) before `.ingest`; these hosts are \"{ph}\" and \"{sh}\""
            )
        });
    }
    // The CMAF ingest URLs share the path; the older HLS ones differ in `/1/` vs `/2/`.
    if sp != pp && sp != pp.replacen("/1/", "/2/", 1) {
        return Err(format!(
            "MediaPackage v2's two ingest URLs of one channel have the same path; these have \"{pp}\" and \"{sp}\" (two different channels?)"
        ));
    }
    Ok(())
}

/// A Unified Origin publishing point is a URL whose path ends in `<channel>.isml`.
pub fn unified_publishing_point(url: &str) -> Result<(), String> {
    match host_path(url) {
        Some((_, path)) if !path.ends_with(".isml") => Err(format!(
            "a Unified Origin publishing point ends in `.isml` (e.g. `http://origin/live/channel1/channel1.isml`); this path is \"{path}\""
        )),
        _ => Ok(()),
    }
}

/// Akamai MSL5 entry points: primary `p-ep<id>.<domain>/<stream_id>/<event>`, backup
/// `b-ep<id>.<domain>/<stream_id>-b/<event>`.
pub fn msl5_pair(primary: &str, secondary: &str) -> Result<(), String> {
    let (Some((ph, pp)), Some((sh, sp))) = (host_path(primary), host_path(secondary)) else {
        return Ok(());
    };
    let hosts_ok = match (ph.strip_prefix("p-ep"), sh.strip_prefix("b-ep")) {
        (Some(p), Some(s)) => p == s,
        _ => false,
    };
    if !hosts_ok {
        return Err(format!(
            "Akamai MSL5's primary entry point is `p-ep<stream id>.…` and its backup `b-ep<stream id>.…` with the same rest; these hosts are \"{ph}\" and \"{sh}\""
        ));
    }
    let split = |p: &str| -> (String, String) {
        let p = p.trim_start_matches('/');
        match p.split_once('/') {
            Some((first, rest)) => (first.to_string(), rest.to_string()),
            None => (p.to_string(), String::new()),
        }
    };
    let ((p_id, p_rest), (s_id, s_rest)) = (split(pp), split(sp));
    if s_id != format!("{p_id}-b") || s_rest != p_rest {
        return Err(format!(
            "Akamai MSL5's backup path is the primary's with `-b` after the stream id (`/<stream_id>-b/<event>`); these paths are \"{pp}\" and \"{sp}\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MP1: &str =
        "https://mz82o4-1.ingest.hnycui.mediapackagev2.us-west-2.amazonaws.com/in/v1/g/1/ch/";
    const MP2: &str =
        "https://mz82o4-2.ingest.hnycui.mediapackagev2.us-west-2.amazonaws.com/in/v1/g/1/ch/";

    #[test]
    fn host_and_path() {
        assert_eq!(
            host_path("http://u:p@127.0.0.1:8080/a/b.isml/?t=1"),
            Some(("127.0.0.1", "/a/b.isml"))
        );
        assert_eq!(host_path("https://[::1]:1/x"), Some(("::1", "/x")));
        assert_eq!(host_path("https://h"), Some(("h", "")));
        assert_eq!(host_path("nope"), None);
    }

    #[test]
    fn mediapackage_urls_differ_only_in_1_and_2() {
        assert_eq!(mediapackage_pair(MP1, MP2), Ok(()));
        // The HLS form with /1/ and /2/ folders is the same channel too.
        let hls2 = MP2.replace("/1/", "/2/");
        assert_eq!(mediapackage_pair(MP1, &hls2), Ok(()));
        let e = mediapackage_pair(MP2, MP1).unwrap_err();
        assert!(e.contains("swap"), "{e}");
        let other = MP2.replace("mz82o4", "ab12cd");
        assert!(
            mediapackage_pair(MP1, &other)
                .unwrap_err()
                .contains("differ only")
        );
        let other_channel = MP2.replace("/ch/", "/ch2/");
        assert!(
            mediapackage_pair(MP1, &other_channel)
                .unwrap_err()
                .contains("same path")
        );
    }

    #[test]
    fn unified_wants_an_isml_publishing_point() {
        assert_eq!(
            unified_publishing_point("http://o/live/ch1/ch1.isml"),
            Ok(())
        );
        assert_eq!(
            unified_publishing_point("http://o/live/ch1/ch1.isml/?token=x"),
            Ok(())
        );
        assert!(unified_publishing_point("http://o/live/ch1").is_err());
    }

    #[test]
    fn msl5_backup_has_b_host_and_b_path() {
        let p = "https://p-ep50002.i.mslentrypoint.net/50002/event1";
        let b = "https://b-ep50002.i.mslentrypoint.net/50002-b/event1";
        assert_eq!(msl5_pair(p, b), Ok(()));
        let no_b = "https://b-ep50002.i.mslentrypoint.net/50002/event1";
        assert!(msl5_pair(p, no_b).unwrap_err().contains("-b"));
        assert!(msl5_pair(p, p).unwrap_err().contains("b-ep"));
        let other_event = "https://b-ep50002.i.mslentrypoint.net/50002-b/event2";
        assert!(msl5_pair(p, other_event).is_err());
    }
}
