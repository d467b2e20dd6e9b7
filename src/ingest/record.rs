//! The main stream of a camera analysed on its sub-stream (`analysis_url`): received and kept in
//! the camera's clip ring, never decoded continuously, so an incident's clip and event picture
//! have the main stream's resolution while analysis runs on the cheap sub-stream. Reconnects
//! with backoff like the analysis stream, and reports in the camera's status (`recording`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::IngestError;
use super::backoff::Backoff;
use super::rtsp::{ConnectOptions, RtspStream};
use super::status::{CameraState, RecordingStatus, StatusBoard};
use crate::clip::ring::ClipRing;
use crate::config::IngestConfig;
use crate::metrics::CameraMetrics;
use crate::redact::Redacted;

/// Everything one main-stream recorder needs.
pub struct RecordTask {
    /// Index of the camera in the status board and slots.
    pub index: usize,
    /// Camera id (for logs).
    pub id: String,
    /// The main stream.
    pub connect: ConnectOptions,
    /// Timeouts and backoff.
    pub ingest: IngestConfig,
    /// Where the frames go.
    pub ring: Arc<ClipRing>,
    /// The camera's sampler: while the camera is busy the ring keeps its full seconds, else
    /// nothing (see [`ClipRing::push_keeping`]).
    pub sampling: Option<Arc<crate::analyze::sampling::SharedSampler>>,
    /// Shared camera status.
    pub status: Arc<StatusBoard>,
    /// This camera's metric handles.
    pub metrics: CameraMetrics,
    /// Delay before the first connect (start-up spreading).
    pub start_delay: Duration,
}

impl RecordTask {
    fn report(&self, f: impl FnOnce(&mut RecordingStatus)) {
        self.status.update(self.index, |s| {
            f(s.recording.get_or_insert_with(RecordingStatus::default));
        });
    }

    /// Runs until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let ing = &self.ingest;
        let mut backoff = Backoff::new(
            Duration::from_secs_f64(ing.backoff_initial_s),
            Duration::from_secs_f64(ing.backoff_max_s),
        );
        let stable_after = Duration::from_secs_f64(ing.stable_after_s);
        self.report(|r| r.state = CameraState::Starting);
        if !self.start_delay.is_zero() && sleep_or_cancel(self.start_delay, &cancel).await {
            return;
        }
        loop {
            self.report(|r| r.state = CameraState::Connecting);
            let mut streaming_since = None;
            let result = tokio::select! {
                r = self.run_once(&mut streaming_since) => r,
                _ = cancel.cancelled() => break,
            };
            let err = result.err().unwrap_or(IngestError::Ended);
            if streaming_since.is_some_and(|t: Instant| t.elapsed() >= stable_after) {
                backoff.reset();
            }
            let delay = if err.is_config_problem() {
                Duration::from_secs_f64(ing.backoff_max_s)
            } else {
                backoff.next_delay(&mut rand::rng())
            };
            warn!(camera = %self.id, url = %Redacted(&self.connect.url), error = %err,
                  retry_in_s = delay.as_secs_f64(),
                  "main stream failed: clips and event pictures come from the sub-stream until it is back");
            self.report(|r| {
                r.state = match err {
                    IngestError::UnsupportedCodec { .. } => CameraState::UnsupportedCodec,
                    _ => CameraState::BackingOff,
                };
                r.last_error = Some(err.to_string());
            });
            if sleep_or_cancel(delay, &cancel).await {
                break;
            }
        }
        self.report(|r| r.state = CameraState::Stopped);
    }

    async fn run_once(&self, streaming_since: &mut Option<Instant>) -> Result<(), IngestError> {
        let mut stream = RtspStream::connect(&self.connect, Some(&self.metrics)).await?;
        let info = stream.info().clone();
        info!(camera = %self.id, codec = %info.codec, resolution = ?info.resolution,
              "main stream connected (recorded for clips and event pictures)");
        self.report(|r| {
            r.state = CameraState::Streaming;
            r.codec = Some(info.codec.name().to_owned());
            r.codec_string = info.rfc6381.clone();
            r.resolution = info.resolution;
        });
        // Timestamps restart with the connection: clips never span two.
        self.ring.clear();
        let frame_timeout = self.ingest.frame_timeout();
        loop {
            let frame = match tokio::time::timeout(frame_timeout, stream.next_frame()).await {
                Err(_) => {
                    return Err(IngestError::Stalled {
                        after: frame_timeout,
                    });
                }
                Ok(r) => r?.ok_or(IngestError::Ended)?,
            };
            streaming_since.get_or_insert_with(Instant::now);
            let at = crate::clock::unix_seconds(frame.captured_at);
            let busy = self.sampling.as_ref().is_some_and(|s| s.busy());
            self.ring.push_keeping(&frame, at, busy);
            self.metrics.recorded.inc();
            let resolution = stream.info().resolution;
            self.report(|r| {
                r.frames_received += 1;
                r.resolution = r.resolution.or(resolution);
            });
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
