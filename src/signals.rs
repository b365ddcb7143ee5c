//! Ad signals (issue #13, docs/design/signals.md): the box's splice schedule, shared by the
//! control API that fills it (`POST /splice`, `GET /splices`), the encoders' key-unit probe
//! that forces an IDR on every splice frame, and the outputs that carry the SCTE-35 sections.
//!
//! The decisions are the media crate's `splice::Schedule`; this file holds it behind a lock,
//! reads the JSON of a request, and keeps the probe's side lock-free on every frame that is
//! not a splice frame (one atomic load).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use twincast_media::scte35::SpliceInfo;
use twincast_media::splice::{self, Refusal, Request, Schedule, Splice, When};
use twincast_media::timeline::FrameRate;

use crate::captions::Captions;
use crate::config::parse_duration;

/// The box's splice schedule and where the encoders are.
#[derive(Debug)]
pub struct Signals {
    rate: FrameRate,
    schedule: Mutex<Schedule>,
    /// The last frame index the key-unit probe saw (0 before the first).
    reached: AtomicU64,
    /// The next frame a splice conditions (`u64::MAX`: none).
    next: AtomicU64,
    /// IDRs forced for splices.
    pub conditioned: AtomicU64,
    /// Requests refused (4xx).
    pub refused: AtomicU64,
    /// SCTE-35 sections of the input that put a splice on the schedule (passthrough).
    pub passed_through: AtomicU64,
    /// SCTE-35 sections of the input that were not carried (a refusal, a command not
    /// carried, a time not placed); repeats of a scheduled one are neither.
    pub not_passed: AtomicU64,
    /// The source's closed captions on their way from the grid clock to the renditions.
    pub captions: Captions,
}

/// What a passed-through section came to.
#[derive(Debug, Clone)]
pub enum Passed {
    /// A new splice on the schedule.
    Scheduled(Splice),
    /// The sender repeated a section whose splice is already on the schedule.
    Repeat,
}

/// The event id a request names (`None`: the schedule derives one).
fn event_of(req: &Request) -> Option<u32> {
    match req {
        Request::Out { event_id, .. } | Request::TimeSignal { event_id, .. } => *event_id,
        Request::In { event_id, .. } | Request::Cancel { event_id } => Some(*event_id),
    }
}

/// Whether `s` is the splice `req` (from a section) asks for: the same event and kind, on the
/// same frame, or still pending for an immediate one. Cancels are judged by the schedule.
fn is_repeat(s: &Splice, req: &Request, frame: Option<u64>, reached: u64) -> bool {
    let kind = match req {
        Request::Out { .. } => splice::Kind::Out,
        Request::In { .. } => splice::Kind::In,
        Request::Cancel { .. } => return false,
        Request::TimeSignal {
            segmentation_type_id,
            ..
        } => splice::Kind::TimeSignal {
            segmentation_type_id: *segmentation_type_id,
        },
    };
    Some(s.event_id) == event_of(req)
        && s.kind == kind
        && frame.map_or(Schedule::is_pending(s, reached), |f| f == s.frame)
}

/// What `GET /splices` lists and the outputs read: a splice and whether it is still ahead.
#[derive(Debug, Clone)]
pub struct Listed {
    pub splice: Splice,
    pub pending: bool,
}

impl Signals {
    pub fn new(rate: FrameRate) -> Signals {
        Signals {
            rate,
            schedule: Mutex::new(Schedule::new(rate)),
            reached: AtomicU64::new(0),
            next: AtomicU64::new(u64::MAX),
            conditioned: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            passed_through: AtomicU64::new(0),
            not_passed: AtomicU64::new(0),
            captions: Captions::new(false, false),
        }
    }

    /// The same, with `captions` for the source's closed captions.
    pub fn with_captions(mut self, captions: Captions) -> Signals {
        self.captions = captions;
        self
    }

    /// The probe saw frame `k` on its way to the encoders: whether it must be an IDR.
    pub fn frame(&self, k: u64) -> bool {
        self.reached.fetch_max(k, Ordering::SeqCst);
        if k < self.next.load(Ordering::SeqCst) {
            return false;
        }
        let schedule = crate::sync::lock(&self.schedule);
        let hit = schedule.conditions(k);
        self.next
            .store(schedule.next_conditioned_after(k), Ordering::SeqCst);
        if hit {
            self.conditioned.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// The frame the encoders reached, or the frame of `now_ns` before they started.
    fn reached(&self, now_ns: u64) -> u64 {
        match self.reached.load(Ordering::SeqCst) {
            0 => self.rate.frame_index_nearest(now_ns),
            k => k,
        }
    }

    /// Schedules `req` (a `POST /splice`), made at epoch time `now_ns`; a refusal is counted.
    pub fn request(&self, req: &Request, now_ns: u64) -> Result<Splice, Refusal> {
        let result = self.schedule(req, now_ns);
        if result.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Schedules `req` without counting a refusal (the caller counts it its way).
    fn schedule(&self, req: &Request, now_ns: u64) -> Result<Splice, Refusal> {
        let mut schedule = crate::sync::lock(&self.schedule);
        let splice = schedule.add(req, now_ns, self.reached(now_ns)).cloned()?;
        if splice.conditions_frame() {
            self.next.fetch_min(splice.frame, Ordering::SeqCst);
            // The probe may have passed the frame between the check and now: take it back
            // rather than promise an IDR that was not forced.
            let reached = self.reached.load(Ordering::SeqCst);
            if reached >= splice.frame {
                schedule.withdraw_last();
                return Err(Refusal::Past {
                    at_ms: splice.time_ns / 1_000_000,
                    reached,
                    reached_ms: self.rate.frame_time_ns(reached) / 1_000_000,
                });
            }
        }
        Ok(splice)
    }

    /// An SCTE-35 section of the input (passthrough, docs/design/signals.md, *Passthrough*),
    /// made at `now_ns`: scheduled as the request it makes, on the frame nearest `at_ns` (the
    /// W of its splice time; `None`: as soon as possible). A section the sender repeats, as
    /// senders do ahead of a splice, finds its splice on the schedule and changes nothing.
    pub fn passthrough(
        &self,
        section: &[u8],
        at_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Passed, String> {
        let result = self.pass(section, at_ns, now_ns);
        match &result {
            Ok(Passed::Scheduled(_)) => self.passed_through.fetch_add(1, Ordering::Relaxed),
            Ok(Passed::Repeat) => 0,
            Err(_) => self.not_passed.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    /// A section not carried, said by the caller (its time could not be placed).
    pub fn not_placed(&self) {
        self.not_passed.fetch_add(1, Ordering::Relaxed);
    }

    fn pass(&self, section: &[u8], at_ns: Option<u64>, now_ns: u64) -> Result<Passed, String> {
        let info = SpliceInfo::parse(section).map_err(|e| e.to_string())?;
        let at = at_ns.map(|w| self.rate.frame_time_ns(self.rate.frame_index_nearest(w)));
        let req = splice::request_of_section(&info, at)?;
        let frame = at.map(|t| self.rate.frame_index_at_or_after(t));
        let reached = self.reached.load(Ordering::SeqCst);
        let (repeat, cancelled_before) = {
            let schedule = crate::sync::lock(&self.schedule);
            let repeat = schedule
                .splices()
                .any(|s| is_repeat(s, &req, frame, reached));
            let cancelled = schedule
                .splices()
                .any(|s| s.kind == splice::Kind::Cancel && Some(s.event_id) == event_of(&req));
            (repeat, cancelled)
        };
        if repeat {
            return Ok(Passed::Repeat);
        }
        match self.schedule(&req, now_ns) {
            Ok(s) => Ok(Passed::Scheduled(s)),
            // A cancel the sender repeats: the break is already taken back.
            Err(Refusal::Unknown(_) | Refusal::AlreadyDone { .. })
                if matches!(req, Request::Cancel { .. }) && cancelled_before =>
            {
                Ok(Passed::Repeat)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The HLS marks of the schedule's splices (`splice::marks`).
    pub fn marks(&self) -> Vec<splice::Mark> {
        splice::marks(crate::sync::lock(&self.schedule).splices())
    }

    /// The DASH events of the schedule's splices (`splice::dash_events`).
    pub fn dash_events(&self) -> Vec<twincast_media::dash::Event> {
        splice::dash_events(crate::sync::lock(&self.schedule).splices())
    }

    /// The splices a video fragment spanning `[start_ns, end_ns)` carries as `emsg`s
    /// (`splice::carried_by_fragment`).
    pub fn carried_by_fragment(&self, start_ns: u64, end_ns: u64) -> Vec<Splice> {
        let schedule = crate::sync::lock(&self.schedule);
        splice::carried_by_fragment(schedule.splices(), start_ns, end_ns)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Every splice on the schedule, oldest first.
    pub fn list(&self) -> Vec<Listed> {
        let reached = self.reached.load(Ordering::SeqCst);
        crate::sync::lock(&self.schedule)
            .splices()
            .map(|s| Listed {
                pending: Schedule::is_pending(s, reached),
                splice: s.clone(),
            })
            .collect()
    }
}

/// The JSON of `POST /splice` (docs/ref/control.md), field by field.
#[derive(Debug, Default)]
struct Body {
    kind: String,
    event_id: Option<u32>,
    duration: Option<String>,
    preroll: Option<String>,
    at: Option<String>,
    segmentation_type_id: Option<u8>,
    upid: Option<String>,
}

/// The fields a request may have.
const FIELDS: &str = "kind, event_id, duration, preroll, at, segmentation_type_id, upid";

impl Body {
    /// Reads the object field by field, so an error names the field and what it takes.
    fn read(body: &[u8]) -> Result<Body, BadRequest> {
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| BadRequest(format!("not JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| BadRequest("the body must be a JSON object".to_string()))?;
        let mut b = Body::default();
        for (key, value) in obj {
            let text = || {
                value
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| BadRequest(format!("\"{key}\" must be a string, not {value}")))
            };
            let number = |max: u64| {
                value.as_u64().filter(|n| *n <= max).ok_or_else(|| {
                    BadRequest(format!(
                        "\"{key}\" must be a whole number from 0 to {max}, not {value}"
                    ))
                })
            };
            match key.as_str() {
                "kind" => b.kind = text()?,
                "event_id" => b.event_id = Some(number(u64::from(u32::MAX))? as u32),
                "duration" => b.duration = Some(text()?),
                "preroll" => b.preroll = Some(text()?),
                "at" => b.at = Some(text()?),
                "segmentation_type_id" => b.segmentation_type_id = Some(number(255)? as u8),
                "upid" => b.upid = Some(text()?),
                other => {
                    return Err(BadRequest(format!(
                        "unknown field \"{other}\" (the fields: {FIELDS})"
                    )));
                }
            }
        }
        if b.kind.is_empty() {
            return Err(BadRequest(
                "\"kind\" is missing: one of \"out\", \"in\", \"cancel\", \"time_signal\""
                    .to_string(),
            ));
        }
        Ok(b)
    }
}

/// A request body that is not a splice request; the text says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// Reads a `POST /splice` body.
pub fn parse_request(body: &[u8]) -> Result<Request, BadRequest> {
    let b = Body::read(body)?;
    let ns = |what: &str, v: &Option<String>| -> Result<Option<u64>, BadRequest> {
        v.as_deref()
            .map(|s| {
                parse_duration(s)
                    .map_err(|e| BadRequest(format!("\"{what}\": {e}")))
                    .and_then(|d| {
                        u64::try_from(d.as_nanos())
                            .map_err(|_| BadRequest(format!("\"{what}\" is too long")))
                    })
            })
            .transpose()
    };
    let duration_ns = ns("duration", &b.duration)?;
    let when = match (&b.at, ns("preroll", &b.preroll)?) {
        (Some(_), Some(_)) => {
            return Err(BadRequest(
                "give \"at\" or \"preroll\", not both".to_string(),
            ));
        }
        (Some(at), None) => {
            When::At(twincast_media::hls::parse_date_time(at).ok_or_else(|| {
                BadRequest(format!(
                    "\"at\": \"{at}\" is not an RFC 3339 UTC time like \"2026-12-01T22:30:00.000Z\""
                ))
            })?)
        }
        (None, Some(p)) => When::Preroll(p),
        (None, None) => When::Preroll(splice::DEFAULT_PREROLL_NS),
    };
    let need_id = |kind: &str| {
        b.event_id.ok_or_else(|| {
            BadRequest(format!(
                "\"kind\": \"{kind}\" needs the \"event_id\" of the break"
            ))
        })
    };
    let refuse = |field: &str, kind: &str| {
        BadRequest(format!(
            "\"{field}\" has no meaning for \"kind\": \"{kind}\""
        ))
    };
    match b.kind.as_str() {
        "out" => {
            if b.segmentation_type_id.is_some() {
                return Err(refuse("segmentation_type_id", "out"));
            }
            if b.upid.is_some() {
                return Err(refuse("upid", "out"));
            }
            Ok(Request::Out {
                event_id: b.event_id,
                duration_ns,
                when,
            })
        }
        "in" => {
            if duration_ns.is_some() {
                return Err(refuse("duration", "in"));
            }
            Ok(Request::In {
                event_id: need_id("in")?,
                when,
            })
        }
        "cancel" => {
            for (set, field) in [
                (duration_ns.is_some(), "duration"),
                (b.at.is_some() || b.preroll.is_some(), "at/preroll"),
            ] {
                if set {
                    return Err(refuse(field, "cancel"));
                }
            }
            Ok(Request::Cancel {
                event_id: need_id("cancel")?,
            })
        }
        "time_signal" => Ok(Request::TimeSignal {
            event_id: b.event_id,
            segmentation_type_id: b.segmentation_type_id.ok_or_else(|| {
                BadRequest(
                    "\"kind\": \"time_signal\" needs a \"segmentation_type_id\" (SCTE 35 table 22, e.g. 52 = provider placement opportunity start)"
                        .to_string(),
                )
            })?,
            duration_ns,
            upid: b.upid,
            when,
        }),
        other => Err(BadRequest(format!(
            "\"kind\": \"{other}\" is not one of \"out\", \"in\", \"cancel\", \"time_signal\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const NOW: u64 = 1_796_164_200 * S;

    fn rate() -> FrameRate {
        FrameRate::new(30, 1).expect("rate")
    }

    #[test]
    fn requests_read_as_the_design_gives_them() {
        assert_eq!(
            parse_request(br#"{"kind": "out", "duration": "30s", "preroll": "4s", "event_id": 7}"#),
            Ok(Request::Out {
                event_id: Some(7),
                duration_ns: Some(30 * S),
                when: When::Preroll(4 * S)
            })
        );
        assert_eq!(
            parse_request(br#"{"kind": "in", "event_id": 7, "at": "2026-12-01T22:30:00.000Z"}"#),
            Ok(Request::In {
                event_id: 7,
                when: When::At(NOW)
            })
        );
        assert_eq!(
            parse_request(br#"{"kind": "cancel", "event_id": 7}"#),
            Ok(Request::Cancel { event_id: 7 })
        );
        assert_eq!(
            parse_request(
                br#"{"kind": "time_signal", "segmentation_type_id": 52, "duration": "60s", "upid": "urn:x"}"#
            ),
            Ok(Request::TimeSignal {
                event_id: None,
                segmentation_type_id: 52,
                duration_ns: Some(60 * S),
                upid: Some("urn:x".into()),
                when: When::Preroll(splice::DEFAULT_PREROLL_NS)
            })
        );
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        for (body, says) in [
            (&b"{"[..], "not JSON"),
            (br#"{"kind": "pause"}"#, "not one of"),
            (
                br#"{"kind": "out", "duration": "30 parsecs"}"#,
                "\"duration\"",
            ),
            (
                br#"{"kind": "out", "colour": "red"}"#,
                "unknown field \"colour\"",
            ),
            (br#"{"kind": "in"}"#, "needs the \"event_id\""),
            (br#"{"event_id": 3}"#, "\"kind\" is missing"),
            (b"[1]", "JSON object"),
            (br#"{"kind": "time_signal"}"#, "segmentation_type_id"),
            (br#"{"kind": "out", "at": "tomorrow"}"#, "RFC 3339"),
            (
                br#"{"kind": "out", "at": "2026-12-01T22:30:00Z", "preroll": "1s"}"#,
                "not both",
            ),
            (
                br#"{"kind": "out", "event_id": -1}"#,
                "\"event_id\" must be a whole number",
            ),
            (
                br#"{"kind": "time_signal", "segmentation_type_id": 300}"#,
                "from 0 to 255",
            ),
            (
                br#"{"kind": "cancel", "event_id": 1, "preroll": "1s"}"#,
                "no meaning",
            ),
        ] {
            let e = parse_request(body).expect_err(&String::from_utf8_lossy(body));
            assert!(e.0.contains(says), "{}: {e}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn the_probe_forces_an_idr_on_the_splice_frame_only() {
        let s = Signals::new(rate());
        let k0 = rate().frame_index_nearest(NOW);
        assert!(!s.frame(k0));
        let req = Request::Out {
            event_id: Some(1),
            duration_ns: None,
            when: When::Preroll(S),
        };
        let sp = s.request(&req, NOW).expect("scheduled");
        assert_eq!(sp.frame, k0 + 30);
        let hits: Vec<u64> = (k0 + 1..k0 + 90).filter(|&k| s.frame(k)).collect();
        assert_eq!(hits, vec![k0 + 30]);
        assert_eq!(s.conditioned.load(Ordering::Relaxed), 1);
        let listed = s.list();
        assert_eq!(listed.len(), 1);
        assert!(!listed[0].pending, "done once the probe passed it");
    }

    #[test]
    fn a_splice_the_encoders_already_passed_is_refused() {
        let s = Signals::new(rate());
        let k0 = rate().frame_index_nearest(NOW);
        // The encoders run 2 s ahead of this request's clock (a box whose feed is early).
        s.frame(k0 + 60);
        let req = Request::Out {
            event_id: Some(1),
            duration_ns: None,
            when: When::Preroll(S),
        };
        assert!(matches!(s.request(&req, NOW), Err(Refusal::Past { .. })));
        assert_eq!(s.refused.load(Ordering::Relaxed), 1);
        assert!(s.list().is_empty());
    }

    #[test]
    fn a_passed_through_section_is_scheduled_once_however_often_it_is_repeated() {
        use twincast_media::scte35::{Command, SpliceInsert};
        let s = Signals::new(rate());
        let k0 = rate().frame_index_nearest(NOW);
        s.frame(k0);
        // W of the splice, 4 s ahead and 4 ms off its frame (a feed's PTS phase).
        let w = NOW + 4 * S + 4_000_000;
        let out = SpliceInfo::new(Command::Insert(SpliceInsert::at(
            7,
            true,
            Some(1234),
            Some(2_700_000),
        )))
        .to_bytes()
        .expect("section");
        let first = s.passthrough(&out, Some(w), NOW).expect("scheduled");
        let Passed::Scheduled(sp) = first else {
            panic!("{first:?}");
        };
        assert_eq!(sp.frame, rate().frame_index_nearest(w), "the nearest frame");
        assert_eq!(sp.event_id, 7);
        assert_eq!(sp.duration_ns, Some(30 * S));
        for _ in 0..3 {
            assert!(matches!(
                s.passthrough(&out, Some(w), NOW + S),
                Ok(Passed::Repeat)
            ));
        }
        // A cancel, then its repeats.
        let cancel = SpliceInfo::new(Command::Insert(SpliceInsert::cancel(7)))
            .to_bytes()
            .expect("section");
        assert!(matches!(
            s.passthrough(&cancel, None, NOW + S),
            Ok(Passed::Scheduled(_))
        ));
        assert!(matches!(
            s.passthrough(&cancel, None, NOW + S),
            Ok(Passed::Repeat)
        ));
        assert_eq!(s.list().len(), 2, "the out and its cancel");
        // What is not carried says why.
        let null = SpliceInfo::new(Command::Null).to_bytes().expect("section");
        assert!(s.passthrough(&null, None, NOW).is_err());
        assert!(s.passthrough(&[0xFC, 0x30], None, NOW).is_err());
        assert_eq!(
            s.passed_through.load(Ordering::Relaxed),
            2,
            "the out and the cancel"
        );
        assert_eq!(s.not_passed.load(Ordering::Relaxed), 2);
        assert_eq!(
            s.refused.load(Ordering::Relaxed),
            0,
            "no POST /splice was refused"
        );
    }
}
