//! How the origin is set up: the `[origin]` section on the epoch grid, fixed for the origin's
//! life (a reload that changes it restarts the daemon's origin).

use std::path::PathBuf;
use std::time::Duration;

use twincast_media::Timescale;
use twincast_media::playlist::{Timing, ticks};
use twincast_media::timeline::{Grid, segment_fragments_for_gop};

use super::window::TrackWindow;
use crate::config::AllowEntry;

/// Default bound on concurrent connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;
/// Default time a client has to send a request's headers (also the keep-alive idle limit).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// How the origin is set up.
#[derive(Debug, Clone)]
pub struct OriginSettings {
    pub fragments_per_segment: u32,
    /// DVR window in ns.
    pub window_ns: u64,
    /// Frame rate for FRAME-RATE, as num/den.
    pub frame_rate: (u32, u32),
    /// Nominal segment duration in ns; EXT-X-TARGETDURATION is derived from it once, so it
    /// never changes while the stream is live.
    pub segment_ns: u64,
    /// Age of the RAM part, ns.
    pub ram_ns: u64,
    /// Bytes of the RAM part per track.
    pub ram_bytes_per_track: u64,
    /// Disk tier directory; `None`: RAM only.
    pub dvr_dir: Option<PathBuf>,
    /// Bound on the disk tier's bytes (all tracks).
    pub dvr_max_bytes: u64,
    /// Clients allowed; empty: anyone.
    pub allow: Vec<AllowEntry>,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// The video carries CEA-608 captions on CC1 (src/captions.rs): the manifests say so.
    pub captions: bool,
}

impl OriginSettings {
    /// Settings with the defaults for everything but the timeline.
    pub fn new(
        fragments_per_segment: u32,
        window_ns: u64,
        frame_rate: (u32, u32),
        segment_ns: u64,
    ) -> Self {
        OriginSettings {
            fragments_per_segment,
            window_ns,
            frame_rate,
            segment_ns,
            ram_ns: crate::config::DEFAULT_DVR_RAM.as_nanos() as u64,
            ram_bytes_per_track: crate::config::DEFAULT_DVR_RAM_MAX_BYTES,
            dvr_dir: None,
            dvr_max_bytes: 0,
            allow: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            captions: false,
        }
    }

    /// The settings of a validated `[origin]` section on the epoch grid, with the DVR's disk
    /// tier in `dvr_dir` (`src/state_dir.rs` says where).
    pub fn from_config(
        origin: &crate::config::OriginSection,
        grid: &Grid,
        dvr_dir: &std::path::Path,
    ) -> Self {
        let fragments_per_segment = origin
            .segment_fragments
            .unwrap_or_else(|| segment_fragments_for_gop(grid.gop_ns() * grid.fragment_gops()));
        let mut s = OriginSettings::new(
            fragments_per_segment,
            u64::try_from(origin.dvr_window.as_nanos()).unwrap_or(u64::MAX),
            (grid.rate().num(), grid.rate().den()),
            grid.fragment_duration_ns() * u64::from(fragments_per_segment),
        );
        s.dvr_dir = Some(dvr_dir.to_path_buf());
        s.dvr_max_bytes = origin.dvr_max_bytes;
        s.ram_ns = u64::try_from(origin.dvr_ram.as_nanos()).unwrap_or(u64::MAX);
        s.ram_bytes_per_track = origin.dvr_ram_max_bytes;
        s.allow = origin.allow.clone();
        s
    }

    /// What the playlist writers need of the settings.
    pub fn timing(&self) -> Timing {
        Timing {
            segment_ns: self.segment_ns,
            window_ns: self.window_ns,
            frame_rate: self.frame_rate,
            captions: self.captions,
        }
    }

    /// The DVR window in `timescale` ticks.
    pub fn window_ticks(&self, timescale: Timescale) -> u64 {
        ticks(self.window_ns, timescale)
    }

    /// An empty window for a track at `timescale`.
    pub fn new_window(&self, timescale: Timescale) -> TrackWindow {
        TrackWindow::new(
            timescale,
            self.fragments_per_segment,
            ticks(self.window_ns, timescale),
            ticks(self.ram_ns, timescale),
            self.ram_bytes_per_track,
        )
    }
}
