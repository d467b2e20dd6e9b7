//! The incident contract: the JSON body dumpwatch POSTs to the city's case system for every
//! incident event (`raised`, `updated`, `cleared`). `config/schema/incident.schema.json` is its
//! JSON Schema; a test checks every body sent against it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::analyze::{Event, EventKind, FrameRole};
use crate::config::CameraConfig;
use crate::geometry::BBox;

/// One incident event as the city system receives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentBody {
    /// The incident, stable across retries and across its events (UUIDv7).
    pub incident_id: Uuid,
    /// `raised`, `updated` (the pile grew) or `cleared` (the spot was cleaned).
    pub event: String,
    /// The city's category code for this event (see `[delivery.categories]`).
    pub category_code: String,
    /// The camera.
    pub camera: CameraRef,
    /// The watched zone's name.
    pub zone: String,
    /// When the event was decided (RFC 3339 with offset).
    pub detected_at: String,
    /// When the object was put down, as far as the analyzer can tell (RFC 3339 with offset).
    pub appeared_at: String,
    /// How long the objects were left unattended when the event was decided, seconds.
    pub dwell_s: f64,
    /// Confidence that this is dumped waste, 0..1.
    pub confidence: f32,
    /// The objects of the pile.
    pub objects: Vec<ObjectRef>,
    /// Who was seen leaving it, if anybody.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actor: Option<ActorRef>,
    /// Size of the camera picture the boxes refer to, pixels.
    pub frame: FrameSize,
    /// Evidence pictures: inline (`data_base64`) or as URLs served by dumpwatch.
    pub snapshots: Vec<SnapshotRef>,
    /// The detector that saw it.
    pub model: ModelRef,
}

/// The camera of an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraRef {
    /// dumpwatch's camera id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// GB/T 28181 device id, when configured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gb28181_id: Option<String>,
    /// Where the camera is, when configured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub location: Option<LocationRef>,
}

/// A camera's position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocationRef {
    /// Latitude, degrees WGS-84.
    pub lat: f64,
    /// Longitude, degrees WGS-84.
    pub lon: f64,
    /// Street address.
    pub address: String,
}

/// One object of a pile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Detector class, or `object` for something the detector has no class for.
    pub class: String,
    /// Confidence 0..1.
    pub score: f32,
    /// `[x1, y1, x2, y2]` in pixels of `frame`.
    pub bbox: [f32; 4],
}

/// The actor seen with the object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorRef {
    /// `person`, `truck`, ...
    pub class: String,
    /// `[x1, y1, x2, y2]` in pixels of `frame`, when last seen near the object.
    pub bbox: [f32; 4],
    /// When last seen near the object (RFC 3339 with offset).
    pub last_seen: String,
}

/// Picture size in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameSize {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// One evidence file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// `event` (annotated), `event_clean`, `before`, `actor`, `after` or `clip`.
    pub role: String,
    /// `image/jpeg` or `video/mp4`.
    pub content_type: String,
    /// sha256 of the file, hex.
    pub sha256: String,
    /// The file, base64 (snapshots = "inline").
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_base64: Option<String>,
    /// Where to fetch the file (snapshots = "url").
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
}

/// The detector model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Model name.
    pub name: String,
    /// sha256 of the model file, hex.
    pub sha256: String,
}

/// The roles of evidence pictures, as the contract names them.
pub fn role_name(role: FrameRole) -> &'static str {
    match role {
        FrameRole::Before => "before",
        FrameRole::Event => "event",
        FrameRole::Actor => "actor",
        FrameRole::After => "after",
    }
}

/// Whether evidence of `role` goes to the city system with the incident: the crops made for the
/// operations center (`object_crop`, `actor_crop`) do not (the contract's snapshots are the
/// pictures: event, event_clean, before, actor, after, and the clip).
pub fn sent_to_city(role: &str) -> bool {
    !role.ends_with("_crop")
}

/// The city's category code for each kind of event.
#[derive(Clone, Debug, PartialEq)]
pub struct Categories {
    /// For `raised`.
    pub dumping: String,
    /// For `updated` (the pile grew: accumulation).
    pub accumulation: String,
    /// For `cleared` (verification that the spot was cleaned).
    pub cleared: String,
}

impl From<&crate::config::CategoryConfig> for Categories {
    fn from(c: &crate::config::CategoryConfig) -> Categories {
        Categories {
            dumping: c.dumping.clone(),
            accumulation: c.accumulation.clone(),
            cleared: c.cleared.clone(),
        }
    }
}

impl Categories {
    /// The code for `kind`.
    pub fn code(&self, kind: EventKind) -> &str {
        match kind {
            EventKind::Raised => &self.dumping,
            EventKind::Updated => &self.accumulation,
            EventKind::Cleared => &self.cleared,
        }
    }
}

/// Everything besides the analyzer's event that goes into a body.
pub struct BodyContext<'a> {
    /// The camera.
    pub camera: &'a CameraConfig,
    /// Category codes.
    pub categories: &'a Categories,
    /// The detector model.
    pub model: ModelRef,
    /// Offset of the city's local time from UTC, minutes (`+08:00` = 480).
    pub utc_offset_min: i32,
    /// Picture size.
    pub frame: FrameSize,
}

/// The body of `event` of incident `id` (snapshots are added by the caller).
pub fn body(id: Uuid, event: &Event, ctx: &BodyContext<'_>) -> IncidentBody {
    let camera = ctx.camera;
    let bbox = |b: &BBox| [b.x1, b.y1, b.x2, b.y2];
    IncidentBody {
        incident_id: id,
        event: event.kind.as_str().to_owned(),
        category_code: ctx.categories.code(event.kind).to_owned(),
        camera: CameraRef {
            id: camera.id.clone(),
            name: camera.display_name().to_owned(),
            gb28181_id: camera.gb28181_id.clone(),
            location: camera.location.as_ref().map(|l| LocationRef {
                lat: l.lat,
                lon: l.lon,
                address: l.address.clone(),
            }),
        },
        zone: event.zone.clone(),
        detected_at: rfc3339(event.at, ctx.utc_offset_min),
        appeared_at: rfc3339(event.appeared_at, ctx.utc_offset_min),
        dwell_s: (event.dwell_s * 10.0).round() / 10.0,
        confidence: event.confidence,
        objects: event
            .objects
            .iter()
            .map(|o| ObjectRef {
                class: o.class.clone(),
                score: o.score,
                bbox: bbox(&o.bbox),
            })
            .collect(),
        actor: event.actor.as_ref().map(|a| ActorRef {
            class: a.class.clone(),
            bbox: bbox(&a.bbox),
            last_seen: rfc3339(a.last_seen, ctx.utc_offset_min),
        }),
        frame: ctx.frame,
        snapshots: vec![],
        model: ctx.model.clone(),
    }
}

/// Formats unix seconds as RFC 3339 with milliseconds and the given offset from UTC
/// (`2026-11-23T18:05:09.250+08:00`; `Z` is never used, so the offset is always explicit).
pub fn rfc3339(unix_s: f64, offset_min: i32) -> String {
    let ms = (unix_s * 1000.0).round() as i64 + i64::from(offset_min) * 60_000;
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    let sign = if offset_min < 0 { '-' } else { '+' };
    let off = offset_min.unsigned_abs();
    format!(
        "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}{sign}{:02}:{:02}",
        off / 60,
        off % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_with_an_explicit_offset() {
        assert_eq!(rfc3339(0.0, 0), "1970-01-01T00:00:00.000+00:00");
        // 2026-11-23T10:05:09.25Z in Beijing time.
        assert_eq!(
            rfc3339(1_795_428_309.25, 480),
            "2026-11-23T18:05:09.250+08:00"
        );
        assert_eq!(rfc3339(951_782_400.0, -90), "2000-02-28T22:30:00.000-01:30");
    }
}
