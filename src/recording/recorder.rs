//! What an incident event becomes: evidence pictures written under
//! `storage_dir/evidence/<camera>/<incident>/` and the event with its body, ready for the store.

use std::path::PathBuf;

use image::RgbImage;
use tracing::error;
use uuid::Uuid;

use crate::analyze::{Event, FrameRole};
use crate::config::CameraConfig;
use crate::decode::DecodedFrame;
use crate::evidence::EventPicture;
use crate::geometry::Polygon;
use crate::incident::{BodyContext, Categories, FrameSize, ModelRef, SnapshotRef};
use crate::store::writer::StoreHandle;
use crate::store::{EvidenceFile, NewEvent, StoreError};

/// Where incident events go: the store, with evidence files in the storage directory.
#[derive(Clone)]
pub struct IncidentRecorder {
    /// The store.
    pub store: StoreHandle,
    /// The storage directory (evidence paths are relative to it).
    pub storage_dir: PathBuf,
    /// Category codes.
    pub categories: Categories,
    /// The detector model, named in every body.
    pub model: ModelRef,
    /// The city's offset from UTC, minutes.
    pub utc_offset_min: i32,
    /// Counts evidence files that could not be written (`dumpwatch_evidence_errors_total`).
    pub evidence_errors: prometheus::IntCounter,
}

/// The pictures of an incident event: those the analyzer chose (before, actor, event, after),
/// and for a camera analysed on its sub-stream the main stream's picture that replaces the event
/// picture.
#[derive(Clone, Copy)]
pub struct EventPictures<'a> {
    /// The analysed pictures with their roles.
    pub analysed: &'a [EventPicture],
    /// The main stream's picture at the event picture's time, when there is one.
    pub main: Option<&'a DecodedFrame>,
}

impl<'a> EventPictures<'a> {
    /// Just the analysed pictures (a camera analysed on its main stream).
    pub fn analysed(pictures: &'a [EventPicture]) -> Self {
        EventPictures {
            analysed: pictures,
            main: None,
        }
    }
}

impl IncidentRecorder {
    /// A recorder into `store` (evidence under `storage_dir`) naming `model` in every body, with
    /// the category codes and UTC offset of `delivery`.
    pub fn new(
        store: StoreHandle,
        storage_dir: PathBuf,
        model: ModelRef,
        delivery: &crate::config::DeliveryConfig,
        evidence_errors: prometheus::IntCounter,
    ) -> IncidentRecorder {
        IncidentRecorder {
            store,
            storage_dir,
            categories: (&delivery.categories).into(),
            model,
            // Validation accepted it; +08:00 (the city's zone) if it ever did not parse.
            utc_offset_min: delivery.utc_offset_min(),
            evidence_errors,
        }
    }

    /// The same recorder with the category codes and UTC offset of `delivery` (after a reload).
    pub fn with_delivery(&self, delivery: &crate::config::DeliveryConfig) -> IncidentRecorder {
        IncidentRecorder::new(
            self.store.clone(),
            self.storage_dir.clone(),
            self.model.clone(),
            delivery,
            self.evidence_errors.clone(),
        )
    }

    /// Writes the event's pictures and records the event with them in the store, once
    /// (blocking). Evidence that cannot be written is logged and counted; the event is recorded
    /// without it. The service records through [`super::Recording`], which retries.
    pub fn record_event(
        &self,
        camera: &CameraConfig,
        zone: &Polygon,
        id: Uuid,
        event: &Event,
        pictures: EventPictures<'_>,
        frame: FrameSize,
    ) -> Result<i64, StoreError> {
        let new = self.prepare(camera, zone, id, event, pictures, frame);
        self.store.record_blocking(new, crate::clock::unix_now())
    }

    /// Writes the event's pictures and returns the event to record, with its body and evidence.
    pub fn prepare(
        &self,
        camera: &CameraConfig,
        zone: &Polygon,
        id: Uuid,
        event: &Event,
        pictures: EventPictures<'_>,
        frame: FrameSize,
    ) -> NewEvent {
        let evidence = self.write_evidence(camera, id, event, zone, pictures);
        self.new_event(camera, id, event, frame, evidence)
    }

    /// Writes the event's pictures (the event picture twice: annotated and clean; from
    /// `main_picture` when given, the camera's main stream). A picture that cannot be written is
    /// logged and counted, and left out.
    fn write_evidence(
        &self,
        camera: &CameraConfig,
        id: Uuid,
        event: &Event,
        zone: &Polygon,
        EventPictures {
            analysed: pictures,
            main: main_picture,
        }: EventPictures<'_>,
    ) -> Vec<EvidenceFile> {
        let rel_dir = PathBuf::from("evidence")
            .join(&camera.id)
            .join(id.to_string());
        let dir = self.storage_dir.join(&rel_dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            error!(camera = %camera.id, incident = %id, dir = %dir.display(), error = %e,
                   "cannot create the evidence directory; the incident goes on without pictures");
            self.evidence_errors.inc_by(pictures.len() as u64);
            return vec![];
        }
        let stamp = (event.at * 1000.0).round() as i64;
        let mut files = Vec::new();
        for (role, picture) in pictures {
            let mut variants = vec![(crate::incident::role_name(*role), *role == FrameRole::Event)];
            if *role == FrameRole::Event {
                // The clean event picture, for the case officer to compare without our drawing.
                variants.push(("event_clean", false));
            }
            // The boxes were found in the analysed picture; the event picture may come from the
            // main stream at its own resolution.
            let boxes_in = (picture.width(), picture.height());
            let pixels;
            let shown: &DecodedFrame = match main_picture {
                Some(main) if *role == FrameRole::Event => main,
                _ => match picture.pixels() {
                    Ok(p) => {
                        pixels = p;
                        &pixels
                    }
                    Err(e) => {
                        // An idle camera's picture is kept as its keyframe; it decoded once.
                        error!(camera = %camera.id, incident = %id, role = crate::incident::role_name(*role), error = %e,
                               "cannot decode a kept evidence picture; the incident goes on without it");
                        self.evidence_errors.inc();
                        continue;
                    }
                },
            };
            let mut pictures: Vec<(&str, RgbImage)> = variants
                .into_iter()
                .map(|(name, annotate)| {
                    (
                        name,
                        crate::evidence::picture(shown, event, zone, annotate, boxes_in),
                    )
                })
                .collect();
            // Zoomed crops for the operator (not sent to the city: see `sent_to_city`): the
            // objects in the clean event picture, the actor in theirs.
            let crop_of = match role {
                FrameRole::Event => objects_box(event).map(|b| ("object_crop", b)),
                FrameRole::Actor => event.actor.as_ref().map(|a| ("actor_crop", a.bbox)),
                _ => None,
            };
            if let Some((name, bbox)) = crop_of
                && let Some(clean) = pictures.last().map(|(_, img)| img)
                && let Some(img) = crate::evidence::crop(clean, &bbox, boxes_in)
            {
                pictures.push((name, img));
            }
            for (name, img) in pictures {
                let file = format!("{}-{stamp}-{name}.jpg", event.kind.as_str());
                let path = dir.join(&file);
                match crate::evidence::write_jpeg(&img, &path) {
                    Ok(bytes) => files.push(EvidenceFile {
                        role: name.to_owned(),
                        path: rel_dir.join(&file).to_string_lossy().into_owned(),
                        content_type: "image/jpeg".into(),
                        sha256: crate::hashing::sha256_hex(&bytes),
                        bytes: bytes.len() as u64,
                    }),
                    Err(e) => {
                        error!(camera = %camera.id, incident = %id, path = %path.display(), error = %e,
                               "cannot write an evidence picture; the incident goes on without it");
                        self.evidence_errors.inc();
                    }
                }
            }
        }
        files
    }

    fn new_event(
        &self,
        camera: &CameraConfig,
        id: Uuid,
        event: &Event,
        frame: FrameSize,
        evidence: Vec<EvidenceFile>,
    ) -> NewEvent {
        let ctx = BodyContext {
            camera,
            categories: &self.categories,
            model: self.model.clone(),
            utc_offset_min: self.utc_offset_min,
            frame,
        };
        let mut body = crate::incident::body(id, event, &ctx);
        body.snapshots = evidence
            .iter()
            .filter(|f| crate::incident::sent_to_city(&f.role))
            .map(|f| SnapshotRef {
                role: f.role.clone(),
                content_type: f.content_type.clone(),
                sha256: f.sha256.clone(),
                data_base64: None,
                url: None,
            })
            .collect();
        NewEvent {
            body,
            kind: event.kind,
            at: event.at,
            appeared_at: event.appeared_at,
            evidence,
            spot: None,
        }
    }
}

/// The box around all of the event's objects (a pile is cropped whole); none without objects.
fn objects_box(event: &Event) -> Option<crate::geometry::BBox> {
    event
        .objects
        .iter()
        .map(|o| o.bbox)
        .reduce(|a, b| a.union(&b))
}
