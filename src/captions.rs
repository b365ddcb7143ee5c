//! Closed-caption passthrough (`[input] captions`, docs/design/signals.md, *Captions*).
//!
//! A source's CEA-608/708 captions arrive on its decoded pictures as GStreamer caption metas
//! (the decoder reads them from the source's SEI). The grid clock takes them off the picture it
//! feeds as frame k, live pictures only (a held picture or the slate repeats no caption
//! bytes), and records them here under k; no encoder ever sees them. The package thread of
//! every rendition writes frame k's captions into its access unit as an A/53 SEI (the media
//! crate's `h264::caption_nal`), so each rendition carries the same bytes on the same frame,
//! whatever its encoder, and both boxes of a pair do too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video::{VideoCaptionMeta, VideoCaptionType};
use twincast_media::h264::{CaptionFormat, CcTriplet, cc_triplets};

use crate::sync::lock;

/// Frames whose captions are kept for the renditions to read: far more than an encoder is
/// ever behind the grid clock (its queue holds at most a GOP's pictures), and bounded.
pub const KEPT_FRAMES: u64 = 600;

/// Frame k's captions, from the grid clock to the package threads.
#[derive(Debug)]
pub struct Captions {
    passthrough: bool,
    /// The manifests announce CEA-608 captions (HLS `CLOSED-CAPTIONS`, MPD `Accessibility`).
    declared: bool,
    frames: Mutex<BTreeMap<u64, Arc<[CcTriplet]>>>,
    /// Frames fed with a source picture that carried captions (`captions.frames`).
    pub frames_in: AtomicU64,
    /// `cc_data` constructs recorded (`captions.constructs`).
    pub constructs: AtomicU64,
    /// Source pictures whose captions were taken off and not carried because
    /// `captions = "none"` (`captions.frames_not_carried`).
    pub frames_not_carried: AtomicU64,
}

impl Captions {
    /// `declared`: the manifests say the video carries captions (CC1).
    pub fn new(passthrough: bool, declared: bool) -> Self {
        Captions {
            passthrough,
            declared: passthrough && declared,
            frames: Mutex::new(BTreeMap::new()),
            frames_in: AtomicU64::new(0),
            constructs: AtomicU64::new(0),
            frames_not_carried: AtomicU64::new(0),
        }
    }

    /// The captions of `[input]`: its `captions` mode, declared in the manifests when its kind
    /// brings coded video that can carry them (a file, rtsp or a transport stream; not the
    /// test pattern or a camera).
    pub fn for_input(input: &crate::config::InputSection) -> Self {
        use crate::config::{CaptionsMode, InputKind};
        let coded = !matches!(input.kind, InputKind::Test | InputKind::V4l2);
        Captions::new(input.captions == CaptionsMode::Passthrough, coded)
    }

    pub fn passthrough(&self) -> bool {
        self.passthrough
    }

    /// Whether the HLS master and the MPD declare captions.
    pub fn declared(&self) -> bool {
        self.declared
    }

    /// Frame k is fed `picture`, a live source picture: its captions are frame k's.
    pub fn record(&self, k: u64, picture: &gst::BufferRef) {
        let cc = triplets_of(picture);
        if cc.is_empty() {
            return;
        }
        if !self.passthrough {
            self.frames_not_carried.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.constructs
            .fetch_add(cc.len() as u64, Ordering::Relaxed);
        let mut frames = lock(&self.frames);
        frames.insert(k, cc.into());
        let oldest = k.saturating_sub(KEPT_FRAMES);
        while frames
            .first_key_value()
            .is_some_and(|(&first, _)| first < oldest || frames.len() as u64 > KEPT_FRAMES)
        {
            frames.pop_first();
        }
    }

    /// The captions of frame k, if its picture had any.
    pub fn of_frame(&self, k: u64) -> Option<Arc<[CcTriplet]>> {
        if !self.passthrough {
            return None;
        }
        lock(&self.frames).get(&k).cloned()
    }
}

/// The `cc_data` of a picture's caption metas, in their order.
pub fn triplets_of(picture: &gst::BufferRef) -> Vec<CcTriplet> {
    let mut out = Vec::new();
    for meta in picture.iter_meta::<VideoCaptionMeta>() {
        let format = match meta.caption_type() {
            VideoCaptionType::Cea608Raw => CaptionFormat::Cea608Raw,
            VideoCaptionType::Cea608S3341a => CaptionFormat::Cea608S334_1a,
            VideoCaptionType::Cea708Raw => CaptionFormat::Cea708Raw,
            VideoCaptionType::Cea708Cdp => CaptionFormat::Cea708Cdp,
            _ => continue,
        };
        out.extend(cc_triplets(format, meta.data()));
    }
    out
}

/// Takes every caption meta off a picture bound for the encoders (the package thread writes
/// the captions; an encoder that wrote them too would double them).
pub fn strip(picture: &mut gst::BufferRef) {
    let api = VideoCaptionMeta::meta_api();
    picture.foreach_meta_mut(|meta| {
        std::ops::ControlFlow::Continue(if meta.api() == api {
            gst::buffer::BufferMetaForeachAction::Remove
        } else {
            gst::buffer::BufferMetaForeachAction::Keep
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture_with(cc: &[(VideoCaptionType, &[u8])]) -> gst::Buffer {
        let mut b = gst::Buffer::with_size(16).expect("buffer");
        for (kind, data) in cc {
            VideoCaptionMeta::add(b.get_mut().expect("writable"), *kind, data);
        }
        b
    }

    #[test]
    fn live_pictures_captions_are_kept_per_frame_and_bounded() {
        gst::init().expect("gst");
        let c = Captions::new(true, true);
        let p = picture_with(&[
            (VideoCaptionType::Cea708Raw, &[0xFC, 0x94, 0x20]),
            (VideoCaptionType::Cea608Raw, &[0xC8, 0x49]),
        ]);
        c.record(7, &p);
        c.record(8, &picture_with(&[]));
        assert_eq!(
            c.of_frame(7).as_deref(),
            Some(&[[0xFC, 0x94, 0x20], [0xFC, 0xC8, 0x49]][..])
        );
        assert_eq!(c.of_frame(8), None);
        assert_eq!(c.frames_in.load(Ordering::Relaxed), 1);
        assert_eq!(c.constructs.load(Ordering::Relaxed), 2);
        for k in 100..100 + 2 * KEPT_FRAMES {
            c.record(k, &p);
        }
        assert_eq!(c.of_frame(7), None);
        assert_eq!(lock(&c.frames).len() as u64, KEPT_FRAMES);
    }

    #[test]
    fn none_keeps_nothing_and_counts_what_it_did_not_carry() {
        gst::init().expect("gst");
        let c = Captions::new(false, true);
        c.record(
            1,
            &picture_with(&[(VideoCaptionType::Cea708Raw, &[0xFC, 0x94, 0x20])]),
        );
        assert_eq!(c.of_frame(1), None);
        assert_eq!(c.frames_not_carried.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn stripping_takes_the_caption_metas_only() {
        gst::init().expect("gst");
        let mut p = picture_with(&[(VideoCaptionType::Cea708Raw, &[0xFC, 0x94, 0x20])]);
        gstreamer_video::VideoMeta::add(
            p.get_mut().expect("writable"),
            gstreamer_video::VideoFrameFlags::empty(),
            gstreamer_video::VideoFormat::Gray8,
            4,
            4,
        )
        .expect("video meta");
        strip(p.get_mut().expect("writable"));
        assert!(triplets_of(&p).is_empty());
        assert!(p.meta::<gstreamer_video::VideoMeta>().is_some());
    }
}
