//! One state directory per daemon (docs/ref/systemd.md, *State directory*): where the DVR and
//! anything else the daemon keeps live, and an exclusive lock that stops a second daemon from
//! sharing them.
//!
//! The folder is `[encoder] state_dir`, else the first folder of systemd's `$STATE_DIRECTORY`
//! (the unit's `StateDirectory=`), else `/var/lib/twincast`. The DVR is `origin.dvr_dir`, else
//! `<state dir>/dvr`. The daemon locks every folder it writes to: the state directory, and
//! `origin.dvr_dir` when it lies outside it. The built-in default `/var/lib/twincast` is left
//! alone when nothing is kept there (a config that puts the DVR elsewhere).
//!
//! The lock is `flock(2)` on `<folder>/twincast.lock` (held by the open file, so it goes with
//! the process however it ends); the file says who holds it, for the error a second daemon
//! prints.

use std::ffi::OsStr;
use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_STATE_DIR, DVR_SUBDIR};
use crate::exit;

/// The lock file's name in each locked folder.
pub const LOCK_FILE: &str = "twincast.lock";

/// Why the state directory could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// Another process holds the lock.
    #[error(
        "state directory {dir} is in use by another twincast daemon ({holder}; lock file {lock}): \
         give each daemon its own `[encoder] state_dir` (or run each as its own twincast@<name> unit)"
    )]
    Locked {
        dir: PathBuf,
        lock: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// The folder or its lock file cannot be created, opened or written.
    #[error("state directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StateDirError {
    /// The process exit code (src/exit.rs).
    pub fn exit_code(&self) -> u8 {
        match self {
            StateDirError::Locked { .. } => exit::EX_TEMPFAIL,
            StateDirError::Io { .. } => exit::EX_CANTCREAT,
        }
    }
}

/// Where this daemon's state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The DVR's disk tier.
    pub dvr_dir: PathBuf,
    /// The folders to lock, in lock order.
    pub locked: Vec<PathBuf>,
}

impl Layout {
    /// The layout of `config`; `systemd_state` is `$STATE_DIRECTORY` (colon-separated folders,
    /// the first is the unit's own).
    pub fn of(config: &Config, systemd_state: Option<&OsStr>) -> Layout {
        let from_systemd = systemd_state
            .and_then(|v| v.to_str())
            .and_then(|v| v.split(':').find(|p| Path::new(p).is_absolute()))
            .map(PathBuf::from);
        let chosen = config.encoder.state_dir.clone().or(from_systemd);
        let explicit = chosen.is_some();
        let state_dir = chosen.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let dvr_dir = config
            .origin
            .dvr_dir
            .clone()
            .unwrap_or_else(|| state_dir.join(DVR_SUBDIR));
        let dvr_inside = dvr_dir.starts_with(&state_dir);
        let mut locked = Vec::new();
        if explicit || dvr_inside {
            locked.push(state_dir.clone());
        }
        if !dvr_inside {
            locked.push(dvr_dir.clone());
        }
        Layout {
            state_dir,
            dvr_dir,
            locked,
        }
    }
}

/// The state directory, locked for as long as this value lives.
#[derive(Debug)]
pub struct StateDir {
    layout: Layout,
    _locks: Vec<File>,
}

impl StateDir {
    /// Takes the layout's folders (created when missing, mode 0750) and their locks; `who` is
    /// written into each lock file for whoever finds it taken.
    pub fn open(layout: Layout, who: &str) -> Result<StateDir, StateDirError> {
        let mut locks = Vec::with_capacity(layout.locked.len());
        for dir in &layout.locked {
            locks.push(lock(dir, who)?);
        }
        Ok(StateDir {
            layout,
            _locks: locks,
        })
    }

    /// Where the state lives.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// What a lock file says about the daemon holding it.
pub fn holder_line(encoder: &str, config_path: &Path) -> String {
    format!(
        "pid {}, encoder \"{encoder}\", config {}",
        std::process::id(),
        config_path.display()
    )
}

fn lock(dir: &Path, who: &str) -> Result<File, StateDirError> {
    let io = |source| StateDirError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(io)?;
    let path = dir.join(LOCK_FILE);
    // Not truncated on open: the holder's line must survive a failed attempt.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // A holder that has not written its line yet reads as empty.
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StateDirError::Locked {
                dir: dir.to_path_buf(),
                lock: path,
                holder: if holder.is_empty() {
                    "holder unknown".into()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(format!("{who}\n").as_bytes()).map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "{extra}\n[[rendition]]\nname = \"v\"\nwidth = 320\nheight = 180\nbitrate_kbps = 300\n"
        );
        crate::config::parse_str(&text, Path::new("t.toml"))
            .map(|l| l.config)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults_to_var_lib_and_dvr_under_it() {
        let l = Layout::of(&config(""), None);
        assert_eq!(l.state_dir, Path::new("/var/lib/twincast"));
        assert_eq!(l.dvr_dir, Path::new("/var/lib/twincast/dvr"));
        assert_eq!(l.locked, vec![PathBuf::from("/var/lib/twincast")]);
    }

    #[test]
    fn systemd_state_directory_first_folder_wins_and_the_key_beats_it() {
        let env = OsStr::new("/var/lib/twincast-a:/var/lib/twincast-a/dvr");
        let l = Layout::of(&config(""), Some(env));
        assert_eq!(l.state_dir, Path::new("/var/lib/twincast-a"));
        assert_eq!(l.dvr_dir, Path::new("/var/lib/twincast-a/dvr"));
        let l = Layout::of(&config("[encoder]\nstate_dir = \"/srv/cam1\"\n"), Some(env));
        assert_eq!(l.state_dir, Path::new("/srv/cam1"));
        assert_eq!(l.dvr_dir, Path::new("/srv/cam1/dvr"));
    }

    #[test]
    fn a_dvr_dir_elsewhere_is_locked_on_its_own() {
        let l = Layout::of(&config("[origin]\ndvr_dir = \"/srv/dvr\"\n"), None);
        assert_eq!(l.dvr_dir, Path::new("/srv/dvr"));
        assert_eq!(l.locked, vec![PathBuf::from("/srv/dvr")]);
        let l = Layout::of(
            &config("[encoder]\nstate_dir = \"/srv/s\"\n[origin]\ndvr_dir = \"/srv/dvr\"\n"),
            None,
        );
        assert_eq!(
            l.locked,
            vec![PathBuf::from("/srv/s"), PathBuf::from("/srv/dvr")]
        );
    }

    #[test]
    fn relative_state_dir_is_a_config_error() {
        let text = "[encoder]\nstate_dir = \"var/x\"\n[[rendition]]\nname = \"v\"\nwidth = 320\nheight = 180\nbitrate_kbps = 300\n";
        let errors = crate::config::parse_str(text, Path::new("t.toml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(errors.contains("encoder.state_dir"), "{errors}");
        assert!(errors.contains("must be an absolute path"), "{errors}");
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_line_then_gets_it_once_freed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let layout = Layout {
            state_dir: state.clone(),
            dvr_dir: state.join("dvr"),
            locked: vec![state.clone()],
        };
        let first = StateDir::open(layout.clone(), "pid 1, encoder \"a\"").unwrap();
        let err = StateDir::open(layout.clone(), "pid 2, encoder \"b\"").unwrap_err();
        assert_eq!(err.exit_code(), exit::EX_TEMPFAIL);
        let text = err.to_string();
        assert!(text.contains("pid 1, encoder \"a\""), "{text}");
        assert!(text.contains(&state.display().to_string()), "{text}");
        drop(first);
        let second = StateDir::open(layout, "pid 2, encoder \"b\"").unwrap();
        let line = std::fs::read_to_string(state.join(LOCK_FILE)).unwrap();
        assert_eq!(line, "pid 2, encoder \"b\"\n");
        drop(second);
    }

    #[test]
    fn an_uncreatable_folder_is_cantcreat() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let under_a_file = file.join("state");
        let layout = Layout {
            state_dir: under_a_file.clone(),
            dvr_dir: under_a_file.join("dvr"),
            locked: vec![under_a_file],
        };
        let err = StateDir::open(layout, "me").unwrap_err();
        assert_eq!(err.exit_code(), exit::EX_CANTCREAT);
    }
}
