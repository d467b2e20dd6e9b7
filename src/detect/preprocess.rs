//! Letterboxing a picture into the detector's input tensor: resize keeping the aspect ratio,
//! centre it on a grey (114) canvas, NCHW f32 in 0..1, RGB order.
//!
//! Everything is written into one reused buffer: no per-frame tensor allocation. The resize uses
//! `fast_image_resize` (SIMD convolution, bilinear like Pillow's). Pictures from the pipeline are
//! I420: their planes are resized first and converted to RGB at the model's size, so a 720p frame
//! costs a 640×360 colour conversion, not a 1280×720 one.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::DetectError;
use crate::decode::DecodedFrame;

/// The padding value of YOLO letterboxing.
pub const PAD: u8 = 114;

/// A rectangle of the model input that one picture is letterboxed into, in input pixels: the
/// whole input, or half of it when two pictures share a run (`model.mosaic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl Tile {
    /// The whole `dst` input.
    pub fn whole(dst: (u32, u32)) -> Tile {
        Tile {
            x: 0,
            y: 0,
            w: dst.0,
            h: dst.1,
        }
    }

    /// The top and bottom halves of the `dst` input.
    pub fn halves(dst: (u32, u32)) -> [Tile; 2] {
        let top = dst.1 / 2;
        [
            Tile {
                x: 0,
                y: 0,
                w: dst.0,
                h: top,
            },
            Tile {
                x: 0,
                y: top,
                w: dst.0,
                h: dst.1 - top,
            },
        ]
    }

    /// Whether an input point lies in the tile (left and top edges in, right and bottom out).
    pub fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.x as f32
            && y >= self.y as f32
            && x < (self.x + self.w) as f32
            && y < (self.y + self.h) as f32
    }

    fn overlaps(&self, other: &Tile) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }
}

/// Where the picture sits in the model input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    /// Source picture size.
    pub src: (u32, u32),
    /// Model input size.
    pub dst: (u32, u32),
    /// The part of the input the picture was given (the whole input unless two pictures
    /// share the run); detections whose centre lies outside it are not this picture's.
    pub tile: Tile,
    /// Size of the resized picture inside the input.
    pub inner: (u32, u32),
    /// Left and top padding in input pixels (from the input's corner, the tile's offset
    /// included).
    pub pad: (u32, u32),
    /// Scale from source to input pixels.
    pub scale: f32,
}

impl Letterbox {
    /// The geometry for a `src` picture in a `dst` input. Errors on an empty picture.
    pub fn new(src: (u32, u32), dst: (u32, u32)) -> Result<Letterbox, DetectError> {
        Letterbox::in_tile(src, dst, Tile::whole(dst))
    }

    /// The geometry for a `src` picture in the `tile` of a `dst` input, centred in the tile.
    pub fn in_tile(src: (u32, u32), dst: (u32, u32), tile: Tile) -> Result<Letterbox, DetectError> {
        if src.0 == 0 || src.1 == 0 {
            return Err(DetectError::BadImage(format!(
                "the picture is empty ({}x{})",
                src.0, src.1
            )));
        }
        let scale = (tile.w as f32 / src.0 as f32).min(tile.h as f32 / src.1 as f32);
        let inner = (
            ((src.0 as f32 * scale).round() as u32).clamp(1, tile.w),
            ((src.1 as f32 * scale).round() as u32).clamp(1, tile.h),
        );
        let pad = (
            tile.x + (tile.w - inner.0) / 2,
            tile.y + (tile.h - inner.1) / 2,
        );
        Ok(Letterbox {
            src,
            dst,
            tile,
            inner,
            pad,
            scale,
        })
    }

    /// Maps a point in input pixels back to source pixels (not clamped).
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        (
            (x - self.pad.0 as f32) / self.scale,
            (y - self.pad.1 as f32) / self.scale,
        )
    }

    /// Maps a point in source pixels to input pixels.
    pub fn to_input(&self, x: f32, y: f32) -> (f32, f32) {
        (
            x * self.scale + self.pad.0 as f32,
            y * self.scale + self.pad.1 as f32,
        )
    }
}

/// Reusable buffers for filling the input tensor.
pub struct Preprocessor {
    input: (u32, u32),
    tensor: Vec<f32>,
    /// What each painted tile of `tensor` was last painted for: a picture's geometry (its
    /// padding is in place), or `None` for a tile painted blank.
    painted: Vec<(Tile, Option<Letterbox>)>,
    resizer: Resizer,
    rgb: Vec<u8>,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

/// The R, G and B planes of an NCHW tensor holding one image.
fn planes_mut(tensor: &mut [f32]) -> (&mut [f32], &mut [f32], &mut [f32]) {
    let plane = tensor.len() / 3;
    let (r, rest) = tensor.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    (r, g, b)
}

/// `u8 / 255` for every byte value.
fn unit_lut() -> &'static [f32; 256] {
    static LUT: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| std::array::from_fn(|i| i as f32 / 255.0))
}

/// Precomputed BT.601 limited-range terms, already divided by 255.
struct YuvLut {
    y: [f32; 256],
    rv: [f32; 256],
    gu: [f32; 256],
    gv: [f32; 256],
    bu: [f32; 256],
}

fn yuv_lut() -> &'static YuvLut {
    static LUT: std::sync::OnceLock<YuvLut> = std::sync::OnceLock::new();
    LUT.get_or_init(|| {
        let c = |k: f32, off: f32| -> [f32; 256] {
            std::array::from_fn(|i| k * (i as f32 - off) / 255.0)
        };
        YuvLut {
            y: c(1.164, 16.0),
            rv: c(1.596, 128.0),
            gu: c(-0.392, 128.0),
            gv: c(-0.813, 128.0),
            bu: c(2.017, 128.0),
        }
    })
}

impl Preprocessor {
    /// Buffers for a model input of `width × height`.
    pub fn new((width, height): (u32, u32)) -> Self {
        Preprocessor {
            input: (width, height),
            tensor: vec![0.0; 3 * width as usize * height as usize],
            painted: Vec::new(),
            resizer: Resizer::new(),
            rgb: Vec::new(),
            y: Vec::new(),
            u: Vec::new(),
            v: Vec::new(),
        }
    }

    /// The filled tensor (`[1, 3, height, width]`, row-major).
    pub fn tensor(&self) -> &[f32] {
        &self.tensor
    }

    fn options() -> ResizeOptions {
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
    }

    /// Paints a tile grey where `content` (a picture's geometry) will not overwrite it, or all of
    /// it for `None`; nothing when the tile was last painted for the same.
    fn paint_tile(&mut self, tile: Tile, content: Option<Letterbox>) {
        if self.painted.contains(&(tile, content)) {
            return;
        }
        let stride = self.input.0 as usize;
        let grey = f32::from(PAD) / 255.0;
        let (r, g, b) = planes_mut(&mut self.tensor);
        for plane in [r, g, b] {
            for row in tile.y..tile.y + tile.h {
                let at = row as usize * stride + tile.x as usize;
                plane[at..at + tile.w as usize].fill(grey);
            }
        }
        // What overlapped this tile is painted over.
        self.painted.retain(|(t, _)| !t.overlaps(&tile));
        self.painted.push((tile, content));
    }

    /// Paints a tile grey: no picture in it this run.
    pub fn blank(&mut self, tile: Tile) {
        self.paint_tile(tile, None);
    }

    /// Fills the tensor from packed RGB (`width × height × 3` bytes).
    pub fn fill_rgb(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
    ) -> Result<Letterbox, DetectError> {
        let lb = Letterbox::new((width, height), self.input)?;
        if rgb.len() < width as usize * height as usize * 3 {
            return Err(DetectError::BadImage(format!(
                "RGB buffer of {} bytes is too small for {width}x{height}",
                rgb.len()
            )));
        }
        let src = ImageRef::new(width, height, rgb, PixelType::U8x3)
            .map_err(|e| DetectError::BadImage(e.to_string()))?;
        let (iw, ih) = lb.inner;
        self.rgb.resize(iw as usize * ih as usize * 3, 0);
        let mut dst = Image::from_slice_u8(iw, ih, &mut self.rgb, PixelType::U8x3)
            .map_err(|e| DetectError::BadImage(e.to_string()))?;
        self.resizer
            .resize(&src, &mut dst, &Self::options())
            .map_err(|e| DetectError::BadImage(e.to_string()))?;
        self.paint_tile(lb.tile, Some(lb));
        let lut = unit_lut();
        let stride = self.input.0 as usize;
        let (r, g, b) = planes_mut(&mut self.tensor);
        for (row, src_row) in self.rgb.chunks_exact(iw as usize * 3).enumerate() {
            let at = (lb.pad.1 as usize + row) * stride + lb.pad.0 as usize;
            let end = at + iw as usize;
            let dst = r[at..end]
                .iter_mut()
                .zip(g[at..end].iter_mut())
                .zip(b[at..end].iter_mut());
            for (px, ((r, g), b)) in src_row.chunks_exact(3).zip(dst) {
                *r = lut[px[0] as usize];
                *g = lut[px[1] as usize];
                *b = lut[px[2] as usize];
            }
        }
        Ok(lb)
    }

    /// Fills the tensor from a decoded I420 picture: planes resized first, then converted.
    pub fn fill_i420(&mut self, frame: &DecodedFrame) -> Result<Letterbox, DetectError> {
        self.fill_i420_in(frame, Tile::whole(self.input))
    }

    /// Fills one tile of the tensor from a decoded I420 picture; the rest is left as it is.
    pub fn fill_i420_in(
        &mut self,
        frame: &DecodedFrame,
        tile: Tile,
    ) -> Result<Letterbox, DetectError> {
        let (w, h) = (frame.width(), frame.height());
        let lb = Letterbox::in_tile((w, h), self.input, tile)?;
        let (iw, ih) = lb.inner;
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (icw, ich) = (iw.div_ceil(2), ih.div_ceil(2));
        let (u_src, v_src) = frame.chroma();
        let opts = Self::options();
        let mut resize = |src: &[u8],
                          sw: u32,
                          sh: u32,
                          dst: &mut Vec<u8>,
                          dw: u32,
                          dh: u32|
         -> Result<(), DetectError> {
            let s = ImageRef::new(sw, sh, src, PixelType::U8)
                .map_err(|e| DetectError::BadImage(e.to_string()))?;
            dst.resize(dw as usize * dh as usize, 0);
            let mut d = Image::from_slice_u8(dw, dh, dst, PixelType::U8)
                .map_err(|e| DetectError::BadImage(e.to_string()))?;
            self.resizer
                .resize(&s, &mut d, &opts)
                .map_err(|e| DetectError::BadImage(e.to_string()))
        };
        resize(frame.luma(), w, h, &mut self.y, iw, ih)?;
        resize(u_src, cw, ch, &mut self.u, icw, ich)?;
        resize(v_src, cw, ch, &mut self.v, icw, ich)?;
        self.paint_tile(lb.tile, Some(lb));
        let lut = yuv_lut();
        let stride = self.input.0 as usize;
        let (r, g, b) = planes_mut(&mut self.tensor);
        for (row, y_row) in self.y.chunks_exact(iw as usize).enumerate() {
            let c_off = (row / 2) * icw as usize;
            let u_row = &self.u[c_off..c_off + icw as usize];
            let v_row = &self.v[c_off..c_off + icw as usize];
            let at = (lb.pad.1 as usize + row) * stride + lb.pad.0 as usize;
            let end = at + iw as usize;
            let dst = r[at..end]
                .iter_mut()
                .zip(g[at..end].iter_mut())
                .zip(b[at..end].iter_mut());
            for (x, (&yy, ((r, g), b))) in y_row.iter().zip(dst).enumerate() {
                let (uu, vv) = (u_row[x / 2] as usize, v_row[x / 2] as usize);
                let l = lut.y[yy as usize];
                *r = (l + lut.rv[vv]).clamp(0.0, 1.0);
                *g = (l + lut.gu[uu] + lut.gv[vv]).clamp(0.0, 1.0);
                *b = (l + lut.bu[uu]).clamp(0.0, 1.0);
            }
        }
        Ok(lb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_geometry_and_round_trip() {
        let lb = Letterbox::new((1280, 720), (640, 640)).unwrap();
        assert_eq!(lb.inner, (640, 360));
        assert_eq!(lb.pad, (0, 140));
        assert!((lb.scale - 0.5).abs() < 1e-6);
        for (x, y) in [(0.0, 0.0), (1279.0, 719.0), (333.3, 41.7)] {
            let (ix, iy) = lb.to_input(x, y);
            let (sx, sy) = lb.to_source(ix, iy);
            assert!(
                (sx - x).abs() < 1e-3 && (sy - y).abs() < 1e-3,
                "{x},{y} -> {sx},{sy}"
            );
        }
        let tall = Letterbox::new((480, 640), (640, 640)).unwrap();
        assert_eq!(tall.inner, (480, 640));
        assert_eq!(tall.pad, (80, 0));
        let tiny = Letterbox::new((1, 8000), (640, 640)).unwrap();
        assert_eq!(tiny.inner.0, 1);
        assert!(Letterbox::new((0, 10), (640, 640)).is_err());
    }

    #[test]
    fn rgb_fill_paints_padding_and_picture() {
        let mut p = Preprocessor::new((64, 64));
        // 64x32 red picture: rows 16..48 are red, the rest is padding.
        let rgb: Vec<u8> = std::iter::repeat_n([255u8, 0, 0], 64 * 32)
            .flatten()
            .collect();
        let lb = p.fill_rgb(&rgb, 64, 32).unwrap();
        assert_eq!(lb.pad, (0, 16));
        let t = p.tensor();
        let at = |c: usize, x: usize, y: usize| t[c * 64 * 64 + y * 64 + x];
        assert!((at(0, 10, 5) - 114.0 / 255.0).abs() < 1e-6);
        assert!((at(0, 10, 20) - 1.0).abs() < 1e-6);
        assert!(at(1, 10, 20).abs() < 1e-6);
    }

    #[test]
    fn i420_and_rgb_paths_agree() {
        use std::time::{Instant, SystemTime};
        // A smooth colour gradient, 96x54, as I420.
        let (w, h) = (96u32, 54u32);
        let y: Vec<u8> = (0..w * h).map(|i| (40 + (i % w) * 2) as u8).collect();
        let (cw, ch) = (w / 2, h / 2);
        let u: Vec<u8> = (0..cw * ch).map(|i| (100 + (i / cw)) as u8).collect();
        let v: Vec<u8> = (0..cw * ch).map(|i| (150 - (i % cw)) as u8).collect();
        let frame = DecodedFrame::from_planes(
            0,
            SystemTime::now(),
            Instant::now(),
            0.0,
            true,
            (w, h),
            (&y, &u, &v),
            (w as usize, cw as usize, cw as usize),
        )
        .unwrap();
        let rgb = frame.to_rgb();
        let mut a = Preprocessor::new((64, 64));
        let mut b = Preprocessor::new((64, 64));
        assert_eq!(
            a.fill_i420(&frame).unwrap(),
            b.fill_rgb(rgb.as_raw(), w, h).unwrap()
        );
        let diff = a
            .tensor()
            .iter()
            .zip(b.tensor())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff < 0.05, "max difference {diff}");
    }
}
