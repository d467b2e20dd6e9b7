//! One camera's ingest task: connect, stream, and on any failure back off and reconnect, for as
//! long as the service runs. The RTSP reader is always polled: frames go to the camera's
//! latest-value slot, which never blocks, so back-pressure never reaches the socket.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::IngestError;
use super::backoff::Backoff;
use super::policy::{AccessUnit, Demand, FramePolicy, PolicyConfig, Skip, Verdict};
use super::rtsp::{ConnectOptions, RtspStream};
use super::status::{CameraState, StatusBoard};
use crate::config::{DecodeMode, IngestConfig};
use crate::decode::queue::{FrameRun, Queued};
use crate::metrics::{CameraMetrics, DropReason};
use crate::redact::Redacted;
use crate::slots::{LatestSlots, Priority};

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
    /// Which frames go on to the decoder (the idle refresh comes from the sampler).
    pub policy: PolicyConfig,
    /// The camera's sampler: while it wants every frame, keyframe mode forwards P-frames too
    /// (from the next keyframe on), and while it is busy the camera's frames are decoded before
    /// idle cameras'. `None`: keyframes only, idle.
    pub sampling: Option<Arc<crate::analyze::sampling::SharedSampler>>,
    /// Keeps every frame of the last seconds for incident clips, when set.
    pub clip_ring: Option<Arc<crate::clip::ring::ClipRing>>,
    /// Shared camera status.
    pub status: Arc<StatusBoard>,
    /// This camera's metric handles.
    pub metrics: CameraMetrics,
    /// The decoder's input slots.
    pub output: Arc<LatestSlots<FrameRun>>,
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
            s.codec = Some(info.codec.name().to_owned());
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
        let mut policy = FramePolicy::new(self.policy_config());
        let mut decode_state = "";
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
            let keyframe = frame.keyframe;
            let at = crate::clock::unix_seconds(frame.captured_at);
            let (demand, busy) = match &self.sampling {
                Some(s) => (
                    Demand {
                        all_frames: s.wants_all_frames(),
                        wanted_at: s.wanted_at(),
                    },
                    s.busy(),
                ),
                None => (Demand::IDLE, false),
            };
            if let Some(ring) = &self.clip_ring {
                ring.push_keeping(&frame, at, busy);
            }
            // A reload's new idle refresh applies from the next GOP.
            if keyframe {
                policy.reconfigure(self.policy_config());
            }
            let unit = AccessUnit {
                keyframe,
                pts_s: frame.pts_s,
                bytes: frame.data.len(),
                at,
            };
            let verdict = policy.offer(unit, demand);
            self.status.update(self.index, |s| {
                s.count_frame(keyframe, frame.captured_at);
                if keyframe && s.resolution.is_none() {
                    s.resolution = stream.info().resolution;
                }
            });
            let all_frames = match verdict {
                Verdict::Skip(Skip::BeforeKeyframe) => {
                    self.metrics.dropped(DropReason::BeforeKeyframe).inc();
                    continue;
                }
                Verdict::Skip(Skip::Idle) => {
                    self.metrics.skipped.inc();
                    continue;
                }
                Verdict::Skip(Skip::Degraded) => {
                    self.metrics.dropped(DropReason::DecodeBusy).inc();
                    continue;
                }
                Verdict::Decode { all_frames } => all_frames,
            };
            if keyframe {
                let state = match (self.policy.mode, all_frames) {
                    (DecodeMode::All, _) => "all",
                    (_, true) => "active",
                    (_, false) => "idle",
                };
                if state != decode_state {
                    decode_state = state;
                    self.status.update(self.index, |s| s.decode = state);
                }
            }
            frame.all_frames = all_frames;
            let priority = if busy { Priority::Busy } else { Priority::Idle };
            match self
                .output
                .update(self.index, priority, |slot| FrameRun::offer(slot, frame))
            {
                Queued::Added => {}
                Queued::Replaced(lost) => {
                    self.metrics
                        .dropped(DropReason::DecodeBusy)
                        .inc_by(lost as u64);
                }
                Queued::Refused(_) => {
                    self.metrics.dropped(DropReason::DecodeBusy).inc();
                    policy.refused();
                }
            }
        }
    }

    /// The frame policy's settings now (the idle refresh follows the sampler's, which a reload
    /// may change).
    fn policy_config(&self) -> PolicyConfig {
        PolicyConfig {
            idle_refresh_s: self
                .sampling
                .as_ref()
                .map_or(self.policy.idle_refresh_s, |s| s.idle_refresh_s()),
            ..self.policy
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
