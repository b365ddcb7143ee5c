//! Stream keys: `key_file`, or a systemd credential in `$CREDENTIALS_DIRECTORY`.

use crate::config::Output;

/// Name prefix of stream-key credentials: `LoadCredential=twincast:/etc/twincast/credentials`
/// loads every file of that directory as `twincast_<file>`.
const CREDENTIAL_PREFIX: &str = "twincast_";

/// The output's secret: `key_file` when set, else the systemd credential
/// `$CREDENTIALS_DIRECTORY/twincast_<output name>` when it exists, else none.
pub(super) fn resolve_key(o: &Output) -> Option<Result<String, String>> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY");
    resolve_key_in(o, dir.as_deref().map(std::path::Path::new))
}

fn resolve_key_in(
    o: &Output,
    credentials: Option<&std::path::Path>,
) -> Option<Result<String, String>> {
    let path = match &o.key_file {
        Some(p) => p.clone(),
        None => {
            let p = credentials?.join(format!("{CREDENTIAL_PREFIX}{}", o.name));
            if !p.is_file() {
                return None;
            }
            p
        }
    };
    Some(read_key(&path))
}

fn read_key(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("key_file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        log::warn!(
            "key file {} is readable by other users (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    std::fs::read_to_string(path)
        .map(|k| k.trim().to_string())
        .map_err(|e| format!("key_file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comes_from_key_file_or_the_systemd_credential() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cred = dir.path().join("twincast_cloud");
        std::fs::write(&cred, "s3cret\n").expect("write");
        let mut o = crate::config::parse_str(
            "[[rendition]]\nname = \"a\"\nwidth = 640\nheight = 360\nbitrate_kbps = 500\n[[output]]\nname = \"cloud\"\nprotocol = \"rtmp\"\nprimary = \"rtmp://127.0.0.1/live\"\n",
            std::path::Path::new("t.toml"),
        )
        .expect("config")
        .config
        .output
        .remove(0);
        let creds = Some(dir.path());
        assert_eq!(resolve_key_in(&o, creds), Some(Ok("s3cret".to_string())));
        let file = dir.path().join("explicit");
        std::fs::write(&file, "other").expect("write");
        o.key_file = Some(file);
        assert_eq!(resolve_key_in(&o, creds), Some(Ok("other".to_string())));
        o.key_file = None;
        assert_eq!(resolve_key_in(&o, None), None);
        o.name = "none".to_string();
        assert_eq!(resolve_key_in(&o, creds), None);
    }
}
