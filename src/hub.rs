//! Hub: the one shared point between packaging and every consumer (origin, publishers).
//!
//! Per track: the current init segment (a `watch`: consumers always see the latest) and a
//! bounded broadcast of fragments. Every fragment also names the init segment it was written
//! against, so a consumer that is behind the `watch` (it still has older fragments to handle
//! when a rebuilt encoder brings new codec parameters) pairs each fragment with the right one. Publishing never blocks: a consumer that falls more than
//! `FRAGMENT_CAPACITY` fragments behind loses the oldest ones and is told how many it lost
//! (tokio's `RecvError::Lagged`), which it counts as drops.
//!
//! Architecture Invariant: no consumer can block the producer or another consumer.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};
use twincast_media::{MediaTime, Sample, Timescale, TrackId, TrackInfo};

/// Fragments a consumer may fall behind before it loses some (per track). The ring keeps this
/// many fragments alive whether or not anyone still needs them, so it is small: consumers copy
/// what they need into their own bounded backlogs as soon as it arrives.
pub const FRAGMENT_CAPACITY: usize = 8;

/// An init segment with the track description it was written from.
#[derive(Debug)]
pub struct InitSegment {
    pub info: TrackInfo,
    pub bytes: Bytes,
}

/// One packaged CMAF fragment.
#[derive(Debug)]
pub struct PackagedFragment {
    /// Fragment sequence number n from the epoch (docs/design/timeline.md, *The grid*).
    pub sequence: u64,
    /// Decode time of the first sample, in the track timescale.
    pub base_dts: u64,
    /// Duration in the track timescale.
    pub duration: u64,
    /// The track timescale of `base_dts`, `duration` and the samples' timestamps: consumers
    /// read it here, never from a guess.
    pub timescale: Timescale,
    pub sample_count: u32,
    /// Built from slate frames.
    pub filler: bool,
    /// `styp`..`mdat`, ready to serve or send.
    pub bytes: Bytes,
    /// The media samples' total size (without box overhead), for bitrate figures.
    pub media_bytes: u64,
    /// The samples themselves (timestamps in the track timescale, AVCC / raw AAC data), for
    /// consumers that package differently (FLV for RTMP, Smooth's 10 MHz fragments).
    pub samples: Arc<Vec<Sample>>,
    /// The init segment this fragment was written against (`None` only in tests).
    pub init: Option<Arc<InitSegment>>,
}

impl PackagedFragment {
    /// Decode time of the first sample.
    pub fn start(&self) -> MediaTime {
        MediaTime::new(self.base_dts, self.timescale)
    }

    /// How long the fragment lasts.
    pub fn span(&self) -> MediaTime {
        MediaTime::new(self.duration, self.timescale)
    }
}

/// The hub's view of one track.
pub struct TrackHub {
    /// Track name (rendition name, or [`TrackId::AUDIO`]).
    pub name: TrackId,
    /// The timescale of every fragment and init segment of this track, known from the
    /// configuration before the first init segment (a new audio sample rate is a restart).
    pub timescale: Timescale,
    init: watch::Sender<Option<Arc<InitSegment>>>,
    fragments: broadcast::Sender<Arc<PackagedFragment>>,
}

impl TrackHub {
    fn new(name: TrackId, timescale: Timescale) -> Self {
        let (init, _) = watch::channel(None);
        let (fragments, _) = broadcast::channel(FRAGMENT_CAPACITY);
        TrackHub {
            name,
            timescale,
            init,
            fragments,
        }
    }

    /// Replaces the init segment (first time, or after a codec change).
    pub fn set_init(&self, init: Arc<InitSegment>) {
        self.init.send_replace(Some(init));
    }

    /// Publishes a fragment to every current subscriber; never blocks.
    pub fn publish(&self, fragment: PackagedFragment) {
        // An error only means nobody is subscribed right now.
        let _ = self.fragments.send(Arc::new(fragment));
    }

    pub fn init(&self) -> Option<Arc<InitSegment>> {
        self.init.borrow().clone()
    }

    pub fn watch_init(&self) -> watch::Receiver<Option<Arc<InitSegment>>> {
        self.init.subscribe()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<PackagedFragment>> {
        self.fragments.subscribe()
    }
}

/// All tracks, in track order (renditions in config order, then audio).
pub struct Hub {
    pub tracks: Vec<TrackHub>,
}

impl Hub {
    /// The hub of `tracks`: (name, timescale) in track order.
    pub fn new(tracks: impl IntoIterator<Item = (TrackId, Timescale)>) -> Arc<Self> {
        Arc::new(Hub {
            tracks: tracks
                .into_iter()
                .map(|(name, timescale)| TrackHub::new(name, timescale))
                .collect(),
        })
    }

    /// A hub of video tracks at 90 kHz and, for the name "audio", a 48 kHz audio track: the
    /// fixture of tests (the daemon builds its hub from the track specs).
    #[doc(hidden)]
    pub fn for_test<S: Into<TrackId>>(names: impl IntoIterator<Item = S>) -> Arc<Self> {
        Hub::new(names.into_iter().map(|n| {
            let name: TrackId = n.into();
            let hz = if name.is_audio() { 48_000 } else { 90_000 };
            (name, Timescale::new(hz).expect("non-zero"))
        }))
    }

    pub fn track(&self, name: &str) -> Option<&TrackHub> {
        self.tracks.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
impl PackagedFragment {
    /// A 2 s fragment n at 90 kHz whose bytes are `size` copies of `n as u8` (tests only).
    pub(crate) fn for_test(n: u64, size: usize) -> Self {
        PackagedFragment {
            sequence: n,
            base_dts: n * 180_000,
            duration: 180_000,
            timescale: Timescale::new(90_000).expect("non-zero"),
            sample_count: 60,
            filler: false,
            bytes: Bytes::from(vec![n as u8; size]),
            media_bytes: size as u64,
            samples: Arc::new(Vec::new()),
            init: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(n: u64) -> PackagedFragment {
        PackagedFragment::for_test(n, 1)
    }

    #[test]
    fn slow_consumer_lags_without_blocking_the_producer() {
        let hub = Hub::for_test(["720p"]);
        let track = &hub.tracks[0];
        let mut slow = track.subscribe();
        for n in 0..(FRAGMENT_CAPACITY as u64 + 10) {
            track.publish(frag(n));
        }
        match slow.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(lost)) => assert_eq!(lost, 10),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(slow.try_recv().map(|f| f.sequence).ok(), Some(10));
    }

    #[test]
    fn publishing_without_subscribers_is_fine() {
        let hub = Hub::for_test(["audio"]);
        hub.tracks[0].publish(frag(1));
        assert!(hub.track("audio").is_some());
        assert!(hub.track("nope").is_none());
    }
}
