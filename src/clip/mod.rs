//! Evidence clips: each camera's recent encoded video is kept in a ring ([`ring::ClipRing`],
//! pushed by ingest, bounded in seconds and bytes); for each raised incident the pre-event part
//! is taken from the ring at once, the post-event part once it has been received, and together
//! they are written as an MP4 ([`mux::mp4_of`]) next to the incident's pictures and added to its
//! evidence. So the ring only needs the pre-event seconds and a GOP, not the post-event ones too.
//! For a camera analysed on its sub-stream the ring holds the main stream, and the event picture
//! is decoded from it on demand ([`ClipRecorder::picture_at`]).
//!
//! A raised incident's clip shows the act: it starts `before_put_down_s` before the object was
//! first seen, some `dwell_s` before the alert. While an object is pending, its camera's ring
//! keeps everything from that moment on ([`ClipRecorder::keep_act_from`]), what outgrows its memory
//! in a file ([`ring::ActSpill`]); when the object is raised the clip takes it, when it is taken
//! back the ring lets it go.

pub mod mux;
pub mod ring;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info};
use uuid::Uuid;

use crate::codec::EncodedFrame;
use crate::decode::DecodedFrame;
use crate::store::EvidenceFile;
use ring::{ActSpill, ClipFrame, ClipRing};

/// Writes incident clips.
pub struct ClipRecorder {
    /// One ring per camera, indexed like the pipeline's camera slots.
    pub rings: Arc<[Arc<ClipRing>]>,
    /// Records the clip in the incident's evidence (after the incident's own event): the
    /// recording stage in the service.
    pub recording: Arc<dyn ClipSink>,
    /// The storage directory.
    pub storage_dir: PathBuf,
    /// Seconds before the event.
    pub pre_s: f64,
    /// Seconds before the object was first seen (its put-down) at the start of a raised
    /// incident's clip, as far as the ring kept them.
    pub before_put_down_s: f64,
    /// Seconds after the event.
    pub post_s: f64,
    /// Counts clips that could not be written (`dumpwatch_evidence_errors_total`).
    pub errors: prometheus::IntCounter,
    /// The runtime the clip tasks run on (requests come from detector threads).
    pub runtime: tokio::runtime::Handle,
    /// Cancelled at shutdown: clips still waiting for their post-event seconds are written with
    /// what has been received.
    pub flush: tokio_util::sync::CancellationToken,
    /// The clip tasks, for [`ClipRecorder::flush`] to wait on.
    pub pending: tokio_util::task::TaskTracker,
}

/// What a clip is for.
#[derive(Clone, Debug)]
pub struct ClipRequest {
    /// Camera slot.
    pub camera: usize,
    /// Camera id (directory name).
    pub camera_id: String,
    /// The incident.
    pub incident: Uuid,
    /// The event's time, unix seconds.
    pub at: f64,
    /// When the incident's objects were first seen (put down), unix seconds.
    pub appeared_at: f64,
    /// Picture size of the analysed stream; the clip takes its own from its first keyframe (a
    /// camera analysed on its sub-stream records its main stream).
    pub size: (u32, u32),
}

/// Decodes `frames` (from a keyframe on, in stream order) and returns the last one's picture
/// ([`crate::decode::decode_last`]).
fn decode_last(frames: &[ClipFrame]) -> Result<DecodedFrame, String> {
    let units = frames
        .iter()
        .map(|f| EncodedFrame {
            data: f.data.clone(),
            keyframe: f.keyframe,
            pts_s: f.pts_s,
            captured_at: std::time::UNIX_EPOCH + Duration::from_secs_f64(f.at.max(0.0)),
            received: std::time::Instant::now(),
            seq: 0,
            all_frames: true,
            codec: f.codec,
        })
        .collect();
    crate::decode::decode_last(0, units).map_err(|e| {
        format!(
            "cannot decode the recorded video ({} access units): {e}",
            frames.len()
        )
    })
}

impl ClipRecorder {
    /// Rings that keep enough for `pre_s` before an event (and the seconds it takes to decide
    /// it), and for `before_put_down_s` before an object found now, at most `max_bytes` each in
    /// memory; while an object is pending, what outgrows that goes to a file of at most
    /// `act_max_bytes` per camera in `act_dir` (none: not kept).
    pub fn rings(
        cameras: usize,
        (pre_s, before_put_down_s): (f64, f64),
        max_bytes: usize,
        act: Option<(&std::path::Path, u64)>,
    ) -> Arc<[Arc<ClipRing>]> {
        // The pre window is taken when the event is decided; a GOP of margin (up to 5 s) lets
        // the clip start at the keyframe before it. An object is found up to 10 s after it was
        // put down (it must settle into the background first, and be seen by a detection).
        let keep_s = pre_s.max(before_put_down_s + 10.0) + 5.0;
        (0..cameras)
            .map(|slot| {
                let spill = act.map(|(dir, max_bytes)| ActSpill {
                    path: dir.join(format!("{slot}.video")),
                    max_bytes,
                });
                Arc::new(ClipRing::with_spill(keep_s, max_bytes, spill))
            })
            .collect()
    }

    /// Camera `camera`'s earliest pending object was first seen at `appeared_at` (unix seconds),
    /// or none is pending: its ring keeps the video from `before_put_down_s` before it on, for
    /// the clip should it be raised.
    pub fn keep_act_from(&self, camera: usize, appeared_at: Option<f64>) {
        if let Some(ring) = self.rings.get(camera) {
            ring.keep_from(appeared_at.map(|a| a - self.before_put_down_s));
        }
    }

    /// When `req`'s clip starts: `pre_s` before the event, or `before_put_down_s` before the
    /// put-down if that is earlier.
    fn start_of(&self, req: &ClipRequest) -> f64 {
        (req.at - self.pre_s).min(req.appeared_at - self.before_put_down_s)
    }

    /// The picture of camera `camera`'s recorded stream at `at` (unix seconds): the ring's frames
    /// from the keyframe before `at` up to `at`, decoded now. For a camera analysed on its
    /// sub-stream this is the main stream's picture, at its full resolution. Costs up to a GOP
    /// of decoding (tenths of a second at 1080p); called once per incident event.
    pub fn picture_at(&self, camera: usize, at: f64) -> Result<DecodedFrame, String> {
        let ring = self
            .rings
            .get(camera)
            .ok_or_else(|| format!("no clip ring for camera slot {camera}"))?;
        let frames = ring.window(at, at);
        if frames.is_empty() {
            return Err(format!("no recorded video at {at:.1}"));
        }
        decode_last(&frames)
    }

    /// Writes the clip of `req` once its post-event seconds have arrived (in the background).
    /// The pre-event frames are taken from the ring now.
    pub fn request(self: &Arc<Self>, req: ClipRequest) {
        let me = self.clone();
        let head = self.rings.get(req.camera).map(|ring| {
            // The post-event frames must still be there when they are taken, busy or not.
            ring.hold_until(req.at + self.post_s + 1.0);
            ring.window_of(self.start_of(&req), f64::MAX)
        });
        self.pending.spawn_on(async move {
            let wait = req.at + me.post_s + 0.5 - crate::clock::unix_now();
            if wait > 0.0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
                    // Shutting down: write what has arrived (a shorter clip beats none).
                    _ = me.flush.cancelled() => {}
                }
            }
            let worker = me.clone();
            let r = tokio::task::spawn_blocking(move || worker.write(&req, head)).await;
            if let Ok(Err(e)) | Err(e) = r.map_err(|e| e.to_string()) {
                error!(error = %e, "cannot write an incident clip; the incident goes on without it");
                me.errors.inc();
            }
        }, &self.runtime);
    }

    /// Writes every clip still waiting, with the video received so far, and waits for them
    /// (shutdown, after the cameras have stopped).
    pub async fn flush(&self) {
        self.flush.cancel();
        self.pending.close();
        self.pending.wait().await;
    }

    /// Writes the clip: `head` (the connection and frames taken at the request) and what the
    /// ring received after it, up to the end of the post-event window.
    fn write(&self, req: &ClipRequest, head: Option<(u64, Vec<ClipFrame>)>) -> Result<(), String> {
        let ring = self
            .rings
            .get(req.camera)
            .ok_or_else(|| format!("no clip ring for camera slot {}", req.camera))?;
        let (generation, mut frames) = head.unwrap_or_default();
        let to = req.at + self.post_s;
        frames.retain(|f| f.at <= to);
        let after = frames.last().map_or(f64::NEG_INFINITY, |f| f.at);
        if frames.is_empty() {
            frames = ring.window(self.start_of(req), to);
        } else {
            frames.extend(ring.after(generation, after, to));
        }
        if frames.is_empty() {
            return Err(format!(
                "camera {}: no video kept around {:.1} (reconnected?)",
                req.camera_id, req.at
            ));
        }
        let codec = frames
            .iter()
            .find(|f| f.keyframe)
            .map_or(crate::codec::VideoCodec::H264, |f| f.codec);
        // The clip's own size (the main stream's, for a camera analysed on its sub-stream).
        let first_gop: Vec<ClipFrame> = frames
            .iter()
            .skip_while(|f| !f.keyframe)
            .take(1)
            .cloned()
            .collect();
        let size = decode_last(&first_gop).map_or(req.size, |p| (p.width(), p.height()));
        let bytes = mux::mp4_of(codec, &frames, size.0, size.1)
            .map_err(|e| format!("camera {}: {e}", req.camera_id))?;
        let rel = PathBuf::from("evidence")
            .join(&req.camera_id)
            .join(req.incident.to_string())
            .join("clip.mp4");
        let path = self.storage_dir.join(&rel);
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // On disk before its row is recorded.
            crate::durable::write(&path, &bytes)?;
            // When the clip starts and ends (arrival times): `export-feedback` places the
            // incident in it.
            let span = ClipSpan {
                start: frames[0].at,
                end: frames[frames.len() - 1].at,
                frames: frames.len(),
                appeared_at: Some(req.appeared_at),
                raised_at: Some(req.at),
            };
            std::fs::write(
                path.with_file_name(CLIP_SPAN_FILE),
                serde_json::to_vec(&span).expect("plain data"),
            )
        };
        write().map_err(|e| format!("{}: {e}", path.display()))?;
        let file = EvidenceFile {
            role: "clip".into(),
            path: rel.to_string_lossy().into_owned(),
            content_type: "video/mp4".into(),
            sha256: crate::hashing::sha256_hex(&bytes),
            bytes: bytes.len() as u64,
        };
        self.recording
            .clip_written(&req.camera_id, req.incident, file);
        info!(camera = %req.camera_id, incident = %req.incident, frames = frames.len(),
              bytes = bytes.len(), "incident clip written");
        Ok(())
    }
}

/// Where a written clip's evidence row goes.
pub trait ClipSink: Send + Sync {
    /// Takes the clip file of `incident` (camera `camera_id`), written and synced.
    fn clip_written(&self, camera_id: &str, incident: uuid::Uuid, file: EvidenceFile);
}

/// Directory under the storage directory where rings keep pending objects' put-downs that
/// outgrew their memory (a file per camera slot, emptied when nothing is pending).
pub const ACT_DIR: &str = "pending-act";

/// Name of the file next to `clip.mp4` that says when the clip starts and ends.
pub const CLIP_SPAN_FILE: &str = "clip.json";

/// When an evidence clip starts and ends, unix seconds of arrival of its first and last frame.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClipSpan {
    /// First frame (a keyframe).
    pub start: f64,
    /// Last frame.
    pub end: f64,
    /// Frames in the clip.
    pub frames: usize,
    /// When the incident's objects were first seen (put down); absent in clips of older
    /// versions.
    #[serde(default)]
    pub appeared_at: Option<f64>,
    /// When the incident was raised; absent in clips of older versions.
    #[serde(default)]
    pub raised_at: Option<f64>,
}
