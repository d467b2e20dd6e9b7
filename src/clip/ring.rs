//! Each camera's recent encoded video: every access unit of the last seconds, from a keyframe
//! on, so an incident's clip can start before the event without decoding anything.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::codec::EncodedFrame;

/// One access unit as kept for clips.
#[derive(Clone, Debug)]
pub struct ClipFrame {
    /// Annex B NAL units (keyframes carry the parameter sets).
    pub data: Arc<[u8]>,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// Stream time, seconds (restarts with each connection).
    pub pts_s: f64,
    /// Arrival time, unix seconds (the analyzer's clock).
    pub at: f64,
    /// The stream's codec.
    pub codec: crate::codec::VideoCodec,
}

/// What the rings of all cameras may hold beyond their own limit to keep a pending object's
/// put-down for its clip ([`ClipRing::keep_from`]): shared by every ring, so memory stays
/// bounded when many cameras have objects pending at once.
#[derive(Debug)]
pub struct ActBudget {
    /// Most bytes one ring holds while it keeps a put-down.
    per_camera: usize,
    /// Most bytes all rings hold beyond their own limit together.
    total: usize,
    /// Bytes held beyond their own limit now, all rings together.
    used: AtomicUsize,
}

impl ActBudget {
    /// A budget of `total` bytes for all rings, `per_camera` at most for one (its own limit
    /// included).
    pub fn new(per_camera: usize, total: usize) -> Arc<ActBudget> {
        Arc::new(ActBudget {
            per_camera,
            total,
            used: AtomicUsize::new(0),
        })
    }

    /// No room beyond each ring's own limit: clips start `keep_s` before the event only.
    pub fn none() -> Arc<ActBudget> {
        ActBudget::new(0, 0)
    }

    /// Bytes held beyond the rings' own limits now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// The ring of one camera. Cheap to share; pushed by the camera's ingest task.
#[derive(Debug)]
pub struct ClipRing {
    keep_s: f64,
    max_bytes: usize,
    act: Arc<ActBudget>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    frames: VecDeque<ClipFrame>,
    /// Bytes of video held.
    bytes: usize,
    /// Connections seen (a clear starts a new one: timestamps restart).
    generation: u64,
    /// Until when (unix seconds) the ring keeps its full seconds whether or not the camera is
    /// busy: a clip is being cut from it ([`ClipRing::hold_until`]).
    held_until: f64,
    /// Keep every frame from the keyframe at or before this (unix seconds): an object is pending
    /// whose clip must show it being put down ([`ClipRing::keep_from`]).
    keep_from: Option<f64>,
    /// Bytes of the shared [`ActBudget`] this ring holds (beyond its own limit).
    lent: usize,
}

impl ClipRing {
    /// A ring that keeps at least `keep_s` seconds (from the keyframe before that on), as far
    /// as `max_bytes` of video allow: whole GOPs are dropped, oldest first, while more is held
    /// (the newest GOP is always kept).
    pub fn new(keep_s: f64, max_bytes: usize) -> ClipRing {
        ClipRing::with_act(keep_s, max_bytes, ActBudget::none())
    }

    /// [`ClipRing::new`] that may hold more than `max_bytes`, out of the shared `act` budget,
    /// while it keeps a put-down ([`ClipRing::keep_from`]).
    pub fn with_act(keep_s: f64, max_bytes: usize, act: Arc<ActBudget>) -> ClipRing {
        ClipRing {
            keep_s,
            max_bytes,
            act,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a frame that arrived at `at` (unix seconds), keeping the ring's seconds. Frames
    /// before the first keyframe are not kept (a clip cannot start with them).
    pub fn push(&self, frame: &EncodedFrame, at: f64) {
        self.push_keeping(frame, at, true);
    }

    /// [`ClipRing::push`] for a busy camera (`full`); an idle camera's ring keeps nothing, unless
    /// a clip being cut holds it ([`ClipRing::hold_until`]). An idle camera cannot raise an
    /// incident before it has been busy for longer than the ring's seconds (an object must stay
    /// for `dwell_s`, and the camera is busy while it does), so its ring need not hold them: its
    /// ring starts again at the first keyframe after it turns busy, at most a GOP later, and 77
    /// idle 2 Mb/s cameras hold nothing instead of 77 GOPs (≈ 27 MB) or 77 × 15 s (≈ 290 MB).
    pub fn push_keeping(&self, frame: &EncodedFrame, at: f64, full: bool) {
        let mut inner = self.lock();
        if !full && at > inner.held_until && inner.keep_from.is_none() {
            if !inner.frames.is_empty() {
                inner.frames.clear();
                inner.bytes = 0;
                self.settle(&mut inner);
            }
            return;
        }
        if inner.frames.is_empty() && !frame.keyframe {
            return;
        }
        inner.bytes += frame.data.len();
        inner.frames.push_back(ClipFrame {
            data: frame.data.clone(),
            keyframe: frame.keyframe,
            pts_s: frame.pts_s,
            at,
            codec: frame.codec,
        });
        // Drop whole GOPs while the next keyframe still starts early enough, or while more
        // bytes than allowed are held.
        let horizon = match inner.keep_from {
            Some(from) => (at - self.keep_s).min(from),
            None => at - self.keep_s,
        };
        let limit = self.limit(&inner);
        while let Some(next_key) = inner.frames.iter().skip(1).position(|f| f.keyframe) {
            let old_enough = inner.frames[next_key + 1].at <= horizon;
            if !old_enough && inner.bytes <= limit {
                break;
            }
            let dropped: usize = inner.frames.drain(..=next_key).map(|f| f.data.len()).sum();
            inner.bytes -= dropped;
        }
        self.settle(&mut inner);
    }

    /// The most bytes the ring may hold now: its own limit, and while it keeps a put-down, what
    /// the shared budget still allows up to its share for one camera.
    fn limit(&self, inner: &Inner) -> usize {
        if inner.keep_from.is_none() || self.act.per_camera <= self.max_bytes {
            return self.max_bytes;
        }
        let others = self.act.used().saturating_sub(inner.lent);
        let room = self.act.total.saturating_sub(others);
        (self.max_bytes + room).min(self.act.per_camera)
    }

    /// Books the bytes held beyond the ring's own limit in the shared budget.
    fn settle(&self, inner: &mut Inner) {
        let lent = inner.bytes.saturating_sub(self.max_bytes);
        if lent > inner.lent {
            self.act
                .used
                .fetch_add(lent - inner.lent, Ordering::Relaxed);
        } else {
            self.act
                .used
                .fetch_sub(inner.lent - lent, Ordering::Relaxed);
        }
        inner.lent = lent;
    }

    /// Keeps every frame from the keyframe at or before `from` (unix seconds) on, busy or idle,
    /// as far as the shared budget allows: an object is pending, and its clip, cut when it is
    /// raised, must show it being put down and who did it. `None` when nothing is pending: the
    /// ring goes back to its own seconds and bytes at the next frame.
    pub fn keep_from(&self, from: Option<f64>) {
        self.lock().keep_from = from;
    }

    /// Keeps the ring's full seconds until `until` (unix seconds) even if the camera turns idle:
    /// a clip is being cut whose last frames arrive then.
    pub fn hold_until(&self, until: f64) {
        let mut inner = self.lock();
        inner.held_until = inner.held_until.max(until);
    }

    /// Forgets everything (a new connection: timestamps restart).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.frames.clear();
        inner.bytes = 0;
        inner.generation += 1;
        self.settle(&mut inner);
    }

    /// The frames from the last keyframe at or before `from` up to `to` (unix seconds).
    pub fn window(&self, from: f64, to: f64) -> Vec<ClipFrame> {
        self.window_of(from, to).1
    }

    /// [`ClipRing::window`] with the connection it comes from (see [`ClipRing::after`]).
    pub fn window_of(&self, from: f64, to: f64) -> (u64, Vec<ClipFrame>) {
        let inner = self.lock();
        let frames = &inner.frames;
        let start = frames
            .iter()
            .rposition(|f| f.keyframe && f.at <= from)
            .or_else(|| frames.iter().position(|f| f.keyframe));
        let Some(start) = start else {
            return (inner.generation, vec![]);
        };
        let window = frames
            .iter()
            .skip(start)
            .take_while(|f| f.at <= to)
            .cloned()
            .collect();
        (inner.generation, window)
    }

    /// The frames that arrived after `after` up to `to`, if the ring still holds the connection
    /// `generation` (empty after a reconnect: a clip never spans two connections).
    pub fn after(&self, generation: u64, after: f64, to: f64) -> Vec<ClipFrame> {
        let inner = self.lock();
        if inner.generation != generation {
            return vec![];
        }
        inner
            .frames
            .iter()
            .filter(|f| f.at > after && f.at <= to)
            .cloned()
            .collect()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Instant, SystemTime};

    fn frame(keyframe: bool, pts_s: f64) -> EncodedFrame {
        EncodedFrame {
            data: vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 1, 2, 3].into(),
            keyframe,
            pts_s,
            captured_at: SystemTime::now(),
            received: Instant::now(),
            seq: 0,
            all_frames: false,
            codec: crate::codec::VideoCodec::H264,
        }
    }

    #[test]
    fn keeps_whole_gops_covering_the_window() {
        let ring = ClipRing::new(5.0, usize::MAX);
        // 30 s at 10 fps, a keyframe every 2 s; a P-frame first is not kept.
        ring.push(&frame(false, 0.0), 1000.0);
        for i in 0..300 {
            let t = f64::from(i) / 10.0;
            ring.push(&frame(i % 20 == 0, t), 1000.0 + t);
        }
        let all = ring.window(0.0, f64::MAX);
        assert!(all[0].keyframe);
        // At least 5 s kept, and not more than a GOP beyond that.
        let span = all.last().unwrap().at - all[0].at;
        assert!((5.0..=7.1).contains(&span), "{span}");
        // A window starts at the keyframe before it and ends at its end.
        let w = ring.window(1026.5, 1028.0);
        assert!(
            w[0].keyframe && (w[0].at - 1026.0).abs() < 1e-9,
            "{:?}",
            w[0].at
        );
        assert!((w.last().unwrap().at - 1028.0).abs() < 1e-9);
        ring.clear();
        assert!(ring.window(0.0, f64::MAX).is_empty());
    }

    #[test]
    fn a_byte_limit_drops_whole_gops_but_keeps_the_newest() {
        // 8-byte frames, 20 a GOP: 160 bytes a GOP; room for two and a half.
        let ring = ClipRing::new(60.0, 400);
        for i in 0..200 {
            let t = f64::from(i) / 10.0;
            ring.push(&frame(i % 20 == 0, t), 1000.0 + t);
            assert!(ring.bytes() <= 400 || ring.window(0.0, f64::MAX).len() <= 20);
        }
        let all = ring.window(0.0, f64::MAX);
        assert!(all[0].keyframe);
        assert_eq!(ring.bytes(), all.len() * 8);
        assert!(all.len() > 20 && all.len() <= 50, "{}", all.len());
    }

    #[test]
    fn frames_after_a_point_come_from_the_same_connection_only() {
        let ring = ClipRing::new(60.0, usize::MAX);
        for i in 0..40 {
            let t = f64::from(i) / 10.0;
            ring.push(&frame(i % 20 == 0, t), 1000.0 + t);
        }
        let (generation, head) = ring.window_of(1001.0, f64::MAX);
        let last = head.last().unwrap().at;
        for i in 40..60 {
            let t = f64::from(i) / 10.0;
            ring.push(&frame(i % 20 == 0, t), 1000.0 + t);
        }
        let tail = ring.after(generation, last, 1005.0);
        assert_eq!(tail.len(), 11, "4.0 .. 5.0 s");
        ring.clear();
        assert!(ring.after(generation, last, f64::MAX).is_empty());
    }

    #[test]
    fn a_pending_put_down_is_kept_beyond_the_rings_seconds_within_the_budget() {
        // 8-byte frames, 10 fps, a keyframe every 2 s (160 bytes a GOP). The ring keeps 5 s and
        // 400 bytes; a camera may hold 1,000 bytes for a put-down, all cameras 1,200.
        let budget = ActBudget::new(1_000, 1_200);
        let ring = ClipRing::with_act(5.0, 400, budget.clone());
        let push = |ring: &ClipRing, from: u32, to: u32, full: bool| {
            for i in from..to {
                let t = f64::from(i) / 10.0;
                ring.push_keeping(&frame(i % 20 == 0, t), 1000.0 + t, full);
            }
        };
        push(&ring, 0, 100, true);
        // Something put down at 1009.5 s: kept from 3 s before it, while it is pending.
        ring.keep_from(Some(1006.5));
        push(&ring, 100, 150, true);
        let kept = ring.window(0.0, f64::MAX);
        assert!((kept[0].at - 1006.0).abs() < 1e-9, "{}", kept[0].at);
        assert_eq!(budget.used(), ring.bytes() - 400);
        // Pending for longer than a camera's share: the oldest GOPs go, the newest stay.
        push(&ring, 150, 300, false);
        assert!(ring.bytes() <= 1_000, "{}", ring.bytes());
        assert!(ring.window(0.0, f64::MAX).last().unwrap().at >= 1029.9);
        // A second camera's put-down gets what the budget has left, not its whole share.
        let other = ClipRing::with_act(5.0, 400, budget.clone());
        other.keep_from(Some(1000.0));
        push(&other, 0, 300, true);
        assert!(budget.used() <= 1_200, "{}", budget.used());
        assert!(other.bytes() <= 400 + 1_200 - (ring.bytes() - 400) + 160);
        // Raised or taken back: both rings go back to their own limits and lend nothing.
        ring.keep_from(None);
        other.keep_from(None);
        push(&ring, 300, 301, true);
        push(&other, 300, 301, true);
        assert!(ring.bytes() <= 400 && other.bytes() <= 400);
        assert_eq!(budget.used(), 0);
        // An idle camera with nothing pending keeps nothing, and lends nothing.
        ring.keep_from(Some(1029.0));
        push(&ring, 301, 340, false);
        ring.keep_from(None);
        push(&ring, 340, 341, false);
        assert_eq!((ring.bytes(), budget.used()), (0, 0));
    }

    #[test]
    fn an_idle_camera_keeps_nothing_unless_a_clip_holds_its_ring() {
        let ring = ClipRing::new(60.0, usize::MAX);
        // Busy for 5 s, then idle: the ring empties.
        for i in 0..100 {
            let t = f64::from(i) / 10.0;
            ring.push_keeping(&frame(i % 20 == 0, t), 1000.0 + t, i < 50);
            if i == 49 {
                assert_eq!(ring.window(0.0, f64::MAX).len(), 50);
            }
        }
        assert!(ring.window(0.0, f64::MAX).is_empty());
        assert_eq!(ring.bytes(), 0);
        // Busy again mid-GOP: kept from the next keyframe on.
        for i in 105..130 {
            let t = f64::from(i) / 10.0;
            ring.push_keeping(&frame(i % 20 == 0, t), 1000.0 + t, true);
        }
        let all = ring.window(0.0, f64::MAX);
        assert!(all[0].keyframe && (all[0].at - 1012.0).abs() < 1e-9);
        // A clip cut at 1013 s with 5 s after it holds the ring while the camera is idle.
        ring.hold_until(1018.0);
        for i in 130..200 {
            let t = f64::from(i) / 10.0;
            ring.push_keeping(&frame(i % 20 == 0, t), 1000.0 + t, false);
            if i == 180 {
                let held = ring.window(1013.0, f64::MAX);
                assert!(
                    (held[0].at - 1012.0).abs() < 1e-9,
                    "the clip's head is still there"
                );
                assert!((held.last().unwrap().at - 1018.0).abs() < 1e-9);
            }
        }
        assert!(
            ring.window(0.0, f64::MAX).is_empty(),
            "released after the hold"
        );
    }
}
