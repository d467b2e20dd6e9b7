//! Incident events and recording jobs as the live analysis hands them over, for tests of the
//! recording and delivery stages.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use dumpwatch::analyze::{ActorSighting, Event, EventKind, EventObject, FrameRole};
use dumpwatch::config::CameraConfig;
use dumpwatch::decode::{DecodedFrame, KeptPicture};
use dumpwatch::geometry::{BBox, Polygon};
use dumpwatch::incident::{FrameSize, ModelRef};
use dumpwatch::recording::IncidentRecorder;
use dumpwatch::store::writer::StoreHandle;
use uuid::Uuid;

/// The recorder the service would make for `store` with evidence under `dir`.
pub fn recorder(store: &StoreHandle, dir: &Path) -> IncidentRecorder {
    IncidentRecorder::new(
        store.clone(),
        dir.to_path_buf(),
        ModelRef {
            name: "yolov12n".into(),
            sha256: "e548ab3a406227202334bf5a6623c9814ac6286ff04e68aeb4dc2357732d1a4f".into(),
        },
        &Default::default(),
        prometheus::IntCounter::new("evidence_errors", "test").unwrap(),
    )
}

/// A 64×48 picture of one grey `level`, as an event picture (with its pixels).
pub fn picture(level: u8) -> KeptPicture {
    let (w, h) = (64u32, 48u32);
    let y = vec![level; (w * h) as usize];
    let c = vec![128u8; (w * h / 4) as usize];
    KeptPicture::pixels_of(&Arc::new(
        DecodedFrame::from_planes(
            0,
            SystemTime::now(),
            Instant::now(),
            0.0,
            true,
            (w, h),
            (&y, &c, &c),
            (w as usize, (w / 2) as usize, (w / 2) as usize),
        )
        .unwrap(),
    ))
}

/// Incident `n` (the analyzer's number) raised at `at`: a bag left 31 s before, its owner seen.
pub fn raised(n: u64, at: f64) -> Event {
    let bbox = BBox {
        x1: 10.0,
        y1: 10.0,
        x2: 30.0,
        y2: 25.0,
    };
    Event {
        kind: EventKind::Raised,
        incident: n,
        zone_index: 0,
        zone: "roadside".into(),
        at,
        appeared_at: at - 31.0,
        dwell_s: 30.0,
        confidence: 0.8,
        objects: vec![EventObject {
            class: "object".into(),
            score: 0.8,
            bbox,
        }],
        actor: Some(ActorSighting {
            class: "person".into(),
            bbox,
            last_seen: at - 30.0,
        }),
        frames: vec![],
    }
}

/// An event of incident `n` (the analyzer's number) of kind `kind`, at `at`.
pub fn event_of(n: u64, kind: EventKind, at: f64) -> Event {
    Event {
        kind,
        ..raised(n, at)
    }
}

/// A recording job for `event` of incident `id` with three pictures.
pub fn job(rec: &Arc<IncidentRecorder>, id: Uuid, event: Event) -> dumpwatch::recording::EventJob {
    dumpwatch::recording::EventJob {
        recorder: rec.clone(),
        camera: CameraConfig::new("cam-01", "rtsp://127.0.0.1/x"),
        zone: Polygon::full_frame(),
        id,
        event,
        pictures: vec![
            (FrameRole::Before, picture(90)),
            (FrameRole::Actor, picture(120)),
            (FrameRole::Event, picture(150)),
        ],
        main: None,
        frame: FrameSize {
            width: 64,
            height: 48,
        },
        spot: None,
    }
}
