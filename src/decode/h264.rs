//! H.264 decoding with openh264 (built from source with nasm: SIMD kernels on x86-64).
//! The only file that names openh264.

use std::panic::{AssertUnwindSafe, catch_unwind};

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::frame::DecodedFrame;
use crate::ingest::EncodedFrame;

/// Why an access unit produced no picture.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// openh264 could not be initialised.
    #[error("cannot create the H.264 decoder: {0}")]
    Init(String),
    /// The bitstream is corrupt or truncated.
    #[error("corrupt or truncated H.264 access unit ({len} bytes): {message}")]
    Corrupt {
        /// Size of the access unit.
        len: usize,
        /// The decoder's message.
        message: String,
    },
    /// The access unit was consumed but completed no picture (e.g. parameter sets only).
    #[error("the access unit ({len} bytes) completed no picture")]
    NoPicture {
        /// Size of the access unit.
        len: usize,
    },
}

/// A decoder that recovers from bad input by starting afresh. The openh264 decoder inside is
/// created on first use and again after a corrupt unit; if it cannot be created, `decode` says so.
#[derive(Default)]
pub struct H264Decoder {
    inner: Option<Decoder>,
}

impl H264Decoder {
    /// A decoder created now (fails at once if openh264 cannot start).
    pub fn new() -> Result<Self, DecodeError> {
        Ok(H264Decoder {
            inner: Some(Self::fresh()?),
        })
    }

    fn fresh() -> Result<Decoder, DecodeError> {
        Decoder::new().map_err(|e| DecodeError::Init(e.to_string()))
    }

    /// Decodes one access unit of camera `camera` into a picture.
    ///
    /// After an error the decoder is replaced, so a corrupt unit cannot poison the pictures of
    /// the next keyframe (of this or another camera).
    pub fn decode(
        &mut self,
        camera: usize,
        frame: &EncodedFrame,
    ) -> Result<DecodedFrame, DecodeError> {
        let len = frame.data.len();
        let decoder = match &mut self.inner {
            Some(d) => d,
            None => self.inner.insert(Self::fresh()?),
        };
        // openh264's Rust wrapper asserts on a few inconsistent states; a panic here must cost one
        // frame, not a decode thread.
        let result = catch_unwind(AssertUnwindSafe(|| match decoder.decode(&frame.data) {
            Ok(Some(yuv)) => {
                let (w, h) = yuv.dimensions();
                DecodedFrame::from_planes(
                    camera,
                    frame.captured_at,
                    frame.received,
                    frame.pts_s,
                    frame.keyframe,
                    (w as u32, h as u32),
                    (yuv.y(), yuv.u(), yuv.v()),
                    yuv.strides(),
                )
                .ok_or_else(|| DecodeError::Corrupt {
                    len,
                    message: "decoder returned inconsistent planes".into(),
                })
            }
            Ok(None) => Err(DecodeError::NoPicture { len }),
            Err(e) => Err(DecodeError::Corrupt {
                len,
                message: e.to_string(),
            }),
        }));
        let result = result.unwrap_or_else(|_| {
            Err(DecodeError::Corrupt {
                len,
                message: "decoder panicked".into(),
            })
        });
        if matches!(result, Err(DecodeError::Corrupt { .. })) {
            self.inner = None;
        }
        result
    }
}
