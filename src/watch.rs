//! Live analysis: the detect sink of the service. For each analysed picture it runs the camera's
//! analyzer, tells the camera's sampler whether to stay active, and records incident events
//! (log, `dumpwatch_incidents_total`, evidence pictures under `storage_dir/evidence/`). The
//! durable store and delivery (issue 5) take the events from here.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::analyze::sampling::SharedSampler;
use crate::analyze::{Analyzer, AnalyzerConfig};
use crate::api::LatestPictures;
use crate::decode::unix_seconds;
use crate::detect::worker::{DetectionSink, FrameDetections};
use crate::evidence::EvidenceFrames;
use crate::geometry::Polygon;
use crate::metrics::{CameraMetrics, Metrics};

/// One camera's live analysis state.
pub struct CameraWatch {
    /// Camera id.
    pub id: String,
    /// The camera's sampler (shared with ingest and decode).
    pub sampler: Arc<SharedSampler>,
    analyzer: Mutex<(Analyzer, EvidenceFrames)>,
    zones: Vec<Polygon>,
    metrics: CameraMetrics,
    evidence_dir: PathBuf,
}

impl CameraWatch {
    /// A camera's analysis with its resolved configuration; evidence pictures go to
    /// `evidence_dir`.
    pub fn new(
        id: String,
        cfg: AnalyzerConfig,
        metrics: CameraMetrics,
        evidence_dir: PathBuf,
    ) -> Self {
        CameraWatch {
            id,
            sampler: Arc::new(SharedSampler::new(cfg.sampling.clone())),
            zones: cfg.zones.iter().map(|z| z.polygon.clone()).collect(),
            analyzer: Mutex::new((Analyzer::new(cfg), EvidenceFrames::default())),
            metrics,
            evidence_dir,
        }
    }
}

/// The service's detect sink.
pub struct Watch {
    cameras: Vec<CameraWatch>,
    pictures: Arc<LatestPictures>,
    metrics: Metrics,
}

impl Watch {
    /// The sink for `cameras` (indexed like the pipeline's camera slots).
    pub fn new(cameras: Vec<CameraWatch>, pictures: Arc<LatestPictures>, metrics: Metrics) -> Self {
        Watch {
            cameras,
            pictures,
            metrics,
        }
    }

    /// The samplers, by camera index (for ingest and decode).
    pub fn samplers(&self) -> Arc<[Arc<SharedSampler>]> {
        self.cameras.iter().map(|c| c.sampler.clone()).collect()
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
        let events = {
            let mut guard = cam.analyzer.lock().unwrap_or_else(|e| e.into_inner());
            let (analyzer, evidence) = &mut *guard;
            let out = analyzer.observe(now, &result.detected.detections, &grey);
            cam.sampler.report(now, out.active);
            evidence.resolve(now, frame, &out)
        };
        cam.metrics
            .active
            .set(i64::from(cam.sampler.wants_all_frames()));
        for (event, pictures) in events {
            self.metrics
                .incidents
                .with_label_values(&[event.kind.as_str()])
                .inc();
            let objects: Vec<String> = event
                .objects
                .iter()
                .map(|o| format!("{} {:.2}", o.class, o.score))
                .collect();
            info!(camera = %cam.id, incident = event.incident, event = event.kind.as_str(), zone = %event.zone,
                  unattended_s = format!("{:.1}", event.dwell_s), confidence = format!("{:.2}", event.confidence),
                  objects = %objects.join(", "), "incident event");
            if let Err(e) = std::fs::create_dir_all(&cam.evidence_dir) {
                warn!(camera = %cam.id, dir = %cam.evidence_dir.display(), error = %e, "cannot create the evidence directory");
                continue;
            }
            let zone = cam
                .zones
                .get(event.zone_index)
                .cloned()
                .unwrap_or_else(Polygon::full_frame);
            for (role, picture) in pictures {
                let img = crate::evidence::picture(&picture, &event, &zone, role);
                let path = cam
                    .evidence_dir
                    .join(crate::evidence::file_name(&event, role));
                if let Err(e) = crate::evidence::write_jpeg(&img, &path) {
                    warn!(camera = %cam.id, path = %path.display(), error = %e, "cannot write an evidence picture");
                }
            }
        }
    }
}

impl DetectionSink for Watch {
    fn deliver(&self, result: FrameDetections) {
        self.analyse(&result);
        self.pictures.set(result.camera, Arc::new(result));
    }
}
