//! `replay`: the real pipeline — frame policy → decode → sampling → detect → analyze — over a
//! recorded clip, as fast as the CPU allows, with the clip's timestamps as the clock. `eval` runs
//! it over a labelled dataset.
//!
//! Which access units are decoded is decided by the same per-camera [`FramePolicy`] as on a
//! live camera: while the analyzer reports no activity only keyframes are decoded, and only
//! when the compressed stream moved or `idle_refresh_s` passed; once active, every frame from
//! the next keyframe on is decoded and detected at `active_fps`.

pub mod video_file;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::analyze::sampling::{Decision, DetectorShare, Sampler};
use crate::analyze::{Analyzer, AnalyzerConfig, Event};
use crate::codec::EncodedFrame;
use crate::decode::VideoDecoder;
use crate::detect::{DetectError, Detector};
use crate::detection::Detection;
use crate::evidence::EventPicture;
use crate::geometry::Polygon;
use crate::ingest::policy::{AccessUnit, Demand, FramePolicy, PolicyConfig, Verdict};
pub use video_file::{ClipError, ClipFrame, ClipReader};

pub use crate::decode::GREY_WIDTH;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The clip could not be read.
    #[error(transparent)]
    Clip(#[from] ClipError),
    /// The detector failed.
    #[error("{clip}: detector: {source}")]
    Detect {
        /// The clip.
        clip: String,
        /// The error.
        source: DetectError,
    },
    /// The decoder could not start.
    #[error("{clip}: decoder: {message}")]
    Decoder {
        /// The clip.
        clip: String,
        /// The error.
        message: String,
    },
}

/// Figures of one replay.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ReplayStats {
    /// Access units in the clip.
    pub frames: u32,
    /// Decoded pictures.
    pub decoded: u32,
    /// Pictures the decoder rejected.
    pub decode_errors: u32,
    /// Pictures sent to the detector (or found in the detection cache).
    pub detected: u32,
    /// Detector runs (`detected` less cache hits).
    pub inferences: u32,
    /// Pictures analysed with the last detections (unchanged since; no detector run).
    pub reused: u32,
    /// Pictures the detector had no share for (`detect_rate`): seen by the background channel
    /// alone.
    pub background_only: u32,
    /// Clip duration, seconds (last timestamp).
    pub duration_s: f64,
    /// Wall-clock seconds the replay took.
    pub elapsed_s: f64,
    /// Each change of the camera's view (see [`crate::analyze::view`]): clip time and view.
    pub views: Vec<(f64, crate::analyze::view::View)>,
}

/// Detections by picture time, for replaying one clip again with other analyzer settings
/// without running the detector again (valid for one model configuration).
pub type DetectionCache = HashMap<u64, Vec<Detection>>;

/// Runs one clip through the pipeline. `on_event` gets every event with its evidence pictures
/// (role and picture for each [`crate::analyze::FrameRef`] it names). With `detect_rate`, the
/// detector runs on at most that many pictures a second of those the sampler sends it, as on a
/// loaded box ([`DetectorShare`]); the others are seen by the background channel alone.
pub fn replay_clip(
    path: &Path,
    detector: &mut Detector,
    cfg: AnalyzerConfig,
    detect_rate: Option<f64>,
    cache: Option<&mut DetectionCache>,
    mut on_event: impl FnMut(&Event, &[EventPicture]),
) -> Result<ReplayStats, ReplayError> {
    replay_clip_traced(
        path,
        detector,
        cfg,
        detect_rate,
        cache,
        &mut on_event,
        &mut |_, _, _| {},
    )
}

/// [`replay_clip`], calling `trace` after every analysed picture with its time, its detections
/// and the analyzer (for `replay --trace`).
pub fn replay_clip_traced(
    path: &Path,
    detector: &mut Detector,
    cfg: AnalyzerConfig,
    detect_rate: Option<f64>,
    mut cache: Option<&mut DetectionCache>,
    on_event: &mut dyn FnMut(&Event, &[EventPicture]),
    trace: &mut dyn FnMut(f64, &[Detection], &Analyzer),
) -> Result<ReplayStats, ReplayError> {
    let started = Instant::now();
    let clip = path.display().to_string();
    let mut reader = ClipReader::open(path)?;
    let mut decoder = VideoDecoder::new().map_err(|e| ReplayError::Decoder {
        clip: clip.clone(),
        message: e.to_string(),
    })?;
    let zones: Vec<Polygon> = cfg.zones.iter().map(|z| z.polygon.clone()).collect();
    let mut sampler = Sampler::new(cfg.sampling.clone());
    let mut share = detect_rate.map(DetectorShare::new);
    let mut policy = FramePolicy::new(PolicyConfig {
        idle_refresh_s: cfg.sampling.idle_refresh_s,
        ..PolicyConfig::default()
    });
    let mut analyzer = Analyzer::new(cfg);
    let mut stats = ReplayStats::default();
    let mut evidence = crate::evidence::EvidenceFrames::default();
    let mut seq = 0;
    let mut last_detections: Vec<Detection> = vec![];
    while let Some(f) = reader.next_frame()? {
        stats.frames += 1;
        stats.duration_s = stats.duration_s.max(f.pts_s);
        let unit = AccessUnit {
            keyframe: f.keyframe,
            pts_s: f.pts_s,
            bytes: f.data.len(),
            at: f.pts_s,
        };
        let demand = Demand {
            all_frames: sampler.wants_all_frames(),
            wanted_at: sampler.wanted_at(),
        };
        let all_frames = match policy.offer(unit, demand) {
            Verdict::Decode { all_frames } => all_frames,
            Verdict::Skip(_) => continue,
        };
        seq += 1;
        let encoded = EncodedFrame {
            data: f.data.into(),
            keyframe: f.keyframe,
            pts_s: f.pts_s,
            captured_at: SystemTime::now(),
            received: Instant::now(),
            seq,
            all_frames,
            codec: reader.codec,
        };
        let frame = match decoder.decode(0, &encoded) {
            Ok(frame) => Arc::new(frame),
            Err(_) => {
                stats.decode_errors += 1;
                // References are broken until the next keyframe.
                policy.refused();
                continue;
            }
        };
        stats.decoded += 1;
        let now = f.pts_s;
        let Some(grey) = frame.grey() else {
            continue;
        };
        let fresh = match sampler.decide(now, &grey) {
            Decision::Detect => true,
            // Unchanged since the last detected picture: its detections still hold.
            Decision::Reuse => false,
            Decision::TooSoon | Decision::Unchanged => continue,
        };
        if fresh && share.as_mut().is_some_and(|s| !s.grant(now)) {
            stats.background_only += 1;
            analyzer.observe_background(now, &grey);
            continue;
        }
        let key = now.to_bits();
        let detections = match cache.as_deref_mut().and_then(|c| c.get(&key)) {
            _ if !fresh => last_detections.clone(),
            Some(d) => d.clone(),
            None => {
                stats.inferences += 1;
                let d = detector
                    .detect_frame(&frame, &zones)
                    .map_err(|source| ReplayError::Detect {
                        clip: clip.clone(),
                        source,
                    })?
                    .detections;
                if let Some(c) = cache.as_deref_mut() {
                    c.insert(key, d.clone());
                }
                d
            }
        };
        if fresh {
            stats.detected += 1;
            last_detections.clone_from(&detections);
        } else {
            stats.reused += 1;
        }
        let out = analyzer.observe(now, &detections, &grey);
        if let Some(view) = out.view {
            stats.views.push((now, view));
        }
        sampler.report(now, out.active);
        trace(now, &detections, &analyzer);
        for (event, pictures) in evidence.resolve(now, &frame, &out) {
            on_event(&event, &pictures);
        }
    }
    stats.elapsed_s = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Whether a model configuration `detector` was loaded with is the one `cache` was filled with:
/// a key for caches kept across runs.
pub fn cache_key(model: &crate::config::ModelConfig) -> String {
    serde_json::to_string(model).unwrap_or_default()
}
