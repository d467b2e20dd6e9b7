//! A picture kept after its analysis: a camera's latest picture (for the API) and the evidence
//! history (for an event's pictures). A decoded 720p picture is 1.4 MB of pixels; the access units
//! it was decoded from are far smaller (a keyframe 0.1–0.2 MB at 2 Mb/s, a P-frame a few KB), so
//! a picture can be kept as those units ([`EncodedPicture`]) and decoded again only when its
//! pixels are wanted:
//!
//! - an idle camera's refresh picture, a keyframe decoded alone, is kept as that keyframe (69 idle
//!   cameras hold about 12 MB instead of 97 MB) and decoded again in 25 ms;
//! - a busy camera's picture of a run is kept, for the evidence history only, as the units from
//!   its run's keyframe through its own (units of one GOP are shared by its pictures) and decoded
//!   again only when an event needs it (a GOP's worth of units: about 0.15 s at 720p on the
//!   project's 2-core machine). A run never costs more than the pixels: a picture whose units
//!   since the keyframe outweigh its pixels, or are too many to decode quickly, keeps its pixels.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::{DecodeError, DecodedFrame, VideoDecoder};
use crate::codec::EncodedFrame;
use crate::codec::VideoCodec;

/// Most access units a picture is kept as: decoding them again takes at most about 0.4 s at
/// 720p (a keyframe 25 ms, a P-frame 4 ms on the project's 2-core machine).
pub const MAX_RUN_UNITS: usize = 90;

/// The access units a picture decodes from on its own, as its camera's decoder was given them: a
/// keyframe (its parameter sets included) and, for a picture of a run, every unit after it through
/// the picture's own.
#[derive(Debug)]
pub struct EncodedPicture {
    /// Annex B access units, the keyframe first. Never empty.
    units: Vec<Arc<[u8]>>,
    /// Their codec.
    codec: VideoCodec,
}

impl EncodedPicture {
    /// A keyframe decoded alone.
    pub fn keyframe(data: Arc<[u8]>, codec: VideoCodec) -> EncodedPicture {
        EncodedPicture {
            units: vec![data],
            codec,
        }
    }

    /// The units of a run from its keyframe through the picture's own, if they are worth keeping
    /// instead of a picture of `pixel_bytes`: at most [`MAX_RUN_UNITS`] and fewer bytes than the
    /// pixels. `None` for an empty run.
    pub fn run(
        units: &[Arc<[u8]>],
        codec: VideoCodec,
        pixel_bytes: usize,
    ) -> Option<EncodedPicture> {
        let bytes: usize = units.iter().map(|u| u.len()).sum();
        (!units.is_empty() && units.len() <= MAX_RUN_UNITS && bytes < pixel_bytes).then(|| {
            EncodedPicture {
                units: units.to_vec(),
                codec,
            }
        })
    }

    /// Whether it is a keyframe alone (decoded again in one step).
    pub fn is_keyframe_alone(&self) -> bool {
        self.units.len() == 1
    }

    /// Access units held.
    pub fn units(&self) -> usize {
        self.units.len()
    }

    /// Bytes of its units (units shared with other pictures of the run counted here too).
    pub fn bytes(&self) -> usize {
        self.units.iter().map(|u| u.len()).sum()
    }

    /// Its codec.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Decodes the units with a fresh software decoder ([`decode_last`]), the picture stamped
    /// with `meta`'s camera and times.
    fn decode(&self, meta: &KeptPicture) -> Result<DecodedFrame, DecodeError> {
        let units = self
            .units
            .iter()
            .enumerate()
            .map(|(i, data)| EncodedFrame {
                data: data.clone(),
                keyframe: i == 0,
                pts_s: meta.pts_s,
                captured_at: meta.captured_at,
                received: meta.received,
                seq: 0,
                all_frames: true,
                codec: self.codec,
            })
            .collect();
        decode_last(meta.camera, units)
    }
}

/// Decodes `units` of camera `camera` (a keyframe, then the units after it in stream order) with
/// a fresh software decoder and returns the picture of the last one: exactly that picture, or an
/// error (a unit that does not decode, or a last unit that gives no picture). Their sequence
/// numbers and decoding mode are set here (a keyframe alone is drained at once, a run decoded in
/// order).
pub fn decode_last(
    camera: usize,
    mut units: Vec<EncodedFrame>,
) -> Result<DecodedFrame, DecodeError> {
    let Some(last) = units.len().checked_sub(1) else {
        return Err(DecodeError::NoPicture { len: 0 });
    };
    let mut decoder = VideoDecoder::new()?;
    let mut picture = None;
    for (i, unit) in units.iter_mut().enumerate() {
        unit.seq = i as u64;
        unit.all_frames = last > 0;
        match decoder.decode(camera, unit) {
            Ok(p) if i == last => picture = Some(p),
            Ok(_) | Err(DecodeError::NoPicture { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    picture.ok_or(DecodeError::NoPicture {
        len: units[last].data.len(),
    })
}

/// A picture as kept after its analysis; cheap to clone.
#[derive(Clone, Debug)]
pub struct KeptPicture {
    camera: usize,
    captured_at: SystemTime,
    received: Instant,
    pts_s: f64,
    keyframe: bool,
    width: u32,
    height: u32,
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    Pixels(Arc<DecodedFrame>),
    Encoded(Arc<EncodedPicture>),
}

impl KeptPicture {
    /// Keeps `frame` as compactly as it can: as the units it was decoded from when they are
    /// known, else its pixels. For pictures seldom looked at again (the evidence history).
    pub fn compact(frame: &Arc<DecodedFrame>) -> KeptPicture {
        let body = match frame.source() {
            Some(source) => Body::Encoded(source.clone()),
            None => Body::Pixels(frame.clone()),
        };
        KeptPicture::with_body(frame, body)
    }

    /// Keeps `frame` so that its pixels come back quickly: as its keyframe when it was decoded
    /// from one alone, else its pixels. For a picture shown on request (a camera's latest).
    pub fn quick(frame: &Arc<DecodedFrame>) -> KeptPicture {
        let body = match frame.source() {
            Some(source) if source.is_keyframe_alone() => Body::Encoded(source.clone()),
            _ => Body::Pixels(frame.clone()),
        };
        KeptPicture::with_body(frame, body)
    }

    /// Keeps `frame` with its pixels (a picture about to be used).
    pub fn pixels_of(frame: &Arc<DecodedFrame>) -> KeptPicture {
        KeptPicture::with_body(frame, Body::Pixels(frame.clone()))
    }

    fn with_body(frame: &DecodedFrame, body: Body) -> KeptPicture {
        KeptPicture {
            camera: frame.camera,
            captured_at: frame.captured_at,
            received: frame.received,
            pts_s: frame.pts_s,
            keyframe: frame.keyframe,
            width: frame.width(),
            height: frame.height(),
            body,
        }
    }

    /// The pixels: held, or decoded again from the units it is kept as (a fresh software
    /// decoder: 25 ms for a 720p H.264 keyframe, about 0.15 s for a picture at the end of a 2 s
    /// GOP, on the project's 2-core machine).
    pub fn pixels(&self) -> Result<Arc<DecodedFrame>, DecodeError> {
        match &self.body {
            Body::Pixels(frame) => Ok(frame.clone()),
            Body::Encoded(source) => Ok(Arc::new(source.decode(self)?)),
        }
    }

    /// Whether the pixels are held (no decoding needed).
    pub fn has_pixels(&self) -> bool {
        matches!(self.body, Body::Pixels(_))
    }

    /// Bytes held for the picture (pixels, or access units).
    pub fn held_bytes(&self) -> usize {
        match &self.body {
            Body::Pixels(frame) => frame.byte_size(),
            Body::Encoded(source) => source.bytes(),
        }
    }

    /// Index of the camera.
    pub fn camera(&self) -> usize {
        self.camera
    }

    /// Wall-clock capture (arrival) time.
    pub fn captured_at(&self) -> SystemTime {
        self.captured_at
    }

    /// Presentation time in seconds since the start of the stream.
    pub fn pts_s(&self) -> f64 {
        self.pts_s
    }

    /// Whether it was a keyframe.
    pub fn keyframe(&self) -> bool {
        self.keyframe
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(n: usize, each: usize) -> Vec<Arc<[u8]>> {
        (0..n).map(|_| Arc::from(vec![0u8; each])).collect()
    }

    #[test]
    fn a_run_is_kept_as_units_only_while_they_are_fewer_and_smaller_than_the_pixels() {
        let codec = VideoCodec::H264;
        let pixels = 1280 * 720 * 3 / 2;
        let kept = EncodedPicture::run(&units(30, 16_000), codec, pixels).expect("a 2 s GOP");
        assert_eq!((kept.units(), kept.bytes()), (30, 480_000));
        assert!(!kept.is_keyframe_alone());
        // A long GOP: more units than decode quickly, or more bytes than the pixels.
        assert!(EncodedPicture::run(&units(MAX_RUN_UNITS + 1, 100), codec, pixels).is_none());
        assert!(EncodedPicture::run(&units(20, pixels / 20), codec, pixels).is_none());
        assert!(EncodedPicture::run(&[], codec, pixels).is_none());
        assert!(
            EncodedPicture::keyframe(Arc::from([0u8, 0, 1].as_slice()), codec).is_keyframe_alone()
        );
    }
}
