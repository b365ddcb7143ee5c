//! The disk tier of the DVR window (docs/design/origin.md, *The DVR window*): every published
//! segment is written atomically (temporary file, then rename) under `<dvr_dir>/<track>/`, the
//! whole tier is bounded by `dvr_max_bytes` (oldest segments of any track go first), and after a
//! restart the files are read back (names only) so the playlists reach back across the restart.
//!
//! File names carry everything the window needs:
//! `<index>-<start>-<duration>-<etag>-<init id>.m4s` (etag and init id in hex, 16 digits; the
//! init id is the FNV-1a of the init segment the segment was written against). A reload can
//! bring a new init segment while older segments of the track are still in the window: each
//! file names its own version, so they stay on disk and keep being served (with their own
//! init, which the origin holds in RAM) until they leave the window. On restart, only the
//! files whose init id is the new process's first init segment are reloaded; the others
//! (another codec configuration) are removed, not served. `<track>/init.mp4` is the current
//! init segment (rewritten when it changes); it only matters for files named by an older
//! version of twincast, `<index>-<start>-<duration>-<etag>.m4s`: those are reloaded when
//! `init.mp4` equals the new init segment, and renamed to the current form.
//!
//! Disk trouble (full, read-only, missing permissions) never stops the origin: the error is
//! counted and logged at most once a minute, and the segment stays in RAM only.
//!
//! Paths are built from validated track names and numbers, never from a request.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use twincast_media::{MediaTime, Timescale, TrackId};

use super::window::{Segment, fnv1a};
use crate::sync::lock;

const INIT_FILE: &str = "init.mp4";
const TMP_SUFFIX: &str = ".tmp";

/// A file the tier holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FileKey {
    /// Segment end in ns since the epoch: the global age order.
    end_ns: u64,
    track: usize,
    start: u64,
}

struct State {
    files: BTreeMap<FileKey, (PathBuf, u64)>,
    bytes: u64,
    errors: u64,
    /// Files deleted to stay under `max_bytes`.
    evicted: u64,
    last_error_log: Option<Instant>,
}

/// Counters of the disk tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub bytes: u64,
    pub files: u64,
    pub errors: u64,
    /// Segment files deleted to stay under `dvr_max_bytes` (oldest of any track first).
    pub evicted: u64,
}

pub struct DiskStore {
    root: PathBuf,
    max_bytes: u64,
    /// Track names by track number.
    tracks: Vec<TrackId>,
    /// Timescale per track, set when its init segment arrives (`None` before).
    timescales: Mutex<Vec<Option<Timescale>>>,
    state: Mutex<State>,
}

/// `<index>-<start>-<duration>-<etag hex>-<init id hex>.m4s`
pub fn file_name(s: &Segment) -> String {
    format!(
        "{}-{}-{}-{:016x}-{:016x}.m4s",
        s.index, s.start, s.duration, s.etag, s.init_id
    )
}

/// A parsed segment file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileName {
    pub index: u64,
    pub start: u64,
    pub duration: u64,
    pub etag: u64,
    /// `None`: the older form without it (written against `init.mp4`).
    pub init_id: Option<u64>,
}

/// Parses a DVR segment file name ([`file_name`]'s form, or the older one without init id);
/// `None` for anything else (public for the fuzz target `dvr_name`).
pub fn parse_file_name(name: &str) -> Option<FileName> {
    let stem = name.strip_suffix(".m4s")?;
    let mut parts = stem.split('-');
    let index = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    let duration = parts.next()?.parse().ok()?;
    let etag = u64::from_str_radix(parts.next()?, 16).ok()?;
    let init_id = match parts.next() {
        Some(hex) => Some(u64::from_str_radix(hex, 16).ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(FileName {
        index,
        start,
        duration,
        etag,
        init_id,
    })
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn to_ns(t: u64, timescale: Timescale) -> u64 {
    MediaTime::new(t, timescale).as_nanos()
}

impl DiskStore {
    pub fn new(root: PathBuf, max_bytes: u64, tracks: Vec<TrackId>) -> Self {
        let n = tracks.len();
        DiskStore {
            root,
            max_bytes,
            tracks,
            timescales: Mutex::new(vec![None; n]),
            state: Mutex::new(State {
                files: BTreeMap::new(),
                bytes: 0,
                errors: 0,
                evicted: 0,
                last_error_log: None,
            }),
        }
    }

    fn dir(&self, track: usize) -> Option<PathBuf> {
        self.tracks
            .get(track)
            .map(|name| self.root.join(name.as_str()))
    }

    pub fn path_of(&self, track: usize, s: &Segment) -> Option<PathBuf> {
        self.dir(track).map(|d| d.join(file_name(s)))
    }

    fn error(&self, what: &str, e: &std::io::Error) {
        let mut st = lock(&self.state);
        st.errors += 1;
        let due = st
            .last_error_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if due {
            st.last_error_log = Some(Instant::now());
            log::warn!(target: "origin",
                "DVR disk {}: {what}: {e} ({} disk errors so far); serving from RAM",
                self.root.display(), st.errors);
        }
    }

    /// A track's (first) init segment arrived: reloads its segments written with the same init
    /// segment (oldest first, at most `window` in the track timescale before the newest),
    /// removes the rest and leftovers, and records the init segment. Blocking.
    pub fn open_track(
        &self,
        track: usize,
        init: &[u8],
        timescale: Timescale,
        window: u64,
    ) -> Vec<Segment> {
        if let Some(slot) = lock(&self.timescales).get_mut(track) {
            *slot = Some(timescale);
        }
        self.forget_track(track);
        let Some(dir) = self.dir(track) else {
            return Vec::new();
        };
        if let Err(e) = fs::create_dir_all(&dir) {
            self.error("cannot create the track directory", &e);
            return Vec::new();
        }
        let same_init = fs::read(dir.join(INIT_FILE)).is_ok_and(|old| old == init);
        let mut found = self.list_track(&dir, fnv1a(init), same_init);
        found.sort_by_key(|s| s.start);
        if let Some(newest_end) = found.last().map(Segment::end) {
            let (keep, old): (Vec<Segment>, Vec<Segment>) = found
                .into_iter()
                .partition(|s| newest_end.saturating_sub(s.start) <= window);
            for s in &old {
                let _ = fs::remove_file(dir.join(file_name(s)));
            }
            found = keep;
        }
        if !same_init {
            self.set_init(track, init);
        }
        {
            let mut st = lock(&self.state);
            for s in &found {
                let key = FileKey {
                    end_ns: to_ns(s.end(), timescale),
                    track,
                    start: s.start,
                };
                st.bytes += s.len;
                st.files.insert(key, (dir.join(file_name(s)), s.len));
            }
        }
        found
    }

    /// A track opened again (a new timescale) starts over: its listed files are re-read.
    fn forget_track(&self, track: usize) {
        {
            let mut st = lock(&self.state);
            let stale: Vec<FileKey> = st
                .files
                .keys()
                .filter(|k| k.track == track)
                .copied()
                .collect();
            for k in stale {
                if let Some((_, len)) = st.files.remove(&k) {
                    st.bytes -= len;
                }
            }
        }
    }

    /// The segment files in a track's directory written against `init_id` (or, in the older
    /// name form, against `init.mp4` when `same_init`), renamed to the current form; every
    /// other file but `init.mp4` is removed.
    fn list_track(&self, dir: &Path, init_id: u64, same_init: bool) -> Vec<Segment> {
        let mut found = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.error("cannot list the track directory", &e);
                return found;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name == INIT_FILE {
                continue;
            }
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let keep = parse_file_name(name)
                .filter(|f| len > 0 && f.init_id.map_or(same_init, |id| id == init_id));
            let Some(f) = keep else {
                let _ = fs::remove_file(entry.path());
                continue;
            };
            let segment = Segment {
                index: f.index,
                start: f.start,
                duration: f.duration,
                filler: false,
                len,
                media_bytes: len,
                etag: f.etag,
                ram: None,
                on_disk: true,
                init_id,
            };
            // The older name form gets the current one (with the init id).
            if f.init_id.is_none()
                && fs::rename(entry.path(), dir.join(file_name(&segment))).is_err()
            {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            found.push(segment);
        }
        found
    }

    /// Records a track's current init segment as `<track>/init.mp4` (a reload changed it; the
    /// segment files of older versions stay, named by their own init id). Blocking.
    pub fn set_init(&self, track: usize, init: &[u8]) {
        let Some(dir) = self.dir(track) else {
            return;
        };
        if let Err(e) = write_atomic(&dir.join(INIT_FILE), init) {
            self.error("cannot write the init segment", &e);
        }
    }

    /// Writes a segment atomically. Returns whether it is on disk and the (track, start) of
    /// segments deleted to stay under the byte bound. Blocking.
    pub fn write(&self, track: usize, s: &Segment, data: &[u8]) -> (bool, Vec<(usize, u64)>) {
        let Some(path) = self.path_of(track, s) else {
            return (false, Vec::new());
        };
        // Not opened yet (no init segment): nothing to name its files' order by.
        let Some(timescale) = lock(&self.timescales).get(track).copied().flatten() else {
            return (false, Vec::new());
        };
        if s.len > self.max_bytes {
            return (false, Vec::new());
        }
        // Make room and reserve the bytes under the lock, so concurrent writers of other
        // tracks cannot overshoot the bound together.
        let mut evicted = Vec::new();
        let mut doomed = Vec::new();
        {
            let mut st = lock(&self.state);
            while st.bytes + s.len > self.max_bytes {
                let Some((key, (path, len))) = st.files.pop_first() else {
                    break;
                };
                st.bytes -= len;
                st.evicted += 1;
                evicted.push((key.track, key.start));
                doomed.push(path);
            }
            st.bytes += s.len;
        }
        for p in doomed {
            let _ = fs::remove_file(p);
        }
        if let Err(e) = write_atomic(&path, data) {
            lock(&self.state).bytes -= s.len;
            self.error("cannot write a segment", &e);
            return (false, evicted);
        }
        {
            let mut st = lock(&self.state);
            let key = FileKey {
                end_ns: to_ns(s.end(), timescale),
                track,
                start: s.start,
            };
            if let Some((_, old)) = st.files.insert(key, (path, s.len)) {
                st.bytes -= old;
            }
        }
        (true, evicted)
    }

    /// Deletes a segment's file (it left the window). Blocking.
    pub fn remove(&self, track: usize, s: &Segment) {
        // A track never opened has no files listed.
        let Some(timescale) = lock(&self.timescales).get(track).copied().flatten() else {
            return;
        };
        let key = FileKey {
            end_ns: to_ns(s.end(), timescale),
            track,
            start: s.start,
        };
        let removed = {
            let mut st = lock(&self.state);
            let r = st.files.remove(&key);
            if let Some((_, len)) = &r {
                st.bytes -= len;
            }
            r
        };
        if let Some((path, _)) = removed {
            let _ = fs::remove_file(path);
        }
    }

    pub fn stats(&self) -> DiskStats {
        let st = lock(&self.state);
        DiskStats {
            bytes: st.bytes,
            files: st.files.len() as u64,
            errors: st.errors,
            evicted: st.evicted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::VIDEO_CLOCK as V90;
    use bytes::Bytes;

    fn seg(i: u64, len: usize) -> (Segment, Vec<u8>) {
        let data = vec![i as u8; len];
        (
            Segment {
                index: i,
                start: i * 90_000,
                duration: 90_000,
                filler: false,
                len: len as u64,
                media_bytes: len as u64,
                etag: super::super::window::fnv1a(&data),
                ram: Some(Bytes::from(data.clone())),
                on_disk: false,
                init_id: fnv1a(b"init"),
            },
            data,
        )
    }

    #[test]
    fn names_round_trip() {
        let (s, _) = seg(7, 3);
        assert_eq!(
            parse_file_name(&file_name(&s)),
            Some(FileName {
                index: 7,
                start: 630_000,
                duration: 90_000,
                etag: s.etag,
                init_id: Some(fnv1a(b"init")),
            })
        );
        assert_eq!(
            parse_file_name("7-630000-90000-00000000000000ab.m4s").map(|f| (f.etag, f.init_id)),
            Some((0xab, None))
        );
        assert_eq!(parse_file_name("../../etc/passwd"), None);
        assert_eq!(parse_file_name("1-2-3-zz.m4s"), None);
        assert_eq!(parse_file_name("1-2-3-4-zz.m4s"), None);
        assert_eq!(parse_file_name("1-2-3-4-5-6.m4s"), None);
    }

    #[test]
    fn bounded_by_bytes_and_reloaded_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::new(dir.path().into(), 250, vec!["v".into(), "audio".into()]);
        assert!(store.open_track(0, b"init", V90, u64::MAX).is_empty());
        let mut evicted_all = Vec::new();
        for i in 0..5 {
            let (s, data) = seg(i, 100);
            let (ok, evicted) = store.write(0, &s, &data);
            assert!(ok);
            evicted_all.extend(evicted);
            assert!(store.stats().bytes <= 250);
        }
        assert_eq!(evicted_all, vec![(0, 0), (0, 90_000), (0, 180_000)]);
        assert_eq!(store.stats().files, 2);
        assert_eq!(store.stats().evicted, 3, "every eviction counted");
        // A leftover temporary file is cleaned up on reload.
        std::fs::write(dir.path().join("v/9-9-9-9.m4s.tmp"), b"x").unwrap();

        let again = DiskStore::new(dir.path().into(), 250, vec!["v".into(), "audio".into()]);
        let back = again.open_track(0, b"init", V90, u64::MAX);
        assert_eq!(back.iter().map(|s| s.index).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(again.stats().bytes, 200);
        assert!(!dir.path().join("v/9-9-9-9.m4s.tmp").exists());
        // Another init segment: the old files are not served.
        let other = DiskStore::new(dir.path().into(), 250, vec!["v".into(), "audio".into()]);
        assert!(other.open_track(0, b"other", V90, u64::MAX).is_empty());
        assert_eq!(other.stats().files, 0);
    }

    #[test]
    fn unwritable_directory_counts_errors() {
        let store = DiskStore::new(
            PathBuf::from("/proc/twincast-no-such-dir"),
            1 << 20,
            vec!["v".into()],
        );
        assert!(store.open_track(0, b"init", V90, u64::MAX).is_empty());
        let (s, data) = seg(1, 10);
        assert!(!store.write(0, &s, &data).0);
        assert!(store.stats().errors >= 2);
    }

    #[test]
    fn a_new_init_version_keeps_older_files_until_restart() {
        let dir = tempfile::tempdir().unwrap();
        // Left by an older twincast: init.mp4 and a file in the older name form.
        std::fs::create_dir_all(dir.path().join("v")).unwrap();
        std::fs::write(dir.path().join("v/init.mp4"), b"init").unwrap();
        let legacy = dir.path().join("v/9-810000-90000-00000000000000ab.m4s");
        std::fs::write(&legacy, b"x").unwrap();
        let store = DiskStore::new(dir.path().into(), 1 << 20, vec!["v".into()]);
        let back = store.open_track(0, b"init", V90, u64::MAX);
        // Reloaded (init.mp4 matches) and renamed to the form with the init id.
        assert_eq!(back.iter().map(|s| s.index).collect::<Vec<_>>(), vec![9]);
        assert!(!legacy.exists());
        assert!(
            dir.path()
                .join(format!(
                    "v/9-810000-90000-00000000000000ab-{:016x}.m4s",
                    fnv1a(b"init")
                ))
                .exists()
        );
        for i in 10..12 {
            let (s, data) = seg(i, 10);
            assert!(store.write(0, &s, &data).0);
        }
        // A reload brings a new init segment from segment 12 on; the older files stay on disk.
        store.set_init(0, b"new");
        for i in 12..14 {
            let (mut s, data) = seg(i, 10);
            s.init_id = fnv1a(b"new");
            assert!(store.write(0, &s, &data).0);
        }
        assert_eq!(store.stats().files, 5);
        assert_eq!(
            std::fs::read(dir.path().join("v/init.mp4")).unwrap(),
            b"new"
        );

        // Restart with the new init: only its segments come back, the others are removed.
        let again = DiskStore::new(dir.path().into(), 1 << 20, vec!["v".into()]);
        let back = again.open_track(0, b"new", V90, u64::MAX);
        assert_eq!(
            back.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![12, 13]
        );
        assert!(back.iter().all(|s| s.init_id == fnv1a(b"new")));
        let files = std::fs::read_dir(dir.path().join("v")).unwrap().count();
        assert_eq!(files, 3, "two segments and init.mp4");
        assert_eq!(again.stats().files, 2);
    }
}
