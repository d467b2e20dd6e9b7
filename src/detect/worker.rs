//! Detect workers: each thread owns one [`Detector`] (one ONNX Runtime session, whose `run`
//! needs `&mut self`). Together they serve every camera from its latest-picture slot through the
//! slots' fair scheduler: round-robin over ready cameras, a camera is never in two workers at
//! once, and a camera that produces pictures faster than it is served only replaces its own
//! waiting picture (counted as `superseded` by the decoder) — it cannot starve the others.
//!
//! Results are handed to the [`DetectionSink`] while the camera is still held, so each camera's
//! results arrive in frame order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// Spaces detector runs over all workers to at most a rate: the fixed one of
/// `model.max_detections_per_s` and, under it, the one the CPU budget sets while the service
/// runs ([`Pacer::set_budget_rate`]). Each run reserves the next free moment and sleeps until
/// it; an idle pool does not save up runs for a burst.
pub struct Pacer {
    fixed: Option<Duration>,
    /// The budget's interval between runs in nanoseconds; 0 = none.
    budget_ns: AtomicU64,
    next: Mutex<Instant>,
    runs: AtomicU64,
}

impl Pacer {
    /// At most `per_s` runs a second; 0 (or less) is no fixed limit.
    pub fn new(per_s: f64) -> Pacer {
        Pacer {
            fixed: interval_of(per_s),
            budget_ns: AtomicU64::new(0),
            next: Mutex::new(Instant::now()),
            runs: AtomicU64::new(0),
        }
    }

    /// Sets the rate the CPU budget allows (`None`: no budget limit); the fixed rate still holds.
    pub fn set_budget_rate(&self, per_s: Option<f64>) {
        let ns = per_s
            .and_then(interval_of)
            .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64);
        self.budget_ns.store(ns, Ordering::Relaxed);
    }

    /// Detector runs granted so far (a batch counts each picture).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// The interval between runs now: the longer of the fixed one and the budget's.
    fn interval(&self) -> Option<Duration> {
        let budget = match self.budget_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        };
        self.fixed.max(budget)
    }

    /// Reserves the next run's moment and waits for it.
    fn wait(&self) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let Some(interval) = self.interval() else {
            return;
        };
        let now = Instant::now();
        let start = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let start = (*next).max(now);
            *next = start + interval;
            start
        };
        std::thread::sleep(start.saturating_duration_since(now));
    }

    /// Counts `runs` more runs against the budget without waiting (the rest of a batch).
    fn charge(&self, runs: u32) {
        self.runs.fetch_add(u64::from(runs), Ordering::Relaxed);
        if let Some(interval) = self.interval() {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *next += interval * runs;
        }
    }
}

/// The interval between runs at `per_s` a second; `None` for 0, less, or not finite.
fn interval_of(per_s: f64) -> Option<Duration> {
    (per_s > 0.0 && per_s.is_finite()).then(|| Duration::from_secs_f64(1.0 / per_s))
}

/// The running detect workers.
pub struct DetectPool {
    threads: Vec<JoinHandle<()>>,
    input: Arc<LatestSlots<DecodedFrame>>,
}

impl DetectPool {
    /// Starts one worker thread per detector, together running at most as often as `pacer`
    /// allows. `zones` holds each camera slot's zones (changed by a reload while the workers
    /// run).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        detectors: Vec<Detector>,
        input: Arc<LatestSlots<DecodedFrame>>,
        zones: Arc<SlotTable<Arc<Vec<Polygon>>>>,
        sink: Arc<dyn DetectionSink>,
        metrics: DetectMetrics,
        cameras: Arc<SlotTable<Arc<CameraMetrics>>>,
        max_batch: usize,
        pacer: Arc<Pacer>,
    ) -> DetectPool {
        let threads = detectors
            .into_iter()
            .enumerate()
            .map(|(i, detector)| {
                let (input, zones, sink) = (input.clone(), zones.clone(), sink.clone());
                let (metrics, cameras, pacer) = (metrics.clone(), cameras.clone(), pacer.clone());
                std::thread::Builder::new()
                    .name(format!("detect-{i}"))
                    .spawn(move || {
                        let shared = Shared {
                            input: &input,
                            zones: &zones,
                            sink: &*sink,
                            metrics: &metrics,
                            cameras: &cameras,
                            pacer: &pacer,
                        };
                        let mut detector = detector;
                        crate::restart::run_restarting("detect", &metrics.panics, || {
                            work(&mut detector, &shared, max_batch)
                        })
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

/// What the workers share.
struct Shared<'a> {
    input: &'a LatestSlots<DecodedFrame>,
    zones: &'a SlotTable<Arc<Vec<Polygon>>>,
    sink: &'a dyn DetectionSink,
    metrics: &'a DetectMetrics,
    cameras: &'a SlotTable<Arc<CameraMetrics>>,
    pacer: &'a Pacer,
}

fn work(detector: &mut Detector, shared: &Shared<'_>, max_batch: usize) {
    let Shared {
        input,
        zones,
        sink,
        metrics,
        cameras,
        pacer,
    } = *shared;
    let class_counters: Vec<_> = detector
        .info()
        .class_names
        .iter()
        .map(|n| metrics.detections.with_label_values(&[n]))
        .collect();
    let mut batch = Vec::with_capacity(max_batch.max(2));
    loop {
        // The budget's next moment first, so the picture taken then is the newest one.
        pacer.wait();
        let Some(first) = input.take(None) else {
            break;
        };
        // As many pictures as one run takes with this one: never pretend to batch a
        // fixed-batch model.
        let room = detector.pictures_per_run((first.1.width(), first.1.height()), max_batch);
        batch.push(first);
        while batch.len() < room {
            match input.try_take() {
                Some(next) => batch.push(next),
                None => break,
            }
        }
        if batch.len() > 1 {
            // The rest of a batch counts against the budget of the runs after it.
            pacer.charge(batch.len() as u32 - 1);
        }
        let frames: Vec<&DecodedFrame> = batch.iter().map(|(_, f)| f).collect();
        let zones_held: Vec<Option<Arc<Vec<Polygon>>>> =
            batch.iter().map(|(l, _)| zones.get(l.camera())).collect();
        let frame_zones: Vec<&[Polygon]> = zones_held
            .iter()
            .map(|z| z.as_deref().map(Vec::as_slice).unwrap_or(&[]))
            .collect();
        let result = detector.detect_many(&frames, &frame_zones);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pacer_spaces_runs_and_does_not_save_up_while_idle() {
        let pacer = Pacer::new(50.0);
        let t0 = Instant::now();
        for _ in 0..5 {
            pacer.wait();
        }
        // Five runs at 50/s: the first at once, the fifth 80 ms later.
        assert!(
            t0.elapsed() >= Duration::from_millis(75),
            "{:?}",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
        // Idle for 200 ms: the next run is not followed by a burst of saved-up ones.
        let t1 = Instant::now();
        pacer.wait();
        pacer.wait();
        assert!(
            t1.elapsed() >= Duration::from_millis(15),
            "{:?}",
            t1.elapsed()
        );
        // No limit: nothing to wait for.
        assert!(Pacer::new(0.0).interval().is_none());
        assert!(Pacer::new(f64::INFINITY).interval().is_none());
        assert_eq!(pacer.runs(), 7);
    }

    #[test]
    fn the_budget_rate_slows_a_pacer_but_never_speeds_up_its_fixed_rate() {
        let pacer = Pacer::new(0.0);
        pacer.set_budget_rate(Some(4.0));
        assert_eq!(pacer.interval(), Some(Duration::from_millis(250)));
        pacer.set_budget_rate(None);
        assert_eq!(pacer.interval(), None);
        let fixed = Pacer::new(2.0);
        fixed.set_budget_rate(Some(10.0));
        assert_eq!(fixed.interval(), Some(Duration::from_millis(500)));
        fixed.set_budget_rate(Some(1.0));
        assert_eq!(fixed.interval(), Some(Duration::from_secs(1)));
        fixed.charge(3);
        assert_eq!(fixed.runs(), 3);
    }
}
