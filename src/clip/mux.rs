//! Writes access units (Annex B H.264 or H.265) as an MP4 file with libavformat's MP4 muxer:
//! one video track whose sample entry is `avc1` (with `avcC`) or `hvc1` (with `hvcC`), built by
//! the muxer from the first keyframe's parameter sets; the index at the front (`faststart`) so
//! a browser plays the clip while it loads. The only file that names FFmpeg's muxer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ff::ffi;
use ffmpeg_next as ff;

use super::ring::ClipFrame;
use crate::codec::{NalKind, VideoCodec, nal_units, parameter_sets, push_annex_b};

/// Track time base (the RTP clock of H.264 and H.265).
const TIMESCALE: i32 = 90_000;

/// Why a clip could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// No keyframe, or no parameter sets in it.
    #[error("the clip has no keyframe with its parameter sets")]
    NoParameters,
    /// The picture size does not fit MP4's 16-bit fields.
    #[error("picture size {0}x{1} is too large for MP4")]
    TooLarge(u32, u32),
    /// libavformat failed.
    #[error("MP4 muxer: {step}: {message}")]
    Muxer {
        /// What it was doing.
        step: &'static str,
        /// libavformat's message.
        message: String,
    },
}

fn muxer(step: &'static str) -> impl Fn(ff::Error) -> MuxError {
    move |e| MuxError::Muxer {
        step,
        message: e.to_string(),
    }
}

/// Removes a temporary file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh path for a temporary MP4 in the system's temporary directory.
fn temp_path() -> TempFile {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    TempFile(std::env::temp_dir().join(format!("dumpwatch-clip-{}-{n}.mp4", std::process::id())))
}

/// An MP4 of `frames` (from the first keyframe on; frames of another codec are left out) at
/// `width × height`.
pub fn mp4_of(
    codec: VideoCodec,
    frames: &[ClipFrame],
    width: u32,
    height: u32,
) -> Result<Vec<u8>, MuxError> {
    let frames: Vec<&ClipFrame> = frames
        .iter()
        .filter(|f| f.codec == codec)
        .skip_while(|f| !f.keyframe)
        .collect();
    let first = frames.first().ok_or(MuxError::NoParameters)?;
    let mut extradata = Vec::new();
    let sets = parameter_sets(codec, &first.data);
    for kind in codec.parameter_set_kinds() {
        let nal = sets
            .iter()
            .find(|n| codec.nal_kind(n) == *kind)
            .ok_or(MuxError::NoParameters)?;
        push_annex_b(&mut extradata, nal);
    }
    if width > u32::from(u16::MAX) || height > u32::from(u16::MAX) {
        return Err(MuxError::TooLarge(width, height));
    }
    let tmp = temp_path();
    write_file(&tmp.0, codec, &extradata, &frames, width, height)?;
    std::fs::read(&tmp.0).map_err(|e| MuxError::Muxer {
        step: "reading the written file back",
        message: e.to_string(),
    })
}

fn write_file(
    path: &Path,
    codec: VideoCodec,
    extradata: &[u8],
    frames: &[&ClipFrame],
    width: u32,
    height: u32,
) -> Result<(), MuxError> {
    ff::init().map_err(muxer("initialising FFmpeg"))?;
    let mut out = ff::format::output_as(path, "mp4").map_err(muxer("opening the output"))?;
    // SAFETY: a new stream of a context not yet written; its codec parameters are plain fields
    // and an extradata buffer from av_mallocz (owned by the context from then on).
    unsafe {
        let stream = ffi::avformat_new_stream(out.as_mut_ptr(), std::ptr::null());
        if stream.is_null() {
            return Err(MuxError::Muxer {
                step: "adding the video track",
                message: "out of memory".into(),
            });
        }
        (*stream).time_base = ffi::AVRational {
            num: 1,
            den: TIMESCALE,
        };
        let par = (*stream).codecpar;
        (*par).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
        (*par).width = width as i32;
        (*par).height = height as i32;
        let (id, tag) = match codec {
            VideoCodec::H264 => (ffi::AVCodecID::AV_CODEC_ID_H264, *b"avc1"),
            // hvc1 (parameter sets in the sample entry) is what Safari and Chrome play.
            VideoCodec::H265 => (ffi::AVCodecID::AV_CODEC_ID_HEVC, *b"hvc1"),
        };
        (*par).codec_id = id;
        (*par).codec_tag = u32::from_le_bytes(tag);
        let buf = ffi::av_mallocz(extradata.len() + ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize)
            as *mut u8;
        if buf.is_null() {
            return Err(MuxError::Muxer {
                step: "adding the video track",
                message: "out of memory".into(),
            });
        }
        std::ptr::copy_nonoverlapping(extradata.as_ptr(), buf, extradata.len());
        (*par).extradata = buf;
        (*par).extradata_size = extradata.len() as i32;
    }
    let mut options = ff::Dictionary::new();
    options.set("movflags", "+faststart");
    out.write_header_with(options)
        .map_err(muxer("writing the header"))?;
    // The muxer may change the time base it asked for; timestamps follow it.
    let tb = out
        .stream(0)
        .map(|s| s.time_base())
        .unwrap_or(ff::Rational(1, TIMESCALE));
    let ticks = |s: f64| {
        (s * f64::from(tb.denominator()) / f64::from(tb.numerator().max(1))).round() as i64
    };
    let t0 = frames[0].pts_s;
    // The typical frame duration, for the last frame and for timestamps that go backwards.
    let typical = frames
        .windows(2)
        .map(|w| w[1].pts_s - w[0].pts_s)
        .filter(|d| *d > 0.0)
        .fold(f64::INFINITY, f64::min);
    let typical = ticks(if typical.is_finite() { typical } else { 0.1 }).max(1);
    let mut next = 0i64;
    for (i, f) in frames.iter().enumerate() {
        let pts = ticks(f.pts_s - t0).max(next);
        let end = frames
            .get(i + 1)
            .map_or(pts + typical, |n| ticks(n.pts_s - t0));
        let duration = (end - pts).max(1);
        // Access unit delimiters are not used in MP4; the rest goes as the camera sent it.
        let mut data = Vec::with_capacity(f.data.len());
        for nal in nal_units(&f.data) {
            if codec.nal_kind(nal) != NalKind::Delimiter {
                push_annex_b(&mut data, nal);
            }
        }
        let mut packet = ff::Packet::copy(&data);
        packet.set_stream(0);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(pts));
        packet.set_duration(duration);
        if f.keyframe {
            packet.set_flags(ff::codec::packet::Flags::KEY);
        }
        packet
            .write_interleaved(&mut out)
            .map_err(muxer("writing a sample"))?;
        next = pts + duration;
    }
    out.write_trailer().map_err(muxer("writing the index"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_without_parameters_is_refused() {
        let f = ClipFrame {
            data: std::sync::Arc::from(&[0u8, 0, 1, 0x65, 1][..]),
            keyframe: true,
            pts_s: 0.0,
            at: 0.0,
            codec: VideoCodec::H264,
        };
        assert!(matches!(
            mp4_of(VideoCodec::H264, &[f], 64, 48),
            Err(MuxError::NoParameters)
        ));
    }
}
