//! The compressed-domain motion gate: whether an idle camera's scene moves, told from the sizes
//! of its access units alone, without decoding anything.
//!
//! An encoder spends bits on what changes between pictures. A static scene still costs bits
//! (sensor noise, especially at night), but a steady amount: each camera has its own noise
//! floor, so the gate learns the camera's own baseline of P-frame bytes per second and calls a
//! second "moving" when it stands out from that baseline by more than the baseline's own spread
//! (median and MAD over the last quiet seconds, so one burst does not teach the gate to ignore
//! the next one). Keyframes are left out: their size says how detailed the scene is, not whether
//! it moves.
//!
//! What it cannot see: an encoder in strict constant-bit-rate mode spends the same bytes whether
//! the scene moves or not, and one under average-bit-rate control (x264 `-b:v`) moves bits
//! between pictures by its own schedule. On such a camera the gate rarely fires and the camera's
//! idle refresh (`idle_refresh_s`) is what finds activity; nothing is lost but time. Cameras set
//! to variable bit rate (the usual default of city cameras, and "H.264+/H.265+" smart codecs)
//! show motion clearly. A scene that keeps moving for a long time (a busy road, trees in the
//! wind) becomes the new baseline after [`REBASE_AFTER`] windows, so such a camera costs no more
//! than a quiet one.
//!
//! Plain logic on stream time; the cost is a few additions per frame and a sort of
//! [`BASELINE_WINDOWS`] numbers per second.

use std::collections::VecDeque;

/// Length of one measurement window, seconds of stream time.
pub const WINDOW_S: f64 = 1.0;
/// Quiet windows the baseline is made of (the last this many).
pub const BASELINE_WINDOWS: usize = 30;
/// Quiet windows needed before the gate says anything (it learns the camera's noise first).
pub const WARMUP_WINDOWS: usize = 5;
/// Consecutive moving windows after which the scene's new level is taken as its baseline.
pub const REBASE_AFTER: usize = 60;

/// A window stands out when its bytes exceed the baseline's median by this many MADs (scaled to
/// a standard deviation)...
const SPREAD_FACTOR: f64 = 4.0;
/// ...and by at least this share of the median (a very steady encoder has a tiny MAD).
const MIN_RISE: f64 = 0.25;

/// One camera's gate; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct MotionGate {
    /// Start of the current window (stream seconds) and the P-frame bytes in it.
    window: Option<(f64, u64)>,
    /// Bytes per second of the last quiet windows.
    baseline: VecDeque<f64>,
    /// Consecutive moving windows (and their values, for a re-baseline).
    moving_run: Vec<f64>,
    /// A moving window was seen since the last [`MotionGate::take_moved`].
    moved: bool,
    /// Windows closed so far (for tests and figures).
    windows: u64,
}

impl MotionGate {
    /// Counts one access unit of `bytes` at stream time `pts_s`.
    pub fn observe(&mut self, pts_s: f64, bytes: usize, keyframe: bool) {
        let (start, sum) = self.window.get_or_insert((pts_s, 0));
        if pts_s < *start {
            // Timestamps went backwards (a wrap, a new connection): start the window again.
            self.window = Some((pts_s, 0));
        } else if pts_s - *start >= WINDOW_S {
            let rate = *sum as f64 / (pts_s - *start);
            self.window = Some((pts_s, 0));
            self.close_window(rate);
        }
        if !keyframe && let Some((_, sum)) = &mut self.window {
            *sum += bytes as u64;
        }
    }

    fn close_window(&mut self, rate: f64) {
        self.windows += 1;
        if self.stands_out(rate) {
            self.moved = true;
            self.moving_run.push(rate);
            if self.moving_run.len() >= REBASE_AFTER {
                // The scene keeps moving: this is its normal now.
                self.baseline.clear();
                let run = std::mem::take(&mut self.moving_run);
                self.baseline
                    .extend(run.into_iter().rev().take(BASELINE_WINDOWS));
            }
        } else {
            self.moving_run.clear();
            self.baseline.push_back(rate);
            while self.baseline.len() > BASELINE_WINDOWS {
                self.baseline.pop_front();
            }
        }
    }

    /// Whether a window of `rate` bytes per second stands out from the baseline. Never before
    /// the baseline is learned.
    pub fn stands_out(&self, rate: f64) -> bool {
        self.threshold().is_some_and(|t| rate > t)
    }

    /// The bytes per second above which a window is moving, once the baseline is learned.
    pub fn threshold(&self) -> Option<f64> {
        if self.baseline.len() < WARMUP_WINDOWS {
            return None;
        }
        let median = median_of(self.baseline.iter().copied());
        let mad = median_of(self.baseline.iter().map(|v| (v - median).abs()));
        Some(median + (SPREAD_FACTOR * 1.4826 * mad).max(MIN_RISE * median))
    }

    /// Whether the scene moved since the last call (and forgets it).
    pub fn take_moved(&mut self) -> bool {
        std::mem::take(&mut self.moved)
    }

    /// Whether the scene moved since the last [`MotionGate::take_moved`], without forgetting it.
    pub fn moved(&self) -> bool {
        self.moved
    }

    /// Windows measured so far.
    pub fn windows(&self) -> u64 {
        self.windows
    }
}

fn median_of(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seconds` of a 15 fps stream with a 2 s GOP, P-frames of `p_bytes(i)`.
    fn feed(
        gate: &mut MotionGate,
        from_s: f64,
        seconds: f64,
        mut p_bytes: impl FnMut(u32) -> usize,
    ) {
        let frames = (seconds * 15.0) as u32;
        for i in 0..frames {
            let pts = from_s + f64::from(i) / 15.0;
            let keyframe = i % 30 == 0;
            let bytes = if keyframe { 180_000 } else { p_bytes(i) };
            gate.observe(pts, bytes, keyframe);
        }
    }

    /// Sensor noise: P-frames of 11 KB ± 15 %, a fixed pseudo-random pattern.
    fn noisy(i: u32) -> usize {
        let jitter = (i.wrapping_mul(2_654_435_761) >> 16) % 3_300;
        9_350 + jitter as usize
    }

    #[test]
    fn sensor_noise_is_not_motion() {
        let mut gate = MotionGate::default();
        feed(&mut gate, 0.0, 120.0, noisy);
        assert!(gate.windows() >= 118);
        assert!(!gate.take_moved(), "threshold {:?}", gate.threshold());
    }

    #[test]
    fn a_person_walking_through_is_motion_and_is_reported_once() {
        let mut gate = MotionGate::default();
        feed(&mut gate, 0.0, 30.0, noisy);
        assert!(!gate.take_moved());
        // Someone crosses for 4 s: P-frames 60 % larger.
        feed(&mut gate, 30.0, 4.0, |i| noisy(i) * 8 / 5);
        assert!(gate.take_moved());
        assert!(!gate.take_moved(), "reported once");
        // The window open when they left still holds some of their bytes.
        feed(&mut gate, 34.0, 2.0, noisy);
        gate.take_moved();
        feed(&mut gate, 36.0, 10.0, noisy);
        assert!(!gate.take_moved(), "quiet again");
    }

    #[test]
    fn nothing_is_said_before_the_baseline_is_learned() {
        let mut gate = MotionGate::default();
        feed(&mut gate, 0.0, 3.0, |_| 50_000);
        assert_eq!(gate.threshold(), None);
        assert!(!gate.moved());
    }

    #[test]
    fn a_scene_that_keeps_moving_becomes_the_baseline() {
        let mut gate = MotionGate::default();
        feed(&mut gate, 0.0, 20.0, noisy);
        feed(&mut gate, 20.0, 70.0, |i| noisy(i) * 2);
        assert!(gate.take_moved());
        feed(&mut gate, 90.0, 20.0, |i| noisy(i) * 2);
        assert!(!gate.take_moved(), "the busy level is the normal now");
    }

    #[test]
    fn timestamps_going_back_restart_the_window() {
        let mut gate = MotionGate::default();
        feed(&mut gate, 100.0, 20.0, noisy);
        let windows = gate.windows();
        feed(&mut gate, 0.0, 10.0, noisy);
        assert!(gate.windows() > windows);
        assert!(!gate.take_moved());
    }
}
