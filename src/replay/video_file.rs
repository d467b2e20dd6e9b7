//! Reading recorded clips: the H.264 or H.265 track of a video file (MP4, Matroska, MPEG-TS, …,
//! whatever Debian's libavformat reads) as Annex B access units with their presentation times, in
//! decode order — the same form the RTSP ingest hands on, so a clip goes through the same
//! decoder as a live camera. The only file that names FFmpeg's demuxer.

use std::path::{Path, PathBuf};

use ffmpeg_next as ff;

use crate::codec::{DecoderConfig, VideoCodec};

/// Why a clip cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The file could not be opened or is not a video file libavformat reads.
    #[error("{}: cannot open as a video file (MP4, Matroska or MPEG-TS): {message}", path.display())]
    Open {
        /// The clip.
        path: PathBuf,
        /// libavformat's message.
        message: String,
    },
    /// There is no H.264 or H.265 video track.
    #[error("{}: no H.264 or H.265 video track (found: {found}); replay and eval read MP4, Matroska or MPEG-TS files with H.264 or H.265 video: transcode with ffmpeg -c:v libx264", path.display())]
    NoVideo {
        /// The tracks found.
        found: String,
        /// The clip.
        path: PathBuf,
    },
    /// The track's decoder configuration record is malformed.
    #[error("{}: the {codec} track's decoder configuration is malformed: {message}", path.display())]
    Config {
        /// The clip.
        path: PathBuf,
        /// The track's codec.
        codec: VideoCodec,
        /// What is wrong.
        message: String,
    },
    /// A sample could not be read or is malformed.
    #[error("{}: sample {sample}: {message}", path.display())]
    Sample {
        /// The clip.
        path: PathBuf,
        /// 1-based sample number in the video track.
        sample: u32,
        /// What is wrong.
        message: String,
    },
}

/// One access unit of a clip.
#[derive(Clone, Debug)]
pub struct ClipFrame {
    /// Annex B NAL units; keyframes start with the track's parameter sets.
    pub data: Vec<u8>,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// Presentation time in seconds from the start of the clip.
    pub pts_s: f64,
}

/// A clip's video track, read access unit by access unit.
pub struct ClipReader {
    path: PathBuf,
    input: ff::format::context::Input,
    stream: usize,
    time_base: f64,
    /// `Some` for length-prefixed samples (MP4, Matroska); `None` for Annex B (MPEG-TS, raw).
    config: Option<DecoderConfig>,
    read: u32,
    first_pts: Option<i64>,
    /// The track's codec.
    pub codec: VideoCodec,
    /// Width and height of the video, from the track header.
    pub size: (u32, u32),
    /// Duration of the track in seconds (0 when the container does not say).
    pub duration_s: f64,
}

impl ClipReader {
    /// Opens `path` and finds its first H.264 or H.265 track.
    pub fn open(path: &Path) -> Result<ClipReader, ClipError> {
        let open_error = |message: String| ClipError::Open {
            path: path.to_owned(),
            message,
        };
        ff::init().map_err(|e| open_error(e.to_string()))?;
        ff::util::log::set_level(ff::util::log::Level::Fatal);
        if !path.is_file() {
            return Err(open_error("no such file".into()));
        }
        let input = ff::format::input(path).map_err(|e| open_error(e.to_string()))?;
        let mut found = Vec::new();
        let mut chosen = None;
        for stream in input.streams() {
            let par = stream.parameters();
            let codec = match par.id() {
                ff::codec::Id::H264 => Some(VideoCodec::H264),
                ff::codec::Id::HEVC => Some(VideoCodec::H265),
                _ => None,
            };
            match codec {
                Some(c) if chosen.is_none() => chosen = Some((stream.index(), c)),
                _ => found.push(format!("{:?} {:?}", par.medium(), par.id()).to_lowercase()),
            }
        }
        let Some((index, codec)) = chosen else {
            let found = if found.is_empty() {
                "no tracks".to_owned()
            } else {
                found.join(", ")
            };
            return Err(ClipError::NoVideo {
                path: path.to_owned(),
                found,
            });
        };
        let stream = input.stream(index).expect("index of a stream just listed");
        let par = stream.parameters();
        // SAFETY: plain fields of the stream's codec parameters, valid while `input` lives.
        let (extradata, width, height) = unsafe {
            let p = par.as_ptr();
            let extra = if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
            };
            (extra, (*p).width.max(0) as u32, (*p).height.max(0) as u32)
        };
        // A configuration record starts with version 1; Annex B extradata with a start code.
        let config = if extradata.first() == Some(&1) {
            Some(
                DecoderConfig::parse(codec, &extradata).map_err(|e| ClipError::Config {
                    path: path.to_owned(),
                    codec,
                    message: e.to_string(),
                })?,
            )
        } else {
            None
        };
        let tb = stream.time_base();
        let time_base = if tb.denominator() > 0 {
            f64::from(tb.numerator()) / f64::from(tb.denominator())
        } else {
            1.0 / 90_000.0
        };
        let duration_s = if stream.duration() > 0 {
            stream.duration() as f64 * time_base
        } else if input.duration() > 0 {
            input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
        } else {
            0.0
        };
        Ok(ClipReader {
            path: path.to_owned(),
            stream: index,
            time_base,
            config,
            read: 0,
            first_pts: None,
            codec,
            size: (width, height),
            duration_s,
            input,
        })
    }

    /// The next access unit, `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<ClipFrame>, ClipError> {
        let mut packet = ff::Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(None),
                Err(e) => {
                    return Err(ClipError::Sample {
                        path: self.path.clone(),
                        sample: self.read + 1,
                        message: e.to_string(),
                    });
                }
            }
            if packet.stream() != self.stream {
                continue;
            }
            self.read += 1;
            let Some(bytes) = packet.data() else { continue };
            let keyframe = packet.is_key();
            let data = match &self.config {
                Some(config) => {
                    config
                        .to_annex_b(bytes, keyframe)
                        .map_err(|e| ClipError::Sample {
                            path: self.path.clone(),
                            sample: self.read,
                            message: e.to_string(),
                        })?
                }
                None => bytes.to_vec(),
            };
            let pts = packet.pts().or(packet.dts()).unwrap_or(0);
            let first = *self.first_pts.get_or_insert(pts);
            return Ok(Some(ClipFrame {
                data,
                keyframe,
                pts_s: (pts - first) as f64 * self.time_base,
            }));
        }
    }
}
