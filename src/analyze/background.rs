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
//! Each cell has a grey level and, when the picture has colour, a chroma (U, V): a cell is new if
//! either differs. Waste is often about as bright as the ground it lies on but of another colour
//! (grey rubble or a blue bag on grass), and a change of light moves the grey levels far more than
//! the colours.
//!
//! A global change (a cloud, street lights, the day/night IR switch) changes most cells at once;
//! instead of reporting it, the model re-learns: it maps the long-term background to the new
//! light, takes the current picture where the scene does not follow one light, and watches those
//! cells for a while (the picture may show a passer-by the detector missed).
//! Light that changes slowly is followed by fitting the scene's brightness to the long-term
//! background; a spot that changed less than the light did (a lamp, a sign, a clipped bright
//! colour) is a surface that does not follow the light, not a new object.
//! Compression noise is absorbed by a difference threshold and by removing isolated cells.

use super::align::{self, Shift};
use super::grey::GreyFrame;
use crate::geometry::BBox;

/// The largest shake followed, in grid cells each way (at the default 160-cell grid on a 768-pixel
/// wide picture, 3 cells are 14 pixels: a pole in strong wind shakes by a few).
const SHAKE_LIMIT_CELLS: usize = 3;
/// Pictures shifted beyond the shake limit for this long (seconds): the camera was moved, and
/// the scene is learned anew.
const MOVED_AFTER_S: f64 = 5.0;
/// A camera counts as shaking for this long (seconds) after a picture that had to be moved back
/// (the backgrounds keep the edges the shake smeared for a while).
const SHAKE_MEMORY_S: f64 = 60.0;
/// A camera starts counting as shaking when at least [`SHAKE_VOTES`] of its last
/// [`SHAKE_WINDOW`] pictures were shifted by [`align::MIN_SHIFT`] or more: a still camera's
/// estimate crosses that now and then (a crowd, a passing bus), a shaking one all the time.
const SHAKE_WINDOW: usize = 5;
/// See [`SHAKE_WINDOW`].
const SHAKE_VOTES: usize = 3;

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
    /// Colour difference (|ΔU| + |ΔV|, chroma levels) that counts as a change.
    pub colour_threshold: f32,
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
    /// Follow a shaking camera (see [`super::align`]): undo each picture's shift, and while it
    /// shakes count a cell as new only if it differs from its neighbours' background too.
    pub shake_compensation: bool,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            grid_width: 160,
            short_tau_s: 4.0,
            long_tau_s: 300.0,
            threshold: 12.0,
            colour_threshold: 12.0,
            global_change_share: 0.35,
            min_cells: 6,
            max_share: 0.25,
            max_differing_share: 0.45,
            shake_compensation: true,
        }
    }
}

/// What the background must not learn from a picture (boxes in source pixels).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Held {
    /// The objects the analyzer follows, each with its patch: they stay foreground however long
    /// they stay.
    pub objects: Vec<BBox>,
    /// The actors seen now or a moment ago (people, vehicles): what they stand on is learned once
    /// they have left it.
    pub actors: Vec<BBox>,
}

impl Held {
    /// Every held box, objects and actors.
    fn all(&self) -> impl Iterator<Item = &BBox> {
        self.objects.iter().chain(&self.actors)
    }
}

/// A static foreground region.
#[derive(Clone, Debug, PartialEq)]
pub struct StaticBlob {
    /// Bounding box in source pixels.
    pub bbox: BBox,
    /// Number of grid cells.
    pub cells: usize,
    /// Mean difference from the long-term background, in grey levels (a colour difference
    /// counts as the grey-level difference that is as far above its threshold).
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

/// The picture of a region at one moment, cell by cell: grey levels, and chroma when the picture
/// has colour. The same box always gives the same cells, so patches taken at different times
/// compare cell by cell ([`Patch::distance`]).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Patch {
    luma: Vec<f32>,
    chroma: Vec<[f32; 2]>,
}

impl Patch {
    /// Number of cells (0 before the first picture).
    pub fn len(&self) -> usize {
        self.luma.len()
    }

    /// Whether the patch has no cells.
    pub fn is_empty(&self) -> bool {
        self.luma.is_empty()
    }

    /// Whether `other` covers the same cells in the same way (comparable).
    pub fn matches(&self, other: &Patch) -> bool {
        !self.is_empty() && self.len() == other.len() && self.chroma.len() == other.chroma.len()
    }

    /// Mean grey level.
    pub fn mean_luma(&self) -> f32 {
        if self.luma.is_empty() {
            0.0
        } else {
            self.luma.iter().sum::<f32>() / self.luma.len() as f32
        }
    }

    /// Mean chroma (U, V), `None` for a grey patch.
    pub fn mean_chroma(&self) -> Option<[f32; 2]> {
        if self.chroma.is_empty() {
            return None;
        }
        let n = self.chroma.len() as f32;
        let sum = self
            .chroma
            .iter()
            .fold([0.0, 0.0], |s, c| [s[0] + c[0], s[1] + c[1]]);
        Some([sum[0] / n, sum[1] / n])
    }

    /// How different two patches look: the mean absolute difference per cell of the grey levels
    /// plus that of the chroma, each after removing the patch's own mean (so a uniform change of
    /// brightness or tint does not count). Infinite if they do not match.
    pub fn distance(&self, other: &Patch) -> f32 {
        if !self.matches(other) {
            return f32::INFINITY;
        }
        let luma = zero_mean_distance(self.luma.iter().copied(), other.luma.iter().copied());
        let chroma: f32 = (0..2)
            .map(|k| {
                zero_mean_distance(
                    self.chroma.iter().map(|c| c[k]),
                    other.chroma.iter().map(|c| c[k]),
                )
            })
            .sum();
        luma + chroma
    }

    /// Moves this patch a `rate` share of the way towards `other` (following slow light
    /// changes on an object); nothing if they do not match.
    pub fn follow(&mut self, other: &Patch, rate: f32) {
        if !self.matches(other) {
            return;
        }
        for (a, b) in self.luma.iter_mut().zip(&other.luma) {
            *a += rate * (b - *a);
        }
        for (a, b) in self.chroma.iter_mut().zip(&other.chroma) {
            a[0] += rate * (b[0] - a[0]);
            a[1] += rate * (b[1] - a[1]);
        }
    }
}

/// Mean absolute difference of two equally long series after removing each one's mean.
fn zero_mean_distance(
    a: impl Iterator<Item = f32> + Clone,
    b: impl Iterator<Item = f32> + Clone,
) -> f32 {
    let n = a.clone().count();
    if n == 0 {
        return 0.0;
    }
    let (ma, mb) = (
        a.clone().sum::<f32>() / n as f32,
        b.clone().sum::<f32>() / n as f32,
    );
    a.zip(b)
        .map(|(x, y)| ((x - ma) - (y - mb)).abs())
        .sum::<f32>()
        / n as f32
}

/// Colour difference of two cells: |ΔU| + |ΔV|.
fn colour_diff(a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - b[0]).abs() + (a[1] - b[1]).abs()
}

/// How far (as a share of its difference from the long-term background) the short-term
/// background must have followed a cell before the cell counts as new. Not all the way: the
/// short-term background takes `−τ·ln(1 − share·t/contrast)` seconds to get there, which for a
/// faint object (contrast just above the threshold `t`) would be several time constants, more
/// when people walking by pull it back; a pedestrian crossing the spot is kept out by the
/// "settled" test, not by this.
const SHORT_SHARE: f32 = 0.5;

/// Seconds a cell learned from the one picture of a scene re-learn stays provisional (see
/// [`BackgroundModel::relearn_all`]): long enough for a passer-by the detector missed to walk on
/// and the ground to settle, short enough that something put down there later is not learned.
const PROVISIONAL_S: f64 = 30.0;

/// Seconds an object that differs from the ground by `contrast` grey levels takes to become
/// static foreground once put down: until the picture is within the threshold of the short-term
/// background (settled), and the short-term background has followed [`SHORT_SHARE`] of the
/// threshold. How long ago an object that just became static was put down. Capped at three time
/// constants.
pub fn time_to_static(contrast: f32, cfg: &BackgroundConfig) -> f64 {
    let (t, tau) = (f64::from(cfg.threshold.max(1.0)), cfg.short_tau_s);
    let contrast = f64::from(contrast).max(t);
    let settled = tau * (contrast / t).ln();
    let followed = -tau * (1.0 - f64::from(SHORT_SHARE) * t / contrast).ln();
    settled.max(followed).min(3.0 * tau)
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
    /// Chroma of the short-term background, the long-term background and the latest picture;
    /// empty when the pictures have no colour.
    short_c: Vec<[f32; 2]>,
    /// See `short_c`.
    long_c: Vec<[f32; 2]>,
    /// See `short_c`.
    current_c: Vec<[f32; 2]>,
    /// Whether the long-term background of a cell has been seen free of the hold boxes (since
    /// the start, or since the cell was re-learned).
    trusted: Vec<bool>,
    /// Until when (seconds) a cell's long-term background is provisional: it was learned from
    /// the one picture taken at a scene re-learn ([`BackgroundModel::relearn_all`]), which may
    /// show someone passing undetected. Until then, a cell that settles into something other
    /// than its background takes the picture instead of becoming static foreground: the
    /// passer-by has left and the ground shows. `NEG_INFINITY`: not provisional. Empty while no
    /// cell is provisional (most cameras never re-learn: 115 KB a camera saved).
    provisional_until: Vec<f64>,
    /// Scene-wide light of the current picture relative to the long-term background:
    /// `current ≈ gain × long + offset`.
    gain: f32,
    /// See `gain`.
    offset: f32,
    last: Option<f64>,
    /// The latest picture's shift against the long-term background (the camera shaking).
    shift: Shift,
    /// Since when the pictures have been shifted further than a camera shakes, if they are.
    moved_since: Option<f64>,
    /// Until when (seconds) the camera counts as shaking: a cell is new only if it differs from
    /// the background of every neighbouring cell too (what is left of an edge after moving the
    /// picture back, or an edge the background learned at several places, is not new).
    shaking_until: f64,
    /// Whether the latest picture was taken while shaking (see `shaking_until`).
    shaking: bool,
    /// Whether each of the last [`SHAKE_WINDOW`] pictures was shifted enough to matter.
    recent_shifts: std::collections::VecDeque<bool>,
    /// Spare grids a shaking camera's picture is moved back into (kept to be reused).
    spare: Vec<f32>,
    /// See `spare`.
    spare_c: Vec<[f32; 2]>,
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
            short_c: vec![],
            long_c: vec![],
            current_c: vec![],
            trusted: vec![],
            provisional_until: vec![],
            gain: 1.0,
            offset: 0.0,
            last: None,
            shift: Shift::NONE,
            moved_since: None,
            shaking_until: f64::NEG_INFINITY,
            shaking: false,
            recent_shifts: std::collections::VecDeque::with_capacity(SHAKE_WINDOW),
            spare: Vec::new(),
            spare_c: Vec::new(),
        }
    }

    /// The latest picture's light against the long-term background: `current ≈ gain × long +
    /// offset`, as `(gain, offset)`.
    pub fn light(&self) -> (f32, f32) {
        (self.gain, self.offset)
    }

    /// The latest picture's shift against the background, in cells (see [`super::align`]).
    pub fn shift(&self) -> Shift {
        self.shift
    }

    /// Whether the camera counts as shaking: pictures are moved back, and a spot is new only if
    /// it differs from its neighbours' background too.
    pub fn shaking(&self) -> bool {
        self.shaking
    }

    /// The grey cells of a layer, row-major on [`BackgroundModel::grid`] (the current picture
    /// moved back when the camera shakes).
    pub fn cells(&self, layer: Layer) -> &[f32] {
        match layer {
            Layer::Current => &self.current,
            Layer::LongTerm => &self.long,
        }
    }

    /// Grid size (width, height) in cells.
    pub fn grid(&self) -> (usize, usize) {
        self.grid
    }

    /// Averages the grey picture (and its chroma, if it has colour) into the grid.
    fn downscale(&mut self, grey: &GreyFrame) {
        let (gw, gh) = self.grid;
        let (w, h) = (grey.width as usize, grey.height as usize);
        let colour = grey.chroma.len() == w * h;
        self.current.clear();
        self.current.resize(gw * gh, 0.0);
        self.current_c.clear();
        if colour {
            self.current_c.resize(gw * gh, [0.0; 2]);
        }
        let mut counts = vec![0u32; gw * gh];
        for (y, row) in grey.data.chunks_exact(w).take(h).enumerate() {
            let gy = y * gh / h;
            for (x, &v) in row.iter().enumerate() {
                let i = gy * gw + x * gw / w;
                self.current[i] += f32::from(v);
                if colour {
                    let [u, v] = grey.chroma[y * w + x];
                    self.current_c[i][0] += f32::from(u);
                    self.current_c[i][1] += f32::from(v);
                }
                counts[i] += 1;
            }
        }
        for (i, n) in counts.into_iter().enumerate() {
            let n = n.max(1) as f32;
            self.current[i] /= n;
            if colour {
                self.current_c[i][0] /= n;
                self.current_c[i][1] /= n;
            }
        }
    }

    /// Whether the model works with colour.
    fn colour(&self) -> bool {
        !self.current_c.is_empty()
    }

    /// How far cell `i` of the latest picture stands out from the long-term background under the
    /// scene light `current ≈ g × long + o`, in thresholds (above 1: new), and 0 for a cell that
    /// has not settled (it still differs from the short-term background: something moving).
    /// Grey: the smallest of the difference from the long-term background, the same for the
    /// short-term background over [`SHORT_SHARE`] (it has been there a moment, not just in this
    /// picture), and twice the distance outside the band between how the spot looked and how the
    /// light says it should look now (a spot that changed less than the light did is a lamp, a
    /// sign or a clipped bright colour, not something new). Colour: the same two differences of
    /// chroma from the long-term background.
    fn novelty(&self, i: usize, g: f32, o: f32) -> f32 {
        let (t, tc) = (
            self.cfg.threshold.max(1e-3),
            self.cfg.colour_threshold.max(1e-3),
        );
        let (c, s, old) = (self.current[i], self.short[i], self.long[i]);
        let colour = self.colour();
        let settled = (c - s).abs() <= t
            && (!colour || colour_diff(self.current_c[i], self.short_c[i]) <= tc);
        if !self.trusted[i] || !settled {
            return 0.0;
        }
        let l = old * g + o;
        let outside_light = (old.min(l) - c).max(c - old.max(l)).max(0.0);
        let grey = (c - l)
            .abs()
            .min((s - l).abs() / SHORT_SHARE)
            .min(2.0 * outside_light)
            / t;
        let colour = if colour {
            colour_diff(self.current_c[i], self.long_c[i])
                .min(colour_diff(self.short_c[i], self.long_c[i]) / SHORT_SHARE)
                / tc
        } else {
            0.0
        };
        let novelty = grey.max(colour);
        if novelty > 1.0 && self.shaking {
            // Shaking: new only if unlike the background of every neighbouring cell too.
            novelty.min(self.neighbourhood_novelty(i, g, o))
        } else {
            novelty
        }
    }

    /// Novelty of cell `i` against the range of the long-term background over its 3×3
    /// neighbourhood (grey, and each chroma channel), in thresholds.
    fn neighbourhood_novelty(&self, i: usize, g: f32, o: f32) -> f32 {
        let (gw, gh) = self.grid;
        let (x, y) = ((i % gw) as isize, (i / gw) as isize);
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        let (mut lo_c, mut hi_c) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        let colour = self.colour();
        for ny in (y - 1).max(0)..=(y + 1).min(gh as isize - 1) {
            for nx in (x - 1).max(0)..=(x + 1).min(gw as isize - 1) {
                let j = ny as usize * gw + nx as usize;
                let v = self.long[j] * g + o;
                (lo, hi) = (lo.min(v), hi.max(v));
                if colour {
                    for k in 0..2 {
                        lo_c[k] = lo_c[k].min(self.long_c[j][k]);
                        hi_c[k] = hi_c[k].max(self.long_c[j][k]);
                    }
                }
            }
        }
        let outside = |v: f32, lo: f32, hi: f32| (lo - v).max(v - hi).max(0.0);
        let grey = outside(self.current[i], lo, hi) / self.cfg.threshold.max(1e-3);
        let colour = if colour {
            (0..2)
                .map(|k| outside(self.current_c[i][k], lo_c[k], hi_c[k]))
                .sum::<f32>()
                / self.cfg.colour_threshold.max(1e-3)
        } else {
            0.0
        };
        grey.max(colour)
    }

    /// Feeds the grey picture taken at `now` (seconds). Cells inside the `hold` boxes (objects the
    /// analyzer is following, actors) keep their long-term background, so an object that stays
    /// for hours, or a car parked on the spot, is never learned into the scene. Returns what
    /// changed.
    #[allow(clippy::needless_range_loop)] // four grids indexed in step
    pub fn update(&mut self, now: f64, grey: &GreyFrame, hold: &Held) -> BackgroundUpdate {
        let (width, height) = (grey.width, grey.height);
        if width == 0 || height == 0 || grey.data.len() < width as usize * height as usize {
            return BackgroundUpdate::Blobs(vec![]);
        }
        let src = (grey.source_width.max(1), grey.source_height.max(1));
        let colour = grey.chroma.len() == width as usize * height as usize;
        if self.src != src
            || self.input != (width, height)
            || self.last.is_none()
            || colour != self.colour()
        {
            let gw = (self.cfg.grid_width as usize).min(width as usize).max(1);
            let gh = ((height as usize * gw) / width as usize).max(1);
            self.src = src;
            self.input = (width, height);
            self.grid = (gw, gh);
            self.downscale(grey);
            self.short = self.current.clone();
            self.long = self.current.clone();
            self.short_c = self.current_c.clone();
            self.long_c = self.current_c.clone();
            // What stands in held boxes (people, vehicles) now is not the background: those cells
            // take the first picture that shows them free.
            self.trusted = self.cells_in(hold.all()).iter().map(|h| !h).collect();
            self.provisional_until = Vec::new();
            self.last = Some(now);
            return BackgroundUpdate::Learned;
        }
        let dt = (now - self.last.unwrap_or(now)).max(0.0);
        self.last = Some(now.max(self.last.unwrap_or(now)));
        self.downscale(grey);
        // A shaking camera: the picture is moved back into the background's place first.
        self.shift = if self.cfg.shake_compensation {
            align::estimate(&self.long, &self.current, self.grid, SHAKE_LIMIT_CELLS)
        } else {
            Shift::NONE
        };
        if self.shift.at_limit {
            // Further than a camera shakes: compared as it is, this picture would make every
            // edge new. Held back (nothing learned, nothing found) unless it lasts: then the
            // camera was moved, and the scene is learned anew below.
            let since = *self.moved_since.get_or_insert(now);
            if now - since < MOVED_AFTER_S {
                return BackgroundUpdate::Blobs(vec![]);
            }
        } else {
            self.moved_since = None;
            if self.recent_shifts.len() == SHAKE_WINDOW {
                self.recent_shifts.pop_front();
            }
            self.recent_shifts.push_back(self.shift.matters());
            let sustained = self.recent_shifts.iter().filter(|m| **m).count() >= SHAKE_VOTES;
            // A shift is undone once the camera shakes (several pictures shifted, or shaking
            // still); a still camera's odd shifted estimate is compared as it is.
            if self.shift.matters() && (sustained || now <= self.shaking_until) {
                self.shaking_until = now + SHAKE_MEMORY_S;
                // Moved back into the spare grids, which then swap places with the pictures'.
                align::moved_back_into(&self.current, self.grid, self.shift, &mut self.spare);
                std::mem::swap(&mut self.current, &mut self.spare);
                if !self.current_c.is_empty() {
                    align::moved_back_into(
                        &self.current_c,
                        self.grid,
                        self.shift,
                        &mut self.spare_c,
                    );
                    std::mem::swap(&mut self.current_c, &mut self.spare_c);
                }
            }
        }

        self.shaking = now <= self.shaking_until;
        let (t, tc) = (self.cfg.threshold, self.cfg.colour_threshold);
        let colour = self.colour();
        let changed = (0..self.current.len())
            .filter(|&i| {
                (self.current[i] - self.short[i]).abs() > t
                    || (colour && colour_diff(self.current_c[i], self.short_c[i]) > tc)
            })
            .count();
        let share = changed as f32 / self.current.len() as f32;
        let held = self.cells_in(hold.all());
        if share >= self.cfg.global_change_share {
            self.relearn_all(now, &held, hold);
            return BackgroundUpdate::GlobalChange { share };
        }

        for i in 0..self.current.len() {
            if !self.trusted[i] && !held[i] {
                self.long[i] = self.current[i];
                self.short[i] = self.current[i];
                if colour {
                    self.long_c[i] = self.current_c[i];
                    self.short_c[i] = self.current_c[i];
                }
                self.trusted[i] = true;
                if let Some(until) = self.provisional_until.get_mut(i) {
                    // After a scene re-learn, like every cell learned from one picture: the
                    // actor may still stand there, missed by the detector a moment.
                    *until = until.max(now + PROVISIONAL_S);
                }
            }
        }
        let a_short = (1.0 - (-dt / self.cfg.short_tau_s).exp()) as f32;
        let a_long = (1.0 - (-dt / self.cfg.long_tau_s).exp()) as f32;
        // Light that changed too slowly for a global re-learn (dusk, a slow cloud) shifts the
        // whole scene against the long-term background: compare with the long-term background
        // mapped to the current light instead.
        (self.gain, self.offset) = scene_light(&self.current, &self.long, t);
        let (g, o) = (self.gain, self.offset);
        for i in 0..self.provisional_until.len() {
            if self.provisional_until[i] >= now && !held[i] && self.novelty(i, g, o) > 1.0 {
                // Learned at a re-learn from a picture that showed something passing: the
                // ground it hid shows now. Keep the background in the scene's light.
                self.long[i] = if g > 1e-3 {
                    (self.current[i] - o) / g
                } else {
                    self.current[i]
                };
                if colour {
                    self.long_c[i] = self.current_c[i];
                }
                // Still provisional: what settled may be the passer-by again, standing on (a
                // person the detector misses, waiting out the end of the change of light);
                // the ground shows once they walk on.
            }
        }
        if self.provisional_until.iter().all(|until| *until < now) {
            self.provisional_until = Vec::new();
        }
        let mask: Vec<bool> = (0..self.current.len())
            .map(|i| self.novelty(i, g, o) > 1.0)
            .collect();
        for i in 0..self.current.len() {
            self.short[i] += a_short * (self.current[i] - self.short[i]);
            if colour {
                for k in 0..2 {
                    self.short_c[i][k] += a_short * (self.current_c[i][k] - self.short_c[i][k]);
                }
            }
            if !held[i] {
                self.long[i] += a_long * (self.current[i] - self.long[i]);
                if colour {
                    for k in 0..2 {
                        self.long_c[i][k] += a_long * (self.current_c[i][k] - self.long_c[i][k]);
                    }
                }
            }
        }
        let differing = (0..self.current.len())
            .filter(|&i| {
                (self.current[i] - (self.long[i] * g + o)).abs() > t
                    || (colour && colour_diff(self.current_c[i], self.long_c[i]) > tc)
            })
            .count() as f32
            / self.current.len() as f32;
        if differing > self.cfg.max_differing_share {
            self.relearn_all(now, &held, hold);
            return BackgroundUpdate::GlobalChange { share: differing };
        }
        let mask = remove_isolated(&mask, self.grid);
        // Too much of the scene settled into something new at once (half the scene relit, the
        // camera knocked): a scene change, not an object. Re-learn.
        let static_share = mask.iter().filter(|m| **m).count() as f32 / mask.len() as f32;
        if static_share > self.cfg.max_share {
            self.relearn_all(now, &held, hold);
            return BackgroundUpdate::GlobalChange {
                share: static_share,
            };
        }
        BackgroundUpdate::Blobs(self.blobs(&mask))
    }

    /// Re-learns the whole scene after a global change.
    ///
    /// A change of light (most cells follow one line `current ≈ gain × long + offset`, see
    /// [`light_line`]) maps the long-term background to the new light instead of replacing it:
    /// the background is minutes of pictures, and one picture taken at the moment of the change
    /// holds whatever was passing or flapping then (a tape in the wind learned half-way through
    /// a swing stands out as "new" when it swings back). Only the cells that do not follow the
    /// line (a lamp that came on, something that moved meanwhile) take the current picture.
    /// Anything else (the camera moved, the day/night IR switch) re-learns every cell from the
    /// current picture.
    ///
    /// The colours are mapped with the grey levels ([`ChromaLight`]): dusk pales them, and the
    /// infrared switch greys them, which at the end of a dusk is close enough to the line to count
    /// as a change of light; kept as they were, the day's colours would stand out under every cell
    /// that was held at the switch once the actor leaves it.
    ///
    /// Held cells (objects followed, actors) are never learned from the picture. After a change of
    /// light their long-term background is mapped to the new light, so a person who walks away
    /// after a cloud passed leaves no "hole", and a followed object stays foreground. After any
    /// other change a followed object's background is shifted by the median change (it stays
    /// foreground), and an actor's cells take the first picture that shows them free: the old
    /// ground, shifted, would not match the new picture (the IR switch greys the colours and
    /// changes their order of brightness) and stand out where the actor stood.
    ///
    /// Cells learned from the picture are provisional for [`PROVISIONAL_S`]: the picture may show
    /// someone the detector missed, who leaves a "ghost" of themselves in the background when
    /// they walk on.
    #[allow(clippy::needless_range_loop)] // three grids indexed in step
    fn relearn_all(&mut self, now: f64, held: &[bool], hold: &Held) {
        if self.provisional_until.len() != self.current.len() {
            self.provisional_until = vec![f64::NEG_INFINITY; self.current.len()];
        }
        let (t, tc) = (self.cfg.threshold, self.cfg.colour_threshold);
        let colour = self.colour();
        let (gain, offset) = light_line(&self.current, &self.long, t);
        let grey_in_light =
            |m: &Self, i: usize| (m.current[i] - (m.long[i] * gain + offset)).abs() <= t;
        let chroma = if colour {
            ChromaLight::fit(
                &self.current_c,
                &self.long_c,
                (0..self.current.len()).filter(|&i| grey_in_light(self, i)),
            )
        } else {
            ChromaLight::UNCHANGED
        };
        let in_light = |m: &Self, i: usize| -> bool {
            grey_in_light(m, i)
                && (!colour || colour_diff(m.current_c[i], chroma.map(m.long_c[i])) <= tc)
        };
        let following = (0..self.current.len())
            .filter(|&i| in_light(self, i))
            .count();
        let a_change_of_light = following * 10 >= self.current.len() * 7;
        let object = if a_change_of_light {
            Vec::new()
        } else {
            self.cells_in(hold.objects.iter())
        };
        let shift = if a_change_of_light {
            0.0
        } else {
            let mut diffs: Vec<f32> = (0..self.current.len())
                .filter(|i| !held[*i])
                .map(|i| self.current[i] - self.long[i])
                .collect();
            if diffs.is_empty() {
                0.0
            } else {
                let mid = diffs.len() / 2;
                *diffs.select_nth_unstable_by(mid, f32::total_cmp).1
            }
        };
        for i in 0..self.current.len() {
            if a_change_of_light && (held[i] || in_light(self, i)) {
                self.long[i] = (self.long[i] * gain + offset).clamp(0.0, 255.0);
                if colour {
                    self.long_c[i] = chroma.map(self.long_c[i]);
                }
            } else if !a_change_of_light && object[i] {
                self.long[i] = (self.long[i] + shift).clamp(0.0, 255.0);
            } else if held[i] {
                // An actor's cells: learned from the first picture that shows them free.
                self.long[i] = self.current[i];
                if colour {
                    self.long_c[i] = self.current_c[i];
                }
                self.trusted[i] = false;
            } else {
                self.long[i] = self.current[i];
                if colour {
                    self.long_c[i] = self.current_c[i];
                }
                self.provisional_until[i] = now + PROVISIONAL_S;
            }
            self.short[i] = self.current[i];
        }
        self.short_c.clone_from(&self.current_c);
        self.gain = 1.0;
        self.offset = 0.0;
    }

    /// Makes the current picture the background inside `bbox` (source pixels): a region known
    /// not to be an object (a ghost, what was there at start, a fixture).
    pub fn relearn(&mut self, bbox: &BBox) {
        let colour = self.colour();
        for i in self.cell_indices(bbox, 0.0) {
            self.short[i] = self.current[i];
            self.long[i] = self.current[i];
            if colour {
                self.short_c[i] = self.current_c[i];
                self.long_c[i] = self.current_c[i];
            }
        }
    }

    /// Re-learns the background inside `bbox` (source pixels) where an object the analyzer
    /// followed is gone: each cell takes the first later picture that shows it free of the hold
    /// boxes. Someone standing on the spot at this moment (the owner who took the bag back, a
    /// passer-by) is not the ground, and learned now would stand out as "new" once they walk on.
    pub fn relearn_when_free(&mut self, bbox: &BBox) {
        for i in self.cell_indices(bbox, 0.0) {
            self.trusted[i] = false;
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

    /// The indices of the cells of `bbox` grown by `margin` (see [`Self::cell_range`]), row by
    /// row; none before the first picture or if empty.
    fn cell_indices(
        &self,
        bbox: &BBox,
        margin: f32,
    ) -> impl Iterator<Item = usize> + Clone + use<> {
        let gw = self.grid.0;
        let (x0, y0, x1, y1) = self.cell_range(bbox, margin).unwrap_or_default();
        (y0..y1).flat_map(move |y| y * gw + x0..y * gw + x1)
    }

    fn cells_in<'a>(&self, boxes: impl IntoIterator<Item = &'a BBox>) -> Vec<bool> {
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

    /// Edge strength (mean absolute difference between neighbouring cells, grey levels plus
    /// colour) inside `bbox` grown by `margin`, in the current picture or in the long-term
    /// background (grey levels scaled to the current light). A real object brings its outline
    /// into the current picture; a "ghost" — ground uncovered where the background had learned
    /// something that has left — has the outline in the long-term background instead.
    pub fn edge_strength(&self, layer: Layer, bbox: &BBox, margin: f32) -> f32 {
        let Some((x0, y0, x1, y1)) = self.cell_range(bbox, margin) else {
            return 0.0;
        };
        let (source, chroma, scale) = self.layer_in_current_light(layer);
        let gw = self.grid.0;
        let edge = |i: usize, j: usize| {
            (source[j] - source[i]).abs() * scale
                + chroma
                    .get(i)
                    .zip(chroma.get(j))
                    .map_or(0.0, |(a, b)| colour_diff(*a, *b))
        };
        let (mut sum, mut n) = (0.0f32, 0u32);
        for y in y0..y1 {
            for x in x0..x1 {
                let i = y * gw + x;
                if x + 1 < x1 {
                    sum += edge(i, i + 1);
                    n += 1;
                }
                if y + 1 < y1 {
                    sum += edge(i, i + gw);
                    n += 1;
                }
            }
        }
        if n == 0 { 0.0 } else { sum / n as f32 }
    }

    /// The grey levels and chroma of `layer`, with the factor that scales its grey levels to the
    /// current light (the long-term background's gain; 1 for the current picture).
    fn layer_in_current_light(&self, layer: Layer) -> (&[f32], &[[f32; 2]], f32) {
        match layer {
            Layer::Current => (&self.current, &self.current_c, 1.0),
            Layer::LongTerm => (&self.long, &self.long_c, self.gain),
        }
    }

    /// How much the inside of `bbox` stands out from a ring around it (the box grown by
    /// `margin`): the difference of their mean grey levels plus that of their mean chroma, in the
    /// current picture or in the long-term background (grey levels scaled to the current light).
    /// Something put down stands out from the ground around it now and did not before; ground
    /// uncovered where something stood undetected (a ghost) is the other way round.
    pub fn surround_contrast(&self, layer: Layer, bbox: &BBox, margin: f32) -> f32 {
        let (Some(inner), Some(outer)) =
            (self.cell_range(bbox, 0.0), self.cell_range(bbox, margin))
        else {
            return 0.0;
        };
        let (source, chroma, scale) = self.layer_in_current_light(layer);
        let gw = self.grid.0;
        // Sums of grey, U, V and the count, inside and in the ring.
        let (mut inside, mut ring) = ([0.0f32; 4], [0.0f32; 4]);
        for y in outer.1..outer.3 {
            for x in outer.0..outer.2 {
                let i = y * gw + x;
                let is_inside = (inner.0..inner.2).contains(&x) && (inner.1..inner.3).contains(&y);
                let sums = if is_inside { &mut inside } else { &mut ring };
                sums[0] += source[i] * scale;
                if let Some(c) = chroma.get(i) {
                    sums[1] += c[0];
                    sums[2] += c[1];
                }
                sums[3] += 1.0;
            }
        }
        if inside[3] == 0.0 || ring[3] == 0.0 {
            return 0.0;
        }
        (0..3)
            .map(|k| (inside[k] / inside[3] - ring[k] / ring[3]).abs())
            .sum()
    }

    /// The current picture on the grid, rounded to 8 bits, for keeping a short history: the grey
    /// levels of every cell, then (with colour) the U and then the V of every cell.
    pub fn current_cells(&self) -> Vec<u8> {
        let level = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        // Sized once: a busy camera keeps some 30 of these (a collect then two extends would
        // leave a third of each unused).
        let mut cells = Vec::with_capacity(self.current.len() + 2 * self.current_c.len());
        cells.extend(self.current.iter().map(|v| level(*v)));
        for k in 0..2 {
            cells.extend(self.current_c.iter().map(|c| level(c[k])));
        }
        cells
    }

    /// Like [`BackgroundModel::patch`], from grid cells kept earlier by
    /// [`BackgroundModel::current_cells`] (empty if the grid changed since).
    pub fn patch_of(&self, cells: &[u8], bbox: &BBox, margin: f32) -> Patch {
        let n = self.current.len();
        let colour = self.colour();
        if cells.len() != if colour { 3 * n } else { n } {
            return Patch::default();
        }
        let indices = self.cell_indices(bbox, margin);
        Patch {
            luma: indices.clone().map(|i| f32::from(cells[i])).collect(),
            chroma: if colour {
                indices
                    .map(|i| [f32::from(cells[n + i]), f32::from(cells[2 * n + i])])
                    .collect()
            } else {
                vec![]
            },
        }
    }

    /// The current picture (`Layer::Current`) or the long-term background (`Layer::LongTerm`)
    /// inside `bbox` grown by `margin` of its size; empty before the first picture.
    pub fn patch(&self, layer: Layer, bbox: &BBox, margin: f32) -> Patch {
        let (luma, chroma) = match layer {
            Layer::Current => (&self.current, &self.current_c),
            Layer::LongTerm => (&self.long, &self.long_c),
        };
        let indices = self.cell_indices(bbox, margin);
        Patch {
            luma: indices.clone().map(|i| luma[i]).collect(),
            chroma: if chroma.is_empty() {
                vec![]
            } else {
                indices.map(|i| chroma[i]).collect()
            },
        }
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
                let grey = (self.current[i] - (self.long[i] * self.gain + self.offset)).abs();
                // A colour difference counts as the grey difference as far above its threshold.
                let colour = self
                    .current_c
                    .get(i)
                    .zip(self.long_c.get(i))
                    .map_or(0.0, |(c, l)| {
                        colour_diff(*c, *l) * self.cfg.threshold
                            / self.cfg.colour_threshold.max(1.0)
                    });
                contrast += grey.max(colour);
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
/// `current ≈ gain × long + offset`, or `(1, 0)`: no change of light.
///
/// The line (see [`light_line`]) is kept only if it explains the scene better than no change of
/// light does, by a robust loss (each cell's residual, capped at the threshold `t`), and explains
/// at least 70 % of the cells: a change of light moves the whole scene along one line; half the
/// scene repainted, or people crossing a bright square, do not. (Counting the cells each answer
/// explains instead flips between two near-equal answers from picture to picture, and faint
/// objects blink in and out of the mask.)
fn scene_light(current: &[f32], long: &[f32], t: f32) -> (f32, f32) {
    let (gain, offset) = light_line(current, long, t);
    let fit = |gain: f32, offset: f32| {
        let (mut explained, mut loss) = (0usize, 0.0f32);
        for (c, l) in current.iter().zip(long) {
            let r = (c - (l * gain + offset)).abs();
            explained += usize::from(r <= t);
            loss += r.min(t);
        }
        (explained, loss)
    };
    let ((explained, loss), (_, unchanged_loss)) = (fit(gain, offset), fit(1.0, 0.0));
    if loss < unchanged_loss && explained * 10 >= current.len() * 7 {
        (gain, offset)
    } else {
        (1.0, 0.0)
    }
}

/// How a change of light moved the scene's colours: `current − 128 ≈ saturation × (long − 128) +
/// tint` for each chroma channel. Dimmer light pales the colours (saturation below 1), a warm
/// lamp or a cold dawn tints them, the infrared switch takes them away (saturation 0).
#[derive(Clone, Copy, Debug, PartialEq)]
struct ChromaLight {
    saturation: f32,
    tint: [f32; 2],
}

impl ChromaLight {
    /// No change of colour.
    const UNCHANGED: ChromaLight = ChromaLight {
        saturation: 1.0,
        tint: [0.0, 0.0],
    };

    /// Least squares over `cells` (those whose grey level follows the light): one saturation for
    /// both channels, one tint each. Unchanged if the cells have too little colour to tell.
    fn fit(current: &[[f32; 2]], long: &[[f32; 2]], cells: impl Iterator<Item = usize>) -> Self {
        let (mut n, mut sc, mut sl) = (0.0f64, [0.0f64; 2], [0.0f64; 2]);
        let (mut sll, mut slc) = (0.0f64, 0.0f64);
        for i in cells {
            n += 1.0;
            for k in 0..2 {
                let (c, l) = (f64::from(current[i][k]), f64::from(long[i][k]));
                sc[k] += c;
                sl[k] += l;
                sll += l * l;
                slc += l * c;
            }
        }
        if n < 16.0 {
            return Self::UNCHANGED;
        }
        let var = sll - (sl[0] * sl[0] + sl[1] * sl[1]) / n;
        if var < n * 4.0 {
            // Under two levels of colour spread per cell: a grey scene, no saturation to fit.
            return Self::UNCHANGED;
        }
        let cov = slc - (sl[0] * sc[0] + sl[1] * sc[1]) / n;
        let saturation = (cov / var).clamp(0.0, 1.5);
        let tint = [0, 1]
            .map(|k| ((sc[k] - 128.0 * n) - saturation * (sl[k] - 128.0 * n)) as f32 / n as f32);
        ChromaLight {
            saturation: saturation as f32,
            tint,
        }
    }

    /// A chroma of the long-term background in the new light.
    fn map(&self, c: [f32; 2]) -> [f32; 2] {
        [0, 1].map(|k| (128.0 + self.saturation * (c[k] - 128.0) + self.tint[k]).clamp(0.0, 255.0))
    }
}

/// The line `current ≈ gain × long + offset` that the scene's cells follow. A first guess through
/// two robust points (the medians of the darker and of the brighter half of the cells) is refined
/// by least squares over the cells within `t` of the line, a few times: the medians alone are
/// biased by a few grey levels when the two pictures' distributions differ in shape, which is
/// enough to push faint objects over the threshold or under it. People and objects, far from the
/// line, do not count. A camera's exposure change is mostly a gain, a haze or a brightness setting
/// mostly an offset. `(1, 0)` when the scene is too flat to tell.
fn light_line(current: &[f32], long: &[f32], t: f32) -> (f32, f32) {
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
    let flat = l1 - l0 < 8.0;
    let (mut gain, mut offset) = if flat {
        (1.0, c0 - l0)
    } else {
        let gain = ((c1 - c0) / (l1 - l0)).clamp(0.3, 3.0);
        (gain, c0 - gain * l0)
    };
    for _ in 0..3 {
        let (mut n, mut sl, mut sc, mut sll, mut slc) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (c, l) in current.iter().zip(long) {
            if (c - (l * gain + offset)).abs() <= t {
                let (c, l) = (f64::from(*c), f64::from(*l));
                n += 1.0;
                sl += l;
                sc += c;
                sll += l * l;
                slc += l * c;
            }
        }
        if n < current.len() as f64 * 0.25 {
            break;
        }
        let var = sll - sl * sl / n;
        if flat || var < n * 16.0 {
            // Too little spread of levels for a gain: an offset only.
            offset = ((sc - gain as f64 * sl) / n) as f32;
            continue;
        }
        let g = ((slc - sl * sc / n) / var).clamp(0.3, 3.0);
        gain = g as f32;
        offset = ((sc - g * sl) / n) as f32;
    }
    (gain, offset)
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

    /// A grey picture of the test size, without colour.
    fn grey(luma: Vec<u8>) -> GreyFrame {
        GreyFrame {
            width: W,
            height: H,
            data: luma,
            source_width: W,
            source_height: H,
            chroma: vec![],
        }
    }

    fn bbox(x1: f32, y1: f32, x2: f32, y2: f32) -> BBox {
        BBox { x1, y1, x2, y2 }
    }

    /// A street with strong edges (a wall top, a doorway, kerbs) as a camera shaken by
    /// (dx, dy) source pixels sees it, with seeded noise.
    fn street(dx: i32, dy: i32, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..(W * H) as i32)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let (x, y) = (i % W as i32 - dx, i / W as i32 - dy);
                let wall = if y < 50 + x / 8 { 70 } else { 0 };
                let door = if (120..150).contains(&x) && y < 110 {
                    60
                } else {
                    0
                };
                let kerb = if (y / 24) % 2 == 0 { 25 } else { 0 };
                (80 + wall + door + kerb + (s % 9) as i32 - 4).clamp(0, 255) as u8
            })
            .collect()
    }

    #[test]
    fn a_shaking_camera_finds_no_edge_but_still_finds_a_new_object() {
        let mut m = BackgroundModel::new(BackgroundConfig {
            shake_compensation: true,
            ..BackgroundConfig::default()
        });
        let mut rng = 12345u32;
        let mut jitter = || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            (rng % 7) as i32 - 3
        };
        let mut found_bag = false;
        for k in 0..480u32 {
            let t = f64::from(k) * 0.5;
            let (dx, dy) = (jitter(), jitter());
            let mut img = street(dx, dy, k);
            if t >= 150.0 {
                // A bag put down at 150 s (it shakes with the scene).
                paint(&mut img, (230 + dx) as u32, (140 + dy) as u32, 24, 18, 200);
            }
            match m.update(t, &grey(img), &Held::default()) {
                BackgroundUpdate::Blobs(blobs) if t < 150.0 => {
                    assert!(
                        blobs.is_empty(),
                        "at {t} s, {blobs:?} (shift {:?})",
                        m.shift()
                    )
                }
                BackgroundUpdate::Blobs(blobs) => {
                    for b in &blobs {
                        assert!(
                            b.bbox.covered_by(&bbox(220.0, 130.0, 264.0, 168.0)) >= 0.8,
                            "at {t} s, something other than the bag: {b:?}"
                        );
                    }
                    found_bag |= !blobs.is_empty();
                }
                _ => {}
            }
        }
        assert!(
            found_bag,
            "the bag put down on the shaking street was never found"
        );
    }

    #[test]
    fn a_still_cameras_odd_jolt_is_not_a_shake_but_three_in_five_are() {
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        // Still, with a 3-pixel jolt every fifth picture: never shaking, never moved back.
        for k in 0..60u32 {
            let jolt = if k % 5 == 4 { 3 } else { 0 };
            m.update(
                f64::from(k) * 0.5,
                &grey(street(jolt, 0, k)),
                &Held::default(),
            );
            assert!(!m.shaking(), "picture {k}: shift {:?}", m.shift());
        }
        // Shaking: shaking from the third shifted picture of five on.
        let mut shaking_from = None;
        for k in 60..80u32 {
            let dx = if k % 2 == 0 { 3 } else { -3 };
            m.update(
                f64::from(k) * 0.5,
                &grey(street(dx, 0, k)),
                &Held::default(),
            );
            if m.shaking() && shaking_from.is_none() {
                shaking_from = Some(k - 60);
            }
        }
        assert!(
            matches!(shaking_from, Some(1..=3)),
            "shaking from picture {shaking_from:?} of the shake"
        );
    }

    /// Feeds a full-resolution picture (the model averages it down to its grid).
    fn up(m: &mut BackgroundModel, now: f64, luma: &[u8], w: u32, h: u32) -> BackgroundUpdate {
        let grey = GreyFrame {
            width: w,
            height: h,
            data: luma.to_vec(),
            source_width: w,
            source_height: h,
            chroma: vec![],
        };
        m.update(now, &grey, &Held::default())
    }

    fn blobs(u: BackgroundUpdate) -> Vec<StaticBlob> {
        match u {
            BackgroundUpdate::Blobs(b) => b,
            other => panic!("expected blobs, got {other:?}"),
        }
    }

    #[test]
    fn an_object_stands_out_from_its_surroundings_now_and_a_ghost_did_before() {
        let bag = bbox(200.0, 120.0, 240.0, 150.0);
        let with_bag = |seed| {
            let mut img = scene(100, seed);
            paint(&mut img, 200, 120, 40, 30, 150);
            img
        };
        // Put down after the model learned the bare ground: stands out now.
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        for i in 0..=20 {
            up(&mut m, f64::from(i), &scene(100, i), W, H);
        }
        for i in 21..=30 {
            up(&mut m, f64::from(i), &with_bag(i), W, H);
        }
        let (now, before) = (
            m.surround_contrast(Layer::Current, &bag, 0.5),
            m.surround_contrast(Layer::LongTerm, &bag, 0.5),
        );
        // (The scene's texture makes any spot differ from its ring by a few levels.)
        assert!(
            now > 30.0 && before < 8.0,
            "object: now {now}, before {before}"
        );
        // Learned with the bag there, then it is gone: the ground uncovered is a ghost.
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        for i in 0..=20 {
            up(&mut m, f64::from(i), &with_bag(i), W, H);
        }
        for i in 21..=30 {
            up(&mut m, f64::from(i), &scene(100, i), W, H);
        }
        let (now, before) = (
            m.surround_contrast(Layer::Current, &bag, 0.5),
            m.surround_contrast(Layer::LongTerm, &bag, 0.5),
        );
        assert!(
            now < 8.0 && before > 30.0,
            "ghost: now {now}, before {before}"
        );
    }

    #[test]
    fn a_faint_object_is_found_within_seconds() {
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        for i in 0..=60 {
            up(&mut m, f64::from(i) * 0.5, &scene(100, i), W, H);
        }
        // A pale sack 15 levels brighter than the ground (threshold 12) is put down at 30.5 s.
        let found = (61..=100).find_map(|i| {
            let mut img = scene(100, i);
            paint(&mut img, 200, 120, 40, 30, 115);
            let now = f64::from(i) * 0.5;
            let b = blobs(up(&mut m, now, &img, W, H));
            (!b.is_empty()).then_some((now, b))
        });
        let (at, b) = found.expect("the sack is found");
        assert!(at - 30.5 <= 3.0, "found only at {at} s");
        // What the analyzer assumes when it dates an object from its contrast.
        let expected = time_to_static(15.0, &BackgroundConfig::default());
        assert!((at - 30.5 - expected).abs() <= 1.0, "{at} vs {expected}");
        let sack = BBox {
            x1: 196.0,
            y1: 116.0,
            x2: 244.0,
            y2: 154.0,
        };
        assert!(b[0].bbox.covered_by(&sack) > 0.9, "{b:?}");
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

    /// Like [`up`], with the colour of every pixel (`[U, V]`).
    fn up_colour(
        m: &mut BackgroundModel,
        now: f64,
        luma: &[u8],
        chroma: &[[u8; 2]],
    ) -> BackgroundUpdate {
        let grey = GreyFrame {
            width: W,
            height: H,
            data: luma.to_vec(),
            source_width: W,
            source_height: H,
            chroma: chroma.to_vec(),
        };
        m.update(now, &grey, &Held::default())
    }

    #[test]
    fn an_object_as_bright_as_the_ground_is_found_by_its_colour() {
        // Grass (U 104, V 123) and, from t = 11, a pile of grey rubble just as bright
        // (U 118, V 131): the grey levels alone cannot tell it from the lawn.
        let grass = vec![[104u8, 123u8]; (W * H) as usize];
        let mut with_pile = grass.clone();
        for y in 120..150 {
            for x in 200..250 {
                with_pile[(y * W + x) as usize] = [118, 131];
            }
        }
        let (mut colour, mut grey_only) = (
            BackgroundModel::new(BackgroundConfig::default()),
            BackgroundModel::new(BackgroundConfig::default()),
        );
        let (mut found, mut found_grey_only) = (vec![], vec![]);
        for i in 0..=40u32 {
            let t = f64::from(i);
            let chroma = if i > 10 { &with_pile } else { &grass };
            let luma = scene(100, i);
            if let BackgroundUpdate::Blobs(b) = up_colour(&mut colour, t, &luma, chroma) {
                found.extend(b);
            }
            if let BackgroundUpdate::Blobs(b) = up(&mut grey_only, t, &luma, W, H) {
                found_grey_only.extend(b);
            }
        }
        assert!(found_grey_only.is_empty(), "{found_grey_only:?}");
        let pile = found.first().expect("the pile is found by its colour");
        let bb = pile.bbox;
        assert!(
            bb.x1 >= 190.0 && bb.x2 <= 260.0 && bb.y1 >= 110.0 && bb.y2 <= 160.0,
            "{bb:?}"
        );
        assert!(pile.contrast > 12.0, "{pile:?}");
    }

    #[test]
    fn a_spot_that_does_not_follow_a_slow_change_of_light_is_not_new() {
        // Dusk over 40 s: the scene goes from 100 to 60, too slowly for a global re-learn. A lit
        // sign (200) dims only to 190. Then a dark bag is put down on the dim ground.
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        let mut found = vec![];
        for i in 0..=140u32 {
            let t = f64::from(i) * 0.5;
            let dusk = ((t - 10.0) / 40.0).clamp(0.0, 1.0);
            let mut img = scene((100.0 - 40.0 * dusk) as u8, i);
            paint(&mut img, 40, 40, 40, 30, (200.0 - 10.0 * dusk) as u8);
            if t >= 55.0 {
                paint(&mut img, 200, 120, 40, 30, 15);
            }
            match up(&mut m, t, &img, W, H) {
                BackgroundUpdate::Blobs(b) => found.extend(b.into_iter().map(|b| (t, b))),
                BackgroundUpdate::GlobalChange { share } => panic!("re-learned at {t}: {share}"),
                BackgroundUpdate::Learned => {}
            }
        }
        assert!(
            found.iter().all(|(_, b)| b.bbox.x1 >= 150.0),
            "the sign became an object: {found:?}"
        );
        assert!(
            found.iter().any(|(t, b)| *t >= 55.0 && b.bbox.x1 >= 190.0),
            "the bag put down at dusk is found"
        );
    }

    /// A scene of 2000 cells with levels from 40 to 220 and a little noise.
    fn levels(seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(3);
        (0..2000u32)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                40.0 + (i * 37 % 181) as f32 + (s % 5) as f32 - 2.0
            })
            .collect()
    }

    #[test]
    fn people_crossing_a_bright_square_are_not_a_change_of_light() {
        let long = levels(1);
        let mut current = levels(2);
        // A fifth of the cells, all bright ground, covered by dark clothes.
        for (c, l) in current
            .iter_mut()
            .zip(&long)
            .filter(|(_, l)| **l > 150.0)
            .take(400)
        {
            *c = 45.0 + l * 0.1;
        }
        assert_no_change_of_light(scene_light(&current, &long, 12.0));
    }

    /// The light `(gain, offset)` maps every level to within a grey level of itself.
    fn assert_no_change_of_light((gain, offset): (f32, f32)) {
        for level in [40.0, 130.0, 220.0] {
            let fitted = level * gain + offset;
            assert!((fitted - level).abs() < 1.0, "{level} -> {fitted}");
        }
    }

    #[test]
    fn the_light_is_fitted_without_bias_on_a_lopsided_scene() {
        // Mostly bright concrete, some dark grass; 10 % people and objects off the line.
        let mut s = 7u32;
        let mut noise = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 5) as f32 - 2.0
        };
        let long: Vec<f32> = (0..3000u32)
            .map(|i| {
                if i % 10 < 7 {
                    185.0 + (i * 7 % 30) as f32
                } else {
                    50.0 + (i * 13 % 70) as f32
                }
            })
            .collect();
        let current: Vec<f32> = long
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i % 10 == 3 {
                    60.0
                } else {
                    l * 0.9 + 10.0 + noise()
                }
            })
            .collect();
        let (gain, offset) = scene_light(&current, &long, 12.0);
        for level in [60.0, 140.0, 210.0] {
            let (fitted, truth) = (level * gain + offset, level * 0.9 + 10.0);
            assert!((fitted - truth).abs() < 1.0, "{level}: {fitted} vs {truth}");
        }
    }

    #[test]
    fn a_dimmer_scene_is_fitted_as_one_line() {
        let long = levels(1);
        let mut current: Vec<f32> = levels(2).iter().map(|l| l * 0.8 + 6.0).collect();
        // Some people and objects that do not follow the light.
        for c in current.iter_mut().step_by(20) {
            *c = 60.0;
        }
        let (gain, offset) = scene_light(&current, &long, 12.0);
        for level in [50.0, 130.0, 210.0] {
            let (fitted, truth) = (level * gain + offset, level * 0.8 + 6.0);
            assert!((fitted - truth).abs() < 4.0, "{level}: {fitted} vs {truth}");
        }
    }

    #[test]
    fn half_the_scene_repainted_is_not_a_change_of_light() {
        let long = levels(1);
        let current: Vec<f32> = levels(2)
            .iter()
            .enumerate()
            .map(|(i, l)| if i % 2 == 0 { *l } else { (l * 0.6).max(30.0) })
            .collect();
        assert_no_change_of_light(scene_light(&current, &long, 12.0));
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

    /// A tape fluttering in the wind: its cells swing 9 levels (under the threshold) either
    /// side of how they usually look, one way on even seconds and the other on odd ones.
    fn with_tape(level: u8, seed: u32) -> Vec<u8> {
        let mut img = scene(level, seed);
        let swing = if seed % 2 == 0 { 9 } else { -9 };
        paint(
            &mut img,
            200,
            100,
            60,
            20,
            (i32::from(level) + 6 + swing) as u8,
        );
        img
    }

    #[test]
    fn what_flutters_at_a_change_of_light_is_not_new_afterwards() {
        // The long-term background has learned how the tape looks on average (20 minutes).
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        for i in 0..600 {
            up(&mut m, f64::from(i) * 2.0, &with_tape(100, i), W, H);
        }
        // A cloud, while the tape is at one end of its swing. Learning that one picture as the
        // background would put the tape's other swing 18 levels away from it: "new".
        assert!(matches!(
            up(&mut m, 1200.0, &with_tape(60, 600), W, H),
            BackgroundUpdate::GlobalChange { .. }
        ));
        for i in 601..=660 {
            let now = 1200.0 + f64::from(i - 600);
            let b = blobs(up(&mut m, now, &with_tape(60, i), W, H));
            assert!(b.is_empty(), "at {now} s: {b:?}");
        }
    }

    #[test]
    fn a_lamp_that_comes_on_with_the_change_of_light_is_learned() {
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        for i in 0..30 {
            up(&mut m, f64::from(i), &scene(100, i), W, H);
        }
        // Dusk comes at once and a lamp comes on: the lamp does not follow the light.
        let dusk = |seed| {
            let mut img = scene(60, seed);
            paint(&mut img, 100, 40, 30, 30, 220);
            img
        };
        assert!(matches!(
            up(&mut m, 30.0, &dusk(30), W, H),
            BackgroundUpdate::GlobalChange { .. }
        ));
        for i in 31..=60 {
            let b = blobs(up(&mut m, f64::from(i), &dusk(i), W, H));
            assert!(b.is_empty(), "at {i} s: {b:?}");
        }
    }

    /// Dusk at 30 s while someone the detector missed stands at (100, 60) until 33 s.
    fn dusk_with_passer_by(t: u32, object_from: Option<u32>) -> Vec<u8> {
        let mut img = scene(if t < 30 { 100 } else { 60 }, t);
        if (30..33).contains(&t) {
            paint(&mut img, 100, 60, 20, 40, 15);
        }
        if object_from.is_some_and(|from| t >= from) {
            paint(&mut img, 100, 70, 30, 24, 160);
        }
        img
    }

    #[test]
    fn someone_missed_at_a_change_of_light_leaves_no_ghost_when_they_walk_on() {
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        for t in 0..30 {
            up(&mut m, f64::from(t), &dusk_with_passer_by(t, None), W, H);
        }
        assert!(matches!(
            up(&mut m, 30.0, &dusk_with_passer_by(30, None), W, H),
            BackgroundUpdate::GlobalChange { .. }
        ));
        for t in 31..=120 {
            let picture = dusk_with_passer_by(t, None);
            let b = blobs(up(&mut m, f64::from(t), &picture, W, H));
            assert!(b.is_empty(), "at {t} s: {b:?}");
        }
    }

    #[test]
    fn someone_missed_who_stands_on_after_a_change_of_light_leaves_no_ghost_either() {
        // As above, but they stay 10 s and shift their weight at 33 s: what the re-learn took
        // settles into something else there (them again), then the ground shows at 40 s.
        let picture = |t: u32| {
            let mut img = scene(if t < 30 { 100 } else { 60 }, t);
            if (30..40).contains(&t) {
                paint(&mut img, 100, 60, 20, 40, if t < 33 { 15 } else { 35 });
            }
            img
        };
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        for t in 0..30 {
            up(&mut m, f64::from(t), &picture(t), W, H);
        }
        assert!(matches!(
            up(&mut m, 30.0, &picture(30), W, H),
            BackgroundUpdate::GlobalChange { .. }
        ));
        for t in 31..=120 {
            let b = blobs(up(&mut m, f64::from(t), &picture(t), W, H));
            assert!(b.is_empty(), "at {t} s: {b:?}");
        }
    }

    #[test]
    fn something_put_down_where_someone_stood_at_a_change_of_light_is_found_later() {
        let from = 30 + PROVISIONAL_S as u32 + 5;
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        let mut found = vec![];
        for t in 0..=from + 30 {
            let picture = dusk_with_passer_by(t, Some(from));
            if let BackgroundUpdate::Blobs(b) = up(&mut m, f64::from(t), &picture, W, H) {
                found = b;
            }
        }
        let object = bbox(100.0, 70.0, 130.0, 94.0);
        assert!(
            found.iter().any(|b| b.bbox.iou(&object) > 0.5),
            "the object put down at {from} s is new: {found:?}"
        );
    }

    #[test]
    fn a_spot_re_learned_while_someone_stands_on_it_takes_the_ground_once_they_leave() {
        let person = bbox(100.0, 50.0, 120.0, 100.0);
        let picture = |t: u32, standing: bool| {
            let mut img = scene(100, t);
            if standing {
                paint(&mut img, 100, 50, 20, 50, 20);
            }
            img
        };
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        for t in 0..30 {
            m.update(f64::from(t), &grey(picture(t, false)), &Held::default());
        }
        // Someone stands there while the analyzer re-learns the spot (an object it followed
        // there is gone), then walks on.
        for t in 30..40 {
            m.update(
                f64::from(t),
                &grey(picture(t, true)),
                &Held {
                    actors: vec![person],
                    ..Held::default()
                },
            );
        }
        m.relearn_when_free(&person);
        for t in 40..=100 {
            let b = blobs(m.update(f64::from(t), &grey(picture(t, false)), &Held::default()));
            assert!(b.is_empty(), "at {t} s: {b:?}");
        }
    }

    #[test]
    fn someone_who_walks_off_after_the_infrared_switch_leaves_no_ghost() {
        // Three surfaces whose order of brightness the switch to infrared changes (no one line
        // maps the day onto the night), and someone standing on the middle one at the switch.
        let person = bbox(160.0, 60.0, 180.0, 110.0);
        let picture = |t: u32, infrared: bool, standing: bool| {
            let mut img = scene(100, t);
            for (i, px) in img.iter_mut().enumerate() {
                let x = i as u32 % W;
                let delta: i32 = match (x * 10 / W, infrared) {
                    (0..=3, false) => -20,
                    (0..=3, true) => 70,
                    (4..=6, false) => 50,
                    (4..=6, true) => -10,
                    (_, false) => 20,
                    (_, true) => 40,
                };
                *px = (i32::from(*px) + delta).clamp(0, 255) as u8;
            }
            if standing {
                paint(&mut img, 160, 60, 20, 50, 20);
            }
            img
        };
        let held = |standing: bool| Held {
            actors: if standing { vec![person] } else { vec![] },
            ..Held::default()
        };
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        for t in 0..30 {
            m.update(f64::from(t), &grey(picture(t, false, false)), &held(false));
        }
        for t in 30..40 {
            m.update(f64::from(t), &grey(picture(t, false, true)), &held(true));
        }
        // The switch; they stand on until the scene is re-learned (a jump this large may first
        // be held back as a camera moved), then walk off.
        let relearned = (40..50).find(|t| {
            matches!(
                m.update(f64::from(*t), &grey(picture(*t, true, true)), &held(true)),
                BackgroundUpdate::GlobalChange { .. }
            )
        });
        let relearned = relearned.expect("the switch is a scene change");
        for t in relearned + 1..=relearned + 60 {
            let b = blobs(m.update(f64::from(t), &grey(picture(t, true, false)), &held(false)));
            assert!(b.is_empty(), "at {t} s: {b:?}");
        }
    }

    #[test]
    fn the_colours_of_a_spot_held_at_the_infrared_switch_leave_no_ghost() {
        // Paving (nearly grey) with a lawn strip, at the end of a dusk; someone stands on the
        // lawn when the camera switches to infrared: every colour goes, the grey levels follow
        // one line (a change of light). Once they walk off, the lawn where they stood must not
        // keep the day's green.
        let person = bbox(100.0, 40.0, 140.0, 120.0);
        let lawn = |x: u32, y: u32| (80..240).contains(&x) && (30..130).contains(&y);
        let chroma = |infrared: bool| -> Vec<[u8; 2]> {
            (0..W * H)
                .map(|i| match (infrared, lawn(i % W, i / W)) {
                    (true, _) => [128, 128],
                    (false, true) => [112, 121],
                    (false, false) => [127, 129],
                })
                .collect()
        };
        let luma = |t: u32, infrared: bool, standing: bool| {
            let mut img = scene(90, t);
            if infrared {
                for px in img.iter_mut() {
                    *px = (f32::from(*px) * 0.8 + 40.0) as u8;
                }
            }
            if standing {
                paint(&mut img, 100, 40, 40, 80, 20);
            }
            img
        };
        let held = |standing: bool| Held {
            actors: if standing { vec![person] } else { vec![] },
            ..Held::default()
        };
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        let up = |m: &mut BackgroundModel, t: u32, infrared: bool, standing: bool| {
            let frame = GreyFrame {
                width: W,
                height: H,
                data: luma(t, infrared, standing),
                source_width: W,
                source_height: H,
                chroma: chroma(infrared),
            };
            m.update(f64::from(t), &frame, &held(standing))
        };
        for t in 0..30 {
            up(&mut m, t, false, false);
        }
        for t in 30..40 {
            up(&mut m, t, false, true);
        }
        let switch = up(&mut m, 40, true, true);
        assert!(
            matches!(switch, BackgroundUpdate::GlobalChange { .. }),
            "{switch:?}"
        );
        for t in 41..=45 {
            up(&mut m, t, true, true);
        }
        for t in 46..=100 {
            let b = blobs(up(&mut m, t, true, false));
            assert!(b.is_empty(), "at {t} s: {b:?}");
        }
    }

    #[test]
    fn a_held_object_stays_new_across_a_change_of_light() {
        let bag = bbox(200.0, 120.0, 240.0, 150.0);
        let with_bag = |level: u8, seed| {
            let mut img = scene(level, seed);
            paint(&mut img, 200, 120, 40, 30, level + 50);
            img
        };
        let mut m = BackgroundModel::new(BackgroundConfig::default());
        for i in 0..30 {
            m.update(f64::from(i), &grey(scene(100, i)), &Held::default());
        }
        for i in 30..50 {
            m.update(
                f64::from(i),
                &grey(with_bag(100, i)),
                &Held {
                    objects: vec![bag],
                    ..Held::default()
                },
            );
        }
        // The light drops by 40 levels while the analyzer follows the bag.
        assert!(matches!(
            m.update(
                50.0,
                &grey(with_bag(60, 50)),
                &Held {
                    objects: vec![bag],
                    ..Held::default()
                }
            ),
            BackgroundUpdate::GlobalChange { .. }
        ));
        let mut found = vec![];
        for i in 51..=60 {
            found = blobs(m.update(
                f64::from(i),
                &grey(with_bag(60, i)),
                &Held {
                    objects: vec![bag],
                    ..Held::default()
                },
            ));
        }
        assert!(
            found.iter().any(|b| b.bbox.iou(&bag) > 0.5),
            "the bag is still new after the change of light: {found:?}"
        );
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
