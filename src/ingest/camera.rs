//! One camera's ingest task: connect, stream, and on any failure back off and reconnect, for as
//! long as the service runs. The RTSP reader is always polled: frames go to the camera's
//! latest-value slot, which never blocks, so back-pressure never reaches the socket.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::IngestError;
use super::backoff::Backoff;
use super::rtsp::{ConnectOptions, EncodedFrame, RtspStream};
use super::status::{CameraState, StatusBoard};
use crate::config::{DecodeMode, IngestConfig};
use crate::metrics::{CameraMetrics, DropReason};
use crate::redact::Redacted;
use crate::slots::LatestSlots;

/// Everything one camera task needs.
pub struct CameraTask {
    /// Index of the camera in the status board and slots.
    pub index: usize,
    /// Camera id (for logs).
    pub id: String,
    /// Where and how to connect.
    pub connect: ConnectOptions,
    /// Timeouts and backoff.
    pub ingest: IngestConfig,
    /// Which frames go on to the decoder.
    pub mode: DecodeMode,
    /// Keyframe mode: least stream time between keyframes handed to the decoder (0 = all).
    pub min_keyframe_interval_s: f64,
    /// The camera's sampler: while it wants every frame, keyframe mode forwards P-frames too
    /// (from the next keyframe on). `None`: keyframes only.
    pub sampling: Option<Arc<crate::analyze::sampling::SharedSampler>>,
    /// Keeps every frame of the last seconds for incident clips, when set.
    pub clip_ring: Option<Arc<crate::clip::ring::ClipRing>>,
    /// Shared camera status.
    pub status: Arc<StatusBoard>,
    /// This camera's metric handles.
    pub metrics: CameraMetrics,
    /// The decoder's input slots.
    pub output: Arc<LatestSlots<EncodedFrame>>,
    /// Delay before the first connect (start-up spreading).
    pub start_delay: Duration,
}

impl CameraTask {
    /// Runs until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let ing = &self.ingest;
        let mut backoff = Backoff::new(
            Duration::from_secs_f64(ing.backoff_initial_s),
            Duration::from_secs_f64(ing.backoff_max_s),
        );
        let stable_after = Duration::from_secs_f64(ing.stable_after_s);
        if !self.start_delay.is_zero() && sleep_or_cancel(self.start_delay, &cancel).await {
            return self.stopped();
        }
        let mut first = true;
        loop {
            if !first {
                self.metrics.reconnects.inc();
                self.status.update(self.index, |s| s.reconnects += 1);
            }
            first = false;
            self.status.set_state(self.index, CameraState::Connecting);
            let mut streaming_since = None;
            let result = tokio::select! {
                r = self.run_once(&mut streaming_since) => r,
                _ = cancel.cancelled() => break,
            };
            self.metrics.up.set(0);
            let err = result.err().unwrap_or(IngestError::Ended);
            if streaming_since.is_some_and(|t: Instant| t.elapsed() >= stable_after) {
                backoff.reset();
            }
            let delay = if err.is_config_problem() {
                // An operator must act (codec, credentials, path): retry slowly, not at 1 s.
                Duration::from_secs_f64(ing.backoff_max_s)
            } else {
                backoff.next_delay(&mut rand::rng())
            };
            let state = match err {
                IngestError::UnsupportedCodec { .. } => CameraState::UnsupportedCodec,
                _ => CameraState::BackingOff,
            };
            warn!(camera = %self.id, url = %Redacted(&self.connect.url), error = %err,
                  retry_in_s = delay.as_secs_f64(), "camera stream failed");
            self.status.update(self.index, |s| {
                s.last_error = Some(err.to_string());
                s.last_error_at = Some(SystemTime::now());
            });
            self.status.set_state(self.index, state);
            if sleep_or_cancel(delay, &cancel).await {
                break;
            }
        }
        self.stopped();
    }

    fn stopped(&self) {
        self.metrics.up.set(0);
        self.status.set_state(self.index, CameraState::Stopped);
    }

    /// One connection: returns when it fails or ends. Sets `streaming_since` at the first frame.
    async fn run_once(&self, streaming_since: &mut Option<Instant>) -> Result<(), IngestError> {
        let mut stream = RtspStream::connect(&self.connect, Some(&self.metrics)).await?;
        let info = stream.info().clone();
        info!(camera = %self.id, codec = %info.codec, transport = %info.transport,
              resolution = ?info.resolution, "camera connected");
        self.status.update(self.index, |s| {
            s.codec = Some(info.codec.clone());
            s.codec_string = info.rfc6381.clone();
            s.resolution = info.resolution;
            s.transport = Some(info.transport.to_string());
        });
        self.status.set_state(self.index, CameraState::Streaming);
        self.metrics.up.set(1);
        // Timestamps restart with the connection: clips never span two.
        if let Some(ring) = &self.clip_ring {
            ring.clear();
        }

        let frame_timeout = self.ingest.frame_timeout();
        // After every (re)connect the decoder needs a keyframe: a client that joins mid-GOP gets
        // P-frames first, which reference pictures it never saw.
        let mut synced = false;
        // Stream time of the last keyframe handed on (timestamps restart with each connection).
        let mut last_keyframe_pts: Option<f64> = None;
        let mut all_frames = false;
        loop {
            let mut frame = match tokio::time::timeout(frame_timeout, stream.next_frame()).await {
                Err(_) => {
                    return Err(IngestError::Stalled {
                        after: frame_timeout,
                    });
                }
                Ok(r) => r?.ok_or(IngestError::Ended)?,
            };
            streaming_since.get_or_insert_with(Instant::now);
            self.metrics.received.inc();
            if let Some(ring) = &self.clip_ring {
                ring.push(&frame, crate::decode::unix_seconds(frame.captured_at));
            }
            let keyframe = frame.keyframe;
            self.status.update(self.index, |s| {
                s.count_frame(keyframe, frame.captured_at);
                if keyframe && s.resolution.is_none() {
                    s.resolution = stream.info().resolution;
                }
            });
            if !synced {
                if !keyframe {
                    self.metrics.dropped(DropReason::BeforeKeyframe).inc();
                    continue;
                }
                debug!(camera = %self.id, "first keyframe");
                synced = true;
            }
            if self.mode != DecodeMode::Keyframes && keyframe {
                self.status.update(self.index, |s| s.decode = "all");
            }
            if self.mode == DecodeMode::Keyframes {
                // An active camera gets every frame, from a keyframe on (P-frames need it).
                if keyframe {
                    all_frames = self.sampling.as_ref().is_some_and(|s| s.wants_all_frames());
                    self.status.update(self.index, |s| {
                        s.decode = if all_frames { "active" } else { "idle" };
                    });
                }
                // Half a frame of tolerance, so a 2 s GOP with a 4 s interval decodes every other
                // keyframe rather than every third.
                let too_soon = last_keyframe_pts
                    .is_some_and(|last| frame.pts_s - last < self.min_keyframe_interval_s - 0.02);
                if !all_frames && (!keyframe || too_soon) {
                    self.metrics.skipped.inc();
                    continue;
                }
                if keyframe {
                    last_keyframe_pts = Some(frame.pts_s);
                }
                frame.all_frames = all_frames;
            }
            if self.output.put(self.index, frame).is_some() {
                self.metrics.dropped(DropReason::DecodeBusy).inc();
            }
        }
    }
}

/// Sleeps; returns true if cancelled first.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}
