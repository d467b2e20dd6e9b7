//! Reading recorded clips: the H.264 track of an MP4 file as Annex B access units with their
//! presentation times, in decode order — the same form the RTSP ingest hands on, so a clip goes
//! through the same decoder as a live camera. The only file that names the `mp4` crate.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Why a clip cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The file could not be opened.
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        /// The clip.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a readable MP4.
    #[error("{}: not a readable MP4 file: {message}", path.display())]
    Format {
        /// The clip.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// There is no H.264 video track.
    #[error("{}: no H.264 video track (found: {found}); transcode with ffmpeg -c:v libx264", path.display())]
    NoH264 {
        /// The clip.
        path: PathBuf,
        /// The tracks found.
        found: String,
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
    /// Annex B NAL units; keyframes start with the track's SPS and PPS.
    pub data: Vec<u8>,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// Presentation time in seconds from the start of the clip.
    pub pts_s: f64,
}

/// A clip's H.264 track, read sample by sample.
pub struct ClipReader {
    path: PathBuf,
    reader: mp4::Mp4Reader<BufReader<File>>,
    track: u32,
    timescale: f64,
    samples: u32,
    next: u32,
    parameter_sets: Vec<u8>,
    length_size: usize,
    first_pts: Option<i64>,
    /// Width and height of the video, from the track header.
    pub size: (u32, u32),
    /// Duration of the track in seconds.
    pub duration_s: f64,
}

impl ClipReader {
    /// Opens `path` and finds its H.264 track.
    pub fn open(path: &Path) -> Result<ClipReader, ClipError> {
        let file = File::open(path).map_err(|source| ClipError::Open {
            path: path.to_owned(),
            source,
        })?;
        let size = file
            .metadata()
            .map_err(|source| ClipError::Open {
                path: path.to_owned(),
                source,
            })?
            .len();
        let format = |e: mp4::Error| ClipError::Format {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let reader = mp4::Mp4Reader::read_header(BufReader::new(file), size).map_err(format)?;
        let mut found = Vec::new();
        let mut chosen = None;
        let mut ids: Vec<u32> = reader.tracks().keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let t = &reader.tracks()[&id];
            match t.media_type() {
                Ok(mp4::MediaType::H264) if chosen.is_none() => chosen = Some(id),
                Ok(m) => found.push(m.to_string()),
                Err(_) => found.push(
                    t.box_type()
                        .map(|b| b.to_string())
                        .unwrap_or_else(|_| "unknown".into()),
                ),
            }
        }
        let Some(track) = chosen else {
            let found = if found.is_empty() {
                "no tracks".to_owned()
            } else {
                found.join(", ")
            };
            return Err(ClipError::NoH264 {
                path: path.to_owned(),
                found,
            });
        };
        let t = &reader.tracks()[&track];
        let sps = t.sequence_parameter_set().map_err(format)?.to_vec();
        let pps = t.picture_parameter_set().map_err(format)?.to_vec();
        let mut parameter_sets = Vec::with_capacity(sps.len() + pps.len() + 8);
        for nal in [&sps, &pps] {
            parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
            parameter_sets.extend_from_slice(nal);
        }
        let length_size = t
            .trak
            .mdia
            .minf
            .stbl
            .stsd
            .avc1
            .as_ref()
            .map_or(4, |a| usize::from(a.avcc.length_size_minus_one & 3) + 1);
        Ok(ClipReader {
            path: path.to_owned(),
            track,
            timescale: f64::from(t.timescale().max(1)),
            samples: reader.sample_count(track).map_err(format)?,
            next: 1,
            parameter_sets,
            length_size,
            first_pts: None,
            size: (u32::from(t.width()), u32::from(t.height())),
            duration_s: t.duration().as_secs_f64(),
            reader,
        })
    }

    /// Number of video samples (frames).
    pub fn frame_count(&self) -> u32 {
        self.samples
    }

    /// The next access unit, `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<ClipFrame>, ClipError> {
        while self.next <= self.samples {
            let n = self.next;
            self.next += 1;
            let sample = self
                .reader
                .read_sample(self.track, n)
                .map_err(|e| ClipError::Sample {
                    path: self.path.clone(),
                    sample: n,
                    message: e.to_string(),
                })?;
            let Some(sample) = sample else { continue };
            let pts = sample.start_time as i64 + i64::from(sample.rendering_offset);
            let first = *self.first_pts.get_or_insert(pts);
            let mut data = Vec::with_capacity(sample.bytes.len() + self.parameter_sets.len() + 16);
            if sample.is_sync {
                data.extend_from_slice(&self.parameter_sets);
            }
            self.append_nals(&sample.bytes, &mut data)
                .map_err(|message| ClipError::Sample {
                    path: self.path.clone(),
                    sample: n,
                    message,
                })?;
            return Ok(Some(ClipFrame {
                data,
                keyframe: sample.is_sync,
                pts_s: (pts - first) as f64 / self.timescale,
            }));
        }
        Ok(None)
    }

    /// Converts length-prefixed NAL units to Annex B start codes.
    fn append_nals(&self, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let offset = |rest: &[u8], all: usize| all - rest.len();
        let total = bytes.len();
        while !bytes.is_empty() {
            if bytes.len() < self.length_size {
                return Err(format!(
                    "truncated NAL length at byte {}",
                    offset(bytes, total)
                ));
            }
            let len = bytes[..self.length_size]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            let body = &bytes[self.length_size..];
            if len == 0 || len > body.len() {
                return Err(format!(
                    "NAL length {len} at byte {} exceeds the sample",
                    offset(bytes, total)
                ));
            }
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&body[..len]);
            bytes = &body[len..];
        }
        Ok(())
    }
}
