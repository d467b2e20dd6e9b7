//! Detect workers: each thread owns one [`Detector`] (one ONNX Runtime session, whose `run`
//! needs `&mut self`). Together they serve every camera from its latest-picture slot through the
//! slots' fair scheduler: round-robin over ready cameras, a camera is never in two workers at
//! once, and a camera that produces pictures faster than it is served only replaces its own
//! waiting picture (counted as `superseded` by the decoder) — it cannot starve the others.
//!
//! Results are handed to the [`DetectionSink`] while the camera is still held, so each camera's
//! results arrive in frame order.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::warn;

use super::{Detected, Detector};
use crate::decode::DecodedFrame;
use crate::geometry::Polygon;
use crate::metrics::{CameraMetrics, DetectMetrics};
use crate::slots::{LatestSlots, SlotTable};

/// The detections of one picture.
#[derive(Clone, Debug)]
pub struct FrameDetections {
    /// Camera index.
    pub camera: usize,
    /// The picture.
    pub frame: Arc<DecodedFrame>,
    /// What was found.
    pub detected: Detected,
}

/// Where detections go (the camera's analyzer; the API's latest picture).
pub trait DetectionSink: Send + Sync + 'static {
    /// Takes the detections of one picture. Called from a worker thread, in frame order per
    /// camera; must not block for long.
    fn deliver(&self, result: FrameDetections);
}

impl<F: Fn(FrameDetections) + Send + Sync + 'static> DetectionSink for F {
    fn deliver(&self, result: FrameDetections) {
        self(result)
    }
}

/// The running detect workers.
pub struct DetectPool {
    threads: Vec<JoinHandle<()>>,
    input: Arc<LatestSlots<DecodedFrame>>,
}

impl DetectPool {
    /// Starts one worker thread per detector. `zones` holds each camera slot's zones (changed by
    /// a reload while the workers run).
    pub fn start(
        detectors: Vec<Detector>,
        input: Arc<LatestSlots<DecodedFrame>>,
        zones: Arc<SlotTable<Arc<Vec<Polygon>>>>,
        sink: Arc<dyn DetectionSink>,
        metrics: DetectMetrics,
        cameras: Arc<SlotTable<Arc<CameraMetrics>>>,
        max_batch: usize,
    ) -> DetectPool {
        let threads = detectors
            .into_iter()
            .enumerate()
            .map(|(i, detector)| {
                let (input, zones, sink) = (input.clone(), zones.clone(), sink.clone());
                let (metrics, cameras) = (metrics.clone(), cameras.clone());
                std::thread::Builder::new()
                    .name(format!("detect-{i}"))
                    .spawn(move || {
                        work(
                            detector, &input, &zones, &*sink, &metrics, &cameras, max_batch,
                        )
                    })
                    .expect("spawning a detect thread")
            })
            .collect();
        DetectPool { threads, input }
    }

    /// Lets the workers finish the pictures already waiting, then joins them.
    pub fn shutdown(self) {
        self.input.close();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn work(
    mut detector: Detector,
    input: &LatestSlots<DecodedFrame>,
    zones: &SlotTable<Arc<Vec<Polygon>>>,
    sink: &dyn DetectionSink,
    metrics: &DetectMetrics,
    cameras: &SlotTable<Arc<CameraMetrics>>,
    max_batch: usize,
) {
    let class_counters: Vec<_> = detector
        .info()
        .class_names
        .iter()
        .map(|n| metrics.detections.with_label_values(&[n]))
        .collect();
    // Batch 1 unless the model takes more: never pretend to batch a fixed-batch model.
    let max_batch = if detector.info().dynamic_batch {
        max_batch.max(1)
    } else {
        1
    };
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = input.take(None) {
        batch.push(first);
        while batch.len() < max_batch {
            match input.try_take() {
                Some(next) => batch.push(next),
                None => break,
            }
        }
        let frames: Vec<&DecodedFrame> = batch.iter().map(|(_, f)| f).collect();
        let zones_held: Vec<Option<Arc<Vec<Polygon>>>> =
            batch.iter().map(|(l, _)| zones.get(l.camera())).collect();
        let frame_zones: Vec<&[Polygon]> = zones_held
            .iter()
            .map(|z| z.as_deref().map(Vec::as_slice).unwrap_or(&[]))
            .collect();
        let result = if frames.len() == 1 {
            detector
                .detect_frame(frames[0], frame_zones[0])
                .map(|d| vec![d])
        } else {
            detector.detect_batch(&frames, &frame_zones)
        };
        match result {
            Ok(all) => {
                if let Some(t) = all.first().map(|d| d.timings) {
                    // One observation per run: a batched run is one inference.
                    metrics.preprocess.observe(t.preprocess.as_secs_f64());
                    metrics.inference.observe(t.inference.as_secs_f64());
                    metrics.postprocess.observe(t.postprocess.as_secs_f64());
                }
                for ((lease, frame), detected) in batch.drain(..).zip(all) {
                    let camera = lease.camera();
                    metrics.frame_age.observe(
                        Instant::now()
                            .saturating_duration_since(frame.received)
                            .as_secs_f64(),
                    );
                    if let Some(c) = cameras.get(camera) {
                        c.detected.inc();
                    }
                    for d in &detected.detections {
                        if let Some(c) = class_counters.get(d.class_id) {
                            c.inc();
                        }
                    }
                    // Delivered while the camera is still held: frame order per camera.
                    sink.deliver(FrameDetections {
                        camera,
                        frame: Arc::new(frame),
                        detected,
                    });
                    drop(lease);
                }
            }
            Err(e) => {
                metrics.errors.inc();
                warn!(cameras = ?batch.iter().map(|(l, _)| l.camera()).collect::<Vec<_>>(), error = %e,
                      "detection failed; picture(s) skipped");
                batch.clear();
            }
        }
    }
}
