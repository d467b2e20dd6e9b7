//! Writes access units (Annex B H.264) as an MP4 file: one video track, SPS/PPS from the first
//! keyframe in the `avcC` box, samples length-prefixed.

use std::io::Cursor;

use mp4::{AvcConfig, MediaConfig, Mp4Config, Mp4Sample, Mp4Writer, TrackConfig, TrackType};

use super::ring::ClipFrame;

/// Track time scale (the RTP clock of H.264).
const TIMESCALE: u32 = 90_000;

/// Why a clip could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// No keyframe, or no SPS/PPS in it.
    #[error("the clip has no keyframe with SPS and PPS")]
    NoParameters,
    /// The picture size does not fit MP4's 16-bit fields.
    #[error("picture size {0}x{1} is too large for MP4")]
    TooLarge(u32, u32),
    /// The MP4 writer failed.
    #[error("MP4 writer: {0}")]
    Mp4(#[from] mp4::Error),
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

/// An MP4 of `frames` (the first must be a keyframe) at `width × height`.
pub fn mp4_of(frames: &[ClipFrame], width: u32, height: u32) -> Result<Vec<u8>, MuxError> {
    let first = frames
        .iter()
        .find(|f| f.keyframe)
        .ok_or(MuxError::NoParameters)?;
    let units = nal_units(&first.data);
    let find = |t: u8| units.iter().find(|n| n[0] & 0x1f == t).map(|n| n.to_vec());
    let (Some(sps), Some(pps)) = (find(7), find(8)) else {
        return Err(MuxError::NoParameters);
    };
    let (w, h) = (
        u16::try_from(width).map_err(|_| MuxError::TooLarge(width, height))?,
        u16::try_from(height).map_err(|_| MuxError::TooLarge(width, height))?,
    );
    let config = Mp4Config {
        major_brand: "isom".parse().expect("four characters"),
        minor_version: 512,
        compatible_brands: ["isom", "iso2", "avc1", "mp41"]
            .iter()
            .map(|b| b.parse().expect("four characters"))
            .collect(),
        timescale: 1000,
    };
    let mut writer = Mp4Writer::write_start(Cursor::new(Vec::new()), &config)?;
    writer.add_track(&TrackConfig {
        track_type: TrackType::Video,
        timescale: TIMESCALE,
        language: "und".into(),
        media_conf: MediaConfig::AvcConfig(AvcConfig {
            width: w,
            height: h,
            seq_param_set: sps,
            pic_param_set: pps,
        }),
    })?;
    let start = frames.iter().position(|f| f.keyframe).unwrap_or(0);
    let frames = &frames[start..];
    let ticks = |s: f64| (s * f64::from(TIMESCALE)).round().max(0.0) as u64;
    let t0 = frames[0].pts_s;
    // The typical frame duration, for the last frame and for timestamps that go backwards.
    let typical = frames
        .windows(2)
        .map(|w| w[1].pts_s - w[0].pts_s)
        .filter(|d| *d > 0.0)
        .fold(f64::INFINITY, f64::min);
    let typical = if typical.is_finite() { typical } else { 0.1 };
    let mut next_start = 0u64;
    for (i, f) in frames.iter().enumerate() {
        let start_time = ticks(f.pts_s - t0).max(next_start);
        let end = frames
            .get(i + 1)
            .map_or(start_time + ticks(typical), |n| ticks(n.pts_s - t0));
        let duration = end.saturating_sub(start_time).max(1);
        let mut bytes = Vec::with_capacity(f.data.len() + 16);
        for nal in nal_units(&f.data) {
            // Parameter sets live in avcC; access unit delimiters are not needed in MP4.
            if matches!(nal[0] & 0x1f, 7..=9) {
                continue;
            }
            bytes.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            bytes.extend_from_slice(nal);
        }
        writer.write_sample(
            1,
            &Mp4Sample {
                start_time,
                duration: duration as u32,
                rendering_offset: 0,
                is_sync: f.keyframe,
                bytes: bytes.into(),
            },
        )?;
        next_start = start_time + duration;
    }
    writer.write_end()?;
    Ok(writer.into_writer().into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn a_clip_without_parameters_is_refused() {
        let f = ClipFrame {
            data: std::sync::Arc::from(&[0u8, 0, 1, 0x65, 1][..]),
            keyframe: true,
            pts_s: 0.0,
            at: 0.0,
        };
        assert!(matches!(mp4_of(&[f], 64, 48), Err(MuxError::NoParameters)));
    }
}
