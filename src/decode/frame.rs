//! A decoded picture. Kept as tightly packed I420 (the decoder's native format, half the size of
//! RGB): the scene-change gate and background model read the luma plane directly, and RGB is made
//! only for frames that go on to the detector ([`DecodedFrame::to_rgb`], or fused into the
//! detector's letterbox).

use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use crate::analyze::GreyFrame;

/// One decoded picture of one camera.
#[derive(Clone)]
pub struct DecodedFrame {
    /// Index of the camera.
    pub camera: usize,
    /// Wall-clock capture (arrival) time.
    pub captured_at: SystemTime,
    /// Monotonic arrival time of the encoded frame.
    pub received: Instant,
    /// Presentation time in seconds since the start of the stream.
    pub pts_s: f64,
    /// Whether this was a keyframe.
    pub keyframe: bool,
    width: u32,
    height: u32,
    /// Y (width × height), then U and V (each ⌈w/2⌉ × ⌈h/2⌉).
    i420: Vec<u8>,
    /// The access units it decodes from on its own, when known (they decode to the same
    /// picture).
    source: Option<Arc<super::kept::EncodedPicture>>,
    /// The grey picture, made the first time it is asked for (the sampling gate, the detector's
    /// analysis and the background channel all read the same one).
    grey: OnceLock<Option<Arc<GreyFrame>>>,
}

impl std::fmt::Debug for DecodedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedFrame")
            .field("camera", &self.camera)
            .field("size", &(self.width, self.height))
            .field("pts_s", &self.pts_s)
            .finish_non_exhaustive()
    }
}

/// Size of the chroma planes of a `w` × `h` I420 picture.
fn chroma_size(w: u32, h: u32) -> (usize, usize) {
    (w.div_ceil(2) as usize, h.div_ceil(2) as usize)
}

impl DecodedFrame {
    /// Builds a frame from strided planes (as decoders return them), copying them tightly packed.
    ///
    /// Returns `None` if a plane is too short for the given size and strides.
    #[allow(clippy::too_many_arguments)]
    pub fn from_planes(
        camera: usize,
        captured_at: SystemTime,
        received: Instant,
        pts_s: f64,
        keyframe: bool,
        (width, height): (u32, u32),
        (y, u, v): (&[u8], &[u8], &[u8]),
        (ys, us, vs): (usize, usize, usize),
    ) -> Option<DecodedFrame> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = chroma_size(width, height);
        let fits = |plane: &[u8], stride: usize, pw: usize, ph: usize| {
            ph == 0 || (stride >= pw && plane.len() >= stride * (ph - 1) + pw)
        };
        if w == 0 || h == 0 || !fits(y, ys, w, h) || !fits(u, us, cw, ch) || !fits(v, vs, cw, ch) {
            return None;
        }
        let mut i420 = Vec::with_capacity(w * h + 2 * cw * ch);
        for (plane, stride, pw, ph) in [(y, ys, w, h), (u, us, cw, ch), (v, vs, cw, ch)] {
            for row in plane.chunks(stride).take(ph) {
                i420.extend_from_slice(&row[..pw]);
            }
        }
        Some(DecodedFrame {
            camera,
            captured_at,
            received,
            pts_s,
            keyframe,
            width,
            height,
            i420,
            source: None,
            grey: OnceLock::new(),
        })
    }

    /// The same picture, noting the access units it decodes from on its own (so that it can be
    /// kept as those: [`super::KeptPicture`]).
    pub fn with_source(mut self, source: super::kept::EncodedPicture) -> DecodedFrame {
        self.source = Some(Arc::new(source));
        self
    }

    /// The access units it decodes from on its own, if known.
    pub fn source(&self) -> Option<&Arc<super::kept::EncodedPicture>> {
        self.source.as_ref()
    }

    /// Bytes of its pixels.
    pub fn byte_size(&self) -> usize {
        self.i420.len()
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The luma (grey) plane, `width × height` bytes, row-major.
    pub fn luma(&self) -> &[u8] {
        &self.i420[..self.width as usize * self.height as usize]
    }

    /// The luma plane box-averaged to [`super::GREY_WIDTH`] pixels wide, with the chroma on the
    /// same grid: what the sampling gate and the analyzer look at. Made once per picture.
    pub fn grey(&self) -> Option<Arc<GreyFrame>> {
        self.grey
            .get_or_init(|| {
                let (cw, ch) = chroma_size(self.width, self.height);
                GreyFrame::from_luma(
                    self.luma(),
                    self.width,
                    self.height,
                    self.width as usize,
                    super::GREY_WIDTH,
                )
                .map(|g| Arc::new(g.with_chroma(self.chroma(), cw as u32, ch as u32, cw)))
            })
            .clone()
    }

    /// The U and V planes, each `⌈w/2⌉ × ⌈h/2⌉`.
    pub fn chroma(&self) -> (&[u8], &[u8]) {
        let (cw, ch) = chroma_size(self.width, self.height);
        let y = self.width as usize * self.height as usize;
        let (u, v) = self.i420[y..].split_at(cw * ch);
        (u, v)
    }

    /// Converts to packed RGB (BT.601, limited range, as H.264 cameras send by default).
    pub fn to_rgb(&self) -> image::RgbImage {
        let (w, h) = (self.width as usize, self.height as usize);
        let cw = w.div_ceil(2);
        let (u, v) = self.chroma();
        let mut out = vec![0u8; w * h * 3];
        for (row, (y_row, out_row)) in self
            .luma()
            .chunks_exact(w)
            .zip(out.chunks_exact_mut(w * 3))
            .enumerate()
        {
            let u_row = &u[(row / 2) * cw..][..cw];
            let v_row = &v[(row / 2) * cw..][..cw];
            for (x, (&yy, px)) in y_row.iter().zip(out_row.chunks_exact_mut(3)).enumerate() {
                let c = (i32::from(yy) - 16) * 298;
                let d = i32::from(u_row[x / 2]) - 128;
                let e = i32::from(v_row[x / 2]) - 128;
                px[0] = clamp((c + 409 * e + 128) >> 8);
                px[1] = clamp((c - 100 * d - 208 * e + 128) >> 8);
                px[2] = clamp((c + 516 * d + 128) >> 8);
            }
        }
        image::RgbImage::from_raw(self.width, self.height, out).expect("buffer sized for the image")
    }
}

#[inline]
fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_planes_are_packed() {
        // 4x2 picture with strides 6 (Y) and 3 (U, V).
        let y = [1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0];
        let u = [9, 10, 0];
        let v = [11, 12, 0];
        let f = DecodedFrame::from_planes(
            0,
            SystemTime::now(),
            Instant::now(),
            0.0,
            true,
            (4, 2),
            (&y, &u, &v),
            (6, 3, 3),
        )
        .unwrap();
        assert_eq!(f.luma(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(f.chroma(), (&[9u8, 10][..], &[11u8, 12][..]));
    }

    #[test]
    fn short_planes_are_rejected() {
        let y = [0u8; 7];
        let uv = [0u8; 2];
        assert!(
            DecodedFrame::from_planes(
                0,
                SystemTime::now(),
                Instant::now(),
                0.0,
                true,
                (4, 2),
                (&y, &uv, &uv),
                (4, 2, 2)
            )
            .is_none()
        );
    }

    #[test]
    fn grey_and_colours_convert() {
        // Y=235 U=V=128 is white; Y=16 is black; Y=81 U=90 V=240 is red in BT.601.
        let make = |yv: u8, uv: u8, vv: u8| {
            let y = [yv; 4];
            DecodedFrame::from_planes(
                0,
                SystemTime::now(),
                Instant::now(),
                0.0,
                true,
                (2, 2),
                (&y, &[uv], &[vv]),
                (2, 1, 1),
            )
            .unwrap()
            .to_rgb()
        };
        assert_eq!(make(235, 128, 128).get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(make(16, 128, 128).get_pixel(1, 1).0, [0, 0, 0]);
        let red = make(81, 90, 240).get_pixel(0, 0).0;
        assert!(red[0] > 250 && red[1] < 5 && red[2] < 5, "{red:?}");
    }

    #[test]
    fn the_grey_picture_carries_the_colour() {
        let frame = DecodedFrame::from_planes(
            0,
            SystemTime::now(),
            Instant::now(),
            0.0,
            true,
            (4, 2),
            (&[50; 8], &[90, 200], &[240, 60]),
            (4, 2, 2),
        )
        .unwrap();
        let grey = frame.grey().unwrap();
        // The grid (4 × 2) is finer than the chroma planes (2 × 1): each sample covers 2 cells.
        assert_eq!(grey.data, vec![50; 8]);
        let (left, right) = ([90, 240], [200, 60]);
        assert_eq!(
            grey.chroma,
            vec![left, left, right, right, left, left, right, right]
        );
    }
}
