//! The control token: requests that change state (`POST /reload`) carry
//! `Authorization: Bearer <token>`, compared in constant time with the token of
//! `[control] token_file`, or else of the `control-token` systemd credential
//! (`$CREDENTIALS_DIRECTORY/control-token`, `LoadCredential=`). With neither, such requests are
//! refused: nothing on the control listener changes state without a credential
//! (docs/ref/config.md, `[control]`).
//!
//! The file is read on every such request (they are rare), so a rotated token takes effect
//! without a restart, and a token file that became unreadable refuses rather than falls open.

use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// Name of the systemd credential that holds the token.
pub const CREDENTIAL: &str = "control-token";

/// Why a request that changes state is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error(
        "no control token configured ([control] token_file or the {CREDENTIAL} credential): requests that change state are refused"
    )]
    NotConfigured,
    #[error("control token file {path} cannot be read: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("control token file {path} is empty")]
    Empty { path: String },
    #[error("missing Authorization: Bearer <token>")]
    Missing,
    #[error("wrong token")]
    Wrong,
}

/// Where the token comes from: `[control] token_file`, else the credential when it exists.
pub fn source(token_file: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = token_file {
        return Some(p.to_path_buf());
    }
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let p = Path::new(&dir).join(CREDENTIAL);
    p.exists().then_some(p)
}

/// Reads the expected token (surrounding whitespace removed) and registers it as a secret.
pub fn expected(token_file: Option<&Path>) -> Result<String, Refusal> {
    let path = source(token_file).ok_or(Refusal::NotConfigured)?;
    let text = std::fs::read_to_string(&path).map_err(|e| Refusal::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Refusal::Empty {
            path: path.display().to_string(),
        });
    }
    crate::secrets::register(token);
    Ok(token.to_string())
}

/// Checks an `Authorization` header value against the expected token.
pub fn check(authorization: Option<&str>, expected: &str) -> Result<(), Refusal> {
    let given = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(Refusal::Missing)?;
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Refusal::Wrong)
    }
}

/// [`expected`] then [`check`].
pub fn authorize(token_file: Option<&Path>, authorization: Option<&str>) -> Result<(), Refusal> {
    check(authorization, &expected(token_file)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_must_match_exactly() {
        assert_eq!(check(Some("Bearer s3cret"), "s3cret"), Ok(()));
        assert_eq!(check(Some("Bearer s3cret2"), "s3cret"), Err(Refusal::Wrong));
        assert_eq!(check(Some("Bearer s3cre"), "s3cret"), Err(Refusal::Wrong));
        assert_eq!(check(Some("Bearer "), "s3cret"), Err(Refusal::Wrong));
        assert_eq!(check(Some("Basic s3cret"), "s3cret"), Err(Refusal::Missing));
        assert_eq!(check(None, "s3cret"), Err(Refusal::Missing));
    }

    #[test]
    fn without_a_token_file_or_credential_nothing_is_authorised() {
        // The test process has no CREDENTIALS_DIRECTORY (systemd sets it only for its units).
        if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
            assert_eq!(
                authorize(None, Some("Bearer anything")),
                Err(Refusal::NotConfigured)
            );
        }
    }

    #[test]
    fn token_file_is_read_trimmed_and_an_empty_or_missing_one_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "  abc123\n").unwrap();
        assert_eq!(authorize(Some(&p), Some("Bearer abc123")), Ok(()));
        assert_eq!(authorize(Some(&p), Some("Bearer abc")), Err(Refusal::Wrong));
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            authorize(Some(&p), Some("Bearer ")),
            Err(Refusal::Empty { .. })
        ));
        let missing = dir.path().join("nope");
        assert!(matches!(
            authorize(Some(&missing), Some("Bearer abc123")),
            Err(Refusal::Unreadable { .. })
        ));
    }
}
