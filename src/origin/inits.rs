//! The init segment versions of a track (docs/design/origin.md, *Init segment versions*): the
//! current one and every older one a segment in the window still references, by id (the
//! FNV-1a of its bytes, [`super::window::fnv1a`]), and the names playlists and URLs give them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::hub::InitSegment;

pub use twincast_media::playlist::init_file_name;

/// Parses `init-<16 lowercase hex digits>.mp4`.
pub fn parse_init_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("init-")?.strip_suffix(".mp4")?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The init segment versions of one track: the current one (the hub's latest) and every one
/// the window still references, by id.
#[derive(Debug, Default)]
pub struct InitVersions {
    current: Option<(u64, Arc<InitSegment>)>,
    held: BTreeMap<u64, Arc<InitSegment>>,
    first: Option<u64>,
    changed: bool,
    /// Bumped by every change.
    revision: u64,
}

impl InitVersions {
    /// A version seen on a fragment (or made current): held until nothing references it.
    pub fn note(&mut self, id: u64, init: &Arc<InitSegment>) {
        self.revision += 1;
        self.held.entry(id).or_insert_with(|| init.clone());
        match self.first {
            None => self.first = Some(id),
            Some(first) if first != id => self.changed = true,
            Some(_) => {}
        }
    }

    pub fn set_current(&mut self, id: u64, init: Arc<InitSegment>) {
        self.note(id, &init);
        self.current = Some((id, init));
    }

    pub fn current(&self) -> Option<&Arc<InitSegment>> {
        self.current.as_ref().map(|(_, i)| i)
    }

    pub fn current_id(&self) -> Option<u64> {
        self.current.as_ref().map(|(id, _)| *id)
    }

    /// The version `id`, if held.
    pub fn get(&self, id: u64) -> Option<&Arc<InitSegment>> {
        self.held.get(&id)
    }

    pub fn held_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.held.keys().copied()
    }

    /// This process has seen more than one version of the track's init segment.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The file name of version `id` in playlists ([`init_file_name`]).
    pub fn file_name(&self, id: u64) -> String {
        init_file_name(id, self.changed)
    }

    /// Drops the versions neither `referenced` nor current.
    pub fn retain(&mut self, referenced: &BTreeSet<u64>) {
        let current = self.current_id();
        let before = self.held.len();
        self.held
            .retain(|id, _| referenced.contains(id) || Some(*id) == current);
        if self.held.len() != before {
            self.revision += 1;
        }
    }

    /// Changes with every change to the versions held, the current one or [`Self::changed`].
    pub fn revision(&self) -> u64 {
        self.revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn init_versions_are_held_while_referenced() {
        let init = |b: &'static [u8]| {
            Arc::new(InitSegment {
                info: twincast_media::TrackInfo {
                    id: 1,
                    name: "v".into(),
                    timescale: 90_000,
                    codec: twincast_media::Codec::H264 {
                        avcc: vec![1, 0x64, 0, 0x1f],
                        width: 2,
                        height: 2,
                    },
                    bitrate: 1,
                },
                bytes: Bytes::from_static(b),
            })
        };
        let mut v = InitVersions::default();
        v.set_current(1, init(b"a"));
        assert!(!v.changed());
        assert_eq!(v.file_name(1), "init.mp4");
        v.set_current(2, init(b"b"));
        assert!(v.changed());
        assert_eq!(v.file_name(1), "init-0000000000000001.mp4");
        v.retain(&BTreeSet::from([1]));
        assert_eq!(v.held_ids().collect::<Vec<_>>(), vec![1, 2]);
        v.retain(&BTreeSet::new());
        assert_eq!(v.held_ids().collect::<Vec<_>>(), vec![2]);
        assert!(v.get(1).is_none() && v.changed());
        assert_eq!(parse_init_file_name("init-00000000000000ff.mp4"), Some(255));
        for bad in [
            "init-00000000000000FF.mp4",
            "init-0ff.mp4",
            "init-000000000000000ff.mp4",
            "init-+00000000000000f.mp4",
            "init-00000000000000fg.mp4",
            "init.mp4",
            "init-00000000000000ff.m4s",
        ] {
            assert_eq!(parse_init_file_name(bad), None, "{bad}");
        }
    }
}
