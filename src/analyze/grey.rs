//! The downscaled grey picture the analyzer works on: small enough that the background model and
//! the scene-change gate cost microseconds per picture, and independent of the camera's resolution.

/// A downscaled grey (luma) picture, with the size of the source picture it was made from so
/// that regions found on it map back to source pixels (the detector's coordinates).
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
        })
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
