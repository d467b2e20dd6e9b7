//! `dumpwatch probe`: connect to one camera, measure its stream, save its first keyframe.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::decode::{DecodeError, VideoDecoder};
use crate::ingest::{ConnectOptions, IngestError, RtspStream, StreamInfo};

/// What `probe` found.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// What the session description and parameters say.
    pub info: StreamInfo,
    /// Size of the first decoded keyframe.
    pub decoded_size: (u32, u32),
    /// Frame rate measured from the frames' timestamps.
    pub measured_fps: Option<f64>,
    /// Frames from one keyframe to the next, if two keyframes were seen.
    pub gop_frames: Option<u64>,
    /// Seconds from one keyframe to the next.
    pub gop_seconds: Option<f64>,
    /// Frames before the first keyframe (joining mid-GOP).
    pub frames_before_keyframe: u64,
    /// Time from the start of the connect to the first decoded keyframe.
    pub time_to_first_picture: Duration,
}

/// Why `probe` failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Connecting or streaming failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The first keyframe could not be decoded.
    #[error("the first keyframe could not be decoded: {0}")]
    Decode(#[from] DecodeError),
    /// The JPEG could not be written.
    #[error("cannot write {}: {message}", path.display())]
    Write {
        /// Output file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Connects with `opts`, watches the stream for up to `watch` (stopping early after two
/// keyframes), and writes the first keyframe as JPEG to `out`.
pub async fn probe(
    opts: &ConnectOptions,
    watch: Duration,
    out: Option<&Path>,
) -> Result<ProbeReport, ProbeError> {
    let started = Instant::now();
    let mut stream = RtspStream::connect(opts, None).await?;
    let deadline = tokio::time::Instant::now() + watch;
    let mut decoder = VideoDecoder::new()?;
    let mut before = 0u64;
    let mut first_key: Option<(f64, u64)> = None; // (pts, frame index)
    let mut second_key: Option<(f64, u64)> = None;
    let mut decoded_size = None;
    let mut time_to_first_picture = Duration::ZERO;
    let mut frames = 0u64;
    let (mut first_pts, mut last_pts) = (None, 0.0);
    while second_key.is_none() {
        let frame = match tokio::time::timeout_at(deadline, stream.next_frame()).await {
            Err(_) if first_key.is_some() => break,
            Err(_) => {
                return Err(IngestError::Timeout {
                    step: "first keyframe",
                    after: watch,
                }
                .into());
            }
            Ok(r) => r?.ok_or(IngestError::Ended)?,
        };
        if first_key.is_none() && !frame.keyframe {
            before += 1;
            continue;
        }
        first_pts.get_or_insert(frame.pts_s);
        last_pts = frame.pts_s;
        if frame.keyframe {
            match first_key {
                None => {
                    first_key = Some((frame.pts_s, frames));
                    let picture = decoder.decode(0, &frame)?;
                    time_to_first_picture = started.elapsed();
                    decoded_size = Some((picture.width(), picture.height()));
                    if let Some(path) = out {
                        write_jpeg(path, &picture.to_rgb())?;
                    }
                }
                Some(_) => second_key = Some((frame.pts_s, frames)),
            }
        }
        frames += 1;
    }
    let measured_fps = first_pts
        .filter(|_| frames > 1)
        .map(|p| (frames - 1) as f64 / (last_pts - p))
        .filter(|f| f.is_finite() && *f > 0.0);
    let (gop_frames, gop_seconds) = match (first_key, second_key) {
        (Some((p1, f1)), Some((p2, f2))) => (Some(f2 - f1), Some(p2 - p1)),
        _ => (None, None),
    };
    Ok(ProbeReport {
        info: stream.info().clone(),
        decoded_size: decoded_size.expect("set with the first keyframe"),
        measured_fps,
        gop_frames,
        gop_seconds,
        frames_before_keyframe: before,
        time_to_first_picture,
    })
}

fn write_jpeg(path: &Path, rgb: &image::RgbImage) -> Result<(), ProbeError> {
    let bytes = crate::api::encode_jpeg(rgb, 90).map_err(|e| ProbeError::Write {
        path: path.into(),
        message: e.to_string(),
    })?;
    std::fs::write(path, bytes).map_err(|e| ProbeError::Write {
        path: path.into(),
        message: e.to_string(),
    })
}
