//! Live analysis: the detect sink of the service. For each analysed picture it runs the camera's
//! analyzer, tells the camera's sampler whether to stay active, and turns incident events into
//! stored incidents: evidence pictures written under `storage_dir/evidence/<camera>/<incident>/`,
//! then the event and its outbox row recorded in the store (which wakes delivery).
//!
//! A raised incident also gets a clip of the video around it ([`crate::clip`]), written once
//! the post-event seconds have been received.
//!
//! Recording blocks the detector worker while the store is busy: an incident is never dropped
//! to keep up (incidents are rare; pictures are not).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::{error, info, warn};
use uuid::Uuid;

use crate::analyze::sampling::SharedSampler;
use crate::analyze::{Analyzer, AnalyzerConfig, Event, EventKind, FrameRole, Reconfigured};
use crate::api::LatestPictures;
use crate::clip::{ClipRecorder, ClipRequest};
use crate::config::CameraConfig;
use crate::decode::{DecodedFrame, ReuseSink, unix_seconds};
use crate::detect::Detected;
use crate::detect::worker::{DetectionSink, FrameDetections};
use crate::evidence::{EventPicture, EvidenceFrames};
use crate::geometry::Polygon;
use crate::incident::{BodyContext, Categories, FrameSize, ModelRef, SnapshotRef};
use crate::ingest::StatusBoard;
use crate::metrics::{CameraMetrics, Metrics};
use crate::slots::SlotTable;
use crate::store::writer::StoreHandle;
use crate::store::{EvidenceFile, NewEvent};

/// One camera's live analysis state.
pub struct CameraWatch {
    /// The camera's sampler (shared with ingest and decode).
    pub sampler: Arc<SharedSampler>,
    state: Mutex<CameraState>,
    metrics: CameraMetrics,
}

struct CameraState {
    camera: CameraConfig,
    zones: Vec<Polygon>,
    analyzer: Analyzer,
    frames: EvidenceFrames,
    /// The store's id of each open incident, by the analyzer's number.
    incidents: HashMap<u64, Uuid>,
    /// The detections of the last analysed picture (for a picture that did not change).
    last_detected: Option<Detected>,
    /// Capture time of the last analysed picture (the analyzer's clock never goes back).
    last_at: f64,
}

impl CameraWatch {
    /// A camera's analysis with its resolved configuration, using the slot's `sampler` (which
    /// starts over, idle, with the camera's sampling settings).
    pub fn new(
        camera: CameraConfig,
        cfg: AnalyzerConfig,
        metrics: CameraMetrics,
        sampler: Arc<SharedSampler>,
    ) -> Self {
        sampler.reconfigure(cfg.sampling.clone(), true);
        CameraWatch {
            sampler,
            state: Mutex::new(CameraState {
                camera,
                zones: cfg.zones.iter().map(|z| z.polygon.clone()).collect(),
                analyzer: Analyzer::new(cfg),
                frames: EvidenceFrames::default(),
                incidents: HashMap::new(),
                last_detected: None,
                last_at: f64::NEG_INFINITY,
            }),
            metrics,
        }
    }

    /// Applies a reloaded configuration of the same camera without stopping its stream.
    /// Thresholds change in place and what the analyzer follows is kept; new zones or masks
    /// start the analyzer over (what it followed is forgotten, logged with the count of open
    /// incidents, which stay open in the store until reviewed).
    pub fn reconfigure(&self, camera: CameraConfig, cfg: AnalyzerConfig) -> Reconfigured {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.sampler.reconfigure(cfg.sampling.clone(), false);
        state.zones = cfg.zones.iter().map(|z| z.polygon.clone()).collect();
        state.camera = camera;
        let outcome = state.analyzer.reconfigure(cfg);
        if let Reconfigured::Restarted { open_incidents } = outcome {
            state.incidents.clear();
            state.frames = EvidenceFrames::default();
            if open_incidents > 0 {
                warn!(camera = %state.camera.id, open_incidents,
                      "zones or masks changed: the analyzer starts over; its open incidents stay open in the store");
            }
        }
        outcome
    }
}

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

/// The service's detect sink.
pub struct Watch {
    cameras: SlotTable<Arc<CameraWatch>>,
    samplers: Arc<[Arc<SharedSampler>]>,
    pictures: Arc<LatestPictures>,
    status: Arc<StatusBoard>,
    metrics: Metrics,
    recorder: std::sync::RwLock<Arc<IncidentRecorder>>,
    clips: Option<Arc<ClipRecorder>>,
}

impl Watch {
    /// The sink for `slots` camera slots, all vacant; each analysed picture is counted in
    /// `status` (the analysis gap).
    pub fn new(
        slots: usize,
        pictures: Arc<LatestPictures>,
        status: Arc<StatusBoard>,
        metrics: Metrics,
        recorder: IncidentRecorder,
        clips: Option<Arc<ClipRecorder>>,
    ) -> Self {
        Watch {
            cameras: SlotTable::new(slots),
            samplers: (0..slots)
                .map(|_| Arc::new(SharedSampler::new(Default::default())))
                .collect(),
            pictures,
            status,
            metrics,
            recorder: std::sync::RwLock::new(Arc::new(recorder)),
            clips,
        }
    }

    /// The samplers, by camera slot (for ingest and decode).
    pub fn samplers(&self) -> Arc<[Arc<SharedSampler>]> {
        self.samplers.clone()
    }

    /// Starts analysing a camera in `slot`.
    pub fn install(
        &self,
        slot: usize,
        camera: CameraConfig,
        cfg: AnalyzerConfig,
        metrics: CameraMetrics,
    ) {
        let watch = CameraWatch::new(camera, cfg, metrics, self.samplers[slot].clone());
        self.cameras.set(slot, Some(Arc::new(watch)));
    }

    /// Stops analysing the camera in `slot`.
    pub fn remove(&self, slot: usize) {
        self.cameras.set(slot, None);
    }

    /// The camera analysis in `slot`.
    pub fn camera(&self, slot: usize) -> Option<Arc<CameraWatch>> {
        self.cameras.get(slot)
    }

    /// Replaces the recorder (new category codes or UTC offset from a reload).
    pub fn set_recorder(&self, recorder: IncidentRecorder) {
        *self.recorder.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(recorder);
    }

    /// The recorder in force.
    pub fn recorder(&self) -> Arc<IncidentRecorder> {
        self.recorder
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the analysis gap of camera `slot` (metrics and status).
    fn count_analysed(&self, slot: usize, cam: &CameraWatch, at: std::time::SystemTime) {
        let busy = cam.sampler.busy();
        let gap = self
            .status
            .update(slot, |s| s.count_analysed(at, busy))
            .flatten();
        if let Some(gap) = gap {
            cam.metrics.analysis_gap.set(gap);
            if cam.sampler.wants_all_frames() {
                cam.sampler.granted(gap);
            }
            if busy {
                cam.metrics.analysis_gap_busy.observe(gap);
            } else {
                cam.metrics.analysis_gap_idle.observe(gap);
            }
        }
    }

    /// For a camera with `analysis_url`, its main stream's picture at the time of the event
    /// picture, decoded from the clip ring; `None` otherwise or when the main stream has no
    /// video for that moment (the sub-stream's picture is used then, and the reason logged).
    fn main_stream_picture(
        &self,
        slot: usize,
        camera: &CameraConfig,
        pictures: &[EventPicture],
    ) -> Option<DecodedFrame> {
        camera.analysis_url.as_ref()?;
        let clips = self.clips.as_ref()?;
        let (_, event_picture) = pictures.iter().find(|(r, _)| *r == FrameRole::Event)?;
        let at = unix_seconds(event_picture.captured_at);
        match clips.picture_at(slot, at) {
            Ok(p) => Some(p),
            Err(e) => {
                warn!(camera = %camera.id, error = %e,
                      "no main-stream picture for the event: the sub-stream's picture is used");
                None
            }
        }
    }

    fn analyse(&self, result: &FrameDetections) {
        let Some(cam) = self.cameras.get(result.camera) else {
            return;
        };
        let frame = &result.frame;
        let Some(grey) = frame.grey() else {
            return;
        };
        let now = unix_seconds(frame.captured_at);
        let mut guard = cam.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        if now < state.last_at {
            // A picture analysed without the detector overtook this one.
            return;
        }
        state.last_at = now;
        state.last_detected = Some(result.detected.clone());
        let out = state
            .analyzer
            .observe(now, &result.detected.detections, &grey);
        cam.sampler.report(now, out.active, out.incident_open);
        let events = state.frames.resolve(now, frame, &out);
        cam.metrics
            .active
            .set(i64::from(cam.sampler.wants_all_frames()));
        self.count_analysed(result.camera, &cam, frame.captured_at);
        let recorder = if events.is_empty() {
            None
        } else {
            Some(self.recorder())
        };
        for (event, pictures) in events {
            self.metrics
                .incidents
                .with_label_values(&[event.kind.as_str()])
                .inc();
            let id = match event.kind {
                EventKind::Raised => *state
                    .incidents
                    .entry(event.incident)
                    .or_insert_with(Uuid::now_v7),
                _ => match state.incidents.get(&event.incident) {
                    Some(id) => *id,
                    None => {
                        warn!(camera = %state.camera.id, incident = event.incident, "event of an unknown incident ignored");
                        continue;
                    }
                },
            };
            if event.kind == EventKind::Cleared {
                state.incidents.remove(&event.incident);
            }
            let objects: Vec<String> = event
                .objects
                .iter()
                .map(|o| format!("{} {:.2}", o.class, o.score))
                .collect();
            info!(camera = %state.camera.id, incident = %id, event = event.kind.as_str(), zone = %event.zone,
                  unattended_s = format!("{:.1}", event.dwell_s), confidence = format!("{:.2}", event.confidence),
                  objects = %objects.join(", "), "incident event");
            let zone = state
                .zones
                .get(event.zone_index)
                .cloned()
                .unwrap_or_else(Polygon::full_frame);
            let size = FrameSize {
                width: frame.width(),
                height: frame.height(),
            };
            // A camera analysed on its sub-stream: the event picture from the main stream.
            let main_picture = self.main_stream_picture(result.camera, &state.camera, &pictures);
            if let Some(r) = &recorder {
                let shown = EventPictures {
                    analysed: &pictures,
                    main: main_picture.as_ref(),
                };
                r.record_event(&state.camera, &zone, id, &event, shown, size);
            }
            if event.kind == EventKind::Raised
                && let Some(clips) = &self.clips
            {
                clips.request(ClipRequest {
                    camera: result.camera,
                    camera_id: state.camera.id.clone(),
                    incident: id,
                    at: event.at,
                    size: (size.width, size.height),
                });
            }
        }
    }
}

/// The pictures of an incident event: those the analyzer chose (before, actor, event, after),
/// and for a camera analysed on its sub-stream the main stream's picture that replaces the event
/// picture.
#[derive(Clone, Copy)]
pub struct EventPictures<'a> {
    /// The analysed pictures with their roles.
    pub analysed: &'a [(FrameRole, Arc<DecodedFrame>)],
    /// The main stream's picture at the event picture's time, when there is one.
    pub main: Option<&'a DecodedFrame>,
}

impl<'a> EventPictures<'a> {
    /// Just the analysed pictures (a camera analysed on its main stream).
    pub fn analysed(pictures: &'a [(FrameRole, Arc<DecodedFrame>)]) -> Self {
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
            categories: delivery.categories.to_categories(),
            model,
            // Validation accepted it; +08:00 (the city's zone) if it ever did not parse.
            utc_offset_min: crate::incident::parse_utc_offset(&delivery.utc_offset).unwrap_or(480),
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

    /// Writes the event's pictures and records the event with them in the store (blocking).
    /// Evidence that cannot be written is logged and counted; the event is recorded without it.
    pub fn record_event(
        &self,
        camera: &CameraConfig,
        zone: &Polygon,
        id: Uuid,
        event: &Event,
        pictures: EventPictures<'_>,
        frame: FrameSize,
    ) {
        let evidence = self.write_evidence(camera, id, event, zone, pictures);
        self.record(camera, id, event, frame, evidence);
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
            let shown: &DecodedFrame = match main_picture {
                Some(main) if *role == FrameRole::Event => main,
                _ => picture,
            };
            for (name, annotate) in variants {
                let img = crate::evidence::picture(shown, event, zone, annotate, boxes_in);
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

    fn record(
        &self,
        camera: &CameraConfig,
        id: Uuid,
        event: &Event,
        frame: FrameSize,
        evidence: Vec<EvidenceFile>,
    ) {
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
            .map(|f| SnapshotRef {
                role: f.role.clone(),
                content_type: f.content_type.clone(),
                sha256: f.sha256.clone(),
                data_base64: None,
                url: None,
            })
            .collect();
        let new = NewEvent {
            body,
            kind: event.kind,
            at: event.at,
            appeared_at: event.appeared_at,
            evidence,
        };
        if let Err(e) = self.store.record_blocking(new, crate::deliver::unix_now()) {
            error!(camera = %camera.id, incident = %id, event = event.kind.as_str(), error = %e,
                   "cannot store an incident event");
        }
    }
}

impl ReuseSink for Watch {
    /// Analyses the picture with the detections of the camera's last analysed picture (the
    /// scene did not change since). Without any yet, the sampler is told to detect the next.
    fn analyse_unchanged(&self, camera: usize, picture: DecodedFrame) {
        let Some(cam) = self.cameras.get(camera) else {
            return;
        };
        let last = cam
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_detected
            .clone();
        let Some(detected) = last else {
            cam.sampler.forget_detections();
            return;
        };
        self.deliver(FrameDetections {
            camera,
            frame: Arc::new(picture),
            detected,
        });
    }
}

impl DetectionSink for Watch {
    fn deliver(&self, result: FrameDetections) {
        self.analyse(&result);
        self.pictures.set(result.camera, Some(Arc::new(result)));
    }
}
