//! Whether a camera still sees the scene it was set up for.
//!
//! A camera that was turned (a bump, a technician, a vandal), zoomed or covered (a bag over it,
//! sprayed, a lens fogged) no longer watches its zones: the background model re-learns the new
//! picture within seconds, and without this watch the spot would stop being watched in silence.
//!
//! The camera's *home view* is its long-term background once the start-up grace is over (and
//! follows it, slowly, while the view stays home: seasons, a new kiosk). Each picture is compared
//! with it on **where its edges are**, not on its brightness: the gradient magnitude of the grey
//! picture over blocks of 4×4 cells, and the share of the home view's strongest edges (a fifth
//! of its blocks) that are among the picture's strong edges at the same place. A change of
//! light, dusk, night or the day/night infrared switch changes how strong the edges of the kerbs,
//! walls and markings are, not where they are; passers-by and things put down add edges and hide
//! a few; a turned camera keeps only those that fall in place by chance, and a covered one has
//! none.
//!
//! - **covered**: the picture has less than a quarter of the home view's detail (and little in
//!   itself) for [`CONFIRM_S`];
//! - **moved**: fewer than [`MOVED_BELOW`] of the home view's edges are in place for
//!   [`CONFIRM_S`];
//! - **home** again once more than [`HOME_ABOVE`] are, for [`RETURN_S`] (the camera was turned
//!   back, the cover taken off).
//!
//! While the view is not home, the analyzer raises nothing (its zones do not fit what it sees).
//! A camera whose new view is meant to stay gets its zones drawn anew: a new configuration starts
//! a new home view.

/// What a camera sees, against its home view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// The home view is not known yet (it is taken at the end of the start-up grace).
    #[default]
    Learning,
    /// The scene the camera was set up for (whatever the light, the weather and the passers-by).
    Home,
    /// Another scene: the camera was turned, bumped or zoomed. Its zones no longer fit.
    Moved,
    /// Too little detail to watch anything: the lens covered, sprayed or fogged.
    Covered,
}

impl View {
    /// Every view.
    pub const ALL: [View; 4] = [View::Learning, View::Home, View::Moved, View::Covered];

    /// The name used in the API, the metrics and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Learning => "learning",
            View::Home => "home",
            View::Moved => "moved",
            View::Covered => "covered",
        }
    }

    /// The view named `name` (as [`View::as_str`] writes it).
    pub fn parse(name: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// Whether the camera no longer watches its zones (moved or covered): an operator's matter.
    pub fn is_lost(self) -> bool {
        matches!(self, View::Moved | View::Covered)
    }
}

/// Grid cells (grey pixels of the 160-wide picture) per block side.
const BLOCK: usize = 4;
/// The share of a home view's blocks that count as its edges.
const HOME_EDGES: f32 = 0.2;
/// The share of a picture's blocks that count as its edges (more than the home view's, so that
/// edges made weaker by the light or the weather still count).
const PICTURE_EDGES: f32 = 0.3;
/// Mean gradient (grey levels per cell) below which a block has no edge at all.
const MIN_EDGE: f32 = 1.0;
/// When fewer of the home view's edges than this share are still in place, the picture shows
/// another scene (by chance about [`PICTURE_EDGES`] are).
pub const MOVED_BELOW: f32 = 0.55;
/// When more than this share are, it shows the home view again.
pub const HOME_ABOVE: f32 = 0.7;
/// A picture with less detail than this share of the home view's, and less than
/// [`COVERED_MAX_DETAIL`], shows nothing.
const COVERED_SHARE: f32 = 0.25;
/// Mean gradient magnitude (grey levels per cell) below which a picture may count as covered.
const COVERED_MAX_DETAIL: f32 = 3.0;
/// How long a picture must show another scene (or nothing) before the view changes: a lorry
/// parked in front of the camera, or a hand wiping the lens, passes.
pub const CONFIRM_S: f64 = 20.0;
/// How long the home view must show again before the view is home.
pub const RETURN_S: f64 = 5.0;
/// How often the home view takes the long-term background while the view is home and alike.
const HOME_REFRESH_S: f64 = 60.0;
/// How much of the home view's edges the long-term background must keep to replace it.
const HOME_REFRESH_ABOVE: f32 = 0.8;

/// The structure of one picture: smoothed gradient magnitude per block, and its mean.
#[derive(Clone, Debug, Default, PartialEq)]
struct Structure {
    blocks: Vec<f32>,
    detail: f32,
}

impl Structure {
    /// Of the grey cells `cells` on a `grid` (width, height), row-major.
    fn of(cells: &[f32], (gw, gh): (usize, usize)) -> Structure {
        if gw < 2 * BLOCK || gh < 2 * BLOCK || cells.len() < gw * gh {
            return Structure::default();
        }
        let (bw, bh) = (gw / BLOCK, gh / BLOCK);
        let mut blocks = vec![0.0f32; bw * bh];
        for y in 0..bh * BLOCK {
            for x in 0..bw * BLOCK {
                let i = y * gw + x;
                let gx = if x + 1 < gw {
                    (cells[i + 1] - cells[i]).abs()
                } else {
                    0.0
                };
                let gy = if y + 1 < gh {
                    (cells[i + gw] - cells[i]).abs()
                } else {
                    0.0
                };
                blocks[(y / BLOCK) * bw + x / BLOCK] += gx + gy;
            }
        }
        let per_block = (BLOCK * BLOCK) as f32;
        blocks.iter_mut().for_each(|b| *b /= per_block);
        let detail = blocks.iter().sum::<f32>() / blocks.len() as f32;
        Structure { blocks, detail }
    }

    /// Which blocks hold the picture's strongest edges: those at or above the `share`-quantile
    /// of its own blocks (a share of them, whatever the light), and not flat.
    fn strong(&self, share: f32) -> Vec<bool> {
        let cut = self.edge_cut(share);
        self.blocks.iter().map(|b| *b >= cut).collect()
    }

    /// The gradient at and above which a block holds one of the `share` strongest edges (never
    /// below [`MIN_EDGE`]).
    fn edge_cut(&self, share: f32) -> f32 {
        let mut sorted = self.blocks.clone();
        if sorted.is_empty() {
            return MIN_EDGE;
        }
        let k = (((1.0 - share) * sorted.len() as f32) as usize).min(sorted.len() - 1);
        sorted
            .select_nth_unstable_by(k, f32::total_cmp)
            .1
            .max(MIN_EDGE)
    }

    /// The share (0…1) of a home view's strongest edges (`home_edges`: [`HOME_EDGES`] of its
    /// blocks, [`Structure::strong`]) that are among this picture's strong edges
    /// ([`PICTURE_EDGES`] of its blocks) at the same place.
    /// Light, dusk and the infrared switch change how strong the edges are, not where they
    /// are; things put down or passing add edges or hide a few; a turned camera keeps only
    /// those that fall in place by chance (about [`PICTURE_EDGES`]). 0 when the sizes differ.
    fn kept_from(&self, home_edges: &[bool]) -> f32 {
        if self.blocks.len() != home_edges.len() || self.blocks.is_empty() {
            return 0.0;
        }
        let total = home_edges.iter().filter(|s| **s).count();
        if total == 0 {
            return 1.0;
        }
        let cut = self.edge_cut(PICTURE_EDGES);
        let kept = home_edges
            .iter()
            .zip(&self.blocks)
            .filter(|(home, ours)| **home && **ours >= cut)
            .count();
        kept as f32 / total as f32
    }
}

/// Follows one camera's view against its home view.
#[derive(Clone, Debug, Default)]
pub struct ViewWatch {
    /// The home view's strongest edges, block by block (empty: no home view yet).
    home_edges: Vec<bool>,
    /// The home view's detail ([`Structure::detail`]).
    home_detail: f32,
    home_at: f64,
    view: View,
    since: f64,
    /// Another view the pictures have shown without a break, and since when.
    leaning: Option<(View, f64)>,
    /// The share of the home view's edges in place in the latest picture.
    similarity: f32,
}

impl ViewWatch {
    /// A watch with no home view yet.
    pub fn new() -> ViewWatch {
        ViewWatch::default()
    }

    /// The view, and since when (seconds; the time of the picture that settled it).
    pub fn view(&self) -> (View, f64) {
        (self.view, self.since)
    }

    /// Whether the pictures are not known to show the home view: the view is moved or covered,
    /// or the latest pictures have shown another scene (or nothing) without a break, not yet
    /// for long enough to say so. Nothing is judged on such pictures.
    pub fn in_doubt(&self) -> bool {
        !matches!(self.view, View::Home | View::Learning)
            || self.leaning.is_some_and(|(v, _)| v != View::Home)
    }

    /// The share of the home view's edges still in place in the latest picture (for traces).
    pub fn similarity(&self) -> f32 {
        self.similarity
    }

    /// Takes the picture at `now`: its grey `current` cells and the `long`-term background's, on
    /// `grid`. Until `settled` (the start-up grace is over) nothing is judged; the first settled
    /// picture takes the long-term background as the home view. Returns the new view when it
    /// changed.
    pub fn observe(
        &mut self,
        now: f64,
        current: &[f32],
        long: &[f32],
        grid: (usize, usize),
        settled: bool,
    ) -> Option<View> {
        if !settled {
            return None;
        }
        if self.view == View::Learning || self.home_edges.is_empty() {
            self.set_home(Structure::of(long, grid), now);
            return self.switch(View::Home, now);
        }
        let picture = Structure::of(current, grid);
        if picture.blocks.len() != self.home_edges.len() {
            // The picture changed size (a new stream profile): a new home view.
            self.set_home(Structure::of(long, grid), now);
            return None;
        }
        self.similarity = picture.kept_from(&self.home_edges);
        let seen = if picture.detail < COVERED_MAX_DETAIL
            && picture.detail < COVERED_SHARE * self.home_detail
        {
            Some(View::Covered)
        } else if self.similarity < MOVED_BELOW {
            Some(View::Moved)
        } else if self.similarity > HOME_ABOVE {
            Some(View::Home)
        } else {
            // Between the two: no verdict; whatever was building up goes on.
            None
        };
        let changed = match seen {
            Some(v) if v == self.view => {
                self.leaning = None;
                None
            }
            Some(v) => {
                let since = match self.leaning {
                    Some((l, since)) if l == v => since,
                    _ => now,
                };
                self.leaning = Some((v, since));
                let wait = if v == View::Home { RETURN_S } else { CONFIRM_S };
                if now - since >= wait {
                    self.switch(v, now)
                } else {
                    None
                }
            }
            None => None,
        };
        if self.view == View::Home && now - self.home_at >= HOME_REFRESH_S {
            let background = Structure::of(long, grid);
            if background.kept_from(&self.home_edges) >= HOME_REFRESH_ABOVE {
                self.set_home(background, now);
            }
            self.home_at = now;
        }
        changed
    }

    fn set_home(&mut self, home: Structure, now: f64) {
        self.home_edges = home.strong(HOME_EDGES);
        self.home_detail = home.detail;
        self.home_at = now;
    }

    fn switch(&mut self, view: View, now: f64) -> Option<View> {
        self.view = view;
        self.since = now;
        self.leaning = None;
        Some(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: (usize, usize) = (160, 90);

    /// A street-like scene: kerbs, a wall with windows, lane markings and some texture, shifted
    /// `dx` cells to the left (a camera turned right), at brightness `gain`.
    fn scene(dx: usize, gain: f32) -> Vec<f32> {
        let (gw, gh) = GRID;
        let mut cells = vec![0.0f32; gw * gh];
        for y in 0..gh {
            for x in 0..gw {
                let sx = x + dx;
                let mut v: f32 = if y < 30 { 150.0 } else { 90.0 };
                if y < 30 && (sx / 12) % 3 == 1 && y % 10 > 3 {
                    v = 60.0; // windows
                }
                if y >= 30 && (sx * 7 + y * 3) % 97 < 9 {
                    v = 120.0; // paving pattern
                }
                if (55..58).contains(&y) && (sx / 8) % 2 == 0 {
                    v = 220.0; // lane marking
                }
                if sx % 61 < 2 {
                    v = 40.0; // posts
                }
                cells[y * gw + x] = v * gain;
            }
        }
        cells
    }

    fn run(
        watch: &mut ViewWatch,
        from: f64,
        to: f64,
        picture: &[f32],
        home: &[f32],
    ) -> Vec<(f64, View)> {
        let mut changes = Vec::new();
        let mut t = from;
        while t < to {
            if let Some(v) = watch.observe(t, picture, home, GRID, true) {
                changes.push((t, v));
            }
            t += 1.0;
        }
        changes
    }

    #[test]
    fn a_turned_camera_is_moved_after_the_confirmation_and_home_when_turned_back() {
        let home = scene(0, 1.0);
        let mut watch = ViewWatch::new();
        assert_eq!(run(&mut watch, 0.0, 1.0, &home, &home), [(0.0, View::Home)]);
        // 20° of a 90° lens: a fifth of the picture's width.
        let turned = scene(32, 1.0);
        let changes = run(&mut watch, 1.0, 60.0, &turned, &turned);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, View::Moved);
        assert!((20.0..=22.0).contains(&changes[0].0), "{changes:?}");
        let back = run(&mut watch, 60.0, 80.0, &home, &home);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].1, View::Home);
        assert!(back[0].0 - 60.0 <= RETURN_S + 1.0);
    }

    #[test]
    fn light_and_dark_keep_the_view_home() {
        let home = scene(0, 1.0);
        let mut watch = ViewWatch::new();
        run(&mut watch, 0.0, 1.0, &home, &home);
        for gain in [0.3, 0.6, 1.4] {
            let relit = scene(0, gain);
            let changes = run(&mut watch, 1.0, 60.0, &relit, &home);
            assert!(changes.is_empty(), "gain {gain}: {changes:?}");
            assert!(watch.similarity() > 0.9, "{}", watch.similarity());
        }
        // Infrared at night: the light inverted on the lit wall, the ground much brighter.
        let mut ir = home.clone();
        for (i, c) in ir.iter_mut().enumerate() {
            *c = if i / GRID.0 < 30 {
                255.0 - *c
            } else {
                *c * 0.5 + 100.0
            };
        }
        assert!(run(&mut watch, 60.0, 120.0, &ir, &home).is_empty());
    }

    #[test]
    fn passers_by_and_a_lorry_for_a_while_do_not_move_the_view() {
        let home = scene(0, 1.0);
        let mut watch = ViewWatch::new();
        run(&mut watch, 0.0, 1.0, &home, &home);
        // A dozen people (flat figures) over the scene.
        let mut crowd = home.clone();
        for p in 0..12 {
            let (x0, y0) = (5 + p * 12, 40 + (p % 3) * 10);
            for y in y0..y0 + 20 {
                for x in x0..x0 + 6 {
                    crowd[y * GRID.0 + x] = 30.0;
                }
            }
        }
        assert!(run(&mut watch, 1.0, 60.0, &crowd, &home).is_empty());
        assert!(watch.similarity() > HOME_ABOVE, "{}", watch.similarity());
        // A lorry filling most of the picture, for less than the confirmation time.
        let mut lorry = home.clone();
        for y in 10..90 {
            for x in 0..150 {
                lorry[y * GRID.0 + x] = 70.0;
            }
        }
        assert!(run(&mut watch, 60.0, 60.0 + CONFIRM_S - 2.0, &lorry, &home).is_empty());
        assert!(run(&mut watch, 80.0, 90.0, &home, &home).is_empty());
    }

    #[test]
    fn a_covered_lens_is_covered() {
        let home = scene(0, 1.0);
        let mut watch = ViewWatch::new();
        run(&mut watch, 0.0, 1.0, &home, &home);
        // A cloth over the lens: a dark, nearly flat picture with a little sensor noise.
        let cover: Vec<f32> = (0..home.len())
            .map(|i| 20.0 + (i % 3) as f32 * 0.4)
            .collect();
        let changes = run(&mut watch, 1.0, 40.0, &cover, &home);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, View::Covered);
    }

    #[test]
    fn nothing_is_judged_before_the_start_up_grace_ends() {
        let home = scene(0, 1.0);
        let mut watch = ViewWatch::new();
        assert_eq!(watch.observe(0.0, &home, &home, GRID, false), None);
        assert_eq!(watch.view().0, View::Learning);
        assert_eq!(
            watch.observe(1.0, &home, &home, GRID, true),
            Some(View::Home)
        );
    }
}
