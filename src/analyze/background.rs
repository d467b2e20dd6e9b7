//! Class-agnostic static foreground: finds things that were put down and stayed, whatever they
//! are. COCO has no class for a garbage bag or a rubble pile, so the detector alone cannot see
//! most dumped waste.
//!
//! Two running averages of a downscaled grey picture, with time constants in seconds (so they
//! behave the same at one picture every 2 s and at 2 per second):
//! - the **short-term** background follows the scene within seconds;
//! - the **long-term** background remembers how the spot looked minutes ago.
//!
//! A cell that differs from the long-term background, but matches the current picture and the
//! short-term background, is **static foreground**: something new that stopped moving. People
//! walking by differ from the short-term background as well, so they are not static.
//!
//! A global change (a cloud, street lights, the day/night IR switch) changes most cells at once;
//! instead of reporting it, the model re-learns both backgrounds from the current picture.
//! Compression noise is absorbed by a difference threshold and by removing isolated cells.

use super::grey::GreyFrame;
use crate::geometry::BBox;

/// Background model settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BackgroundConfig {
    /// Width of the grid in cells (height follows the aspect ratio); a wider grey picture is
    /// averaged down to it.
    pub grid_width: u32,
    /// Time constant of the short-term background, seconds.
    pub short_tau_s: f64,
    /// Time constant of the long-term background, seconds.
    pub long_tau_s: f64,
    /// Grey-level difference (0..255) that counts as a change.
    pub threshold: f32,
    /// Share of cells that must change at once for a global change (re-learn).
    pub global_change_share: f32,
    /// Smallest static blob, in cells.
    pub min_cells: usize,
    /// Largest static blob, as a share of the grid. Static cells covering more than this share in
    /// total are a scene change (re-learned), not an object.
    pub max_share: f32,
    /// Cells differing from the long-term background (settled or not) covering more than this
    /// share are a scene change (the camera moved, half the scene repainted by light), re-learned
    /// before it settles into a patchwork of blobs.
    pub max_differing_share: f32,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            grid_width: 160,
            short_tau_s: 4.0,
            long_tau_s: 300.0,
            threshold: 12.0,
            global_change_share: 0.35,
            min_cells: 6,
            max_share: 0.25,
            max_differing_share: 0.45,
        }
    }
}

/// A static foreground region.
#[derive(Clone, Debug, PartialEq)]
pub struct StaticBlob {
    /// Bounding box in source pixels.
    pub bbox: BBox,
    /// Number of grid cells.
    pub cells: usize,
    /// Mean absolute difference from the long-term background (grey levels).
    pub contrast: f32,
}

/// What one update found.
#[derive(Clone, Debug, PartialEq)]
pub enum BackgroundUpdate {
    /// The first picture (or a new size): the model learned it.
    Learned,
    /// Most of the scene changed at once, or too much of it settled into something new: both
    /// backgrounds were re-learned.
    GlobalChange {
        /// Share of cells that changed.
        share: f32,
    },
    /// A normal update, with the static blobs found.
    Blobs(Vec<StaticBlob>),
}

/// Which picture [`BackgroundModel::patch`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The latest picture.
    Current,
    /// The long-term background (the scene as it was minutes ago).
    LongTerm,
}

/// One camera's background model.
#[derive(Clone, Debug)]
pub struct BackgroundModel {
    cfg: BackgroundConfig,
    src: (u32, u32),
    input: (u32, u32),
    grid: (usize, usize),
    short: Vec<f32>,
    long: Vec<f32>,
    current: Vec<f32>,
    /// Whether the long-term background of a cell has been seen free of actors.
    trusted: Vec<bool>,
    /// Scene-wide light of the current picture relative to the long-term background:
    /// `current ≈ gain × long + offset`.
    gain: f32,
    /// See `gain`.
    offset: f32,
    last: Option<f64>,
}

impl BackgroundModel {
    /// New settings from a reload; what is followed is kept.
    pub fn reconfigure(&mut self, cfg: BackgroundConfig) {
        self.cfg = cfg;
    }

    /// An empty model.
    pub fn new(cfg: BackgroundConfig) -> Self {
        BackgroundModel {
            cfg,
            src: (0, 0),
            input: (0, 0),
            grid: (0, 0),
            short: vec![],
            long: vec![],
            current: vec![],
            trusted: vec![],
            gain: 1.0,
            offset: 0.0,
            last: None,
        }
    }

    /// Grid size (width, height) in cells.
    pub fn grid(&self) -> (usize, usize) {
        self.grid
    }

    /// Averages `luma` (`width × height`, row-major) into the grid.
    fn downscale(&mut self, luma: &[u8], width: u32, height: u32) {
        let (gw, gh) = self.grid;
        let (w, h) = (width as usize, height as usize);
        self.current.clear();
        self.current.resize(gw * gh, 0.0);
        let mut counts = vec![0u32; gw * gh];
        for (y, row) in luma.chunks_exact(w).take(h).enumerate() {
            let gy = y * gh / h;
            for (x, &v) in row.iter().enumerate() {
                let i = gy * gw + x * gw / w;
                self.current[i] += f32::from(v);
                counts[i] += 1;
            }
        }
        for (c, n) in self.current.iter_mut().zip(counts) {
            *c /= n.max(1) as f32;
        }
    }

    /// Feeds the grey picture taken at `now` (seconds). Cells inside the `hold` boxes (source
    /// pixels: objects the analyzer is following, actors) keep their long-term background, so an
    /// object that stays for hours, or a car parked on the spot, is never learned into the scene.
    /// Returns what changed.
    #[allow(clippy::needless_range_loop)] // four grids indexed in step
    pub fn update(&mut self, now: f64, grey: &GreyFrame, hold: &[BBox]) -> BackgroundUpdate {
        let (width, height) = (grey.width, grey.height);
        if width == 0 || height == 0 || grey.data.len() < width as usize * height as usize {
            return BackgroundUpdate::Blobs(vec![]);
        }
        let src = (grey.source_width.max(1), grey.source_height.max(1));
        if self.src != src || self.input != (width, height) || self.last.is_none() {
            let gw = (self.cfg.grid_width as usize).min(width as usize).max(1);
            let gh = ((height as usize * gw) / width as usize).max(1);
            self.src = src;
            self.input = (width, height);
            self.grid = (gw, gh);
            self.downscale(&grey.data, width, height);
            self.short = self.current.clone();
            self.long = self.current.clone();
            // What stands in held boxes (people, vehicles) now is not the background: those cells
            // take the first picture that shows them free.
            self.trusted = self.cells_in(hold).iter().map(|h| !h).collect();
            self.last = Some(now);
            return BackgroundUpdate::Learned;
        }
        let dt = (now - self.last.unwrap_or(now)).max(0.0);
        self.last = Some(now.max(self.last.unwrap_or(now)));
        self.downscale(&grey.data, width, height);

        let t = self.cfg.threshold;
        let changed = self
            .current
            .iter()
            .zip(&self.short)
            .filter(|(c, s)| (*c - *s).abs() > t)
            .count();
        let share = changed as f32 / self.current.len() as f32;
        let held = self.cells_in(hold);
        if share >= self.cfg.global_change_share {
            self.relearn_all(&held);
            return BackgroundUpdate::GlobalChange { share };
        }

        for i in 0..self.current.len() {
            if !self.trusted[i] && !held[i] {
                self.long[i] = self.current[i];
                self.short[i] = self.current[i];
                self.trusted[i] = true;
            }
        }
        let a_short = (1.0 - (-dt / self.cfg.short_tau_s).exp()) as f32;
        let a_long = (1.0 - (-dt / self.cfg.long_tau_s).exp()) as f32;
        // Light that changed too slowly for a global re-learn (dusk, a slow cloud) shifts the
        // whole scene against the long-term background: compare with the long-term background
        // mapped to the current light instead (see `scene_light`).
        // Keep the fit only if it explains more of the scene than no change of light does (half
        // the scene repainted is not a change of light).
        let (fit_gain, fit_offset) = scene_light(&self.current, &self.long);
        let explained = |gain: f32, offset: f32| {
            self.current
                .iter()
                .zip(&self.long)
                .filter(|(c, l)| (**c - (**l * gain + offset)).abs() <= t)
                .count()
        };
        let (by_fit, unchanged) = (explained(fit_gain, fit_offset), explained(1.0, 0.0));
        // A change of light moves the whole scene along one line: the fit explains most cells.
        (self.gain, self.offset) = if by_fit > unchanged && by_fit * 10 >= self.current.len() * 7 {
            (fit_gain, fit_offset)
        } else {
            (1.0, 0.0)
        };
        let (g, o) = (self.gain, self.offset);
        let mut mask = vec![false; self.current.len()];
        for (i, m) in mask.iter_mut().enumerate() {
            let (c, s, l) = (self.current[i], self.short[i], self.long[i] * g + o);
            // New relative to minutes ago, settled relative to seconds ago. A spot that looks
            // just as it did minutes ago is not new, whatever the light fit says: bright, clipped
            // colours do not follow a change of light.
            let raw = (c - self.long[i]).abs();
            *m = self.trusted[i]
                && (c - l).abs() > t
                && raw > t * 0.5
                && (s - l).abs() > t
                && (c - s).abs() <= t;
        }
        for i in 0..self.current.len() {
            self.short[i] += a_short * (self.current[i] - self.short[i]);
            if !held[i] {
                self.long[i] += a_long * (self.current[i] - self.long[i]);
            }
        }
        let differing = (0..self.current.len())
            .filter(|&i| (self.current[i] - (self.long[i] * g + o)).abs() > t)
            .count() as f32
            / self.current.len() as f32;
        if differing > self.cfg.max_differing_share {
            self.relearn_all(&held);
            return BackgroundUpdate::GlobalChange { share: differing };
        }
        let mask = remove_isolated(&mask, self.grid);
        // Too much of the scene settled into something new at once (half the scene relit, the
        // camera knocked): a scene change, not an object. Re-learn.
        let static_share = mask.iter().filter(|m| **m).count() as f32 / mask.len() as f32;
        if static_share > self.cfg.max_share {
            self.relearn_all(&held);
            return BackgroundUpdate::GlobalChange {
                share: static_share,
            };
        }
        BackgroundUpdate::Blobs(self.blobs(&mask))
    }

    /// Re-learns the whole scene after a global change. Held cells (objects followed, actors)
    /// must not be learned as background: their long-term background is shifted by the change
    /// seen on the rest of the scene (the median difference), so a person who walks away after
    /// a cloud passed leaves no "hole", and a followed object stays foreground.
    #[allow(clippy::needless_range_loop)] // three grids indexed in step
    fn relearn_all(&mut self, held: &[bool]) {
        let mut diffs: Vec<f32> = (0..self.current.len())
            .filter(|i| !held[*i])
            .map(|i| self.current[i] - self.long[i])
            .collect();
        let shift = if diffs.is_empty() {
            0.0
        } else {
            let mid = diffs.len() / 2;
            *diffs.select_nth_unstable_by(mid, f32::total_cmp).1
        };
        for i in 0..self.current.len() {
            if held[i] {
                self.long[i] = (self.long[i] + shift).clamp(0.0, 255.0);
            } else {
                self.long[i] = self.current[i];
            }
            self.short[i] = self.current[i];
        }
    }

    /// Makes the current picture the background inside `bbox` (source pixels): used when an
    /// object the analyzer followed is gone, or a region is known not to be an object.
    pub fn relearn(&mut self, bbox: &BBox) {
        let Some((x0, y0, x1, y1)) = self.cell_range(bbox, 0.0) else {
            return;
        };
        let gw = self.grid.0;
        for y in y0..y1 {
            for x in x0..x1 {
                let i = y * gw + x;
                self.short[i] = self.current[i];
                self.long[i] = self.current[i];
            }
        }
    }

    /// The cells of `bbox` (source pixels) grown by `margin` of its size on every side, as
    /// `(x0, y0, x1, y1)` with exclusive ends; `None` before the first picture or if empty.
    fn cell_range(&self, bbox: &BBox, margin: f32) -> Option<(usize, usize, usize, usize)> {
        let (gw, gh) = self.grid;
        if gw == 0 || gh == 0 {
            return None;
        }
        let (sx, sy) = (gw as f32 / self.src.0 as f32, gh as f32 / self.src.1 as f32);
        let (mx, my) = ((bbox.x2 - bbox.x1) * margin, (bbox.y2 - bbox.y1) * margin);
        let x0 = (((bbox.x1 - mx) * sx).floor().max(0.0) as usize).min(gw);
        let y0 = (((bbox.y1 - my) * sy).floor().max(0.0) as usize).min(gh);
        let x1 = (((bbox.x2 + mx) * sx).ceil().max(0.0) as usize).min(gw);
        let y1 = (((bbox.y2 + my) * sy).ceil().max(0.0) as usize).min(gh);
        (x1 > x0 && y1 > y0).then_some((x0, y0, x1, y1))
    }

    fn cells_in(&self, boxes: &[BBox]) -> Vec<bool> {
        let gw = self.grid.0;
        let mut held = vec![false; self.current.len()];
        for b in boxes {
            if let Some((x0, y0, x1, y1)) = self.cell_range(b, 0.0) {
                for y in y0..y1 {
                    held[y * gw + x0..y * gw + x1].fill(true);
                }
            }
        }
        held
    }

    /// Edge strength (mean absolute difference between neighbouring cells) inside `bbox` grown
    /// by `margin`, in the current picture or in the long-term background (scaled to the current
    /// light). A real object brings its outline into the current picture; a "ghost" — ground
    /// uncovered where the background had learned something that has left — has the outline in
    /// the long-term background instead.
    pub fn edge_strength(&self, layer: Layer, bbox: &BBox, margin: f32) -> f32 {
        let Some((x0, y0, x1, y1)) = self.cell_range(bbox, margin) else {
            return 0.0;
        };
        let (source, scale) = match layer {
            Layer::Current => (&self.current, 1.0),
            Layer::LongTerm => (&self.long, self.gain),
        };
        let gw = self.grid.0;
        let (mut sum, mut n) = (0.0f32, 0u32);
        for y in y0..y1 {
            for x in x0..x1 {
                let v = source[y * gw + x];
                if x + 1 < x1 {
                    sum += (source[y * gw + x + 1] - v).abs();
                    n += 1;
                }
                if y + 1 < y1 {
                    sum += (source[(y + 1) * gw + x] - v).abs();
                    n += 1;
                }
            }
        }
        if n == 0 { 0.0 } else { sum * scale / n as f32 }
    }

    /// The current picture on the grid, rounded to grey levels (for keeping a short history).
    pub fn current_cells(&self) -> Vec<u8> {
        self.current
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect()
    }

    /// Like [`BackgroundModel::patch`], from grid cells kept earlier by
    /// [`BackgroundModel::current_cells`] (empty if the grid changed size since).
    pub fn patch_of(&self, cells: &[u8], bbox: &BBox, margin: f32) -> Vec<f32> {
        if cells.len() != self.current.len() {
            return vec![];
        }
        let Some((x0, y0, x1, y1)) = self.cell_range(bbox, margin) else {
            return vec![];
        };
        let gw = self.grid.0;
        (y0..y1)
            .flat_map(|y| {
                cells[y * gw + x0..y * gw + x1]
                    .iter()
                    .map(|v| f32::from(*v))
            })
            .collect()
    }

    /// The grey levels of the current picture (`Layer::Current`) or of the long-term background
    /// (`Layer::LongTerm`) inside `bbox` grown by `margin` of its size, row by row; empty before
    /// the first picture. The same box always gives the same cells, so patches taken at
    /// different times compare cell by cell.
    pub fn patch(&self, layer: Layer, bbox: &BBox, margin: f32) -> Vec<f32> {
        let Some((x0, y0, x1, y1)) = self.cell_range(bbox, margin) else {
            return vec![];
        };
        let source = match layer {
            Layer::Current => &self.current,
            Layer::LongTerm => &self.long,
        };
        let gw = self.grid.0;
        (y0..y1)
            .flat_map(|y| source[y * gw + x0..y * gw + x1].iter().copied())
            .collect()
    }

    /// Connected components (4-neighbour) of the mask with the area limits, in source pixels.
    fn blobs(&self, mask: &[bool]) -> Vec<StaticBlob> {
        let (gw, gh) = self.grid;
        let max_cells = (self.cfg.max_share * (gw * gh) as f32) as usize;
        let (sx, sy) = (self.src.0 as f32 / gw as f32, self.src.1 as f32 / gh as f32);
        let mut seen = vec![false; mask.len()];
        let mut out = Vec::new();
        let mut stack = Vec::new();
        for start in 0..mask.len() {
            if !mask[start] || seen[start] {
                continue;
            }
            seen[start] = true;
            stack.push(start);
            let (mut x0, mut y0, mut x1, mut y1) = (gw, gh, 0, 0);
            let (mut cells, mut contrast) = (0usize, 0.0f32);
            while let Some(i) = stack.pop() {
                let (x, y) = (i % gw, i / gw);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
                cells += 1;
                contrast += (self.current[i] - (self.long[i] * self.gain + self.offset)).abs();
                let neighbours = [
                    (x > 0).then(|| i - 1),
                    (x + 1 < gw).then(|| i + 1),
                    (y > 0).then(|| i - gw),
                    (y + 1 < gh).then(|| i + gw),
                ];
                for n in neighbours.into_iter().flatten() {
                    if mask[n] && !seen[n] {
                        seen[n] = true;
                        stack.push(n);
                    }
                }
            }
            if cells >= self.cfg.min_cells && cells <= max_cells {
                out.push(StaticBlob {
                    bbox: BBox {
                        x1: x0 as f32 * sx,
                        y1: y0 as f32 * sy,
                        x2: (x1 + 1) as f32 * sx,
                        y2: (y1 + 1) as f32 * sy,
                    },
                    cells,
                    contrast: contrast / cells as f32,
                });
            }
        }
        out
    }
}

/// How the light of the current picture relates to the long-term background, as
/// `current ≈ gain × long + offset`, fitted robustly: the medians of the darker and of the
/// brighter half of the cells give two points of the line. A camera's exposure change is mostly
/// a gain, a haze or a brightness setting mostly an offset; objects are too few to move medians.
/// `(1, 0)` when the scene is too flat to tell.
fn scene_light(current: &[f32], long: &[f32]) -> (f32, f32) {
    if current.len() < 16 || current.len() != long.len() {
        return (1.0, 0.0);
    }
    let mut order: Vec<usize> = (0..long.len()).collect();
    order.sort_unstable_by(|a, b| long[*a].total_cmp(&long[*b]));
    let median = |idx: &[usize], v: &[f32]| {
        let mut x: Vec<f32> = idx.iter().map(|i| v[*i]).collect();
        let mid = x.len() / 2;
        *x.select_nth_unstable_by(mid, f32::total_cmp).1
    };
    let (dark, bright) = order.split_at(order.len() / 2);
    let (l0, c0) = (median(dark, long), median(dark, current));
    let (l1, c1) = (median(bright, long), median(bright, current));
    if l1 - l0 < 8.0 {
        // Flat scene: a single offset.
        return (1.0, c0 - l0);
    }
    let gain = ((c1 - c0) / (l1 - l0)).clamp(0.3, 3.0);
    (gain, c0 - gain * l0)
}

/// Drops mask cells with fewer than two set 4-neighbours (compression speckle).
fn remove_isolated(mask: &[bool], (gw, gh): (usize, usize)) -> Vec<bool> {
    (0..mask.len())
        .map(|i| {
            if !mask[i] {
                return false;
            }
            let (x, y) = (i % gw, i / gw);
            let n = [
                (x > 0, i.wrapping_sub(1)),
                (x + 1 < gw, i + 1),
                (y > 0, i.wrapping_sub(gw)),
                (y + 1 < gh, i + gw),
            ]
            .iter()
            .filter(|(ok, j)| *ok && mask[*j])
            .count();
            n >= 2
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 320;
    const H: u32 = 180;

    /// A grey scene with mild texture and seeded noise (like compression noise).
    fn scene(level: u8, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..W * H)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let texture = ((i % W) / 40 + (i / W) / 30) as i32 % 3 * 6;
                (i32::from(level) + texture + (s % 9) as i32 - 4).clamp(0, 255) as u8
            })
            .collect()
    }

    fn paint(img: &mut [u8], x: u32, y: u32, w: u32, h: u32, v: u8) {
        for yy in y..y + h {
            for xx in x..x + w {
                img[(yy * W + xx) as usize] = v;
            }
        }
    }

    /// Feeds a full-resolution picture (the model averages it down to its grid).
    fn up(m: &mut BackgroundModel, now: f64, luma: &[u8], w: u32, h: u32) -> BackgroundUpdate {
        let grey = GreyFrame {
            width: w,
            height: h,
            data: luma.to_vec(),
            source_width: w,
            source_height: h,
        };
        m.update(now, &grey, &[])
    }

    fn blobs(u: BackgroundUpdate) -> Vec<StaticBlob> {
        match u {
            BackgroundUpdate::Blobs(b) => b,
            other => panic!("expected blobs, got {other:?}"),
        }
    }

    #[test]
    fn an_object_that_stays_becomes_static_foreground_where_it_lies() {
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        assert_eq!(
            up(&mut m, 0.0, &scene(100, 0), W, H),
            BackgroundUpdate::Learned
        );
        for i in 1..=30 {
            assert!(
                blobs(up(&mut m, i as f64, &scene(100, i), W, H)).is_empty(),
                "noise alone at {i}"
            );
        }
        // A dark bag (40 x 30 px) is put down at t = 31 and stays.
        let mut found = None;
        for i in 31..=60 {
            let mut img = scene(100, i);
            paint(&mut img, 200, 120, 40, 30, 20);
            let b = blobs(up(&mut m, i as f64, &img, W, H));
            if found.is_none() && !b.is_empty() {
                found = Some((i, b));
            }
        }
        let (at, b) = found.expect("the bag became static foreground");
        // Settling takes a few short-term time constants, not minutes.
        assert!(at - 31 <= 12, "found only at {at}");
        assert_eq!(b.len(), 1);
        let bb = b[0].bbox;
        assert!(
            bb.x1 <= 202.0 && bb.x2 >= 238.0 && bb.y1 <= 122.0 && bb.y2 >= 148.0,
            "{bb:?}"
        );
        assert!(bb.x1 >= 190.0 && bb.x2 <= 250.0, "{bb:?}");
    }

    #[test]
    fn something_moving_through_is_never_static() {
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        up(&mut m, 0.0, &scene(100, 0), W, H);
        for i in 1..=40u32 {
            let mut img = scene(100, i);
            // A person-sized dark box crossing the frame at 8 px per picture.
            paint(&mut img, 8 * i % (W - 30), 60, 30, 80, 30);
            assert!(
                blobs(up(&mut m, f64::from(i) * 0.5, &img, W, H)).is_empty(),
                "at {i}"
            );
        }
    }

    #[test]
    fn a_global_brightness_change_is_re_learned_not_reported() {
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        up(&mut m, 0.0, &scene(100, 0), W, H);
        for i in 1..=5 {
            up(&mut m, f64::from(i), &scene(100, i), W, H);
        }
        // A cloud: everything 40 levels darker at once.
        assert!(
            matches!(up(&mut m, 6.0, &scene(60, 6), W, H), BackgroundUpdate::GlobalChange { share } if share > 0.9)
        );
        for i in 7..=40 {
            assert!(
                blobs(up(&mut m, f64::from(i), &scene(60, i), W, H)).is_empty(),
                "at {i}"
            );
        }
    }

    #[test]
    fn tiny_and_huge_regions_are_not_objects() {
        let cfg = BackgroundConfig {
            global_change_share: 0.95,
            ..BackgroundConfig::default()
        };
        let mut m = BackgroundModel::new(cfg);
        up(&mut m, 0.0, &scene(100, 0), W, H);
        for i in 1..=20 {
            let mut img = scene(100, i);
            paint(&mut img, 10, 10, 3, 3, 250); // a speck: below min_cells
            paint(&mut img, 0, 90, W, 90, 200); // half the frame: above max_share
            match up(&mut m, f64::from(i), &img, W, H) {
                BackgroundUpdate::Blobs(b) => assert!(b.is_empty(), "at {i}: {b:?}"),
                BackgroundUpdate::GlobalChange { .. } => {}
                BackgroundUpdate::Learned => panic!("at {i}: unexpected re-learn"),
            }
        }
    }

    #[test]
    fn a_new_size_or_bad_input_does_not_panic() {
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        up(&mut m, 0.0, &scene(100, 0), W, H);
        assert_eq!(
            up(&mut m, 1.0, &vec![7u8; 64 * 48], 64, 48),
            BackgroundUpdate::Learned
        );
        assert_eq!(
            up(&mut m, 2.0, &[1, 2, 3], 64, 48),
            BackgroundUpdate::Blobs(vec![])
        );
        assert_eq!(up(&mut m, 3.0, &[], 0, 0), BackgroundUpdate::Blobs(vec![]));
        assert_eq!(m.grid(), (64, 48));
    }
}
