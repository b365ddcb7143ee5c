//! `[timeline]`, `[[rendition]]` and `[audio]`: the grid and the ladder. Whether a GOP is a
//! whole number of frames is the media crate's `Grid` (twincast_media::timeline), the same
//! check the daemon's grid makes when it starts (docs/design/timeline.md, *The grid*), so a
//! file `check-config` accepts never fails there.

use std::time::Duration;

use twincast_media::timeline::{FrameRate, Grid, NS_PER_SEC, TimelineError};

use super::{Checker, is_url_safe};
use crate::config::duration::format_duration;
use crate::config::spans::KeyPath;
use crate::config::{AudioInput, FrameRateSpec};

/// Legal rendition bitrates in kbit/s.
pub const RENDITION_BITRATE_KBPS: (u32, u32) = (50, 100_000);
/// Warn above this many kbit/s for one rendition.
pub const WARN_RENDITION_KBPS: u32 = 10_000;
/// Warn above this many kbit/s for the whole ladder.
pub const WARN_LADDER_KBPS: u64 = 25_000;
/// Warn above this many video renditions.
pub const WARN_VIDEO_RENDITIONS: usize = 10;
/// Warn above this many audio tracks.
pub const WARN_AUDIO_TRACKS: usize = 5;
/// Legal audio sample rates in Hz.
pub const SAMPLE_RATES: &[u32] = &[8000, 16000, 22050, 24000, 32000, 44100, 48000];
/// Legal audio channel counts.
pub const CHANNELS: (u16, u16) = (1, 8);
/// Legal AAC bitrates in kbit/s.
pub const AUDIO_BITRATE_KBPS: (u32, u32) = (16, 512);
/// Longest GOP accepted.
pub const MAX_GOP: Duration = Duration::from_secs(60);

/// Frames in `gop` at `rate`, if it is a whole number.
pub fn gop_frames(gop: Duration, rate: FrameRateSpec) -> Option<u64> {
    grid_frames(gop, rate.frame_rate()?)
}

/// Frames per GOP of the media crate's [`Grid`] for `gop` at `rate`: `None` unless the GOP is a
/// whole number of frames (0 for an empty GOP).
fn grid_frames(gop: Duration, rate: FrameRate) -> Option<u64> {
    let gop_ns = u64::try_from(gop.as_nanos()).ok()?;
    match Grid::new(rate, gop_ns) {
        Ok(grid) => Some(grid.gop_frames()),
        Err(TimelineError::GopEmpty) => Some(0),
        Err(_) => None,
    }
}

/// Duration of `frames` frames at `rate`, rounded down to whole nanoseconds (the start of frame
/// `frames` on the grid).
fn frames_duration(frames: u64, rate: FrameRate) -> Duration {
    Duration::from_nanos(rate.frame_time_ns(frames))
}

/// Whole frames that fit in `gop` at `rate` (rounded down; the media crate rounds only to the
/// nearest).
fn frames_below(gop: Duration, rate: FrameRate) -> u64 {
    let period_den = u128::from(rate.den()) * u128::from(NS_PER_SEC);
    u64::try_from(gop.as_nanos() * u128::from(rate.num()) / period_den).unwrap_or(u64::MAX)
}

impl Checker<'_, '_, '_, '_> {
    pub(super) fn timeline(&mut self) {
        let s = KeyPath::key("timeline");
        let t = &self.c.timeline;
        if t.fragment_gops == 0 {
            self.err(
                &s.join("fragment_gops"),
                "0 is not legal (legal values: 1 or more)".into(),
            );
        }
        if t.gop.is_zero() || t.gop > MAX_GOP {
            self.err(
                &s.join("gop"),
                format!(
                    "{} is out of range (legal values: one frame..={})",
                    format_duration(t.gop),
                    format_duration(MAX_GOP)
                ),
            );
            return;
        }
        if self.tainted(&["input.framerate", "timeline.gop"]) {
            return;
        }
        let spec = self.c.input.framerate;
        let Some(rate) = spec.frame_rate() else {
            return;
        };
        match gop_frames(t.gop, spec) {
            Some(0) => {
                self.err(&s.join("gop"), format!("{} is shorter than one frame at {rate} fps (legal values: whole frames, e.g. {})", format_duration(t.gop), format_duration(frames_duration(1, rate))))
            }
            Some(_) => {}
            None => self.gop_not_whole(&s.join("gop"), t.gop, rate),
        }
    }

    /// A GOP that is not a whole number of frames, with the whole ones next to it.
    fn gop_not_whole(&mut self, path: &KeyPath, gop: Duration, rate: FrameRate) {
        let below = frames_below(gop, rate).max(1);
        let mut near: Vec<String> = [below, below + 1]
            .iter()
            .filter_map(|&f| {
                let d = frames_duration(f, rate);
                grid_frames(d, rate).map(|_| format!("\"{}\" ({f} frames)", format_duration(d)))
            })
            .collect();
        near.dedup();
        let hint = if near.is_empty() {
            "choose a frame rate and GOP whose product is a whole number".to_string()
        } else {
            format!("legal values near it: {}", near.join(", "))
        };
        self.err(
            path,
            format!(
                "{} is not a whole number of frames at {rate} fps ({:.3} frames) ({hint})",
                format_duration(gop),
                gop.as_secs_f64() * rate.as_f64()
            ),
        );
    }

    pub(super) fn renditions(&mut self) {
        let renditions = &self.c.rendition;
        if renditions.is_empty() {
            if !self.p.spans.has(&KeyPath::key("rendition")) {
                self.r.error(
                    Some(
                        self.p
                            .spans
                            .value(&KeyPath::key("rendition"))
                            .unwrap_or(0..0),
                    ),
                    "no video renditions: at least one [[rendition]] is required".to_string(),
                );
            }
            return;
        }
        let width_ok = !self.tainted(&["input.width"]);
        let height_ok = !self.tainted(&["input.height"]);
        let mut total_kbps: u64 = 0;
        let mut warned_total = false;
        for (i, rend) in renditions.iter().enumerate() {
            let file_index = self.p.rendition_src[i];
            let s = KeyPath::index("rendition", file_index);
            if !is_url_safe(&rend.name) {
                self.err(
                    &s.join("name"),
                    format!(
                        "\"{}\" is not URL-safe (legal characters: A-Z a-z 0-9 _ -)",
                        rend.name
                    ),
                );
            } else if rend
                .name
                .eq_ignore_ascii_case(twincast_media::TrackId::AUDIO)
            {
                self.err(
                    &s.join("name"),
                    "\"audio\" is reserved for the audio track".into(),
                );
            }
            let wmax = width_ok.then_some((self.c.input.width, "width"));
            let hmax = height_ok.then_some((self.c.input.height, "height"));
            self.dimension(&s.join("width"), rend.width, wmax);
            self.dimension(&s.join("height"), rend.height, hmax);
            let (lo, hi) = RENDITION_BITRATE_KBPS;
            if !(lo..=hi).contains(&rend.bitrate_kbps) {
                self.err(
                    &s.join("bitrate_kbps"),
                    format!(
                        "{} is out of range (legal values: {lo}..={hi})",
                        rend.bitrate_kbps
                    ),
                );
            } else if rend.bitrate_kbps > WARN_RENDITION_KBPS {
                self.warn(
                    &s.join("bitrate_kbps"),
                    format!(
                        "{} kbit/s is more than {WARN_RENDITION_KBPS} kbit/s for one rendition",
                        rend.bitrate_kbps
                    ),
                );
            }
            total_kbps += u64::from(rend.bitrate_kbps);
            if total_kbps > WARN_LADDER_KBPS && !warned_total {
                warned_total = true;
                let sum: u64 = renditions.iter().map(|r| u64::from(r.bitrate_kbps)).sum();
                self.warn(
                    &s.join("bitrate_kbps"),
                    format!("the ladder totals {sum} kbit/s, more than {WARN_LADDER_KBPS} kbit/s"),
                );
            }
            if i == WARN_VIDEO_RENDITIONS {
                self.warn(&s, format!("{} video renditions: more than {WARN_VIDEO_RENDITIONS} is unusual and costly", renditions.len()));
            }
        }
    }

    pub(super) fn audio(&mut self) {
        let s = KeyPath::key("audio");
        let a = &self.c.audio;
        if !SAMPLE_RATES.contains(&a.sample_rate) {
            let legal: Vec<String> = SAMPLE_RATES.iter().map(u32::to_string).collect();
            self.err(
                &s.join("sample_rate"),
                format!(
                    "{} is not supported (legal values: {})",
                    a.sample_rate,
                    legal.join(", ")
                ),
            );
        }
        let (lo, hi) = CHANNELS;
        if !(lo..=hi).contains(&a.channels) {
            self.err(
                &s.join("channels"),
                format!("{} is out of range (legal values: {lo}..={hi})", a.channels),
            );
        }
        let (lo, hi) = AUDIO_BITRATE_KBPS;
        if !(lo..=hi).contains(&a.bitrate_kbps) {
            self.err(
                &s.join("bitrate_kbps"),
                format!(
                    "{} is out of range (legal values: {lo}..={hi})",
                    a.bitrate_kbps
                ),
            );
        }
        let tracks = usize::from(self.c.input.audio != AudioInput::None);
        if tracks > WARN_AUDIO_TRACKS {
            self.warn(
                &s,
                format!("{tracks} audio tracks: more than {WARN_AUDIO_TRACKS}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(num: u32, den: u32) -> FrameRateSpec {
        FrameRateSpec { num, den }
    }

    #[test]
    fn gop_whole_frames_exact() {
        assert_eq!(gop_frames(Duration::from_secs(2), fr(30, 1)), Some(60));
        assert_eq!(gop_frames(Duration::from_secs(2), fr(30000, 1001)), None);
        assert_eq!(
            gop_frames(Duration::from_millis(2002), fr(30000, 1001)),
            Some(60)
        );
        assert_eq!(
            gop_frames(Duration::from_millis(1001), fr(60000, 1001)),
            Some(60)
        );
        assert_eq!(gop_frames(Duration::from_millis(500), fr(25, 1)), None);
        assert_eq!(gop_frames(Duration::from_millis(480), fr(25, 1)), Some(12));
        assert_eq!(gop_frames(Duration::from_millis(10), fr(25, 1)), None);
    }
}
