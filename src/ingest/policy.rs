//! Which access units of a camera go on to the decoder: the per-camera frame policy, one for the
//! live service (run by each camera's ingest task) and for `replay` / `eval` (run over a clip),
//! so offline scores describe the loop that runs in production.
//!
//! - A **busy** camera (its sampler wants every frame: someone near a zone, an object pending)
//!   sends every frame from a keyframe on, but only as far into each GOP as a picture of it can
//!   still be used: when the detector will not want this camera's next picture before the next
//!   keyframe (its share of the detector, measured), the rest of the GOP is not decoded. When
//!   the decoder cannot keep up and a P-frame cannot be queued, the rest of that GOP is skipped
//!   too (its P-frames would reference a missing picture) and the next keyframe starts again: a
//!   busy camera falls back to keyframes, never to nothing.
//! - An **idle** camera sends a keyframe only when its compressed stream moved
//!   ([`MotionGate`]), when `idle_refresh_s` passed since the last one it sent, or as its first
//!   keyframe after a (re)connect. Everything else is skipped without decoding.
//! - Nothing is sent before the first keyframe of a connection (a decoder cannot start there).

use super::motion::MotionGate;
use crate::config::DecodeMode;

/// A camera's frame policy settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolicyConfig {
    /// `keyframes` (the policy above) or `all` (every frame, always).
    pub mode: DecodeMode,
    /// An idle camera's keyframe is sent at least this often, seconds of stream time.
    pub idle_refresh_s: f64,
    /// Least stream time between two keyframes sent by an idle camera, seconds (0 = none).
    pub min_keyframe_interval_s: f64,
    /// Whether an idle camera's keyframes are gated by its compressed-domain motion (otherwise
    /// every keyframe is sent, as far as `min_keyframe_interval_s` allows).
    pub motion_gate: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            mode: DecodeMode::Keyframes,
            idle_refresh_s: 30.0,
            min_keyframe_interval_s: 0.0,
            motion_gate: true,
        }
    }
}

/// What to do with one access unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to the decoder. `all_frames`: part of a run of every frame from a keyframe on
    /// (decode in order with the camera's own decoder); otherwise a keyframe decoded alone.
    Decode {
        /// See above.
        all_frames: bool,
    },
    /// Do not decode it.
    Skip(Skip),
}

/// Why an access unit is not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The connection has not delivered a keyframe yet (planned: joining mid-GOP).
    BeforeKeyframe,
    /// The camera is idle and this frame is not needed (planned: the sampling policy).
    Idle,
    /// The decoder could not keep up with this busy camera; the rest of the GOP waits for the
    /// next keyframe (unplanned: load).
    Degraded,
}

/// One access unit as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccessUnit {
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// Stream time, seconds.
    pub pts_s: f64,
    /// Size, bytes.
    pub bytes: usize,
    /// Capture time on the sampler's clock (unix seconds live, the clip's time in replay).
    pub at: f64,
}

/// What the camera's sampler wants now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Demand {
    /// Every frame (the camera is active).
    pub all_frames: bool,
    /// The earliest time (sampler's clock) a next picture of this camera will be detected.
    /// `f64::NEG_INFINITY`: now.
    pub wanted_at: f64,
}

impl Demand {
    /// Keyframes only, nothing particular wanted.
    pub const IDLE: Demand = Demand {
        all_frames: false,
        wanted_at: f64::NEG_INFINITY,
    };
}

/// One camera's policy state for one connection; see the module documentation.
#[derive(Clone, Debug)]
pub struct FramePolicy {
    cfg: PolicyConfig,
    synced: bool,
    /// Every frame of the current GOP is being sent.
    gop_all_frames: bool,
    /// A frame of the current GOP could not be queued: the rest of it is skipped.
    gop_degraded: bool,
    /// No picture of the rest of the current GOP will be detected: it is not decoded.
    gop_done: bool,
    /// Stream time of the current GOP's keyframe.
    gop_start: Option<f64>,
    /// Stream time between the last two keyframes (the GOP length).
    gop_len: Option<f64>,
    /// Stream time of the last keyframe sent.
    last_sent_keyframe: Option<f64>,
    motion: MotionGate,
}

/// Half a frame of tolerance on stream-time intervals (a 2 s GOP with a 4 s interval decodes
/// every other keyframe, not every third).
const TOLERANCE_S: f64 = 0.02;
/// How long an idle camera's refresh picture may wait for the decoder and the detector behind
/// busy cameras' pictures on a loaded box (frame age p95 1.0–1.5 s on the 77-camera check;
/// with only a GOP of margin its longest analysis gap was 30.1–30.2 s of the 30 s refresh), or
/// a fifteenth of the refresh period when that is less (a short period keeps a proportionate
/// margin instead of refreshing twice as often).
const REFRESH_WAIT_S: f64 = 2.0;

impl FramePolicy {
    /// A policy for a new connection.
    pub fn new(cfg: PolicyConfig) -> Self {
        FramePolicy {
            cfg,
            synced: false,
            gop_all_frames: false,
            gop_degraded: false,
            gop_done: false,
            gop_start: None,
            gop_len: None,
            last_sent_keyframe: None,
            motion: MotionGate::default(),
        }
    }

    /// New settings (a reload); the state of the connection is kept.
    pub fn reconfigure(&mut self, cfg: PolicyConfig) {
        self.cfg = cfg;
    }

    /// Decides for one access unit, given what the camera's sampler wants (its `all_frames` is
    /// read at keyframes only: a run starts there).
    pub fn offer(&mut self, unit: AccessUnit, demand: Demand) -> Verdict {
        let AccessUnit {
            keyframe, pts_s, ..
        } = unit;
        self.motion.observe(pts_s, unit.bytes, keyframe);
        if !self.synced {
            if !keyframe {
                return Verdict::Skip(Skip::BeforeKeyframe);
            }
            self.synced = true;
            self.start_gop(pts_s, demand.all_frames);
            return self.send_keyframe(pts_s);
        }
        if self.cfg.mode == DecodeMode::All {
            return Verdict::Decode { all_frames: true };
        }
        if keyframe {
            self.start_gop(pts_s, demand.all_frames);
            if self.gop_all_frames {
                return self.send_keyframe(pts_s);
            }
            let since = self.last_sent_keyframe.map(|t| pts_s - t);
            let too_soon = since
                .is_some_and(|s| s >= 0.0 && s < self.cfg.min_keyframe_interval_s - TOLERANCE_S);
            // The last keyframe before the refresh is late: a GOP early rather than a GOP late,
            // and early enough for its picture to wait behind busy cameras' and still be
            // analysed in time.
            let wait = REFRESH_WAIT_S.min(self.cfg.idle_refresh_s / 15.0);
            let early = self.gop_len.unwrap_or(0.0) + wait + TOLERANCE_S;
            let refresh_due = since.is_none_or(|s| s < 0.0 || s >= self.cfg.idle_refresh_s - early);
            let moved = !self.cfg.motion_gate || self.motion.take_moved();
            if !too_soon && (refresh_due || moved) {
                return self.send_keyframe(pts_s);
            }
            return Verdict::Skip(Skip::Idle);
        }
        if !self.gop_all_frames || self.gop_done {
            return Verdict::Skip(Skip::Idle);
        }
        if self.gop_degraded {
            return Verdict::Skip(Skip::Degraded);
        }
        // The next keyframe comes before the detector wants this camera again: the rest of
        // this GOP would be decoded for nothing.
        if let (Some(start), Some(len)) = (self.gop_start, self.gop_len) {
            let next_keyframe_in = start + len - pts_s;
            if demand.wanted_at - unit.at > next_keyframe_in - TOLERANCE_S {
                self.gop_done = true;
                return Verdict::Skip(Skip::Idle);
            }
        }
        Verdict::Decode { all_frames: true }
    }

    fn start_gop(&mut self, pts_s: f64, wants_all_frames: bool) {
        if let Some(start) = self.gop_start {
            let len = pts_s - start;
            // A GOP length a camera could have (timestamps that jumped are not one).
            self.gop_len = (len > 0.0 && len <= 20.0).then_some(len);
        }
        self.gop_start = Some(pts_s);
        self.gop_all_frames = wants_all_frames || self.cfg.mode == DecodeMode::All;
        self.gop_degraded = false;
        self.gop_done = false;
    }

    fn send_keyframe(&mut self, pts_s: f64) -> Verdict {
        self.last_sent_keyframe = Some(pts_s);
        // A keyframe sent because the scene moved answers that motion.
        self.motion.take_moved();
        Verdict::Decode {
            all_frames: self.gop_all_frames,
        }
    }

    /// The decoder could not queue the frame just sent: skip the rest of this GOP (its frames
    /// reference the lost one) until the next keyframe.
    pub fn refused(&mut self) {
        if self.gop_all_frames {
            self.gop_degraded = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPS: f64 = 15.0;

    /// Offers `seconds` of a 15 fps stream with a 2 s GOP starting at `from_s` (frame `i` of the
    /// whole stream is a keyframe when `i % 30 == 0`, shifted by `phase` frames); returns the
    /// pts of the frames sent, with their verdicts.
    fn run(
        p: &mut FramePolicy,
        from_s: f64,
        seconds: f64,
        phase: u32,
        busy: impl Fn(f64) -> bool,
        bytes: impl Fn(f64) -> usize,
    ) -> Vec<(f64, Verdict)> {
        let start = (from_s * FPS).round() as u32;
        let end = ((from_s + seconds) * FPS).round() as u32;
        (start..end)
            .map(|i| {
                let pts = f64::from(i) / FPS;
                let keyframe = (i + phase) % 30 == 0;
                let size = if keyframe { 180_000 } else { bytes(pts) };
                let demand = Demand {
                    all_frames: busy(pts),
                    wanted_at: f64::NEG_INFINITY,
                };
                (pts, p.offer(unit(keyframe, pts, size), demand))
            })
            .collect()
    }

    fn decoded(v: &[(f64, Verdict)]) -> Vec<f64> {
        v.iter()
            .filter(|(_, v)| matches!(v, Verdict::Decode { .. }))
            .map(|(t, _)| *t)
            .collect()
    }

    fn unit(keyframe: bool, pts_s: f64, bytes: usize) -> AccessUnit {
        AccessUnit {
            keyframe,
            pts_s,
            bytes,
            at: pts_s,
        }
    }

    /// A busy camera's policy after two GOPs of 2 s (it knows the GOP length).
    fn with_learned_gop() -> FramePolicy {
        let mut p = FramePolicy::new(PolicyConfig::default());
        for i in 0..60 {
            let t = f64::from(i) / FPS;
            p.offer(unit(i % 30 == 0, t, 9_000), BUSY);
        }
        p
    }

    const BUSY: Demand = Demand {
        all_frames: true,
        wanted_at: f64::NEG_INFINITY,
    };

    fn quiet(pts: f64) -> usize {
        10_000 + ((pts * 37.0) as usize % 7) * 200
    }

    #[test]
    fn an_idle_camera_sends_its_first_keyframe_then_one_per_refresh() {
        let mut p = FramePolicy::new(PolicyConfig::default());
        let v = run(&mut p, 0.0, 95.0, 10, |_| false, quiet);
        assert_eq!(
            v[0].1,
            Verdict::Skip(Skip::BeforeKeyframe),
            "joined mid-GOP"
        );
        let sent = decoded(&v);
        // First keyframe at frame 20 (1.33 s), then the last keyframe a GOP and the refresh
        // picture's wait before each 30 s is up (26 s: early rather than late).
        let expected: Vec<f64> = [20u32, 410, 800, 1190]
            .iter()
            .map(|f| f64::from(*f) / FPS)
            .collect();
        assert_eq!(sent, expected);
    }

    #[test]
    fn a_short_refresh_keeps_a_proportionate_margin() {
        // Refreshed every 8 s: a GOP and 0.53 s early, so every third 2 s keyframe (6 s), not
        // every other one as a 2 s margin would make it.
        let mut p = FramePolicy::new(PolicyConfig {
            idle_refresh_s: 8.0,
            ..PolicyConfig::default()
        });
        let v = run(&mut p, 0.0, 40.0, 0, |_| false, quiet);
        assert_eq!(decoded(&v), vec![0.0, 6.0, 12.0, 18.0, 24.0, 30.0, 36.0]);
    }

    #[test]
    fn an_idle_camera_that_moves_sends_its_next_keyframe() {
        let mut p = FramePolicy::new(PolicyConfig::default());
        let v = run(
            &mut p,
            0.0,
            40.0,
            0,
            |_| false,
            |t| {
                if (20.0..24.0).contains(&t) {
                    quiet(t) * 2
                } else {
                    quiet(t)
                }
            },
        );
        let sent = decoded(&v);
        assert_eq!(sent.len(), 3, "first, after the motion, refresh: {sent:?}");
        assert!(sent[1] > 20.0 && sent[1] <= 24.1, "{sent:?}");
    }

    #[test]
    fn a_busy_camera_sends_every_frame_from_a_keyframe_on() {
        let mut p = FramePolicy::new(PolicyConfig::default());
        let v = run(&mut p, 0.0, 6.0, 0, |t| t >= 1.0, quiet);
        let sent = decoded(&v);
        // The first keyframe alone (idle then), every frame from the keyframe at 2 s on.
        assert_eq!(sent[0], 0.0);
        assert_eq!(sent[1], 2.0);
        assert_eq!(sent.len(), 1 + 60);
        assert!(
            v.iter()
                .any(|(t, v)| *t >= 2.0 && *v == Verdict::Decode { all_frames: true })
        );
    }

    #[test]
    fn a_refused_frame_skips_the_rest_of_its_gop_but_never_the_next_keyframe() {
        let mut p = FramePolicy::new(PolicyConfig::default());
        let all = Verdict::Decode { all_frames: true };
        assert_eq!(p.offer(unit(true, 0.0, 180_000), BUSY), all);
        assert_eq!(p.offer(unit(false, 0.07, 9_000), BUSY), all);
        p.refused();
        for i in 2..30 {
            let t = f64::from(i) / FPS;
            assert_eq!(
                p.offer(unit(false, t, 9_000), BUSY),
                Verdict::Skip(Skip::Degraded)
            );
        }
        assert_eq!(p.offer(unit(true, 2.0, 180_000), BUSY), all);
        assert_eq!(p.offer(unit(false, 2.07, 9_000), BUSY), all);
    }

    #[test]
    fn a_busy_camera_decodes_a_gop_only_as_far_as_the_detector_will_want_a_picture() {
        let mut p = with_learned_gop();
        // The detector gets to this camera every 1.3 s; it next wants a picture at 5.3 s.
        let mut wanted_at = 5.3;
        let mut sent = vec![];
        for i in 60..120 {
            let t = f64::from(i) / FPS;
            let demand = Demand {
                all_frames: true,
                wanted_at,
            };
            if let Verdict::Decode { .. } = p.offer(unit(i % 30 == 0, t, 9_000), demand) {
                sent.push(i);
                if t >= wanted_at {
                    wanted_at = t + 1.3;
                }
            }
        }
        // GOP 4-6 s: up to the picture of 5.33 s (then the next is wanted at 6.63 s, after
        // the next keyframe). GOP 6-8 s: up to 6.67 s; then 7.97 s, which is in this GOP too.
        let expected: Vec<u32> = (60..=80).chain(90..=119).collect();
        assert_eq!(sent, expected);
    }

    #[test]
    fn a_busy_camera_served_less_often_than_its_gop_decodes_keyframes_only() {
        let mut p = with_learned_gop();
        let later = Demand {
            all_frames: true,
            wanted_at: 6.5,
        };
        let all = Verdict::Decode { all_frames: true };
        assert_eq!(p.offer(unit(true, 4.0, 180_000), later), all);
        for i in 61..90 {
            let t = f64::from(i) / FPS;
            assert_eq!(
                p.offer(unit(false, t, 9_000), later),
                Verdict::Skip(Skip::Idle)
            );
        }
    }

    #[test]
    fn without_the_gate_every_keyframe_is_sent_within_the_interval() {
        let cfg = PolicyConfig {
            motion_gate: false,
            min_keyframe_interval_s: 4.0,
            ..Default::default()
        };
        let mut p = FramePolicy::new(cfg);
        let sent = decoded(&run(&mut p, 0.0, 10.0, 0, |_| false, quiet));
        assert_eq!(sent, vec![0.0, 4.0, 8.0]);
    }

    #[test]
    fn all_mode_sends_everything_after_the_first_keyframe() {
        let cfg = PolicyConfig {
            mode: DecodeMode::All,
            ..Default::default()
        };
        let mut p = FramePolicy::new(cfg);
        let v = run(&mut p, 0.0, 4.0, 5, |_| false, quiet);
        assert_eq!(decoded(&v).len(), 60 - 25);
    }
}
