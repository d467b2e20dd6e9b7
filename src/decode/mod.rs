//! Decode: a small pool of blocking threads turns encoded frames (H.264 or H.265) into pictures
//! with libavcodec ([`VideoDecoder`]).
//!
//! Threads take cameras from the ingest slots (each holding a [`FrameRun`]) busy cameras first,
//! then round-robin ([`LatestSlots`]), and put pictures into the next stage's slots with the
//! camera's priority, counting every picture that a newer one replaces there.
//!
//! - Keyframes decoded alone (an idle camera): each thread owns one decoder that serves every
//!   camera, since each keyframe carries its own parameter sets and references nothing.
//! - Runs of every frame (a busy camera): P-frames reference earlier pictures, so each camera gets
//!   its own decoder (used by one thread at a time: the slots never give a camera to two
//!   workers), made when the camera becomes busy and freed when it is idle again. When frames
//!   were dropped upstream (a gap in the sequence), P-frames are skipped until the next keyframe
//!   instead of decoding garbage.
//! - Every decoded picture is shown to the camera's sampler (scene-change gate, active rate),
//!   which decides whether the detector sees it. A picture it sent to the detector that a newer
//!   one replaced before a detector came to it is still analysed, by the background channel
//!   alone ([`AnalysisSink::analyse_background`]).

pub mod frame;
pub mod kept;
mod libav;
pub mod queue;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::{debug, warn};

pub use frame::DecodedFrame;
pub use kept::{EncodedPicture, KeptPicture, decode_last};
pub use libav::{DecodeError, VideoDecoder, hwaccel_available};
pub use queue::FrameRun;

use crate::analyze::sampling::{Decision, SharedSampler};
use crate::clock::unix_seconds;
use crate::codec::EncodedFrame;
use crate::codec::VideoCodec;
use crate::config::{DecodeMode, HwAccel};
use crate::metrics::{CameraMetrics, DropReason};
use crate::slots::{LatestSlots, Priority, SlotTable};

/// Per-camera decoding state for runs of every frame.
#[derive(Default)]
struct CameraDecoder {
    /// Made on the camera's first run, dropped when it sends keyframes alone again (a 720p
    /// decoder holds several reference pictures: megabytes per camera).
    decoder: Option<VideoDecoder>,
    /// Sequence number of the last frame given to the decoder.
    last_seq: Option<u64>,
    /// The access units given to the decoder since the run's keyframe, that one first: a
    /// picture of the run is kept as these ([`EncodedPicture`]).
    run: Vec<Arc<[u8]>>,
}

/// What the decode threads share.
struct Shared {
    mode: DecodeMode,
    hwaccel: HwAccel,
    input: Arc<LatestSlots<FrameRun>>,
    output: Arc<LatestSlots<DecodedFrame>>,
    cameras: Arc<SlotTable<Arc<CameraMetrics>>>,
    decode_seconds: prometheus::Histogram,
    per_camera: Vec<Mutex<CameraDecoder>>,
    sampling: Option<Sampling>,
}

/// Where a decoded picture goes after the decoder: each camera's sampler decides, and pictures
/// analysed without the detector go to `analysis`.
#[derive(Clone)]
pub struct Sampling {
    /// Each camera slot's sampler.
    pub samplers: Arc<[Arc<SharedSampler>]>,
    /// Takes pictures analysed without the detector; without it, unchanged pictures go to the
    /// detector and replaced ones are dropped.
    pub analysis: Option<Arc<dyn AnalysisSink>>,
}

/// Analyses pictures without running the detector. Both are called from a decode thread and
/// must not block for long.
pub trait AnalysisSink: Send + Sync + 'static {
    /// Takes camera `camera`'s picture that did not change since its last detected one, to be
    /// analysed with that picture's detections ([`Decision::Reuse`]).
    fn analyse_unchanged(&self, camera: usize, picture: DecodedFrame);

    /// Takes camera `camera`'s picture that was waiting for the detector when a newer one
    /// replaced it (the detector had no share for it), for the background channel alone.
    fn analyse_background(&self, camera: usize, picture: DecodedFrame);
}

/// The running decode threads.
pub struct DecodePool {
    threads: Vec<JoinHandle<()>>,
    input: Arc<LatestSlots<FrameRun>>,
}

impl DecodePool {
    /// Starts `threads` decode threads reading `input` and writing `output`, decoding on
    /// `hwaccel` where it can be opened. `cameras` holds the metric handles of each camera index.
    /// A thread that panics is restarted (counted in `panics`).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        threads: usize,
        mode: DecodeMode,
        hwaccel: HwAccel,
        input: Arc<LatestSlots<FrameRun>>,
        output: Arc<LatestSlots<DecodedFrame>>,
        cameras: Arc<SlotTable<Arc<CameraMetrics>>>,
        decode_seconds: prometheus::Histogram,
        panics: prometheus::IntCounter,
        sampling: Option<Sampling>,
    ) -> Result<DecodePool, DecodeError> {
        // Fail at start-up, not in a thread, if the decoder cannot be created at all.
        VideoDecoder::with_hwaccel(hwaccel)?;
        let shared = Arc::new(Shared {
            mode,
            hwaccel,
            input: input.clone(),
            output,
            per_camera: (0..cameras.capacity()).map(|_| Mutex::default()).collect(),
            cameras,
            decode_seconds,
            sampling,
        });
        let threads = (0..threads.max(1))
            .map(|i| {
                let (shared, panics) = (shared.clone(), panics.clone());
                std::thread::Builder::new()
                    .name(format!("decode-{i}"))
                    .spawn(move || {
                        crate::restart::run_restarting("decode", &panics, || decode_loop(&shared))
                    })
                    .expect("spawning a decode thread")
            })
            .collect();
        Ok(DecodePool { threads, input })
    }

    /// Stops taking new frames once the queued ones are decoded, and waits for the threads.
    pub fn shutdown(self) {
        self.input.close();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn decode_loop(shared: &Shared) {
    // Keyframes decoded alone: one decoder serves every camera (each keyframe carries its
    // parameter sets).
    let mut shared_decoder = match VideoDecoder::with_hwaccel(shared.hwaccel) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "decode thread stops: no decoder");
            return;
        }
    };
    while let Some((lease, run)) = shared.input.take(None) {
        let camera = lease.camera();
        // A frame of a camera removed a moment ago.
        let Some(metrics) = shared.cameras.get(camera) else {
            continue;
        };
        let sampler = shared
            .sampling
            .as_ref()
            .and_then(|s| s.samplers.get(camera));
        for frame in &run.frames {
            let started = Instant::now();
            let result = match shared.mode {
                DecodeMode::Keyframes if !frame.all_frames => {
                    if frame.keyframe {
                        release_camera_decoder(&shared.per_camera[camera]);
                    }
                    // Decoded alone: kept later as this keyframe, not its pixels.
                    Some(shared_decoder.decode(camera, frame).map(|p| {
                        if frame.keyframe {
                            p.with_source(EncodedPicture::keyframe(frame.data.clone(), frame.codec))
                        } else {
                            p
                        }
                    }))
                }
                _ => decode_in_order(shared, camera, frame, &metrics),
            };
            match result {
                None => {}
                Some(Ok(picture)) => {
                    shared
                        .decode_seconds
                        .observe(started.elapsed().as_secs_f64());
                    metrics.decoded.inc();
                    hand_on(shared, camera, picture, sampler.map(|s| &**s), &metrics);
                }
                // Parameter sets alone, or a frame the decoder buffers: not a loss.
                Some(Err(DecodeError::NoPicture { .. })) => {}
                Some(Err(e @ DecodeError::Init { .. })) => {
                    metrics.dropped(DropReason::DecodeError).inc();
                    warn!(camera, error = %e, "frame lost: the decoder cannot start");
                }
                Some(Err(e)) => {
                    metrics.dropped(DropReason::DecodeError).inc();
                    debug!(camera, error = %e, "access unit skipped");
                }
            }
        }
        drop(lease);
    }
}

/// Shows a decoded picture to the camera's sampler and hands it to the detector if the sampler
/// wants it (busy cameras first; the picture it replaces goes to the background channel), or
/// analyses it with the camera's last detections.
fn hand_on(
    shared: &Shared,
    camera: usize,
    picture: DecodedFrame,
    sampler: Option<&SharedSampler>,
    metrics: &CameraMetrics,
) {
    let mut priority = Priority::Idle;
    let analysis = shared.sampling.as_ref().and_then(|s| s.analysis.as_ref());
    if let Some(sampler) = sampler {
        // The scene-change gate and the active rate: most pictures of an idle camera never
        // reach the detector.
        let now = unix_seconds(picture.captured_at);
        let decision = picture
            .grey()
            .map_or(Decision::Unchanged, |g| sampler.decide(now, &g));
        match decision {
            Decision::Detect => {}
            Decision::Reuse => {
                if let Some(sink) = analysis {
                    sink.analyse_unchanged(camera, picture);
                    return;
                }
            }
            Decision::TooSoon | Decision::Unchanged => {
                metrics.skipped.inc();
                return;
            }
        }
        if sampler.busy() {
            priority = Priority::Busy;
        }
    }
    if let Some(replaced) = shared.output.put_as(camera, picture, priority) {
        metrics.dropped(DropReason::Superseded).inc();
        if let Some(sink) = analysis {
            sink.analyse_background(camera, replaced);
        }
    }
}

/// Frees a camera's own decoder (it sends keyframes alone again).
fn release_camera_decoder(state: &Mutex<CameraDecoder>) {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    st.decoder = None;
    st.last_seq = None;
    st.run = Vec::new();
}

/// Width of the grey picture the gate and the analyzer work on.
pub const GREY_WIDTH: u32 = 160;

/// A run of every frame: decodes with the camera's own decoder, skipping P-frames after a gap.
fn decode_in_order(
    shared: &Shared,
    camera: usize,
    frame: &EncodedFrame,
    metrics: &CameraMetrics,
) -> Option<Result<DecodedFrame, DecodeError>> {
    let mut st = shared.per_camera[camera]
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let in_order = st.last_seq.is_some_and(|s| frame.seq == s + 1);
    if !frame.keyframe && !in_order {
        // A reference picture is missing: wait for the next keyframe.
        st.last_seq = None;
        st.run.clear();
        metrics.dropped(DropReason::DecodeBusy).inc();
        return None;
    }
    if frame.keyframe && !in_order && frame.codec == VideoCodec::H265 {
        // Frames were skipped before this H.265 keyframe (the rest of a GOP not needed, or a
        // gap): a fresh decoder. A CRA keyframe does not empty the decoder's picture buffer, and
        // a decoder that missed the frames before it held about 4× the memory (libavcodec 5.1,
        // docs/performance.md); opening one costs far less than a frame. An H.264 IDR empties it
        // itself.
        st.decoder = None;
    }
    st.last_seq = Some(frame.seq);
    if frame.keyframe {
        st.run.clear();
    }
    st.run.push(frame.data.clone());
    let CameraDecoder { decoder, run, .. } = &mut *st;
    let decoder = match decoder {
        Some(d) => d,
        None => match VideoDecoder::with_hwaccel(shared.hwaccel) {
            Ok(d) => decoder.insert(d),
            Err(e) => return Some(Err(e)),
        },
    };
    let result = decoder.decode(camera, frame).map(|picture| {
        // The picture of the unit just given (not one held back for reordering) is the last
        // picture of the run so far: it decodes again from the run's units.
        if picture.pts_s != frame.pts_s {
            return picture;
        }
        match EncodedPicture::run(run, frame.codec, picture.byte_size()) {
            Some(source) => picture.with_source(source),
            None => picture,
        }
    });
    if result.is_err() && !matches!(result, Err(DecodeError::NoPicture { .. })) {
        st.last_seq = None;
        st.run.clear();
    }
    Some(result)
}
