//! The ad-break schedule (docs/design/signals.md): what `POST /splice` asks for, checked and
//! placed on the epoch grid, with its SCTE-35 section. Pure: the daemon parses the JSON, reads
//! the clock and asks the encoders' probe which frame it reached; this decides.
//!
//! A splice happens on frame `k = ceil(T·N/D)`, `T` the request's `at` or now plus its preroll.
//! Everything about it is a formula of the request and `k`: the splice time is frame `k`'s
//! epoch time, the SCTE-35 PTS its 90 kHz timestamp on the 33-bit range, the break duration
//! rounded to 90 kHz ticks, and an event id the request leaves out is `k`'s low 31 bits. So the
//! same request on both boxes of a pair gives the same frame and the same bytes.
//!
//! Bounded: [`MAX_SPLICES`] entries, pending and done; the oldest done ones go first, and a
//! request that would need room while all are pending is refused.

use std::collections::VecDeque;

use crate::scte35::{self, Command, Descriptor, Segmentation, SpliceInfo, SpliceInsert};
use crate::timeline::FrameRate;

/// Splices kept, pending and done (done ones are dropped oldest first).
pub const MAX_SPLICES: usize = 256;
/// The preroll when the request gives none (SCTE 67 recommends at least 4 s, so ingest
/// services get the signal ahead of the splice).
pub const DEFAULT_PREROLL_NS: u64 = 4_000_000_000;
/// The longest preroll or break a request may give (a day).
pub const MAX_AHEAD_NS: u64 = 86_400_000_000_000;
/// How far ahead of its splice time a fragment carries a splice's `emsg`
/// ([`carried_by_fragment`]): the default preroll, so that a request made with it reaches
/// every fragment that carries it on both boxes of a pair.
pub const EMSG_LEAD_NS: u64 = DEFAULT_PREROLL_NS;
/// `segmentation_upid_type` of the `upid` a time_signal request gives as text: URI (0x0F).
pub const UPID_URI: u8 = 0x0F;

/// One request, as the API gives it (times in ns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The break begins (splice_insert out of network), `duration` when it returns by itself.
    Out {
        event_id: Option<u32>,
        duration_ns: Option<u64>,
        when: When,
    },
    /// The break ends (splice_insert back into the network) for `event_id`.
    In { event_id: u32, when: When },
    /// Cancel the pending `event_id` (a splice_insert with the cancel indicator, sent now).
    Cancel { event_id: u32 },
    /// A time_signal with one segmentation descriptor.
    TimeSignal {
        event_id: Option<u32>,
        segmentation_type_id: u8,
        duration_ns: Option<u64>,
        upid: Option<String>,
        when: When,
    },
}

/// When a request splices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// This long after the request arrives.
    Preroll(u64),
    /// At this epoch time (ns): what automation that drives a pair sends.
    At(u64),
}

impl Default for When {
    fn default() -> Self {
        When::Preroll(DEFAULT_PREROLL_NS)
    }
}

/// What kind of signal a splice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Out,
    In,
    Cancel,
    TimeSignal { segmentation_type_id: u8 },
}

impl Kind {
    /// The API's name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Out => "out",
            Kind::In => "in",
            Kind::Cancel => "cancel",
            Kind::TimeSignal { .. } => "time_signal",
        }
    }
}

/// A splice on the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    pub event_id: u32,
    pub kind: Kind,
    /// The frame the splice happens on (an IDR in every rendition); for a cancel, the first
    /// frame after the request (it has no splice point).
    pub frame: u64,
    /// Frame `frame`'s epoch time, ns.
    pub time_ns: u64,
    pub duration_ns: Option<u64>,
    /// The SCTE-35 splice_info_section.
    pub section: Vec<u8>,
    /// A later cancel took it back.
    pub cancelled: bool,
}

impl Splice {
    /// Whether the splice forces an IDR on its frame (every kind but a cancel).
    pub fn conditions_frame(&self) -> bool {
        self.kind != Kind::Cancel && !self.cancelled
    }
}

/// Why a request was refused: the API answers 4xx with this text and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the splice time {at_ms} ms (epoch) is not ahead of the encoder, which is at frame {reached} ({reached_ms} ms); ask for a later \"at\" or a longer \"preroll\""
    )]
    Past {
        at_ms: u64,
        reached: u64,
        reached_ms: u64,
    },
    #[error("{what} {ns} ns is over the limit of 24 h")]
    TooFar { what: &'static str, ns: u64 },
    #[error("\"duration\" must be more than 0")]
    ZeroDuration,
    #[error("event {0} is already pending; cancel it first or use another event_id")]
    Duplicate(u32),
    #[error("no pending event {0} to cancel")]
    Unknown(u32),
    #[error("event {event_id} already spliced at {at_ms} ms (epoch); it cannot be cancelled")]
    AlreadyDone { event_id: u32, at_ms: u64 },
    #[error("{MAX_SPLICES} splices are pending, the limit; cancel one or wait for one to pass")]
    Full,
    #[error("the \"upid\" is {0} bytes, over SCTE 35's 255")]
    UpidTooLong(usize),
    #[error("the SCTE-35 section could not be written: {0}")]
    Section(String),
}

/// The schedule of one box.
#[derive(Debug, Clone)]
pub struct Schedule {
    rate: FrameRate,
    splices: VecDeque<Splice>,
}

impl Schedule {
    pub fn new(rate: FrameRate) -> Schedule {
        Schedule {
            rate,
            splices: VecDeque::new(),
        }
    }

    /// Every splice, in the order they were scheduled.
    pub fn splices(&self) -> impl Iterator<Item = &Splice> {
        self.splices.iter()
    }

    /// Pending: its frame is after `reached` (the last frame the encoders' probe saw).
    pub fn is_pending(s: &Splice, reached: u64) -> bool {
        s.frame > reached && !s.cancelled
    }

    /// Whether frame `k` must be an IDR for a splice.
    pub fn conditions(&self, k: u64) -> bool {
        self.splices
            .iter()
            .any(|s| s.frame == k && s.conditions_frame())
    }

    /// The first frame after `k` that a splice conditions (`u64::MAX`: none).
    pub fn next_conditioned_after(&self, k: u64) -> u64 {
        self.splices
            .iter()
            .filter(|s| s.frame > k && s.conditions_frame())
            .map(|s| s.frame)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Takes back the splice added last (the encoders passed its frame while it was added).
    pub fn withdraw_last(&mut self) -> Option<Splice> {
        self.splices.pop_back()
    }

    /// Checks `req`, made at epoch time `now_ns` with the encoders at frame `reached`, and puts
    /// it on the schedule.
    pub fn add(&mut self, req: &Request, now_ns: u64, reached: u64) -> Result<&Splice, Refusal> {
        let splice = self.plan(req, now_ns, reached)?;
        if self.splices.len() >= MAX_SPLICES {
            let done = self
                .splices
                .iter()
                .position(|s| !Self::is_pending(s, reached))
                .ok_or(Refusal::Full)?;
            self.splices.remove(done);
        }
        if let Request::Cancel { event_id } = req {
            for s in self.splices.iter_mut() {
                if s.event_id == *event_id && Self::is_pending(s, reached) {
                    s.cancelled = true;
                }
            }
        }
        self.splices.push_back(splice);
        Ok(self.splices.back().expect("just pushed"))
    }

    fn plan(&self, req: &Request, now_ns: u64, reached: u64) -> Result<Splice, Refusal> {
        if let Request::Cancel { event_id } = *req {
            let mut pending = false;
            let mut done_at = None;
            for s in self.splices.iter().filter(|s| s.event_id == event_id) {
                if s.kind == Kind::Cancel || s.cancelled {
                    continue;
                }
                if Self::is_pending(s, reached) {
                    pending = true;
                } else {
                    done_at = Some(s.time_ns);
                }
            }
            if !pending {
                return Err(match done_at {
                    Some(t) => Refusal::AlreadyDone {
                        event_id,
                        at_ms: t / 1_000_000,
                    },
                    None => Refusal::Unknown(event_id),
                });
            }
            let frame = reached.saturating_add(1);
            let info = SpliceInfo::new(Command::Insert(SpliceInsert::cancel(event_id)));
            return self.splice(event_id, Kind::Cancel, frame, None, &info);
        }
        let (when, duration_ns) = match req {
            Request::Out {
                when, duration_ns, ..
            }
            | Request::TimeSignal {
                when, duration_ns, ..
            } => (*when, *duration_ns),
            Request::In { when, .. } => (*when, None),
            Request::Cancel { .. } => unreachable!("handled above"),
        };
        let at = match when {
            When::Preroll(p) => now_ns.saturating_add(check_far("\"preroll\"", p)?),
            When::At(t) => t,
        };
        if let Some(d) = duration_ns {
            if d == 0 {
                return Err(Refusal::ZeroDuration);
            }
            check_far("\"duration\"", d)?;
        }
        check_far("\"at\"", at.saturating_sub(now_ns))?;
        let frame = self.rate.frame_index_at_or_after(at);
        if frame <= reached || at < now_ns {
            return Err(Refusal::Past {
                at_ms: at / 1_000_000,
                reached,
                reached_ms: self.rate.frame_time_ns(reached) / 1_000_000,
            });
        }
        let pts = scte35::pts_of(self.rate.frame_ts(frame, scte35::HZ as u32));
        let ticks = duration_ns.map(scte35::ticks_of);
        let derived = (frame & 0x7FFF_FFFF) as u32;
        let (event_id, kind, info) = match req {
            Request::Out { event_id, .. } => {
                let id = event_id.unwrap_or(derived);
                let info = SpliceInfo::new(Command::Insert(SpliceInsert::at(
                    id,
                    true,
                    Some(pts),
                    ticks,
                )));
                (id, Kind::Out, info)
            }
            Request::In { event_id, .. } => {
                let info = SpliceInfo::new(Command::Insert(SpliceInsert::at(
                    *event_id,
                    false,
                    Some(pts),
                    None,
                )));
                (*event_id, Kind::In, info)
            }
            Request::TimeSignal {
                event_id,
                segmentation_type_id,
                upid,
                ..
            } => {
                let id = event_id.unwrap_or(derived);
                let upid = upid.as_deref().unwrap_or("").as_bytes().to_vec();
                if upid.len() > 255 {
                    return Err(Refusal::UpidTooLong(upid.len()));
                }
                let upid_type = if upid.is_empty() { 0x00 } else { UPID_URI };
                let mut info = SpliceInfo::new(Command::TimeSignal { pts: Some(pts) });
                info.descriptors
                    .push(Descriptor::Segmentation(Segmentation::new(
                        id,
                        *segmentation_type_id,
                        ticks,
                        (upid_type, upid),
                    )));
                let kind = Kind::TimeSignal {
                    segmentation_type_id: *segmentation_type_id,
                };
                (id, kind, info)
            }
            Request::Cancel { .. } => unreachable!("handled above"),
        };
        if matches!(kind, Kind::Out | Kind::TimeSignal { .. })
            && self
                .splices
                .iter()
                .any(|s| s.event_id == event_id && s.kind == kind && Self::is_pending(s, reached))
        {
            return Err(Refusal::Duplicate(event_id));
        }
        let mut splice = self.splice(event_id, kind, frame, duration_ns, &info)?;
        splice.duration_ns = duration_ns;
        Ok(splice)
    }

    fn splice(
        &self,
        event_id: u32,
        kind: Kind,
        frame: u64,
        duration_ns: Option<u64>,
        info: &SpliceInfo,
    ) -> Result<Splice, Refusal> {
        Ok(Splice {
            event_id,
            kind,
            frame,
            time_ns: self.rate.frame_time_ns(frame),
            duration_ns,
            section: info
                .to_bytes()
                .map_err(|e| Refusal::Section(e.to_string()))?,
            cancelled: false,
        })
    }
}

/// A splice as the origin's HLS playlists mark it (docs/design/signals.md, *HLS*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The DATERANGE's ID: `splice-<event>-<frame of the out>` or `signal-<event>-<frame>`, the
    /// same on both boxes of a pair; an in shares its out's.
    pub id: String,
    pub start_ns: u64,
    /// The in's time, on the in's mark.
    pub end_ns: Option<u64>,
    pub planned_ns: Option<u64>,
    /// `SCTE35-OUT`, `SCTE35-IN` or `SCTE35-CMD`, and the section.
    pub attribute: &'static str,
    pub section: Vec<u8>,
    /// The legacy cue it gives (`EXT-X-CUE-OUT`/`-IN`), if any.
    pub cue: Option<Cue>,
}

/// A legacy ad cue, placed before the first segment at or after its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// `EXT-X-CUE-OUT[:<seconds>]` at `at_ns`.
    Out {
        at_ns: u64,
        duration_ns: Option<u64>,
    },
    /// `EXT-X-CUE-IN` at `at_ns`.
    In { at_ns: u64 },
}

/// The marks of every splice that happens (a cancelled one and a cancel give none), oldest
/// first. A break that returns by itself (an out with a duration and no in of its own) gets
/// its `EXT-X-CUE-IN` at its end.
pub fn marks<'a>(splices: impl IntoIterator<Item = &'a Splice>) -> Vec<Mark> {
    let live: Vec<&Splice> = splices
        .into_iter()
        .filter(|s| s.kind != Kind::Cancel && !s.cancelled)
        .collect();
    let mut out = Vec::new();
    for (i, s) in live.iter().enumerate() {
        match s.kind {
            Kind::Out => {
                out.push(Mark {
                    id: format!("splice-{}-{}", s.event_id, s.frame),
                    start_ns: s.time_ns,
                    end_ns: None,
                    planned_ns: s.duration_ns,
                    attribute: "SCTE35-OUT",
                    section: s.section.clone(),
                    cue: Some(Cue::Out {
                        at_ns: s.time_ns,
                        duration_ns: s.duration_ns,
                    }),
                });
                let returns_by_itself = !live[i + 1..]
                    .iter()
                    .any(|n| n.event_id == s.event_id && n.kind == Kind::In && n.frame > s.frame);
                if let (Some(d), true) = (s.duration_ns, returns_by_itself) {
                    out.push(Mark {
                        id: String::new(),
                        start_ns: s.time_ns + d,
                        end_ns: None,
                        planned_ns: None,
                        attribute: "",
                        section: Vec::new(),
                        cue: Some(Cue::In {
                            at_ns: s.time_ns + d,
                        }),
                    });
                }
            }
            Kind::In => {
                let opened = live[..i]
                    .iter()
                    .rev()
                    .find(|o| o.event_id == s.event_id && o.kind == Kind::Out && o.frame < s.frame);
                let (id, start) = match opened {
                    Some(o) => (format!("splice-{}-{}", o.event_id, o.frame), o.time_ns),
                    None => (format!("splice-{}-{}", s.event_id, s.frame), s.time_ns),
                };
                out.push(Mark {
                    id,
                    start_ns: start,
                    end_ns: opened.map(|_| s.time_ns),
                    planned_ns: None,
                    attribute: "SCTE35-IN",
                    section: s.section.clone(),
                    cue: Some(Cue::In { at_ns: s.time_ns }),
                });
            }
            Kind::TimeSignal { .. } => out.push(Mark {
                id: format!("signal-{}-{}", s.event_id, s.frame),
                start_ns: s.time_ns,
                end_ns: None,
                planned_ns: s.duration_ns,
                attribute: "SCTE35-CMD",
                section: s.section.clone(),
                cue: None,
            }),
            Kind::Cancel => {}
        }
    }
    out
}

/// The DASH events of every splice that happens (docs/design/signals.md, *DASH*): one per
/// out, in and time_signal, with its own section; the id is the frame's low 32 bits.
pub fn dash_events<'a>(splices: impl IntoIterator<Item = &'a Splice>) -> Vec<crate::dash::Event> {
    splices
        .into_iter()
        .filter(|s| s.kind != Kind::Cancel && !s.cancelled)
        .map(|s| crate::dash::Event {
            id: s.frame as u32,
            at_ns: s.time_ns,
            duration_ns: s.duration_ns,
            section: s.section.clone(),
        })
        .collect()
}

fn check_far(what: &'static str, ns: u64) -> Result<u64, Refusal> {
    if ns > MAX_AHEAD_NS {
        return Err(Refusal::TooFar { what, ns });
    }
    Ok(ns)
}

/// The request an incoming section makes (SCTE-35 passthrough, docs/design/signals.md,
/// *Passthrough*): `at_ns` is the epoch time of its splice time (the input's W of it, on a
/// frame), `None` for an immediate splice, which happens as soon as the encoders can. The
/// section is not forwarded as it came: the schedule writes its own, on the box's epoch
/// grid, with the same event id, break duration and segmentation type. Err says why a
/// section is not carried.
pub fn request_of_section(info: &SpliceInfo, at_ns: Option<u64>) -> Result<Request, String> {
    let when = at_ns.map_or(When::Preroll(0), When::At);
    let ns = |ticks: u64| {
        crate::MediaTime::new(ticks, scte35::TIMESCALE).nanos(crate::Rounding::Nearest)
    };
    match &info.command {
        Command::Insert(i) if i.cancel => Ok(Request::Cancel {
            event_id: i.event_id,
        }),
        Command::Insert(i) if i.pts.is_none() && !i.immediate => {
            Err("a splice_insert in component mode (one time per component)".into())
        }
        Command::Insert(i) if i.out_of_network => Ok(Request::Out {
            event_id: Some(i.event_id),
            duration_ns: i.duration.map(|d| ns(d.ticks)),
            when,
        }),
        Command::Insert(i) => Ok(Request::In {
            event_id: i.event_id,
            when,
        }),
        Command::TimeSignal { .. } => {
            let seg = info
                .descriptors
                .iter()
                .find_map(|d| match d {
                    Descriptor::Segmentation(s) if !s.cancel => Some(s),
                    _ => None,
                })
                .ok_or("a time_signal without a segmentation descriptor")?;
            Ok(Request::TimeSignal {
                event_id: Some(seg.event_id),
                segmentation_type_id: seg.type_id,
                duration_ns: seg.duration.map(ns),
                // The API carries a upid as a URI; another kind is left out.
                upid: (seg.upid_type == UPID_URI)
                    .then(|| String::from_utf8(seg.upid.clone()).ok())
                    .flatten(),
                when,
            })
        }
        Command::Null => Err("a splice_null (a heartbeat)".into()),
        Command::Other { kind, .. } => Err(format!("splice command type {kind:#04x}")),
    }
}

/// The splices whose `emsg` a video fragment spanning `[start_ns, end_ns)` carries
/// (docs/design/signals.md, *CMAF*): every splice and cancel not taken back whose time is in
/// the fragment, or after its start by at most [`EMSG_LEAD_NS`]. A formula of the fragment's
/// times and the schedule only, so both boxes of a pair put the same boxes in the same
/// fragments once both know the splice; a fragment written before its box got the request
/// cannot carry it.
pub fn carried_by_fragment<'a>(
    splices: impl IntoIterator<Item = &'a Splice>,
    start_ns: u64,
    end_ns: u64,
) -> Vec<&'a Splice> {
    splices
        .into_iter()
        .filter(|s| {
            !s.cancelled
                && s.time_ns >= start_ns
                && (s.time_ns < end_ns || s.time_ns - start_ns <= EMSG_LEAD_NS)
        })
        .collect()
}

/// The `emsg` of a splice (scheme `urn:scte:scte35:2013:bin`, SCTE 214-3): the section at the
/// splice's absolute 90 kHz time, the break's duration when it has one, and the DASH event's
/// id (the frame's low 32 bits), so a client that reads both the MPD and the segments sees one
/// event.
pub fn event_message(s: &Splice) -> crate::mp4::EventMessage<'_> {
    crate::mp4::EventMessage {
        scheme_id_uri: crate::mp4::emsg::SCTE35_SCHEME,
        value: "",
        timescale: scte35::TIMESCALE.hz(),
        presentation_time: scte35::ticks_of(s.time_ns),
        event_duration: s
            .duration_ns
            .map_or(crate::mp4::emsg::UNKNOWN_DURATION, |d| {
                u32::try_from(scte35::ticks_of(d)).unwrap_or(crate::mp4::emsg::UNKNOWN_DURATION - 1)
            }),
        id: s.frame as u32,
        message_data: &s.section,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn rate() -> FrameRate {
        FrameRate::new(30_000, 1001).expect("rate")
    }

    /// 2026-12-01T22:30:00Z.
    const NOW: u64 = 1_796_164_200 * S;

    fn reached(now: u64) -> u64 {
        rate().frame_index_nearest(now)
    }

    #[test]
    fn a_break_lands_on_the_first_frame_after_its_preroll() {
        let mut s = Schedule::new(rate());
        let req = Request::Out {
            event_id: Some(7),
            duration_ns: Some(30 * S),
            when: When::default(),
        };
        let sp = s.add(&req, NOW, reached(NOW)).expect("scheduled").clone();
        let k = sp.frame;
        assert!(rate().frame_time_ns(k) >= NOW + 4 * S);
        assert!(rate().frame_time_ns(k - 1) < NOW + 4 * S);
        assert_eq!(sp.time_ns, rate().frame_time_ns(k));
        assert!(s.conditions(k) && !s.conditions(k - 1) && !s.conditions(k + 1));
        let info = SpliceInfo::parse(&sp.section).expect("a valid section");
        assert_eq!(
            info.splice_pts(),
            Some(rate().frame_ts(k, 90_000) % scte35::PTS_WRAP)
        );
        let Command::Insert(i) = info.command else {
            panic!("{info:?}")
        };
        assert!(i.out_of_network && !i.immediate && i.event_id == 7);
        assert_eq!(i.duration.map(|d| d.ticks), Some(30 * 90_000));
    }

    #[test]
    fn two_boxes_given_the_same_request_write_the_same_bytes() {
        // Automation sends the same "at" to both boxes; they get it 300 ms apart, with their
        // encoders at different frames.
        let at = NOW + 10 * S + 123_456_789;
        let req = Request::TimeSignal {
            event_id: None,
            segmentation_type_id: 0x34,
            duration_ns: Some(60 * S),
            upid: Some("urn:twincast:hall-a:52".into()),
            when: When::At(at),
        };
        let mut a = Schedule::new(rate());
        let mut b = Schedule::new(rate());
        let x = a.add(&req, NOW, reached(NOW)).expect("a").clone();
        let y = b
            .add(&req, NOW + 300_000_000, reached(NOW + 300_000_000))
            .expect("b")
            .clone();
        assert_eq!(x, y);
        assert_eq!(x.event_id, (x.frame & 0x7FFF_FFFF) as u32);
    }

    #[test]
    fn requests_for_the_past_or_beyond_limits_are_refused_and_change_nothing() {
        let mut s = Schedule::new(rate());
        let r = reached(NOW);
        let past = Request::In {
            event_id: 1,
            when: When::At(NOW - S),
        };
        assert!(matches!(s.add(&past, NOW, r), Err(Refusal::Past { .. })));
        // "now" itself, with the encoder already on the frame: too late as well.
        let now = Request::Out {
            event_id: None,
            duration_ns: None,
            when: When::Preroll(0),
        };
        assert!(matches!(
            s.add(&now, NOW, rate().frame_index_at_or_after(NOW)),
            Err(Refusal::Past { .. })
        ));
        let zero = Request::Out {
            event_id: None,
            duration_ns: Some(0),
            when: When::default(),
        };
        assert_eq!(s.add(&zero, NOW, r).err(), Some(Refusal::ZeroDuration));
        let far = Request::Out {
            event_id: None,
            duration_ns: None,
            when: When::Preroll(2 * MAX_AHEAD_NS),
        };
        assert!(matches!(s.add(&far, NOW, r), Err(Refusal::TooFar { .. })));
        assert_eq!(
            s.add(&Request::Cancel { event_id: 9 }, NOW, r).err(),
            Some(Refusal::Unknown(9))
        );
        assert_eq!(s.splices().count(), 0, "nothing was scheduled");
    }

    #[test]
    fn a_cancel_takes_a_pending_break_back_and_a_done_one_is_kept() {
        let mut s = Schedule::new(rate());
        let r = reached(NOW);
        let out = Request::Out {
            event_id: Some(7),
            duration_ns: Some(30 * S),
            when: When::default(),
        };
        let k = s.add(&out, NOW, r).expect("out").frame;
        assert_eq!(s.add(&out, NOW, r).err(), Some(Refusal::Duplicate(7)));
        let c = s
            .add(&Request::Cancel { event_id: 7 }, NOW, r)
            .expect("cancel")
            .clone();
        assert_eq!(c.kind, Kind::Cancel);
        let info = SpliceInfo::parse(&c.section).expect("section");
        assert!(matches!(info.command, Command::Insert(ref i) if i.cancel && i.event_id == 7));
        assert!(!s.conditions(k), "a cancelled break forces no IDR");
        // A new break under the same id, then its splice passes: it can't be cancelled.
        let k2 = s.add(&out, NOW, r).expect("again").frame;
        assert_eq!(
            s.add(&Request::Cancel { event_id: 7 }, NOW + 5 * S, k2)
                .err()
                .map(|e| matches!(e, Refusal::AlreadyDone { event_id: 7, .. })),
            Some(true)
        );
    }

    #[test]
    fn a_splice_rides_in_the_fragments_of_its_lead_and_the_one_it_falls_in() {
        let mut s = Schedule::new(rate());
        let out = Request::Out {
            event_id: Some(7),
            duration_ns: Some(30 * S),
            when: When::At(NOW + 10 * S + 433_000_000),
        };
        let splice = s.add(&out, NOW, reached(NOW)).expect("out").clone();
        let t = splice.time_ns;
        // 2 s fragments around the splice time.
        let carried = |s: &Schedule, start: u64, len: u64| {
            carried_by_fragment(s.splices(), start, start + len).len()
        };
        let start = t - (t % (2 * S));
        assert_eq!(
            carried(&s, start, 2 * S),
            1,
            "the fragment the splice falls in"
        );
        assert_eq!(carried(&s, start - 2 * S, 2 * S), 1, "one ahead");
        assert_eq!(
            carried(&s, t - EMSG_LEAD_NS, 2 * S),
            1,
            "exactly the lead ahead"
        );
        assert_eq!(carried(&s, t - EMSG_LEAD_NS - 1, 2 * S), 0, "further ahead");
        assert_eq!(carried(&s, start + 2 * S, 2 * S), 0, "after the splice");
        // A fragment longer than the lead still carries a splice that falls in it.
        assert_eq!(carried(&s, t - 5 * S, 6 * S), 1, "a 6 s fragment");
        // Taken back: no fragment carries the out, the next one carries the cancel.
        let c = s
            .add(&Request::Cancel { event_id: 7 }, NOW + S, reached(NOW + S))
            .expect("cancel")
            .clone();
        let frag = c.time_ns - (c.time_ns % (2 * S));
        let in_it = carried_by_fragment(s.splices(), frag, frag + 2 * S);
        assert_eq!(in_it.len(), 1);
        assert_eq!(in_it[0].kind, Kind::Cancel);
        assert_eq!(carried(&s, start, 2 * S), 0, "the cancelled out");
    }

    #[test]
    fn an_incoming_section_makes_the_request_of_its_command() {
        let at = Some(NOW);
        let insert = |i: SpliceInsert| SpliceInfo::new(Command::Insert(i));
        assert_eq!(
            request_of_section(
                &insert(SpliceInsert::at(7, true, Some(1), Some(2_700_000))),
                at
            ),
            Ok(Request::Out {
                event_id: Some(7),
                duration_ns: Some(30 * S),
                when: When::At(NOW)
            })
        );
        assert_eq!(
            request_of_section(&insert(SpliceInsert::at(7, false, None, None)), None),
            Ok(Request::In {
                event_id: 7,
                when: When::Preroll(0)
            })
        );
        assert_eq!(
            request_of_section(&insert(SpliceInsert::cancel(7)), None),
            Ok(Request::Cancel { event_id: 7 })
        );
        let mut signal = SpliceInfo::new(Command::TimeSignal { pts: Some(1) });
        assert!(request_of_section(&signal, at).is_err(), "no descriptor");
        signal
            .descriptors
            .push(Descriptor::Segmentation(Segmentation::new(
                9,
                0x34,
                Some(900_000),
                (UPID_URI, b"urn:x".to_vec()),
            )));
        assert_eq!(
            request_of_section(&signal, at),
            Ok(Request::TimeSignal {
                event_id: Some(9),
                segmentation_type_id: 0x34,
                duration_ns: Some(10 * S),
                upid: Some("urn:x".into()),
                when: When::At(NOW)
            })
        );
        assert!(request_of_section(&SpliceInfo::new(Command::Null), at).is_err());
        let mut component = SpliceInsert::at(7, true, None, None);
        component.immediate = false;
        component.components = vec![(1, Some(5))];
        assert!(request_of_section(&insert(component), at).is_err());
    }

    #[test]
    fn the_event_message_is_the_section_at_the_absolute_90khz_time() {
        let mut s = Schedule::new(rate());
        let out = Request::Out {
            event_id: Some(7),
            duration_ns: Some(30 * S),
            when: When::default(),
        };
        let splice = s.add(&out, NOW, reached(NOW)).expect("out").clone();
        let e = event_message(&splice);
        assert_eq!(e.scheme_id_uri, "urn:scte:scte35:2013:bin");
        assert_eq!(e.timescale, 90_000);
        assert_eq!(e.presentation_time, scte35::ticks_of(splice.time_ns));
        assert_eq!(e.event_duration, 30 * 90_000);
        assert_eq!(e.id, splice.frame as u32);
        assert_eq!(e.message_data, splice.section.as_slice());
        let open_ended = Request::Out {
            event_id: Some(8),
            duration_ns: None,
            when: When::default(),
        };
        let s2 = s.add(&open_ended, NOW, reached(NOW)).expect("out").clone();
        assert_eq!(
            event_message(&s2).event_duration,
            crate::mp4::emsg::UNKNOWN_DURATION
        );
    }

    #[test]
    fn the_schedule_is_bounded_and_drops_done_splices_first() {
        let mut s = Schedule::new(rate());
        let r = reached(NOW);
        for i in 0..MAX_SPLICES as u32 {
            let req = Request::Out {
                event_id: Some(i),
                duration_ns: None,
                when: When::Preroll(S + u64::from(i) * S),
            };
            s.add(&req, NOW, r).expect("room");
        }
        let one_more = Request::Out {
            event_id: Some(10_000),
            duration_ns: None,
            when: When::Preroll(S),
        };
        assert_eq!(s.add(&one_more, NOW, r).err(), Some(Refusal::Full));
        // 10 s later the first few have passed: room again, the oldest done one goes.
        let later = NOW + 10 * S;
        s.add(&one_more, later, reached(later)).expect("room again");
        assert_eq!(s.splices().count(), MAX_SPLICES);
        assert!(s.splices().all(|x| x.event_id != 0));
    }
}
