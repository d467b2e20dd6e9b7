//! Prometheus metrics (prefix `dumpwatch_`). Names and labels are part of the contract in
//! `docs/architecture.md`; the camera label is bounded by the config.
//!
//! Hot paths never look a label up: each camera gets a [`CameraMetrics`] with its children
//! resolved once.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::analyze::view::View;

/// Why a frame was dropped (`reason` label of `dumpwatch_frames_dropped_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Frames before the first keyframe after a (re)connect cannot be decoded. Planned.
    BeforeKeyframe,
    /// A newer frame of the camera replaced this one before a decoder took it: decoding is
    /// behind. Unplanned.
    DecodeBusy,
    /// The decoder rejected the access unit (corrupt or truncated). Unplanned.
    DecodeError,
    /// A newer decoded picture replaced this one before the next stage took it. Unplanned.
    Superseded,
    /// A picture for the background channel came while the camera's analysis was busy and
    /// eight were already waiting. Unplanned.
    BackgroundBusy,
}

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; 5] = [
        DropReason::BeforeKeyframe,
        DropReason::DecodeBusy,
        DropReason::DecodeError,
        DropReason::Superseded,
        DropReason::BackgroundBusy,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BeforeKeyframe => "before_keyframe",
            DropReason::DecodeBusy => "decode_busy",
            DropReason::DecodeError => "decode_error",
            DropReason::Superseded => "superseded",
            DropReason::BackgroundBusy => "background_busy",
        }
    }
}

/// The service's metrics, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `dumpwatch_decode_seconds`: time to decode one access unit into a picture.
    pub decode_seconds: Histogram,
    frames_total: IntCounterVec,
    frames_dropped_total: IntCounterVec,
    camera_up: IntGaugeVec,
    camera_reconnects_total: IntCounterVec,
    rtsp_step_seconds: HistogramVec,
    detect: DetectMetrics,
    /// `dumpwatch_incidents_total{event}`: incident events (raised, updated, cleared).
    pub incidents: IntCounterVec,
    /// `dumpwatch_evidence_errors_total`: evidence files (snapshots, clips) that could not be
    /// written; the incident is stored and delivered without them.
    pub evidence_errors: IntCounter,
    /// `dumpwatch_camera_active{camera}`: 1 while a camera is sampled actively (every frame
    /// decoded, detected at `active_fps`), 0 while idle.
    camera_active: IntGaugeVec,
    /// `dumpwatch_camera_view{camera, view}`: 1 for what the camera sees against its home view
    /// (`learning`, `home`, `moved`, `covered`; see `analyze::view`), 0 for the others.
    camera_view: IntGaugeVec,
    /// `dumpwatch_analysis_gap_seconds{load}`: time between two analysed pictures of a camera,
    /// by whether the camera was busy or idle (`load`).
    analysis_gap_seconds: HistogramVec,
    /// `dumpwatch_camera_analysis_gap_seconds{camera}`: a camera's last time between two
    /// analysed pictures.
    camera_analysis_gap: GaugeVec,
    /// `dumpwatch_worker_panics_total{stage}`: decode or detect worker threads that panicked
    /// (each was restarted).
    pub worker_panics: IntCounterVec,
}

/// The detector's metrics (shared by every detect worker).
#[derive(Clone)]
pub struct DetectMetrics {
    /// `dumpwatch_preprocess_seconds`: letterbox + tensor fill.
    pub preprocess: Histogram,
    /// `dumpwatch_inference_seconds`: `session.run`, the hot path.
    pub inference: Histogram,
    /// `dumpwatch_postprocess_seconds`: output decoding and NMS.
    pub postprocess: Histogram,
    /// `dumpwatch_frame_age_seconds`: from a frame's arrival to its detections being ready.
    pub frame_age: Histogram,
    /// `dumpwatch_detections_total{class}`.
    pub detections: IntCounterVec,
    /// `dumpwatch_detect_errors_total`: pictures the detector failed on.
    pub errors: IntCounter,
    /// `dumpwatch_worker_panics_total{stage="detect"}`: detect workers that panicked.
    pub panics: IntCounter,
}

/// Latency buckets from 0.5 ms to 2 s, fine where decode and inference times fall (1–50 ms) so
/// that p50/p95 read from the histogram are accurate to about a millisecond.
fn latency_buckets() -> Vec<f64> {
    vec![
        0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.010, 0.012, 0.014,
        0.016, 0.018, 0.020, 0.023, 0.026, 0.030, 0.035, 0.040, 0.050, 0.065, 0.080, 0.1, 0.15,
        0.25, 0.5, 1.0, 2.0,
    ]
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let decode_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "dumpwatch_decode_seconds",
                "Time to decode one H.264 or H.265 access unit into a picture.",
            )
            .buckets(latency_buckets()),
        )
        .expect("valid histogram");
        let frames_total = IntCounterVec::new(
            Opts::new(
                "dumpwatch_frames_total",
                "Video frames by pipeline stage (received, skipped, decoded, detected; recorded: main-stream frames kept for clips of a camera analysed on its sub-stream).",
            ),
            &["camera", "stage"],
        )
        .expect("valid counter");
        let frames_dropped_total = IntCounterVec::new(
            Opts::new(
                "dumpwatch_frames_dropped_total",
                "Frames dropped, by reason. before_keyframe is planned; decode_busy, decode_error, superseded and background_busy are not.",
            ),
            &["camera", "reason"],
        )
        .expect("valid counter");
        let camera_up = IntGaugeVec::new(
            Opts::new(
                "dumpwatch_camera_up",
                "1 while the camera is streaming, 0 otherwise.",
            ),
            &["camera"],
        )
        .expect("valid gauge");
        let camera_reconnects_total = IntCounterVec::new(
            Opts::new(
                "dumpwatch_camera_reconnects_total",
                "Connection attempts after the first, per camera.",
            ),
            &["camera"],
        )
        .expect("valid counter");
        let rtsp_step_seconds = HistogramVec::new(
            HistogramOpts::new(
                "dumpwatch_rtsp_step_seconds",
                "Duration of RTSP session steps (describe, setup, play).",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["step"],
        )
        .expect("valid histogram");
        let hist = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid histogram");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let detections = IntCounterVec::new(
            Opts::new(
                "dumpwatch_detections_total",
                "Detections by class (after thresholds and NMS).",
            ),
            &["class"],
        )
        .expect("valid counter");
        registry
            .register(Box::new(detections.clone()))
            .expect("unique metric");
        let errors = IntCounter::new(
            "dumpwatch_detect_errors_total",
            "Pictures the detector failed on.",
        )
        .expect("valid counter");
        registry
            .register(Box::new(errors.clone()))
            .expect("unique metric");
        let worker_panics = IntCounterVec::new(
            Opts::new(
                "dumpwatch_worker_panics_total",
                "Worker threads that panicked and were restarted, by stage (decode, detect).",
            ),
            &["stage"],
        )
        .expect("valid counter");
        registry
            .register(Box::new(worker_panics.clone()))
            .expect("unique metric");
        for stage in ["decode", "detect"] {
            worker_panics.with_label_values(&[stage]);
        }
        let detect = DetectMetrics {
            panics: worker_panics.with_label_values(&["detect"]),
            preprocess: hist(
                "dumpwatch_preprocess_seconds",
                "Letterbox and input tensor fill per picture.",
                latency_buckets(),
            ),
            inference: hist(
                "dumpwatch_inference_seconds",
                "Detector session run per picture (the hot path).",
                latency_buckets(),
            ),
            postprocess: hist(
                "dumpwatch_postprocess_seconds",
                "Output decoding and NMS per picture.",
                latency_buckets(),
            ),
            frame_age: hist(
                "dumpwatch_frame_age_seconds",
                "From a frame's arrival to its detections being ready.",
                vec![
                    0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
                ],
            ),
            detections,
            errors,
        };
        for c in [
            &frames_total,
            &frames_dropped_total,
            &camera_reconnects_total,
        ] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(decode_seconds.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(camera_up.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(rtsp_step_seconds.clone()))
            .expect("unique metric");
        let incidents = IntCounterVec::new(
            Opts::new(
                "dumpwatch_incidents_total",
                "Incident events by kind (raised, updated, cleared).",
            ),
            &["event"],
        )
        .expect("valid counter");
        registry
            .register(Box::new(incidents.clone()))
            .expect("unique metric");
        let camera_active = IntGaugeVec::new(
            Opts::new(
                "dumpwatch_camera_active",
                "1 while a camera is sampled actively (all frames decoded), 0 while idle.",
            ),
            &["camera"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(camera_active.clone()))
            .expect("unique metric");
        let camera_view = IntGaugeVec::new(
            Opts::new(
                "dumpwatch_camera_view",
                "1 for what the camera sees against its home view (learning, home, moved, covered), 0 for the others. Moved or covered: nothing is raised.",
            ),
            &["camera", "view"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(camera_view.clone()))
            .expect("unique metric");
        let analysis_gap_seconds = HistogramVec::new(
            HistogramOpts::new(
                "dumpwatch_analysis_gap_seconds",
                "Time between two analysed pictures of a camera, by its load (busy or idle).",
            )
            .buckets(vec![
                0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0,
            ]),
            &["load"],
        )
        .expect("valid histogram");
        let camera_analysis_gap = GaugeVec::new(
            Opts::new(
                "dumpwatch_camera_analysis_gap_seconds",
                "A camera's last time between two analysed pictures, seconds.",
            ),
            &["camera"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(analysis_gap_seconds.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(camera_analysis_gap.clone()))
            .expect("unique metric");
        let evidence_errors = IntCounter::new(
            "dumpwatch_evidence_errors_total",
            "Evidence files (snapshots, clips) that could not be written; the incident went on without them.",
        )
        .expect("valid counter");
        registry
            .register(Box::new(evidence_errors.clone()))
            .expect("unique metric");
        Metrics {
            incidents,
            evidence_errors,
            worker_panics,
            camera_active,
            camera_view,
            analysis_gap_seconds,
            camera_analysis_gap,
            registry,
            decode_seconds,
            frames_total,
            frames_dropped_total,
            camera_up,
            camera_reconnects_total,
            rtsp_step_seconds,
            detect,
        }
    }

    /// The detector's metrics.
    pub fn detect(&self) -> &DetectMetrics {
        &self.detect
    }

    /// The registry, for components that register metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Per-camera handles with their label values resolved.
    pub fn camera(&self, id: &str) -> CameraMetrics {
        let stage = |s: &str| self.frames_total.with_label_values(&[id, s]);
        let dropped = |r: DropReason| {
            self.frames_dropped_total
                .with_label_values(&[id, r.as_str()])
        };
        CameraMetrics {
            received: stage("received"),
            skipped: stage("skipped"),
            decoded: stage("decoded"),
            detected: stage("detected"),
            recorded: stage("recorded"),
            background: stage("background"),
            before_keyframe: dropped(DropReason::BeforeKeyframe),
            decode_busy: dropped(DropReason::DecodeBusy),
            decode_error: dropped(DropReason::DecodeError),
            superseded: dropped(DropReason::Superseded),
            background_busy: dropped(DropReason::BackgroundBusy),
            up: self.camera_up.with_label_values(&[id]),
            active: self.camera_active.with_label_values(&[id]),
            views: View::ALL.map(|v| self.camera_view.with_label_values(&[id, v.as_str()])),
            analysis_gap: self.camera_analysis_gap.with_label_values(&[id]),
            analysis_gap_busy: self.analysis_gap_seconds.with_label_values(&["busy"]),
            analysis_gap_idle: self.analysis_gap_seconds.with_label_values(&["idle"]),
            reconnects: self.camera_reconnects_total.with_label_values(&[id]),
            describe_seconds: self.rtsp_step_seconds.with_label_values(&["describe"]),
            setup_seconds: self.rtsp_step_seconds.with_label_values(&["setup"]),
            play_seconds: self.rtsp_step_seconds.with_label_values(&["play"]),
        }
    }

    /// Removes the series of a camera that is no longer configured.
    pub fn forget_camera(&self, id: &str) {
        for s in [
            "received",
            "skipped",
            "decoded",
            "detected",
            "recorded",
            "background",
        ] {
            let _ = self.frames_total.remove_label_values(&[id, s]);
        }
        for r in DropReason::ALL {
            let _ = self
                .frames_dropped_total
                .remove_label_values(&[id, r.as_str()]);
        }
        let _ = self.camera_up.remove_label_values(&[id]);
        let _ = self.camera_reconnects_total.remove_label_values(&[id]);
        let _ = self.camera_active.remove_label_values(&[id]);
        for v in View::ALL {
            let _ = self.camera_view.remove_label_values(&[id, v.as_str()]);
        }
        let _ = self.camera_analysis_gap.remove_label_values(&[id]);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// One camera's metric handles.
#[derive(Clone)]
pub struct CameraMetrics {
    /// `frames_total{stage="received"}`: a video frame arrived from the camera.
    pub received: IntCounter,
    /// `frames_total{stage="skipped"}`: not decoded because sampling did not need it (a P-frame
    /// in keyframe mode, a keyframe within `min_keyframe_interval_s`). Planned, not a loss.
    pub skipped: IntCounter,
    /// `frames_total{stage="decoded"}`: decoded into a picture.
    pub decoded: IntCounter,
    /// `frames_total{stage="detected"}`: went through the detector.
    pub detected: IntCounter,
    /// `frames_total{stage="recorded"}`: a frame of the main stream kept for clips (a camera
    /// analysed on its `analysis_url` sub-stream).
    pub recorded: IntCounter,
    /// `frames_total{stage="background"}`: a picture sent to the detector that a newer one
    /// replaced before a detector came to it (also counted as dropped, `superseded`), analysed
    /// by the background channel alone.
    pub background: IntCounter,
    /// `frames_dropped_total{reason="before_keyframe"}`.
    pub before_keyframe: IntCounter,
    /// `frames_dropped_total{reason="decode_busy"}`.
    pub decode_busy: IntCounter,
    /// `frames_dropped_total{reason="decode_error"}`.
    pub decode_error: IntCounter,
    /// `frames_dropped_total{reason="superseded"}`.
    pub superseded: IntCounter,
    /// `frames_dropped_total{reason="background_busy"}`.
    pub background_busy: IntCounter,
    /// `camera_up`.
    pub up: IntGauge,
    /// `camera_active`.
    pub active: IntGauge,
    /// `camera_view`, one gauge per view in the order of [`View::ALL`].
    views: [IntGauge; 4],
    /// `camera_analysis_gap_seconds`.
    pub analysis_gap: Gauge,
    /// `analysis_gap_seconds{load="busy"}`.
    pub analysis_gap_busy: Histogram,
    /// `analysis_gap_seconds{load="idle"}`.
    pub analysis_gap_idle: Histogram,
    /// `camera_reconnects_total`.
    pub reconnects: IntCounter,
    /// `rtsp_step_seconds{step="describe"}`.
    pub describe_seconds: Histogram,
    /// `rtsp_step_seconds{step="setup"}`.
    pub setup_seconds: Histogram,
    /// `rtsp_step_seconds{step="play"}`.
    pub play_seconds: Histogram,
}

impl CameraMetrics {
    /// The counter for a drop reason.
    pub fn dropped(&self, reason: DropReason) -> &IntCounter {
        match reason {
            DropReason::BeforeKeyframe => &self.before_keyframe,
            DropReason::DecodeBusy => &self.decode_busy,
            DropReason::DecodeError => &self.decode_error,
            DropReason::Superseded => &self.superseded,
            DropReason::BackgroundBusy => &self.background_busy,
        }
    }

    /// Shows `view` as the camera's view (`camera_view`).
    pub fn set_view(&self, view: View) {
        for (v, gauge) in View::ALL.iter().zip(&self.views) {
            gauge.set(i64::from(*v == view));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_series_render_with_contract_names() {
        let m = Metrics::new();
        let c = m.camera("cam-1");
        c.received.inc();
        c.dropped(DropReason::DecodeBusy).inc();
        c.up.set(1);
        m.decode_seconds.observe(0.01);
        let text = m.render();
        for needle in [
            "dumpwatch_frames_total{camera=\"cam-1\",stage=\"received\"} 1",
            "dumpwatch_frames_dropped_total{camera=\"cam-1\",reason=\"decode_busy\"} 1",
            "dumpwatch_camera_up{camera=\"cam-1\"} 1",
            "dumpwatch_camera_reconnects_total{camera=\"cam-1\"} 0",
            "dumpwatch_decode_seconds_count 1",
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
        m.forget_camera("cam-1");
        assert!(!m.render().contains("cam-1"));
    }
}
