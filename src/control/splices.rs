//! `POST /splice` and `GET /splices` (docs/ref/control.md, *Ad signals: `POST /splice` and `GET /splices`*): the control API of
//! the splice schedule in `crate::signals`.
//!
//! - `POST /splice` needs the control token like `POST /reload`. 202 with the scheduled splice;
//!   a body that is not a splice request is 400, a request the schedule refuses is 409 (the
//!   time is past, the event is pending or done), 404 (no such event to cancel), 422 (a value
//!   out of range) or 429 (the schedule is full). Every refusal has `{"error": "…"}` and changes
//!   nothing.
//! - `GET /splices`: every splice kept, oldest first, with its SCTE-35 section.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;
use twincast_media::scte35;
use twincast_media::splice::{Refusal, Splice};

use super::{Ops, json_answer, refuse_without_token};
use crate::signals::{Listed, parse_request};

/// A splice as the API shows it.
fn shown(s: &Splice, pending: bool) -> serde_json::Value {
    json!({
        "event_id": s.event_id,
        "kind": s.kind.name(),
        "segmentation_type_id": match s.kind {
            twincast_media::splice::Kind::TimeSignal { segmentation_type_id } => Some(segmentation_type_id),
            _ => None,
        },
        "frame": s.frame,
        "splice_time_ms": s.time_ns / 1_000_000,
        "splice_time": twincast_media::hls::program_date_time(s.time_ns),
        "duration_ms": s.duration_ns.map(|d| d / 1_000_000),
        "pending": pending,
        "cancelled": s.cancelled,
        "scte35_base64": scte35::base64(&s.section),
        "scte35_hex": scte35::hex(&s.section),
    })
}

fn status_of(r: &Refusal) -> StatusCode {
    match r {
        Refusal::Past { .. } | Refusal::Duplicate(_) | Refusal::AlreadyDone { .. } => {
            StatusCode::CONFLICT
        }
        Refusal::Unknown(_) => StatusCode::NOT_FOUND,
        Refusal::Full => StatusCode::TOO_MANY_REQUESTS,
        Refusal::TooFar { .. } | Refusal::ZeroDuration | Refusal::UpidTooLong(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Refusal::Section(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub async fn post(State(ops): State<Arc<Ops>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = refuse_without_token(&ops, &headers, "POST /splice") {
        return refused;
    }
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(e) => {
            ops.signals
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return json_answer(StatusCode::BAD_REQUEST, &json!({ "error": e.0 }));
        }
    };
    match ops
        .signals
        .request(&req, crate::capture::clock_step::now_ns())
    {
        Ok(s) => {
            log::info!(
                event_id = s.event_id, kind = s.kind.name(), frame = s.frame;
                "splice: {} event {} on frame {} ({}){}; SCTE-35 {}",
                s.kind.name(),
                s.event_id,
                s.frame,
                twincast_media::hls::program_date_time(s.time_ns),
                s.duration_ns.map_or(String::new(), |d| format!(", {} ms", d / 1_000_000)),
                scte35::base64(&s.section)
            );
            json_answer(StatusCode::ACCEPTED, &shown(&s, true))
        }
        Err(r) => json_answer(status_of(&r), &json!({ "error": r.to_string() })),
    }
}

pub async fn list(State(ops): State<Arc<Ops>>) -> Response {
    let splices: Vec<serde_json::Value> = ops
        .signals
        .list()
        .iter()
        .map(|Listed { splice, pending }| shown(splice, *pending))
        .collect();
    json_answer(StatusCode::OK, &json!({ "splices": splices }))
}
