//! Adaptive sampling: which decoded pictures of a camera go to the detector.
//!
//! - **Idle** (nobody near a zone, no object pending): only the keyframes the frame policy
//!   sends are decoded (on motion, and every `idle_refresh_s`), and the detector runs on one
//!   only when the scene changed since the last detected picture (a cheap test on the
//!   downscaled grey picture). One that did not change is analysed with the last detections
//!   (nothing moved, so they still hold) without running the detector, which looks again at
//!   least every [`REDETECT_AFTER_S`].
//! - **Active** (the analyzer reports an actor near a zone or an object pending): every frame is
//!   decoded and the detector runs at `active_fps`. After `active_hold_s` without activity the
//!   camera goes back to idle.
//!
//! Plain logic with the stream's own clock, shared by the live service and `replay`.

use super::grey::GreyFrame;

/// Sampling settings of one camera.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingConfig {
    /// Detector runs per second while active.
    pub active_fps: f64,
    /// Seconds without activity before an active camera goes back to idle.
    pub active_hold_s: f64,
    /// An idle camera's keyframe is decoded and analysed at least this often, seconds, moving or
    /// not (with the detector only if its scene changed).
    pub idle_refresh_s: f64,
    /// Scene-change gate: share (0..1) of the grey picture's pixels that must differ from the
    /// last detected picture by more than `gate_pixel_threshold` grey levels.
    pub gate_change_share: f32,
    /// Scene-change gate: grey-level difference that counts a pixel as changed.
    pub gate_pixel_threshold: u8,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            active_fps: 2.0,
            active_hold_s: 10.0,
            idle_refresh_s: 30.0,
            gate_change_share: 0.003,
            gate_pixel_threshold: 12,
        }
    }
}

/// A camera's sampling mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Keyframes only, detected when the scene changed or the refresh is due.
    Idle,
    /// Every frame decoded, detected at `active_fps`.
    Active,
}

impl Mode {
    /// `idle` or `active`, as the API and metrics show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Idle => "idle",
            Mode::Active => "active",
        }
    }
}

/// Why a picture was or was not sent to the detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Detect it.
    Detect,
    /// Active, but the last detection is more recent than `1 / active_fps`.
    TooSoon,
    /// Idle, the scene did not change enough since the last detected picture, and a picture
    /// was analysed less than one active period ago.
    Unchanged,
    /// Idle, and the scene did not change since the last detected picture: analyse it with
    /// that picture's detections (still true: nothing moved) without running the detector.
    /// At least every [`REDETECT_AFTER_S`] the detector looks again anyway.
    Reuse,
}

/// Longest time an idle camera's pictures are analysed with earlier detections before the
/// detector looks again, seconds.
pub const REDETECT_AFTER_S: f64 = 300.0;

/// One camera's sampler.
#[derive(Clone, Debug)]
pub struct Sampler {
    cfg: SamplingConfig,
    mode: Mode,
    active_until: f64,
    last_detect: Option<f64>,
    /// Time of the last picture analysed (detected, or analysed with earlier detections).
    last_analysed: Option<f64>,
    last_grey: Option<GreyFrame>,
    /// Seconds between this camera's analysed pictures while active, as the detector granted
    /// them lately (a moving average); `None` until measured.
    granted_gap: Option<f64>,
}

impl Sampler {
    /// A sampler that starts idle.
    pub fn new(cfg: SamplingConfig) -> Self {
        Sampler {
            cfg,
            mode: Mode::Idle,
            active_until: f64::NEG_INFINITY,
            last_detect: None,
            last_analysed: None,
            last_grey: None,
            granted_gap: None,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether every frame (not only keyframes) should be decoded now.
    pub fn wants_all_frames(&self) -> bool {
        self.mode == Mode::Active
    }

    /// Decides whether the picture taken at `now` goes to the detector; a `Detect` decision
    /// records it as the last detected picture, `Detect` and `Reuse` as the last analysed one.
    pub fn decide(&mut self, now: f64, grey: &GreyFrame) -> Decision {
        let since = self.last_detect.map(|t| now - t);
        let decision = match self.mode {
            // 10 % slack: at 10 fps, "every 0.5 s" must not become every 0.6 s through jitter.
            Mode::Active => match since {
                Some(s) if s >= 0.0 && s < 0.9 / self.cfg.active_fps => Decision::TooSoon,
                _ => Decision::Detect,
            },
            Mode::Idle => {
                let changed = self
                    .last_grey
                    .as_ref()
                    .and_then(|g| grey.changed_share(g, self.cfg.gate_pixel_threshold));
                let detections_stale = since.is_none_or(|s| !(0.0..REDETECT_AFTER_S).contains(&s));
                // At most `active_fps` analyses a second of an idle camera (one that decodes
                // every frame: `decode.mode = "all"`).
                let analysed_just_now = self
                    .last_analysed
                    .is_some_and(|t| now >= t && now - t < 0.9 / self.cfg.active_fps);
                if changed.is_none_or(|c| c >= self.cfg.gate_change_share) || detections_stale {
                    Decision::Detect
                } else if analysed_just_now {
                    Decision::Unchanged
                } else {
                    Decision::Reuse
                }
            }
        };
        if decision == Decision::Detect {
            self.last_detect = Some(now);
            self.last_grey = Some(grey.clone());
        }
        if matches!(decision, Decision::Detect | Decision::Reuse) {
            self.last_analysed = Some(now);
        }
        decision
    }

    /// The detections of the last detected picture never reached the analyzer (a newer picture
    /// replaced it): the next picture is detected, not analysed with them.
    pub fn forget_detections(&mut self) {
        self.last_detect = None;
        self.last_grey = None;
    }

    /// The earliest time a next picture of this camera will be detected: one active period
    /// after the last detected picture, or most of the gap the detector has been granting this
    /// camera if that is longer (a loaded detector). `f64::NEG_INFINITY` while nothing was
    /// detected yet. Pictures before it need not be decoded.
    pub fn wanted_at(&self) -> f64 {
        let Some(last) = self.last_detect else {
            return f64::NEG_INFINITY;
        };
        let period = 0.9 / self.cfg.active_fps;
        // 80 %: a picture should be ready a little before the detector comes back.
        last + self.granted_gap.map_or(period, |g| period.max(0.8 * g))
    }

    /// Records a gap between two analysed pictures of this camera while it was active.
    pub fn granted(&mut self, gap_s: f64) {
        if gap_s.is_finite() && gap_s > 0.0 {
            // Gaps beyond a minute are outages, not the detector's share.
            let gap = gap_s.min(60.0);
            self.granted_gap = Some(self.granted_gap.map_or(gap, |g| 0.7 * g + 0.3 * gap));
        }
    }

    /// Feeds the analyzer's verdict on the picture taken at `now`: `active` switches to (or keeps)
    /// active mode; without activity for `active_hold_s` the camera goes back to idle.
    pub fn report(&mut self, now: f64, active: bool) {
        if active {
            self.mode = Mode::Active;
            self.active_until = now + self.cfg.active_hold_s;
        } else if self.mode == Mode::Active && now >= self.active_until {
            self.mode = Mode::Idle;
        }
    }
}

/// The detector's share of one camera on a loaded box, for replaying a clip as the live service
/// would analyse it (`eval --detect-rate`): at most `per_s` of the pictures the sampler sends
/// to the detector get it, on average; the others go to the background channel alone (live:
/// the picture a newer one replaced before the detector came to it).
#[derive(Clone, Debug)]
pub struct DetectorShare {
    interval: f64,
    next_at: f64,
}

impl DetectorShare {
    /// A share of `per_s` detections a second (above 0).
    pub fn new(per_s: f64) -> Self {
        DetectorShare {
            interval: 1.0 / per_s,
            next_at: f64::NEG_INFINITY,
        }
    }

    /// Whether the picture taken at `now` gets the detector. Granted pictures keep to the
    /// schedule one interval apart, so a late grant does not lower the rate; a grant saves up
    /// at most half an interval (a camera back from idle is not detected twice in a row).
    pub fn grant(&mut self, now: f64) -> bool {
        if now < self.next_at {
            return false;
        }
        self.next_at = self.next_at.max(now - self.interval / 2.0) + self.interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(level: u8) -> GreyFrame {
        GreyFrame {
            width: 20,
            height: 10,
            data: vec![level; 200],
            source_width: 20,
            source_height: 10,
            chroma: vec![],
        }
    }

    #[test]
    fn a_detector_share_grants_its_rate_on_average_and_never_twice_in_a_row() {
        // Pictures offered every 7th frame at 15 fps (2 a second), a share of 0.8 a second.
        let mut share = DetectorShare::new(0.8);
        let offered: Vec<f64> = (0..300).map(|i| f64::from(i) * 7.0 / 15.0).collect();
        let granted: Vec<f64> = offered
            .iter()
            .copied()
            .filter(|t| share.grant(*t))
            .collect();
        let rate = (granted.len() - 1) as f64 / (granted.last().unwrap() - granted[0]);
        assert!((rate - 0.8).abs() < 0.02, "{rate} a second");
        assert!(granted.windows(2).all(|w| w[1] - w[0] >= 0.625 - 1e-9));
        // Back after a pause: one grant, then the schedule again.
        assert!(share.grant(1000.0));
        assert!(!share.grant(1000.0 + 7.0 / 15.0));
    }

    #[test]
    fn idle_detects_on_change_and_reuses_detections_of_an_unchanged_scene() {
        let mut s = Sampler::new(SamplingConfig::default());
        assert_eq!(s.decide(0.0, &grey(50)), Decision::Detect, "first picture");
        assert_eq!(s.decide(2.0, &grey(51)), Decision::Reuse, "unchanged");
        assert_eq!(
            s.decide(2.1, &grey(51)),
            Decision::Unchanged,
            "analysed just now"
        );
        let mut moved = grey(50);
        moved.data[..10].fill(200);
        assert_eq!(
            s.decide(4.0, &moved),
            Decision::Detect,
            "5 % of pixels changed"
        );
        assert_eq!(s.decide(34.0, &moved), Decision::Reuse);
        assert_eq!(s.decide(300.0, &moved), Decision::Reuse);
        assert_eq!(
            s.decide(304.0, &moved),
            Decision::Detect,
            "the detector looks again after 300 s"
        );
        s.forget_detections();
        assert_eq!(
            s.decide(340.0, &moved),
            Decision::Detect,
            "nothing to reuse"
        );
        assert_eq!(s.mode(), Mode::Idle);
        assert!(!s.wants_all_frames());
    }

    #[test]
    fn active_detects_at_the_configured_rate_then_holds_and_returns_to_idle() {
        let mut s = Sampler::new(SamplingConfig::default());
        s.decide(0.0, &grey(50));
        s.report(0.0, true);
        assert_eq!(s.mode(), Mode::Active);
        assert!(s.wants_all_frames());
        // 10 fps input at 2 fps: every fifth picture.
        let detected: Vec<i32> = (1..=20)
            .filter(|i| s.decide(f64::from(*i) * 0.1, &grey(50)) == Decision::Detect)
            .collect();
        assert_eq!(detected, vec![5, 10, 15, 20]);
        s.report(2.0, false);
        s.report(9.9, false);
        assert_eq!(
            s.mode(),
            Mode::Active,
            "held for 10 s after the last activity"
        );
        s.report(10.0, false);
        assert_eq!(s.mode(), Mode::Idle);
    }

    #[test]
    fn the_next_wanted_picture_follows_the_granted_share_of_the_detector() {
        let mut s = Sampler::new(SamplingConfig::default());
        assert_eq!(s.wanted_at(), f64::NEG_INFINITY);
        s.report(0.0, true);
        s.decide(10.0, &grey(50));
        assert!(
            (s.wanted_at() - 10.45).abs() < 1e-9,
            "one period at 2/s, less 10 %"
        );
        s.granted(2.0);
        assert!(
            (s.wanted_at() - 11.6).abs() < 1e-9,
            "80 % of the granted 2 s"
        );
        s.granted(f64::NAN);
        assert!((s.wanted_at() - 11.6).abs() < 1e-9);
    }

    #[test]
    fn the_shared_sampler_publishes_when_the_next_picture_is_wanted() {
        let s = SharedSampler::new(SamplingConfig::default());
        assert_eq!(s.wanted_at(), f64::NEG_INFINITY);
        s.report(0.0, true, false);
        s.decide(10.0, &grey(50));
        assert!((s.wanted_at() - 10.45).abs() < 1e-9);
        s.granted(2.0);
        assert!((s.wanted_at() - 11.6).abs() < 1e-9);
        s.reconfigure(SamplingConfig::default(), true);
        assert_eq!(s.wanted_at(), f64::NEG_INFINITY, "a new camera in the slot");
    }

    #[test]
    fn a_clock_going_backwards_detects_rather_than_stalls() {
        let mut s = Sampler::new(SamplingConfig::default());
        s.decide(100.0, &grey(50));
        assert_eq!(s.decide(5.0, &grey(50)), Decision::Detect);
        s.report(5.0, true);
        assert_eq!(s.decide(1.0, &grey(50)), Decision::Detect);
    }
}

/// A camera's sampler shared between the stages of the live pipeline: ingest reads, for every
/// frame and without a lock, whether to forward every frame, whether the camera is busy and when
/// the next picture is wanted; the decode threads ask whether to detect a picture, and the
/// analyzer reports activity.
#[derive(Debug)]
pub struct SharedSampler {
    sampler: std::sync::Mutex<Sampler>,
    all_frames: std::sync::atomic::AtomicBool,
    busy: std::sync::atomic::AtomicBool,
    /// [`Sampler::wanted_at`] as `f64` bits, refreshed by every change of the sampler.
    wanted_at: std::sync::atomic::AtomicU64,
}

impl SharedSampler {
    /// A shared sampler that starts idle.
    pub fn new(cfg: SamplingConfig) -> Self {
        SharedSampler {
            sampler: std::sync::Mutex::new(Sampler::new(cfg)),
            all_frames: std::sync::atomic::AtomicBool::new(false),
            busy: std::sync::atomic::AtomicBool::new(false),
            wanted_at: std::sync::atomic::AtomicU64::new(f64::NEG_INFINITY.to_bits()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sampler> {
        self.sampler.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes what ingest reads without the lock (after every change, under the lock).
    fn publish(&self, s: &Sampler) {
        self.wanted_at.store(
            s.wanted_at().to_bits(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Whether every frame should be decoded now (active).
    pub fn wants_all_frames(&self) -> bool {
        self.all_frames.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the camera is busy: active, or an incident of it is open. A busy camera's frames
    /// are decoded and detected before idle cameras' ([`crate::slots::Priority`]).
    pub fn busy(&self) -> bool {
        self.busy.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.lock().mode()
    }

    /// Seconds between an idle camera's refreshes.
    pub fn idle_refresh_s(&self) -> f64 {
        self.lock().cfg.idle_refresh_s
    }

    /// See [`Sampler::wanted_at`] (lock-free: read for every frame).
    pub fn wanted_at(&self) -> f64 {
        f64::from_bits(self.wanted_at.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// See [`Sampler::granted`].
    pub fn granted(&self, gap_s: f64) {
        let mut s = self.lock();
        s.granted(gap_s);
        self.publish(&s);
    }

    /// See [`Sampler::decide`].
    pub fn decide(&self, now: f64, grey: &GreyFrame) -> Decision {
        let mut s = self.lock();
        let decision = s.decide(now, grey);
        self.publish(&s);
        decision
    }

    /// See [`Sampler::forget_detections`].
    pub fn forget_detections(&self) {
        let mut s = self.lock();
        s.forget_detections();
        self.publish(&s);
    }

    /// New settings. With `restart` the sampler starts over idle (a new camera in this slot);
    /// without, it keeps its mode and timing (a reload of a running camera).
    pub fn reconfigure(&self, cfg: SamplingConfig, restart: bool) {
        let mut s = self.lock();
        if restart {
            *s = Sampler::new(cfg);
            self.all_frames
                .store(false, std::sync::atomic::Ordering::Relaxed);
            self.busy.store(false, std::sync::atomic::Ordering::Relaxed);
        } else {
            s.cfg = cfg;
        }
        self.publish(&s);
    }

    /// See [`Sampler::report`]; `incident_open` keeps the camera busy (served first) without
    /// making it active (every frame decoded).
    pub fn report(&self, now: f64, active: bool, incident_open: bool) {
        let mut s = self.lock();
        s.report(now, active);
        let all = s.wants_all_frames();
        self.all_frames
            .store(all, std::sync::atomic::Ordering::Relaxed);
        self.busy
            .store(all || incident_open, std::sync::atomic::Ordering::Relaxed);
        self.publish(&s);
    }
}
