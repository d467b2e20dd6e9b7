//! Each camera's recent encoded video: every access unit of the last seconds, from a keyframe
//! on, so an incident's clip can start before the event without decoding anything.

use std::collections::VecDeque;
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

/// The ring of one camera. Cheap to share; pushed by the camera's ingest task.
#[derive(Debug)]
pub struct ClipRing {
    keep_s: f64,
    max_bytes: usize,
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
}

impl ClipRing {
    /// A ring that keeps at least `keep_s` seconds (from the keyframe before that on), as far
    /// as `max_bytes` of video allow: whole GOPs are dropped, oldest first, while more is held
    /// (the newest GOP is always kept).
    pub fn new(keep_s: f64, max_bytes: usize) -> ClipRing {
        ClipRing {
            keep_s,
            max_bytes,
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
        if !full && at > inner.held_until {
            if !inner.frames.is_empty() {
                inner.frames.clear();
                inner.bytes = 0;
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
        let horizon = at - self.keep_s;
        while let Some(next_key) = inner.frames.iter().skip(1).position(|f| f.keyframe) {
            let old_enough = inner.frames[next_key + 1].at <= horizon;
            if !old_enough && inner.bytes <= self.max_bytes {
                break;
            }
            let dropped: usize = inner.frames.drain(..=next_key).map(|f| f.data.len()).sum();
            inner.bytes -= dropped;
        }
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
