//! The video codecs dumpwatch reads (H.264 and H.265) and their Annex B bitstreams: codec names
//! as RTSP and MP4 spell them, NAL unit types, and the conversion of MP4's length-prefixed
//! samples and decoder configuration records (`avcC`, `hvcC`) to Annex B. Plain data and pure
//! functions: every stage that touches encoded video (ingest, decode, clip, replay, probe) uses
//! this one description.

use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// One encoded video frame (an H.264 or H.265 access unit) as it left the camera.
#[derive(Debug)]
pub struct EncodedFrame {
    /// Annex B NAL units; keyframes start with the parameter sets ((VPS,) SPS, PPS). Shared, not
    /// copied, by the clip ring, the camera's decoder run and the pictures kept as their units.
    pub data: Arc<[u8]>,
    /// Whether a decoder can start here (IDR).
    pub keyframe: bool,
    /// Presentation time in seconds since the start of the stream (RTP timestamp).
    pub pts_s: f64,
    /// Wall-clock time the frame arrived: the capture time used downstream.
    pub captured_at: SystemTime,
    /// Monotonic arrival time, for frame-age measurement.
    pub received: Instant,
    /// Per-camera sequence number of frames handed on (gaps mean frames were dropped).
    pub seq: u64,
    /// Part of a run of every frame from a keyframe on (the camera is sampled actively): decode
    /// with the camera's own decoder, in order. False for keyframes decoded on their own.
    pub all_frames: bool,
    /// The stream's codec.
    pub codec: VideoCodec,
}

/// A video codec dumpwatch can decode.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// H.264 / AVC.
    #[default]
    H264,
    /// H.265 / HEVC.
    H265,
}

/// The kind of a NAL unit that matters to dumpwatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NalKind {
    /// Video parameter set (H.265 only).
    Vps,
    /// Sequence parameter set.
    Sps,
    /// Picture parameter set.
    Pps,
    /// Access unit delimiter.
    Delimiter,
    /// A slice of a picture a decoder can start at (IDR; for H.265 also CRA and BLA).
    RandomAccessSlice,
    /// Anything else (other slices, SEI, …).
    Other,
}

impl VideoCodec {
    /// The codec of an RTSP/SDP encoding name (`H264`, `H265`; case-insensitive), if supported.
    pub fn from_encoding_name(name: &str) -> Option<VideoCodec> {
        match name.to_ascii_lowercase().as_str() {
            "h264" | "avc" | "avc1" => Some(VideoCodec::H264),
            "h265" | "hevc" | "hvc1" | "hev1" => Some(VideoCodec::H265),
            _ => None,
        }
    }

    /// The lower-case name used in status, metrics and configuration (`h264`, `h265`).
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::H265 => "h265",
        }
    }

    /// What kind of NAL unit `nal` (without start code) is.
    pub fn nal_kind(self, nal: &[u8]) -> NalKind {
        let Some(&first) = nal.first() else {
            return NalKind::Other;
        };
        match self {
            VideoCodec::H264 => match first & 0x1f {
                5 => NalKind::RandomAccessSlice,
                7 => NalKind::Sps,
                8 => NalKind::Pps,
                9 => NalKind::Delimiter,
                _ => NalKind::Other,
            },
            VideoCodec::H265 => match (first >> 1) & 0x3f {
                16..=21 => NalKind::RandomAccessSlice,
                32 => NalKind::Vps,
                33 => NalKind::Sps,
                34 => NalKind::Pps,
                35 => NalKind::Delimiter,
                _ => NalKind::Other,
            },
        }
    }

    /// The parameter sets a decoder needs before a keyframe, in order: (VPS,) SPS, PPS.
    pub fn parameter_set_kinds(self) -> &'static [NalKind] {
        match self {
            VideoCodec::H264 => &[NalKind::Sps, NalKind::Pps],
            VideoCodec::H265 => &[NalKind::Vps, NalKind::Sps, NalKind::Pps],
        }
    }

    /// Whether the Annex B access unit `data` holds a slice a decoder can start at. Looks only
    /// at the header byte after each start code (no allocation: ingest asks this of every
    /// H.265 frame).
    pub fn is_random_access(self, data: &[u8]) -> bool {
        data.windows(4)
            .any(|w| w[..3] == [0, 0, 1] && self.nal_kind(&w[3..]) == NalKind::RandomAccessSlice)
    }
}

/// The profile an RFC 6381 codec string names (`avc1.4d401f` → `Main`, `hvc1.2.4.L120.90` →
/// `Main 10`), for people reading `probe` and the dashboard.
pub fn profile_name(rfc6381: &str) -> Option<&'static str> {
    let (kind, rest) = rfc6381.split_once('.')?;
    match kind {
        "avc1" | "avc3" => {
            let idc = u8::from_str_radix(rest.get(..2)?, 16).ok()?;
            Some(match idc {
                66 => "Constrained Baseline/Baseline",
                77 => "Main",
                88 => "Extended",
                100 => "High",
                110 => "High 10",
                122 => "High 4:2:2",
                244 => "High 4:4:4",
                _ => return None,
            })
        }
        "hvc1" | "hev1" => {
            // general_profile_space (optional letter) then general_profile_idc.
            let idc = rest.split('.').next()?.trim_start_matches(['A', 'B', 'C']);
            Some(match idc.parse::<u8>().ok()? {
                1 => "Main",
                2 => "Main 10",
                3 => "Main Still Picture",
                4 => "Range Extensions",
                _ => return None,
            })
        }
        _ => None,
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The NAL units of an Annex B access unit (start codes removed).
pub fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let mut end = starts.get(k + 1).map_or(data.len(), |n| n - 3);
            // A four-byte start code leaves a zero behind the previous unit.
            while end > s && k + 1 < starts.len() && data[end - 1] == 0 {
                end -= 1;
            }
            &data[s..end]
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// The parameter-set NAL units of `data` (an Annex B access unit), in stream order.
pub fn parameter_sets(codec: VideoCodec, data: &[u8]) -> Vec<&[u8]> {
    nal_units(data)
        .into_iter()
        .filter(|n| {
            matches!(
                codec.nal_kind(n),
                NalKind::Vps | NalKind::Sps | NalKind::Pps
            )
        })
        .collect()
}

/// Appends `nal` to `out` behind a four-byte start code.
pub fn push_annex_b(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&[0, 0, 0, 1]);
    out.extend_from_slice(nal);
}

/// What an MP4/Matroska decoder configuration record (`avcC` or `hvcC`) says: how long the
/// length prefix of each NAL unit is, and the parameter sets as Annex B.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// The codec of the record.
    pub codec: VideoCodec,
    /// Bytes of the big-endian length in front of each NAL unit of a sample (1, 2 or 4).
    pub length_size: usize,
    /// The record's parameter sets, each behind a start code.
    pub parameter_sets: Vec<u8>,
}

/// Why a decoder configuration record or a sample could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BitstreamError {
    /// The configuration record is shorter than its contents say.
    #[error("the {codec} decoder configuration record is truncated at byte {at} of {len}")]
    TruncatedConfig {
        /// The codec of the record.
        codec: VideoCodec,
        /// Where reading stopped.
        at: usize,
        /// Length of the record.
        len: usize,
    },
    /// A sample's NAL unit runs past the end of the sample.
    #[error("a NAL unit of {declared} bytes runs past the end of the sample ({left} bytes left)")]
    TruncatedSample {
        /// The length the prefix declares.
        declared: usize,
        /// Bytes left in the sample.
        left: usize,
    },
}

/// Reads big-endian fields from a byte slice, naming where it ran short.
struct Reader<'a> {
    codec: VideoCodec,
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BitstreamError> {
        let end = self.at + n;
        let bytes = self
            .data
            .get(self.at..end)
            .ok_or(BitstreamError::TruncatedConfig {
                codec: self.codec,
                at: self.at,
                len: self.data.len(),
            })?;
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, BitstreamError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, BitstreamError> {
        let b = self.take(2)?;
        Ok(usize::from(b[0]) << 8 | usize::from(b[1]))
    }
}

impl DecoderConfig {
    /// Reads an `avcC` (H.264, ISO/IEC 14496-15 §5.3.3) or `hvcC` (H.265, §8.3.3) record.
    pub fn parse(codec: VideoCodec, record: &[u8]) -> Result<DecoderConfig, BitstreamError> {
        let mut r = Reader {
            codec,
            data: record,
            at: 0,
        };
        let mut parameter_sets = Vec::new();
        let length_size = match codec {
            VideoCodec::H264 => {
                // version, profile, compatibility, level, lengthSizeMinusOne.
                let head = r.take(5)?;
                let length_size = usize::from(head[4] & 3) + 1;
                let sps_count = r.u8()? & 0x1f;
                for _ in 0..sps_count {
                    let n = r.u16()?;
                    push_annex_b(&mut parameter_sets, r.take(n)?);
                }
                let pps_count = r.u8()?;
                for _ in 0..pps_count {
                    let n = r.u16()?;
                    push_annex_b(&mut parameter_sets, r.take(n)?);
                }
                length_size
            }
            VideoCodec::H265 => {
                // 21 bytes of profile, level and format fields, then lengthSizeMinusOne.
                r.take(21)?;
                let length_size = usize::from(r.u8()? & 3) + 1;
                let arrays = r.u8()?;
                for _ in 0..arrays {
                    let _type = r.u8()?;
                    let count = r.u16()?;
                    for _ in 0..count {
                        let n = r.u16()?;
                        push_annex_b(&mut parameter_sets, r.take(n)?);
                    }
                }
                length_size
            }
        };
        Ok(DecoderConfig {
            codec,
            length_size,
            parameter_sets,
        })
    }

    /// Converts a length-prefixed sample to an Annex B access unit; a keyframe gets the record's
    /// parameter sets in front unless it carries its own, so it decodes on its own as a live
    /// camera's keyframe does.
    pub fn to_annex_b(&self, sample: &[u8], keyframe: bool) -> Result<Vec<u8>, BitstreamError> {
        let mut nals = Vec::new();
        let mut rest = sample;
        while !rest.is_empty() {
            if rest.len() < self.length_size {
                return Err(BitstreamError::TruncatedSample {
                    declared: self.length_size,
                    left: rest.len(),
                });
            }
            let (len_bytes, tail) = rest.split_at(self.length_size);
            let n = len_bytes
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
            if n > tail.len() {
                return Err(BitstreamError::TruncatedSample {
                    declared: n,
                    left: tail.len(),
                });
            }
            nals.push(&tail[..n]);
            rest = &tail[n..];
        }
        let has_own = nals.iter().any(|n| self.codec.nal_kind(n) == NalKind::Sps);
        let mut out = Vec::with_capacity(sample.len() + self.parameter_sets.len() + 16);
        if keyframe && !has_own {
            out.extend_from_slice(&self.parameter_sets);
        }
        for nal in nals.into_iter().filter(|n| !n.is_empty()) {
            push_annex_b(&mut out, nal);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_names() {
        assert_eq!(
            VideoCodec::from_encoding_name("H264"),
            Some(VideoCodec::H264)
        );
        assert_eq!(
            VideoCodec::from_encoding_name("H265"),
            Some(VideoCodec::H265)
        );
        assert_eq!(
            VideoCodec::from_encoding_name("hevc"),
            Some(VideoCodec::H265)
        );
        assert_eq!(VideoCodec::from_encoding_name("JPEG"), None);
        assert_eq!(VideoCodec::H265.to_string(), "h265");
    }

    #[test]
    fn profiles_of_codec_strings() {
        assert_eq!(profile_name("avc1.4d401f"), Some("Main"));
        assert_eq!(profile_name("avc1.640028"), Some("High"));
        assert_eq!(profile_name("hvc1.1.6.L93.B0"), Some("Main"));
        assert_eq!(profile_name("hvc1.2.4.L120.90"), Some("Main 10"));
        assert_eq!(profile_name("mp4v.20"), None);
        assert_eq!(profile_name("avc1"), None);
    }

    #[test]
    fn nal_kinds_of_both_codecs() {
        assert_eq!(VideoCodec::H264.nal_kind(&[0x67]), NalKind::Sps);
        assert_eq!(
            VideoCodec::H264.nal_kind(&[0x65]),
            NalKind::RandomAccessSlice
        );
        assert_eq!(VideoCodec::H264.nal_kind(&[0x41]), NalKind::Other);
        // H.265 headers are two bytes; the type is bits 1..7 of the first.
        assert_eq!(VideoCodec::H265.nal_kind(&[0x40, 0x01]), NalKind::Vps);
        assert_eq!(VideoCodec::H265.nal_kind(&[0x42, 0x01]), NalKind::Sps);
        assert_eq!(VideoCodec::H265.nal_kind(&[0x44, 0x01]), NalKind::Pps);
        assert_eq!(
            VideoCodec::H265.nal_kind(&[0x26, 0x01]),
            NalKind::RandomAccessSlice
        ); // IDR_W_RADL
        assert_eq!(
            VideoCodec::H265.nal_kind(&[0x2a, 0x01]),
            NalKind::RandomAccessSlice
        ); // CRA
        assert_eq!(VideoCodec::H265.nal_kind(&[0x02, 0x01]), NalKind::Other); // TRAIL_R
        assert_eq!(VideoCodec::H265.nal_kind(&[]), NalKind::Other);
    }

    #[test]
    fn nal_units_split_on_three_and_four_byte_start_codes() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let units = nal_units(&au);
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
        assert!(VideoCodec::H264.is_random_access(&au));
        assert_eq!(parameter_sets(VideoCodec::H264, &au).len(), 2);
    }

    #[test]
    fn avcc_record_and_sample_to_annex_b() {
        // version 1, profile 77, compat 0, level 31, 4-byte lengths, 1 SPS, 1 PPS.
        let record = [1, 77, 0, 31, 0xff, 0xe1, 0, 2, 0x67, 9, 1, 0, 2, 0x68, 8];
        let config = DecoderConfig::parse(VideoCodec::H264, &record).unwrap();
        assert_eq!(config.length_size, 4);
        assert_eq!(
            config.parameter_sets,
            vec![0, 0, 0, 1, 0x67, 9, 0, 0, 0, 1, 0x68, 8]
        );
        let sample = [0, 0, 0, 3, 0x65, 1, 2];
        let key = config.to_annex_b(&sample, true).unwrap();
        assert_eq!(&key[..12], &config.parameter_sets[..]);
        assert_eq!(&key[12..], &[0, 0, 0, 1, 0x65, 1, 2]);
        let p = config.to_annex_b(&[0, 0, 0, 2, 0x41, 7], false).unwrap();
        assert_eq!(p, vec![0, 0, 0, 1, 0x41, 7]);
    }

    #[test]
    fn hvcc_record_is_read() {
        let mut record = vec![1u8; 21];
        record.push(0xf3); // lengthSizeMinusOne = 3
        record.push(2); // two arrays
        record.extend_from_slice(&[0x20, 0, 1, 0, 3, 0x40, 0x01, 0xaa]); // VPS
        record.extend_from_slice(&[0x21, 0, 1, 0, 3, 0x42, 0x01, 0xbb]); // SPS
        let config = DecoderConfig::parse(VideoCodec::H265, &record).unwrap();
        assert_eq!(config.length_size, 4);
        assert_eq!(nal_units(&config.parameter_sets).len(), 2);
    }

    #[test]
    fn truncated_records_and_samples_are_errors() {
        let err = DecoderConfig::parse(VideoCodec::H264, &[1, 77, 0, 31, 0xff, 0xe1, 0, 9, 0x67])
            .unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(DecoderConfig::parse(VideoCodec::H265, &[1; 10]).is_err());
        let config = DecoderConfig {
            codec: VideoCodec::H264,
            length_size: 4,
            parameter_sets: Vec::new(),
        };
        assert_eq!(
            config.to_annex_b(&[0, 0, 0, 9, 0x41], false),
            Err(BitstreamError::TruncatedSample {
                declared: 9,
                left: 1
            })
        );
    }
}
