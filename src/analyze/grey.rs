//! The downscaled grey picture the analyzer works on: small enough that the background model and
//! the scene-change gate cost microseconds per picture, and independent of the camera's resolution.
//! It carries the picture's colour (chroma) on the same grid: dumped waste often differs from the
//! ground in colour more than in brightness (grey rubble on a lawn, a blue bag on grass).

/// A downscaled grey (luma) picture, optionally with its chroma, and the size of the source
/// picture it was made from so that regions found on it map back to source pixels (the
/// detector's coordinates).
#[derive(Clone, Debug, PartialEq)]
pub struct GreyFrame {
    /// Width in pixels of this picture.
    pub width: u32,
    /// Height in pixels of this picture.
    pub height: u32,
    /// Row-major grey levels, `width × height`.
    pub data: Vec<u8>,
    /// Width of the source picture in pixels.
    pub source_width: u32,
    /// Height of the source picture in pixels.
    pub source_height: u32,
    /// Mean chroma `[U, V]` (128 = no colour) of each pixel of `data`, row-major; empty when the
    /// picture came without colour.
    pub chroma: Vec<[u8; 2]>,
}

impl GreyFrame {
    /// Box-averages a luma plane (`width × height`, rows `stride` bytes apart) down to at most
    /// `target_width` pixels wide, keeping the aspect ratio. A plane that is already narrower is
    /// copied as it is. Returns `None` if the plane is empty or shorter than its size says.
    pub fn from_luma(
        luma: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        target_width: u32,
    ) -> Option<GreyFrame> {
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 || stride < w || luma.len() < stride * (h - 1) + w {
            return None;
        }
        let gw = (target_width.max(1) as usize).min(w);
        let gh = (h * gw / w).max(1);
        let mut sums = vec![0u32; gw * gh];
        let mut counts = vec![0u32; gw * gh];
        // Column → cell lookup, computed once per picture.
        let cell_x: Vec<usize> = (0..w).map(|x| x * gw / w).collect();
        for y in 0..h {
            let gy = y * gh / h;
            let row = &luma[y * stride..y * stride + w];
            let (sum_row, count_row) = (
                &mut sums[gy * gw..(gy + 1) * gw],
                &mut counts[gy * gw..(gy + 1) * gw],
            );
            for (&v, &cx) in row.iter().zip(&cell_x) {
                sum_row[cx] += u32::from(v);
                count_row[cx] += 1;
            }
        }
        let data = sums
            .iter()
            .zip(&counts)
            .map(|(s, n)| ((s + n / 2) / (*n).max(1)) as u8)
            .collect();
        Some(GreyFrame {
            width: gw as u32,
            height: gh as u32,
            data,
            source_width: width,
            source_height: height,
            chroma: vec![],
        })
    }

    /// Adds the colour of the picture: its U and V planes (`chroma_width × chroma_height`, rows
    /// `stride` bytes apart; half the luma size in I420) averaged onto this picture's grid.
    /// Planes shorter than their size says leave the picture without colour.
    pub fn with_chroma(
        mut self,
        (u, v): (&[u8], &[u8]),
        chroma_width: u32,
        chroma_height: u32,
        stride: usize,
    ) -> GreyFrame {
        let (cw, ch) = (chroma_width as usize, chroma_height as usize);
        let (gw, gh) = (self.width as usize, self.height as usize);
        let needed = stride * ch.saturating_sub(1) + cw;
        if cw == 0 || ch == 0 || stride < cw || u.len() < needed || v.len() < needed {
            self.chroma.clear();
            return self;
        }
        // The chroma pixels under each cell; at least one, so a grid finer than the chroma
        // planes (a small picture) repeats the nearest sample instead of leaving cells blank.
        let span = |i: usize, cells: usize, pixels: usize| {
            let from = (i * pixels / cells).min(pixels - 1);
            from..((i + 1) * pixels / cells).clamp(from + 1, pixels)
        };
        let columns: Vec<_> = (0..gw).map(|x| span(x, gw, cw)).collect();
        self.chroma = Vec::with_capacity(gw * gh);
        for gy in 0..gh {
            let rows = span(gy, gh, ch);
            for cols in &columns {
                let (mut su, mut sv, mut n) = (0u32, 0u32, 0u32);
                for y in rows.clone() {
                    for x in cols.clone() {
                        su += u32::from(u[y * stride + x]);
                        sv += u32::from(v[y * stride + x]);
                        n += 1;
                    }
                }
                self.chroma
                    .push([((su + n / 2) / n) as u8, ((sv + n / 2) / n) as u8]);
            }
        }
        self
    }

    /// Mean absolute difference of grey levels from `other` (`None` if the sizes differ).
    pub fn mean_abs_diff(&self, other: &GreyFrame) -> Option<f32> {
        if self.width != other.width || self.height != other.height || self.data.is_empty() {
            return None;
        }
        let sum: u64 = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        Some(sum as f32 / self.data.len() as f32)
    }

    /// Share of pixels (0..1) that differ from `other` by more than `threshold` grey levels
    /// (`None` if the sizes differ).
    pub fn changed_share(&self, other: &GreyFrame, threshold: u8) -> Option<f32> {
        if self.width != other.width || self.height != other.height || self.data.is_empty() {
            return None;
        }
        let n = self
            .data
            .iter()
            .zip(&other.data)
            .filter(|(a, b)| a.abs_diff(**b) > threshold)
            .count();
        Some(n as f32 / self.data.len() as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_blocks_and_keeps_the_source_size() {
        // 4 × 2 picture with stride 6 (two padding bytes per row) → 2 × 1.
        let luma = [10, 20, 30, 50, 99, 99, 30, 40, 70, 90, 99, 99];
        let g = GreyFrame::from_luma(&luma, 4, 2, 6, 2).unwrap();
        assert_eq!((g.width, g.height), (2, 1));
        assert_eq!(g.data, vec![25, 60]);
        assert_eq!((g.source_width, g.source_height), (4, 2));
        assert!(g.chroma.is_empty());
    }

    #[test]
    fn chroma_is_averaged_onto_the_same_grid() {
        // 4 × 2 luma → 2 × 1 grid; chroma planes 2 × 1 (stride 3) land one value per cell.
        let luma = [10, 20, 30, 50, 30, 40, 70, 90];
        let g = GreyFrame::from_luma(&luma, 4, 2, 4, 2)
            .unwrap()
            .with_chroma((&[100, 200, 0], &[50, 60, 0]), 2, 1, 3);
        assert_eq!(g.chroma, vec![[100, 50], [200, 60]]);
        // Short planes: no colour, the grey picture unchanged.
        let g = g.with_chroma((&[1], &[1]), 2, 1, 2);
        assert!(g.chroma.is_empty());
        assert_eq!(g.data, vec![25, 60]);
    }

    #[test]
    fn narrow_pictures_are_copied_and_bad_planes_refused() {
        let g = GreyFrame::from_luma(&[1, 2, 3, 4], 2, 2, 2, 160).unwrap();
        assert_eq!(g.data, vec![1, 2, 3, 4]);
        assert!(GreyFrame::from_luma(&[1, 2, 3], 2, 2, 2, 160).is_none());
        assert!(GreyFrame::from_luma(&[], 0, 0, 0, 160).is_none());
    }

    #[test]
    fn differences() {
        let a = GreyFrame {
            width: 2,
            height: 1,
            data: vec![10, 100],
            source_width: 2,
            source_height: 1,
            chroma: vec![],
        };
        let b = GreyFrame {
            data: vec![14, 40],
            ..a.clone()
        };
        assert_eq!(a.mean_abs_diff(&b), Some(32.0));
        assert_eq!(a.changed_share(&b, 10), Some(0.5));
        let c = GreyFrame {
            width: 1,
            data: vec![1],
            ..a.clone()
        };
        assert_eq!(a.mean_abs_diff(&c), None);
    }
}
