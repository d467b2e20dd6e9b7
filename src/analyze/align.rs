//! Global motion of a shaking camera: how far a picture's grey grid is shifted against the
//! background, and the picture moved back into the background's place.
//!
//! A pole-mounted camera in the wind sees the whole scene move by a few pixels from one picture
//! to the next. Compared cell by cell with a background learned still, every edge of the scene
//! (a wall top, a doorway) would differ and, where the shake settles for a moment, look like a
//! new static object. The shift is found by trying every whole-cell offset up to a limit and
//! keeping the one under which the picture differs least from the background (mean absolute
//! difference, less the picture's light: the median difference; each cell's difference capped
//! so that people walking by do not decide); it is refined to a fraction of a cell by a parabola
//! through the neighbouring costs. The picture is then resampled (bilinear) into the
//! background's frame.
//!
//! A still camera's shift is a small fraction of a cell: below [`MIN_SHIFT`] nothing is moved,
//! so a still camera is analysed exactly as before.

/// Shifts smaller than this (cells) are left alone: resampling would only blur the picture.
pub const MIN_SHIFT: f32 = 0.2;
/// A cell's difference counts up to this many grey levels (people and cars count no more than
/// an edge moved by a cell).
const CAP: f32 = 48.0;

/// How a picture lies against the background.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shift {
    /// Horizontal shift of the picture's content, cells (positive: moved right).
    pub dx: f32,
    /// Vertical shift, cells (positive: moved down).
    pub dy: f32,
    /// Whether the best offset lies on the search limit: the camera moved further than it may
    /// shake (or the estimate is not to be trusted).
    pub at_limit: bool,
}

impl Shift {
    /// No shift.
    pub const NONE: Shift = Shift {
        dx: 0.0,
        dy: 0.0,
        at_limit: false,
    };

    /// Whether the picture must be moved back before comparing it with the background.
    pub fn matters(&self) -> bool {
        self.dx.abs() >= MIN_SHIFT || self.dy.abs() >= MIN_SHIFT
    }
}

/// The shift of `picture` against `reference`, both grids of `grid` = (width, height) cells,
/// searched up to `limit` cells each way.
pub fn estimate(reference: &[f32], picture: &[f32], grid: (usize, usize), limit: usize) -> Shift {
    let (gw, gh) = grid;
    let l = limit as isize;
    if gw <= 2 * limit + 2 || gh <= 2 * limit + 2 || reference.len() != gw * gh {
        return Shift::NONE;
    }
    if picture.len() != reference.len() {
        return Shift::NONE;
    }
    // The light of the picture against the reference: the median difference of the inner cells
    // (people in the picture, and the edges a shake moves, do not shift the median).
    let mut differences: Vec<f32> = (limit..gh - limit)
        .flat_map(|y| (limit..gw - limit).map(move |x| y * gw + x))
        .map(|i| picture[i] - reference[i])
        .collect();
    let mid = differences.len() / 2;
    let light = *differences.select_nth_unstable_by(mid, f32::total_cmp).1;
    // Compared over the inner cells, so that every offset compares the same reference cells.
    let cost = |sx: isize, sy: isize| -> f32 {
        let mut total = 0.0f32;
        let inner = gw - 2 * limit;
        for y in limit..gh - limit {
            let py = (y as isize + sy) as usize;
            let px = (limit as isize + sx) as usize;
            let r = &reference[y * gw + limit..y * gw + limit + inner];
            let p = &picture[py * gw + px..py * gw + px + inner];
            total += r
                .iter()
                .zip(p)
                .map(|(r, p)| (p - light - r).abs().min(CAP))
                .sum::<f32>();
        }
        total
    };
    let side = 2 * limit + 1;
    let mut costs = vec![0.0f32; side * side];
    let mut best = (0isize, 0isize, f32::INFINITY);
    for sy in -l..=l {
        for sx in -l..=l {
            let c = cost(sx, sy);
            costs[((sy + l) as usize) * side + (sx + l) as usize] = c;
            // Ties go to the smaller shift (a still camera stays still).
            if c < best.2 || (c == best.2 && sx.abs() + sy.abs() < best.0.abs() + best.1.abs()) {
                best = (sx, sy, c);
            }
        }
    }
    let (bx, by, _) = best;
    let at = |sx: isize, sy: isize| costs[((sy + l) as usize) * side + (sx + l) as usize];
    // A parabola through the best cost and its two neighbours, on each axis.
    let refine = |minus: f32, here: f32, plus: f32| {
        let curvature = minus - 2.0 * here + plus;
        if curvature > 1e-6 {
            (0.5 * (minus - plus) / curvature).clamp(-0.5, 0.5)
        } else {
            0.0
        }
    };
    let fx = if bx.abs() < l {
        refine(at(bx - 1, by), at(bx, by), at(bx + 1, by))
    } else {
        0.0
    };
    let fy = if by.abs() < l {
        refine(at(bx, by - 1), at(bx, by), at(bx, by + 1))
    } else {
        0.0
    };
    Shift {
        dx: bx as f32 + fx,
        dy: by as f32 + fy,
        at_limit: bx.abs() == l || by.abs() == l,
    }
}

/// A grid cell's value(s), blended linearly when a picture is moved back.
pub trait Cell: Copy {
    /// `self + t × (other − self)`.
    fn lerp(self, other: Self, t: f32) -> Self;
}

impl Cell for f32 {
    fn lerp(self, other: f32, t: f32) -> f32 {
        self + t * (other - self)
    }
}

impl<const N: usize> Cell for [f32; N] {
    fn lerp(self, other: [f32; N], t: f32) -> [f32; N] {
        std::array::from_fn(|k| self[k].lerp(other[k], t))
    }
}

/// `cells` (a grid of `grid` cells) moved back by `shift` into `out`: the value of each cell is
/// read where the shifted content lies (bilinear between cells, the edge repeated). `out` is
/// reused (no allocation once it has the grid's size).
pub fn moved_back_into<T: Cell>(cells: &[T], grid: (usize, usize), shift: Shift, out: &mut Vec<T>) {
    let (gw, gh) = grid;
    out.clear();
    if cells.len() != gw * gh || gw == 0 || gh == 0 {
        out.extend_from_slice(cells);
        return;
    }
    let read = |x: isize, y: isize| {
        let x = x.clamp(0, gw as isize - 1) as usize;
        let y = y.clamp(0, gh as isize - 1) as usize;
        cells[y * gw + x]
    };
    let (x0, fx) = (shift.dx.floor() as isize, shift.dx - shift.dx.floor());
    let (y0, fy) = (shift.dy.floor() as isize, shift.dy - shift.dy.floor());
    for y in 0..gh as isize {
        for x in 0..gw as isize {
            let top = read(x + x0, y + y0).lerp(read(x + x0 + 1, y + y0), fx);
            let bottom = read(x + x0, y + y0 + 1).lerp(read(x + x0 + 1, y + y0 + 1), fx);
            out.push(top.lerp(bottom, fy));
        }
    }
}

/// [`moved_back_into`] a new grid.
pub fn moved_back<T: Cell>(cells: &[T], grid: (usize, usize), shift: Shift) -> Vec<T> {
    let mut out = Vec::with_capacity(cells.len());
    moved_back_into(cells, grid, shift, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured street (a wall, a doorway, paving) seen through a camera moved by (dx, dy)
    /// cells: each cell the mean of the scene over its area, as the grey grid is made.
    fn scene(gw: usize, gh: usize, dx: f32, dy: f32) -> Vec<f32> {
        let at = |x: f32, y: f32| {
            let wall = if y > 20.0 + 0.2 * x { 60.0 } else { 0.0 };
            let door = if (30.0..38.0).contains(&x) && y > 40.0 {
                50.0
            } else {
                0.0
            };
            100.0 + wall + door + 20.0 * (x / 7.0).sin() + 15.0 * (y / 5.0).cos()
        };
        (0..gw * gh)
            .map(|i| {
                let (cx, cy) = ((i % gw) as f32 - dx, (i / gw) as f32 - dy);
                let mut sum = 0.0;
                for k in 0..16 {
                    sum += at(cx + (k % 4) as f32 / 4.0, cy + (k / 4) as f32 / 4.0);
                }
                sum / 16.0
            })
            .collect()
    }

    #[test]
    fn a_shift_is_found_to_a_fraction_of_a_cell_and_moved_back() {
        let (gw, gh) = (80, 60);
        let reference = scene(gw, gh, 0.0, 0.0);
        for (dx, dy) in [(0.0, 0.0), (1.0, -1.0), (0.6, 0.3), (-1.4, 1.2), (2.0, 0.5)] {
            let picture = scene(gw, gh, dx, dy);
            let s = estimate(&reference, &picture, (gw, gh), 3);
            assert!(
                (s.dx - dx).abs() < 0.25 && (s.dy - dy).abs() < 0.25 && !s.at_limit,
                "({dx}, {dy}) estimated as {s:?}"
            );
            let cells: Vec<[f32; 1]> = picture.iter().map(|v| [*v]).collect();
            let back = moved_back(&cells, (gw, gh), s);
            // Inside the margin: the mean difference from the reference halves at least; after
            // a whole-cell shift no cell differs by the background's change threshold (12). (A
            // fractional shift leaves part of each edge: the background compares such cells
            // with their neighbours' background while the camera shakes.)
            let inner: Vec<usize> = (4..gh - 4)
                .flat_map(|y| (4..gw - 4).map(move |x| y * gw + x))
                .collect();
            let mean = |v: &dyn Fn(usize) -> f32| {
                inner
                    .iter()
                    .map(|&i| (v(i) - reference[i]).abs())
                    .sum::<f32>()
                    / inner.len() as f32
            };
            let (before, after) = (mean(&|i| picture[i]), mean(&|i| back[i][0]));
            assert!(
                after * 2.0 <= before || before < 0.5,
                "({dx}, {dy}): mean difference {before} before, {after} after"
            );
            if dx.fract() == 0.0 && dy.fract() == 0.0 {
                assert!(
                    inner
                        .iter()
                        .all(|&i| (back[i][0] - reference[i]).abs() < 12.0)
                );
            }
        }
    }

    #[test]
    fn a_still_picture_with_people_walking_is_not_shifted() {
        let (gw, gh) = (80, 60);
        let reference = scene(gw, gh, 0.0, 0.0);
        let mut picture = reference.clone();
        // Two bright figures, 6×14 cells each.
        for (fx, fy) in [(20usize, 30usize), (55, 25)] {
            for y in fy..fy + 14 {
                for x in fx..fx + 6 {
                    picture[y * gw + x] = 230.0;
                }
            }
        }
        let s = estimate(&reference, &picture, (gw, gh), 3);
        assert!(!s.matters(), "{s:?}");
    }

    #[test]
    fn a_move_beyond_the_limit_is_flagged() {
        let (gw, gh) = (80, 60);
        let s = estimate(
            &scene(gw, gh, 0.0, 0.0),
            &scene(gw, gh, 6.0, 0.0),
            (gw, gh),
            3,
        );
        assert!(s.at_limit, "{s:?}");
    }
}
