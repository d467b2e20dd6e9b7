//! Each camera's recent encoded video: every access unit of the last seconds, from a keyframe
//! on, so an incident's clip can start before the event without decoding anything.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::ingest::EncodedFrame;

/// One access unit as kept for clips.
#[derive(Clone, Debug)]
pub struct ClipFrame {
    /// Annex B NAL units (keyframes carry SPS and PPS).
    pub data: Arc<[u8]>,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// Stream time, seconds (restarts with each connection).
    pub pts_s: f64,
    /// Arrival time, unix seconds (the analyzer's clock).
    pub at: f64,
}

/// The ring of one camera. Cheap to share; pushed by the camera's ingest task.
#[derive(Debug)]
pub struct ClipRing {
    keep_s: f64,
    frames: Mutex<VecDeque<ClipFrame>>,
}

impl ClipRing {
    /// A ring that keeps at least `keep_s` seconds (from the keyframe before that on).
    pub fn new(keep_s: f64) -> ClipRing {
        ClipRing {
            keep_s,
            frames: Mutex::new(VecDeque::new()),
        }
    }

    /// Adds a frame that arrived at `at` (unix seconds). Frames before the first keyframe are
    /// not kept (a clip cannot start with them).
    pub fn push(&self, frame: &EncodedFrame, at: f64) {
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if frames.is_empty() && !frame.keyframe {
            return;
        }
        frames.push_back(ClipFrame {
            data: Arc::from(frame.data.as_slice()),
            keyframe: frame.keyframe,
            pts_s: frame.pts_s,
            at,
        });
        // Drop whole GOPs while the next keyframe still starts early enough.
        let horizon = at - self.keep_s;
        while let Some(next_key) = frames.iter().skip(1).position(|f| f.keyframe) {
            if frames[next_key + 1].at > horizon {
                break;
            }
            frames.drain(..=next_key);
        }
    }

    /// Forgets everything (a new connection: timestamps restart).
    pub fn clear(&self) {
        self.frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The frames from the last keyframe at or before `from` up to `to` (unix seconds).
    pub fn window(&self, from: f64, to: f64) -> Vec<ClipFrame> {
        let frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        let start = frames
            .iter()
            .rposition(|f| f.keyframe && f.at <= from)
            .or_else(|| frames.iter().position(|f| f.keyframe));
        let Some(start) = start else {
            return vec![];
        };
        frames
            .iter()
            .skip(start)
            .take_while(|f| f.at <= to)
            .cloned()
            .collect()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|f| f.data.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Instant, SystemTime};

    fn frame(keyframe: bool, pts_s: f64) -> EncodedFrame {
        EncodedFrame {
            data: vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 1, 2, 3],
            keyframe,
            pts_s,
            captured_at: SystemTime::now(),
            received: Instant::now(),
            seq: 0,
            all_frames: false,
        }
    }

    #[test]
    fn keeps_whole_gops_covering_the_window() {
        let ring = ClipRing::new(5.0);
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
}
