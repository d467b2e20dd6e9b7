//! Live analysis: the detect sink of the service. For each analysed picture it runs the camera's
//! analyzer, tells the camera's sampler whether to stay active, and hands incident events with
//! their pictures to the recording stage ([`crate::recording`]), which writes the evidence and
//! records them in the store off the detector threads.
//!
//! A raised incident also gets a clip of the video around it ([`crate::clip`]), written once
//! the post-event seconds have been received.
//!
//! Handing an event over waits only while the recorder's queue is full (the store has refused
//! for a while): an incident is never dropped to keep up (incidents are rare; pictures are not).
//! It is done after the camera's lock is released.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tracing::{info, warn};
use uuid::Uuid;

use crate::analyze::sampling::SharedSampler;
use crate::analyze::view::View;
use crate::analyze::{
    Analyzer, AnalyzerConfig, EventKind, FrameRole, GreyFrame, OpenSpot, Reconfigured,
};
use crate::clip::{ClipRecorder, ClipRequest};
use crate::clock::unix_seconds;
use crate::config::CameraConfig;
use crate::decode::{AnalysisSink, DecodedFrame, KeptPicture};
use crate::detect::Detected;
use crate::detect::worker::{DetectionSink, FrameDetections};
use crate::evidence::{EventPicture, EvidenceFrames};
use crate::geometry::Polygon;
use crate::incident::FrameSize;
use crate::ingest::StatusBoard;
use crate::metrics::{CameraMetrics, DropReason, Metrics};
use crate::recording::{EventJob, IncidentRecorder, MainPicture, Recording};
use crate::slots::SlotTable;
use crate::store::camera_events::NewCameraEvent;

/// Each camera slot's latest analysed picture, for the API.
pub type LatestPictures = SlotTable<Arc<LatestPicture>>;

/// A camera's latest analysed picture, kept compactly (an idle camera's as its keyframe), with
/// what the detector found in it, and its JPEG renderings once asked for.
pub struct LatestPicture {
    /// Camera index.
    pub camera: usize,
    /// The picture.
    pub frame: KeptPicture,
    /// What was found (for a picture analysed without the detector: its camera's last
    /// detections).
    pub detected: Detected,
    /// JPEG renderings made of it, by requested width (at most [`LatestPicture::RENDERINGS`]).
    renderings: Mutex<Vec<Rendering>>,
}

/// A JPEG of a latest picture: the width asked for (`None`: full size) and the bytes.
type Rendering = (Option<u32>, Arc<[u8]>);

impl LatestPicture {
    /// Renderings kept per picture (the dashboard's thumbnail and a full picture).
    pub const RENDERINGS: usize = 2;

    /// A latest picture with no rendering yet.
    pub fn new(camera: usize, frame: KeptPicture, detected: Detected) -> LatestPicture {
        LatestPicture {
            camera,
            frame,
            detected,
            renderings: Mutex::new(Vec::new()),
        }
    }

    /// The JPEG of this picture at `width`, rendered by `render` at most once per width (however
    /// many clients ask: a picture of an idle camera must be decoded again first).
    pub fn jpeg(
        &self,
        width: Option<u32>,
        render: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<Arc<[u8]>, String> {
        let mut renderings = self.renderings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, bytes)) = renderings.iter().find(|(w, _)| *w == width) {
            return Ok(bytes.clone());
        }
        let bytes: Arc<[u8]> = render()?.into();
        if renderings.len() >= Self::RENDERINGS {
            renderings.remove(0);
        }
        renderings.push((width, bytes.clone()));
        Ok(bytes)
    }
}

/// One camera's live analysis state.
pub struct CameraWatch {
    /// The camera's sampler (shared with ingest and decode).
    pub sampler: Arc<SharedSampler>,
    state: Mutex<CameraState>,
    /// What the decode threads hand to the analysis and take from it, under a lock of its own:
    /// a decode thread never waits while the camera's analysis runs.
    handoff: Mutex<Handoff>,
    metrics: CameraMetrics,
}

/// What passes between a camera's decode threads and its analysis.
#[derive(Default)]
struct Handoff {
    /// The detections of the last analysed picture (for a picture that did not change).
    last_detected: Option<Detected>,
    /// Pictures for the background channel alone, by capture time, waiting for the detections
    /// of an earlier picture that may still be with the detector (at most
    /// [`BACKGROUND_WAITING`]).
    background: VecDeque<(f64, Arc<GreyFrame>)>,
}

struct CameraState {
    camera: CameraConfig,
    zones: Vec<Polygon>,
    analyzer: Analyzer,
    frames: EvidenceFrames,
    /// The store's id of each open incident, by the analyzer's number.
    incidents: HashMap<u64, Uuid>,
    /// Capture time of the last analysed picture (the analyzer's clock never goes back).
    last_at: f64,
}

/// Pictures for the background channel kept waiting per camera (each a 160-wide grey picture
/// with its colour, 43 KB); beyond it the oldest is analysed at once, or dropped when the
/// camera's analysis is busy (`frames_dropped_total{reason="background_busy"}`).
const BACKGROUND_WAITING: usize = 8;

impl CameraWatch {
    /// A camera's analysis with its resolved configuration, using the slot's `sampler` (which
    /// starts over, idle, with the camera's sampling settings). It goes on following the
    /// camera's `open` incidents (from the store at start, or from its analysis before a
    /// reconnect); one it cannot follow is logged and stays open in the store.
    pub fn new(
        camera: CameraConfig,
        cfg: AnalyzerConfig,
        metrics: CameraMetrics,
        sampler: Arc<SharedSampler>,
        open: Vec<(Uuid, OpenSpot)>,
    ) -> Self {
        sampler.reconfigure(cfg.sampling.clone(), true);
        let mut analyzer = Analyzer::new(cfg);
        let mut incidents = HashMap::new();
        for (id, spot) in open {
            match analyzer.carry(&spot) {
                Ok(number) => {
                    incidents.insert(number, id);
                }
                Err(why) => warn!(camera = %camera.id, incident = %id, reason = %why,
                                  "an open incident can no longer be followed: it stays open until an operator reviews it"),
            }
        }
        if !incidents.is_empty() {
            info!(camera = %camera.id, open_incidents = incidents.len(), "following the camera's open incidents");
        }
        CameraWatch {
            sampler,
            state: Mutex::new(CameraState {
                zones: analyzer
                    .config()
                    .zones
                    .iter()
                    .map(|z| z.polygon.clone())
                    .collect(),
                camera,
                analyzer,
                frames: EvidenceFrames::default(),
                incidents,
                last_at: f64::NEG_INFINITY,
            }),
            handoff: Mutex::default(),
            metrics,
        }
    }

    fn handoff(&self) -> std::sync::MutexGuard<'_, Handoff> {
        self.handoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Feeds the waiting background pictures taken before `before` to the analyzer of `state`
    /// (this camera's, locked by the caller), in time order.
    fn catch_up_background(&self, state: &mut CameraState, before: f64) {
        let due: Vec<(f64, Arc<GreyFrame>)> = {
            let mut handoff = self.handoff();
            let keep = handoff
                .background
                .iter()
                .position(|(at, _)| *at >= before)
                .unwrap_or(handoff.background.len());
            handoff.background.drain(..keep).collect()
        };
        for (at, grey) in due {
            state.analyzer.observe_background(at, &grey);
        }
    }

    /// The open incidents this camera follows, with what a new analysis needs to follow them on.
    pub fn open_spots(&self) -> Vec<(Uuid, OpenSpot)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .analyzer
            .open_spots()
            .into_iter()
            .filter_map(|(number, spot)| Some((*state.incidents.get(&number)?, spot)))
            .collect()
    }

    /// Applies a reloaded configuration of the same camera without stopping its stream.
    /// Thresholds change in place and what the analyzer follows is kept; new zones or masks
    /// start the analyzer over: objects still pending are forgotten, open incidents are followed
    /// on (one whose spot no zone holds any more is logged and stays open in the store until
    /// reviewed).
    fn reconfigure(&self, camera: CameraConfig, cfg: AnalyzerConfig) -> Reconfigured {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.sampler.reconfigure(cfg.sampling.clone(), false);
        state.zones = cfg.zones.iter().map(|z| z.polygon.clone()).collect();
        state.camera = camera;
        let outcome = state.analyzer.reconfigure(cfg);
        if let Reconfigured::Restarted { carried, dropped } = &outcome {
            let before = std::mem::take(&mut state.incidents);
            state.incidents = carried
                .iter()
                .filter_map(|(was, now)| Some((*now, *before.get(was)?)))
                .collect();
            state.frames = EvidenceFrames::default();
            self.handoff().background.clear();
            for (was, why) in dropped {
                warn!(camera = %state.camera.id, incident = ?before.get(was), reason = %why,
                      "zones or masks changed: an open incident can no longer be followed; it stays open until an operator reviews it");
            }
        }
        outcome
    }
}

/// The service's detect sink.
pub struct Watch {
    cameras: SlotTable<Arc<CameraWatch>>,
    /// Open incidents waiting for their camera's analysis, by camera id: read from the store at
    /// start, or left by a camera stopped for a reload (taken again when it starts).
    open: Mutex<HashMap<String, Vec<(Uuid, OpenSpot)>>>,
    samplers: Arc<[Arc<SharedSampler>]>,
    pictures: Arc<LatestPictures>,
    status: Arc<StatusBoard>,
    metrics: Metrics,
    recorder: std::sync::RwLock<Arc<IncidentRecorder>>,
    recording: Recording,
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
        recording: Recording,
        clips: Option<Arc<ClipRecorder>>,
    ) -> Self {
        Watch {
            cameras: SlotTable::new(slots),
            open: Mutex::new(HashMap::new()),
            samplers: (0..slots)
                .map(|_| Arc::new(SharedSampler::new(Default::default())))
                .collect(),
            pictures,
            status,
            metrics,
            recorder: std::sync::RwLock::new(Arc::new(recorder)),
            recording,
            clips,
        }
    }

    /// The samplers, by camera slot (for ingest and decode).
    pub fn samplers(&self) -> Arc<[Arc<SharedSampler>]> {
        self.samplers.clone()
    }

    /// Open incidents to follow, by camera id (the store's, at start): each camera's analysis
    /// takes its own when it starts.
    pub fn follow_open_incidents(&self, open: HashMap<String, Vec<(Uuid, OpenSpot)>>) {
        let mut waiting = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for (camera, spots) in open {
            waiting.entry(camera).or_default().extend(spots);
        }
    }

    /// Starts analysing a camera in `slot`, following its open incidents.
    pub fn install(
        &self,
        slot: usize,
        camera: CameraConfig,
        cfg: AnalyzerConfig,
        metrics: CameraMetrics,
    ) {
        let open = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&camera.id)
            .unwrap_or_default();
        metrics.set_view(View::Learning);
        self.status.update(slot, |s| {
            s.view = View::Learning;
            s.view_since = None;
        });
        let watch = CameraWatch::new(camera, cfg, metrics, self.samplers[slot].clone(), open);
        self.cameras.set(slot, Some(Arc::new(watch)));
    }

    /// Stops analysing the camera in `slot`; its open incidents wait for its next start.
    pub fn remove(&self, slot: usize) {
        let Some(cam) = self.cameras.get(slot) else {
            return;
        };
        self.cameras.set(slot, None);
        let id = cam
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .camera
            .id
            .clone();
        let spots = cam.open_spots();
        let mut waiting = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if spots.is_empty() {
            waiting.remove(&id);
        } else {
            waiting.insert(id, spots);
        }
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

    /// Applies a reloaded configuration of the camera in `slot` without stopping its stream
    /// ([`CameraWatch::reconfigure`]). New zones or masks start a new analysis, whose home view
    /// is learned anew: shown as such, and told to the operations center when the camera's view
    /// was lost. `None` when no camera is analysed in `slot`.
    pub fn reconfigure(
        &self,
        slot: usize,
        camera: CameraConfig,
        cfg: AnalyzerConfig,
    ) -> Option<Reconfigured> {
        let cam = self.cameras.get(slot)?;
        let id = camera.id.clone();
        let outcome = cam.reconfigure(camera, cfg);
        if outcome != Reconfigured::Kept {
            let at = std::time::SystemTime::now();
            if let Some(event) = self.report_view(slot, &cam, &id, View::Learning, at) {
                self.recording.camera_event(event);
            }
        }
        Some(outcome)
    }

    /// Shows camera `slot`'s new view (status, metric, log): moved or covered is an operator's
    /// matter (nothing is raised until the view is home again, or the zones are drawn anew).
    /// Returns the camera event to record when the operations center is to be told
    /// ([`NewCameraEvent::worth_telling`]); the caller hands it over outside the camera's lock.
    fn report_view(
        &self,
        slot: usize,
        cam: &CameraWatch,
        id: &str,
        view: View,
        at: std::time::SystemTime,
    ) -> Option<NewCameraEvent> {
        cam.metrics.set_view(view);
        let previous = self.status.update(slot, |s| {
            let previous = s.view;
            s.view = view;
            // A view being learned has no time of its own yet.
            s.view_since = (view != View::Learning).then_some(at);
            previous
        })?;
        match view {
            View::Moved => warn!(camera = %id,
                "the camera no longer sees the scene it was set up for (turned, bumped or zoomed): nothing is raised until it is turned back, or its zones are drawn anew for the new view"),
            View::Covered => warn!(camera = %id,
                "the camera's picture shows too little to watch (lens covered, sprayed or fogged): nothing is raised until it is clear"),
            View::Learning => {
                info!(camera = %id, "new zones or masks: the camera's home view is learned anew")
            }
            View::Home => info!(camera = %id, "the camera sees its scene"),
        }
        NewCameraEvent::worth_telling(previous, view).then(|| NewCameraEvent {
            camera_id: id.to_owned(),
            view,
            previous,
            at: unix_seconds(at),
        })
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

    /// For a camera with `analysis_url`: how to decode its main stream's picture at the time of
    /// the event picture, from the clip ring (run by the recorder, off the detector thread).
    /// `None` otherwise; the decoding yields `None` when the main stream has no video for that
    /// moment (the sub-stream's picture is used then, and the reason logged).
    fn main_stream_picture(
        &self,
        slot: usize,
        camera: &CameraConfig,
        pictures: &[EventPicture],
    ) -> Option<MainPicture> {
        camera.analysis_url.as_ref()?;
        let clips = self.clips.clone()?;
        let (_, event_picture) = pictures.iter().find(|(r, _)| *r == FrameRole::Event)?;
        let at = unix_seconds(event_picture.captured_at());
        let camera_id = camera.id.clone();
        Some(Box::new(move || match clips.picture_at(slot, at) {
            Ok(p) => Some(p),
            Err(e) => {
                warn!(camera = %camera_id, error = %e,
                      "no main-stream picture for the event: the sub-stream's picture is used");
                None
            }
        }))
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
        cam.catch_up_background(state, now);
        if now < state.last_at {
            // A picture analysed without the detector overtook this one.
            return;
        }
        state.last_at = now;
        cam.handoff().last_detected = Some(result.detected.clone());
        let out = {
            let _camera = tracing::debug_span!(target: "dumpwatch::analyze", "analyze", camera = %state.camera.id).entered();
            state
                .analyzer
                .observe(now, &result.detected.detections, &grey)
        };
        cam.sampler.report(now, out.active, out.incident_open);
        let camera_event = out.view.and_then(|view| {
            self.report_view(
                result.camera,
                &cam,
                &state.camera.id,
                view,
                frame.captured_at,
            )
        });
        let events = state.frames.resolve(now, frame, &out);
        cam.metrics
            .active
            .set(i64::from(cam.sampler.wants_all_frames()));
        self.count_analysed(result.camera, &cam, frame.captured_at);
        let (mut jobs, mut clip_requests) = (Vec::new(), Vec::new());
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
            let main = self.main_stream_picture(result.camera, &state.camera, &pictures);
            let raised = event.kind == EventKind::Raised;
            let (at, appeared_at) = (event.at, event.appeared_at);
            // Kept with the incident, to follow it on after a restart.
            let spot = state.analyzer.open_spot(event.incident);
            jobs.push(EventJob {
                recorder: self.recorder(),
                camera: state.camera.clone(),
                zone,
                id,
                event,
                pictures,
                main,
                frame: size,
                spot,
            });
            if raised {
                clip_requests.push(ClipRequest {
                    camera: result.camera,
                    camera_id: state.camera.id.clone(),
                    incident: id,
                    at,
                    appeared_at,
                    size: (size.width, size.height),
                });
            }
        }
        let pending_since = state.analyzer.earliest_pending();
        // Handed over outside the camera's lock: a full queue must not hold up its other work.
        // A clip is asked for after its incident's event, so its row follows the incident's.
        drop(guard);
        if let Some(event) = camera_event {
            self.recording.camera_event(event);
        }
        for job in jobs {
            self.recording.event(job);
        }
        if let Some(clips) = &self.clips {
            // The clips first: they take their video from the ring before a raised object's
            // put-down is let go.
            clip_requests.into_iter().for_each(|r| clips.request(r));
            clips.keep_act_from(result.camera, pending_since);
        }
    }
}

impl AnalysisSink for Watch {
    /// Analyses the picture with the detections of the camera's last analysed picture (the
    /// scene did not change since). Without any yet, the sampler is told to detect the next.
    fn analyse_unchanged(&self, camera: usize, picture: DecodedFrame) {
        let Some(cam) = self.cameras.get(camera) else {
            return;
        };
        let last = cam.handoff().last_detected.clone();
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

    /// Keeps the picture's grey version until the detections of the pictures before it are in
    /// (the analyzer takes pictures in time order), then feeds it to the camera's background
    /// model. When more are waiting than [`BACKGROUND_WAITING`], the oldest is analysed now if
    /// the camera's analysis is free, else dropped: the decode thread does not wait for it.
    fn analyse_background(&self, camera: usize, picture: DecodedFrame) {
        let Some(cam) = self.cameras.get(camera) else {
            return;
        };
        let Some(grey) = picture.grey() else {
            return;
        };
        cam.metrics.background.inc();
        let at = unix_seconds(picture.captured_at);
        // The hand-off stays locked while the oldest is analysed, so that the analysis cannot
        // take a later picture first; it is only ever tried for the camera's lock (the analysis
        // takes the camera's lock, then the hand-off).
        let mut handoff = cam.handoff();
        handoff.background.push_back((at, grey));
        if handoff.background.len() > BACKGROUND_WAITING {
            let (at, grey) = handoff.background.pop_front().expect("more than one");
            match cam.state.try_lock() {
                Ok(mut state) => state.analyzer.observe_background(at, &grey),
                Err(_) => cam.metrics.dropped(DropReason::BackgroundBusy).inc(),
            }
        }
    }
}

impl DetectionSink for Watch {
    fn deliver(&self, result: FrameDetections) {
        self.analyse(&result);
        // Shown on request: kept so that its pixels come back at once (a busy camera's with its
        // pixels, an idle camera's as its keyframe).
        let latest = LatestPicture::new(
            result.camera,
            KeptPicture::quick(&result.frame),
            result.detected,
        );
        self.pictures.set(latest.camera, Some(Arc::new(latest)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Instant, SystemTime};

    #[test]
    fn a_latest_picture_is_rendered_once_per_width() {
        let (y, c) = (vec![0u8; 16], vec![128u8; 4]);
        let frame = DecodedFrame::from_planes(
            0,
            SystemTime::now(),
            Instant::now(),
            0.0,
            true,
            (4, 4),
            (&y, &c, &c),
            (4, 2, 2),
        )
        .expect("consistent planes");
        let detected = Detected {
            detections: vec![],
            letterbox: crate::detect::preprocess::Letterbox::new((4, 4), (8, 8)).unwrap(),
            timings: Default::default(),
        };
        let latest = LatestPicture::new(0, KeptPicture::pixels_of(&Arc::new(frame)), detected);
        let renders = AtomicUsize::new(0);
        let render = |tag: u8| {
            renders.fetch_add(1, Ordering::SeqCst);
            Ok(vec![tag])
        };
        for _ in 0..3 {
            assert_eq!(&*latest.jpeg(Some(320), || render(1)).unwrap(), &[1]);
            assert_eq!(&*latest.jpeg(None, || render(2)).unwrap(), &[2]);
        }
        assert_eq!(renders.load(Ordering::SeqCst), 2);
        // A third width pushes out the oldest rendering.
        latest.jpeg(Some(160), || render(3)).unwrap();
        latest.jpeg(Some(320), || render(1)).unwrap();
        assert_eq!(renders.load(Ordering::SeqCst), 4);
        // A failed rendering is not kept.
        assert!(latest.jpeg(Some(80), || Err("no".into())).is_err());
        assert_eq!(&*latest.jpeg(Some(80), || render(4)).unwrap(), &[4]);
    }
}
